"""Which backend this process runs on: the environment (``NUMBA_RNN_BACKEND``,
``NUMBA_ENABLE_CUDASIM``, ``NUMBA_RNN_COMPILE_ONLY``), the GPU's detection, and the import
order that Numba's simulator needs; then the choice between the backends this process can
switch between (``set_backend``, ``use_backend``, ``backend_name``).

The storage is chosen once, here, at import, before ``numba.cuda`` is first imported
(Numba reads ``NUMBA_ENABLE_CUDASIM`` then): CuPy when a GPU is there and neither the
simulator nor the CPU was asked for (``NUMBA_RNN_BACKEND=cpu`` keeps a GPU machine on the
CPU), else NumPy, with ``numba.cuda`` as the simulator. Nothing of the package imports
``numba`` before this module has run.
"""
import contextlib
import os
import sys
import threading
import warnings

_SIM_VAR = "NUMBA_ENABLE_CUDASIM"
COMPILE_ONLY_VAR = "NUMBA_RNN_COMPILE_ONLY"
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


#: Whether this process only compiles kernels for GPUs (``NUMBA_RNN_COMPILE_ONLY=1``).
COMPILE_ONLY = os.environ.get(COMPILE_ONLY_VAR, "0") not in ("", "0")
_SIM_ASKED = _sim_requested()  # before the package sets the variable itself, below
if COMPILE_ONLY:
    if _SIM_ASKED:
        raise RuntimeError(f"numba_rnn: {COMPILE_ONLY_VAR}=1 compiles for real GPUs, which "
                           f"Numba's simulator cannot do; unset {_SIM_VAR}")
    cupy, why_no_gpu = None, None
else:
    #: CuPy where a usable GPU is there (else None, and why not)
    cupy, why_no_gpu = _find_gpu()
ON_GPU = cupy is not None
#: Whether ``numba.cuda`` is Numba's simulator in this process (no GPU, not compile-only).
CUDA_SIMULATED = cupy is None and not COMPILE_ONLY
if CUDA_SIMULATED:
    if "numba.cuda" in sys.modules:
        from numba.cuda.core import config as _numba_cuda_config

        # numba.cuda was imported for the real target before numba_rnn: the CPU path
        # still runs, the simulator cannot
        CUDA_SIMULATED = bool(_numba_cuda_config.ENABLE_CUDASIM)
    else:
        os.environ[_SIM_VAR] = "1"  # for numba.cuda's import below; unset after it
        if "numba" in sys.modules:
            # numba (not numba.cuda) came first, and read its configuration then:
            # numba.cuda takes the simulator from that configuration, so it reads again
            sys.modules["numba"].core.config.reload_config()

if COMPILE_ONLY:
    _default = "compile-only"
elif cupy is not None:
    if _asked() not in (None, "cuda"):
        raise AssertionError("unreachable: a GPU is only taken when no other backend is asked")
    _default = "cuda"
else:
    if _asked() == "cuda":
        warnings.warn(f"numba_rnn: {_BACKEND_VAR}=cuda, but there is no usable GPU "
                      f"({why_no_gpu}); running on the CPU", RuntimeWarning, stacklevel=2)
    elif _asked() is None and not _SIM_ASKED:
        # a GPU that CuPy cannot reach: said once (here, at import), not silently unused
        _unused = gpu_unused_message(why_no_gpu)
        if _unused:
            warnings.warn(_unused, RuntimeWarning, stacklevel=2)
    _default = "simulator" if (_SIM_ASKED or _asked() == "simulator") else "cpu"
    if _default == "simulator" and not CUDA_SIMULATED:
        raise RuntimeError(
            "numba_rnn: the simulator was asked for, but numba.cuda was imported before "
            f"numba_rnn without it; set {_SIM_VAR}=1 or import numba_rnn first")

from numba import cuda  # noqa: E402  (after the simulator switch above)

if CUDA_SIMULATED and not _SIM_ASKED and "numba.cuda" in sys.modules:
    # numba.cuda chose the simulator at its import; the variable goes, so that child
    # processes (DataLoader workers, subprocesses) choose for themselves (the CPU path)
    os.environ.pop(_SIM_VAR, None)


_local = threading.local()


def available_backends():
    """The backends this process can switch between (``set_backend``): ``("cuda",)`` with
    a GPU, ``("cpu", "simulator")`` without one (``("cpu",)`` when numba.cuda was imported
    for the real target before numba_rnn), ``("compile-only",)`` in a compile-only
    process."""
    if COMPILE_ONLY:
        return ("compile-only",)
    if ON_GPU:
        return ("cuda",)
    return ("cpu", "simulator") if CUDA_SIMULATED else ("cpu",)


def backend_name():
    """Where this thread's layers, optimizers and other kernels run: ``"cuda"`` on a GPU,
    ``"cpu"`` for the CPU path (numba.njit), ``"simulator"`` for the CUDA kernels in Numba's
    simulator (``"compile-only"`` in a process that only compiles them)."""
    return getattr(_local, "backend", None) or _default


def _checked(name):
    if name not in available_backends():
        why = ("there is a GPU: storage is CuPy's" if ON_GPU
               else "there is no usable GPU (" + str(why_no_gpu) + ")" if name == "cuda"
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
