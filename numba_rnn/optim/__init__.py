"""Optimizers in the image of ``torch.optim``: SGD, Adam, AdamW, RMSprop, Adagrad,
Adadelta and L-BFGS with PyTorch's update rules, arguments, defaults and state-dict
format, and the learning-rate schedulers of ``optim.lr_scheduler``. Each parameter's
update (all but L-BFGS) is one ``numba.cuda`` kernel launch (``kernels/optim.py``) over
its flat storage; the hyper-parameters that depend only on the step count (bias
corrections, Adagrad's decayed rate) are computed on the host as PyTorch does. L-BFGS
works on flat device arrays of all parameters at once, as ``torch.optim.LBFGS``.

Usage, as with PyTorch::

    opt = nr.optim.Adam(model.parameters(), lr=1e-3)
    opt.zero_grad(); loss.backward(); opt.step()
"""
import copy
import math
import numbers

import numpy as np

from .. import backend
from ..backend import xp
from ..kernels.optim import (adadelta_kernel, adagrad_kernel, adam_kernel, rmsprop_kernel,
                             sgd_kernel)
from ..nn.checks import check_bool, check_int, check_real
from ..nn.module import _as_array
from ..tensor import Tensor, enable_grad


def _call_closure(closure):
    """``closure()`` with gradient recording on, as torch.optim calls it."""
    if not callable(closure):
        raise TypeError(f"closure: expected a callable that returns the loss, got "
                        f"{type(closure).__name__}")
    with enable_grad():
        return closure()


def _host_copy(value):
    """A state value for a state dict: device arrays as host NumPy copies (in lists too)."""
    if backend.is_device_array(value):
        return np.array(backend.to_host(value), copy=True)
    if isinstance(value, (list, tuple)):
        return [_host_copy(v) for v in value]
    return value


def _flat(a):
    """The (N,) view of contiguous storage ``a`` that kernels update in place."""
    if not a.flags.c_contiguous:
        raise ValueError("parameter: expected contiguous storage for an in-place update, "
                         f"got strides {a.strides}")
    return a.reshape(-1)


