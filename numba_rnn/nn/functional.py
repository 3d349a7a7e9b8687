"""Functions in the image of ``torch.nn.functional``: layers, normalisations,
activations and losses, each recorded in the autograd graph as one operation with its
gradient written out (a few losses with options are composed of such operations).

Shapes: ``linear`` maps (*, in) to (*, out); ``embedding`` maps integer indices (*) to
(*, E); ``log_softmax``/``softmax`` work along any ``dim``; ``nll_loss`` and
``cross_entropy`` take the classes on dim 1 of (N, C) or (N, C, d1, ...), or on dim 0 of
an unbatched (C,), with integer targets (N), (N, d1, ...) or () (``cross_entropy`` also
class probabilities of the input's shape); the elementwise losses take an input and a
target of one shape; ``layer_norm`` normalises the trailing ``normalized_shape``
dimensions, ``batch_norm`` the channels of (N, C) or (N, C, *); ``dropout`` and
``alpha_dropout`` drop elements of (*), ``dropout1d``/``dropout2d``/``dropout3d`` and
``feature_alpha_dropout`` whole channels of (N, C, *) (``dropout1d`` and ``dropout3d``
also of an unbatched (C, *)).

Signatures are PyTorch's, the deprecated ``size_average``/``reduce`` of the losses
included (they override ``reduction`` with PyTorch's warning). ``inplace=True`` is
accepted and computes out of place: the input is left unchanged.
"""
import math
import numbers
import warnings

import numpy as np

from .. import backend, random
from ..backend import xp
from ..kernels.layers import embedding_backward
from ..ops.convert import as_float_tensor as _as_float_tensor
from ..ops.convert import as_tensor  # noqa: F401  (nn modules' converter)
from ..ops.elementwise import (gelu, leaky_relu, relu, sigmoid, softplus,  # noqa: F401
                               tanh)
from ..ops.elementwise import stable_sigmoid as _sigmoid
from ..ops.elementwise import stable_softplus as _softplus
from ..ops import arith as _arith
from ..ops import reduce as _reduce_ops
from ..ops.softmax import log_softmax, softmax  # noqa: F401
from ..tensor import Tensor, _record, _to_storage, _wrap, is_grad_enabled
from .._core.checks import check_bool, check_choice, check_int, check_probability, check_real

REDUCTIONS = ("mean", "sum", "none")


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


def _constant(value, name, x):
    """A weight that gets no gradient (PyTorch refuses to differentiate the losses'
    ``weight``/``pos_weight``): a Tensor of ``x``'s dtype, or an array converted to it."""
    if isinstance(value, Tensor):
        if value.dtype != x.dtype:
            raise TypeError(f"{name}: expected dtype {x.dtype} (the input's), got {value.dtype}")
        if value.requires_grad and is_grad_enabled():
            raise ValueError(f"{name}: expected a tensor that does not require grad (the "
                             "loss is not differentiable with respect to it), got one "
                             "that requires grad")
        return value
    try:
        return _wrap(_to_storage(value, x.dtype))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name}: expected a Tensor or an array, got "
                        f"{type(value).__name__} ({exc})") from None


def _broadcast_weight(value, name, x):
    """The array of a constant weight that broadcasts to ``x``'s shape, or None."""
    if value is None:
        return None
    w = _constant(value, name, x)
    try:
        shape = np.broadcast_shapes(w.shape, x.shape)
    except ValueError:
        shape = None
    if shape != x.shape:
        raise ValueError(f"{name}: expected a shape that broadcasts to the input's "
                         f"{x.shape}, got {w.shape}")
    return w._array


# ------------------------------------------------------------------------- layers
def linear(input, weight, bias=None):
    """y = x·Wᵀ + b. input (*, in); weight (out, in); bias (out,) or None. One node, not
    the ops matmul and add: as PyTorch's addmm, it saves x, the weight and the bias with
    their versions, so that a bias written in place after the forward refuses a stale
    backward."""
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
        backend.launch(embedding_backward(), dy.size, flat, dy, dweight)
        if padding_idx is not None:
            dweight[padding_idx] = 0
        return (dweight,)

    return _record(out, (weight,), backward)


