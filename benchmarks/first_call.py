"""First-call latency: run in a fresh process, it times the first and the second
forward+backward of ``nr.LSTM(input, hidden)`` on this process's backend (printed first:
cuda, cpu or simulator) and each kernel compilation of the first. On the CPU path those
are Numba's "numba:compile" events (outermost only: a compile with what it inlines); on
a GPU, each ``CUDADispatcher.compile`` (a kernel for one signature: NVVM, nvJitLink and
loading it, or loading it from numba-cuda's disk cache). A kernel loaded from the disk
cache (kernels/cache.py) compiles nothing: ``loaded`` counts them.

    python benchmarks/first_call.py [--hidden 128] [--steps 50] [--batch 16]
                                    [--jsonl FILE --tag cold]
    python benchmarks/first_call.py --offline [--path plain]

Run it twice with the same NUMBA_RNN_CACHE_DIR for the cold and the warm figures (an
empty folder first). ``--jsonl`` appends the figures as one JSON line (event
"first_call"; benchmarks/gpu_check.sh's first-call stage). ``--offline`` needs no GPU:
it records the launches of one forward+backward in the simulator on ``--path`` (plain,
the GPU's default, fused, persistent, or all) and times ``compile_ptx`` (NVVM) and the
link (nvJitLink) of each kernel for sm_90 with its launch signatures, in one
NUMBA_RNN_COMPILE_ONLY=1 process (numba_rnn/kernels/compile.py): offline compile
times on this CPU, not a GPU's figures.
"""
import argparse
import json
import os
import sys
import time

start = time.perf_counter()
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import numba_rnn as nr  # noqa: E402
from numba_rnn import backend  # noqa: E402

imported = time.perf_counter() - start


class CompileTimes:
    """Listener of "numba:compile" events: (function, seconds) of each outermost one."""

    def __init__(self):
        self.open, self.done = [], []

    def on_start(self, event):
        self.open.append(time.perf_counter())

    def on_end(self, event):
        began = self.open.pop()
        if not self.open:
            self.done.append((event.data["dispatcher"].py_func.__name__,
                              time.perf_counter() - began, False))


def _listen(listener):
    from numba.core import event

    class Listener(event.Listener):
        on_start = staticmethod(listener.on_start)
        on_end = staticmethod(listener.on_end)

    event.register("numba:compile", Listener())


def _time_cuda_compiles(listener):
    """Time each CUDADispatcher.compile that does work (numba-cuda sends no compile
    events for kernels): (kernel, seconds, loaded from the disk cache)."""
    from numba.cuda.dispatcher import CUDADispatcher

    compile_one = CUDADispatcher.compile

    def timed(self, sig):
        hits = sum(self._cache_hits.values())
        misses = sum(self._cache_misses.values())
        began = time.perf_counter()
        kernel = compile_one(self, sig)
        if sum(self._cache_misses.values()) > misses or sum(self._cache_hits.values()) > hits:
            listener.done.append((self.py_func.__name__, time.perf_counter() - began,
                                  sum(self._cache_hits.values()) > hits))
        return kernel

    CUDADispatcher.compile = timed


def measure(args):
    compiles = CompileTimes()
    if backend.backend_name() == "cuda":
        _time_cuda_compiles(compiles)
    else:
        _listen(compiles)
    layer = nr.LSTM(args.input, args.hidden, dtype=args.dtype)
    x = nr.tensor(np.random.default_rng(0).standard_normal(
        (args.steps, args.batch, args.input)).astype(args.dtype), requires_grad=True)

    def forward_backward():
        backend.synchronize()
        began = time.perf_counter()
        output, _ = layer(x)
        output.sum().backward()
        backend.synchronize()
        return time.perf_counter() - began

    first, second = forward_backward(), forward_backward()
    from numba_rnn.kernels import cache
    return {"event": "first_call", "backend": backend.backend_name(),
            "cache_dir": cache.folder(), "T": args.steps, "B": args.batch, "I": args.input,
            "H": args.hidden, "dtype": args.dtype, "import_s": round(imported, 3),
            "first_s": round(first, 3), "second_ms": round(second * 1e3, 2),
            "compiled_s": round(sum(s for _, s, loaded in compiles.done if not loaded), 3),
            "loaded_s": round(sum(s for _, s, loaded in compiles.done if loaded), 3),
            "kernels": [{"kernel": name, "seconds": round(s, 3), "loaded": loaded}
                        for name, s, loaded in compiles.done]}


