"""Dtypes: the one reading of a user's dtype argument (``dtype_of``)."""
import numpy as np

__all__ = ["dtype_of"]


def dtype_of(value, name="dtype", kinds="biuf"):
    """The NumPy dtype that ``value`` names: a NumPy dtype or scalar type, a name NumPy
    knows ("float32", "int64", ...; note that "float" is NumPy's float64, not
    torch.float), a Python type (float is float64), or a PyTorch dtype (torch.float32,
    ...). Anything else, None included, a dtype whose kind is not in ``kinds`` (b bool,
    i/u integers, f floats), or one the device cannot hold (not in native byte order,
    wider than 8 bytes) is refused with a TypeError naming ``name``."""
    resolved = None
    if type(value).__name__ == "dtype" and type(value).__module__ == "torch":
        value = str(value).rsplit(".", 1)[-1]  # torch.float32 -> "float32"
    if isinstance(value, (str, type, np.dtype)):
        try:
            resolved = np.dtype(value)
        except (TypeError, ValueError):
            resolved = None
    if (resolved is None or resolved.kind not in kinds or not resolved.isnative
            or resolved.itemsize > 8):
        raise TypeError(f"{name}: expected a NumPy dtype, its name or a torch dtype, of "
                        f"kind {', '.join(_KIND_NAMES[k] for k in kinds)}, got {value!r}")
    return resolved


_KIND_NAMES = {"b": "bool", "i": "signed integer", "u": "unsigned integer", "f": "float"}
