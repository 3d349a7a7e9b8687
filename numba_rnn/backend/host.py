"""Host storage (NumPy) and its launches: the CPU path (kernels compiled by
``numba.njit``, ``kernels/targets.py``) and Numba's CUDA simulator, which share it, so
that a process without a GPU moves between "cpu" and "simulator" at any time. A launch
goes by its kernel: a ``HostKernel`` (the CPU path's) runs its items itself, a CUDA
kernel runs in the simulator (or, in a compile-only process, is refused)."""
import contextlib
import sys

import numba
import numpy as np

from . import select
from .base import SHARED_BYTES_PER_BLOCK, Backend, CooperativeLimits, configure

_SIMULATOR_SWITCH_INTERVAL = 2e-4  # seconds


class HostKernel:
    """The mark of a kernel compiled for the processor (``kernels/targets.py``'s
    ``CpuKernel`` derives from it): ``kernel(n, *args)`` runs its ``n`` items or rows, so
    the launches call it so rather than configure a launch. ``on_cpu`` says so to a
    reader of a kernel."""

    on_cpu = True


def is_host_kernel(kernel):
    """Whether ``kernel`` is a CPU-path kernel (a ``HostKernel``)."""
    return isinstance(kernel, HostKernel)


class HostBackend(Backend):
    """NumPy storage: the "cpu", "simulator" and "compile-only" backends. ``simulated``:
    ``numba.cuda`` is the simulator (blocks of 32 threads then: each is a Python thread,
    and a block's threads run together); ``compile_only``: CUDA kernels are compiled and
    never launched."""

    def __init__(self, simulated, compile_only):
        super().__init__()
        self.simulated, self.compile_only = simulated, compile_only
        self.threads = 32 if simulated else 256

    def to_host(self, a):
        return np.asarray(a)

    def scatter_add(self, target, key, values):
        np.add.at(target, key, values)

    def device_description(self):
        import platform

        # config, not get_num_threads(): that would start the threading layer here,
        # before kernels/targets.start_threads sets it up
        where = (f"CPU, {numba.config.NUMBA_NUM_THREADS} Numba threads ({_threading_layer()})"
                 if select.backend_name() == "cpu" else "Numba CUDA simulator on the CPU")
        return (f"{where}; {platform.processor() or platform.machine()}; "
                f"no GPU ({select.why_no_gpu})")

    def synchronize(self):
        """Nothing is queued on the host."""

    @contextlib.contextmanager
    def concurrently(self, n):
        """Yields ``n`` contexts for independent work (run in order here)."""
        yield [contextlib.nullcontext() for _ in range(n)]

    def kernel_views(self, *arrays):
        """The arrays themselves: the simulator and the CPU take NumPy arrays as they
        are."""
        return list(arrays)

    def launch(self, kernel, n, *args, grid=None):
        """A CPU-path kernel: ``kernel(n, *args)``, its loop spread over Numba's threads;
        a CUDA kernel: ``Backend.launch``. Nothing runs for n = 0."""
        if n > 0 and is_host_kernel(kernel):
            kernel(n, *args)
        else:
            super().launch(kernel, n, *args, grid=grid)

    def launch_grid(self, kernel, blocks, threads, shared_bytes, *args):
        """The simulator runs a CUDA kernel to completion; a CPU-path kernel runs over
        ``blocks`` items (rows) instead. Nothing runs on zero blocks, as on a GPU."""
        if blocks == 0:
            return
        if is_host_kernel(kernel):
            kernel(blocks, *args)
            return
        if self.compile_only:
            raise RuntimeError(f"numba_rnn: {select.COMPILE_ONLY_VAR}=1 compiles kernels and "
                               "launches none")
        if self.recorder is not None:
            self.recorder(kernel, blocks, threads, shared_bytes, args)
        # The simulator runs a block's threads as Python threads and releases them from
        # a barrier by polling; with the interpreter's default 5 ms between thread
        # switches every barrier costs milliseconds. A short interval, for the launch
        # only, makes kernels with barriers several times faster.
        previous = sys.getswitchinterval()
        sys.setswitchinterval(_SIMULATOR_SWITCH_INTERVAL)
        try:
            configure(kernel, blocks, threads, 0, shared_bytes)(*args)
        finally:
            sys.setswitchinterval(previous)

    def cooperative_limits(self, kernel, signature, threads):
        """The simulator synchronizes a grid of one block only (and a block within
        SHARED_BYTES_PER_BLOCK)."""
        return CooperativeLimits(1, SHARED_BYTES_PER_BLOCK,
                                 lambda shared_bytes: int(shared_bytes <= SHARED_BYTES_PER_BLOCK))


def _threading_layer():
    """The name of Numba's threading layer, or that none has started yet."""
    try:
        return numba.threading_layer()
    except ValueError:  # no parallel function has run yet
        return "threading layer not started"
