"""GPU or simulator, the array module, and moving data on and off the device.

The choice is made once, at import, before ``numba.cuda`` is first imported (Numba reads
``NUMBA_ENABLE_CUDASIM`` then):

* ``NUMBA_ENABLE_CUDASIM=1`` in the environment: the simulator, as asked;
* otherwise, if CuPy imports and sees a CUDA device: the GPU, with CuPy storage;
* otherwise: Numba's CUDA simulator on NumPy storage, with one warning saying so.

Everything else in the package asks this module for the array module (``xp``), for
launch configurations and for kernel launches, and never imports CuPy itself.
"""
import contextlib
import os
import sys
import warnings

import numpy as np

_SIM_VAR = "NUMBA_ENABLE_CUDASIM"


def _find_gpu():
    """Return (cupy module, None) when a usable GPU is there, else (None, reason)."""
    if os.environ.get(_SIM_VAR, "0") not in ("", "0"):
        return None, f"{_SIM_VAR}={os.environ[_SIM_VAR]} is set"
    try:
        import cupy
    except Exception as exc:  # ImportError, or a CUDA library that fails to load
        return None, f"CuPy is not importable ({type(exc).__name__}: {exc})"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        return None, f"CuPy finds no CUDA driver or device ({type(exc).__name__}: {exc})"
    if count < 1:
        return None, "CuPy finds no CUDA device"
    return cupy, None


def _caller_stacklevel():
    """The stacklevel of the user's line that imported numba_rnn, so that the warning
    points there: the package's own frames are counted, importlib's are not (the warnings
    module skips those by itself)."""
    package = os.path.dirname(os.path.abspath(__file__))
    frame, level = sys._getframe(1), 1
    while frame is not None:
        name = frame.f_code.co_filename
        if not name.startswith("<frozen"):
            if not os.path.abspath(name).startswith(package):
                return level
            level += 1
        frame = frame.f_back
    return 1


_cupy, _why_simulator = _find_gpu()
if _cupy is None:
    os.environ[_SIM_VAR] = "1"
    if "numba.cuda" in sys.modules:
        from numba.cuda.core import config as _numba_cuda_config

        if not _numba_cuda_config.ENABLE_CUDASIM:
            raise RuntimeError(
                "numba_rnn found no usable GPU (" + _why_simulator + ") and must run in "
                "Numba's CUDA simulator, but numba.cuda was imported before numba_rnn "
                f"without it; set {_SIM_VAR}=1 or import numba_rnn first"
            )
    if _why_simulator != f"{_SIM_VAR}=1 is set":
        warnings.warn(
            f"numba_rnn: no usable GPU ({_why_simulator}); running the kernels in Numba's "
            "CUDA simulator on NumPy arrays. Results are exact but slow.",
            RuntimeWarning,
            stacklevel=_caller_stacklevel(),
        )

from numba import cuda  # noqa: E402  (after the simulator switch above)

#: The array module of device storage: ``cupy`` on a GPU, ``numpy`` in the simulator.
xp = _cupy if _cupy is not None else np

_ON_GPU = _cupy is not None
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def backend_name():
    """``"cuda"`` when kernels run on a GPU, ``"simulator"`` in Numba's CUDA simulator."""
    return "cuda" if _ON_GPU else "simulator"


def is_device_array(a):
    """True for this backend's native storage type."""
    return isinstance(a, xp.ndarray)


def to_device(a, dtype=None):
    """``a`` (an array, a list, or anything with ``__cuda_array_interface__`` or
    ``__dlpack__``) as device storage; no copy when it already is, with that dtype."""
    if (
        _ON_GPU
        and not isinstance(a, (xp.ndarray, np.ndarray))
        and not hasattr(a, "__cuda_array_interface__")
        and hasattr(a, "__dlpack__")
    ):
        try:
            a = xp.from_dlpack(a)  # another library's device array, without a copy
        except Exception:
            a = np.asarray(a)  # a host array (a CPU torch tensor, say)
    return xp.asarray(a, dtype=dtype)


def to_host(a):
    """A NumPy copy (a view in the simulator) of device storage ``a``."""
    if _ON_GPU and isinstance(a, xp.ndarray):
        return xp.asnumpy(a)
    return np.asarray(a)


def device_description():
    """A short human-readable description of where the kernels run."""
    if not _ON_GPU:
        return "Numba CUDA simulator on the CPU (" + _why_simulator + ")"
    props = _cupy.cuda.runtime.getDeviceProperties(_cupy.cuda.Device().id)
    name = props["name"]
    return name.decode() if isinstance(name, bytes) else str(name)


def synchronize():
    """Wait for all queued device work (a no-op in the simulator)."""
    if _ON_GPU:
        _cupy.cuda.get_current_stream().synchronize()


