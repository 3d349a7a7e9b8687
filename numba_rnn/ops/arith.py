"""Binary arithmetic, comparisons, logic, clamp/maximum/minimum and masked_fill, each
defined once with its derivative beside it: ``Tensor.__add__``, ``Tensor.add`` and
``nr.add`` are ``add``. The other operand may be a Tensor, a Python number (PyTorch's
dtype for it, ``convert.scalar_dtype``), an array or a list; the two are promoted as
PyTorch promotes (``convert.promote``), and the gradients come back in that dtype (the
engine casts them to each input's own). The reflected forms (``radd``, ...) are
``Tensor.__radd__``, ...; the in-place forms (``add_``, ...) write through
``inplace.in_place``."""
import numbers

import numpy as np

from .. import backend
from ..autograd.engine import is_tensor, record, wrap
from ..backend import xp
from .convert import as_tensor, mask_array, operand, promote, unbroadcast
from .inplace import in_place

__all__ = [
    "add", "sub", "mul", "div", "multiply", "divide", "subtract", "true_divide", "neg",
    "negative", "pow", "matmul", "mm", "bmm", "dot", "eq", "ne", "lt", "le", "gt", "ge",
    "greater", "less", "greater_equal", "less_equal", "not_equal", "equal", "allclose",
    "logical_not", "logical_and", "logical_or", "isnan", "isinf", "isfinite", "clamp",
    "clip", "clamp_min", "clamp_max", "maximum", "minimum", "masked_fill",
]


def _prepare(input, other, reflected=False):
    """(a, b, x, y): the operands in order (swapped when ``reflected``) and their
    arrays cast to the promoted dtype."""
    input = as_tensor(input, "input")
    other = operand(input, other)
    a, b = (other, input) if reflected else (input, other)
    dtype = promote(a, b)
    return a, b, a._array.astype(dtype, copy=False), b._array.astype(dtype, copy=False)


def _binary(input, other, forward, backward, reflected=False):
    """``forward(x, y)``, recorded with ``backward(g, x, y)`` (which saves x, y)."""
    a, b, x, y = _prepare(input, other, reflected)
    return record(forward(x, y), (a, b), lambda g: backward(g, x, y))


def _scaled(input, other, alpha):
    """``other``, or alpha·other (the ``alpha`` of add and sub)."""
    if alpha == 1:
        return other
    return mul(operand(as_tensor(input, "input"), other), alpha)


# ------------------------------------------------------------------ arithmetic
def _additive(input, other, sign, reflected=False):
    """input + other (``sign`` 1) or input - other (-1)."""
    a, b, x, y = _prepare(input, other, reflected)
    sa, sb = x.shape, y.shape
    if sign > 0:
        return record(x + y, (a, b), lambda g: (unbroadcast(g, sa), unbroadcast(g, sb)),
                      saves=False)
    return record(x - y, (a, b), lambda g: (unbroadcast(g, sa), -unbroadcast(g, sb)),
                  saves=False)


def add(input, other, alpha=1):
    """input + alpha·other."""
    return _additive(input, _scaled(input, other, alpha), 1)


def radd(input, other):
    """other + input (``Tensor.__radd__``)."""
    return _additive(input, other, 1, reflected=True)


def sub(input, other, alpha=1):
    """input - alpha·other."""
    return _additive(input, _scaled(input, other, alpha), -1)


def rsub(input, other):
    """other - input (``Tensor.__rsub__``)."""
    return _additive(input, other, -1, reflected=True)


def _mul(input, other, reflected=False):
    return _binary(input, other, lambda x, y: x * y,
                   lambda g, x, y: (unbroadcast(g * y, x.shape), unbroadcast(g * x, y.shape)),
                   reflected=reflected)


def mul(input, other):
    return _mul(input, other)


def rmul(input, other):
    """other * input (``Tensor.__rmul__``)."""
    return _mul(input, other, reflected=True)


