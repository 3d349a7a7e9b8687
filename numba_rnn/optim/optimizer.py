"""The base class ``Optimizer`` (``torch.optim.Optimizer``): parameter groups,
per-parameter state, ``zero_grad``, ``step`` and PyTorch-format state dicts; and the
helpers the optimizers share: calling the closure, host copies of state values, flat
views of storage for the update kernels, the common hyper-parameter checks and
zero-filled state arrays.
"""
import copy

import numpy as np

from .. import backend
from ..backend import xp
from .._core.checks import check_bool, check_real
from ..ops.convert import state_array as _as_array
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


def _zeros(p):
    return xp.zeros(p.shape, dtype=p.dtype)


def _zeros_if_missing(state, name, p):
    """The state array ``name``, allocated as zeros when the state lacks it (the first
    step, or an option switched on for a state that was made without it)."""
    if state.get(name) is None:
        state[name] = _zeros(p)
    return state[name]
