"""Module and Parameter, in the image of ``torch.nn``."""
import numbers
from collections import OrderedDict, namedtuple

import numpy as np

from .. import backend
from ..backend import xp
from ..ops.convert import state_array as _as_array
from ..tensor import Tensor, _check_device, _to_arguments, dtype_of

IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class Parameter(Tensor):
    """A tensor that a Module registers as one of its parameters; ``Parameter(t)``
    shares ``t``'s storage, as in PyTorch."""

    def __init__(self, data=None, requires_grad=True):
        if data is None:
            data = xp.zeros((0,), dtype=np.float32)
        elif isinstance(data, Tensor):
            data = data._array
        self._init(backend.to_device(data), requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


class Module:
    """Base class of layers and models: subclass it, assign Parameters and Modules as
    attributes in ``__init__`` (after ``super().__init__()``), define ``forward``."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_forward_hooks", OrderedDict())
        object.__setattr__(self, "_forward_pre_hooks", OrderedDict())
        object.__setattr__(self, "training", True)

    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError(
                f"cannot assign {name!r} before Module.__init__() is called"
            )
        if isinstance(value, Parameter):
            self._buffers.pop(name, None)
            self._modules.pop(name, None)
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._parameters.pop(name, None)
            self._buffers.pop(name, None)
            self._modules[name] = value
        elif name in self._buffers and (value is None or isinstance(value, Tensor)):
            self._buffers[name] = value  # assigning a registered buffer keeps it one
        elif name in self._parameters and value is None:
            self._parameters[name] = None
        else:
            for registry in (self._parameters, self._buffers, self._modules):
                registry.pop(name, None)
            object.__setattr__(self, name, value)
            return
        self.__dict__.pop(name, None)

    def __getattr__(self, name):
        # Only called when normal lookup fails: parameters, buffers and submodules live
        # in registries.
        for registry in ("_parameters", "_buffers", "_modules"):
            entries = self.__dict__.get(registry)
            if entries is not None and name in entries:
                return entries[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name):
        for registry in (self._parameters, self._buffers, self._modules):
            if name in registry:
                del registry[name]
                self._non_persistent.discard(name)
                return
        object.__delattr__(self, name)

    def _check_new_name(self, what, name):
        if not isinstance(name, str):
            raise TypeError(f"{what} name: expected a str, got {type(name).__name__}")
        if not name or "." in name:
            raise KeyError(f"{what} name: expected a non-empty name without '.', got {name!r}")
        if name in self.__dict__ and not any(name in r for r in (
                self._parameters, self._buffers, self._modules)):
            raise KeyError(f"attribute {name!r} already exists")

    def register_parameter(self, name, param):
        """Add ``param`` (a Parameter, or None) under ``name``."""
        self._check_new_name("parameter", name)
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"param: expected a Parameter or None, got {type(param).__name__}")
        self._buffers.pop(name, None)
        self._modules.pop(name, None)
        self._parameters[name] = param

    def register_buffer(self, name, tensor, persistent=True):
        """Add a tensor that is state but not a parameter (running statistics, say): it is
        in ``state_dict`` (unless ``persistent=False``) and moves with ``to()``."""
        self._check_new_name("buffer", name)
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"tensor: expected a Tensor or None, got {type(tensor).__name__}")
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent.discard(name)
        else:
            self._non_persistent.add(name)

    def add_module(self, name, module):
        """Add ``module`` (or None) as a submodule under ``name``."""
        self._check_new_name("module", name)
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"module: expected a Module or None, got {type(module).__name__}")
        self._parameters.pop(name, None)
        self._buffers.pop(name, None)
        self._modules[name] = module

    register_module = add_module

    def get_submodule(self, target):
        module = self
        for part in target.split(".") if target else []:
            if part not in module._modules:
                raise AttributeError(f"{type(module).__name__} has no submodule {part!r}")
            module = module._modules[part]
        return module

    # ------------------------------------------------------------------ calling
    def __call__(self, *args, **kwargs):
        for hook in list(self._forward_pre_hooks.values()):
            changed = hook(self, args)
            if changed is not None:
                args = changed if isinstance(changed, tuple) else (changed,)
        result = self.forward(*args, **kwargs)
        for hook in list(self._forward_hooks.values()):
            changed = hook(self, args, result)
            if changed is not None:
                result = changed
        return result

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def register_forward_hook(self, hook):
        """``hook(module, args, output)`` runs after every forward; a value it returns
        replaces the output. Returns a handle whose ``remove()`` takes the hook off."""
        return _HookHandle(self._forward_hooks, hook)

    def register_forward_pre_hook(self, hook):
        """``hook(module, args)`` runs before every forward; a value it returns replaces
        the positional arguments."""
        return _HookHandle(self._forward_pre_hooks, hook)

    # ---------------------------------------------------------------- traversal
    def named_modules(self, memo=None, prefix="", remove_duplicate=True):
        if isinstance(memo, str):  # the old positional call named_modules(prefix)
            memo, prefix = None, memo
        memo = set() if memo is None else memo
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, module in self._modules.items():
            if module is not None:
                yield from module.named_modules(memo, f"{prefix}.{name}" if prefix else name,
                                                remove_duplicate)

    def modules(self):
        for _, module in self.named_modules():
            yield module

    def named_children(self):
        seen = set()
        for name, module in self._modules.items():
            if module is not None and id(module) not in seen:
                seen.add(id(module))
                yield name, module

    def children(self):
        for _, module in self.named_children():
            yield module

    def _named_members(self, registry, prefix, recurse, remove_duplicate=True):
        modules = (self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate)
                   if recurse else [(prefix, self)])
        seen = set()
        for module_prefix, module in modules:
            for name, value in getattr(module, registry).items():
                if value is None or (remove_duplicate and id(value) in seen):
                    continue
                seen.add(id(value))
                yield (f"{module_prefix}.{name}" if module_prefix else name), value

    def named_parameters(self, prefix="", recurse=True, remove_duplicate=True):
        """(dotted name, Parameter) pairs; a parameter shared by several modules (tied
        weights) is listed once, under its first name, unless ``remove_duplicate=False``."""
        yield from self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse=True):
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def named_buffers(self, prefix="", recurse=True, remove_duplicate=True):
        yield from self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse=True):
        for _, buffer in self.named_buffers(recurse=recurse):
            yield buffer

    def apply(self, fn):
        """Call ``fn(module)`` on every submodule (children first) and on this one."""
        for module in self.children():
            module.apply(fn)
        fn(self)
        return self

    # ------------------------------------------------------------------- state
    def _state_items(self):
        """(name, tensor) of every parameter and persistent buffer, shared ones under
        every name, as PyTorch's state_dict keeps them."""
        for prefix, module in self.named_modules(remove_duplicate=False):
            for name, value in module._parameters.items():
                if value is not None:
                    yield (f"{prefix}.{name}" if prefix else name), value
            for name, value in module._buffers.items():
                if value is not None and name not in module._non_persistent:
                    yield (f"{prefix}.{name}" if prefix else name), value

    def state_dict(self, destination=None, prefix="", keep_vars=False):
        """Name → a host NumPy copy of every parameter and persistent buffer (a shared
        parameter under each of its names), in PyTorch's order. ``keep_vars=True`` gives
        the tensors themselves."""
        out = OrderedDict() if destination is None else destination
        for name, value in self._state_items():
            out[prefix + name] = value if keep_vars else value.numpy()
        return out

    def load_state_dict(self, state_dict, strict=True):
        """Copy values into the parameters and buffers by name. Values may be NumPy or
        CuPy arrays, Tensors, or anything ``numpy.asarray`` takes (a PyTorch state dict's
        CPU tensors). Every key and shape is checked before anything is copied: a refused
        call changes nothing. Returns ``(missing_keys, unexpected_keys)``; with
        ``strict=False`` those are allowed."""
        if not hasattr(state_dict, "keys") or not hasattr(state_dict, "__getitem__"):
            raise TypeError(f"state_dict: expected a mapping, got {type(state_dict).__name__}")
        targets = OrderedDict(self._state_items())
        missing = [name for name in targets if name not in state_dict]
        unexpected = [name for name in state_dict if name not in targets]
        if strict and (missing or unexpected):
            raise ValueError(
                f"state_dict: expected the keys of {type(self).__name__}'s parameters and "
                f"buffers; missing {missing}, unexpected {unexpected}"
            )
        values = {}
        for name, target in targets.items():
            if name not in state_dict:
                continue
            value = _as_array(state_dict[name])
            if tuple(value.shape) != target.shape:
                raise ValueError(
                    f"state_dict[{name!r}]: expected shape {target.shape}, "
                    f"got {tuple(value.shape)}"
                )
            if value.dtype.kind not in "fiub":
                raise TypeError(
                    f"state_dict[{name!r}]: expected real numbers, got dtype {value.dtype}"
                )
            values[name] = value
        for name, value in values.items():
            targets[name]._array[...] = backend.to_device(value, targets[name].dtype)
            targets[name]._write_()
        return IncompatibleKeys(missing, unexpected)

    def zero_grad(self, set_to_none=True):
        for param in self.parameters():
            if set_to_none or param.grad is None:
                param.grad = None
            else:
                param.grad._array[...] = 0

    def requires_grad_(self, requires_grad=True):
        for param in self.parameters():
            param.requires_grad_(requires_grad)
        return self

    def train(self, mode=True):
        if not isinstance(mode, (bool, np.bool_)):
            raise TypeError(f"mode: expected True or False, got {type(mode).__name__}")
        for module in self.modules():
            object.__setattr__(module, "training", bool(mode))
        return self

    def eval(self):
        return self.train(False)

    # ------------------------------------------------------- dtypes and devices
    def _apply_dtype(self, dtype):
        """Convert every floating parameter and buffer (and its gradient) to ``dtype`` in
        place: the Parameter objects stay the same, so optimizers built before still hold
        them, as ``torch.nn.Module.to`` does."""
        for module in self.modules():
            for registry in (module._parameters, module._buffers):
                for value in registry.values():
                    if value is None or value.dtype.kind != "f" or value.dtype == dtype:
                        continue
                    value._array = value._array.astype(dtype)
                    value._write_()
                    if value.grad is not None:
                        value.grad._array = value.grad._array.astype(dtype)
            if isinstance(module.__dict__.get("dtype"), np.dtype):
                object.__setattr__(module, "dtype", dtype)  # the recurrent layers' own
        return self

    def to(self, *args, **kwargs):
        """``to(device)``, ``to(dtype)``, ``to(device, dtype)``, ``to(tensor)``, with
        ``dtype=``/``device=`` keywords too: a float dtype converts every floating
        parameter and buffer; a device is numba_rnn's one device, so it changes nothing."""
        dtype = _to_arguments(args, kwargs)
        if dtype is not None:
            if dtype.kind != "f":
                raise TypeError(f"dtype: Module.to expects a floating dtype, got {dtype}")
            self._apply_dtype(dtype)
        return self

    def cuda(self, device=None):
        _check_device(device)
        return self

    def cpu(self):
        return self

    def double(self):
        return self._apply_dtype(np.dtype(np.float64))

    def float(self):
        return self._apply_dtype(np.dtype(np.float32))

    def type(self, dst_type):
        return self._apply_dtype(dtype_of(dst_type, "dst_type", "f"))

    # ------------------------------------------------------------------ display
    def extra_repr(self):
        return ""

    def __repr__(self):
        lines = [f"({name}): " + repr(m).replace("\n", "\n  ") for name, m in self._modules.items()]
        if not lines:
            return f"{type(self).__name__}({self.extra_repr()})"
        return f"{type(self).__name__}(\n  " + "\n  ".join(lines) + "\n)"

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self._parameters) | set(self._buffers)
                      | set(self._modules))


