"""kernels/fastmath.py's exp, sigmoid, tanh against a long-double reference.

Held to fastmath.ULP_BOUND (measured over every float32 bit pattern and 3e7 float64
values by benchmarks/fastmath_accuracy.py) on a sample small enough for seconds: a
stride through the float32 bit patterns and values around the edges. Special values
exactly, the same bits twice and from a scalar and a vectorized loop, and, on x86-64,
packed FMAs in the compiled float32 loop with no call left in it.
"""
import platform
import re

import numba
import numpy as np
import pytest

from numba_rnn.kernels import fastmath

NAMES = ("exp", "sigmoid", "tanh")
DTYPES = (np.float32, np.float64)


def _loop(dtype, name):
    function = getattr(fastmath.functions(dtype), name)

    @numba.njit(error_model="numpy")
    def loop(a, out):
        for j in range(a.shape[0]):
            out[j] = function(a[j])
    return loop


_LOOPS = {}


def apply(dtype, name, x):
    key = (np.dtype(dtype), name)
    if key not in _LOOPS:
        _LOOPS[key] = _loop(dtype, name)
    out = np.empty_like(x)
    _LOOPS[key](x, out)
    return out


def reference(name, x):
    """In x87 long double (64-bit mantissa: 2^-11 of a float64 ulp)."""
    with np.errstate(all="ignore"):
        x = x.astype(np.longdouble)
        if name == "exp":
            return np.exp(x)
        if name == "sigmoid":
            return 1 / (1 + np.exp(-x))
        return np.tanh(x)


def ulp_errors(dtype, y, ref):
    """|y - ref| in ulps of dtype at ref (subnormal spacing below the smallest normal)."""
    info = np.finfo(dtype)
    _, e = np.frexp(np.abs(ref))
    ulp = np.ldexp(np.longdouble(1), np.maximum(e - 1 - info.nmant, info.minexp - info.nmant))
    return (np.abs(y.astype(np.longdouble) - ref) / ulp).astype(np.float64)


def sample(dtype):
    """float32: every 4099th bit pattern (1e6 values over the whole range); float64:
    log-uniform magnitudes from the smallest subnormal to 2^10, both signs, and uniform
    on [-1, 1] and on [-750, 750]."""
    if dtype == np.float32:
        return np.arange(0, 2 ** 32, 4099, dtype=np.uint64).astype(np.uint32).view(np.float32)
    rng = np.random.default_rng(26)
    n = 300_000
    magnitude = np.exp2(rng.uniform(-1074, 10, n))
    return np.concatenate([magnitude * rng.choice([-1.0, 1.0], n), rng.uniform(-1, 1, n),
                           rng.uniform(-750, 750, n)])