# ------------------------------------------------------------------------ dropout
# SELU's λα (its negative saturation value is -λα): alpha dropout sets a dropped element
# to -λα, then maps every element through an affine map that keeps mean 0 and variance 1
_SELU_SATURATION = 1.7580993408473766


def _dropout_args(input, p, training, inplace):
    """The checked float input, p and training of every dropout function."""
    x = _as_float_tensor(input, "input")
    p = check_probability("p", p)
    check_bool("inplace", inplace)
    return x, p, check_bool("training", training)


def _dropout(x, p, training, mask_dims=None, alpha=False):
    """PyTorch's dropout core (ATen's _dropout_impl). x (*) is checked; the keep mask
    (Bernoulli(1 - p)) has one draw per index of the leading ``mask_dims`` dimensions of
    x, broadcast over the rest (None: one per element).
    Plain: y = x·keep/(1-p), so E[y] = x.
    Alpha: y = a·(x·keep - λα·(1 - keep)) + λα·a·p, a = ((1-p)(1 + p·(λα)²))^-1/2,
    which keeps mean 0 and variance 1 for standard-normal x; written as x·(a·keep) + b
    with b = (keep - 1)·λα·a + λα·a·p, PyTorch's order of operations.
    p = 1 multiplies by zero (alpha dropout too, as PyTorch). dy/dx = the mask times a
    (alpha) or 1/(1-p)."""
    if not training or p == 0.0 or x.numel() == 0:
        return x
    if p == 1.0:
        return x * _wrap(xp.zeros((), dtype=x.dtype))
    mask_dims = x.ndim if mask_dims is None else mask_dims
    if x.ndim < mask_dims:
        raise ValueError(f"input: expected shape {'(N, C, *)' if mask_dims == 2 else '(C, *)'}"
                         f" for channel-wise dropout, got {x.shape}")
    shape = x.shape[:mask_dims] + (1,) * (x.ndim - mask_dims)
    if alpha:
        t = x.dtype.type
        a = 1.0 / math.sqrt((_SELU_SATURATION * _SELU_SATURATION * p + 1) * (1 - p))
        keep = random.keep_mask(shape, p, x.dtype)
        b = (keep - 1) * t(_SELU_SATURATION * a) + t(_SELU_SATURATION * a * p)
        scale = keep * t(a)
        y = x._array * scale + b
    else:
        scale = random.dropout_mask(shape, p, x.dtype)
        y = x._array * scale
    return _record(y, (x,), lambda g: (g * scale,))


def _warn_rank(name, ndim, spatial_dims):
    """PyTorch's deprecation warning for dropout2d/dropout3d of an input that is neither
    (C, *spatial) nor (N, C, *spatial)."""
    warnings.warn(f"{name}: Received a {ndim}-D input to {name}, which is deprecated and will "
                  "result in an error in a future release. To retain the behavior and silence "
                  f"this warning, please use dropout instead. Note that {name} exists to "
                  f"provide channel-wise dropout on inputs with {spatial_dims} spatial "
                  "dimensions, a channel dimension, and an optional batch dimension (i.e. "
                  f"{spatial_dims + 1}D or {spatial_dims + 2}D inputs).", stacklevel=3)


def dropout(input, p=0.5, training=True, inplace=False):
    """Zeroes each element with probability p and scales the rest by 1/(1-p), in training
    only; the mask is drawn from ``nr.manual_seed``'s generator."""
    x, p, training = _dropout_args(input, p, training, inplace)
    return _dropout(x, p, training)


def alpha_dropout(input, p=0.5, training=False, inplace=False):
    """Alpha dropout for SELU networks (note PyTorch's default ``training=False``): each
    element dropped with probability p is set to SELU's saturation -λα, then all are
    mapped affinely so that zero mean and unit variance are kept (``_dropout``)."""
    x, p, training = _dropout_args(input, p, training, inplace)
    return _dropout(x, p, training, alpha=True)