class Optimizer:
    """Parameter groups, per-parameter state, ``zero_grad``, ``step`` and state dicts;
    subclasses give ``defaults``, ``_check_group`` and ``_update``."""

    def __init__(self, params, defaults):
        self.defaults = defaults
        self.state = {}
        self.param_groups = []
        if isinstance(params, Tensor):
            raise TypeError("params: expected an iterable of Tensors or of dicts, got a Tensor "
                            "(pass [tensor] or model.parameters())")
        groups = list(params)
        if not groups:
            raise ValueError("params: expected at least one parameter, got an empty list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, param_group):
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group: expected a dict, got {type(param_group).__name__}")
        group = dict(param_group)
        params = group.get("params")
        params = [params] if isinstance(params, Tensor) else list(params or [])
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"params: expected Tensors, got {type(p).__name__}")
            if not p.is_leaf:
                raise ValueError("params: expected leaf tensors (parameters), got a tensor "
                                 "computed by an operation; an optimizer can't update it")
        known = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in known for p in params) or len({id(p) for p in params}) != len(params):
            raise ValueError("params: a parameter appears in more than one group (or twice)")
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        self._check_group(group)
        group["params"] = params
        self.param_groups.append(group)

    def zero_grad(self, set_to_none=True):
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none or p.grad is None:
                    p.grad = None
                else:
                    p.grad._array[...] = 0

    def step(self, closure=None):
        """One update of every parameter that has a gradient (parameters whose ``.grad``
        is None, frozen ones among them, are skipped, as in PyTorch). ``closure``, when
        given, is called first, with gradient recording on (it re-evaluates the model and
        calls backward); its loss is returned (None without a closure)."""
        loss = _call_closure(closure) if closure is not None else None
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self._update(p, xp.ascontiguousarray(p.grad._array).reshape(-1), group,
                                 self.state.setdefault(p, {}))
                    p._write_()  # written in place: graphs that saved it are stale
        return loss

    # ------------------------------------------------------------------ state
    def state_dict(self):
        """``{"state": {index: {name: array or number}}, "param_groups": [{hyper-parameters,
        "params": [indices]}]}``, PyTorch's layout, with host NumPy copies."""
        index, groups = {}, []
        for group in self.param_groups:
            packed = {k: copy.deepcopy(v) for k, v in group.items() if k != "params"}
            packed["params"] = [index.setdefault(id(p), len(index)) for p in group["params"]]
            groups.append(packed)
        state = {}
        for group in self.param_groups:
            for p in group["params"]:
                if self.state.get(p):
                    state[index[id(p)]] = {k: _host_copy(v) for k, v in self.state[p].items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore what ``state_dict`` (ours, or a ``torch.optim`` one of the same class)
        holds. Everything is checked before anything changes: a refused call leaves the
        optimizer as it was."""
        if not isinstance(state_dict, dict) or set(state_dict) != {"state", "param_groups"}:
            raise ValueError("state_dict: expected a dict with keys 'state' and 'param_groups', "
                             f"got {type(state_dict).__name__}"
                             + (f" with keys {sorted(state_dict)}" if isinstance(state_dict, dict) else ""))
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"state_dict: expected {len(self.param_groups)} parameter groups, "
                             f"got {len(saved_groups)}")
        params = []
        for k, (group, saved) in enumerate(zip(self.param_groups, saved_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(f"state_dict: group {k} expected {len(group['params'])} "
                                 f"parameters, got {len(saved['params'])}")
            params += list(zip(saved["params"], group["params"]))
        by_index = dict(params)
        new_state = {}
        for index, entries in state_dict["state"].items():
            if index not in by_index:
                raise ValueError(f"state_dict: state for parameter {index}, which no group lists")
            p = by_index[index]
            new_state[p] = {name: self._load_state_value(p, f"state_dict['state'][{index}]"
                                                         f"[{name!r}]", name, value)
                            for name, value in entries.items()}
        new_groups = []
        for group, saved in zip(self.param_groups, saved_groups):
            updated = dict(group)
            # the hyper-parameters, and the initial_lr that a scheduler keeps there
            updated.update({k: copy.deepcopy(v) for k, v in saved.items()
                            if k in self.defaults or k == "initial_lr"})
            self._check_group(updated)
            new_groups.append(updated)
        self.param_groups[:] = new_groups
        self.state = new_state

    def _load_state_value(self, p, where, name, value):
        """One entry of a saved per-parameter state, converted for parameter ``p``: the
        step count as a float, the rest as device arrays of ``p``'s shape and dtype."""
        if name == "step":
            return float(_as_array(value))
        array = _as_array(value)
        if tuple(array.shape) != p.shape:
            raise ValueError(f"{where}: expected shape {p.shape}, got {tuple(array.shape)}")
        return xp.array(backend.to_device(array, p.dtype), copy=True)

    def __repr__(self):
        lines = [type(self).__name__ + " ("]
        for k, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {k}")
            lines += [f"    {key}: {value}" for key, value in sorted(group.items()) if key != "params"]
        return "\n".join(lines + [")"])


def _check_common(group):
    check_real("lr", group["lr"], 0.0)
    check_real("weight_decay", group["weight_decay"], 0.0)
    check_bool("maximize", group["maximize"])


class SGD(Optimizer):
    """Stochastic gradient descent with momentum, dampening, Nesterov momentum and
    (coupled) weight decay, as ``torch.optim.SGD``."""

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0,
                 nesterov=False, *, maximize=False):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov,
                                      maximize=maximize))

    def _check_group(self, group):
        _check_common(group)
        check_real("momentum", group["momentum"], 0.0)
        check_real("dampening", group["dampening"])
        check_bool("nesterov", group["nesterov"])
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("nesterov: expected momentum > 0 and dampening = 0 with Nesterov "
                             f"momentum, got momentum={group['momentum']}, "
                             f"dampening={group['dampening']}")

    def _update(self, p, grad, group, state):
        dtype = p.dtype.type
        momentum = group["momentum"]
        first = False
        if momentum != 0:
            if state.get("momentum_buffer") is None:
                state["momentum_buffer"] = xp.zeros(p.shape, dtype=p.dtype)
                first = True
            buffer = _flat(state["momentum_buffer"])
        else:
            buffer = backend.placeholder(1, p.dtype)
        param = _flat(p._array)
        backend.launch(sgd_kernel(p.dtype), param.size, param, grad, buffer,
                       dtype(group["lr"]), dtype(momentum), dtype(1 - group["dampening"]),
                       dtype(group["weight_decay"]), bool(group["nesterov"]),
                       bool(group["maximize"]), first)


