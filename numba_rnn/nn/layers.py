"""Layers beyond the recurrent ones, with ``torch.nn``'s signatures, parameter names and
default initialisation: Linear, Embedding, the dropouts, normalisations, activations,
Identity, Flatten, Sequential, and the loss modules."""
import math
import numbers
from collections import OrderedDict

import numpy as np

from .. import random
from ..backend import xp
from ..tensor import Tensor, _check_device, _to_storage, _wrap
from . import functional as F
from .checks import check_bool, check_choice, check_dtype, check_int, check_probability, check_real
from .module import Module, Parameter

__all__ = ["Linear", "Embedding", "Dropout", "Dropout1d", "Dropout2d", "Dropout3d",
           "AlphaDropout", "FeatureAlphaDropout", "Identity", "Flatten", "LayerNorm",
           "BatchNorm1d", "ReLU", "LeakyReLU", "GELU", "Softplus", "Tanh", "Sigmoid",
           "Softmax", "LogSoftmax", "Sequential", "MSELoss", "L1Loss", "SmoothL1Loss",
           "HuberLoss", "NLLLoss", "CrossEntropyLoss", "BCELoss", "BCEWithLogitsLoss"]


class Linear(Module):
    """y = x·Wᵀ + b; weight (out_features, in_features), bias (out_features,), both
    U(-1/sqrt(in_features), 1/sqrt(in_features)) as PyTorch's default initialisation."""

    def __init__(self, in_features, out_features, bias=True, dtype="float32"):
        super().__init__()
        self.in_features = check_int("in_features", in_features, 1)
        self.out_features = check_int("out_features", out_features, 1)
        dtype = check_dtype(dtype)
        bound = 1.0 / math.sqrt(self.in_features)
        self.weight = Parameter(random.uniform(-bound, bound, (self.out_features,
                                                               self.in_features), dtype))
        if check_bool("bias", bias):
            self.bias = Parameter(random.uniform(-bound, bound, (self.out_features,), dtype))
        else:
            self.bias = None

    def forward(self, input):
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Embedding(Module):
    """A lookup table: integer indices (*) → rows of ``weight`` (num_embeddings,
    embedding_dim), initialised N(0, 1); the row ``padding_idx`` starts at zero and gets
    no gradient."""

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, dtype="float32"):
        super().__init__()
        self.num_embeddings = check_int("num_embeddings", num_embeddings, 1)
        self.embedding_dim = check_int("embedding_dim", embedding_dim, 1)
        if padding_idx is not None:
            check_int("padding_idx", padding_idx, -self.num_embeddings)
            if padding_idx >= self.num_embeddings:
                raise ValueError(f"padding_idx: expected an int in [-{self.num_embeddings}, "
                                 f"{self.num_embeddings}), got {padding_idx}")
            padding_idx %= self.num_embeddings
        self.padding_idx = padding_idx
        weight = random.normal((self.num_embeddings, self.embedding_dim), check_dtype(dtype))
        if padding_idx is not None:
            weight[padding_idx] = 0
        self.weight = Parameter(weight)

    def forward(self, input):
        return F.embedding(input, self.weight, self.padding_idx)

    def extra_repr(self):
        pad = "" if self.padding_idx is None else f", padding_idx={self.padding_idx}"
        return f"{self.num_embeddings}, {self.embedding_dim}{pad}"


class _DropoutNd(Module):
    """The dropouts' arguments: the probability p, checked here as PyTorch does and kept
    as given (``Dropout(1)`` prints ``p=1``, as PyTorch's), and inplace (accepted; the
    output is computed out of place)."""

    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        check_probability("p", p)
        self.p = p
        self.inplace = check_bool("inplace", inplace)

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"


class Dropout(_DropoutNd):
    """Zeroes elements with probability p and scales the rest by 1/(1-p), in training
    mode only."""

    def forward(self, input):
        return F.dropout(input, self.p, self.training, self.inplace)


class Dropout1d(_DropoutNd):
    """Zeroes whole channels of (N, C, L) or (C, L) with probability p and scales the rest
    by 1/(1-p), in training mode only."""

    def forward(self, input):
        return F.dropout1d(input, self.p, self.training, self.inplace)


class Dropout2d(_DropoutNd):
    """Zeroes whole channels of (N, C, H, W) with probability p (a 3-D input warns and is
    taken as (N, C, L), as in PyTorch) and scales the rest by 1/(1-p), in training only."""

    def forward(self, input):
        return F.dropout2d(input, self.p, self.training, self.inplace)


class Dropout3d(_DropoutNd):
    """Zeroes whole channels of (N, C, D, H, W) or (C, D, H, W) with probability p and
    scales the rest by 1/(1-p), in training mode only."""

    def forward(self, input):
        return F.dropout3d(input, self.p, self.training, self.inplace)


