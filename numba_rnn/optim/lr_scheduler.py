"""Learning-rate schedulers in the image of ``torch.optim.lr_scheduler``: ``LRScheduler``
(and its old name ``_LRScheduler``), ``StepLR``, ``MultiStepLR``, ``ExponentialLR``,
``LambdaLR``, ``CosineAnnealingLR`` and ``ReduceLROnPlateau``, with PyTorch's arguments,
defaults and (chainable) update rules, so that the learning rates they write into the
optimizer's ``group["lr"]`` are PyTorch's, number for number. Like PyTorch's, a scheduler
sets ``group["initial_lr"]`` and takes its first step when it is made.

Usage, as with PyTorch::

    scheduler = nr.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.5)
    for epoch in range(epochs):
        train(...)          # opt.step() in there
        scheduler.step()

Arguments are checked before anything changes: a refused scheduler leaves the
optimizer's groups as they were.
"""
import bisect
import copy
import math
import numbers
import types
import warnings
from collections import Counter

from ..nn.checks import check_choice, check_int, check_real
from ..tensor import Tensor
from . import Optimizer

EPOCH_DEPRECATION_WARNING = (
    "The epoch parameter in `scheduler.step()` was not necessary and is being "
    "deprecated where possible. Please use `scheduler.step()` to step the "
    "scheduler. During the deprecation, if epoch is different from None, the "
    "closed form is used instead of the new chainable form, where available. "
    "Please open an issue if you are unable to replicate your use case: "
    "https://github.com/pytorch/pytorch/issues/new/choose."
)


def _check_optimizer(optimizer):
    if not isinstance(optimizer, Optimizer):
        raise TypeError("optimizer: expected a numba_rnn.optim optimizer, got "
                        f"{type(optimizer).__name__}")
    return optimizer


def _check_last_epoch(last_epoch):
    return check_int("last_epoch", last_epoch, -1)


def _group_lrs(optimizer):
    return [group["lr"] for group in optimizer.param_groups]


class LRScheduler:
    """The base of the schedulers: ``step()`` advances ``last_epoch`` and writes
    ``get_lr()``'s rates into the optimizer's groups; ``get_last_lr()`` gives the rates
    last written; ``state_dict()`` everything but the optimizer. Subclasses give
    ``get_lr`` (PyTorch's chainable form, from the groups' current rates) and may give
    ``_get_closed_form_lr`` (the rate as a function of the epoch), which the deprecated
    ``step(epoch)`` uses.

    ``last_epoch=-1`` starts a schedule: each group's ``initial_lr`` is set to its
    ``lr`` (unless it has one). A larger ``last_epoch`` resumes one, and needs the groups'
    ``initial_lr`` (from a loaded optimizer state dict)."""

    _get_lr_called_within_step = False
    _is_initial = False

    def __init__(self, optimizer, last_epoch=-1):
        _check_optimizer(optimizer)
        last_epoch = _check_last_epoch(last_epoch)
        if last_epoch != -1:
            for k, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise ValueError(
                        f"last_epoch: resuming at epoch {last_epoch} needs "
                        f"param_groups[{k}]['initial_lr'], which the optimizer does not "
                        "have (load its state dict first, or start with last_epoch=-1)")
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._initial_step()

    def _initial_step(self):
        """The step that a scheduler takes when it is made: epoch 0's rates."""
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    def state_dict(self):
        """Every attribute but the optimizer (PyTorch's layout)."""
        return {key: copy.deepcopy(value) for key, value in self.__dict__.items()
                if key != "optimizer"}

    def load_state_dict(self, state_dict):
        """Restore what ``state_dict()`` gave (or a PyTorch scheduler's of this class)."""
        if not isinstance(state_dict, dict):
            raise TypeError(f"state_dict: expected a dict, got {type(state_dict).__name__}")
        self.__dict__.update(copy.deepcopy(state_dict))

    def get_last_lr(self):
        """The learning rates that the last step wrote, one per parameter group."""
        return self._last_lr

    def get_lr(self):
        """The next learning rates, one per group (called by ``step``)."""
        raise NotImplementedError

    def step(self, epoch=None):
        """Advance one epoch and write the new learning rates into the optimizer. Call it
        after ``optimizer.step()``. ``epoch`` (deprecated, as in PyTorch) jumps to that
        epoch, with the closed form where the scheduler has one."""
        self._step_count += 1
        if epoch is not None:
            warnings.warn(EPOCH_DEPRECATION_WARNING, UserWarning, stacklevel=2)
        self._update_lr(epoch)

    def _update_lr(self, epoch=None):
        self._get_lr_called_within_step = True
        try:
            if epoch is None:
                self.last_epoch += 1
                values = self.get_lr()
            else:
                self.last_epoch = epoch
                if hasattr(self, "_get_closed_form_lr"):
                    values = self._get_closed_form_lr()
                else:
                    values = self.get_lr()
        finally:
            self._get_lr_called_within_step = False
        for group, lr in zip(self.optimizer.param_groups, values):
            group["lr"] = lr
        self._last_lr = _group_lrs(self.optimizer)