def _truediv(input, other, reflected=False):
    input = as_tensor(input, "input")
    other = operand(input, other)
    if input.dtype.kind != "f" and other.dtype.kind != "f":  # int / int is float32
        return _truediv(wrap(input._array.astype(np.float32)),
                        wrap(other._array.astype(np.float32)), reflected)
    return _binary(input, other, lambda x, y: x / y,
                   lambda g, x, y: (unbroadcast(g / y, x.shape),
                                    unbroadcast(-g * x / (y * y), y.shape)),
                   reflected=reflected)


def div(input, other, rounding_mode=None):
    """input / other; ``rounding_mode`` "floor" or "trunc" rounds the quotient (no
    gradient; integers stay integers)."""
    if rounding_mode is None:
        return _truediv(input, other)
    check_rounding = {"floor": xp.floor, "trunc": xp.trunc}
    if rounding_mode not in check_rounding:
        raise ValueError(f"rounding_mode: expected None, 'floor' or 'trunc', got "
                         f"{rounding_mode!r}")
    input = as_tensor(input, "input")
    quotient = _truediv(wrap(input._array), other)._array
    result = check_rounding[rounding_mode](quotient)
    if input.dtype.kind != "f" and operand(input, other).dtype.kind != "f":
        result = result.astype(np.promote_types(input.dtype, operand(input, other).dtype))
    return wrap(result)


def rdiv(input, other):
    """other / input (``Tensor.__rtruediv__``)."""
    return _truediv(input, other, reflected=True)


multiply, divide, subtract, true_divide = mul, div, sub, div


def floor_divide(input, other):
    input = as_tensor(input, "input")
    other = operand(input, other)
    return wrap(xp.floor_divide(input._array, other._array))


def rfloordiv(input, other):
    input = as_tensor(input, "input")
    return floor_divide(operand(input, other), input)


def remainder(input, other):
    input = as_tensor(input, "input")
    other = operand(input, other)
    return wrap(xp.remainder(input._array, other._array))


def neg(input):
    input = as_tensor(input, "input")
    return record(-input._array, (input,), lambda g: (-g,), saves=False)


negative = neg


def positive(input):
    return input


