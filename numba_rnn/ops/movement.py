"""Movement: ops that change a tensor's shape or the order of its elements, each with its
derivative beside it (reshape/view, flatten/unflatten, transpose/permute/movedim,
squeeze/unsqueeze, expand/repeat, narrow, split/chunk/unbind, flip, clone, contiguous),
and the in-place shape changes (``unsqueeze_``, ...: the tensor takes the new view)."""
import numbers

import numpy as np

from ..autograd.engine import record
from ..backend import xp
from .convert import as_tensor, axes as _axes, unbroadcast
from .index import getitem
from .inplace import become

__all__ = ["reshape", "view", "flatten", "unflatten", "transpose", "swapaxes", "swapdims",
           "t", "permute", "movedim", "squeeze", "unsqueeze", "expand", "broadcast_to",
           "repeat", "narrow", "split", "chunk", "tensor_split", "unbind", "clone", "flip"]


def _sizes(sizes):
    """``(2, 3)``, ``((2, 3),)`` or ``([2, 3],)`` as a tuple."""
    if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
        return tuple(sizes[0])
    return sizes


def reshape(input, *shape):
    input = as_tensor(input, "input")
    shape = _sizes(shape)
    for n in shape:
        if not isinstance(n, numbers.Integral) or isinstance(n, bool):
            raise TypeError(f"shape: expected ints, got {shape!r}")
    original = input.shape
    try:
        data = input._array.reshape(tuple(int(n) for n in shape))
    except ValueError:
        raise ValueError(f"shape: {tuple(shape)} is invalid for a tensor of "
                         f"{input.numel()} elements, shape {original}") from None
    return record(data, (input,), lambda g: (g.reshape(original),), saves=False)


view = reshape


def view_as(input, other):
    return reshape(input, other.shape)


reshape_as = view_as


def flatten(input, start_dim=0, end_dim=-1):
    input = as_tensor(input, "input")
    if input.ndim == 0:
        return reshape(input, 1)
    start, end = (_axes(d, input.ndim)[0] for d in (start_dim, end_dim))
    if start > end:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
    shape = input.shape
    return reshape(input, shape[:start] + (-1,) + shape[end + 1:]) if shape[start:end + 1] \
        else reshape(input, shape[:start] + (1,) + shape[end + 1:])


def unflatten(input, dim, sizes):
    input = as_tensor(input, "input")
    d = _axes(dim, input.ndim)[0]
    return reshape(input, input.shape[:d] + tuple(sizes) + input.shape[d + 1:])


def transpose(input, dim0, dim1):
    input = as_tensor(input, "input")
    if input.ndim == 0:
        return input
    d0, d1 = _axes(dim0, input.ndim)[0], _axes(dim1, input.ndim)[0]
    return record(xp.swapaxes(input._array, d0, d1), (input,),
                  lambda g: (xp.swapaxes(g, d0, d1),), saves=False)


swapaxes = swapdims = transpose


def t(input):
    input = as_tensor(input, "input")
    if input.ndim > 2:
        raise ValueError(f"t(): expected a tensor of at most 2 dimensions, got shape "
                         f"{input.shape}; use transpose(dim0, dim1)")
    return transpose(input, 0, 1) if input.ndim == 2 else input


def permute(input, *dims):
    input = as_tensor(input, "input")
    dims = _sizes(dims)
    axes = tuple(_axes(d, input.ndim)[0] for d in dims)
    if sorted(axes) != list(range(input.ndim)):
        raise ValueError(f"dims: expected a permutation of {input.ndim} dimensions, got "
                         f"{tuple(dims)}")
    inverse = tuple(np.argsort(axes))
    return record(xp.transpose(input._array, axes), (input,),
                  lambda g: (xp.transpose(g, inverse),), saves=False)


def reversed_dims(input):
    """``Tensor.T``: the dimensions in reverse order."""
    input = as_tensor(input, "input")
    return permute(input, *reversed(range(input.ndim)))


def movedim(input, source, destination):
    input = as_tensor(input, "input")
    return record(xp.moveaxis(input._array, source, destination), (input,),
                  lambda g: (xp.moveaxis(g, destination, source),), saves=False)


def contiguous(input, memory_format=None):
    input = as_tensor(input, "input")
    if input._array.flags.c_contiguous:
        return input
    return record(xp.ascontiguousarray(input._array), (input,), lambda g: (g,), saves=False)


def squeeze(input, dim=None):
    input = as_tensor(input, "input")
    if dim is None:
        axes = tuple(i for i, n in enumerate(input.shape) if n == 1)
    else:
        axes = tuple(i for i in _axes(dim, max(input.ndim, 1))
                     if input.ndim and input.shape[i] == 1)
    shape = input.shape
    return record(input._array.reshape(tuple(n for i, n in enumerate(shape) if i not in axes)),
                  (input,), lambda g: (g.reshape(shape),), saves=False)