def feature_alpha_dropout(input, p=0.5, training=False, inplace=False):
    """``alpha_dropout`` of whole channels: one draw per (N, C) of input (N, C, *)."""
    x, p, training = _dropout_args(input, p, training, inplace)
    return _dropout(x, p, training, mask_dims=2, alpha=True)


def dropout1d(input, p=0.5, training=True, inplace=False):
    """``dropout`` of whole channels of input (N, C, L) or unbatched (C, L): each channel
    is zeroed with probability p, the rest scaled by 1/(1-p)."""
    x, p, training = _dropout_args(input, p, training, inplace)
    if x.ndim not in (2, 3):
        raise ValueError(f"input: expected a 2-D (C, L) or 3-D (N, C, L) tensor for "
                         f"dropout1d, got shape {x.shape}")
    return _dropout(x, p, training, mask_dims=x.ndim - 1)


def dropout2d(input, p=0.5, training=True, inplace=False):
    """``dropout`` of whole channels of input (N, C, H, W). As in PyTorch, a 3-D input is
    taken as (N, C, L) (not as unbatched (C, H, W)) with a warning, and any other rank
    warns and drops along dims 0 and 1."""
    x, p, training = _dropout_args(input, p, training, inplace)
    if x.ndim not in (3, 4):
        _warn_rank("dropout2d", x.ndim, 2)
    if x.ndim == 3:
        warnings.warn("dropout2d: Received a 3D input to dropout2d and assuming that "
                      "channel-wise 1D dropout behavior is desired - input is interpreted as "
                      "shape (N, C, L), where C is the channel dim. This behavior will change "
                      "in a future release to interpret the input as one without a batch "
                      "dimension, i.e. shape (C, H, W). To maintain the 1D channel-wise "
                      "dropout behavior, please switch to using dropout1d instead.",
                      stacklevel=2)
    return _dropout(x, p, training, mask_dims=2)


def dropout3d(input, p=0.5, training=True, inplace=False):
    """``dropout`` of whole channels of input (N, C, D, H, W) or unbatched (C, D, H, W).
    As in PyTorch, any other rank warns and is taken as unbatched: one draw per index of
    dim 0."""
    x, p, training = _dropout_args(input, p, training, inplace)
    if x.ndim not in (4, 5):
        _warn_rank("dropout3d", x.ndim, 3)
    return _dropout(x, p, training, mask_dims=2 if x.ndim == 5 else 1)


# ------------------------------------------------------------------ normalisation
def _normalize_backward(g, w, xhat, rstd, axes, batch_stats):
    """d input of y = xhat·w + b, xhat = (x - mean)·rstd, where mean and rstd are the
    statistics over ``axes`` (``batch_stats``) or constants."""
    dxhat = g if w is None else g * w
    if not batch_stats:
        return dxhat * rstd
    return rstd * (dxhat - dxhat.mean(axis=axes, keepdims=True)
                   - xhat * (dxhat * xhat).mean(axis=axes, keepdims=True))


def _affine(x, xhat, rstd, weight, bias, shape, axes, parameter_axes, batch_stats):
    """y = xhat·weight + bias (weight and bias as ``shape``), recorded with the gradients
    of x (``_normalize_backward`` over ``axes``), weight and bias (sums over
    ``parameter_axes``)."""
    w = None if weight is None else weight._array.reshape(shape)
    y = xhat if w is None else xhat * w
    if bias is not None:
        y = y + bias._array.reshape(shape)

    def backward(g):
        grads = [_normalize_backward(g, w, xhat, rstd, axes, batch_stats)]
        if weight is not None:
            grads.append((g * xhat).sum(axis=parameter_axes))
        if bias is not None:
            grads.append(g.sum(axis=parameter_axes))
        return grads

    inputs = [x] + [t for t in (weight, bias) if t is not None]
    return _record(y, inputs, backward)