class AlphaDropout(_DropoutNd):
    """Alpha dropout for SELU networks: keeps zero mean and unit variance
    (``F.alpha_dropout``), in training mode only."""

    def forward(self, input):
        return F.alpha_dropout(input, self.p, self.training)


class FeatureAlphaDropout(_DropoutNd):
    """Alpha dropout of whole channels of (N, C, *) (``F.feature_alpha_dropout``), in
    training mode only."""

    def forward(self, input):
        return F.feature_alpha_dropout(input, self.p, self.training)


class Identity(Module):
    """Returns its input; takes (and ignores) any arguments, as ``torch.nn.Identity``."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, input):
        return input


class Flatten(Module):
    """Flattens dims ``start_dim`` to ``end_dim`` into one: (N, C, L) → (N, C·L) by
    default."""

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim = check_int("start_dim", start_dim, -(2 ** 63))
        self.end_dim = check_int("end_dim", end_dim, -(2 ** 63))

    def forward(self, input):
        x = F.as_tensor(input, "input")
        rank = max(x.ndim, 1)
        dims = []
        for name, dim in (("start_dim", self.start_dim), ("end_dim", self.end_dim)):
            if not -rank <= dim < rank:
                raise ValueError(f"{name}: expected a dimension in [{-rank}, {rank}) for "
                                 f"input of shape {x.shape}, got {dim}")
            dims.append(dim % rank)
        start, end = dims
        if start > end:
            raise ValueError(f"start_dim: expected a dimension that does not come after "
                             f"end_dim ({end}), got {start}")
        shape = x.shape or (1,)
        size = 1
        for n in shape[start:end + 1]:
            size *= n
        return x.reshape(shape[:start] + (size,) + shape[end + 1:])

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


def _module_input(input, state):
    """The float input of a module whose parameters or buffers (``state``, or None) fix
    the dtype."""
    x = F._as_float_tensor(input, "input")
    if state is not None and x.dtype != state.dtype:
        raise TypeError(f"input: expected dtype {state.dtype} (the module's), got {x.dtype}")
    return x


def _make_affine(module, affine, bias, shape, dtype):
    """The normalisations' ``weight`` (ones) and ``bias`` (zeros) of ``shape``, or None
    each: without ``affine`` neither, without ``bias`` no bias."""
    module.register_parameter("weight", Parameter(xp.ones(shape, dtype=dtype)) if affine
                              else None)
    module.register_parameter("bias", Parameter(xp.zeros(shape, dtype=dtype))
                              if affine and bias else None)


def _reset_affine(module):
    """``weight`` back to ones and ``bias`` to zeros, in place, where they exist."""
    for value, p in ((1, module.weight), (0, module.bias)):
        if p is not None:
            p._array[...] = value
            p._write_()


class LayerNorm(Module):
    """Normalises the trailing ``normalized_shape`` dimensions to zero mean and unit
    (biased) variance, then scales by ``weight`` (ones) and shifts by ``bias`` (zeros),
    both of shape ``normalized_shape`` (without ``elementwise_affine``, neither; with
    ``bias=False``, no bias)."""

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True,
                 device=None, dtype=None):
        super().__init__()
        if isinstance(normalized_shape, numbers.Integral) and not isinstance(normalized_shape, bool):
            normalized_shape = (normalized_shape,)
        try:
            shape = tuple(check_int("normalized_shape", n, 1) for n in normalized_shape)
        except TypeError:
            raise TypeError(f"normalized_shape: expected an int or a sequence of ints, got "
                            f"{normalized_shape!r}") from None
        if not shape:
            raise ValueError("normalized_shape: expected at least one dimension, got ()")
        self.normalized_shape = shape
        self.eps = check_real("eps", eps, 0.0)
        self.elementwise_affine = check_bool("elementwise_affine", elementwise_affine)
        check_bool("bias", bias)
        _check_device(device)
        _make_affine(self, self.elementwise_affine, bias, shape, check_dtype(dtype))

    def reset_parameters(self):
        _reset_affine(self)

    def forward(self, input):
        x = _module_input(input, self.weight)
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}, bias={self.bias is not None}")


class BatchNorm1d(Module):
    """Batch normalisation of the channels of (N, C) or (N, C, L) inputs, as
    ``torch.nn.BatchNorm1d``: in training, with the batch's statistics, updating the
    buffers ``running_mean``/``running_var`` (with the unbiased variance) by
    ``momentum`` (None: the cumulative average over ``num_batches_tracked`` batches); in
    evaluation, with the buffers (with ``track_running_stats=False``, the batch's
    statistics always). Parameters ``weight`` (ones) and ``bias`` (zeros) when
    ``affine``."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, device=None, dtype=None, *, bias=True):
        super().__init__()
        self.num_features = check_int("num_features", num_features, 1)
        self.eps = check_real("eps", eps, 0.0)
        self.momentum = None if momentum is None else check_real("momentum", momentum, 0.0, 1.0)
        self.affine = check_bool("affine", affine)
        self.track_running_stats = check_bool("track_running_stats", track_running_stats)
        check_bool("bias", bias)
        _check_device(device)
        dtype = check_dtype(dtype)
        n = self.num_features
        _make_affine(self, self.affine, bias, n, dtype)
        if self.track_running_stats:
            self.register_buffer("running_mean", _wrap(xp.zeros(n, dtype=dtype)))
            self.register_buffer("running_var", _wrap(xp.ones(n, dtype=dtype)))
            self.register_buffer("num_batches_tracked", _wrap(xp.zeros((), dtype=np.int64)))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self):
        if self.track_running_stats:
            for buffer, value in ((self.running_mean, 0), (self.running_var, 1),
                                  (self.num_batches_tracked, 0)):
                buffer._array[...] = value
                buffer._write_()

    def reset_parameters(self):
        self.reset_running_stats()
        _reset_affine(self)

    def forward(self, input):
        x = _module_input(input, self.weight if self.weight is not None else self.running_mean)
        if x.ndim not in (2, 3):
            raise ValueError(f"input: expected a 2-D (N, C) or 3-D (N, C, L) input, got "
                             f"{x.ndim}-D shape {x.shape}")
        if x.shape[1] != self.num_features:
            raise ValueError(f"input: expected {self.num_features} channels (dim 1), got "
                             f"shape {x.shape}")
        factor = 0.0 if self.momentum is None else self.momentum
        counting = (self.training and self.track_running_stats
                    and self.num_batches_tracked is not None)
        if counting and self.momentum is None:  # the cumulative average
            factor = 1.0 / (float(self.num_batches_tracked.item()) + 1.0)
        use_batch = self.training or (self.running_mean is None and self.running_var is None)
        track = not self.training or self.track_running_stats
        output = F.batch_norm(x, self.running_mean if track else None,
                              self.running_var if track else None, self.weight, self.bias,
                              use_batch, factor, self.eps)
        if counting:  # counted after F.batch_norm accepted the input: a refused call changes nothing
            self.num_batches_tracked._array[...] += 1
            self.num_batches_tracked._write_()
        return output

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, bias={self.bias is not None}, "
                f"track_running_stats={self.track_running_stats}")


