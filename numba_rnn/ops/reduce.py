"""Reductions, each with its derivative beside it: sum, mean, var, std, norm, logsumexp,
cumsum, prod, max/min (over everything, or along a dim with indices), amax/amin,
argmax/argmin, topk, sort, argsort, all and any. Along a dim, max/min, topk and sort
return ``ValuesIndices`` (values, indices), the values picked by ``index.take_along``
(their gradient goes to the picked elements); over everything, max/min and amax/amin
split the gradient evenly among ties, as PyTorch."""
import numbers
from collections import namedtuple

import numpy as np

from .._core.dtypes import dtype_of
from ..autograd.engine import is_tensor, record, wrap
from ..backend import xp
from . import arith, elementwise, movement
from .convert import as_tensor, axes as _axes
from .index import take_along

__all__ = ["sum", "mean", "var", "std", "norm", "logsumexp", "cumsum", "prod", "max", "min",
           "amax", "amin", "argmax", "argmin", "topk", "sort", "argsort", "all", "any"]

ValuesIndices = namedtuple("ValuesIndices", ["values", "indices"])
ValuesIndices.__doc__ = "What max/min along a dim, topk and sort return: (values, indices)."


def _kept_shape(shape, axes):
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


def _dropped_shape(shape, axes):
    return tuple(n for i, n in enumerate(shape) if i not in axes)


def sum(input, dim=None, keepdim=False, dtype=None, axis=None, keepdims=None):
    input = as_tensor(input, "input")
    axes = _axes(dim if axis is None else axis, input.ndim)
    keep = keepdim if keepdims is None else keepdims
    shape = input.shape
    x = input._array
    if dtype is not None:
        x = x.astype(dtype_of(dtype))
    elif x.dtype.kind in "biu":
        x = x.astype(np.int64)  # PyTorch sums integers and booleans as int64

    def backward(g):
        if not keep:
            g = g.reshape(_kept_shape(shape, axes))
        return (xp.broadcast_to(g, shape),)

    return record(x.sum(axis=axes, keepdims=keep), (input,), backward, saves=False)


def mean(input, dim=None, keepdim=False, dtype=None, axis=None, keepdims=None):
    input = as_tensor(input, "input")
    if input.dtype.kind != "f" and dtype is None:
        raise TypeError(f"mean: expected a floating input, got dtype {input.dtype} "
                        "(pass dtype= or convert with .float())")
    axes = _axes(dim if axis is None else axis, input.ndim)
    keep = keepdim if keepdims is None else keepdims
    source = input if dtype is None else input.to(dtype)
    shape = source.shape
    count = 1
    for i in axes:
        count *= shape[i]
    count = source.dtype.type(count)  # x / count keeps x's dtype

    def backward(g):
        if not keep:
            g = g.reshape(_kept_shape(shape, axes))
        return (xp.broadcast_to(g / count, shape),)

    return record(source._array.sum(axis=axes, keepdims=keep) / count, (source,),
                  backward, saves=False)


def var(input, dim=None, unbiased=None, keepdim=False, correction=None):
    """Variance with Bessel's correction by default (``unbiased=False`` or
    ``correction=0`` for the biased one), as in PyTorch."""
    input = as_tensor(input, "input")
    if isinstance(dim, bool) and unbiased is None:  # var(False): the old positional form
        dim, unbiased = None, dim
    if correction is None:
        correction = 0 if unbiased is False else 1
    axes = _axes(dim, input.ndim)
    count = 1
    for i in axes:
        count *= input.shape[i]
    centred = arith.sub(input, mean(input, axes, keepdim=True))
    return arith.div(sum(arith.mul(centred, centred), axes, keepdim=keepdim),
                     count - correction)


def std(input, dim=None, unbiased=None, keepdim=False, correction=None):
    return elementwise.sqrt(var(input, dim, unbiased, keepdim, correction))


def norm(input, p=2, dim=None, keepdim=False):
    """The p-norm (p = 1, 2, inf, or 'fro') over ``dim`` (all elements when None)."""
    input = as_tensor(input, "input")
    if p == "fro":
        p = 2
    if p == 2:
        return elementwise.sqrt(sum(arith.mul(input, input), dim, keepdim=keepdim))
    if p == 1:
        return sum(elementwise.abs(input), dim, keepdim=keepdim)
    if p == float("inf"):
        return amax(elementwise.abs(input), dim, keepdim=keepdim)
    if isinstance(p, numbers.Real) and p > 0:
        return arith.pow(sum(arith.pow(elementwise.abs(input), p), dim, keepdim=keepdim),
                         1.0 / p)
    raise ValueError(f"p: expected a positive number, inf or 'fro', got {p!r}")


def logsumexp(input, dim, keepdim=False):
    input = as_tensor(input, "input")
    axes = _axes(dim, input.ndim)
    x = input._array
    top = x.max(axis=axes, keepdims=True)
    top = xp.where(xp.isfinite(top), top, 0)
    y = xp.log(xp.exp(x - top).sum(axis=axes, keepdims=True)) + top
    out = y if keepdim else y.reshape(_dropped_shape(x.shape, axes))
    return record(out, (input,), lambda g: (
        (g if keepdim else g.reshape(y.shape)) * xp.exp(x - y),))


def cumsum(input, dim):
    input = as_tensor(input, "input")
    d = _axes(dim, input.ndim)[0]
    return record(xp.cumsum(input._array, axis=d), (input,),
                  lambda g: (xp.flip(xp.cumsum(xp.flip(g, d), axis=d), d),), saves=False)