# Threads per block. In the simulator every thread is a Python thread and a block's threads
# run together, so blocks are kept small there.
_THREADS = 256 if _ON_GPU else 32


#: Dynamic shared memory a block may use without an opt-in (48 KiB on every CUDA GPU).
SHARED_BYTES_PER_BLOCK = 48 * 1024


def cooperative_blocks():
    """How many blocks of a persistent kernel (256 threads, up to SHARED_BYTES_PER_BLOCK)
    are surely co-resident: one per SM on a GPU, which stays within the driver's
    max_cooperative_grid_blocks; one in the simulator, whose grid barrier only
    synchronizes a single block."""
    if not _ON_GPU:
        return 1
    return cuda.get_current_device().MULTIPROCESSOR_COUNT


def threads_per_block():
    return _THREADS


_placeholders = {}


def placeholder(ndim, dtype):
    """A 1-element device array of ``ndim`` dimensions: the stand-in for a kernel
    argument that a variant never reads or writes (kernel arguments otherwise never
    alias, so a real array cannot stand in). Made once per (ndim, dtype) and shared:
    as nothing touches it, one kernel may even get it twice."""
    key = (ndim, np.dtype(dtype))
    if key not in _placeholders:
        _placeholders[key] = xp.zeros((1,) * ndim, dtype=key[1])
    return _placeholders[key]


def grid_1d(n):
    """(blocks, threads) covering ``n`` work items, one thread each."""
    threads = _THREADS if n >= _THREADS else max(1, n)
    return (n + threads - 1) // threads, threads


if _ON_GPU:
    _streams = {}
    _side_streams = []

    @contextlib.contextmanager
    def concurrently(n):
        """Yields ``n`` contexts: device work issued within the k-th runs on a stream of
        its own, after all work queued so far, and work queued after the block waits for
        all of them. Independent work (the two directions of a layer) then overlaps."""
        if n == 1:
            yield [contextlib.nullcontext()]
            return
        while len(_side_streams) < n:
            _side_streams.append(_cupy.cuda.Stream(non_blocking=True))
        main = _cupy.cuda.get_current_stream()
        ready = main.record()
        streams = _side_streams[:n]
        for stream in streams:
            stream.wait_event(ready)
        yield streams
        for stream in streams:
            main.wait_event(stream.record())

    def _numba_stream():
        # Launch on CuPy's current stream so that kernels and CuPy's GEMMs stay ordered
        # without host synchronization.
        ptr = _cupy.cuda.get_current_stream().ptr
        stream = _streams.get(ptr)
        if stream is None:
            stream = _streams[ptr] = cuda.external_stream(ptr)
        return ptr, stream

    def _kernel_arg(a):
        # sync=False: CuPy's arrays export their stream, and Numba would otherwise
        # synchronize on it at every launch (BENCHMARKS.md, "What costs time").
        if isinstance(a, _cupy.ndarray):
            return cuda.as_cuda_array(a, sync=False)
        return a

    def kernel_views(*arrays):
        """Numba device views of CuPy arrays, made once and passed to many launches (a
        time loop's arrays), so that no launch converts or synchronizes."""
        return [_kernel_arg(a) for a in arrays]

    _configured = {}

    def launch_grid(kernel, blocks, threads, shared_bytes, *args):
        """Launch ``kernel`` on ``blocks`` × ``threads`` with ``shared_bytes`` of dynamic
        shared memory on CuPy's current stream. Arguments may be CuPy arrays, views from
        ``kernel_views``, or scalars; the launch configuration is built once and reused."""
        ptr, stream = _numba_stream()
        key = (kernel, blocks, threads, shared_bytes, ptr)
        configured = _configured.get(key)
        if configured is None:
            configured = _configured[key] = kernel[blocks, threads, stream, shared_bytes]
        configured(*[_kernel_arg(a) for a in args])

else:

    @contextlib.contextmanager
    def concurrently(n):
        """Yields ``n`` contexts for independent work (the simulator runs it in order)."""
        yield [contextlib.nullcontext() for _ in range(n)]

    def kernel_views(*arrays):
        """The arrays themselves: the simulator takes NumPy arrays as they are."""
        return list(arrays)

    def launch_grid(kernel, blocks, threads, shared_bytes, *args):
        """Launch ``kernel`` on ``blocks`` × ``threads`` with ``shared_bytes`` of dynamic
        shared memory (simulator: runs it to completion)."""
        kernel[blocks, threads, 0, shared_bytes](*args)


def launch(kernel, n, *args):
    """Launch ``kernel`` over ``n`` work items, one thread each. Nothing is launched for
    n = 0 (a launch of zero blocks is an error on a GPU)."""
    if n > 0:
        launch_grid(kernel, *grid_1d(n), 0, *args)
