"""Functions in the image of ``torch.nn.functional``: layers, activations and losses,
each recorded in the autograd graph as one operation with its gradient written out.

Shapes: ``linear`` maps (*, in) to (*, out); ``embedding`` maps integer indices (*) to
(*, E); ``log_softmax``, ``nll_loss`` and ``cross_entropy`` take the classes on dim 1 of
(N, C) or (N, C, d1, ...), or on dim 0 of an unbatched (C,), with integer targets (N),
(N, d1, ...) or ().
"""
import numpy as np

from .. import backend, random
from ..backend import xp
from ..kernels.layers import embedding_backward
from ..tensor import Tensor, _record, _to_storage, _wrap
from .checks import check_bool, check_choice, check_int, check_probability

REDUCTIONS = ("mean", "sum", "none")


def as_tensor(value, name, dtype=None):
    """``value`` (a Tensor or anything array-like) as a Tensor; with ``dtype``, one of
    that dtype (a TypeError otherwise)."""
    if not isinstance(value, Tensor):
        try:
            value = _wrap(_to_storage(value))
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name}: expected a Tensor or an array, got "
                            f"{type(value).__name__} ({exc})") from None
    if dtype is not None and value.dtype != dtype:
        raise TypeError(f"{name}: expected dtype {dtype}, got {value.dtype}")
    return value


def _as_float_tensor(value, name):
    value = as_tensor(value, name)
    if value.dtype not in backend.FLOAT_DTYPES:
        raise TypeError(f"{name}: expected a float32 or float64 tensor, got dtype {value.dtype}")
    return value


def _as_indices(value, name, upper, allowed=None):
    """Integer device indices in [0, upper) (or equal to ``allowed``), checked, as a
    contiguous int64 array (a strided view such as ``ids[:, c]`` is copied: kernels take
    contiguous arrays)."""
    data = value._array if isinstance(value, Tensor) else _to_storage(value)
    if data.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected integer indices, got dtype {data.dtype}")
    bad = (data < 0) | (data >= upper)
    if allowed is not None:
        bad &= data != allowed
    if bool(bad.any()):
        first = backend.to_host(data[bad]).ravel()[0]
        raise ValueError(f"{name}: expected indices in [0, {upper})"
                         + (f" or {allowed}" if allowed is not None else "")
                         + f", got {first}")
    return xp.ascontiguousarray(data, dtype=np.int64)


# ------------------------------------------------------------------------- layers
def linear(input, weight, bias=None):
    """y = x·Wᵀ + b. input (*, in); weight (out, in); bias (out,) or None."""
    x = _as_float_tensor(input, "input")
    if x.ndim < 1 or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"input: expected shape (*, {weight.shape[1]}), got {x.shape}")
    if x.dtype != weight.dtype:
        raise TypeError(f"input: expected dtype {weight.dtype} (the weight's), got {x.dtype}")
    rows, w = x._array.reshape(-1, weight.shape[1]), weight._array
    y = rows @ w.T
    if bias is not None:
        y += bias._array
    x_shape, has_bias = x.shape, bias is not None

    def backward(g):
        g = g.reshape(-1, w.shape[0])
        grads = [(g @ w).reshape(x_shape), g.T @ rows]
        return grads + ([g.sum(axis=0)] if has_bias else [])

    inputs = (x, weight) if bias is None else (x, weight, bias)
    return _record(y.reshape(x_shape[:-1] + (w.shape[0],)), inputs, backward)


def embedding(input, weight, padding_idx=None):
    """Rows of ``weight`` (V, E) at the integer indices ``input`` (*): shape (*, E). The
    row ``padding_idx`` receives no gradient."""
    indices = _as_indices(input, "input", weight.shape[0])
    out = weight._array[indices]

    def backward(g):
        flat = indices.reshape(-1)
        dweight = xp.zeros(weight.shape, dtype=weight.dtype)
        dy = xp.ascontiguousarray(g.reshape(flat.shape[0], weight.shape[1]))
        backend.launch(embedding_backward, dy.size, flat, dy, dweight)
        if padding_idx is not None:
            dweight[padding_idx] = 0
        return (dweight,)

    return _record(out, (weight,), backward)


def dropout(input, p=0.5, training=True):
    """Zeroes each element with probability p and scales the rest by 1/(1-p), in training
    only; the mask is drawn from ``nr.manual_seed``'s generator."""
    x = _as_float_tensor(input, "input")
    p = check_probability("p", p)
    if not check_bool("training", training) or p == 0.0:
        return x
    return x * _wrap(random.dropout_mask(x.shape, p, x.dtype))


# -------------------------------------------------------------------- activations
def _pointwise(input, forward, derivative):
    """An elementwise op whose derivative is written in terms of its input x and
    output y: ``derivative(x, y)``."""
    x = _as_float_tensor(input, "input")
    data = x._array
    y = forward(data)
    return _record(y, (x,), lambda g: (g * derivative(data, y),))


def relu(input):
    return _pointwise(input, lambda x: xp.maximum(x, 0), lambda x, y: (x > 0).astype(x.dtype))


