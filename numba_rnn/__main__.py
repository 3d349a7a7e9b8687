"""The demo: ``python -m numba_rnn``.

Builds an LSTM and a GRU, runs forward and backward of ``output.sum()`` on whatever device
is there, checks outputs and every gradient against the NumPy float64 reference, and
prints a short report: each error is max|result - reference| / max|reference| over a
tensor. Exits with status 1 if one exceeds the relative tolerance of the test suite.
"compile" is what the first forward+backward takes beyond a later one's
"forward+backward": compiling the kernels, or (the CPU path's) loading them from the
disk cache.
"""
import argparse
import os
import subprocess
import sys
import time

import numpy as np

import numba_rnn as nr
from numba_rnn import backend
from numba_rnn.testing import TOLERANCES, reference_results, relative_error

# (T, B, I, H, layers): small enough for the simulator, a model's size on the CPU path,
# realistic on a GPU.
SIZES = {"simulator": (5, 3, 4, 8, 2), "cpu": (50, 16, 64, 128, 2),
         "cuda": (100, 64, 512, 512, 2)}


def run_layer(layer_cls, steps, batch, inputs, hidden, layers, dtype, rng):
    layer = layer_cls(inputs, hidden, num_layers=layers, dtype=dtype)
    x_host = rng.standard_normal((steps, batch, inputs)).astype(dtype)
    x = nr.tensor(x_host, requires_grad=True)

    def forward_backward():
        backend.synchronize()
        start = time.perf_counter()
        output, states_n = layer(x)
        output.sum().backward()
        backend.synchronize()
        return output, states_n, time.perf_counter() - start

    # the first call compiles the kernels for this dtype (the CPU path's come from the
    # disk cache where they are there, kernels/cache.py): its time beyond a later call's
    _, _, first = forward_backward()
    layer.zero_grad()
    x.grad = None
    output, states_n, elapsed = forward_backward()

    states_n = states_n if isinstance(states_n, tuple) else (states_n,)
    upstream = [np.ones(output.shape)] + [np.zeros(s.shape) for s in states_n]
    expected = reference_results(layer, x, None, upstream)
    errors = {
        "output": relative_error(output, expected["output"]),
        "final states": max(relative_error(s, expected[name + " final"])
                            for s, name in zip(states_n, ("h_0", "c_0"))),
        "d input": relative_error(x.grad, expected["input"]),
        "d parameters": max(relative_error(p.grad, expected[name])
                            for name, p in layer.named_parameters()),
    }
    return output.shape, max(first - elapsed, 0.0), elapsed, errors


def _in_a_new_process(name, argv):
    """The demo with ``argv`` in a new process on backend ``name``: a process's storage is
    chosen at import (CuPy on a GPU machine, where available_backends() is ("cuda",)),
    so the simulator or the CPU path there needs a process that chooses it from the
    start (NUMBA_RNN_BACKEND). Returns the child's exit status."""
    env = dict(os.environ, NUMBA_RNN_BACKEND=name)
    env.pop("NUMBA_ENABLE_CUDASIM", None)  # the child chooses from NUMBA_RNN_BACKEND alone
    return subprocess.call([sys.executable, "-m", "numba_rnn", *argv], env=env)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(prog="python -m numba_rnn", description=__doc__.split("\n")[1])
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", choices=backend.BACKENDS,
                        help="where to run (default: the GPU if there is one, else the CPU "
                             "path; 'simulator' runs the CUDA kernels in Numba's simulator; "
                             "on a GPU machine 'cpu' and 'simulator' run in a new process)")
    args = parser.parse_args(argv)

    if args.backend and args.backend not in backend.available_backends():
        if args.backend == "cuda":
            parser.error(f"--backend cuda: no usable GPU in this process "
                         f"({backend.device_description()})")
        if os.environ.get("NUMBA_RNN_BACKEND", "").strip().lower() == args.backend:
            parser.error(f"--backend {args.backend}: not available in this process either "
                         f"(available: {', '.join(backend.available_backends())})")
        return _in_a_new_process(args.backend, argv)
    if args.backend:
        backend.set_backend(args.backend)
    name = backend.backend_name()
    steps, batch, inputs, hidden, layers = SIZES[name]
    nr.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    rtol, _ = TOLERANCES[np.dtype(args.dtype)]
    print(f"numba_rnn {nr.__version__} on {name}: {backend.device_description()}")
    print(f"T={steps} B={batch} I={inputs} H={hidden} layers={layers} dtype={args.dtype}; "
          f"loss = output.sum(); oracle: NumPy float64 reference")
    ok = True
    for layer_cls in (nr.LSTM, nr.GRU):
        shape, compiling, elapsed, errors = run_layer(
            layer_cls, steps, batch, inputs, hidden, layers, args.dtype, rng)
        passed = all(e <= rtol for e in errors.values())
        ok &= passed
        report = ", ".join(f"{k} {v:.1e}" for k, v in errors.items())
        print(f"{layer_cls.__name__:4s} output {shape}  compile {compiling:6.2f} s  "
              f"forward+backward {elapsed * 1e3:8.1f} ms\n"
              f"     max error / max |reference|: {report}  "
              f"[{'ok' if passed else 'FAILED'}: bound {rtol:.0e}]")
    print("all checks passed" if ok else "SOME CHECKS FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
