"""One definition, two compilers: how the package's kernel math is compiled for a GPU
(``numba.cuda``, which is also what the simulator runs) and for the processor
(``numba.njit``).

A cell's unit functions, the optimizers' per-element updates and the layer norms' row
functions are plain Python written once; each factory compiles them for a ``target``:

* ``device(target)``: the decorator of such a function: ``cuda.jit(device=True)`` for
  ``CUDA``, ``numba.njit`` for ``CPU``;
* ``grid_kernel(item, target)``: a kernel running ``item(k, *args)`` for every work item
  k: on CUDA one thread each (``kernel[blocks, threads](*args)``, the item checking its
  own bound), on the CPU ``kernel(n, *args)``, a ``prange`` loop over chunks of k < n
  spread over Numba's threads;
* ``row_kernel(body, target, dtype, scratch)``: a kernel running ``body(row, buf,
  *scratch arrays, *args)`` for each row: on CUDA a block per row, its threads meeting in
  ``buf`` (dynamic shared memory) through the ``primitives``, on the CPU a ``prange``
  loop over rows, one thread doing a row's work.

``primitives(target)`` are what a row body needs of its threads, and nothing else in
the shared math differs: ``lane()`` gives (thread, threads) of the row, ``barrier()``
waits for them, ``row_sum(buf, a, b)`` gives the sums of a and b over them. On the CPU a
row has one thread: (0, 1), nothing to wait for, the values themselves.

CPU kernels (``CpuKernel``) are marked as such, a ``backend.HostKernel`` each:
``backend.launch``/``launch_grid`` call them with the number of items or rows instead of
a launch configuration. CPU and CUDA kernels alike are compiled through the disk cache
(``kernels/cache.py``), so that a second process loads them. Which target a call site
builds for is ``current()``: the CPU on the "cpu" backend, CUDA otherwise.
"""
import functools
import inspect
from collections import namedtuple

import numba
import numpy as np

from .. import backend
from ..backend import cuda
from . import cache

CUDA, CPU = "cuda", "cpu"
TARGETS = (CUDA, CPU)


def current():
    """The target this thread's kernels are built for (``backend.backend_name()``)."""
    return CPU if backend.on_cpu() else CUDA


def _check(target):
    if target not in TARGETS:
        raise ValueError(f"target: expected one of {', '.join(TARGETS)}, got {target!r}")
    return target


def device(target):
    """The decorator that compiles a function of the shared math for ``target``."""
    if _check(target) == CUDA:
        return cuda.jit(device=True)
    # error_model="numpy": a division by zero gives inf/nan as on a GPU, with no check
    # per division; no fastmath: results stay IEEE, as the oracles expect
    return numba.njit(error_model="numpy", inline="always")


_threads_started = False


def start_threads():
    """Start Numba's threading layer, with OpenMP's threads told to sleep when idle
    (``OMP_WAIT_POLICY=PASSIVE``) unless the environment says otherwise. The time loop
    alternates a BLAS GEMM (OpenBLAS' own threads) and a parallel kernel (Numba's) every
    step; with both pools spinning while idle on the same cores each waits out the
    other's spin: on 2 cores an LSTM step took 40 times longer. The variable is set only
    while the layer loads (libgomp reads it then), so other OpenMP runtimes in the
    process (PyTorch's) keep theirs."""
    global _threads_started
    if _threads_started:
        return
    import os

    from numba.np.ufunc import parallel

    name = "OMP_WAIT_POLICY"
    previous = os.environ.get(name)
    if previous is None:
        os.environ[name] = "PASSIVE"
    try:
        parallel._launch_threads()
    finally:
        if previous is None:
            del os.environ[name]
    _threads_started = True


#: The least work for which a CPU kernel spreads over Numba's threads: grid kernels by
#: items, row kernels by rows; below, the calling thread runs the loop alone. Measured on
#: a two-core machine: the time loop alternates a GEMM on OpenBLAS' threads and a kernel
#: on Numba's, and wherever a spinning thread of one pool holds a core (OpenMP threads
#: started by another library, PyTorch, spin while idle by default) a parallel kernel's
#: worker waits out a scheduler time slice: a GRU step at B=8, H=256 went from 0.2 ms to
#: 8 ms. A step's kernel (B·H units, microseconds of work) gains nothing worth that risk;
#: the layer norms' input projection over all T·B rows, and large steps, do.
PARALLEL_MIN_ITEMS = 1 << 16
PARALLEL_MIN_ROWS = 1024


