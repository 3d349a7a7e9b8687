"""Where the kernels run (GPU, CPU or simulator), the array module, and moving data on and
off the device.

Four backends (``backend_name()``):

* ``"cuda"``: a GPU (CuPy sees a CUDA device), CuPy storage, the ``numba.cuda`` kernels;
* ``"cpu"``: the same cell math compiled for the processor by ``numba.njit``
  (``kernels/targets.py``), NumPy storage, threads from Numba's threading layer: the
  default on a machine without a GPU;
* ``"simulator"``: the ``numba.cuda`` kernels in Numba's CUDA simulator on NumPy storage,
  one Python thread per GPU thread: exact and slow, for testing the CUDA kernels where no
  GPU is (``NUMBA_ENABLE_CUDASIM=1``, ``NUMBA_RNN_BACKEND=simulator``, or
  ``set_backend("simulator")``);
* ``"compile-only"`` (``NUMBA_RNN_COMPILE_ONLY=1``): ``numba.cuda`` is the real target, so
  the kernels can be compiled for GPUs (``numba_rnn.kernels.compile``) on a machine
  without one; nothing can be launched, and storage is NumPy.

The storage is chosen once, at import, before ``numba.cuda`` is first imported (Numba
reads ``NUMBA_ENABLE_CUDASIM`` then): CuPy when a GPU is there and neither the simulator
nor the CPU was asked for (``NUMBA_RNN_BACKEND=cpu`` keeps a GPU machine on the CPU), else
NumPy, with ``numba.cuda`` as the simulator. Without a GPU, "cpu" and "simulator" share
NumPy storage, so ``set_backend`` (the process's default) and ``use_backend`` (a context,
for this thread) move between them at any time: the tests run the CUDA kernels in the
simulator and the CPU path natively in one process.

Everything else in the package asks this module for the array module (``xp``), for
launch configurations and for kernel launches, and never imports CuPy itself.
"""
import contextlib
import functools
import os
import sys
import threading
import warnings
from collections import namedtuple

import numpy as np

_SIM_VAR = "NUMBA_ENABLE_CUDASIM"
_COMPILE_ONLY_VAR = "NUMBA_RNN_COMPILE_ONLY"
_BACKEND_VAR = "NUMBA_RNN_BACKEND"
#: The backends a process may ask for by name (``NUMBA_RNN_BACKEND``, ``set_backend``).
BACKENDS = ("cuda", "cpu", "simulator")


def _asked():
    """The backend ``NUMBA_RNN_BACKEND`` asks for (checked), or None."""
    asked = os.environ.get(_BACKEND_VAR, "").strip().lower()
    if not asked:
        return None
    if asked not in BACKENDS:
        raise ValueError(f"{_BACKEND_VAR}: expected one of {', '.join(BACKENDS)}, got "
                         f"{os.environ[_BACKEND_VAR]!r}")
    return asked


def _sim_requested():
    return os.environ.get(_SIM_VAR, "0") not in ("", "0")


def _find_gpu():
    """Return (cupy module, None) when a usable GPU is there, else (None, reason)."""
    if _sim_requested():
        return None, f"{_SIM_VAR}={os.environ[_SIM_VAR]} is set"
    if _asked() in ("cpu", "simulator"):
        return None, f"{_BACKEND_VAR}={_asked()} is set"
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


def _nvidia_gpus():
    """The NVIDIA GPUs the kernel driver shows (``/proc/driver/nvidia/gpus``, else the
    ``/dev/nvidiaN`` device files), found without initializing CUDA: [] where none."""
    try:
        found = sorted(os.listdir("/proc/driver/nvidia/gpus"))
    except OSError:
        found = []
    if not found:
        import glob

        found = sorted(glob.glob("/dev/nvidia[0-9]*"))
    return found


def _driver_cuda_major():
    """The CUDA major version the installed driver supports (``cuDriverGetVersion``,
    which needs no ``cuInit``: nothing is initialized in this process), or None."""
    import ctypes

    for name in ("libcuda.so.1", "libcuda.so", "nvcuda.dll"):
        try:
            library = ctypes.CDLL(name)
            version = ctypes.c_int(0)
            if library.cuDriverGetVersion(ctypes.byref(version)) == 0 and version.value:
                return version.value // 1000
        except (OSError, AttributeError):
            continue
    return None


