"""What every backend object has: the interface (``Backend``) that ``gpu.GpuBackend`` and
``host.HostBackend`` implement, and the pieces of a launch they share (the launch
configuration without Numba's low-occupancy warning, the shared-memory limits,
``CooperativeLimits``)."""
import abc
import warnings
from collections import namedtuple

import numpy as np

from .select import cuda  # noqa: F401  (numba.cuda, imported after select's simulator switch)

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

#: Dynamic shared memory a block may use without an opt-in (48 KiB on every CUDA GPU,
#: static and dynamic together).
SHARED_BYTES_PER_BLOCK = 48 * 1024
#: The most static shared memory a kernel of the package has (1 KiB on sm_90: the
#: compile check, kernels/compile.py, holds every kernel to it).
STATIC_SHARED_BYTES = 1024

#: What a cooperative (grid-synchronizing) kernel may use: at most ``max_blocks`` blocks
#: (one per SM), ``max_shared_bytes`` of dynamic shared memory per block, and
#: ``co_resident(shared_bytes)``, how many blocks of that much dynamic shared memory the
#: device holds at once (all of a cooperative grid must be resident).
CooperativeLimits = namedtuple("CooperativeLimits",
                               ["max_blocks", "max_shared_bytes", "co_resident"])


def _performance_warnings():
    """Numba's NumbaPerformanceWarning classes: numba-cuda's own
    (``numba.cuda.core.errors``, which its dispatcher raises from 0.30 on, a class apart
    from numba's) and numba's (``numba.core.errors``, older numba-cuda), where each
    exists."""
    import importlib

    classes = []
    for module in ("numba.cuda.core.errors", "numba.core.errors"):
        try:
            classes.append(importlib.import_module(module).NumbaPerformanceWarning)
        except (ImportError, AttributeError):
            pass
    return tuple(dict.fromkeys(classes))


_PERFORMANCE_WARNINGS = _performance_warnings()
# numba-cuda's words for a small grid, whatever class carries them
_LOW_OCCUPANCY = r"Grid size \d+ will likely result in GPU under-utilization"


def configure(kernel, blocks, threads, stream, shared_bytes):
    """``kernel[blocks, threads, stream, shared_bytes]``, without Numba's warning about
    low occupancy: small grids are deliberate here (a step of a small batch, one block
    per SM for a persistent kernel), and the warning would reach the user's console."""
    with warnings.catch_warnings():
        for category in _PERFORMANCE_WARNINGS:
            warnings.simplefilter("ignore", category)
        warnings.filterwarnings("ignore", message=_LOW_OCCUPANCY)
        return kernel[blocks, threads, stream, shared_bytes]


class Backend(abc.ABC):
    """A kind of storage and its launches: ``xp`` (the array module), ``threads`` (per
    block of a one-dimensional launch) and ``recorder`` (called as ``recorder(kernel,
    blocks, threads, shared_bytes, args)`` before every launch of a CUDA kernel, or
    None). The package's module-level functions (``backend.launch``, ``to_device``, ...)
    call the methods of the process's one backend object, ``backend.BACKEND``."""

    xp = np
    threads = 256
    recorder = None

    def __init__(self):
        self._placeholders = {}

    # storage

    def to_device(self, a, dtype=None):
        """``a`` (an array, a list, or anything with ``__cuda_array_interface__`` or
        ``__dlpack__``) as device storage; no copy when it already is, with that dtype.
        A PyTorch tensor that requires grad gives its values (``detach()``, no copy), as
        ``torch.tensor`` would: its exports refuse a tensor that is part of a graph."""
        if type(a).__module__.startswith("torch") and getattr(a, "requires_grad", False):
            a = a.detach()
        return self.xp.asarray(self._importable(a), dtype=dtype)

    def _importable(self, a):
        """``a`` as ``xp.asarray`` best takes it (another library's array)."""
        return a

    @abc.abstractmethod
    def to_host(self, a):
        """A NumPy copy (a view on host storage) of device storage ``a``."""

    def is_device_array(self, a):
        """True for this backend's native storage type."""
        return isinstance(a, self.xp.ndarray)

    @abc.abstractmethod
    def scatter_add(self, target, key, values):
        """``target[key] += values``, adding once per occurrence where ``key`` picks an
        element more than once."""

    def placeholder(self, ndim, dtype):
        """A 1-element device array of ``ndim`` dimensions: the stand-in for a kernel
        argument that a variant never reads or writes (kernel arguments otherwise never
        alias, so a real array cannot stand in). Made once per (ndim, dtype) and shared:
        as nothing touches it, one kernel may even get it twice."""
        key = (ndim, np.dtype(dtype))
        if key not in self._placeholders:
            self._placeholders[key] = self.xp.zeros((1,) * ndim, dtype=key[1])
        return self._placeholders[key]

    @abc.abstractmethod
    def device_description(self):
        """A short human-readable description of where the kernels run."""

    @abc.abstractmethod
    def synchronize(self):
        """Wait for all queued device work."""

    # launches

    @abc.abstractmethod
    def concurrently(self, n):
        """A context yielding ``n`` contexts for independent work (the two directions of
        a layer): device work issued within each may overlap that of the others."""

    @abc.abstractmethod
    def kernel_views(self, *arrays):
        """The arrays as a launch takes them, made once and passed to many launches (a
        time loop's arrays), so that no launch converts or synchronizes."""

    def grid_1d(self, n):
        """(blocks, threads) covering ``n`` work items, one thread each."""
        threads = self.threads if n >= self.threads else max(1, n)
        return (n + threads - 1) // threads, threads

    def launch(self, kernel, n, *args, grid=None):
        """Launch ``kernel`` over ``n`` work items, one thread each, through ``grid``
        (a ``launch_grid``; default this backend's). Nothing is launched for n = 0 (a
        launch of zero blocks is an error on a GPU)."""
        if n > 0:
            (grid or self.launch_grid)(kernel, *self.grid_1d(n), 0, *args)

    @abc.abstractmethod
    def launch_grid(self, kernel, blocks, threads, shared_bytes, *args):
        """Launch ``kernel`` on ``blocks`` × ``threads`` with ``shared_bytes`` of dynamic
        shared memory. Nothing is launched on zero blocks (an empty batch: a launch error
        on a GPU)."""

    @abc.abstractmethod
    def cooperative_limits(self, kernel, signature, threads):
        """CooperativeLimits of ``kernel`` compiled for ``signature`` (a tuple of Numba
        types) in blocks of ``threads``."""