class CpuKernel(backend.HostKernel):
    """A CPU kernel: ``kernel(n, *args)`` runs its ``n`` items or rows, spread over
    Numba's threads from ``min_parallel`` of them (PARALLEL_MIN_ITEMS or _ROWS, read at
    each call), else on the calling thread (the same
    loop compiled without ``parallel``: ``serial``, or made on first use). Being a
    ``backend.HostKernel`` tells the launch functions (backend.launch) to call it rather
    than configure a launch."""

    def __init__(self, function, name, rows=False, serial=None):
        self.function = function  # the parallel (prange) compilation
        self.__name__ = name
        self.rows = rows  # counted in rows (row_kernel) rather than items
        self._serial = serial

    @property
    def min_parallel(self):
        return PARALLEL_MIN_ROWS if self.rows else PARALLEL_MIN_ITEMS

    def serial(self):
        """The same loop compiled for one thread (prange runs as range)."""
        if self._serial is None:
            self._serial = numba.njit(error_model="numpy")(self.function.py_func)
        return self._serial

    def __call__(self, n, *args):
        if n >= self.min_parallel:
            if not _threads_started:
                start_threads()
            self.function(n, *args)
        else:
            self.serial()(n, *args)

    def __repr__(self):
        return f"<CPU kernel {self.__name__}>"


def _generate(name, source, namespace):
    """The function ``name`` defined by ``source`` (a kernel's wrapper over its item or row
    function, whose argument list only the function's own signature gives)."""
    code = compile(source, f"<numba_rnn kernel {name}>", "exec")
    exec(code, namespace)  # noqa: S102  (source built here from parameter names)
    return namespace[name]


def _cpu_kernel(name, source, namespace, rows=False):
    """The CPU kernel of the function ``name`` that ``source`` defines (a prange loop),
    compiled for Numba's threads and, on first use, for one: from the disk cache
    (``kernels/cache.py``: a second process loads it instead of compiling) where it can
    hold it, else in memory."""
    serial_name = f"{name}_serial"
    serial_source = source.replace(f"def {name}(", f"def {serial_name}(", 1)
    compiled = cache.load(name, f"{source}\n\n{serial_source}", namespace,
                          {name: dict(parallel=True, error_model="numpy"),
                           serial_name: dict(error_model="numpy")})
    if compiled is None:
        function = numba.njit(parallel=True, error_model="numpy")(
            _generate(name, source, namespace))
        return CpuKernel(function, name, rows=rows)
    return CpuKernel(compiled[name], name, rows=rows, serial=compiled[serial_name])


def _cuda_kernel(name, source, namespace):
    """The CUDA kernel of the function ``name`` that ``source`` defines: from the disk
    cache (``kernels/cache.py``: numba-cuda keeps its compilations beside the module
    file, so that a second process on a GPU loads them) where it can hold it, else
    ``cuda.jit`` of it in memory."""
    kernel = cache.load_cuda(name, source, namespace)
    return kernel if kernel is not None else cuda.jit(_generate(name, source, namespace))


def _parameters(function, skip):
    return list(inspect.signature(function).parameters)[skip:]


#: Work items per chunk of a CPU grid kernel: a chunk is one thread's, and allocates its
#: scratch arrays once.
CPU_CHUNK = 256


def _scratch(lengths, dtype, target, indent):
    """Per-thread scratch arrays of ``dtype`` of the given ``lengths`` in a generated
    kernel: (namespace entries, the source lines that allocate them at ``indent`` (CUDA:
    local memory; CPU: NumPy arrays), their names as passed on, each followed by ", ")."""
    names = [f"scratch{i}" for i in range(len(lengths))]
    namespace = {f"length{i}": n for i, n in enumerate(lengths)}
    if lengths:
        namespace.update(value=numba.from_dtype(np.dtype(dtype)), dtype=np.dtype(dtype))
    make = ("cuda.local.array(length{i}, value)" if target == CUDA
            else "np.empty(length{i}, dtype)")
    lines = "".join(f"{indent}{n} = {make.format(i=i)}\n" for i, n in enumerate(names))
    return namespace, lines, "".join(f"{n}, " for n in names)


