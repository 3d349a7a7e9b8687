"""Adagrad with learning-rate decay, in the image of ``torch.optim.Adagrad``; each
parameter's update is one launch of ``adagrad_kernel``, with the decayed rate computed
on the host.
"""
from .. import backend
from ..backend import xp
from ..kernels.optim import adagrad_kernel
from .._core.checks import check_real
from .optimizer import Optimizer, _check_common, _flat


class Adagrad(Optimizer):
    """Adagrad (Duchi et al.), as ``torch.optim.Adagrad``: ``sum += g²``,
    ``p -= clr·g / (sqrt(sum) + eps)`` with ``clr = lr / (1 + (step - 1)·lr_decay)``. As in
    PyTorch, every parameter has its state (``step`` 0, ``sum`` filled with
    ``initial_accumulator_value``) from construction, so a state dict lists them all."""

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0,
                 initial_accumulator_value=0, eps=1e-10, *, maximize=False):
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value,
                                      eps=eps, maximize=maximize))

    def _check_group(self, group):
        _check_common(group)
        check_real("lr_decay", group["lr_decay"], 0.0)
        check_real("initial_accumulator_value", group["initial_accumulator_value"], 0.0)
        check_real("eps", group["eps"], 0.0)

    def add_param_group(self, param_group):
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        for p in group["params"]:
            self._init_state(p, group, self.state.setdefault(p, {}))

    @staticmethod
    def _init_state(p, group, state):
        state["step"] = 0.0
        state["sum"] = xp.full(p.shape, group["initial_accumulator_value"], dtype=p.dtype)

    def _update(self, p, grad, group, state):
        dtype = p.dtype.type
        if not state:  # a loaded state dict that did not list this parameter
            self._init_state(p, group, state)
        state["step"] += 1
        clr = group["lr"] / (1 + (state["step"] - 1) * group["lr_decay"])
        param = _flat(p._array)
        backend.launch(adagrad_kernel(p.dtype), param.size, param, grad, _flat(state["sum"]),
                       dtype(clr), dtype(group["eps"]), dtype(group["weight_decay"]),
                       bool(group["maximize"]))