def _installed_cupy():
    """The CuPy distributions installed ("cupy-cuda12x 13.6.0", ...)."""
    import importlib.metadata

    return sorted(f"{dist.metadata['Name']} {dist.version}"
                  for dist in importlib.metadata.distributions()
                  if (dist.metadata["Name"] or "").lower().startswith("cupy"))


def gpu_unused_message(reason):
    """What to tell a user whose machine has an NVIDIA GPU that numba_rnn cannot use
    (``reason``: why not, CuPy missing or built for another CUDA major), naming the
    CuPy wheel of the driver's CUDA major; None where the driver shows no GPU."""
    gpus = _nvidia_gpus()
    if not gpus:
        return None
    major = _driver_cuda_major()
    installed = _installed_cupy()
    wheel = (f"cupy-cuda{major}x (the driver's CUDA is {major})" if major and major >= 11
             else "cupy-cuda12x or cupy-cuda13x, the one of the CUDA major nvidia-smi shows")
    return (f"numba_rnn: this machine has an NVIDIA GPU ({len(gpus)} seen), but {reason}; "
            f"{'installed: ' + ', '.join(installed) if installed else 'no CuPy installed'}"
            f"; running on the CPU path. To run on the GPU: pip install {wheel}")


_COMPILE_ONLY = os.environ.get(_COMPILE_ONLY_VAR, "0") not in ("", "0")
_SIM_ASKED = _sim_requested()  # before the package sets the variable itself, below
if _COMPILE_ONLY:
    if _SIM_ASKED:
        raise RuntimeError(f"numba_rnn: {_COMPILE_ONLY_VAR}=1 compiles for real GPUs, which "
                           f"Numba's simulator cannot do; unset {_SIM_VAR}")
    _cupy, _why_no_gpu = None, None
else:
    _cupy, _why_no_gpu = _find_gpu()
#: Whether ``numba.cuda`` is Numba's simulator in this process (no GPU, not compile-only).
CUDA_SIMULATED = _cupy is None and not _COMPILE_ONLY
if CUDA_SIMULATED:
    if "numba.cuda" in sys.modules:
        from numba.cuda.core import config as _numba_cuda_config

        # numba.cuda was imported for the real target before numba_rnn: the CPU path
        # still runs, the simulator cannot
        CUDA_SIMULATED = bool(_numba_cuda_config.ENABLE_CUDASIM)
    else:
        os.environ[_SIM_VAR] = "1"  # for numba.cuda's import below; unset after it

if _COMPILE_ONLY:
    _default = "compile-only"
elif _cupy is not None:
    if _asked() not in (None, "cuda"):
        raise AssertionError("unreachable: a GPU is only taken when no other backend is asked")
    _default = "cuda"
else:
    if _asked() == "cuda":
        warnings.warn(f"numba_rnn: {_BACKEND_VAR}=cuda, but there is no usable GPU "
                      f"({_why_no_gpu}); running on the CPU", RuntimeWarning, stacklevel=2)
    elif _asked() is None and not _SIM_ASKED:
        # a GPU that CuPy cannot reach: said once (here, at import), not silently unused
        _unused = gpu_unused_message(_why_no_gpu)
        if _unused:
            warnings.warn(_unused, RuntimeWarning, stacklevel=2)
    _default = "simulator" if (_SIM_ASKED or _asked() == "simulator") else "cpu"
    if _default == "simulator" and not CUDA_SIMULATED:
        raise RuntimeError(
            "numba_rnn: the simulator was asked for, but numba.cuda was imported before "
            f"numba_rnn without it; set {_SIM_VAR}=1 or import numba_rnn first")

import numba  # noqa: E402  (after the simulator switch above)
from numba import cuda  # noqa: E402

if CUDA_SIMULATED and not _SIM_ASKED and "numba.cuda" in sys.modules:
    # numba.cuda chose the simulator at its import; the variable goes, so that child
    # processes (DataLoader workers, subprocesses) choose for themselves (the CPU path)
    os.environ.pop(_SIM_VAR, None)


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

#: The array module of device storage: ``cupy`` on a GPU, ``numpy`` in the simulator.
xp = _cupy if _cupy is not None else np

