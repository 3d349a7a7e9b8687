"""Argument checks that every module shares (API.md, "Bad input"): each names the
argument, what was expected and what was given, and raises before any kernel runs."""
import numbers

import numpy as np

from .. import backend
from .dtypes import dtype_of


def check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value}")
    return int(value)


def check_bool(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected True or False, got {type(value).__name__} {value!r}")
    return bool(value)


def check_real(name, value, minimum=None, maximum=None):
    """A real number (not a bool) within [minimum, maximum] where those are given."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__} {value!r}")
    value = float(value)
    if (minimum is not None and not value >= minimum) or (maximum is not None and not value <= maximum):
        bounds = f"[{'-inf' if minimum is None else f'{minimum:g}'}, {'inf' if maximum is None else f'{maximum:g}'}]"
        raise ValueError(f"{name}: expected a number in {bounds}, got {value}")
    return value


def check_probability(name, value):
    return check_real(name, value, 0.0, 1.0)


def check_dtype(dtype):
    """The storage dtype of a module: float32 (also for None, PyTorch's default) or
    float64, given as a NumPy dtype or type, its name, or torch.float32/torch.float64."""
    if dtype is None:
        return np.dtype(np.float32)
    message = (f"dtype: expected float32 or float64 (a NumPy dtype, its name, or "
               f"torch.float32/torch.float64), got {dtype!r}")
    try:
        resolved = dtype_of(dtype, kinds="f")
    except TypeError:
        raise TypeError(message) from None
    if resolved not in backend.FLOAT_DTYPES:
        raise TypeError(message)
    return resolved


def check_choice(name, value, choices):
    if value not in choices:
        names = [repr(c) for c in choices]
        listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
        raise ValueError(f"{name}: expected {listed}, got {value!r}")
    return value
