"""Optimizers in the image of ``torch.optim``: SGD, Adam and AdamW with PyTorch's update
rules, arguments, defaults and state-dict format. Each parameter's update is one
``numba.cuda`` kernel launch (``kernels/optim.py``) over its flat storage; the bias
corrections, which depend only on the step count, are computed on the host as PyTorch
does.

Usage, as with PyTorch::

    opt = nr.optim.Adam(model.parameters(), lr=1e-3)
    opt.zero_grad(); loss.backward(); opt.step()
"""
import copy
import math

from . import backend
from .backend import xp
from .kernels.optim import adam_kernel, sgd_kernel
from .nn.checks import check_bool, check_real
from .nn.module import _as_array
from .tensor import Tensor

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
        is None, frozen ones among them, are skipped, as in PyTorch); returns closure()'s
        loss."""
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self._update(p, xp.ascontiguousarray(p.grad._array).reshape(-1), group,
                                 self.state.setdefault(p, {}))
                    p._version += 1  # written in place: graphs that saved it are stale
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
                    state[index[id(p)]] = {
                        k: backend.to_host(v).copy() if backend.is_device_array(v) else v
                        for k, v in self.state[p].items()}
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
            converted = {}
            for name, value in entries.items():
                if name == "step":
                    converted[name] = float(_as_array(value))
                    continue
                array = _as_array(value)
                if tuple(array.shape) != p.shape:
                    raise ValueError(f"state_dict['state'][{index}][{name!r}]: expected shape "
                                     f"{p.shape}, got {tuple(array.shape)}")
                converted[name] = xp.array(backend.to_device(array, p.dtype), copy=True)
            new_state[p] = converted
        new_groups = []
        for group, saved in zip(self.param_groups, saved_groups):
            updated = dict(group)
            updated.update({k: copy.deepcopy(v) for k, v in saved.items()
                            if k in self.defaults})
            self._check_group(updated)
            new_groups.append(updated)
        self.param_groups[:] = new_groups
        self.state = new_state

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


__all__ = ["Optimizer", "SGD", "Adam", "AdamW"]