class ModuleList(Module):
    """A list of modules, registered as submodules "0", "1", ..., as ``torch.nn.ModuleList``."""

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def _key(self, index):
        if not isinstance(index, numbers.Integral) or isinstance(index, bool):
            raise TypeError(f"index: expected an int, got {type(index).__name__}")
        n = len(self._modules)
        if not -n <= index < n:
            raise IndexError(f"index {index} is out of range for a ModuleList of {n}")
        return str(index % n)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return ModuleList(list(self._modules.values())[index])
        return self._modules[self._key(index)]

    def __setitem__(self, index, module):
        self.add_module(self._key(index), module)

    def __delitem__(self, index):
        modules = list(self._modules.values())
        del modules[index]
        self._modules.clear()
        for k, module in enumerate(modules):
            self._modules[str(k)] = module

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __iadd__(self, modules):
        return self.extend(modules)

    def append(self, module):
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules):
        for module in modules:
            self.append(module)
        return self

    def insert(self, index, module):
        modules = list(self._modules.values())
        modules.insert(index, module)
        self._modules.clear()
        for k, m in enumerate(modules):
            self.add_module(str(k), m)


class ModuleDict(Module):
    """An ordered dict of modules, registered as submodules under their keys, as
    ``torch.nn.ModuleDict``."""

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key):
        return self._modules[key]

    def __setitem__(self, key, module):
        self.add_module(key, module)

    def __delitem__(self, key):
        del self._modules[key]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def __contains__(self, key):
        return key in self._modules

    def keys(self):
        return self._modules.keys()

    def values(self):
        return self._modules.values()

    def items(self):
        return self._modules.items()

    def pop(self, key):
        return self._modules.pop(key)

    def clear(self):
        self._modules.clear()

    def update(self, modules):
        items = modules.items() if hasattr(modules, "items") else modules
        for key, module in items:
            self[key] = module


class _HookHandle:
    _next_id = 0

    def __init__(self, hooks, hook):
        if not callable(hook):
            raise TypeError(f"hook: expected a callable, got {type(hook).__name__}")
        self._hooks = hooks
        self.id = _HookHandle._next_id
        _HookHandle._next_id += 1
        hooks[self.id] = hook

    def remove(self):
        self._hooks.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()