class _LRScheduler(LRScheduler):
    """The old name of ``LRScheduler``, as in PyTorch."""


def _warn_get_lr_called_within_step(scheduler):
    if not scheduler._get_lr_called_within_step:
        warnings.warn("To get the last learning rate computed by the scheduler, please use "
                      "`get_last_lr()`.", UserWarning, stacklevel=3)


class LambdaLR(LRScheduler):
    """``lr = initial_lr · lr_lambda(epoch)``, with one function for every group or a
    list of one per group."""

    def __init__(self, optimizer, lr_lambda, last_epoch=-1):
        _check_optimizer(optimizer)
        groups = len(optimizer.param_groups)
        if isinstance(lr_lambda, (list, tuple)):
            if len(lr_lambda) != groups:
                raise ValueError(f"lr_lambda: expected {groups} functions (one per parameter "
                                 f"group), got {len(lr_lambda)}")
            lr_lambdas = list(lr_lambda)
        else:
            lr_lambdas = [lr_lambda] * groups
        for k, fn in enumerate(lr_lambdas):
            if not callable(fn):
                raise TypeError(f"lr_lambda: expected a function of the epoch (or a list of "
                                f"them), got {type(fn).__name__} at {k}")
        self.optimizer = optimizer
        self.lr_lambdas = lr_lambdas
        super().__init__(optimizer, last_epoch)

    def state_dict(self):
        """As PyTorch: the functions are not saved, except the attributes of callable
        objects (a plain function or lambda gives None)."""
        state = {key: copy.deepcopy(value) for key, value in self.__dict__.items()
                 if key not in ("optimizer", "lr_lambdas")}
        state["lr_lambdas"] = [None if isinstance(fn, types.FunctionType)
                               else copy.deepcopy(fn.__dict__) for fn in self.lr_lambdas]
        return state

    def load_state_dict(self, state_dict):
        if not isinstance(state_dict, dict):
            raise TypeError(f"state_dict: expected a dict, got {type(state_dict).__name__}")
        state = dict(state_dict)
        lr_lambdas = state.pop("lr_lambdas", [None] * len(self.lr_lambdas))
        if len(lr_lambdas) != len(self.lr_lambdas):
            raise ValueError(f"state_dict['lr_lambdas']: expected {len(self.lr_lambdas)} "
                             f"entries, got {len(lr_lambdas)}")
        self.__dict__.update(copy.deepcopy(state))
        for fn, saved in zip(self.lr_lambdas, lr_lambdas):
            if saved is not None:
                fn.__dict__.update(saved)

    def get_lr(self):
        _warn_get_lr_called_within_step(self)
        return [base_lr * fn(self.last_epoch)
                for fn, base_lr in zip(self.lr_lambdas, self.base_lrs)]


