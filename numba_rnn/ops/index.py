"""Indexing, each with its derivative beside it: ``t[key]`` (``getitem``), ``t[key] = v``
(``setitem``, recorded as an in-place write), ``gather``, ``index_select``,
``masked_select``, and ``take_along`` (what gather, max/min along a dim, topk and sort
pick with). A gradient is scattered back with addition where an index may pick an
element twice."""
import numbers

import numpy as np

from .. import backend
from ..autograd.engine import is_tensor, record, wrap
from ..backend import xp
from .convert import array_of, as_tensor, axes, index_array, mask_array, operand, unbroadcast
from .inplace import in_place

__all__ = ["gather", "index_select", "masked_select"]


def along_key(index, dim):
    """The index tuple that picks, for every position p of ``index``, the element at p
    with its coordinate along ``dim`` replaced by index[p]."""
    key = [xp.arange(n).reshape(tuple(-1 if k == i else 1 for k in range(index.ndim)))
           for i, n in enumerate(index.shape)]
    key[dim] = index
    return tuple(key)


def index_key(key):
    """``key`` with Tensors, lists and host arrays as device arrays; and whether it
    indexes with arrays (then an element may be picked twice, and the gradient is
    scattered with addition)."""
    parts = key if isinstance(key, tuple) else (key,)
    out, advanced = [], False
    for part in parts:
        if is_tensor(part):
            if part.ndim == 0 and part.dtype.kind in "iu":
                out.append(int(part.item()))
                continue
            if part.dtype.kind not in "biu":
                raise TypeError(f"index: expected integer or boolean tensors, got dtype "
                                f"{part.dtype}")
            out.append(part._array)
            advanced = True
        elif isinstance(part, (bool, np.bool_)):
            out.append(bool(part))
            advanced = True
        elif isinstance(part, numbers.Integral):
            out.append(int(part))
        elif part is None or part is Ellipsis or isinstance(part, slice):
            out.append(part)
        elif isinstance(part, (list, np.ndarray)) or backend.is_device_array(part):
            array = array_of(part, "index")
            if array.dtype.kind not in "biu":
                raise TypeError(f"index: expected integers or booleans, got dtype "
                                f"{array.dtype}")
            out.append(array)
            advanced = True
        else:
            raise TypeError(f"index: expected ints, slices, None, ..., or integer or boolean "
                            f"tensors, got {type(part).__name__}")
    return tuple(out), advanced


def _scattered(shape, dtype, key, g, advanced=True):
    """A zero array of ``shape`` with ``g`` written (added, when ``advanced``) at
    ``key``."""
    full = xp.zeros(shape, dtype=dtype)
    if advanced:
        backend.scatter_add(full, key, g)  # an index may select an element twice
    else:
        full[key] = g
    return full


def getitem(input, key):
    """``input[key]`` (``Tensor.__getitem__``)."""
    input = as_tensor(input, "input")
    key, advanced = index_key(key)
    shape, dtype = input.shape, input.dtype
    try:
        data = input._array[key]
    except IndexError as exc:
        raise IndexError(f"index: {exc} (tensor of shape {shape})") from None
    return record(data, (input,), lambda g: (_scattered(shape, dtype, key, g, advanced),),
                  saves=False)


def setitem(input, key, value):
    """``input[key] = value`` (``Tensor.__setitem__``), recorded: the gradient of the old
    values is cut where they were overwritten, and ``value`` gets the gradient of the
    elements it wrote."""
    input = as_tensor(input, "input")
    key, _ = index_key(key)
    value = operand(input, value)
    try:
        target_shape = input._array[key].shape
    except IndexError as exc:
        raise IndexError(f"index: {exc} (tensor of shape {input.shape})") from None
    value_shape = value.shape

    def compute(x):
        y = x.copy()
        y[key] = value._array.astype(x.dtype, copy=False)
        return y

    def backward(g):
        kept = g.copy()
        kept[key] = 0
        return kept, unbroadcast(xp.broadcast_to(g[key], target_shape), value_shape)

    in_place(input, compute, (value,), backward)


def take_along(input, index, dim):
    """input[..., index, ...] along ``dim`` for an integer array ``index`` of input's
    rank (sizes may be smaller than input's in the other dimensions, as gather
    allows); the gradient is scattered back with addition."""
    key = along_key(index, dim)
    shape, dtype = input.shape, input.dtype
    return record(input._array[key], (input,), lambda g: (_scattered(shape, dtype, key, g),),
                  saves=False)


def gather(input, dim, index):
    input = as_tensor(input, "input")
    d = axes(dim, input.ndim)[0]
    index = index_array(index, "index")
    if index.ndim != input.ndim:
        raise ValueError(f"index: expected {input.ndim} dimensions as input has, got "
                         f"shape {tuple(index.shape)}")
    return take_along(input, index, d)


def index_select(input, dim, index):
    input = as_tensor(input, "input")
    d = axes(dim, input.ndim)[0]
    index = index_array(index, "index")
    if index.ndim > 1:
        raise ValueError(f"index: expected a 1-D tensor, got shape {tuple(index.shape)}")
    return getitem(input, (slice(None),) * d + (index.reshape(-1),))


def masked_select(input, mask):
    input = as_tensor(input, "input")
    mask = xp.broadcast_to(mask_array(mask, "mask"), input.shape)
    return getitem(input, wrap(mask))
