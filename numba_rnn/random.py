"""The package's random number generator: parameter initialisation and dropout masks
draw from it, so that ``manual_seed`` makes a run reproducible."""
import numpy as np

_generator = np.random.default_rng()


def manual_seed(seed):
    """Reseed the generator that initialisation draws from, as ``torch.manual_seed``."""
    global _generator
    _generator = np.random.default_rng(seed)


def uniform(low, high, shape, dtype):
    """A host array of U(low, high) samples."""
    return _generator.uniform(low, high, size=shape).astype(dtype)


def rand(shape):
    """A host float64 array of U[0, 1) samples (dropout masks)."""
    return _generator.random(shape)