def _affine_parameter(value, name, shape, x):
    if value is None:
        return None
    value = as_tensor(value, name, x.dtype)
    if value.shape != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {value.shape}")
    return value


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """(x - mean) / √(var + eps) · weight + bias, the mean and the (biased) variance over
    the trailing dimensions ``normalized_shape``; weight and bias have that shape."""
    x = _as_float_tensor(input, "input")
    if isinstance(normalized_shape, numbers.Integral) and not isinstance(normalized_shape, bool):
        normalized_shape = (normalized_shape,)
    try:
        normalized_shape = tuple(check_int("normalized_shape", n, 0) for n in normalized_shape)
    except TypeError:
        raise TypeError(f"normalized_shape: expected an int or a sequence of ints, got "
                        f"{normalized_shape!r}") from None
    k = len(normalized_shape)
    if k == 0 or x.ndim < k or x.shape[x.ndim - k:] != normalized_shape:
        raise ValueError(f"input: expected shape (*, {', '.join(map(str, normalized_shape))})"
                         f" (normalized_shape {normalized_shape}), got {x.shape}")
    weight = _affine_parameter(weight, "weight", normalized_shape, x)
    bias = _affine_parameter(bias, "bias", normalized_shape, x)
    eps = check_real("eps", eps)
    a = x._array
    axes = tuple(range(x.ndim - k, x.ndim))
    centered = a - a.mean(axis=axes, keepdims=True)
    rstd = 1 / xp.sqrt((centered * centered).mean(axis=axes, keepdims=True) + a.dtype.type(eps))
    xhat = centered * rstd
    return _affine(x, xhat, rstd, weight, bias, normalized_shape, axes,
                   tuple(range(x.ndim - k)), True)


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5):
    """Batch normalisation of the channels (dim 1) of (N, C) or (N, C, *): in training,
    with the batch's mean and (biased) variance per channel, and updating
    ``running_mean``/``running_var`` in place (when given) by
    ``(1 - momentum)·running + momentum·batch``, with the unbiased variance, as PyTorch;
    in evaluation, with the running statistics."""
    x = _as_float_tensor(input, "input")
    if x.ndim < 2:
        raise ValueError(f"input: expected (N, C) or (N, C, *), got shape {x.shape}")
    channels = x.shape[1]
    training = check_bool("training", training)
    stats = []
    for name, value in (("running_mean", running_mean), ("running_var", running_var)):
        if value is not None:
            if not isinstance(value, Tensor):
                raise TypeError(f"{name}: expected a Tensor (it is updated in place) or "
                                f"None, got {type(value).__name__}")
            _affine_parameter(value, name, (channels,), x)
        stats.append(value)
    if (running_mean is None) != (running_var is None):
        raise ValueError("running_mean, running_var: expected both tensors or both None, "
                         "got one of each")
    if not training and running_mean is None:
        raise ValueError("running_mean: expected the running statistics (tensors of "
                         f"shape ({channels},)) when training=False, got None")
    weight = _affine_parameter(weight, "weight", (channels,), x)
    bias = _affine_parameter(bias, "bias", (channels,), x)
    momentum = check_real("momentum", momentum)
    eps = check_real("eps", eps)
    axes = (0,) + tuple(range(2, x.ndim))
    per_channel = (1, channels) + (1,) * (x.ndim - 2)
    count = x.numel() // max(channels, 1)
    if training and count <= 1:
        raise ValueError(f"input: expected more than 1 value per channel when training, "
                         f"got shape {x.shape}")
    a = x._array
    dtype = a.dtype.type
    if training:
        mean = a.mean(axis=axes)
        centered = a - mean.reshape(per_channel)
        var = (centered * centered).mean(axis=axes)
        if running_mean is not None:
            m = dtype(momentum)
            running_mean._array[...] = (1 - m) * running_mean._array + m * mean
            running_var._array[...] = ((1 - m) * running_var._array
                                       + m * var * dtype(count / (count - 1)))
            running_mean._write_()
            running_var._write_()
    else:
        mean, var = running_mean._array, running_var._array
        centered = a - mean.reshape(per_channel)
    rstd = (1 / xp.sqrt(var + dtype(eps))).reshape(per_channel)
    xhat = centered * rstd
    return _affine(x, xhat, rstd, weight, bias, per_channel, axes, axes, training)