class Adam(Optimizer):
    """Adam (Kingma and Ba) with optional AMSGrad, as ``torch.optim.Adam``; weight decay
    is added to the gradient (L2), unlike ``AdamW``."""

    _decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 amsgrad=False, *, maximize=False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps,
                                      weight_decay=weight_decay, amsgrad=amsgrad,
                                      maximize=maximize))

    def _check_group(self, group):
        _check_common(group)
        check_real("eps", group["eps"], 0.0)
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"betas: expected a pair (beta1, beta2), got {betas!r}")
        group["betas"] = tuple(betas)
        for k, beta in enumerate(betas):
            if not 0.0 <= check_real(f"betas[{k}]", beta) < 1.0:
                raise ValueError(f"betas[{k}]: expected a number in [0, 1), got {beta}")
        check_bool("amsgrad", group["amsgrad"])

    def _update(self, p, grad, group, state):
        dtype = p.dtype.type
        if not state:
            state["step"] = 0.0
            state["exp_avg"] = xp.zeros(p.shape, dtype=p.dtype)
            state["exp_avg_sq"] = xp.zeros(p.shape, dtype=p.dtype)
        if group["amsgrad"] and state.get("max_exp_avg_sq") is None:
            # the first step, or amsgrad switched on for a state that was made without it
            state["max_exp_avg_sq"] = xp.zeros(p.shape, dtype=p.dtype)
        state["step"] += 1
        step = state["step"]
        lr, wd, eps = group["lr"], group["weight_decay"], group["eps"]
        beta1, beta2 = group["betas"]
        param = _flat(p._array)
        backend.launch(
            adam_kernel(p.dtype), param.size, param, grad, _flat(state["exp_avg"]),
            _flat(state["exp_avg_sq"]),
            _flat(state["max_exp_avg_sq"]) if group["amsgrad"] else backend.placeholder(1, p.dtype),
            dtype(wd), dtype(1 - lr * wd), dtype(1 - beta1), dtype(beta2), dtype(1 - beta2),
            dtype(eps), dtype(lr / (1 - beta1 ** step)), dtype(math.sqrt(1 - beta2 ** step)),
            bool(group["amsgrad"]), bool(group["maximize"]), self._decoupled)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov and Hutter), as ``torch.optim.AdamW``:
    ``p ← p·(1 - lr·weight_decay)`` before the Adam step; default weight_decay 0.01."""

    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, *, maximize=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize)



def _zeros(p):
    return xp.zeros(p.shape, dtype=p.dtype)


def _zeros_if_missing(state, name, p):
    """The state array ``name``, allocated as zeros when the state lacks it (the first
    step, or an option switched on for a state that was made without it)."""
    if state.get(name) is None:
        state[name] = _zeros(p)
    return state[name]


class RMSprop(Optimizer):
    """RMSprop (Hinton) with optional momentum and centering, as ``torch.optim.RMSprop``:
    ``v = α·v + (1 - α)·g²``, ``p -= lr·g / (sqrt(v) + eps)`` (``v - ḡ²`` under the root
    when centered; through a momentum buffer when momentum > 0)."""

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
                 centered=False, *, maximize=False):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered,
                                      maximize=maximize))

    def _check_group(self, group):
        _check_common(group)
        check_real("alpha", group["alpha"], 0.0)
        check_real("eps", group["eps"], 0.0)
        check_real("momentum", group["momentum"], 0.0)
        check_bool("centered", group["centered"])

    def _update(self, p, grad, group, state):
        dtype = p.dtype.type
        if not state:
            state["step"] = 0.0
            state["square_avg"] = _zeros(p)
        momentum, centered = group["momentum"], group["centered"]
        unused = backend.placeholder(1, p.dtype)
        buffer = _flat(_zeros_if_missing(state, "momentum_buffer", p)) if momentum > 0 else unused
        grad_avg = _flat(_zeros_if_missing(state, "grad_avg", p)) if centered else unused
        state["step"] += 1
        param = _flat(p._array)
        alpha = group["alpha"]
        backend.launch(rmsprop_kernel(p.dtype), param.size, param, grad,
                       _flat(state["square_avg"]), grad_avg, buffer, dtype(group["lr"]),
                       dtype(alpha), dtype(1 - alpha), dtype(group["eps"]),
                       dtype(group["weight_decay"]), dtype(momentum), bool(centered),
                       bool(group["maximize"]))


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


class Adadelta(Optimizer):
    """Adadelta (Zeiler), as ``torch.optim.Adadelta``: ``v = ρ·v + (1 - ρ)·g²``,
    ``δ = sqrt(u + eps) / sqrt(v + eps)·g``, ``u = ρ·u + (1 - ρ)·δ²``, ``p -= lr·δ``."""

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, *, maximize=False):
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay,
                                      maximize=maximize))

    def _check_group(self, group):
        _check_common(group)
        check_real("rho", group["rho"], 0.0, 1.0)
        check_real("eps", group["eps"], 0.0)

    def _update(self, p, grad, group, state):
        dtype = p.dtype.type
        if not state:
            state["step"] = 0.0
            state["square_avg"] = _zeros(p)
            state["acc_delta"] = _zeros(p)
        state["step"] += 1
        rho = group["rho"]
        param = _flat(p._array)
        backend.launch(adadelta_kernel(p.dtype), param.size, param, grad,
                       _flat(state["square_avg"]), _flat(state["acc_delta"]),
                       dtype(group["lr"]), dtype(rho), dtype(1 - rho), dtype(group["eps"]),
                       dtype(group["weight_decay"]), bool(group["maximize"]))


# ------------------------------------------------------------------------ L-BFGS
def _cubic_interpolate(x1, f1, g1, x2, f2, g2, bounds=None):
    """The minimizer of the cubic through two points with their values and slopes,
    clamped to ``bounds`` (torch/optim/lbfgs.py, from minFunc's polyinterp)."""
    if bounds is not None:
        xmin_bound, xmax_bound = bounds
    else:
        xmin_bound, xmax_bound = (x1, x2) if x1 <= x2 else (x2, x1)
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1 ** 2 - g1 * g2
    if d2_square >= 0:
        d2 = np.sqrt(d2_square)
        if x1 <= x2:
            min_pos = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
        else:
            min_pos = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
        return min(max(min_pos, xmin_bound), xmax_bound)
    return (xmin_bound + xmax_bound) / 2.0


def _strong_wolfe(obj_func, scalar, x, t, d, f, g, gtd, c1=1e-4, c2=0.9,
                  tolerance_change=1e-9, max_ls=25):
    """A line search along ``d`` for a step ``t`` meeting the strong Wolfe conditions
    (torch/optim/lbfgs.py, from minFunc's WolfeLineSearch): bracketing, then zoom.
    ``obj_func(x, t, d)`` gives the loss and flat gradient at x + t·d; ``scalar(a, b)``
    the host scalar a·b (or a, a reduction's result) in the parameters' dtype. Returns
    (loss, gradient, t, evaluations)."""
    d_norm = scalar(xp.abs(d).max())
    g = g.copy()
    f_new, g_new = obj_func(x, t, d)
    ls_func_evals = 1
    gtd_new = scalar(g_new, d)

    t_prev, f_prev, g_prev, gtd_prev = 0, f, g, gtd
    done = False
    ls_iter = 0
    while ls_iter < max_ls:
        if f_new > (f + c1 * t * gtd) or (ls_iter > 1 and f_new >= f_prev):
            bracket = [t_prev, t]
            bracket_f = [f_prev, f_new]
            bracket_g = [g_prev, g_new.copy()]
            bracket_gtd = [gtd_prev, gtd_new]
            break
        if abs(gtd_new) <= -c2 * gtd:
            bracket = [t]
            bracket_f = [f_new]
            bracket_g = [g_new]
            done = True
            break
        if gtd_new >= 0:
            bracket = [t_prev, t]
            bracket_f = [f_prev, f_new]
            bracket_g = [g_prev, g_new.copy()]
            bracket_gtd = [gtd_prev, gtd_new]
            break
        # interpolate
        min_step = t + 0.01 * (t - t_prev)
        max_step = t * 10
        tmp = t
        t = _cubic_interpolate(t_prev, f_prev, gtd_prev, t, f_new, gtd_new,
                               bounds=(min_step, max_step))
        t_prev = tmp
        f_prev = f_new
        g_prev = g_new.copy()
        gtd_prev = gtd_new
        f_new, g_new = obj_func(x, t, d)
        ls_func_evals += 1
        gtd_new = scalar(g_new, d)
        ls_iter += 1

    if ls_iter == max_ls:  # reached the most evaluations allowed
        bracket = [0, t]
        bracket_f = [f, f_new]
        bracket_g = [g, g_new]

    # zoom: refine the bracket until a point satisfies the conditions
    insuf_progress = False
    low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[-1] else (1, 0)
    while not done and ls_iter < max_ls:
        if abs(bracket[1] - bracket[0]) * d_norm < tolerance_change:
            break
        t = _cubic_interpolate(bracket[0], bracket_f[0], bracket_gtd[0],
                               bracket[1], bracket_f[1], bracket_gtd[1])
        # too close to an end of the bracket: move 0.1·its length away from it when the
        # last step made too little progress too, or t is at (or past) an end
        eps = 0.1 * (max(bracket) - min(bracket))
        if min(max(bracket) - t, t - min(bracket)) < eps:
            if insuf_progress or t >= max(bracket) or t <= min(bracket):
                if abs(t - max(bracket)) < abs(t - min(bracket)):
                    t = max(bracket) - eps
                else:
                    t = min(bracket) + eps
                insuf_progress = False
            else:
                insuf_progress = True
        else:
            insuf_progress = False

        f_new, g_new = obj_func(x, t, d)
        ls_func_evals += 1
        gtd_new = scalar(g_new, d)
        ls_iter += 1

        if f_new > (f + c1 * t * gtd) or f_new >= bracket_f[low_pos]:
            # Armijo condition not met, or not below the lowest point
            bracket[high_pos] = t
            bracket_f[high_pos] = f_new
            bracket_g[high_pos] = g_new.copy()
            bracket_gtd[high_pos] = gtd_new
            low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True  # the Wolfe conditions hold
            elif gtd_new * (bracket[high_pos] - bracket[low_pos]) >= 0:
                # the old high becomes the new low
                bracket[high_pos] = bracket[low_pos]
                bracket_f[high_pos] = bracket_f[low_pos]
                bracket_g[high_pos] = bracket_g[low_pos]
                bracket_gtd[high_pos] = bracket_gtd[low_pos]
            # the new point becomes the new low
            bracket[low_pos] = t
            bracket_f[low_pos] = f_new
            bracket_g[low_pos] = g_new.copy()
            bracket_gtd[low_pos] = gtd_new

    t = bracket[low_pos]
    f_new = bracket_f[low_pos]
    g_new = bracket_g[low_pos]
    return f_new, g_new, t, ls_func_evals


def _loss_value(loss):
    """The closure's loss as a Python float (a one-element Tensor, array or number)."""
    if isinstance(loss, Tensor):
        return float(loss.item())
    if backend.is_device_array(loss):
        return float(loss.reshape(()).item())
    try:
        return float(loss)
    except (TypeError, ValueError):
        raise TypeError(f"closure: expected it to return the loss (a one-element Tensor or "
                        f"a number), got {type(loss).__name__}") from None


class LBFGS(Optimizer):
    """L-BFGS, as ``torch.optim.LBFGS`` (from minFunc): ``step(closure)`` runs up to
    ``max_iter`` iterations, each a two-loop recursion over the last ``history_size``
    (s, y) pairs, then a fixed step of ``lr`` (the first scaled by 1/|g|₁) or, with
    ``line_search_fn="strong_wolfe"``, a strong-Wolfe line search. ``closure``
    re-evaluates the model, calls ``backward()`` and returns the loss. All parameters are
    handled as one flat vector on the device (one dtype); one parameter group only. The
    state (PyTorch's names: ``d``, ``t``, ``old_dirs``, ``old_stps``, ``ro``, ``H_diag``,
    ``prev_flat_grad``, ``prev_loss``, ``al``, ``func_evals``, ``n_iter``) is kept for the
    first parameter, as PyTorch does; its scalars are NumPy scalars of the parameters'
    dtype (PyTorch's are 0-d tensors)."""

    def __init__(self, params, lr=1, max_iter=20, max_eval=None, tolerance_grad=1e-7,
                 tolerance_change=1e-9, history_size=100, line_search_fn=None):
        max_iter = check_int("max_iter", max_iter, 1)
        if max_eval is None:
            max_eval = max_iter * 5 // 4
        super().__init__(params, dict(lr=lr, max_iter=max_iter, max_eval=max_eval,
                                      tolerance_grad=tolerance_grad,
                                      tolerance_change=tolerance_change,
                                      history_size=history_size,
                                      line_search_fn=line_search_fn))
        self._params = self.param_groups[0]["params"]
        if not self._params:
            raise ValueError("params: expected at least one parameter, got an empty group")
        dtypes = {np.dtype(p.dtype) for p in self._params}
        if len(dtypes) != 1:
            raise TypeError("params: LBFGS works on all parameters as one vector, so they "
                            f"need one dtype, got {sorted(d.name for d in dtypes)}")
        self._dtype = dtypes.pop()
        self._numel = sum(p.numel() for p in self._params)

    def add_param_group(self, param_group):
        if self.param_groups:
            raise ValueError("param_group: LBFGS doesn't support per-parameter options "
                             "(parameter groups): it has one group")
        super().add_param_group(param_group)

    def _check_group(self, group):
        check_real("lr", group["lr"], 0.0)
        check_int("max_iter", group["max_iter"], 1)
        check_int("max_eval", group["max_eval"], 1)
        check_real("tolerance_grad", group["tolerance_grad"], 0.0)
        check_real("tolerance_change", group["tolerance_change"], 0.0)
        check_int("history_size", group["history_size"], 1)
        if group["line_search_fn"] not in (None, "strong_wolfe"):
            raise ValueError("line_search_fn: expected None or 'strong_wolfe', got "
                             f"{group['line_search_fn']!r}")

    # ------------------------------------------- all parameters as one flat vector
    def _scalar(self, a, b=None):
        """``a`` (a reduction's result) or the dot product a·b, as a host scalar of the
        parameters' dtype (what PyTorch keeps as a 0-d tensor)."""
        value = a if b is None else xp.dot(a, b)
        return self._dtype.type(value.item())

    def _gather_flat_grad(self):
        views = [xp.zeros(p.numel(), dtype=self._dtype) if p.grad is None
                 else p.grad._array.reshape(-1) for p in self._params]
        return xp.concatenate(views).astype(self._dtype, copy=False)

    def _add_grad(self, step_size, update):
        offset = 0
        for p in self._params:
            n = p.numel()
            p._array[...] += step_size * update[offset:offset + n].reshape(p.shape)
            p._write_()  # written in place: graphs that saved it are stale
            offset += n

    def _clone_param(self):
        return [p._array.copy() for p in self._params]

    def _set_param(self, params_data):
        for p, data in zip(self._params, params_data):
            p._array[...] = data
            p._write_()

    def _directional_evaluate(self, closure, x, t, d):
        self._add_grad(t, d)
        loss = _loss_value(_call_closure(closure))
        flat_grad = self._gather_flat_grad()
        self._set_param(x)
        return loss, flat_grad

    def step(self, closure):
        """Up to ``max_iter`` L-BFGS iterations; ``closure()`` re-evaluates the model
        (zero_grad, forward, backward) and returns the loss. Returns the first loss."""
        if closure is None:
            raise TypeError("closure: LBFGS.step needs a closure that re-evaluates the "
                            "model and returns the loss, got None")
        group = self.param_groups[0]
        lr = float(group["lr"])
        max_iter = group["max_iter"]
        max_eval = group["max_eval"]
        tolerance_grad = group["tolerance_grad"]
        tolerance_change = group["tolerance_change"]
        line_search_fn = group["line_search_fn"]
        history_size = group["history_size"]
        scalar = self._scalar

        # L-BFGS's state is global: it is kept as the first parameter's, as in PyTorch
        state = self.state.setdefault(self._params[0], {})
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)

        orig_loss = _call_closure(closure)
        loss = _loss_value(orig_loss)
        current_evals = 1
        state["func_evals"] += 1

        flat_grad = self._gather_flat_grad()
        opt_cond = scalar(xp.abs(flat_grad).max()) <= tolerance_grad
        if opt_cond:
            return orig_loss

        d = state.get("d")
        t = state.get("t")
        old_dirs = state.get("old_dirs")
        old_stps = state.get("old_stps")
        ro = state.get("ro")
        H_diag = state.get("H_diag")
        prev_flat_grad = state.get("prev_flat_grad")
        prev_loss = state.get("prev_loss")

        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            state["n_iter"] += 1

            # the descent direction
            if state["n_iter"] == 1:
                d = -flat_grad
                old_dirs, old_stps, ro = [], [], []
                H_diag = 1
            else:
                y = flat_grad - prev_flat_grad
                s = d * t
                ys = scalar(y, s)
                if ys > 1e-10:
                    if len(old_dirs) == history_size:  # forget the oldest pair
                        old_dirs.pop(0)
                        old_stps.pop(0)
                        ro.pop(0)
                    old_dirs.append(y)
                    old_stps.append(s)
                    ro.append(1.0 / ys)
                    H_diag = ys / scalar(y, y)  # scale of the initial inverse Hessian
                num_old = len(old_dirs)
                if "al" not in state:
                    state["al"] = [None] * history_size
                al = state["al"]
                # the two-loop recursion, on one buffer
                q = -flat_grad
                for i in range(num_old - 1, -1, -1):
                    al[i] = scalar(old_stps[i], q) * ro[i]
                    q += (-al[i]) * old_dirs[i]
                d = r = q * H_diag
                for i in range(num_old):
                    be_i = scalar(old_dirs[i], r) * ro[i]
                    r += (al[i] - be_i) * old_stps[i]

            if prev_flat_grad is None:
                prev_flat_grad = flat_grad.copy()
            else:
                prev_flat_grad[...] = flat_grad
            prev_loss = loss

            # the step length
            if state["n_iter"] == 1:
                t = min(1.0, 1.0 / scalar(xp.abs(flat_grad).sum())) * lr
            else:
                t = lr
            gtd = scalar(flat_grad, d)  # the directional derivative
            if gtd > -tolerance_change:
                break

            ls_func_evals = 0
            if line_search_fn is not None:
                x_init = self._clone_param()

                def obj_func(x, t, d):
                    return self._directional_evaluate(closure, x, t, d)

                loss, flat_grad, t, ls_func_evals = _strong_wolfe(
                    obj_func, scalar, x_init, t, d, loss, flat_grad, gtd,
                    max_ls=max_eval - current_evals)
                self._add_grad(t, d)
                opt_cond = scalar(xp.abs(flat_grad).max()) <= tolerance_grad
            else:
                # a fixed step; the function is evaluated again unless this is the last
                # iteration (in a stochastic setting that evaluation is of no use)
                self._add_grad(t, d)
                if n_iter != max_iter:
                    loss = _loss_value(_call_closure(closure))
                    flat_grad = self._gather_flat_grad()
                    opt_cond = scalar(xp.abs(flat_grad).max()) <= tolerance_grad
                    ls_func_evals = 1

            current_evals += ls_func_evals
            state["func_evals"] += ls_func_evals

            # the conditions to stop
            if n_iter == max_iter:
                break
            if current_evals >= max_eval:
                break
            if opt_cond:
                break
            if scalar(xp.abs(d * t).max()) <= tolerance_change:  # no progress
                break
            if abs(loss - prev_loss) < tolerance_change:
                break

        state["d"] = d
        state["t"] = t
        state["old_dirs"] = old_dirs
        state["old_stps"] = old_stps
        state["ro"] = ro
        state["H_diag"] = H_diag
        state["prev_flat_grad"] = prev_flat_grad
        state["prev_loss"] = prev_loss
        return orig_loss

    def _load_state_value(self, p, where, name, value):
        """L-BFGS's state: ints, floats and None as they are, lists element by element,
        0-d values as scalars of the parameters' dtype, and vectors of every parameter's
        element as flat device arrays."""
        if value is None or isinstance(value, (bool, numbers.Integral)):
            return value
        if isinstance(value, float) and not isinstance(value, np.generic):
            return value
        if isinstance(value, (list, tuple)):
            return [self._load_state_value(p, f"{where}[{k}]", name, v)
                    for k, v in enumerate(value)]
        array = _as_array(value)
        if array.ndim == 0:
            return self._dtype.type(backend.to_host(array).item())
        if tuple(array.shape) != (self._numel,):
            raise ValueError(f"{where}: expected shape ({self._numel},) (every parameter's "
                             f"element) or a scalar, got {tuple(array.shape)}")
        return xp.array(backend.to_device(array, self._dtype), copy=True)


from . import lr_scheduler  # noqa: E402  (it needs Optimizer)

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "LBFGS",
           "lr_scheduler"]
