"""First-call latency: run in a fresh process, it times the first and the second
forward+backward of ``nr.LSTM(input, hidden)`` and each kernel compilation of the first
(Numba's "numba:compile" events, outermost only: a compile with what it inlines; a
kernel loaded from the disk cache, kernels/cache.py, compiles nothing).

    python benchmarks/first_call.py [--hidden 128] [--steps 50] [--batch 16]

Run it twice with the same NUMBA_RNN_CACHE_DIR for the cold and the warm figures.
"""
import argparse
import time

start = time.perf_counter()
import numpy as np  # noqa: E402

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
                              time.perf_counter() - began))


def _listen(listener):
    from numba.core import event

    class Listener(event.Listener):
        on_start = staticmethod(listener.on_start)
        on_end = staticmethod(listener.on_end)

    event.register("numba:compile", Listener())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--input", type=int, default=128)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--dtype", default="float32")
    args = parser.parse_args()

    compiles = CompileTimes()
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
    print(f"{backend.backend_name()}: import {imported:.2f} s, first forward+backward "
          f"{first:.2f} s, second {second * 1e3:.1f} ms; compiled "
          f"{sum(s for _, s in compiles.done):.2f} s")
    for name, seconds in compiles.done:
        print(f"  {seconds:6.2f} s  {name}")


if __name__ == "__main__":
    main()
