"""Accuracy, vectorization and speed of numba_rnn/kernels/fastmath.py's exp, sigmoid, tanh.

    python benchmarks/fastmath_accuracy.py                 # everything (minutes)
    python benchmarks/fastmath_accuracy.py --float32-stride 7 --float64-samples 1000000

Error in ulp = |ours - reference| / ulp(reference), ulp of the format the result is in
(subnormal spacing below the smallest normal), with the reference unrounded:
- float32, over every bit pattern (or every ``--float32-stride``-th): the reference is
  glibc's float64 exp/tanh (and 1/(1+exp(-x)) in float64), accurate to ~1e-16 relative,
  so the error is known to ~1e-8 ulp of float32;
- float64, over a sample (log-uniform magnitudes from the smallest subnormal to past the
  overflow threshold, uniform on [-1, 1] and on [-750, 750]): the reference is x87
  long double (64-bit mantissa, expl/tanhl), 2^-11 of a float64 ulp.
A result that is not finite (or whose reference is not) must equal the correctly rounded
reference exactly; the table counts those that do not. Prints markdown (the table in
benchmarks/NOTES.md, "CPU activations").
"""
import argparse
import math
import re
import sys
import time
from pathlib import Path

import numba
import numpy as np
from numba import prange

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from numba_rnn.kernels import fastmath  # noqa: E402
from numba_rnn.kernels.fastmath import _float_from_bits  # noqa: E402

NAMES = ("exp", "sigmoid", "tanh")
F32 = fastmath.functions(np.float32)


@numba.njit
def _sigmoid64(x):
    return 1.0 / (1.0 + math.exp(-x))


_REFERENCE64 = {"exp": numba.njit(lambda x: math.exp(x)), "sigmoid": _sigmoid64,
                "tanh": numba.njit(lambda x: math.tanh(x))}


def _float32_sweep(name):
    ours = getattr(F32, name)
    reference = _REFERENCE64[name]

    @numba.njit(parallel=True, error_model="numpy")
    def sweep(stride, chunks):
        """Over bit patterns 0, stride, 2·stride, ... < 2^32, per chunk: largest error
        (ulp), its pattern, non-finite mismatches, results not correctly rounded."""
        total = (2 ** 32 + stride - 1) // stride
        per_chunk = (total + chunks - 1) // chunks
        worst = np.zeros(chunks)
        worst_bits = np.zeros(chunks, np.int64)
        bad_special = np.zeros(chunks, np.int64)
        not_rounded = np.zeros(chunks, np.int64)
        one = np.float32(1)
        for c in prange(chunks):
            for i in range(c * per_chunk, min(total, (c + 1) * per_chunk)):
                bits = i * stride
                x = _float_from_bits(bits, one)
                y = ours(x)
                ref = reference(np.float64(x))
                ref32 = np.float32(ref)
                if not (math.isfinite(ref32) and math.isfinite(y)):
                    same = (y == ref32) or (y != y and ref32 != ref32)
                    bad_special[c] += 0 if same else 1
                    continue
                if y != ref32:
                    not_rounded[c] += 1
                m, e = math.frexp(abs(ref))
                ulp = math.ldexp(1.0, max(e - 24, -149))
                err = abs(np.float64(y) - ref) / ulp
                if err > worst[c]:
                    worst[c] = err
                    worst_bits[c] = bits
        return worst, worst_bits, bad_special, not_rounded

    return sweep


def float32_table(stride):
    rows = []
    for name in NAMES:
        start = time.perf_counter()
        worst, worst_bits, bad_special, not_rounded = _float32_sweep(name)(stride, 256)
        c = int(np.argmax(worst))
        x = np.array([worst_bits[c]], np.int64).astype(np.uint32).view(np.float32)[0]
        count = (2 ** 32 + stride - 1) // stride
        rows.append((name, "float32", count, worst[c], float(x), int(bad_special.sum()),
                     int(not_rounded.sum()) / count, time.perf_counter() - start))
    return rows


