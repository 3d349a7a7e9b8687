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

The package: ``select`` chooses, once, at import and before ``numba.cuda`` is first
imported, between CuPy storage and NumPy storage, and holds the per-thread choice between
backends of the same storage (``set_backend``, ``use_backend``); ``gpu.GpuBackend`` (CuPy)
and ``host.HostBackend`` (NumPy: the CPU path and the simulator, which share it, so that
the tests run the CUDA kernels in the simulator and the CPU path natively in one
process) implement one interface, ``base.Backend``. ``BACKEND`` is this process's backend
object, and the functions below (``launch``, ``to_device``, ...) call its methods.

Everything else in the package asks this package for the array module (``xp``), for
launch configurations and for kernel launches, and never imports CuPy itself.
"""
from . import select
from .base import (  # noqa: F401  (re-exported, as the names below)
    FLOAT_DTYPES, SHARED_BYTES_PER_BLOCK, STATIC_SHARED_BYTES, Backend, CooperativeLimits)
from .gpu import GpuBackend
from .host import HostBackend, HostKernel, is_host_kernel  # noqa: F401
from .select import (  # noqa: F401
    BACKENDS, CUDA_SIMULATED, available_backends, backend_name, cuda, gpu_unused_message,
    on_cpu, set_backend, use_backend)

#: This process's backend object: its storage is chosen once, at import (``select``).
BACKEND = (GpuBackend(select.cupy) if select.ON_GPU
           else HostBackend(simulated=select.CUDA_SIMULATED, compile_only=select.COMPILE_ONLY))

#: The array module of device storage: ``cupy`` on a GPU, ``numpy`` otherwise.
xp = BACKEND.xp


def _delegate(name):
    """The module-level function ``name``: the method ``name`` of ``BACKEND``."""
    def call(*args, **kwargs):
        return getattr(BACKEND, name)(*args, **kwargs)

    call.__name__ = call.__qualname__ = name
    call.__doc__ = getattr(Backend, name).__doc__
    return call


to_device = _delegate("to_device")
to_host = _delegate("to_host")
is_device_array = _delegate("is_device_array")
scatter_add = _delegate("scatter_add")
placeholder = _delegate("placeholder")
device_description = _delegate("device_description")
synchronize = _delegate("synchronize")
concurrently = _delegate("concurrently")
kernel_views = _delegate("kernel_views")
grid_1d = _delegate("grid_1d")
launch_grid = _delegate("launch_grid")
cooperative_limits = _delegate("cooperative_limits")


def launch(kernel, n, *args):
    """Launch ``kernel`` over ``n`` work items, one thread each (a CPU-path kernel:
    ``kernel(n, *args)``, its loop spread over Numba's threads). Nothing is launched for
    n = 0. A CUDA kernel goes through this module's ``launch_grid`` (what a test stands in
    for it, too)."""
    BACKEND.launch(kernel, n, *args, grid=launch_grid)


def set_launch_recorder(recorder):
    """Call ``recorder(kernel, blocks, threads, shared_bytes, args)`` before every launch
    (None: stop). ``numba_rnn.kernels.registry.record_launches`` uses it."""
    BACKEND.recorder = recorder
