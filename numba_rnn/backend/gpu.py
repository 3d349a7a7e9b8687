"""GPU storage (CuPy) and its launches: the ``numba.cuda`` kernels on CuPy's current
stream, CuPy's streams for independent work, the opt-in to more than 48 KiB of dynamic
shared memory, and the limits of a cooperative grid. Nothing here imports CuPy: the
backend gets the module that ``select`` found."""
import contextlib
import functools

import numba
import numpy as np

from .base import (SHARED_BYTES_PER_BLOCK, STATIC_SHARED_BYTES, Backend, CooperativeLimits,
                   configure)
from .host import is_host_kernel
from .select import cuda

# Launches asking for more dynamic shared memory than this check the opt-in of the very
# kernel they run; below it the default suffices, and a per-step launch is spared the
# lookup.
_NO_OPT_IN_BYTES = SHARED_BYTES_PER_BLOCK - STATIC_SHARED_BYTES


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


class GpuBackend(Backend):
    """CuPy storage on a CUDA GPU (the "cuda" backend); ``cupy``: the CuPy module."""

    def __init__(self, cupy):
        super().__init__()
        self.xp = cupy
        self._concurrently = _streams_of(cupy)
        self._streams = {}
        self._configured = {}

    def _importable(self, a):
        if (not isinstance(a, (self.xp.ndarray, np.ndarray))
                and not hasattr(a, "__cuda_array_interface__")
                and hasattr(a, "__dlpack__")):
            try:
                return self.xp.from_dlpack(a)  # another library's device array, no copy
            except Exception:
                return np.asarray(a)  # a host array (a CPU torch tensor, say)
        return a

    def to_host(self, a):
        """A NumPy copy of ``a``."""
        if isinstance(a, self.xp.ndarray):
            return self.xp.asnumpy(a)
        return np.asarray(a)

    def scatter_add(self, target, key, values):
        """``cupyx.scatter_add``."""
        import cupyx

        cupyx.scatter_add(target, key, values)

    def device_description(self):
        cupy = self.xp
        props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
        name = props["name"]
        return name.decode() if isinstance(name, bytes) else str(name)

    def synchronize(self):
        """Wait for CuPy's current stream."""
        self.xp.cuda.get_current_stream().synchronize()

    def concurrently(self, n):
        return self._concurrently(n)

    def _numba_stream(self):
        # Launch on CuPy's current stream so that kernels and CuPy's GEMMs stay ordered
        # without host synchronization.
        ptr = self.xp.cuda.get_current_stream().ptr
        stream = self._streams.get(ptr)
        if stream is None:
            stream = self._streams[ptr] = cuda.external_stream(ptr)
        return ptr, stream

    def _kernel_arg(self, a):
        # sync=False: CuPy's arrays export their stream, and Numba would otherwise
        # synchronize on it at every launch (BENCHMARKS.md, "What costs time").
        if isinstance(a, self.xp.ndarray):
            return cuda.as_cuda_array(a, sync=False)
        return a

    def kernel_views(self, *arrays):
        """Numba device views of CuPy arrays."""
        return [self._kernel_arg(a) for a in arrays]

    def launch_grid(self, kernel, blocks, threads, shared_bytes, *args):
        """On CuPy's current stream. Arguments may be CuPy arrays, views from
        ``kernel_views``, or scalars; the launch configuration is built once and reused.
        A CPU-path kernel is refused."""
        if blocks == 0:
            return
        if is_host_kernel(kernel):
            raise ValueError("a CPU-path kernel cannot run on GPU storage")
        args = [self._kernel_arg(a) for a in args]
        if self.recorder is not None:
            self.recorder(kernel, blocks, threads, shared_bytes, args)
        ptr, stream = self._numba_stream()
        key = (kernel, blocks, threads, shared_bytes, ptr)
        configured = self._configured.get(key)
        if configured is None:
            if shared_bytes > _NO_OPT_IN_BYTES:  # once per configuration, not per step
                _allow_dynamic_shared(_overload(kernel, args), shared_bytes)
            configured = self._configured[key] = configure(kernel, blocks, threads, stream,
                                                           shared_bytes)
        configured(*args)

    def cooperative_limits(self, kernel, signature, threads):
        """On the current device, from the compiled kernel's own figures: its static
        shared memory, the device's opt-in maximum per block (227 KiB on Hopper), and the
        driver's occupancy for the dynamic size asked."""
        return _cooperative_limits(kernel, signature, threads, cuda.get_current_device().id)


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