def _float64_sample(count, rng):
    """count values: log-uniform |x| over [2^-1074, 2^10] with random sign (a third),
    uniform on [-1, 1] (a third) and on [-750, 750] (a third)."""
    third = count // 3
    magnitude = np.exp2(rng.uniform(-1074, 10, third))
    sign = rng.choice([-1.0, 1.0], third)
    return np.concatenate([magnitude * sign, rng.uniform(-1, 1, third),
                           rng.uniform(-750, 750, count - 2 * third)])


def _reference_longdouble(name, x):
    with np.errstate(all="ignore"):
        x = x.astype(np.longdouble)
        if name == "exp":
            return np.exp(x)
        if name == "sigmoid":
            return 1 / (1 + np.exp(-x))
        return np.tanh(x)


def _array_loop(function):
    @numba.njit(error_model="numpy")
    def loop(a, out):
        for j in range(a.shape[0]):
            out[j] = function(a[j])
    return loop


def _errors64(name, x, loop):
    """(ulp errors of the finite results, non-finite mismatches, not correctly rounded)"""
    y = np.empty_like(x)
    loop(x, y)
    ref = _reference_longdouble(name, x)
    with np.errstate(all="ignore"):
        ref64 = ref.astype(np.float64)
    finite = np.isfinite(ref64) & np.isfinite(y)
    special = ~finite
    bad = special & ~((y == ref64) | (np.isnan(y) & np.isnan(ref64)))
    _, e = np.frexp(np.abs(ref[finite]))
    ulp = np.ldexp(np.longdouble(1), np.maximum(e - 53, -1074))
    err = (np.abs(y[finite].astype(np.longdouble) - ref[finite]) / ulp).astype(np.float64)
    return err, x[finite], int(bad.sum()), int((y[finite] != ref64[finite]).sum())


def float64_table(samples, seed=0):
    functions = fastmath.functions(np.float64)
    rows = []
    for name in NAMES:
        start = time.perf_counter()
        loop = _array_loop(getattr(functions, name))
        rng = np.random.default_rng(seed)
        worst, worst_x, bad, not_rounded, done = 0.0, 0.0, 0, 0, 0
        while done < samples:
            x = _float64_sample(min(2_000_000, samples - done), rng)
            err, xf, b, n = _errors64(name, x, loop)
            if err.size and err.max() > worst:
                worst, worst_x = float(err.max()), float(xf[np.argmax(err)])
            bad, not_rounded, done = bad + b, not_rounded + n, done + x.size
        rows.append((name, "float64", samples, worst, worst_x, bad, not_rounded / samples,
                     time.perf_counter() - start))
    return rows


def special_values(dtype):
    """(x, exp, sigmoid, tanh) of ours and the correctly rounded reference at the edges."""
    f = np.dtype(dtype).type
    info = np.finfo(dtype)
    overflow = np.log(np.longdouble(info.max))
    underflow = np.log(np.longdouble(info.smallest_subnormal) / 2)
    xs = [0.0, -0.0, np.inf, -np.inf, np.nan, info.max, -info.max, info.smallest_normal,
          -info.smallest_normal, info.smallest_subnormal, -info.smallest_subnormal,
          overflow, np.nextafter(f(overflow), f(np.inf)), underflow,
          np.nextafter(f(underflow), f(-np.inf)), 1.0, -1.0, 20.0, -20.0]
    x = np.array(xs, dtype)
    functions = fastmath.functions(dtype)
    out = []
    for name in NAMES:
        y = np.empty_like(x)
        _array_loop(getattr(functions, name))(x, y)
        with np.errstate(all="ignore"):
            ref = _reference_longdouble(name, x).astype(dtype)
        out.append((y, ref))
    return x, out