def edges(dtype):
    """The overflow and underflow thresholds, the largest and smallest normals and the
    subnormals, the point where tanh saturates, with their neighbours."""
    info = np.finfo(dtype)
    f = np.dtype(dtype).type
    centres = [np.log(np.longdouble(info.max)), np.log(np.longdouble(info.smallest_subnormal) / 2),
               np.log(np.longdouble(info.smallest_normal)), 0.5493061443340549,
               np.arctanh(1 - np.longdouble(info.eps) / 4), 1.0, 1e-4, 1e-20]
    x = []
    for c in centres:
        v = f(c)
        for _ in range(20):
            v = np.nextafter(v, f(-np.inf))
        for _ in range(40):
            x.append(v)
            v = np.nextafter(v, f(np.inf))
    x = np.array(x, dtype)
    tiny = np.array([info.smallest_subnormal * 3, info.smallest_normal * 0.75,
                     info.smallest_normal, info.max], dtype)
    return np.concatenate([x, -x, tiny, -tiny])


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", NAMES)
def test_within_stated_ulp(dtype, name):
    x = np.concatenate([sample(dtype), edges(dtype)])
    y = apply(dtype, name, x)
    ref = reference(name, x)
    with np.errstate(all="ignore"):
        rounded = ref.astype(dtype)
    finite = np.isfinite(rounded) & np.isfinite(y)
    # where the result or its correctly rounded reference is not finite, they are equal
    np.testing.assert_array_equal(y[~finite], rounded[~finite])
    err = ulp_errors(dtype, y[finite], ref[finite])
    bound = fastmath.ULP_BOUND[np.dtype(dtype)][name]
    worst = int(np.argmax(err))
    assert err[worst] <= bound, (name, x[finite][worst], err[worst], bound)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_special_values(dtype):
    info = np.finfo(dtype)
    inf, nan = np.inf, np.nan
    x = np.array([0.0, -0.0, inf, -inf, nan, info.max, -info.max,
                  info.smallest_subnormal, -info.smallest_subnormal], dtype)
    expected = {
        "exp": [1, 1, inf, 0, nan, inf, 0, 1, 1],
        "sigmoid": [0.5, 0.5, 1, 0, nan, 1, 0, 0.5, 0.5],
        "tanh": [0.0, -0.0, 1, -1, nan, 1, -1, info.smallest_subnormal,
                 -info.smallest_subnormal],
    }
    for name in NAMES:
        y = apply(dtype, name, x)
        want = np.array(expected[name], dtype)
        np.testing.assert_array_equal(y, want, err_msg=name)
        np.testing.assert_array_equal(np.signbit(y[~np.isnan(y)]),
                                      np.signbit(want[~np.isnan(want)]), err_msg=name)
    # the largest finite exp and the smallest subnormal one, the last values before 0
    f = np.dtype(dtype).type
    overflow = f(np.log(np.longdouble(info.max)))
    below = np.nextafter(overflow, f(0))
    big = apply(dtype, "exp", np.array([below, np.nextafter(overflow, f(np.inf))], dtype))
    assert np.isfinite(big[0]) and big[1] == np.inf
    underflow = np.log(np.longdouble(info.smallest_subnormal) / 2)
    small = apply(dtype, "exp", np.array([np.nextafter(f(underflow), f(0)),
                                          np.nextafter(f(underflow), f(-np.inf))], dtype))
    np.testing.assert_array_equal(small, np.array([info.smallest_subnormal, 0], dtype))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_deterministic_scalar_and_vector(dtype):
    """The same bits twice, and from a scalar call per value (no vector loop) as from the
    vectorized loop: llvm.fma rounds once either way."""
    functions = fastmath.functions(dtype)
    x = sample(dtype)[:50_000]

    @numba.njit(error_model="numpy")
    def one_at_a_time(a, out, which):
        for j in range(a.shape[0]):
            v = a[j]
            if which == 0:
                out[j] = functions.exp(v)
            elif which == 1:
                out[j] = functions.sigmoid(v)
            else:
                out[j] = functions.tanh(v)
            if v != v:      # a branch per value keeps this loop scalar
                out[j] = v

    for which, name in enumerate(NAMES):
        first = apply(dtype, name, x)
        second = apply(dtype, name, x)
        scalar = np.empty_like(x)
        one_at_a_time(x, scalar, which)
        bits = np.uint32 if dtype == np.float32 else np.uint64
        np.testing.assert_array_equal(first.view(bits), second.view(bits), err_msg=name)
        np.testing.assert_array_equal(first.view(bits), scalar.view(bits), err_msg=name)


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                    reason="checks x86-64 assembly (ymm/zmm registers)")
@pytest.mark.parametrize("name", NAMES)
def test_float32_loop_vectorizes(name):
    loop = _loop(np.float32, name)
    signature = (numba.float32[::1], numba.float32[::1])
    loop.compile(signature)
    asm = loop.inspect_asm(signature)
    body = asm.split("@function")[1]       # the loop's function, not its CPython wrapper
    assert re.search(r"\bvfn?m(add|sub)\w*ps\s.*\b[yz]mm", body), "no packed FMA"
    assert not re.search(r"^\s*call", body, re.M), "a call is left in the loop"
