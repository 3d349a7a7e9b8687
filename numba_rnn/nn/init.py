"""``torch.nn.init`` in numba_rnn: in-place initialisers of parameters.

Each function writes the tensor's storage in place, records no graph (a Parameter stays
a leaf, its ``.grad`` untouched), counts the write in the tensor's version (so that a
graph that saved the old values refuses to run backward, as PyTorch's version counters
do) and returns the tensor. Random draws come from ``nr.manual_seed``'s generator (or
from ``generator=``, a ``numpy.random.Generator``): the same seed gives the same values,
though not PyTorch's values.
"""
import math
import numbers
import warnings

import numpy as np

from .. import backend, random
from ..tensor import Tensor
from .checks import check_choice, check_real

__all__ = ["calculate_gain", "uniform_", "normal_", "trunc_normal_", "constant_", "zeros_",
           "ones_", "eye_", "xavier_uniform_", "xavier_normal_", "kaiming_uniform_",
           "kaiming_normal_", "orthogonal_"]

_LINEAR = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
           "conv_transpose3d")
NONLINEARITIES = _LINEAR + ("sigmoid", "tanh", "relu", "leaky_relu", "selu")


def calculate_gain(nonlinearity, param=None):
    """The recommended gain for ``nonlinearity`` (a ``nn.functional`` name), as
    ``torch.nn.init.calculate_gain``: 1 for linear ones and sigmoid, 5/3 for tanh, √2
    for relu, √(2 / (1 + slope²)) for leaky_relu (slope ``param``, default 0.01), 3/4
    for selu."""
    check_choice("nonlinearity", nonlinearity, NONLINEARITIES)
    if nonlinearity in _LINEAR or nonlinearity == "sigmoid":
        return 1
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, numbers.Real) and not isinstance(param, bool):
            slope = float(param)
        else:
            raise ValueError(f"param: expected a number (the negative slope) or None, got "
                             f"{type(param).__name__} {param!r}")
        return math.sqrt(2.0 / (1 + slope ** 2))
    return 3.0 / 4  # selu


def _check_tensor(tensor, floating=False):
    if not isinstance(tensor, Tensor):
        raise TypeError(f"tensor: expected a numba_rnn Tensor, got {type(tensor).__name__}")
    if floating and tensor.dtype not in backend.FLOAT_DTYPES:
        raise TypeError(f"tensor: expected a float32 or float64 tensor, got dtype {tensor.dtype}")
    return tensor


def _check_generator(generator):
    if generator is not None and not isinstance(generator, np.random.Generator):
        raise TypeError(f"generator: expected None (nr.manual_seed's generator) or a "
                        f"numpy.random.Generator, got {type(generator).__name__}")
    return generator


def _uniform(shape, a, b, generator):
    if generator is None:
        return random.uniform(a, b, shape, np.float64)
    return generator.uniform(a, b, size=shape)


def _standard_normal(shape, generator):
    if generator is None:
        return random.normal(shape, np.float64)
    return generator.standard_normal(size=shape)


def _write(tensor, host):
    """Copy ``host`` (a NumPy array or a scalar) into the tensor's storage, in place."""
    if isinstance(host, np.ndarray):
        host = backend.to_device(np.ascontiguousarray(host, dtype=tensor.dtype))
    tensor._array[...] = host
    tensor._write_()
    return tensor


def _calculate_fan_in_and_fan_out(tensor):
    """(fan_in, fan_out) of a weight of shape (out, in, *receptive field), as PyTorch's
    function of the same name."""
    _check_tensor(tensor)
    if tensor.ndim < 2:
        raise ValueError(f"tensor: fan in and fan out can be computed only for a tensor "
                         f"with 2 or more dimensions, got shape {tensor.shape}")
    receptive = 1
    for size in tensor.shape[2:]:
        receptive *= size
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def _calculate_correct_fan(tensor, mode):
    check_choice("mode", mode, ("fan_in", "fan_out"))
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def uniform_(tensor, a=0.0, b=1.0, generator=None):
    """Fill ``tensor`` with U(a, b) samples."""
    _check_tensor(tensor, floating=True)
    a, b = check_real("a", a), check_real("b", b)
    if not a <= b:
        raise ValueError(f"b: expected a number >= a ({a}), got {b}")
    _check_generator(generator)
    return _write(tensor, _uniform(tensor.shape, a, b, generator))


def normal_(tensor, mean=0.0, std=1.0, generator=None):
    """Fill ``tensor`` with N(mean, std²) samples."""
    _check_tensor(tensor, floating=True)
    mean, std = check_real("mean", mean), check_real("std", std, 0.0)
    _check_generator(generator)
    return _write(tensor, mean + std * _standard_normal(tensor.shape, generator))


def trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0, generator=None):
    """Fill ``tensor`` with N(mean, std²) samples truncated to [a, b] (rejection
    sampling: redrawn until they fall inside)."""
    _check_tensor(tensor, floating=True)
    mean, a, b = check_real("mean", mean), check_real("a", a), check_real("b", b)
    std = check_real("std", std, 0.0)
    if not std > 0:
        raise ValueError(f"std: expected a number > 0, got {std}")
    if not a < b:
        raise ValueError(f"b: expected a number > a ({a}), got {b}")
    _check_generator(generator)
    if mean < a - 2 * std or mean > b + 2 * std:
        warnings.warn("mean is more than 2 std from [a, b] in nn.init.trunc_normal_. "
                      "The distribution of values may be incorrect.", stacklevel=2)

    def cdf(z):
        return (1.0 + math.erf(z / math.sqrt(2.0))) / 2.0

    shape, size = tensor.shape, tensor.numel()
    values = np.empty(size)
    pending = np.ones(size, dtype=bool)
    if cdf((b - mean) / std) - cdf((a - mean) / std) > 0.3:  # normal proposals
        while pending.any():
            values[pending] = mean + std * _standard_normal(int(pending.sum()), generator)
            pending &= (values < a) | (values > b)
    else:  # uniform proposals on [a, b], accepted with the normal density's ratio
        mode = max(a, min(mean, b))
        while pending.any():
            count = int(pending.sum())
            candidates = _uniform(count, a, b, generator)
            ratio = np.exp(-0.5 * ((candidates - mean) / std) ** 2
                           + 0.5 * ((mode - mean) / std) ** 2)
            accepted = _uniform(count, 0.0, 1.0, generator) < ratio
            slots = np.flatnonzero(pending)
            values[slots[accepted]] = candidates[accepted]
            pending[slots[accepted]] = False
    low, high = tensor.dtype.type(a), tensor.dtype.type(b)
    return _write(tensor, np.clip(values.astype(tensor.dtype), low, high).reshape(shape))


def constant_(tensor, val):
    """Fill ``tensor`` with ``val``."""
    _check_tensor(tensor)
    if not isinstance(val, numbers.Number) or isinstance(val, complex):
        raise TypeError(f"val: expected a real number, got {type(val).__name__} {val!r}")
    return _write(tensor, val)


def zeros_(tensor):
    """Fill ``tensor`` with 0."""
    return _write(_check_tensor(tensor), 0)


def ones_(tensor):
    """Fill ``tensor`` with 1."""
    return _write(_check_tensor(tensor), 1)


def eye_(tensor):
    """Fill the 2-D ``tensor`` with the identity matrix (ones on the main diagonal of a
    rectangular one)."""
    _check_tensor(tensor)
    if tensor.ndim != 2:
        raise ValueError(f"tensor: expected a 2-D tensor, got shape {tensor.shape}")
    return _write(tensor, np.eye(*tensor.shape))


def xavier_uniform_(tensor, gain=1.0, generator=None):
    """Fill ``tensor`` with U(-a, a), a = gain·√(6 / (fan_in + fan_out)) (Glorot and
    Bengio, 2010)."""
    _check_tensor(tensor, floating=True)
    gain = check_real("gain", gain)
    _check_generator(generator)
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    bound = math.sqrt(3.0) * gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return _write(tensor, _uniform(tensor.shape, -bound, bound, generator))


def xavier_normal_(tensor, gain=1.0, generator=None):
    """Fill ``tensor`` with N(0, std²), std = gain·√(2 / (fan_in + fan_out))."""
    _check_tensor(tensor, floating=True)
    gain = check_real("gain", gain)
    _check_generator(generator)
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return _write(tensor, std * _standard_normal(tensor.shape, generator))


def _kaiming_std(tensor, a, mode, nonlinearity, generator):
    _check_tensor(tensor, floating=True)
    a = check_real("a", a)
    check_choice("mode", mode, ("fan_in", "fan_out"))
    check_choice("nonlinearity", nonlinearity, NONLINEARITIES)
    _check_generator(generator)
    if 0 in tensor.shape:
        return None
    return calculate_gain(nonlinearity, a) / math.sqrt(_calculate_correct_fan(tensor, mode))


def kaiming_uniform_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """Fill ``tensor`` with U(-bound, bound), bound = gain·√(3 / fan) (He et al., 2015);
    ``a``: the negative slope of leaky_relu; ``mode``: "fan_in" or "fan_out"."""
    std = _kaiming_std(tensor, a, mode, nonlinearity, generator)
    if std is None:
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=2)
        return tensor
    bound = math.sqrt(3.0) * std
    return _write(tensor, _uniform(tensor.shape, -bound, bound, generator))


def kaiming_normal_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """Fill ``tensor`` with N(0, std²), std = gain / √fan (He et al., 2015)."""
    std = _kaiming_std(tensor, a, mode, nonlinearity, generator)
    if std is None:
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=2)
        return tensor
    return _write(tensor, std * _standard_normal(tensor.shape, generator))


def orthogonal_(tensor, gain=1, generator=None):
    """Fill ``tensor`` (2 or more dimensions, the trailing ones flattened) with a (semi-)
    orthogonal matrix times ``gain``: the Q of the QR factorisation of a normal matrix,
    its columns' signs fixed by R's diagonal so that Q is uniformly distributed (Saxe et
    al., 2013)."""
    _check_tensor(tensor, floating=True)
    gain = check_real("gain", gain)
    _check_generator(generator)
    if tensor.ndim < 2:
        raise ValueError(f"tensor: expected 2 or more dimensions, got shape {tensor.shape}")
    if tensor.numel() == 0:
        return tensor
    rows = tensor.shape[0]
    cols = tensor.numel() // rows
    flattened = _standard_normal((rows, cols), generator)
    if rows < cols:
        flattened = flattened.T
    q, r = np.linalg.qr(flattened)
    q = q * np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return _write(tensor, (gain * q).reshape(tensor.shape))