# -------------------------------------------------------------------- activations
# relu, tanh, sigmoid, leaky_relu, gelu, softplus, softmax and log_softmax are
# numba_rnn.ops' (imported above): Tensor.sigmoid, nr.sigmoid and F.sigmoid are one op.


# ------------------------------------------------------------------------- losses
def _reduce(name, reduction):
    return check_choice(name, reduction, REDUCTIONS)


def _reduction(size_average, reduce, reduction):
    """``reduction``, or what the deprecated ``size_average``/``reduce`` say when either
    is given (with PyTorch's warning), as ``torch.nn._reduction.legacy_get_string``."""
    if size_average is None and reduce is None:
        return _reduce("reduction", reduction)
    size_average = True if size_average is None else check_bool("size_average", size_average)
    reduce = True if reduce is None else check_bool("reduce", reduce)
    result = "mean" if size_average and reduce else "sum" if reduce else "none"
    warnings.warn(f"size_average and reduce args will be deprecated, please use "
                  f"reduction='{result}' instead.", stacklevel=3)
    return result


def _loss_pair(input, target):
    """The input and a target of its dtype and shape (where PyTorch broadcasts a target
    of another shape with a warning, this refuses it)."""
    x = _as_float_tensor(input, "input")
    y = as_tensor(target, "target", x.dtype)
    if x.shape != y.shape:
        raise ValueError(f"target: expected the input's shape {x.shape}, got {y.shape}")
    return x, y


def _elementwise_loss(x, y, losses, derivatives, reduction):
    """A loss whose elements ``losses`` (the input's shape) depend on the same elements
    of x and y; ``derivatives()`` gives d loss / d x and d loss / d y (or None for
    zero) per element."""
    dtype = x.dtype.type
    count = losses.size
    if reduction == "none":
        value = losses
    elif reduction == "sum":
        value = xp.asarray(losses.sum(), dtype=x.dtype)
    else:
        value = xp.asarray(losses.sum() / dtype(count) if count else dtype(np.nan), dtype=x.dtype)
    shape = losses.shape

    def backward(g):
        if reduction == "mean":
            g = g / dtype(count)
        g = xp.broadcast_to(g, shape)
        dx, dy = derivatives()
        return (g * dx, None if dy is None else g * dy)

    return _record(value, (x, y), backward)


def _weighted(losses, weight, reduction, mean_by_weight=True):
    """Per-element ``losses`` (a Tensor) times the differentiable ``weight`` of the
    input's shape, reduced as PyTorch's weighted mse/l1 (mean: Σ w·l / Σ w) and huber
    (mean: the mean of w·l) losses are."""
    weighted = _arith.mul(losses, weight)
    if reduction == "none":
        return weighted
    if reduction == "sum" or not mean_by_weight:
        return _reduce_ops.sum(weighted) if reduction == "sum" else _reduce_ops.mean(weighted)
    return _arith.div(_reduce_ops.sum(weighted), _reduce_ops.sum(weight))


def _same_shape_weight(weight, x):
    if weight is None:
        return None
    w = as_tensor(weight, "weight", x.dtype)
    if w.shape != x.shape:
        raise ValueError(f"weight: expected the input's shape {x.shape}, got {w.shape}")
    return w


def mse_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """(input - target)² reduced by ``reduction``; ``weight`` (the input's shape)
    multiplies each element, and the mean is then Σ w·l / Σ w, as PyTorch. Shapes must
    match: where PyTorch broadcasts with a warning (almost always a bug), this raises a
    ValueError."""
    x, y = _loss_pair(input, target)
    reduction = _reduction(size_average, reduce, reduction)
    w = _same_shape_weight(weight, x)
    diff = x._array - y._array

    def derivatives():
        d = 2 * diff
        return d, -d

    if w is not None:
        return _weighted(_elementwise_loss(x, y, diff * diff, derivatives, "none"), w, reduction)
    return _elementwise_loss(x, y, diff * diff, derivatives, reduction)