_ON_GPU = _cupy is not None
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


_local = threading.local()


def available_backends():
    """The backends this process can switch between (``set_backend``): ``("cuda",)`` with
    a GPU, ``("cpu", "simulator")`` without one (``("cpu",)`` when numba.cuda was imported
    for the real target before numba_rnn), ``("compile-only",)`` in a compile-only
    process."""
    if _COMPILE_ONLY:
        return ("compile-only",)
    if _ON_GPU:
        return ("cuda",)
    return ("cpu", "simulator") if CUDA_SIMULATED else ("cpu",)


def backend_name():
    """Where this thread's layers, optimizers and other kernels run: ``"cuda"`` on a GPU,
    ``"cpu"`` for the CPU path (numba.njit), ``"simulator"`` for the CUDA kernels in Numba's
    simulator (``"compile-only"`` in a process that only compiles them)."""
    return getattr(_local, "backend", None) or _default


def _checked(name):
    if name not in available_backends():
        why = ("there is a GPU: storage is CuPy's" if _ON_GPU
               else "there is no usable GPU (" + str(_why_no_gpu) + ")" if name == "cuda"
               else "numba.cuda was imported for the real target before numba_rnn"
               if name == "simulator" else "this process only compiles kernels")
        raise ValueError(f"backend: expected one of {', '.join(available_backends())} in this "
                         f"process, got {name!r} ({why})")
    return name


def set_backend(name):
    """Make ``name`` the process's backend ("cpu" or "simulator" where there is no GPU;
    "cuda" where there is one) and return the previous one. Storage does not change:
    without a GPU both keep NumPy arrays, so tensors and modules carry over."""
    global _default
    previous, _default = _default, _checked(name)
    return previous


@contextlib.contextmanager
def use_backend(name):
    """Within this context this thread runs on backend ``name`` (see ``set_backend``)."""
    _checked(name)
    previous = getattr(_local, "backend", None)
    _local.backend = name
    try:
        yield
    finally:
        _local.backend = previous


def on_cpu():
    """Whether this thread's kernels are the CPU path's (``kernels/targets.py``)."""
    return backend_name() == "cpu"


def is_device_array(a):
    """True for this backend's native storage type."""
    return isinstance(a, xp.ndarray)


def to_device(a, dtype=None):
    """``a`` (an array, a list, or anything with ``__cuda_array_interface__`` or
    ``__dlpack__``) as device storage; no copy when it already is, with that dtype.
    A PyTorch tensor that requires grad gives its values (``detach()``, no copy), as
    ``torch.tensor`` would: its exports refuse a tensor that is part of a graph."""
    if type(a).__module__.startswith("torch") and getattr(a, "requires_grad", False):
        a = a.detach()
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


def scatter_add(target, key, values):
    """``target[key] += values``, adding once per occurrence where ``key`` picks an
    element more than once (NumPy's ``add.at``; ``cupyx.scatter_add`` on a GPU)."""
    if _ON_GPU:
        import cupyx

        cupyx.scatter_add(target, key, values)
    else:
        np.add.at(target, key, values)


def device_description():
    """A short human-readable description of where the kernels run."""
    if not _ON_GPU:
        import platform

        # config, not get_num_threads(): that would start the threading layer here,
        # before kernels/targets.start_threads sets it up
        where = (f"CPU, {numba.config.NUMBA_NUM_THREADS} Numba threads ({_threading_layer()})"
                 if backend_name() == "cpu" else "Numba CUDA simulator on the CPU")
        return f"{where}; {platform.processor() or platform.machine()}; no GPU ({_why_no_gpu})"
    props = _cupy.cuda.runtime.getDeviceProperties(_cupy.cuda.Device().id)
    name = props["name"]
    return name.decode() if isinstance(name, bytes) else str(name)


def _threading_layer():
    """The name of Numba's threading layer, or that none has started yet."""
    try:
        return numba.threading_layer()
    except ValueError:  # no parallel function has run yet
        return "threading layer not started"


def synchronize():
    """Wait for all queued device work (a no-op in the simulator)."""
    if _ON_GPU:
        _cupy.cuda.get_current_stream().synchronize()


# Threads per block. In the simulator every thread is a Python thread and a block's threads
# run together, so blocks are kept small there.
_THREADS = 32 if CUDA_SIMULATED else 256