class StepLR(LRScheduler):
    """Multiply the rate by ``gamma`` every ``step_size`` epochs:
    ``initial_lr · gamma^(epoch // step_size)``."""

    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        _check_optimizer(optimizer)
        self.step_size = check_int("step_size", step_size, 1)
        self.gamma = check_real("gamma", gamma, 0.0)
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        _warn_get_lr_called_within_step(self)
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return _group_lrs(self.optimizer)
        return [group["lr"] * self.gamma for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self):
        return [base_lr * self.gamma ** (self.last_epoch // self.step_size)
                for base_lr in self.base_lrs]


class MultiStepLR(LRScheduler):
    """Multiply the rate by ``gamma`` at each milestone epoch (by ``gamma^k`` at one
    listed k times)."""

    def __init__(self, optimizer, milestones, gamma=0.1, last_epoch=-1):
        _check_optimizer(optimizer)
        if isinstance(milestones, (str, bytes, Tensor)) or not hasattr(milestones, "__iter__"):
            raise TypeError(f"milestones: expected a list of epochs (ints), got "
                            f"{type(milestones).__name__} {milestones!r}")
        milestones = list(milestones)
        for k, milestone in enumerate(milestones):
            check_int(f"milestones[{k}]", milestone, 0)
        self.milestones = Counter(int(m) for m in milestones)
        self.gamma = check_real("gamma", gamma, 0.0)
        super().__init__(optimizer, last_epoch)

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        # a checkpoint gives the Counter back as a plain dict
        self.milestones = Counter(self.milestones)

    def get_lr(self):
        _warn_get_lr_called_within_step(self)
        if self.last_epoch not in self.milestones:
            return _group_lrs(self.optimizer)
        return [group["lr"] * self.gamma ** self.milestones[self.last_epoch]
                for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self):
        milestones = sorted(self.milestones.elements())
        return [base_lr * self.gamma ** bisect.bisect_right(milestones, self.last_epoch)
                for base_lr in self.base_lrs]


class ExponentialLR(LRScheduler):
    """Multiply the rate by ``gamma`` every epoch: ``initial_lr · gamma^epoch``."""

    def __init__(self, optimizer, gamma, last_epoch=-1):
        _check_optimizer(optimizer)
        self.gamma = check_real("gamma", gamma, 0.0)
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        _warn_get_lr_called_within_step(self)
        if self._is_initial:
            return _group_lrs(self.optimizer)
        return [group["lr"] * self.gamma for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self):
        return [base_lr * self.gamma ** self.last_epoch for base_lr in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """Cosine annealing (SGDR without restarts), in PyTorch's recursive form:
    ``eta_min + (initial_lr - eta_min)·(1 + cos(π·epoch / T_max)) / 2`` while the rates
    are left alone, and beyond ``T_max`` the cosine goes on (back up, and so on)."""

    def __init__(self, optimizer, T_max, eta_min=0.0, last_epoch=-1):
        _check_optimizer(optimizer)
        if isinstance(T_max, bool) or not isinstance(T_max, numbers.Real):
            raise TypeError(f"T_max: expected a number of epochs, got {type(T_max).__name__} "
                            f"{T_max!r}")
        if not T_max > 0:
            raise ValueError(f"T_max: expected a number of epochs > 0, got {T_max}")
        self.T_max = T_max
        self.eta_min = check_real("eta_min", eta_min)
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        _warn_get_lr_called_within_step(self)
        if self._is_initial:
            return _group_lrs(self.optimizer)
        if self._step_count == 1 and self.last_epoch > 0:
            return [self.eta_min + (base_lr - self.eta_min)
                    * (1 + math.cos(self.last_epoch * math.pi / self.T_max)) / 2
                    for base_lr in self.base_lrs]
        if (self.last_epoch - 1 - self.T_max) % (2 * self.T_max) == 0:
            return [group["lr"] + (base_lr - self.eta_min)
                    * (1 - math.cos(math.pi / self.T_max)) / 2
                    for base_lr, group in zip(self.base_lrs, self.optimizer.param_groups)]
        return [(1 + math.cos(math.pi * self.last_epoch / self.T_max))
                / (1 + math.cos(math.pi * (self.last_epoch - 1) / self.T_max))
                * (group["lr"] - self.eta_min) + self.eta_min
                for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self):
        return [self.eta_min + (base_lr - self.eta_min)
                * (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
                for base_lr in self.base_lrs]


def _metric(value):
    """A metric as a Python float: a number, or a one-element Tensor or array."""
    if isinstance(value, Tensor):
        return float(value.item())
    if hasattr(value, "item") and getattr(value, "size", 1) == 1:
        return float(value.item())
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"metrics: expected a number (or a one-element Tensor), got "
                        f"{type(value).__name__} {value!r}")
    return float(value)


class ReduceLROnPlateau(LRScheduler):
    """Multiply the rate by ``factor`` when ``step(metrics)`` has seen no improvement
    for more than ``patience`` epochs, as ``torch.optim.lr_scheduler.ReduceLROnPlateau``:
    better means below ``best·(1 - threshold)`` (mode "min", threshold_mode "rel"), below
    ``best - threshold`` ("abs"), and above for mode "max"; after a reduction ``cooldown``
    epochs pass before bad epochs count again; a rate never goes below its ``min_lr``,
    and changes smaller than ``eps`` are skipped."""

    def __init__(self, optimizer, mode="min", factor=0.1, patience=10, threshold=1e-4,
                 threshold_mode="rel", cooldown=0, min_lr=0, eps=1e-8):
        _check_optimizer(optimizer)
        check_choice("mode", mode, ("min", "max"))
        check_choice("threshold_mode", threshold_mode, ("rel", "abs"))
        factor = check_real("factor", factor, 0.0)
        if not factor < 1.0:
            raise ValueError(f"factor: expected a number in [0, 1), got {factor}")
        groups = len(optimizer.param_groups)
        if isinstance(min_lr, (list, tuple)):
            if len(min_lr) != groups:
                raise ValueError(f"min_lr: expected {groups} values (one per parameter "
                                 f"group), got {len(min_lr)}")
            min_lrs = [check_real(f"min_lr[{k}]", v, 0.0) for k, v in enumerate(min_lr)]
            default_min_lr = None
        else:
            default_min_lr = check_real("min_lr", min_lr, 0.0)
            min_lrs = [default_min_lr] * groups
        patience = check_int("patience", patience, 0)
        threshold = check_real("threshold", threshold, 0.0)
        cooldown = check_int("cooldown", cooldown, 0)
        eps = check_real("eps", eps, 0.0)

        self.factor = factor
        self.optimizer = optimizer
        self.default_min_lr = default_min_lr
        self.min_lrs = min_lrs
        self.patience = patience
        self.cooldown = cooldown
        self.eps = eps
        self.last_epoch = 0
        self._last_lr = _group_lrs(optimizer)
        self._init_is_better(mode=mode, threshold=threshold, threshold_mode=threshold_mode)
        self._reset()

    def _reset(self):
        self.best = self.mode_worse
        self.cooldown_counter = 0
        self.num_bad_epochs = 0

    def step(self, metrics, epoch=None):
        """One epoch with the value ``metrics`` (a number or a one-element Tensor)."""
        current = _metric(metrics)
        if epoch is None:
            epoch = self.last_epoch + 1
        else:
            warnings.warn(EPOCH_DEPRECATION_WARNING, UserWarning, stacklevel=2)
        self.last_epoch = epoch
        if self._is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.in_cooldown:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0  # bad epochs in the cooldown do not count
        if self.num_bad_epochs > self.patience:
            self._reduce_lr(epoch)
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = _group_lrs(self.optimizer)

    def _reduce_lr(self, epoch):
        if len(self.optimizer.param_groups) != len(self.min_lrs):
            if self.default_min_lr is None:
                raise RuntimeError(
                    f"min_lr: the optimizer has {len(self.optimizer.param_groups)} parameter "
                    f"groups, {len(self.min_lrs)} when ReduceLROnPlateau was made (a group "
                    "was added since); set scheduler.min_lrs to one value per group")
            self.min_lrs = [self.default_min_lr] * len(self.optimizer.param_groups)
        for k, group in enumerate(self.optimizer.param_groups):
            old_lr = float(group["lr"])
            new_lr = max(old_lr * self.factor, self.min_lrs[k])
            if old_lr - new_lr > self.eps:
                group["lr"] = new_lr

    @property
    def in_cooldown(self):
        return self.cooldown_counter > 0

    def _is_better(self, a, best):
        if self.mode == "min" and self.threshold_mode == "rel":
            return a < best * (1.0 - self.threshold)
        if self.mode == "min" and self.threshold_mode == "abs":
            return a < best - self.threshold
        if self.mode == "max" and self.threshold_mode == "rel":
            return a > best * (self.threshold + 1.0)
        return a > best + self.threshold

    def _init_is_better(self, mode, threshold, threshold_mode):
        check_choice("mode", mode, ("min", "max"))
        check_choice("threshold_mode", threshold_mode, ("rel", "abs"))
        self.mode_worse = math.inf if mode == "min" else -math.inf
        self.mode = mode
        self.threshold = threshold
        self.threshold_mode = threshold_mode

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        self._init_is_better(mode=self.mode, threshold=self.threshold,
                             threshold_mode=self.threshold_mode)


__all__ = ["LRScheduler", "_LRScheduler", "LambdaLR", "StepLR", "MultiStepLR",
           "ExponentialLR", "CosineAnnealingLR", "ReduceLROnPlateau"]
