"""Module and Parameter, in the image of ``torch.nn``."""
from collections import OrderedDict, namedtuple

import numpy as np

from .. import backend
from ..tensor import Tensor

IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class Parameter(Tensor):
    """A tensor that a Module registers as one of its parameters."""

    def __init__(self, data, requires_grad=True):
        if isinstance(data, Tensor):
            data = data.data
        super().__init__(backend.to_device(data), requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


class Module:
    """Base class of layers and models: subclass it, assign Parameters and Modules as
    attributes in ``__init__`` (after ``super().__init__()``), define ``forward``."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError(
                f"cannot assign {name!r} before Module.__init__() is called"
            )
        for registry in (self._parameters, self._modules):
            registry.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        else:
            object.__setattr__(self, name, value)
            return
        self.__dict__.pop(name, None)

    def __getattr__(self, name):
        # Only called when normal lookup fails: parameters and submodules live in registries.
        for registry in ("_parameters", "_modules"):
            entries = self.__dict__.get(registry)
            if entries is not None and name in entries:
                return entries[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name):
        for registry in (self._parameters, self._modules):
            if name in registry:
                del registry[name]
                return
        object.__delattr__(self, name)

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    # ---------------------------------------------------------------- traversal
    def named_modules(self, prefix=""):
        yield prefix, self
        for name, module in self._modules.items():
            yield from module.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self):
        for _, module in self.named_modules():
            yield module

    def children(self):
        yield from self._modules.values()

    def named_parameters(self, prefix="", recurse=True):
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        seen = set()
        for module_prefix, module in modules:
            for name, param in module._parameters.items():
                if id(param) in seen:
                    continue
                seen.add(id(param))
                yield (f"{module_prefix}.{name}" if module_prefix else name), param

    def parameters(self, recurse=True):
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    # ------------------------------------------------------------------- state
    def state_dict(self):
        """Parameter name → a host NumPy copy of its value."""
        return OrderedDict((name, p.numpy()) for name, p in self.named_parameters())

    def load_state_dict(self, state_dict, strict=True):
        """Copy values into the parameters by name. Values may be NumPy or CuPy arrays,
        Tensors, or anything ``numpy.asarray`` takes (a PyTorch state dict's CPU tensors).
        Every key and shape is checked before anything is copied: a refused call changes
        nothing."""
        params = dict(self.named_parameters())
        missing = [name for name in params if name not in state_dict]
        unexpected = [name for name in state_dict if name not in params]
        if strict and (missing or unexpected):
            raise ValueError(
                f"state_dict: expected the keys of {type(self).__name__}'s parameters; "
                f"missing {missing}, unexpected {unexpected}"
            )
        values = {}
        for name, param in params.items():
            if name not in state_dict:
                continue
            value = _as_array(state_dict[name])
            if tuple(value.shape) != param.shape:
                raise ValueError(
                    f"state_dict[{name!r}]: expected shape {param.shape}, "
                    f"got {tuple(value.shape)}"
                )
            if value.dtype.kind not in "fiub":
                raise TypeError(
                    f"state_dict[{name!r}]: expected real numbers, got dtype {value.dtype}"
                )
            values[name] = value
        for name, value in values.items():
            params[name].data[...] = backend.to_device(value, params[name].dtype)
            params[name]._version += 1
        return IncompatibleKeys(missing, unexpected)

    def zero_grad(self, set_to_none=True):
        for param in self.parameters():
            if set_to_none or param.grad is None:
                param.grad = None
            else:
                param.grad.data[...] = 0

    def train(self, mode=True):
        for module in self.modules():
            object.__setattr__(module, "training", bool(mode))
        return self

    def eval(self):
        return self.train(False)

    def extra_repr(self):
        return ""

    def __repr__(self):
        lines = [f"({name}): " + repr(m).replace("\n", "\n  ") for name, m in self._modules.items()]
        if not lines:
            return f"{type(self).__name__}({self.extra_repr()})"
        return f"{type(self).__name__}(\n  " + "\n  ".join(lines) + "\n)"


def _as_array(value):
    if isinstance(value, Tensor):
        return value.data
    if backend.is_device_array(value):
        return value
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor
        value = value.detach().cpu()
    return np.asarray(value)
