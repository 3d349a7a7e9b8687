"""softmax and log_softmax along a dimension, computed stably (x - max first), each with
its derivative beside it: ``Tensor.softmax``, ``nr.softmax`` and ``F.softmax`` are these."""
import warnings

from .. import backend
from .._core.checks import check_int
from .._core.dtypes import dtype_of
from ..autograd.engine import record
from ..backend import xp
from .convert import as_float_tensor

__all__ = ["softmax", "log_softmax"]


def _softmax_dim(x, dim, name, stacklevel):
    if dim is None:
        warnings.warn(f"Implicit dimension choice for {name} has been deprecated. Change "
                      "the call to include dim=X as an argument.", stacklevel=stacklevel)
        dim = 0 if x.ndim in (0, 1, 3) else 1  # PyTorch's legacy implicit choice
    check_int("dim", dim, -max(x.ndim, 1))
    rank = max(x.ndim, 1)  # a 0-d tensor has the one dimension 0 (or -1), as in PyTorch
    if not -rank <= dim < rank:
        raise ValueError(f"dim: expected a dimension in [{-rank}, {rank}), got {dim}")
    return dim % rank


def _softmax_input(input, dim, dtype, name, stacklevel):
    """The input, the array to compute on (cast to ``dtype``; 0-d as 1-d), and the dim."""
    x = as_float_tensor(input, "input")
    dim = _softmax_dim(x, dim, name, stacklevel + 1)
    a = x._array
    if dtype is not None:
        dtype = dtype_of(dtype, "dtype", "f")
        if dtype not in backend.FLOAT_DTYPES:
            raise TypeError(f"dtype: expected float32 or float64, got {dtype}")
        a = a.astype(dtype)
    return x, a.reshape(a.shape or (1,)), dim


def log_softmax(input, dim=None, _stacklevel=3, dtype=None):
    """log(softmax(x)) along ``dim``, computed stably as x - max - log Σ exp(x - max);
    ``dtype`` casts the input first."""
    x, a, dim = _softmax_input(input, dim, dtype, "log_softmax", _stacklevel)
    shifted = a - a.max(axis=dim, keepdims=True)
    y = shifted - xp.log(xp.exp(shifted).sum(axis=dim, keepdims=True))

    def backward(g):
        g = g.reshape(y.shape)
        return ((g - xp.exp(y) * g.sum(axis=dim, keepdims=True)).astype(x.dtype, copy=False)
                .reshape(x.shape),)

    return record(y.reshape(x.shape), (x,), backward)


def softmax(input, dim=None, _stacklevel=3, dtype=None):
    """exp(x - max) / Σ exp(x - max) along ``dim``; ``dtype`` casts the input first."""
    x, a, dim = _softmax_input(input, dim, dtype, "softmax", _stacklevel)
    e = xp.exp(a - a.max(axis=dim, keepdims=True))
    y = e / e.sum(axis=dim, keepdims=True)

    def backward(g):
        g = g.reshape(y.shape)
        return ((y * (g - (g * y).sum(axis=dim, keepdims=True))).astype(x.dtype, copy=False)
                .reshape(x.shape),)

    return record(y.reshape(x.shape), (x,), backward)