def vectorization(dtype=np.float32):
    """Per function: packed FMAs and multiplies on ymm/zmm, and any call left in the
    loop's own function (the CPython wrapper around it is not counted)."""
    functions = fastmath.functions(dtype)
    out = {}
    for name in NAMES:
        loop = _array_loop(getattr(functions, name))
        signature = (numba.typeof(np.empty(1, dtype)),) * 2
        loop.compile(signature)
        asm = loop.inspect_asm(signature)
        # the loop's own function: from its label to the next function's (the CPython
        # wrapper, whose calls are the interpreter's)
        body = asm.split("@function")[1]
        fma = len(re.findall(r"\bvfn?m(?:add|sub)\w*p[sd]\s.*\b[yz]mm", body))
        mul = len(re.findall(r"\bvmulp[sd]\s.*\b[yz]mm", body))
        calls = [line.strip() for line in body.splitlines()
                 if re.match(r"\s*call", line)]
        widths = sorted(set(re.findall(r"\b([yz]mm)\d+", body)))
        out[name] = (fma, mul, calls, widths)
    return out


def timing(n=1_000_000, repeats=20):
    """Median ns per element: ours in a compiled loop, NumPy's ufunc."""
    rows = []
    for dtype in (np.float32, np.float64):
        x = np.random.default_rng(1).uniform(-10, 10, n).astype(dtype)
        y = np.empty_like(x)
        functions = fastmath.functions(dtype)
        numpy_versions = {"exp": lambda a: np.exp(a, out=y),
                          "sigmoid": lambda a: np.divide(1, 1 + np.exp(-a), out=y),
                          "tanh": lambda a: np.tanh(a, out=y)}
        for name in NAMES:
            loop = _array_loop(getattr(functions, name))
            loop(x, y)
            times = {}
            for label, run in (("ours", lambda: loop(x, y)),
                               ("numpy", lambda: numpy_versions[name](x))):
                samples = []
                for _ in range(repeats):
                    start = time.perf_counter()
                    run()
                    samples.append(time.perf_counter() - start)
                times[label] = np.median(samples) / n * 1e9
            rows.append((name, np.dtype(dtype).name, times["ours"], times["numpy"]))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--float32-stride", type=int, default=1)
    parser.add_argument("--float64-samples", type=int, default=30_000_000)
    args = parser.parse_args()

    print("| function | dtype | values | max error (ulp) | at x | non-finite mismatches "
          "| not correctly rounded | seconds |")
    print("|---|---|---|---|---|---|---|---|")
    for rows in (float32_table(args.float32_stride), float64_table(args.float64_samples)):
        for name, dtype, count, worst, x, bad, fraction, seconds in rows:
            print(f"| {name} | {dtype} | {count:.3g} | {worst:.3f} | {x!r} | {bad} "
                  f"| {100 * fraction:.2f}% | {seconds:.0f} |", flush=True)

    for dtype in (np.float32, np.float64):
        x, results = special_values(dtype)
        print(f"\nSpecial values, {np.dtype(dtype).name}: x → ours (reference rounded) "
              "for exp, sigmoid, tanh; * marks a difference")
        for i, xi in enumerate(x):
            cells = []
            for y, ref in results:
                same = y[i] == ref[i] or (np.isnan(y[i]) and np.isnan(ref[i]))
                same = same and np.signbit(y[i]) == np.signbit(ref[i])
                cells.append(f"{y[i]!r}" + ("" if same else f" ({ref[i]!r}) *"))
            print(f"- {xi!r}: " + "; ".join(cells))

    print("\nVectorization (float32 loop out[j] = f(a[j])): packed FMAs, packed "
          "multiplies, registers, calls in the loop function")
    for name, (fma, mul, calls, widths) in vectorization().items():
        print(f"- {name}: {fma} vfmadd/vfnmadd…ps, {mul} vmulps, {'/'.join(widths)}, "
              f"calls: {calls or 'none'}")

    print("\n| function | dtype | ours ns/value | NumPy ns/value |\n|---|---|---|---|")
    for name, dtype, ours, numpy_time in timing():
        print(f"| {name} | {dtype} | {ours:.2f} | {numpy_time:.2f} |")


if __name__ == "__main__":
    main()