def _pow(input, exponent, reflected=False):
    input = as_tensor(input, "input")
    if isinstance(exponent, numbers.Real) and not isinstance(exponent, bool) and not reflected:
        a = input._array
        if a.dtype.kind != "f" and not isinstance(exponent, numbers.Integral):
            a = a.astype(np.float32)
        e = a.dtype.type(exponent) if a.dtype.kind == "f" else exponent
        return record(a ** e, (input,), lambda g: (g * e * a ** (e - 1),))

    def backward(g, x, y):
        z = x ** y
        dx = g * y * x ** (y - 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            dy = g * z * xp.where(x > 0, xp.log(xp.where(x > 0, x, 1)), 0)
        return unbroadcast(dx, x.shape), unbroadcast(dy, y.shape)

    return _binary(input, exponent, lambda x, y: x ** y, backward, reflected=reflected)


def pow(input, exponent):
    return _pow(input, exponent)


def rpow(input, base):
    """base ** input (``Tensor.__rpow__``)."""
    return _pow(input, base, reflected=True)


def _matmul(input, other, reflected=False):
    def backward(g, a, b):
        # Promote 1-D operands as matmul does, so that one rule covers every rank.
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        if b.ndim == 1:
            g = g[..., None]
        if a.ndim == 1:
            g = g[..., None, :]
        da = unbroadcast(g @ xp.swapaxes(b2, -1, -2), a2.shape).reshape(a.shape)
        db = unbroadcast(xp.swapaxes(a2, -1, -2) @ g, b2.shape).reshape(b.shape)
        return da, db

    input = as_tensor(input, "input")
    other = operand(input, other)
    for name, t in (("input", input), ("other", other)):
        if t.ndim == 0:
            raise ValueError(f"matmul: {name}: expected at least 1 dimension, got a "
                             "0-d tensor")
    return _binary(input, other, lambda x, y: x @ y, backward, reflected=reflected)


def matmul(input, other):
    return _matmul(input, other)


def rmatmul(input, other):
    """other @ input (``Tensor.__rmatmul__``)."""
    return _matmul(input, other, reflected=True)


def _ranked_matmul(input, other, name, ranks, message):
    input = as_tensor(input, "input")
    other = operand(input, other)
    if (input.ndim, other.ndim) != ranks or (name == "bmm" and input.shape[0] != other.shape[0]):
        raise ValueError(f"{name}: expected {message}, got shapes {input.shape} and "
                         f"{other.shape}")
    return _matmul(input, other)


def mm(input, other):
    return _ranked_matmul(input, other, "mm", (2, 2), "two 2-D tensors")


def bmm(input, other):
    return _ranked_matmul(input, other, "bmm", (3, 3),
                          "two 3-D tensors with the same batch size")


def dot(input, other):
    return _ranked_matmul(input, other, "dot", (1, 1), "two 1-D tensors")


# ----------------------------------------------------------------- comparisons
def _compare(input, other, op):
    if not (is_tensor(other) or isinstance(other, (numbers.Number, np.bool_, np.ndarray, list,
                                                   tuple))) \
            and not backend.is_device_array(other):
        return NotImplemented
    input = as_tensor(input, "input")
    other = operand(input, other)
    dtype = promote(input, other)
    return wrap(op(input._array.astype(dtype, copy=False),
                   other._array.astype(dtype, copy=False)))


def _comparison(name, op):
    def compare(input, other):
        return _compare(input, other, op)

    compare.__name__ = compare.__qualname__ = name
    compare.__doc__ = f"input {name} other, elementwise (a boolean tensor)."
    return compare


eq, ne = _comparison("eq", xp.equal), _comparison("ne", xp.not_equal)
lt, le = _comparison("lt", xp.less), _comparison("le", xp.less_equal)
gt, ge = _comparison("gt", xp.greater), _comparison("ge", xp.greater_equal)
greater, less, greater_equal, less_equal, not_equal = gt, lt, ge, le, ne


def equal(input, other):
    """True when both have the same shape and elements."""
    input = as_tensor(input, "input")
    other = operand(input, other)
    return input.shape == other.shape and bool(xp.all(input._array == other._array))


def allclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    input = as_tensor(input, "input")
    other = operand(input, other)
    return bool(xp.allclose(input._array, other._array, rtol, atol, equal_nan))


def contains(input, element):
    """``element in input``."""
    input = as_tensor(input, "input")
    return bool(xp.any(input._array == operand(input, element)._array))


# ----------------------------------------------------------------------- logic
def _logical(name, op):
    """An op of input and other's arrays (no gradient)."""
    def logical(input, other):
        input = as_tensor(input, "input")
        return wrap(op(input._array, operand(input, other)._array))

    logical.__name__ = logical.__qualname__ = name
    return logical


def _on_array(name, op):
    """An op of input's array (no gradient)."""
    def on_array(input):
        return wrap(op(as_tensor(input, "input")._array))

    on_array.__name__ = on_array.__qualname__ = name
    return on_array


bitwise_and = _logical("bitwise_and", xp.bitwise_and)
bitwise_or = _logical("bitwise_or", xp.bitwise_or)
bitwise_xor = _logical("bitwise_xor", xp.bitwise_xor)
logical_and = _logical("logical_and", xp.logical_and)
logical_or = _logical("logical_or", xp.logical_or)
bitwise_not = _on_array("bitwise_not", xp.invert)
logical_not = _on_array("logical_not", xp.logical_not)
isnan = _on_array("isnan", xp.isnan)
isinf = _on_array("isinf", xp.isinf)
isfinite = _on_array("isfinite", xp.isfinite)


# --------------------------------------------------- clamp, maximum, minimum
def clamp(input, min=None, max=None):
    """Limit to [min, max] (either may be None, a number or a Tensor); the gradient
    passes where min <= x <= max, as in PyTorch."""
    if min is None and max is None:
        raise ValueError("clamp: expected at least one of min and max, got neither")
    input = as_tensor(input, "input")
    low = None if min is None else operand(input, min)._array
    high = None if max is None else operand(input, max)._array
    x = input._array
    y = x
    if low is not None:
        y = xp.maximum(y, low.astype(x.dtype, copy=False))
    if high is not None:
        y = xp.minimum(y, high.astype(x.dtype, copy=False))
    if input.dtype.kind != "f":
        return wrap(y)

    def backward(g):
        keep = xp.ones(x.shape, dtype=bool)
        if low is not None:
            keep &= x >= low
        if high is not None:
            keep &= x <= high
        return (g * keep,)

    return record(y, (input,), backward)


clip = clamp


def clamp_min(input, min):
    return clamp(input, min=min)


def clamp_max(input, max):
    return clamp(input, max=max)


def tie_split(g, x, y, better):
    """Gradients of maximum/minimum: to the better operand, halved at ties."""
    tie = (x == y) * x.dtype.type(0.5)
    return (unbroadcast(g * (better(x, y) + tie), x.shape),
            unbroadcast(g * (better(y, x) + tie), y.shape))


def maximum(input, other):
    return _binary(input, other, xp.maximum, lambda g, x, y: tie_split(g, x, y, xp.greater))


def minimum(input, other):
    return _binary(input, other, xp.minimum, lambda g, x, y: tie_split(g, x, y, xp.less))


def masked_fill(input, mask, value):
    """Elements where ``mask`` (a boolean tensor broadcastable to input) is true
    replaced by ``value`` (a number or a 0-d tensor)."""
    input = as_tensor(input, "input")
    mask = mask_array(mask, "mask")
    fill = operand(input, value)
    if fill.ndim != 0:
        raise ValueError(f"value: expected a number or a 0-d tensor, got shape {fill.shape}")
    x = input._array
    y = xp.where(mask, fill._array.astype(x.dtype), x)
    shape = x.shape
    return record(y, (input, fill), lambda g: (
        unbroadcast(xp.where(mask, 0, g), shape), xp.where(mask, g, 0).sum().reshape(())),
        saves=False)


# -------------------------------------------------------------------- in place
def _in_place_binary(input, other, op, grads):
    input = as_tensor(input, "input")
    other = operand(input, other)
    old = input._array
    other_shape = other.shape

    def compute(x):
        y = op(x, other._array.astype(x.dtype, copy=False) if x.dtype.kind == "f"
               else other._array)
        if y.shape != x.shape:
            raise ValueError(f"other: shape {other_shape} does not broadcast to the "
                             f"in-place target's shape {x.shape}")
        return y.astype(x.dtype, copy=False)

    return in_place(input, compute, (other,), lambda g: grads(g, old, other._array, other_shape))


def add_(input, other, alpha=1):
    if not isinstance(alpha, numbers.Number):  # the old add_(scalar, tensor) form
        alpha, other = other, alpha
    return _in_place_binary(input, other, lambda x, y: x + alpha * y,
                            lambda g, x, y, s: (g, unbroadcast(alpha * g, s)))


def sub_(input, other, alpha=1):
    return add_(input, other, -alpha)


def mul_(input, other):
    return _in_place_binary(input, other, lambda x, y: x * y,
                            lambda g, x, y, s: (g * y, unbroadcast(g * x, s)))


def div_(input, other):
    return _in_place_binary(input, other, lambda x, y: x / y,
                            lambda g, x, y, s: (g / y, unbroadcast(-g * x / (y * y), s)))


def clamp_(input, min=None, max=None):
    input = as_tensor(input, "input")
    low = -np.inf if min is None else min
    high = np.inf if max is None else max
    old = input._array
    return in_place(input, lambda x: xp.clip(x, low, high).astype(x.dtype), (),
                    lambda g: (g * ((old >= low) & (old <= high)),))


def masked_fill_(input, mask, value):
    input = as_tensor(input, "input")
    mask = mask_array(mask, "mask")
    fill = operand(input, value)
    return in_place(input, lambda x: xp.where(mask, fill._array.astype(x.dtype), x),
                    (), lambda g: (xp.where(mask, 0, g),))
