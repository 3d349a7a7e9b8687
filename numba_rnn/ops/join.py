"""Joining ops, each with its derivative beside it: ``cat`` (``concat``,
``concatenate``), ``stack``, ``hstack``, ``vstack`` and ``where``; ``nr.stack`` and the
data loader's collation are the same ``stack``."""
import builtins

import numpy as np

from ..autograd.engine import is_tensor, record, wrap
from ..backend import xp
from .convert import as_tensor, mask_array, operand, promote, unbroadcast

__all__ = ["cat", "concat", "concatenate", "stack", "hstack", "vstack", "where"]


def _tensors(tensors, name):
    if is_tensor(tensors) or not isinstance(tensors, (list, tuple)):
        raise TypeError(f"{name}: expected a list or tuple of Tensors, got "
                        f"{type(tensors).__name__}")
    if not tensors:
        raise ValueError(f"{name}: expected a non-empty list of Tensors")
    tensors = [as_tensor(t, name) for t in tensors]
    dtype = tensors[0].dtype
    for t in tensors[1:]:
        dtype = promote(wrap(xp.zeros((1,), dtype)), t)
    return tensors, dtype


def cat(tensors, dim=0, out=None):
    """Join tensors along an existing dimension (1-D empty tensors are skipped, as in
    PyTorch)."""
    tensors, dtype = _tensors(tensors, "tensors")
    joined = [t for t in tensors if not (t.ndim == 1 and t.shape[0] == 0)] or tensors[:1]
    ndim = joined[0].ndim
    if ndim == 0:
        raise ValueError("tensors: zero-dimensional tensors cannot be concatenated")
    d = dim % ndim if -ndim <= dim < ndim else None
    if d is None:
        raise ValueError(f"dim: expected a dimension in [{-ndim}, {ndim}), got {dim}")
    for t in joined:
        if t.ndim != ndim or t.shape[:d] + t.shape[d + 1:] != joined[0].shape[:d] + \
                joined[0].shape[d + 1:]:
            raise ValueError(f"tensors: expected matching shapes except in dimension {d}, "
                             f"got {[x.shape for x in joined]}")
    sizes = [t.shape[d] for t in joined]
    bounds = np.cumsum(sizes)[:-1].tolist()
    data = xp.concatenate([t._array.astype(dtype, copy=False) for t in joined], axis=d)
    return record(data, joined, lambda g: tuple(xp.split(g, bounds, axis=d)), saves=False)


concat = concatenate = cat


def stack(tensors, dim=0, out=None):
    """Join tensors of one shape along a new dimension."""
    tensors, dtype = _tensors(tensors, "tensors")
    shape = tensors[0].shape
    if builtins.any(t.shape != shape for t in tensors):
        raise ValueError(f"tensors: expected tensors of one shape, got "
                         f"{[t.shape for t in tensors]}")
    ndim = len(shape) + 1
    if not -ndim <= dim < ndim:
        raise ValueError(f"dim: expected a dimension in [{-ndim}, {ndim}), got {dim}")
    d = dim % ndim
    data = xp.stack([t._array.astype(dtype, copy=False) for t in tensors], axis=d)
    return record(data, tensors,
                   lambda g: tuple(xp.take(g, k, axis=d) for k in range(len(tensors))),
                   saves=False)


def hstack(tensors):
    tensors, _ = _tensors(tensors, "tensors")
    return cat(tensors, 0 if tensors[0].ndim == 1 else 1)


def vstack(tensors):
    tensors, _ = _tensors(tensors, "tensors")
    return cat([t.reshape(1, -1) if t.ndim == 1 else t for t in tensors], 0)


def where(condition, input=None, other=None):
    """``input`` where ``condition`` is true, else ``other`` (either may be a number);
    with the condition alone, the indices of its true elements (a tuple, one per
    dimension)."""
    mask = mask_array(condition, "condition")
    if input is None and other is None:
        return tuple(wrap(i.astype(np.int64)) for i in xp.nonzero(mask))
    if not is_tensor(input):
        if not is_tensor(other):
            raise TypeError("where: expected input or other to be a Tensor")
        input = operand(other, input)
    other = operand(input, other)
    dtype = promote(input, other)
    x, y = input._array.astype(dtype, copy=False), other._array.astype(dtype, copy=False)
    data = xp.where(mask, x, y)
    sx, sy = x.shape, y.shape
    return record(data, (input, other),
                   lambda g: (unbroadcast(xp.where(mask, g, 0), sx),
                              unbroadcast(xp.where(mask, 0, g), sy)), saves=False)