#: Dynamic shared memory a block may use without an opt-in (48 KiB on every CUDA GPU,
#: static and dynamic together).
SHARED_BYTES_PER_BLOCK = 48 * 1024
#: The most static shared memory a kernel of the package has (1 KiB on sm_90: the
#: compile check, kernels/compile.py, holds every kernel to it).
STATIC_SHARED_BYTES = 1024
# Launches asking for more dynamic shared memory than this check the opt-in of the very
# kernel they run; below it the default suffices, and a per-step launch is spared the
# lookup.
_NO_OPT_IN_BYTES = SHARED_BYTES_PER_BLOCK - STATIC_SHARED_BYTES


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


#: What a cooperative (grid-synchronizing) kernel may use: at most ``max_blocks`` blocks
#: (one per SM), ``max_shared_bytes`` of dynamic shared memory per block, and
#: ``co_resident(shared_bytes)``, how many blocks of that much dynamic shared memory the
#: device holds at once (all of a cooperative grid must be resident).
CooperativeLimits = namedtuple("CooperativeLimits",
                               ["max_blocks", "max_shared_bytes", "co_resident"])

_recorder = None
_SIMULATOR_SWITCH_INTERVAL = 2e-4  # seconds


def set_launch_recorder(recorder):
    """Call ``recorder(kernel, blocks, threads, shared_bytes, args)`` before every launch
    (None: stop). ``numba_rnn.kernels.registry.record_launches`` uses it."""
    global _recorder
    _recorder = recorder


def _configure(kernel, blocks, threads, stream, shared_bytes):
    """``kernel[blocks, threads, stream, shared_bytes]``, without Numba's warning about
    low occupancy: small grids are deliberate here (a step of a small batch, one block
    per SM for a persistent kernel), and the warning would reach the user's console."""
    with warnings.catch_warnings():
        for category in _PERFORMANCE_WARNINGS:
            warnings.simplefilter("ignore", category)
        warnings.filterwarnings("ignore", message=_LOW_OCCUPANCY)
        return kernel[blocks, threads, stream, shared_bytes]


def _streams_of(cupy):
    """``concurrently`` for CuPy's streams (a function of the module, so that a test can
    hand it a stand-in)."""
    side_streams = []

    @contextlib.contextmanager
    def concurrently(n):
        """Yields ``n`` contexts: device work issued within the k-th runs on a stream of
        its own, after all work queued so far, and work queued after the block waits for
        all of them, also when the block raises (work still queued on a side stream must
        not outlive the arrays that an exception frees). Independent work (the two
        directions of a layer) then overlaps."""
        if n == 1:
            yield [contextlib.nullcontext()]
            return
        while len(side_streams) < n:
            side_streams.append(cupy.cuda.Stream(non_blocking=True))
        main = cupy.cuda.get_current_stream()
        ready = main.record()
        streams = side_streams[:n]
        for stream in streams:
            stream.wait_event(ready)
        try:
            yield streams
        finally:
            for stream in streams:
                main.wait_event(stream.record())

    return concurrently


