"""Vectorizable exp, sigmoid and tanh for the CPU path, float32 and float64.

``functions(dtype)`` returns ``Activations(exp, sigmoid, tanh)``: scalar functions,
``numba.njit(inline="always", error_model="numpy")``, for np.float32 or np.float64
arguments. They call no libm and no NRT and have no branch in their hot path (every
case is a select), so that LLVM's loop vectorizer turns a loop such as
``for j in range(n): out[j] = sigmoid(a[j])`` into packed AVX2 / AVX-512 code. No
fastmath flag: each operation is IEEE, the fused multiply-adds are ``llvm.fma`` (one
rounding, the same bits scalar or packed, with or without an FMA unit), so results are
bitwise the same run to run and machine to machine. A caller compiles its loop with
``error_model="numpy"`` (no zero-division check per division) and without fastmath.

The math::

    exp(x)     x = k·ln2 + r, k = round(x/ln2), |r| <= ln2/2 (Cody–Waite: r = x - k·ln2_hi
               - k·ln2_lo, by two fmas); e^r = 1 + q(r), q(r) = r + r²·(1/2! + r/3! + ...)
               (Taylor, degree 8 in float32, 13 in float64: truncation < 0.02 ulp);
               2^k = 2^(k>>1) · 2^(k-(k>>1)), each factor a normal number built from its
               exponent bits, so that results in the subnormal range are rounded once
               (no flush to zero); x is clamped first, which makes +inf and large x
               overflow to inf and -inf and very negative x underflow to 0; NaN → NaN.
    sigmoid(x) e = exp(-|x|) in (0, 1]; e/(1+e) for x < 0, 1/(1+e) otherwise: never NaN
               for finite x, accurate (relative) for large negative x down to the
               subnormals.
    tanh(x)    y = -2|x| reduced as in exp, y = k·ln2 + r, s = 2^k; below tanh(|x|) = 1/2,
               m = e^y - 1 = s·q(r) + (s - 1) (k = 0 and so m = q(y) for |y| <= ln2/2: no
               cancellation near 0) and tanh(|x|) = -m/(2+m); above, e = e^y = s·(1 + q(r))
               and tanh(|x|) = 1 - 2e/(1+e); sign restored; ±0 → ±0, tiny x → x,
               saturates to ±1 (y clamped), NaN → NaN.

Accuracy, measured by ``benchmarks/fastmath_accuracy.py`` (table in benchmarks/NOTES.md,
"CPU activations"), held by tests/test_fastmath.py: ``ULP_BOUND``.
"""
import functools
from collections import namedtuple

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

Activations = namedtuple("Activations", ["exp", "sigmoid", "tanh"])

# Largest error in units in the last place of the result (against an unrounded
# reference), measured over every float32 bit pattern and 3e7 float64 values, rounded up
# to 0.1 ulp; the tests hold each function to it.
ULP_BOUND = {
    np.dtype(np.float32): {"exp": 1.0, "sigmoid": 2.5, "tanh": 2.3},
    np.dtype(np.float64): {"exp": 1.0, "sigmoid": 2.3, "tanh": 2.6},
}


@intrinsic
def _fma(typingctx, a, b, c):
    """a·b + c rounded once (llvm.fma: vfmadd on x86 with FMA, a correctly rounded
    libm fma otherwise; the same bits either way)."""
    if not (isinstance(a, types.Float) and a == b == c):
        return None

    def codegen(context, builder, signature, args):
        return builder.fma(*args)

    return a(a, b, c), codegen


@intrinsic
def _float_from_bits(typingctx, bits, like):
    """The float of ``like``'s type whose bit pattern is ``bits`` (truncated to the
    float's width: Numba widens int32 arithmetic to int64)."""
    if not (isinstance(bits, types.Integer) and isinstance(like, types.Float)):
        return None

    def codegen(context, builder, signature, args):
        float_type = context.get_value_type(like)
        int_type = ir.IntType(like.bitwidth)
        value = args[0]
        if value.type.width > like.bitwidth:
            value = builder.trunc(value, int_type)
        elif value.type.width < like.bitwidth:
            value = builder.sext(value, int_type)
        return builder.bitcast(value, float_type)

    return like(bits, like), codegen


def _expm1_coefficients(dtype, degree):
    """1/2!, 1/3!, ..., 1/degree!: q(r) = r + r²·(c[0] + r·c[1] + ...)."""
    factorial, out = 1, []
    for n in range(2, degree + 1):
        factorial *= n
        out.append(dtype(1.0 / factorial))
    return tuple(out)