def tanh(input):
    return _pointwise(input, xp.tanh, lambda x, y: 1 - y * y)


def sigmoid(input):
    return _pointwise(input, lambda x: 1 / (1 + xp.exp(-x)), lambda x, y: y * (1 - y))


def _class_dim(x, dim, name="dim"):
    if dim is None:
        dim = 0 if x.ndim in (0, 1, 3) else 1  # PyTorch's legacy implicit choice
    check_int(name, dim, -max(x.ndim, 1))
    if not -x.ndim <= dim < x.ndim:
        raise ValueError(f"{name}: expected a dimension in [{-x.ndim}, {x.ndim}), got {dim}")
    return dim % x.ndim


def log_softmax(input, dim=None):
    """log(softmax(x)) along ``dim``, computed stably as x - max - log Σ exp(x - max)."""
    x = _as_float_tensor(input, "input")
    dim = _class_dim(x, dim)
    shifted = x._array - x._array.max(axis=dim, keepdims=True)
    y = shifted - xp.log(xp.exp(shifted).sum(axis=dim, keepdims=True))
    return _record(y, (x,), lambda g: (g - xp.exp(y) * g.sum(axis=dim, keepdims=True),))


def softmax(input, dim=None):
    """exp(x - max) / Σ exp(x - max) along ``dim``."""
    x = _as_float_tensor(input, "input")
    dim = _class_dim(x, dim)
    e = xp.exp(x._array - x._array.max(axis=dim, keepdims=True))
    y = e / e.sum(axis=dim, keepdims=True)
    return _record(y, (x,), lambda g: (y * (g - (g * y).sum(axis=dim, keepdims=True)),))


# ------------------------------------------------------------------------- losses
def _reduce(name, reduction):
    return check_choice(name, reduction, REDUCTIONS)


def nll_loss(input, target, ignore_index=-100, reduction="mean"):
    """-input[n, target[n]] per element, with targets equal to ``ignore_index`` left out
    (of the mean's count too). input: log-probabilities, classes on dim 1 (dim 0 when
    unbatched)."""
    logp = _as_float_tensor(input, "input")
    reduction = _reduce("reduction", reduction)
    check_int("ignore_index", ignore_index, -(2 ** 63))
    if logp.ndim < 1:
        raise ValueError(f"input: expected (C,), (N, C) or (N, C, d1, ...), got shape {logp.shape}")
    class_dim = 0 if logp.ndim == 1 else 1
    classes = logp.shape[class_dim]
    expected = logp.shape[:class_dim] + logp.shape[class_dim + 1:]
    target_data = target._array if isinstance(target, Tensor) else _to_storage(target)
    if tuple(target_data.shape) != expected:
        raise ValueError(f"target: expected shape {expected} for input of shape {logp.shape}, "
                         f"got {tuple(target_data.shape)}")
    targets = _as_indices(target_data, "target", classes, allowed=ignore_index).reshape(-1)
    rows = xp.moveaxis(logp._array, class_dim, -1).reshape(-1, classes)
    valid = targets != ignore_index
    picked = xp.where(valid, targets, 0)
    index = xp.arange(targets.shape[0])
    losses = -rows[index, picked] * valid
    count = valid.sum().astype(logp.dtype)
    if reduction == "none":
        value = losses.reshape(expected)
    elif reduction == "sum":
        value = losses.sum()
    else:
        value = losses.sum() / count

    def backward(g):
        if reduction == "none":
            weight = g.reshape(-1)
        elif reduction == "sum":
            weight = xp.broadcast_to(g, targets.shape)
        else:
            weight = xp.broadcast_to(g / count, targets.shape)
        drows = xp.zeros(rows.shape, dtype=rows.dtype)
        drows[index, picked] = -weight * valid
        moved = xp.moveaxis(logp._array, class_dim, -1).shape
        return (xp.moveaxis(drows.reshape(moved), -1, class_dim),)

    return _record(value.astype(logp.dtype, copy=False), (logp,), backward)


def cross_entropy(input, target, ignore_index=-100, reduction="mean"):
    """Cross-entropy of logits (classes on dim 1, dim 0 when unbatched) against integer
    targets: ``nll_loss(log_softmax(input, class dim), target)``."""
    x = _as_float_tensor(input, "input")
    if x.ndim < 1:
        raise ValueError(f"input: expected (C,), (N, C) or (N, C, d1, ...), got shape {x.shape}")
    return nll_loss(log_softmax(x, 0 if x.ndim == 1 else 1), target, ignore_index, reduction)


def mse_loss(input, target, reduction="mean"):
    """(input - target)² reduced by ``reduction``. Shapes must match: where PyTorch
    broadcasts with a warning (almost always a bug), this raises a ValueError."""
    x = _as_float_tensor(input, "input")
    y = as_tensor(target, "target", x.dtype)
    reduction = _reduce("reduction", reduction)
    if x.shape != y.shape:
        raise ValueError(f"target: expected the input's shape {x.shape}, got {y.shape}")
    squared = (x - y) ** 2
    if reduction == "none":
        return squared
    return squared.sum() if reduction == "sum" else squared.mean()