def prod(input, dim=None, keepdim=False):
    input = as_tensor(input, "input")
    axes = _axes(dim, input.ndim)
    x = input._array
    y = x.prod(axis=axes, keepdims=True)
    out = y if keepdim else y.reshape(_dropped_shape(x.shape, axes))

    def backward(g):
        g = g if keepdim else g.reshape(y.shape)
        # the product of the other elements, zeros allowed
        moved = xp.moveaxis(x, axes, tuple(range(len(axes)))).reshape(
            (-1,) + _dropped_shape(x.shape, axes))
        left = xp.cumprod(xp.concatenate([xp.ones_like(moved[:1]), moved[:-1]]), axis=0)
        right = xp.flip(xp.cumprod(xp.concatenate(
            [xp.ones_like(moved[:1]), xp.flip(moved, 0)[:-1]]), axis=0), 0)
        others = xp.moveaxis((left * right).reshape(
            tuple(x.shape[i] for i in axes) + moved.shape[1:]),
            tuple(range(len(axes))), axes)
        return (g * others,)

    return record(out, (input,), backward)


def _extreme(input, dim, keepdim, largest):
    """max/min: over everything (the gradient split evenly among ties, as in
    PyTorch) or along ``dim`` (values and indices; the gradient goes to the index)."""
    x = input._array
    if dim is None:
        value = x.max() if largest else x.min()
        if input.dtype.kind != "f":
            return wrap(xp.asarray(value))
        ties = (x == value)
        return record(xp.asarray(value), (input,),
                      lambda g: (g * ties / ties.sum().astype(x.dtype),), saves=False)
    d = _axes(dim, input.ndim)[0]
    if x.size == 0:
        raise ValueError(f"dim: cannot reduce an empty tensor of shape {input.shape}")
    index = (xp.argmax if largest else xp.argmin)(x, axis=d)
    index = xp.expand_dims(index, d)
    values = take_along(input, index, d)
    if not keepdim:
        values, index = movement.squeeze(values, d), index.squeeze(d)
    return ValuesIndices(values, wrap(index.astype(np.int64)))


def max(input, dim=None, keepdim=False):
    input = as_tensor(input, "input")
    if is_tensor(dim):
        return arith.maximum(input, dim)
    return _extreme(input, dim, keepdim, True)


def min(input, dim=None, keepdim=False):
    input = as_tensor(input, "input")
    if is_tensor(dim):
        return arith.minimum(input, dim)
    return _extreme(input, dim, keepdim, False)


def extreme_sum(input, dim, keepdim, largest):
    """amax/amin along ``dim``: the gradient split evenly among ties."""
    axes = _axes(dim, input.ndim)
    x = input._array
    y = (x.max if largest else x.min)(axis=axes, keepdims=True)
    out = y if keepdim else y.reshape(_dropped_shape(x.shape, axes))
    if input.dtype.kind != "f":
        return wrap(out)
    ties = (x == y)
    count = ties.sum(axis=axes, keepdims=True).astype(x.dtype)
    return record(out, (input,), lambda g: (g.reshape(y.shape) * ties / count,), saves=False)


def amax(input, dim=None, keepdim=False):
    input = as_tensor(input, "input")
    if dim is None:
        return _extreme(input, None, False, True)
    return extreme_sum(input, dim, keepdim, True)


def amin(input, dim=None, keepdim=False):
    input = as_tensor(input, "input")
    if dim is None:
        return _extreme(input, None, False, False)
    return extreme_sum(input, dim, keepdim, False)


def _arg_extreme(input, dim, keepdim, find):
    input = as_tensor(input, "input")
    if dim is None:
        index = xp.asarray(find(input._array.reshape(-1)))
        return wrap((index.reshape((1,) * input.ndim) if keepdim else index)
                    .astype(np.int64))
    d = _axes(dim, input.ndim)[0]
    index = find(input._array, axis=d)
    if keepdim:
        index = xp.expand_dims(index, d)
    return wrap(xp.asarray(index).astype(np.int64))


def argmax(input, dim=None, keepdim=False):
    return _arg_extreme(input, dim, keepdim, xp.argmax)


def argmin(input, dim=None, keepdim=False):
    return _arg_extreme(input, dim, keepdim, xp.argmin)


def topk(input, k, dim=-1, largest=True, sorted=True):
    input = as_tensor(input, "input")
    d = _axes(dim, input.ndim)[0]
    if not 0 <= k <= input.shape[d]:
        raise ValueError(f"k: expected an int in [0, {input.shape[d]}], got {k}")
    x = input._array
    order = xp.argsort(-x if largest else x, axis=d, kind="stable")
    index = xp.take(order, xp.arange(k), axis=d)
    return ValuesIndices(take_along(input, index, d), wrap(index.astype(np.int64)))


def sort(input, dim=-1, descending=False, stable=False):
    input = as_tensor(input, "input")
    d = _axes(dim, input.ndim)[0]
    x = input._array
    index = xp.argsort(-x if descending and x.dtype.kind != "b" else x, axis=d,
                       kind="stable")
    if descending and x.dtype.kind == "b":
        index = xp.flip(index, d)
    return ValuesIndices(take_along(input, index, d), wrap(index.astype(np.int64)))


def argsort(input, dim=-1, descending=False, stable=False):
    return sort(input, dim, descending, stable).indices


def all(input, dim=None, keepdim=False):
    input = as_tensor(input, "input")
    return wrap(xp.all(input._array, axis=None if dim is None else _axes(dim, input.ndim),
                       keepdims=keepdim))


def any(input, dim=None, keepdim=False):
    input = as_tensor(input, "input")
    return wrap(xp.any(input._array, axis=None if dim is None else _axes(dim, input.ndim),
                       keepdims=keepdim))