if _ON_GPU:
    _streams = {}
    concurrently = _streams_of(_cupy)

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
        ``kernel_views``, or scalars; the launch configuration is built once and reused.
        Nothing is launched on zero blocks (an empty batch: a launch error on a GPU)."""
        if blocks == 0:
            return
        if getattr(kernel, "on_cpu", False):
            raise ValueError("a CPU-path kernel cannot run on GPU storage")
        args = [_kernel_arg(a) for a in args]
        if _recorder is not None:
            _recorder(kernel, blocks, threads, shared_bytes, args)
        ptr, stream = _numba_stream()
        key = (kernel, blocks, threads, shared_bytes, ptr)
        configured = _configured.get(key)
        if configured is None:
            if shared_bytes > _NO_OPT_IN_BYTES:  # once per configuration, not per step
                _allow_dynamic_shared(_overload(kernel, args), shared_bytes)
            configured = _configured[key] = _configure(kernel, blocks, threads, stream,
                                                       shared_bytes)
        configured(*args)

    def _overload(kernel, args):
        """The compiled kernel (Numba's _Kernel) that a launch with ``args`` runs."""
        return kernel.compile(tuple(numba.typeof(a) for a in args))

    _dynamic_allowed = {}

    def _allow_dynamic_shared(overload, shared_bytes):
        """Opt ``overload`` in to ``shared_bytes`` of dynamic shared memory (beyond 48 KiB
        less its static shared memory that needs the driver attribute
        CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES; numba-cuda has no API for it)."""
        cufunc = overload._codelibrary.get_cufunc()
        if _dynamic_allowed.get(id(cufunc), -1) >= shared_bytes:
            return
        if shared_bytes + cufunc.attrs.shared > SHARED_BYTES_PER_BLOCK:
            from numba.cuda.cudadrv.driver import binding, driver

            attribute = binding.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
            if type(cufunc.handle).__name__ == "CUkernel":  # numba-cuda loads libraries
                driver.cuKernelSetAttribute(attribute, shared_bytes, cufunc.handle,
                                            cufunc.device.id)
            else:
                driver.cuFuncSetAttribute(cufunc.handle, attribute, shared_bytes)
        _dynamic_allowed[id(cufunc)] = shared_bytes

    def cooperative_limits(kernel, signature, threads):
        """CooperativeLimits of ``kernel`` compiled for ``signature`` (a tuple of Numba
        types) in blocks of ``threads`` on the current device, from the compiled
        kernel's own figures: its static shared memory, the device's opt-in maximum per
        block (227 KiB on Hopper), and the driver's occupancy for the dynamic size
        asked."""
        return _cooperative_limits(kernel, signature, threads, cuda.get_current_device().id)

    @functools.lru_cache(maxsize=None)
    def _cooperative_limits(kernel, signature, threads, device_id):
        overload = kernel.compile(signature)
        cufunc = overload._codelibrary.get_cufunc()
        device = cuda.get_current_device()
        max_shared = device.MAX_SHARED_MEMORY_PER_BLOCK_OPTIN - cufunc.attrs.shared

        @functools.lru_cache(maxsize=None)
        def co_resident(shared_bytes):
            if shared_bytes > max_shared:
                return 0
            _allow_dynamic_shared(overload, shared_bytes)
            return overload.max_cooperative_grid_blocks(threads, shared_bytes)

        return CooperativeLimits(device.MULTIPROCESSOR_COUNT, max_shared, co_resident)

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
        shared memory (simulator: runs it to completion). A CPU-path kernel
        (``kernels/targets.py``) runs over ``blocks`` items (rows) instead. Nothing runs
        on zero blocks, as on a GPU."""
        if blocks == 0:
            return
        if getattr(kernel, "on_cpu", False):
            kernel(blocks, *args)
            return
        if _COMPILE_ONLY:
            raise RuntimeError(f"numba_rnn: {_COMPILE_ONLY_VAR}=1 compiles kernels and "
                               "launches none")
        if _recorder is not None:
            _recorder(kernel, blocks, threads, shared_bytes, args)
        # The simulator runs a block's threads as Python threads and releases them from
        # a barrier by polling; with the interpreter's default 5 ms between thread
        # switches every barrier costs milliseconds. A short interval, for the launch
        # only, makes kernels with barriers several times faster.
        previous = sys.getswitchinterval()
        sys.setswitchinterval(_SIMULATOR_SWITCH_INTERVAL)
        try:
            _configure(kernel, blocks, threads, 0, shared_bytes)(*args)
        finally:
            sys.setswitchinterval(previous)

    def cooperative_limits(kernel, signature, threads):
        """The simulator synchronizes a grid of one block only (and a block within
        SHARED_BYTES_PER_BLOCK)."""
        return CooperativeLimits(1, SHARED_BYTES_PER_BLOCK,
                                 lambda shared_bytes: int(shared_bytes <= SHARED_BYTES_PER_BLOCK))


def launch(kernel, n, *args):
    """Launch ``kernel`` over ``n`` work items, one thread each (a CPU-path kernel:
    ``kernel(n, *args)``, its loop spread over Numba's threads). Nothing is launched for
    n = 0 (a launch of zero blocks is an error on a GPU)."""
    if n > 0:
        if getattr(kernel, "on_cpu", False):
            kernel(n, *args)
        else:
            launch_grid(kernel, *grid_1d(n), 0, *args)