class ReLU(Module):
    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = check_bool("inplace", inplace)

    def forward(self, input):
        return F.relu(input)

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""


class LeakyReLU(Module):
    """x where x > 0, else negative_slope·x."""

    def __init__(self, negative_slope=0.01, inplace=False):
        super().__init__()
        self.negative_slope = check_real("negative_slope", negative_slope)
        self.inplace = check_bool("inplace", inplace)

    def forward(self, input):
        return F.leaky_relu(input, self.negative_slope)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


class GELU(Module):
    """x·Φ(x) (``approximate="none"``) or its tanh approximation."""

    def __init__(self, approximate="none"):
        super().__init__()
        self.approximate = check_choice("approximate", approximate, ("none", "tanh"))

    def forward(self, input):
        return F.gelu(input, approximate=self.approximate)

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


class Softplus(Module):
    """log(1 + exp(beta·x)) / beta, linear above ``threshold``."""

    def __init__(self, beta=1.0, threshold=20.0):
        super().__init__()
        self.beta = check_real("beta", beta)
        self.threshold = check_real("threshold", threshold)

    def forward(self, input):
        return F.softplus(input, self.beta, self.threshold)

    def extra_repr(self):
        return f"beta={self.beta}, threshold={self.threshold}"


class Tanh(Module):
    def forward(self, input):
        return F.tanh(input)


class Sigmoid(Module):
    def forward(self, input):
        return F.sigmoid(input)


class Softmax(Module):
    """``F.softmax`` along ``dim`` (None: PyTorch's deprecated implicit choice)."""

    def __init__(self, dim=None):
        super().__init__()
        self.dim = None if dim is None else check_int("dim", dim, -(2 ** 63))

    def forward(self, input):
        return F.softmax(input, self.dim, _stacklevel=5)

    def extra_repr(self):
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    """``F.log_softmax`` along ``dim``."""

    def forward(self, input):
        return F.log_softmax(input, self.dim, _stacklevel=5)


