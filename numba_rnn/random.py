"""The package's random number generator: parameter initialisation and dropout masks
draw from it, so that ``manual_seed`` makes a run reproducible."""
import numpy as np

from . import backend
from .backend import xp

_generator = np.random.default_rng()
_device_generator = None  # cupy.random.RandomState, made on first use on a GPU


def manual_seed(seed):
    """Reseed the generator that initialisation draws from, as ``torch.manual_seed``."""
    global _generator
    _generator = np.random.default_rng(seed)


def uniform(low, high, shape, dtype):
    """A host array of U(low, high) samples."""
    return _generator.uniform(low, high, size=shape).astype(dtype)


def normal(shape, dtype):
    """A host array of N(0, 1) samples."""
    return _generator.standard_normal(size=shape).astype(dtype)


def rand(shape):
    """A host float64 array of U[0, 1) samples."""
    return _generator.random(shape)


def device_uniform(shape, dtype):
    """A device array of U[0, 1) samples of ``dtype``, drawn on the device (cuRAND on a
    GPU) by a generator seeded from the package's, so that ``manual_seed`` reproduces
    it (zoneout and DropConnect masks)."""
    global _device_generator
    seed = int(_generator.integers(0, 2**63 - 1))
    dtype = np.dtype(dtype)
    if backend.backend_name() != "cuda":
        return np.random.default_rng(seed).random(shape, dtype=dtype)
    # one cuRAND generator, reseeded each call: creating one per call would set up (and
    # later free, synchronizing) a generator every forward; Philox reseeds cheaply
    if _device_generator is None:
        from cupy.cuda import curand
        _device_generator = xp.random.RandomState(
            seed, method=curand.CURAND_RNG_PSEUDO_PHILOX4_32_10)
    else:
        _device_generator.seed(seed)
    return _device_generator.random_sample(shape, dtype=dtype)


def keep_mask(shape, p, dtype, draw=None):
    """A device mask of zeros with probability p, else ones (the Bernoulli(1 - p) draw
    under every dropout); ``draw(shape)`` gives the U[0, 1) samples, on the host or the
    device (default: drawn on the device, ``device_uniform``)."""
    dtype = np.dtype(dtype)
    samples = device_uniform(shape, dtype) if draw is None else backend.to_device(draw(shape))
    return (samples >= p).astype(dtype)


def dropout_mask(shape, p, dtype, draw=None):
    """A device mask of zeros with probability p, else 1/(1-p) (all zeros when p is 1):
    ``keep_mask`` scaled so that the mean is kept."""
    dtype = np.dtype(dtype)
    if p >= 1.0:
        return xp.zeros(shape, dtype=dtype)
    return keep_mask(shape, p, dtype, draw) / dtype.type(1.0 - p)


def integers(low, high, shape):
    """A host int64 array of integers in [low, high)."""
    return _generator.integers(low, high, size=shape, dtype=np.int64)


def permutation(n):
    """A host int64 array: a random permutation of range(n)."""
    return _generator.permutation(n).astype(np.int64)


def choice(n, size, replace, p):
    """A host int64 array of ``size`` draws from range(n) with probabilities ``p``."""
    return _generator.choice(n, size=size, replace=replace, p=p).astype(np.int64)