def offline(args):
    """Offline NVVM and nvJitLink seconds of the kernels of one forward+backward."""
    from numba_rnn import recurrent
    from numba_rnn.kernels import compile as kernels_compile
    from numba_rnn.kernels import registry

    paths = recurrent.PATHS if args.path == "all" else (args.path,)
    rows = []
    for path in paths:
        record = registry.record_launches()
        with backend.use_backend("simulator"), recurrent.force_path(path):
            layer = nr.LSTM(3, 4, dtype=args.dtype)  # the kernels' types, not the sizes
            x = np.random.default_rng(0).standard_normal((2, 2, 3)).astype(args.dtype)
            output, _ = layer(nr.tensor(x, requires_grad=True))
            output.sum().backward()
        registry.stop_recording()
        results = kernels_compile.run_compiler(kernels_compile.jobs(record), processes=1,
                                               targets=("sm_90",), warm_up=True)
        for r in results:
            rows.append({"event": "offline_compile", "path": path, "kernel": r["kernel"],
                         "target": r["target"], "ptx_s": r.get("ptx_seconds"),
                         "link_s": r.get("link_seconds"), "error": r.get("error")})
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--input", type=int, default=128)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--jsonl", help="append the figures to this JSON-lines file")
    parser.add_argument("--tag", help="the JSON line's tag (cold, warm)")
    parser.add_argument("--offline", action="store_true",
                        help="time compile_ptx and the link of each kernel for sm_90, no GPU")
    parser.add_argument("--path", default=None, choices=("plain", "fused", "persistent",
                                                          "all"),
                        help="the kernel path: offline, the one(s) to compile (default "
                             "plain); else forced for the run (default: the automatic "
                             "choice, on the CPU the region)")
    args = parser.parse_args()
    if args.offline and args.path is None:
        args.path = "plain"
    if not args.offline and args.path == "all":
        parser.error("--path all: only with --offline")

    if args.offline:
        rows = offline(args)
        for path in dict.fromkeys(r["path"] for r in rows):
            mine = [r for r in rows if r["path"] == path]
            kernels = [r for r in mine if r["kernel"] != "(start-up)"]
            print(f"offline compile for sm_90 on this CPU, LSTM {args.dtype}, {path} path: "
                  f"NVVM {sum(r['ptx_s'] or 0 for r in kernels):.2f} s + nvJitLink "
                  f"{sum(r['link_s'] or 0 for r in kernels):.2f} s for {len(kernels)} "
                  "kernel build(s), after the process's start-up")
            for r in mine:
                print(f"  {r['ptx_s'] or 0:6.2f} s + {r['link_s'] or 0:5.2f} s  {r['kernel']}"
                      + (f"  ERROR {r['error']}" if r["error"] else ""))
        lines = rows
    else:
        from numba_rnn import recurrent

        with recurrent.force_path(args.path):
            figures = measure(args)
        figures["path"] = args.path or "auto"
        print(f"backend {figures['backend']}: import {figures['import_s']:.2f} s, first "
              f"forward+backward {figures['first_s']:.2f} s, second "
              f"{figures['second_ms']:.1f} ms; compiled {figures['compiled_s']:.2f} s, "
              f"loaded from the disk cache {figures['loaded_s']:.2f} s "
              f"(cache folder {figures['cache_dir']})")
        for k in figures["kernels"]:
            print(f"  {k['seconds']:6.2f} s  {k['kernel']}"
                  + ("  (loaded from the disk cache)" if k["loaded"] else ""))
        lines = [figures]
    if args.jsonl:
        with open(args.jsonl, "a") as f:
            for line in lines:
                f.write(json.dumps({"stage": "first-call", "tag": args.tag,
                                    "time": round(time.time(), 3), **line}) + "\n")


if __name__ == "__main__":
    main()
