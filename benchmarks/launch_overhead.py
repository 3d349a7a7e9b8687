"""What one launch costs, and where an LSTM forward step's time goes (GPU only).

    python benchmarks/launch_overhead.py [--launches N] [--T 100 --B 64 --H 512] [--out DIR]

1. Launch cost of a trivial kernel (one element += 1), N back-to-back launches:
   a numba.cuda kernel given a plain CuPy array (converted and synchronized at every
   launch); the same with a cached ``cuda.as_cuda_array(a, sync=False)`` view on CuPy's
   stream through ``cuda.external_stream``; the same with the launch configuration
   (``kernel[grid, block, stream]``) cached too; through ``numba_rnn.backend.launch``;
   and a CuPy ``ElementwiseKernel``. For each: the host's time per launch
   (``perf_counter``) and the device's (CUDA events around the N launches).
2. Per-step breakdown of the LSTM forward at T, B, H: the recurrent GEMM and the gate
   kernel each timed on the device with the host out of the way (a spinning kernel holds
   the stream while all N launches are queued behind it, so events measure device work
   only), their host issue times, and the whole time loop (numba_rnn's layer_forward) per
   step. The step's time beyond GEMM + kernel on the device is the host's: Python and
   launch overhead between them.

Writes DIR/launch_overhead.json and prints a table. Without a GPU it says so and exits:
the simulator has no launch cost worth measuring.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numba_rnn as nr  # noqa: E402
from numba_rnn import backend, recurrent  # noqa: E402
from numba_rnn.kernels import CELLS  # noqa: E402
from numba_rnn.kernels.steps import step_kernels  # noqa: E402

from common import ON_GPU, environment  # noqa: E402


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--launches", type=int, default=2000)
    p.add_argument("--T", type=int, default=100)
    p.add_argument("--B", type=int, default=64)
    p.add_argument("--H", type=int, default=512)
    p.add_argument("--out", default="benchmarks/results/latest")
    return p.parse_args(argv)


def main(argv=None):
    args = parse(argv)
    if not ON_GPU:
        print("launch_overhead: no GPU (numba_rnn runs in the simulator): launch costs are "
              "only meaningful on a GPU; nothing measured.")
        return 0
    import cupy
    from numba import cuda

    @cuda.jit
    def bump(a):
        i = cuda.grid(1)
        if i < a.shape[0]:
            a[i] += 1

    @cuda.jit
    def spin(ns, rounds):
        for _ in range(rounds):
            cuda.nanosleep(ns)

    stream = cupy.cuda.get_current_stream()
    numba_stream = cuda.external_stream(stream.ptr)
    a = cupy.zeros(1, dtype=np.float32)
    view = cuda.as_cuda_array(a, sync=False)
    configured = bump[1, 32, numba_stream]
    elementwise = cupy.ElementwiseKernel("", "float32 a", "a += 1", "bump")
    variants = {
        "numba, plain CuPy argument": lambda: bump[1, 32](a),
        "numba, cached sync=False view, CuPy's stream": lambda: bump[1, 32, numba_stream](view),
        "numba, cached view and launch configuration": lambda: configured(view),
        "numba_rnn backend.launch (CuPy argument)": lambda: backend.launch(bump, 1, a),
        "CuPy ElementwiseKernel": lambda: elementwise(a),
    }
    n = args.launches
    launch_costs = {}
    for name, fn in variants.items():
        for _ in range(20):
            fn()
        stream.synchronize()
        start, end = cupy.cuda.Event(), cupy.cuda.Event()
        t0 = time.perf_counter()
        start.record()
        for _ in range(n):
            fn()
        end.record()
        host = (time.perf_counter() - t0) / n
        end.synchronize()
        device = cupy.cuda.get_elapsed_time(start, end) / n
        launch_costs[name] = {"host_us": host * 1e6, "device_span_us": device * 1e3}

    # ---- per-step breakdown of the LSTM forward
    T, B, H = args.T, args.B, args.H
    nr.manual_seed(0)
    layer = nr.LSTM(H, H)
    params = layer._layer_params(layer._layer_names[0][0])
    cell = CELLS["lstm"]
    forward_step = step_kernels(cell, np.float32).forward
    x = cupy.random.standard_normal((T, B, H), dtype=np.float32)
    gx = cupy.random.standard_normal((T, B, 4 * H), dtype=np.float32)
    gh = cupy.empty((B, 4 * H), dtype=np.float32)
    h_seq = cupy.zeros((T + 1, B, H), dtype=np.float32)
    c_seq = cupy.zeros((T + 1, B, H), dtype=np.float32)
    saved = cupy.empty((T, B, 4 * H), dtype=np.float32)
    views = backend.kernel_views(gx, gh, params.b_hh, h_seq, c_seq, saved)
    w_hh_t = params.w_hh.T

    def gemm():
        cupy.matmul(h_seq[0], w_hh_t, out=gh)

    def gate():
        backend.launch(forward_step, B * H, 0, B, *views)

    def queued_device_us(fn, count=200):
        """Device time per call with every call queued behind a spinning kernel."""
        fn()
        stream.synchronize()
        # ~20 ms of spinning (20,000 sleeps of about 1 µs): far longer than the host
        # needs to queue `count` calls
        spin[1, 1, numba_stream](1000, 20000)
        start, end = cupy.cuda.Event(), cupy.cuda.Event()
        start.record()
        for _ in range(count):
            fn()
        end.record()
        end.synchronize()
        # the start event fires when the spin ends, so the span is device work only
        # as long as the host queued everything within the spin
        return cupy.cuda.get_elapsed_time(start, end) * 1e3 / count

    def host_us(fn, count=500):
        stream.synchronize()
        t0 = time.perf_counter()
        for _ in range(count):
            fn()
        elapsed = time.perf_counter() - t0
        stream.synchronize()
        return elapsed * 1e6 / count

    batching = recurrent.Batching(None, T, B)
    states0 = [cupy.zeros((B, H), dtype=np.float32)] * 2

    def loop():
        with recurrent.force_path("plain"):  # the GEMM-plus-gate-kernel design
            recurrent.layer_forward(cell, x, states0, params, batching)

    for _ in range(3):
        loop()
    stream.synchronize()
    start, end = cupy.cuda.Event(), cupy.cuda.Event()
    start.record()
    loop()
    end.record()
    end.synchronize()
    loop_us = cupy.cuda.get_elapsed_time(start, end) * 1e3
    breakdown = {
        "T": T, "B": B, "H": H,
        "gemm_device_us": queued_device_us(gemm), "gemm_host_us": host_us(gemm),
        "gate_kernel_device_us": queued_device_us(gate), "gate_kernel_host_us": host_us(gate),
        "layer_forward_us_per_step": loop_us / T,
    }
    breakdown["host_between_us_per_step"] = (breakdown["layer_forward_us_per_step"]
                                             - breakdown["gemm_device_us"]
                                             - breakdown["gate_kernel_device_us"])

    result = {"environment": environment(), "launches": n, "launch_costs": launch_costs,
              "lstm_forward_step": breakdown}
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "launch_overhead.json"), "w") as f:
        json.dump(result, f, indent=1)
    print(f"{result['environment']['device']}: one launch of a trivial kernel, {n} in a row")
    print(f"{'variant':50s} {'host µs':>9s} {'device span µs':>15s}")
    for name, cost in launch_costs.items():
        print(f"{name:50s} {cost['host_us']:9.2f} {cost['device_span_us']:15.2f}")
    print(f"\nLSTM forward step, T={T} B={B} H={H}, µs per step:")
    for key, value in breakdown.items():
        if key.endswith("_us") or key.endswith("_step"):
            print(f"  {key:32s} {value:9.2f}")
    print(f"wrote {args.out}/launch_overhead.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