def l1_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """|input - target| reduced by ``reduction`` (gradient sign(input - target), 0 where
    they are equal); ``weight`` as in ``mse_loss``."""
    x, y = _loss_pair(input, target)
    reduction = _reduction(size_average, reduce, reduction)
    w = _same_shape_weight(weight, x)
    diff = x._array - y._array

    def derivatives():
        s = xp.sign(diff)
        return s, -s

    if w is not None:
        return _weighted(_elementwise_loss(x, y, xp.abs(diff), derivatives, "none"), w, reduction)
    return _elementwise_loss(x, y, xp.abs(diff), derivatives, reduction)


def _huber_parts(diff, delta, scale_quadratic):
    """Elements and derivatives of the smooth L1 (``scale_quadratic``: 0.5·d²/beta where
    |d| < beta, else |d| - beta/2) or Huber (0.5·d² where |d| < delta, else
    delta·(|d| - delta/2)) losses."""
    delta = diff.dtype.type(delta)
    half = diff.dtype.type(0.5)
    absolute = xp.abs(diff)
    small = absolute < delta
    if scale_quadratic:
        losses = xp.where(small, half * diff * diff / delta, absolute - half * delta)
        slope = xp.where(small, diff / delta, xp.sign(diff))
    else:
        losses = xp.where(small, half * diff * diff, delta * (absolute - half * delta))
        slope = xp.clip(diff, -delta, delta)
    return losses, slope


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0):
    """0.5·d²/beta where |d| < beta, else |d| - 0.5·beta, with d = input - target
    (``beta=0``: the L1 loss)."""
    x, y = _loss_pair(input, target)
    reduction = _reduction(size_average, reduce, reduction)
    beta = check_real("beta", beta, 0.0)
    diff = x._array - y._array
    if beta == 0.0:
        return l1_loss(x, y, reduction=reduction)
    losses, slope = _huber_parts(diff, beta, True)
    return _elementwise_loss(x, y, losses, lambda: (slope, -slope), reduction)


def huber_loss(input, target, reduction="mean", delta=1.0, weight=None):
    """0.5·d² where |d| < delta, else delta·(|d| - 0.5·delta), with d = input - target;
    ``weight`` (the input's shape) multiplies each element (the mean stays the mean over
    elements, as PyTorch)."""
    x, y = _loss_pair(input, target)
    reduction = _reduce("reduction", reduction)
    delta = check_real("delta", delta)
    if not delta > 0:
        raise ValueError(f"delta: expected a number > 0, got {delta}")
    w = _same_shape_weight(weight, x)
    losses, slope = _huber_parts(x._array - y._array, delta, False)
    if w is not None:
        return _weighted(_elementwise_loss(x, y, losses, lambda: (slope, -slope), "none"), w,
                         reduction, mean_by_weight=False)
    return _elementwise_loss(x, y, losses, lambda: (slope, -slope), reduction)


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None,
                         reduction="mean"):
    """-weight·(t·log(p) + (1 - t)·log(1 - p)) for probabilities p = input in [0, 1],
    the logarithms clamped at -100 as PyTorch; ``weight`` broadcasts to the input's
    shape and gets no gradient. The target gets the gradient -weight·logit(p)."""
    x, y = _loss_pair(input, target)
    reduction = _reduction(size_average, reduce, reduction)
    w = _broadcast_weight(weight, "weight", x)
    p, t = x._array, y._array
    outside = ~((p >= 0) & (p <= 1))
    if bool(outside.any()):
        raise ValueError(f"input: expected probabilities in [0, 1], got "
                         f"{backend.to_host(p[outside]).ravel()[0]}")
    with np.errstate(divide="ignore"):
        log_p, log_q = xp.log(p), xp.log1p(-p)
    floor = p.dtype.type(-100)
    losses = -(t * xp.maximum(log_p, floor) + (1 - t) * xp.maximum(log_q, floor))
    if w is not None:
        losses = losses * w

    def derivatives():
        dx = (p - t) / xp.maximum((1 - p) * p, p.dtype.type(1e-12))
        dt = log_q - log_p if y.requires_grad else None
        if w is not None:
            dx = dx * w
            dt = None if dt is None else dt * w
        return dx, dt

    return _elementwise_loss(x, y, losses, derivatives, reduction)


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None,
                                     reduce=None, reduction="mean", pos_weight=None):
    """binary_cross_entropy(sigmoid(input), target), computed stably from the logits:
    weight·((1 - t)·x + (1 + (pos_weight - 1)·t)·log(1 + exp(-x))). ``pos_weight``
    weighs the positive term (one per class, broadcasting along the last dimension);
    ``weight`` and ``pos_weight`` broadcast to the input's shape and get no gradient."""
    x, y = _loss_pair(input, target)
    reduction = _reduction(size_average, reduce, reduction)
    w = _broadcast_weight(weight, "weight", x)
    pw = _broadcast_weight(pos_weight, "pos_weight", x)
    a, t = x._array, y._array
    softplus_neg = _softplus(-a)
    scale = 1 if pw is None else 1 + (pw - 1) * t
    losses = (1 - t) * a + scale * softplus_neg
    if w is not None:
        losses = losses * w

    def derivatives():
        dx = (1 - t) - scale * _sigmoid(-a)
        dt = None
        if y.requires_grad:
            dt = -a if pw is None else -a + (pw - 1) * softplus_neg
        if w is not None:
            dx = dx * w
            dt = None if dt is None else dt * w
        return dx, dt

    return _elementwise_loss(x, y, losses, derivatives, reduction)