class Sequential(Module):
    """Modules applied in order; built from modules or from one OrderedDict of them.
    Submodules are named "0", "1", ... (or by the dict's keys), as in PyTorch."""

    def __init__(self, *args):
        super().__init__()
        if len(args) == 1 and isinstance(args[0], OrderedDict):
            items = list(args[0].items())
        else:
            items = [(str(k), module) for k, module in enumerate(args)]
        for name, module in items:
            if not isinstance(module, Module):
                raise TypeError(f"Sequential: expected Modules, got {type(module).__name__} "
                                f"for {name!r}")
            setattr(self, name, module)

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, index):
        modules = list(self._modules.values())
        if isinstance(index, slice):
            return Sequential(OrderedDict(list(self._modules.items())[index]))
        return modules[index]

    def append(self, module):
        if not isinstance(module, Module):
            raise TypeError(f"module: expected a Module, got {type(module).__name__}")
        setattr(self, str(len(self)), module)
        return self

    def forward(self, input):
        for module in self:
            input = module(input)
        return input


def _weight_buffer(value, name):
    """A loss's class weight as a Tensor (registered as a buffer, as PyTorch does)."""
    if value is None:
        return None
    try:
        tensor = value if isinstance(value, Tensor) else _wrap(_to_storage(value))
    except (TypeError, ValueError):
        tensor = None
    if tensor is None or tensor.dtype.kind != "f":
        raise TypeError(f"{name}: expected a float Tensor, a float array or None, got "
                        f"{type(value).__name__} {value!r}")
    return tensor


class _Loss(Module):
    def __init__(self, size_average=None, reduce=None, reduction="mean"):
        super().__init__()
        self.reduction = F._reduction(size_average, reduce, reduction)


class _WeightedLoss(_Loss):
    def __init__(self, weight=None, size_average=None, reduce=None, reduction="mean"):
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", _weight_buffer(weight, "weight"))


class MSELoss(_Loss):
    """``F.mse_loss`` as a module."""

    def forward(self, input, target):
        return F.mse_loss(input, target, reduction=self.reduction)


class L1Loss(_Loss):
    """``F.l1_loss`` as a module."""

    def forward(self, input, target):
        return F.l1_loss(input, target, reduction=self.reduction)


class SmoothL1Loss(_Loss):
    """``F.smooth_l1_loss`` as a module."""

    def __init__(self, size_average=None, reduce=None, reduction="mean", beta=1.0):
        super().__init__(size_average, reduce, reduction)
        self.beta = check_real("beta", beta, 0.0)

    def forward(self, input, target):
        return F.smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta)


class HuberLoss(_Loss):
    """``F.huber_loss`` as a module."""

    def __init__(self, reduction="mean", delta=1.0):
        super().__init__(reduction=reduction)
        self.delta = check_real("delta", delta)
        if not self.delta > 0:
            raise ValueError(f"delta: expected a number > 0, got {self.delta}")

    def forward(self, input, target):
        return F.huber_loss(input, target, reduction=self.reduction, delta=self.delta)


class NLLLoss(_WeightedLoss):
    """``F.nll_loss`` as a module; ``weight`` (one per class) is a buffer."""

    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None,
                 reduction="mean"):
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = check_int("ignore_index", ignore_index, -(2 ** 63))

    def forward(self, input, target):
        return F.nll_loss(input, target, weight=self.weight, ignore_index=self.ignore_index,
                          reduction=self.reduction)


class CrossEntropyLoss(_WeightedLoss):
    """``F.cross_entropy`` as a module; ``weight`` (one per class) is a buffer."""

    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None,
                 reduction="mean", label_smoothing=0.0):
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = check_int("ignore_index", ignore_index, -(2 ** 63))
        self.label_smoothing = check_real("label_smoothing", label_smoothing, 0.0, 1.0)

    def forward(self, input, target):
        return F.cross_entropy(input, target, weight=self.weight,
                               ignore_index=self.ignore_index, reduction=self.reduction,
                               label_smoothing=self.label_smoothing)


class BCELoss(_WeightedLoss):
    """``F.binary_cross_entropy`` as a module; ``weight`` is a buffer."""

    def forward(self, input, target):
        return F.binary_cross_entropy(input, target, weight=self.weight,
                                      reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    """``F.binary_cross_entropy_with_logits`` as a module; ``weight`` and ``pos_weight``
    are buffers."""

    def __init__(self, weight=None, size_average=None, reduce=None, reduction="mean",
                 pos_weight=None):
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", _weight_buffer(weight, "weight"))
        self.register_buffer("pos_weight", _weight_buffer(pos_weight, "pos_weight"))

    def forward(self, input, target):
        return F.binary_cross_entropy_with_logits(input, target, self.weight,
                                                  reduction=self.reduction,
                                                  pos_weight=self.pos_weight)