def grid_kernel(item, target, name=None, dtype=None, scratch=()):
    """The kernel of ``item(k, *scratch, *args)`` (a plain Python function, compiled here
    with ``device(target)``) over work items k; see the module's docstring. ``scratch``:
    the lengths of per-thread arrays of ``dtype`` (CUDA: local memory; CPU: allocated
    once per chunk of CPU_CHUNK items)."""
    name = name or item.__name__.removesuffix("_item")
    args = ", ".join(_parameters(item, 1 + len(scratch)))
    namespace = {"item": device(target)(item), "cuda": cuda, "np": np,
                 "prange": numba.prange, "chunk": CPU_CHUNK}
    if target == CUDA:
        extra, make, passed = _scratch(scratch, dtype, target, "    ")
        return _cuda_kernel(name, f"def {name}({args}):\n{make}"
                                  f"    item(cuda.grid(1), {passed}{args})\n",
                            {**namespace, **extra})
    extra, make, passed = _scratch(scratch, dtype, target, "        ")
    return _cpu_kernel(name, f"def {name}(n, {args}):\n"
                             f"    for c in prange((n + chunk - 1) // chunk):\n{make}"
                             f"        for k in range(c * chunk, min(n, (c + 1) * chunk)):\n"
                             f"            item(k, {passed}{args})\n", {**namespace, **extra})


def row_kernel(body, target, dtype, scratch=(), name=None):
    """The kernel of ``body(row, buf, *scratch, *args)`` over rows (a plain Python
    function, compiled here with ``device(target)``): ``buf`` is the row's shared buffer
    (CUDA: dynamic shared memory, sized by the launch; CPU: two values), ``scratch`` the
    lengths of per-thread arrays of ``dtype`` (CUDA: local memory; CPU: one per row)."""
    name = name or body.__name__.removesuffix("_row")
    args = ", ".join(_parameters(body, 2 + len(scratch)))
    namespace = {"body": device(target)(body), "cuda": cuda, "np": np,
                 "prange": numba.prange, "value": numba.from_dtype(np.dtype(dtype)),
                 "dtype": np.dtype(dtype)}
    if target == CUDA:
        extra, make, passed = _scratch(scratch, dtype, target, "    ")
        return _cuda_kernel(name, f"def {name}({args}):\n"
                                  f"    buf = cuda.shared.array(0, value)\n{make}"
                                  f"    body(cuda.blockIdx.x, buf, {passed}{args})\n",
                            {**namespace, **extra})
    extra, make, passed = _scratch(scratch, dtype, target, "        ")
    return _cpu_kernel(name, f"def {name}(rows, {args}):\n"
                             f"    for row in prange(rows):\n"
                             f"        buf = np.empty(2, dtype)\n{make}"
                             f"        body(row, buf, {passed}{args})\n",
                       {**namespace, **extra}, rows=True)


#: What a row body needs of the threads that share its row (see the module docstring).
Primitives = namedtuple("Primitives", ["lane", "barrier", "row_sum"])


@functools.lru_cache(maxsize=None)
def primitives(target):
    if _check(target) == CPU:
        @numba.njit
        def lane():
            return 0, 1

        @numba.njit
        def barrier():
            pass

        @numba.njit
        def row_sum(buf, a, b):
            return a, b

        return Primitives(lane, barrier, row_sum)

    @cuda.jit(device=True)
    def lane():
        return cuda.threadIdx.x, cuda.blockDim.x

    @cuda.jit(device=True)
    def barrier():
        cuda.syncthreads()

    @cuda.jit(device=True)
    def row_sum(buf, a, b):
        # the sums of a and of b over the block's threads, in every thread: a tree in
        # buf (2·threads values)
        tid, threads = cuda.threadIdx.x, cuda.blockDim.x
        buf[tid] = a
        buf[threads + tid] = b
        cuda.syncthreads()
        half = threads // 2
        while half > 0:
            if tid < half:
                buf[tid] += buf[tid + half]
                buf[threads + tid] += buf[threads + tid + half]
            cuda.syncthreads()
            half //= 2
        sum_a, sum_b = buf[0], buf[threads]
        cuda.syncthreads()
        return sum_a, sum_b

    return Primitives(lane, barrier, row_sum)