def _nll_parts(logp, target, weight, ignore_index):
    """The parts of a negative log-likelihood over class dim 1 (0 when unbatched): class
    dim, classes, target shape, flat targets (ignored ones at 0), the flat per-target
    weights (0 where ignored) and the class weights (or None)."""
    if logp.ndim < 1:
        raise ValueError(f"input: expected (C,), (N, C) or (N, C, d1, ...), got shape {logp.shape}")
    check_int("ignore_index", ignore_index, -(2 ** 63))
    class_dim = 0 if logp.ndim == 1 else 1
    classes = logp.shape[class_dim]
    expected = logp.shape[:class_dim] + logp.shape[class_dim + 1:]
    target_data = target._array if isinstance(target, Tensor) else _to_storage(target)
    if tuple(target_data.shape) != expected:
        raise ValueError(f"target: expected shape {expected} for input of shape {logp.shape}, "
                         f"got {tuple(target_data.shape)}")
    class_weight = None
    if weight is not None:
        class_weight = _constant(weight, "weight", logp)
        if class_weight.shape != (classes,):
            raise ValueError(f"weight: expected shape ({classes},) (one weight per class), "
                             f"got {class_weight.shape}")
        class_weight = class_weight._array
    targets = _as_indices(target_data, "target", classes, allowed=ignore_index).reshape(-1)
    valid = targets != ignore_index
    picked = xp.where(valid, targets, 0)
    weights = valid.astype(logp.dtype)
    if class_weight is not None:
        weights = weights * class_weight[picked]
    return class_dim, classes, expected, picked, weights, class_weight


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
             reduction="mean"):
    """-weight[t]·input[n, t] for each target t = target[n], with targets equal to
    ``ignore_index`` left out; the mean divides by the sum of the targets' weights (their
    count without ``weight``). input: log-probabilities, classes on dim 1 (dim 0 when
    unbatched); ``weight``: one per class, no gradient."""
    logp = _as_float_tensor(input, "input")
    reduction = _reduction(size_average, reduce, reduction)
    class_dim, classes, expected, picked, weights, _ = _nll_parts(logp, target, weight,
                                                                  ignore_index)
    rows = xp.moveaxis(logp._array, class_dim, -1).reshape(-1, classes)
    index = xp.arange(picked.shape[0])
    losses = -rows[index, picked] * weights
    total = weights.sum()
    if reduction == "none":
        value = losses.reshape(expected)
    elif reduction == "sum":
        value = losses.sum()
    else:
        with np.errstate(invalid="ignore", divide="ignore"):
            value = losses.sum() / total
    moved = xp.moveaxis(logp._array, class_dim, -1).shape

    def backward(g):
        if reduction == "none":
            scale = g.reshape(-1)
        elif reduction == "sum":
            scale = xp.broadcast_to(g, picked.shape)
        else:
            scale = xp.broadcast_to(g / total, picked.shape)
        drows = xp.zeros(rows.shape, dtype=rows.dtype)
        drows[index, picked] = -scale * weights
        return (xp.moveaxis(drows.reshape(moved), -1, class_dim),)

    return _record(xp.asarray(value, dtype=logp.dtype), (logp,), backward)


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100,
                  reduce=None, reduction="mean", label_smoothing=0.0):
    """Cross-entropy of logits (classes on dim 1, dim 0 when unbatched) against integer
    targets, ``nll_loss(log_softmax(input, class dim), target, weight, ...)``, or against
    class probabilities (a float target of the input's shape; the mean then divides by
    the number of samples). ``label_smoothing`` mixes the target with the uniform
    distribution over classes, with PyTorch's formula."""
    x = _as_float_tensor(input, "input")
    reduction = _reduction(size_average, reduce, reduction)
    label_smoothing = check_real("label_smoothing", label_smoothing, 0.0, 1.0)
    if x.ndim < 1:
        raise ValueError(f"input: expected (C,), (N, C) or (N, C, d1, ...), got shape {x.shape}")
    class_dim = 0 if x.ndim == 1 else 1
    classes = x.shape[class_dim]
    w_shape = [1] * x.ndim
    w_shape[class_dim] = classes
    target_data = target._array if isinstance(target, Tensor) else _to_storage(target)
    if target_data.dtype.kind == "f":
        if tuple(target_data.shape) != x.shape:
            raise TypeError(f"target: expected integer class indices (or class "
                            f"probabilities of the input's shape {x.shape}), got dtype "
                            f"{target_data.dtype} and shape {tuple(target_data.shape)}")
        probs = as_tensor(target, "target", x.dtype)
        check_int("ignore_index", ignore_index, -(2 ** 63))
        if ignore_index >= 0:
            raise ValueError(f"ignore_index: expected a negative value (it is not "
                             f"supported for class probabilities), got {ignore_index}")
        class_weight = None
        if weight is not None:
            class_weight = _constant(weight, "weight", x)
            if class_weight.shape != (classes,):
                raise ValueError(f"weight: expected shape ({classes},) (one weight per "
                                 f"class), got {class_weight.shape}")
        logp = log_softmax(x, class_dim)
        if label_smoothing > 0:
            probs = probs * (1 - label_smoothing) + label_smoothing / classes
        terms = logp * probs
        if class_weight is not None:
            terms = terms * _wrap(class_weight._array.reshape(w_shape))
        losses = _arith.neg(_reduce_ops.sum(terms, dim=class_dim))
        if reduction == "none":
            return losses
        total = _reduce_ops.sum(losses)
        return total if reduction == "sum" else _arith.div(total, x.numel() / classes)
    logp = log_softmax(x, class_dim)
    nll = nll_loss(logp, target_data, weight, None, ignore_index, None, reduction)
    if label_smoothing == 0:
        return nll
    _, _, expected, _, weights, class_weight = _nll_parts(logp, target_data, weight,
                                                          ignore_index)
    terms = logp if class_weight is None else logp * _wrap(class_weight.reshape(w_shape))
    valid = xp.asarray(target_data).reshape(expected) != ignore_index
    smooth = _arith.mul(_arith.neg(_reduce_ops.sum(terms, dim=class_dim)),
                        _wrap(valid.astype(x.dtype)))
    if reduction == "none":
        smoothed = smooth
    elif reduction == "sum":
        smoothed = _reduce_ops.sum(smooth)
    else:
        smoothed = _arith.div(_reduce_ops.sum(smooth),
                              _wrap(xp.asarray(weights.sum(), dtype=x.dtype)))
    return nll * (1 - label_smoothing) + smoothed * (label_smoothing / classes)