_PARAMETERS = {
    # degree: e^r - 1 to < 0.02 ulp on |r| <= ln2/2 (truncation r^(d+1)/(d+1)!)
    # mantissa, bias: the format's stored mantissa bits and exponent bias
    # exp_hi, exp_lo: exp's input clamp, past the overflow (ln max = 88.72, 709.78)
    #                 and underflow (ln(min subnormal/2) = -103.97, -744.44) thresholds
    # expm1_lo: tanh's clamp of -2|x|, where tanh is 1 (tanh(|x|) rounds to 1 from 9.01,
    #           19.06)
    # ln2_hi + ln2_lo = ln 2, ln2_hi with trailing zero bits (k·ln2_hi exact)
    np.dtype(np.float32): dict(degree=8, mantissa=23, bias=127, int_type=np.int32,
                               exp_hi=89.0, exp_lo=-104.0, expm1_lo=-40.0,
                               ln2_hi=0.693359375, ln2_lo=-2.12194440e-4),
    np.dtype(np.float64): dict(degree=13, mantissa=52, bias=1023, int_type=np.int64,
                               exp_hi=710.0, exp_lo=-746.0, expm1_lo=-80.0,
                               ln2_hi=6.93147180369123816490e-01,
                               ln2_lo=1.90821492927058770002e-10),
}


@functools.lru_cache(maxsize=None)
def functions(dtype):
    """Activations(exp, sigmoid, tanh) for scalars of ``dtype`` (np.float32/float64)."""
    dtype = np.dtype(dtype)
    p = _PARAMETERS[dtype]
    f = dtype.type
    int_type = p["int_type"]
    zero, one, two = f(0), f(1), f(2)
    log2e = f(1.4426950408889634)
    ln2_hi, ln2_lo = f(p["ln2_hi"]), f(p["ln2_lo"])
    # x·log2e + shift rounds to an integer (to nearest even) for |x·log2e| < 2^(m-1)
    shift = f(1.5 * 2.0 ** p["mantissa"])
    exp_hi, exp_lo, expm1_lo = f(p["exp_hi"]), f(p["exp_lo"]), f(p["expm1_lo"])
    tanh_half = f(0.5493061443340549)             # atanh(1/2) = ln(3)/2
    bias, mantissa = int_type(p["bias"]), int_type(p["mantissa"])
    ione = int_type(1)
    coefficients = _expm1_coefficients(f, p["degree"])
    jit = numba.njit(inline="always", error_model="numpy")

    # Horner over the constant tuple, written out: one fma per coefficient
    c = coefficients[::-1]
    if dtype == np.float32:
        @jit
        def inner(r):
            s = _fma(c[0], r, c[1])
            s = _fma(s, r, c[2]); s = _fma(s, r, c[3]); s = _fma(s, r, c[4])
            s = _fma(s, r, c[5]); s = _fma(s, r, c[6])
            return s
    else:
        @jit
        def inner(r):
            s = _fma(c[0], r, c[1])
            s = _fma(s, r, c[2]); s = _fma(s, r, c[3]); s = _fma(s, r, c[4])
            s = _fma(s, r, c[5]); s = _fma(s, r, c[6]); s = _fma(s, r, c[7])
            s = _fma(s, r, c[8]); s = _fma(s, r, c[9]); s = _fma(s, r, c[10])
            s = _fma(s, r, c[11])
            return s
    assert len(c) == {np.dtype(np.float32): 7, np.dtype(np.float64): 12}[dtype]

    @jit
    def reduce(x):
        """(k, r): x = k·ln2 + r, k integer-valued, |r| <= ln2/2 (+ rounding)."""
        k = (x * log2e + shift) - shift
        r = _fma(k, -ln2_hi, x)
        r = _fma(k, -ln2_lo, r)
        return k, r

    @jit
    def q(r):
        """e^r - 1."""
        return _fma(r * r, inner(r), r)

    @jit
    def pow2(k):
        """2^k for an integer-valued k whose exponent field fits (a normal number)."""
        return _float_from_bits((int_type(k) + bias) << mantissa, one)

    @jit
    def exp(x):
        xc = x if x < exp_hi else exp_hi          # NaN takes this side; masked below
        xc = xc if xc > exp_lo else exp_lo
        k, r = reduce(xc)
        ki = int_type(k)
        k1 = ki >> ione
        # two exact factors of 2^k: the product is rounded once, also when subnormal
        y = (one + q(r)) * pow2(k1) * pow2(ki - k1)
        return x if x != x else y

    @jit
    def sigmoid(x):
        ax = -x if x < zero else x
        e = exp(-ax)
        numerator = e if x < zero else one
        return numerator / (one + e)

    @jit
    def tanh(x):
        ax = -x if x < zero else x
        y = -two * ax
        y = y if y > expm1_lo else expm1_lo       # NaN takes this side; masked below
        k, r = reduce(y)
        s = pow2(k)
        qr = q(r)
        small = ax < tanh_half                    # tanh(|x|) < 1/2
        m = _fma(s, qr, s - one)                  # e^y - 1, no cancellation near 0
        e = _fma(s, qr, s)                        # e^y
        # small |x|: -m/(2+m); else 1 - 2e/(1+e), whose rounding errors scale with e
        numerator = m if small else two * e
        denominator = two + m if small else one + e
        t = (zero if small else one) - numerator / denominator
        t = -t if x < zero else t
        # ±0 and NaN are their own tanh
        return x if (x == zero) | (x != x) else t

    return Activations(exp, sigmoid, tanh)
