"""What the benchmark scripts share: timing with CUDA events, summaries, versions, the
GPU's datasheet peaks for the floors, and device memory readings."""
import datetime
import gc
import importlib.metadata
import platform
import sys

import numpy as np

import numba_rnn as nr
from numba_rnn import backend

ON_GPU = backend.backend_name() == "cuda"

# Datasheet peaks (not measured): HBM bandwidth in bytes/s and float32 (non-tensor-core)
# rate in FLOP/s, by a substring of the device name, most specific first.
DATASHEET = [
    ("H100 NVL", 3.9e12, 60e12),
    ("H100 PCIe", 2.0e12, 51e12),
    ("H100", 3.35e12, 67e12),       # SXM5, "NVIDIA H100 80GB HBM3"
    ("H200", 4.8e12, 67e12),
    ("A100", 2.0e12, 19.5e12),
]


def datasheet(name):
    """(bandwidth B/s, float32 FLOP/s, the matched entry) or None for an unknown GPU."""
    for key, bandwidth, flops in DATASHEET:
        if key in name:
            return bandwidth, flops, key
    return None


def percentiles(times_ms):
    times = np.asarray(times_ms)
    return {"median_ms": float(np.median(times)), "p10_ms": float(np.percentile(times, 10)),
            "p90_ms": float(np.percentile(times, 90)), "repeats": int(times.size)}


def time_cuda(fn, repeats, warmup, library="cupy"):
    """Per-call device times in ms of ``fn`` from CUDA events recorded on the current
    stream of ``library`` ("cupy" or "torch") around it, after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    if library == "torch":
        import torch
        make = lambda: torch.cuda.Event(enable_timing=True)  # noqa: E731
        elapsed = lambda a, b: a.elapsed_time(b)  # noqa: E731
        sync = torch.cuda.synchronize
    else:
        import cupy
        make = cupy.cuda.Event
        elapsed = cupy.cuda.get_elapsed_time
        sync = cupy.cuda.get_current_stream().synchronize
    sync()
    times = []
    for _ in range(repeats):
        start, end = make(), make()
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(elapsed(start, end))
    return times


def _version(package):
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def environment():
    """Versions, the GPU and the date, recorded with every result."""
    env = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "backend": backend.backend_name(), "device": backend.device_description(),
           "python": platform.python_version(), "numba_rnn": nr.__version__,
           "numpy": _version("numpy"), "numba": _version("numba"),
           "numba-cuda": _version("numba-cuda"), "command": " ".join(sys.argv)}
    if ON_GPU:
        import cupy
        env["cupy"] = cupy.__version__
        env["cuda_driver"] = cupy.cuda.runtime.driverGetVersion()
        env["cuda_runtime"] = cupy.cuda.runtime.runtimeGetVersion()
    try:
        import torch
        env["torch"] = torch.__version__
        env["cudnn"] = torch.backends.cudnn.version() if torch.cuda.is_available() else None
    except ImportError:
        env["torch"] = None
    return env


class DeviceMemory:
    """Readings of numba_rnn's device memory: CuPy's default pool on a GPU; in the
    simulator, the Python heap (tracemalloc), where device arrays live there."""

    def __init__(self):
        if ON_GPU:
            import cupy
            self._pool = cupy.get_default_memory_pool()
        else:
            import tracemalloc
            self._tracemalloc = tracemalloc
            if not tracemalloc.is_tracing():
                tracemalloc.start()

    def used(self):
        """Bytes in use now, after a synchronization and a garbage collection (the
        simulator's finished threads linger until one)."""
        backend.synchronize()
        gc.collect()
        if ON_GPU:
            return int(self._pool.used_bytes())
        return int(self._tracemalloc.get_traced_memory()[0])

    def peak_of(self, fn):
        """Bytes that ``fn`` needs at its peak beyond what was in use before it."""
        if ON_GPU:
            backend.synchronize()
            self._pool.free_all_blocks()
            before = self._pool.used_bytes()
            fn()
            backend.synchronize()
            # The pool grows only when no free block fits, so what it holds after the
            # call bounds its peak from above (block rounding aside).
            return int(self._pool.total_bytes() - before)
        self._tracemalloc.reset_peak()
        before = self._tracemalloc.get_traced_memory()[0]
        fn()
        return int(self._tracemalloc.get_traced_memory()[1] - before)


def import_torch():
    """PyTorch with TF32 off (the main comparison is float32 against float32), or None
    where it is absent."""
    try:
        import torch
    except ImportError:
        return None
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    return torch
