"""Elementwise ops, each defined once with its derivative beside it: ``Tensor.exp``,
``nr.exp`` and (for the activations) ``F.sigmoid`` are these very functions.

``unary(input, forward, derivative)`` runs ``forward`` on the input's array and records
``derivative(x, y)``, written in terms of the input and output arrays. As in PyTorch, a
float function of an integer tensor computes in float32 (``nr.exp(int_tensor)``), while
the ops that keep integers (``relu``, ``abs``, ``sign``, the roundings) return the
input's dtype.
"""
import math

import numpy as np

from .._core.checks import check_bool, check_choice, check_real
from ..autograd.engine import record, wrap
from ..backend import xp
from .convert import as_tensor

__all__ = ["exp", "log", "log1p", "expm1", "log2", "log10", "sqrt", "rsqrt", "reciprocal",
           "square", "tanh", "sigmoid", "relu", "sin", "cos", "abs", "absolute", "sign",
           "floor", "ceil", "trunc", "round", "leaky_relu", "gelu", "softplus"]


def unary(input, forward, derivative=None):
    """``forward(x)`` elementwise, recorded with ``g·derivative(x, y)`` (None: no
    gradient flows, as for ``sign``)."""
    t = as_tensor(input, "input")
    x = t._array
    if derivative is not None and x.dtype.kind != "f":
        x = x.astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        y = forward(x)
    if derivative is None:
        return wrap(y)
    return record(y, (t,), lambda g: (g * derivative(x, y),))


def stable_sigmoid(a):
    """1 / (1 + exp(-a)) on an array, without overflow for large |a| (exp of -|a| only):
    σ(-100) is 3.7e-44 in float32, not exp(100)'s overflow."""
    e = xp.exp(-xp.abs(a))
    return xp.where(a >= 0, 1 / (1 + e), e / (1 + e))


def stable_softplus(a):
    """log(1 + exp(a)) on an array, without overflow."""
    return xp.maximum(a, 0) + xp.log1p(xp.exp(-xp.abs(a)))


def exp(input):
    return unary(input, xp.exp, lambda x, y: y)


def log(input):
    return unary(input, xp.log, lambda x, y: 1 / x)


def log1p(input):
    return unary(input, xp.log1p, lambda x, y: 1 / (1 + x))


def expm1(input):
    return unary(input, xp.expm1, lambda x, y: y + 1)


def log2(input):
    return unary(input, xp.log2, lambda x, y: 1 / (x * x.dtype.type(np.log(2))))


def log10(input):
    return unary(input, xp.log10, lambda x, y: 1 / (x * x.dtype.type(np.log(10))))


def sqrt(input):
    return unary(input, xp.sqrt, lambda x, y: 0.5 / y)


def rsqrt(input):
    return unary(input, lambda x: 1 / xp.sqrt(x), lambda x, y: -0.5 * y * y * y)


def reciprocal(input):
    return unary(input, lambda x: 1 / x, lambda x, y: -y * y)


def square(input):
    return unary(input, lambda x: x * x, lambda x, y: 2 * x)


def tanh(input):
    return unary(input, xp.tanh, lambda x, y: 1 - y * y)


def sigmoid(input):
    return unary(input, stable_sigmoid, lambda x, y: y * (1 - y))


def relu(input, inplace=False):
    """max(x, 0); an integer tensor stays integer, as in PyTorch. ``inplace`` is accepted
    for PyTorch's signature; the result is a new tensor."""
    check_bool("inplace", inplace)
    t = as_tensor(input, "input")
    if t.dtype.kind != "f":
        return wrap(xp.maximum(t._array, 0).astype(t.dtype, copy=False))
    return unary(t, lambda x: xp.maximum(x, 0), lambda x, y: (x > 0).astype(x.dtype))


def sin(input):
    return unary(input, xp.sin, lambda x, y: xp.cos(x))


def cos(input):
    return unary(input, xp.cos, lambda x, y: -xp.sin(x))


def abs(input):
    t = as_tensor(input, "input")
    if t.dtype.kind != "f":
        return wrap(xp.abs(t._array))
    return unary(t, xp.abs, lambda x, y: xp.sign(x))


absolute = abs


def sign(input):
    return wrap(xp.sign(as_tensor(input, "input")._array))


def _rounded(input, forward):
    """Rounding: PyTorch gives it a zero gradient, so the graph goes on through it; an
    integer tensor is returned as a copy."""
    t = as_tensor(input, "input")
    if t.dtype.kind != "f":
        return wrap(t._array.copy())
    return unary(t, forward, lambda x, y: xp.zeros_like(x))


def floor(input):
    return _rounded(input, xp.floor)


def ceil(input):
    return _rounded(input, xp.ceil)


def trunc(input):
    return _rounded(input, xp.trunc)


def round(input, decimals=0):
    return _rounded(input, lambda x: xp.round(x, decimals))


def leaky_relu(input, negative_slope=0.01, inplace=False):
    """x where x > 0, else negative_slope·x."""
    slope = check_real("negative_slope", negative_slope)
    check_bool("inplace", inplace)
    return unary(input, lambda x: xp.where(x > 0, x, x * x.dtype.type(slope)),
                 lambda x, y: xp.where(x > 0, x.dtype.type(1), x.dtype.type(slope)))


def _erf(a):
    if xp is np:
        return _np_erf(a).astype(a.dtype, copy=False)
    return backend_erf(a)


def backend_erf(a):
    """erf on the GPU's array module (CuPy's SciPy functions; imported with CuPy only)."""
    import cupyx.scipy.special  # noqa: PLC0415  (CuPy is optional: the GPU backend's)

    return cupyx.scipy.special.erf(a)


_np_erf = np.vectorize(math.erf, otypes=[np.float64])


def gelu(input, approximate="none"):
    """x·Φ(x), Φ the standard normal CDF (``approximate="none"``, the exact erf form),
    or its tanh approximation (``approximate="tanh"``)."""
    check_choice("approximate", approximate, ("none", "tanh"))

    def forward(a):
        half = a.dtype.type(0.5)
        if approximate == "none":
            return a * (half * (1 + _erf(a * a.dtype.type(1 / math.sqrt(2.0)))))
        k, c = a.dtype.type(math.sqrt(2 / math.pi)), a.dtype.type(0.044715)
        return half * a * (1 + xp.tanh(k * (a + c * a * a * a)))

    def derivative(a, y):
        half = a.dtype.type(0.5)
        if approximate == "none":
            cdf = half * (1 + _erf(a * a.dtype.type(1 / math.sqrt(2.0))))
            return cdf + a * xp.exp(-half * a * a) * a.dtype.type(1 / math.sqrt(2 * math.pi))
        k, c = a.dtype.type(math.sqrt(2 / math.pi)), a.dtype.type(0.044715)
        t = xp.tanh(k * (a + c * a * a * a))
        return half * (1 + t) + half * a * (1 - t * t) * k * (1 + 3 * c * a * a)

    return unary(input, forward, derivative)


def softplus(input, beta=1.0, threshold=20.0):
    """log(1 + exp(beta·x)) / beta, and x itself where beta·x > threshold."""
    beta, threshold = check_real("beta", beta), check_real("threshold", threshold)

    def forward(a):
        scaled = a * a.dtype.type(beta)
        return xp.where(scaled > threshold, a, stable_softplus(scaled) / a.dtype.type(beta))

    def derivative(a, y):
        scaled = a * a.dtype.type(beta)
        return xp.where(scaled > threshold, 1, stable_sigmoid(scaled)).astype(a.dtype)

    return unary(input, forward, derivative)