def unsqueeze(input, dim):
    input = as_tensor(input, "input")
    if not isinstance(dim, numbers.Integral) or not -input.ndim - 1 <= dim <= input.ndim:
        raise ValueError(f"dim: expected an int in [{-input.ndim - 1}, {input.ndim}], "
                         f"got {dim!r}")
    d = dim % (input.ndim + 1)
    return reshape(input, input.shape[:d] + (1,) + input.shape[d:])


def expand(input, *sizes):
    input = as_tensor(input, "input")
    sizes = _sizes(sizes)
    extra = len(sizes) - input.ndim
    if extra < 0:
        raise ValueError(f"sizes: expected at least {input.ndim} sizes, got {sizes}")
    target = tuple(input.shape[i - extra] if n == -1 else int(n) for i, n in enumerate(sizes))
    shape = input.shape
    try:
        data = xp.broadcast_to(input._array, target)
    except ValueError:
        raise ValueError(f"sizes: cannot expand shape {shape} to {target}") from None
    return record(data, (input,), lambda g: (unbroadcast(g, shape),), saves=False)


def expand_as(input, other):
    return expand(input, other.shape)


def broadcast_to(input, shape):
    return expand(input, shape)


def repeat(input, *sizes):
    input = as_tensor(input, "input")
    sizes = _sizes(sizes)
    if len(sizes) < input.ndim:
        raise ValueError(f"sizes: expected at least {input.ndim} repeats, got {sizes}")
    padded = (1,) * (len(sizes) - input.ndim) + input.shape
    shape = input.shape

    def backward(g):
        split = []
        for r, n in zip(sizes, padded):
            split += [r, n]
        return (g.reshape(split).sum(axis=tuple(range(0, len(split), 2))).reshape(shape),)

    return record(xp.tile(input._array.reshape(padded), sizes), (input,), backward,
                  saves=False)


def _slice_along(input, d, start, stop):
    return getitem(input, (slice(None),) * d + (slice(start, stop),))


def narrow(input, dim, start, length):
    input = as_tensor(input, "input")
    d = _axes(dim, input.ndim)[0]
    start = int(start) % input.shape[d] if start < 0 else int(start)
    if start + length > input.shape[d] or length < 0:
        raise ValueError(f"narrow: start {start} + length {length} exceeds dimension "
                         f"{d} of size {input.shape[d]}")
    return _slice_along(input, d, start, start + length)


def split(input, split_size_or_sections, dim=0):
    input = as_tensor(input, "input")
    d = _axes(dim, input.ndim)[0]
    n = input.shape[d]
    if isinstance(split_size_or_sections, numbers.Integral):
        step = int(split_size_or_sections)
        if step <= 0:
            raise ValueError(f"split_size: expected a positive int, got {step}")
        sizes = [min(step, n - s) for s in range(0, n, step)] or [0]
    else:
        sizes = [int(s) for s in split_size_or_sections]
        if sum(sizes) != n:
            raise ValueError(f"split_size_or_sections: expected sizes summing to {n}, "
                             f"got {sizes}")
    parts, start = [], 0
    for size in sizes:
        parts.append(_slice_along(input, d, start, start + size))
        start += size
    return tuple(parts)


def chunk(input, chunks, dim=0):
    input = as_tensor(input, "input")
    if not isinstance(chunks, numbers.Integral) or chunks < 1:
        raise ValueError(f"chunks: expected a positive int, got {chunks!r}")
    n = input.shape[_axes(dim, input.ndim)[0]]
    return split(input, max(-(-n // chunks), 1), dim)


def tensor_split(input, sections, dim=0):
    input = as_tensor(input, "input")
    n = input.shape[_axes(dim, input.ndim)[0]]
    base, extra = divmod(n, sections)
    return split(input, [base + (k < extra) for k in range(sections)], dim)


def unbind(input, dim=0):
    input = as_tensor(input, "input")
    d = _axes(dim, input.ndim)[0]
    return tuple(getitem(input, (slice(None),) * d + (k,)) for k in range(input.shape[d]))


def clone(input, memory_format=None):
    input = as_tensor(input, "input")
    return record(input._array.copy(), (input,), lambda g: (g,), saves=False)


def flip(input, dims):
    input = as_tensor(input, "input")
    axes = _axes(dims, input.ndim)
    return record(xp.flip(input._array, axes), (input,), lambda g: (xp.flip(g, axes),),
                  saves=False)


# ------------------------------------------------------------ in place
def unsqueeze_(input, dim):
    return become(input, unsqueeze(input, dim))


def squeeze_(input, dim=None):
    return become(input, squeeze(input, dim))


def t_(input):
    return become(input, t(input))


def transpose_(input, dim0, dim1):
    return become(input, transpose(input, dim0, dim1))
