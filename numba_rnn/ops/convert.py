"""The one way user values become tensors and arrays for an op: ``as_tensor`` (a Tensor
as is, anything array-like converted as ``nr.tensor`` converts it), and the arrays of
masks and indices; the other operand of a binary op (``operand``); PyTorch's dtype
promotion (``promote``, ``scalar_dtype``) and the reduction of a broadcast gradient to its
input's shape (``unbroadcast``); dims and sizes as arguments (``axes``,
``size_arguments``)."""
import numbers

import numpy as np

from .. import backend
from ..autograd.engine import is_tensor, storage_of, wrap
from ..backend import xp


def as_tensor(value, name="input", dtype=None):
    """``value`` (a Tensor or anything array-like) as a Tensor; with ``dtype``, one of
    that dtype (a TypeError otherwise)."""
    if not is_tensor(value):
        try:
            value = wrap(storage_of(value))
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name}: expected a Tensor or an array, got "
                            f"{type(value).__name__} ({exc})") from None
    if dtype is not None and value.dtype != dtype:
        raise TypeError(f"{name}: expected dtype {dtype}, got {value.dtype}")
    return value


def state_array(value):
    """A value of a state dict (a module's or an optimizer's) as an array: a Tensor's
    storage, a device array as it is, a (torch) tensor or anything else as a host NumPy
    array."""
    if is_tensor(value):
        return value._array
    if backend.is_device_array(value):
        return value
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor
        value = value.detach().cpu()
    return np.asarray(value)


def as_float_tensor(value, name="input"):
    """``value`` as a float32 or float64 Tensor (a TypeError for any other dtype)."""
    value = as_tensor(value, name)
    if value.dtype not in backend.FLOAT_DTYPES:
        raise TypeError(f"{name}: expected a float32 or float64 tensor, got dtype {value.dtype}")
    return value


def array_of(value, name):
    if is_tensor(value):
        return value._array
    if isinstance(value, (list, tuple)):
        return backend.to_device(np.asarray(value))
    return backend.to_device(value)


def mask_array(mask, name):
    """A boolean device array from ``mask`` (a boolean Tensor or array)."""
    array = array_of(mask, name)
    if array.dtype == np.uint8:
        array = array.astype(bool)
    if array.dtype.kind != "b":
        raise TypeError(f"{name}: expected a boolean tensor, got dtype {array.dtype}")
    return array


def index_array(index, name):
    """An integer device array from ``index`` (an integer Tensor, array or list)."""
    array = array_of(index, name)
    if array.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected an integer tensor, got dtype {array.dtype}")
    return array


def scalar_dtype(dtype, value):
    """The dtype of Python number ``value`` in an operation with a tensor of ``dtype``,
    as PyTorch's promotion gives it: a float tensor keeps its dtype; a float number with
    an integer or boolean tensor gives float32; an int with a boolean tensor int64."""
    if dtype.kind == "f" or isinstance(value, (bool, np.bool_)):
        return dtype
    if isinstance(value, numbers.Integral):
        return dtype if dtype.kind in "iu" else np.dtype(np.int64)
    if isinstance(value, numbers.Real):
        return np.dtype(np.float32)
    raise TypeError(f"other: expected a real number, got {type(value).__name__}")


def promote(a, b):
    """The result dtype of an operation on tensors a and b, as PyTorch promotes: the
    higher category (bool < integer < float) wins; within one, a 0-d tensor yields to
    one with dimensions; otherwise NumPy's promotion."""
    da, db = a.dtype, b.dtype
    if da == db:
        return da
    rank = {"b": 0, "u": 1, "i": 1, "f": 2, "c": 3}
    ra, rb = rank[da.kind], rank[db.kind]
    if ra != rb:
        return da if ra > rb else db
    if a.ndim == 0 and b.ndim > 0:
        return db
    if b.ndim == 0 and a.ndim > 0:
        return da
    return np.promote_types(da, db)


def unbroadcast(grad, shape):
    """Sum ``grad`` over the axes that broadcasting added or stretched to reach ``shape``."""
    if grad.shape == tuple(shape):
        return grad
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad


def operand(like, other):
    """``other`` (a Tensor, a Python number, an array or a list) as a Tensor for a binary
    operation with the Tensor ``like``; numbers take PyTorch's dtype (``scalar_dtype``)."""
    if is_tensor(other):
        return other
    if isinstance(other, (numbers.Number, np.bool_)):
        return wrap(xp.asarray(other, dtype=scalar_dtype(like.dtype, other)))
    return wrap(storage_of(other))


def axes(dim, ndim):
    """``dim`` (None, an int or a sequence) as a tuple of non-negative axes."""
    if dim is None:
        return tuple(range(ndim))
    dims = (dim,) if isinstance(dim, numbers.Integral) else tuple(dim)
    return tuple(d % ndim for d in dims)


def size_arguments(size):
    """A shape from creation-function arguments: ``(2, 3)``, ``((2, 3),)`` or ``([2, 3],)``."""
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    for n in size:
        if not isinstance(n, numbers.Integral) or isinstance(n, bool) or n < 0:
            raise ValueError(f"size: expected non-negative ints, got {tuple(size)!r}")
    return tuple(int(n) for n in size)
