"""The CPU twin of the persistent GPU kernel: one compiled parallel region runs a layer's
whole time loop, forward or backward (issue 26; PERF.md, "The small-batch design").

Per call of a layer-direction, not per step:

* ``n`` threads (``threads_for``), each owning a slice of U ≥ ⌈H/n⌉ hidden units (whole
  vectors of the micro-kernel, ``ThreadLayout``). Every
  array the loop touches is kept *thread-major*: (n, ..., U) per state, (n, ..., G·U)
  per gate block (``ThreadLayout``), so that a thread's data is one contiguous block
  (no two threads write interleaved columns of the same rows, no false sharing) and
  its loops over u run over unit-stride memory, which LLVM vectorizes;
* the thread's rows of W_hh are packed once (``ThreadLayout.pack_forward`` /
  ``pack_backward``: k-major, so that its product with h_{t-1} is a sum of scaled
  rows, vectorized over the thread's G·U outputs, and its slice stays in its core's
  cache for all T steps);
* ``prange`` over the n threads starts the region once; inside, each step is the
  thread's product (``products``), then its units (the cell's own unit functions,
  ``Cell.units(dtype, targets.CPU)``, called with H = U on the thread's slice, with
  zoneout, as ``common.unit_steps`` runs them), then a spin barrier (an atomic
  arrival counter, ``barrier``) before the next step reads every thread's h_t;
* the unit functions' G-value scratch (xg, rec) lives on the stack (``stack_array``):
  after inlining LLVM keeps it in registers, and the loop over u is vectorized with the
  cell's activations (``fastmath.functions``: branch-free exp, sigmoid and tanh).

Every sum runs in a fixed order, so results are bitwise the same run to run; the
forward's sums run over k in ascending unit order whatever n is (a padded unit adds
0·0), so the forward is also the same for every thread count, while the backward's run
in the thread-major order and differ in the last bits between thread counts. A barrier waits
with ``sched_yield`` after a short spin, so an oversubscribed machine slows down rather
than stalls; should a thread never arrive (a region that could not get all its
threads), the others give up after a bounded wait, the call is rerun on one thread,
and a warning says so once.
"""
import functools
import os
import sys
import threading
import warnings
import weakref
from collections import namedtuple

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from . import cache, targets
from .common import unit_steps

_OPTIONS = dict(error_model="numpy")


# ------------------------------------------------------------------ intrinsics
@functools.lru_cache(maxsize=None)
def stack_array(length, dtype):
    """An intrinsic making a 1-D C array of ``length`` values of ``dtype`` on the stack
    of the function it is inlined into (the CPU's ``cuda.local.array``): no NRT, and
    LLVM keeps it in registers where every index is a constant."""
    value = numba.from_dtype(np.dtype(dtype))
    array_type = types.Array(value, 1, "C")

    @intrinsic
    def make(typingctx):
        def codegen(context, builder, signature, args):
            element = context.get_data_type(value)
            count = context.get_constant(types.intp, length)
            data = cgutils.alloca_once(builder, element, size=count)
            array = context.make_array(array_type)(context, builder)
            itemsize = context.get_constant(types.intp, context.get_abi_sizeof(element))
            context.populate_array(array, data=data, shape=[count], strides=[itemsize],
                                   itemsize=itemsize, meminfo=None)
            return array._getvalue()
        return array_type(), codegen

    return make


def _element_pointer(context, builder, array_type, array, index):
    data = context.make_array(array_type)(context, builder, array).data
    return builder.gep(data, [index])


@intrinsic
def atomic_add(typingctx, array, index, value):
    """array[index] += value atomically (sequentially consistent); the old value."""
    if not (isinstance(array, types.Array) and array.dtype == types.int64):
        return None

    def codegen(context, builder, signature, args):
        pointer = _element_pointer(context, builder, signature.args[0], args[0], args[1])
        addend = context.cast(builder, args[2], signature.args[2], types.int64)
        return builder.atomic_rmw("add", pointer, addend, "seq_cst")
    return types.int64(array, index, value), codegen


@intrinsic
def atomic_read(typingctx, array, index):
    """array[index], an acquire load: what other threads wrote before their release (the
    atomic_add of a barrier) is visible after it."""
    if not (isinstance(array, types.Array) and array.dtype == types.int64):
        return None

    def codegen(context, builder, signature, args):
        pointer = _element_pointer(context, builder, signature.args[0], args[0], args[1])
        return builder.load_atomic(pointer, "acquire", 8)
    return types.int64(array, index), codegen


@intrinsic
def yield_processor(typingctx):
    """sched_yield(): give the core to another thread while waiting."""
    def codegen(context, builder, signature, args):
        function = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.IntType(32), []), "sched_yield")
        builder.call(function, [])
        return context.get_dummy_value()
    return types.void(), codegen


#: Spins on the counter before each sched_yield, and yields before a barrier gives up
#: (the region is then rerun on one thread): far beyond any real step.
SPINS = 256
MAX_YIELDS = 1 << 25


@numba.njit(inline="always", **_OPTIONS)
def barrier(counter, threads, generation):
    """Wait until ``threads`` threads have arrived at barrier number ``generation``
    (0, 1, ... within a region; counter[0] counts arrivals, counter[1] is set when a
    thread gave up). False when the region is abandoned."""
    atomic_add(counter, 0, 1)
    target = (generation + 1) * threads
    spins = 0
    yields = 0
    while atomic_read(counter, 0) < target:
        if atomic_read(counter, 1) != 0:
            return False
        spins += 1
        if spins >= SPINS:
            spins = 0
            yields += 1
            yield_processor()
            if yields > MAX_YIELDS:
                atomic_add(counter, 1, 1)
                return False
    return True


def no_alias(dispatcher):
    """``dispatcher`` (numba.njit) compiled with its array arguments marked ``noalias``
    (Numba's own flag, which it sets on the parallel loops it outlines but does not
    offer as an option): the loop over a slice's units stores into several arrays
    (h, c, four gate blocks of ``saved``) and LLVM, unable to prove them apart, runs
    the vectorized loop only behind run-time overlap checks which it then fails:
    40 ns a unit instead of 5 (LSTM, float32). The caller passes distinct arrays, or,
    where two are the same, touches one of them only (numba's
    ``_FunctionCompiler._customize_flags`` is the hook; without it the code is the
    same, slower)."""
    compiler = getattr(dispatcher, "_compiler", None)
    if compiler is not None and hasattr(compiler, "_customize_flags"):
        def customize(flags):
            flags.noalias = True
            return flags
        compiler._customize_flags = customize
    return dispatcher


# ------------------------------------------------------------------ the layout
@functools.lru_cache(maxsize=None)
def tile_transpose(lanes):
    """An intrinsic ``tile(src, r0, c0, dst, d0, e0)``: dst[d0 + j, e0 + i] = src[r0 + i,
    c0 + j] for i, j < ``lanes``, through registers: ``lanes`` vector loads, a network of
    log2(lanes) stages of two-input shuffles (stage b swaps bit b of the row with bit b
    of the column), ``lanes`` vector stores. 2-D C-contiguous arrays of one dtype. A
    strided copy in NumPy or a scalar Numba loop moves about one element a nanosecond
    here; this, about three."""
    @intrinsic
    def tile(typingctx, src, r0, c0, dst, d0, e0):
        if not (isinstance(src, types.Array) and src.ndim == 2 and src.layout == "C"
                and isinstance(dst, types.Array) and dst.ndim == 2 and dst.layout == "C"
                and src.dtype == dst.dtype):
            return None

        def codegen(context, builder, signature, args):
            source = context.make_array(signature.args[0])(context, builder, args[0])
            target = context.make_array(signature.args[3])(context, builder, args[3])
            intp = context.get_value_type(types.intp)
            r0_, c0_, d0_, e0_ = (context.cast(builder, args[k], signature.args[k], types.intp)
                                  for k in (1, 2, 4, 5))
            _, source_row = cgutils.unpack_tuple(builder, source.shape, 2)
            _, target_row = cgutils.unpack_tuple(builder, target.shape, 2)
            element = context.get_value_type(signature.args[0].dtype)
            vec = ir.VectorType(element, lanes)
            align = context.get_abi_sizeof(element)

            def pointer(array, row_length, row, column, k):
                offset = builder.add(builder.mul(builder.add(row, ir.Constant(intp, k)),
                                                 row_length), column)
                return builder.bitcast(builder.gep(array.data, [offset]), vec.as_pointer())

            rows = [builder.load(pointer(source, source_row, r0_, c0_, k), align=align)
                    for k in range(lanes)]
            mask = ir.VectorType(ir.IntType(32), lanes)
            b = lanes // 2
            while b:
                upper_pick = ir.Constant(mask, [c if (c // b) % 2 == 0 else lanes + c - b
                                                for c in range(lanes)])
                lower_pick = ir.Constant(mask, [c + b if (c // b) % 2 == 0 else lanes + c
                                                for c in range(lanes)])
                for r in range(lanes):
                    if (r // b) % 2 == 0:
                        upper, lower = rows[r], rows[r + b]
                        rows[r] = builder.shuffle_vector(upper, lower, upper_pick)
                        rows[r + b] = builder.shuffle_vector(upper, lower, lower_pick)
                b //= 2
            for k in range(lanes):
                builder.store(rows[k], pointer(target, target_row, d0_, e0_, k), align=align)
            return context.get_dummy_value()
        return types.void(src, r0, c0, dst, d0, e0), codegen
    return tile


@functools.lru_cache(maxsize=None)
def transposer(dtype):
    """``transpose_into(src, r0, c0, rows, cols, dst, d0, e0)``: dst[d0 + j, e0 + i] =
    src[r0 + i, c0 + j] for i < rows, j < cols (2-D C-contiguous arrays): whole tiles in
    registers (``tile_transpose``), the rest one by one."""
    lanes = VECTOR_BYTES // np.dtype(dtype).itemsize
    tile = tile_transpose(lanes)

    @cache.cpu_jit(**_OPTIONS)
    def transpose_into(src, r0, c0, rows, cols, dst, d0, e0):
        whole_rows, whole_cols = rows - rows % lanes, cols - cols % lanes
        for j in range(0, whole_cols, lanes):
            for i in range(0, whole_rows, lanes):
                tile(src, r0 + i, c0 + j, dst, d0 + j, e0 + i)
        for i in range(rows):
            first = whole_cols if i < whole_rows else 0
            for j in range(first, cols):
                dst[d0 + j, e0 + i] = src[r0 + i, c0 + j]

    return transpose_into


@functools.lru_cache(maxsize=None)
def layout_kernels(dtype):
    """Compiled conversions between PyTorch's weight layout (G·H rows, gate-major) and
    the region's thread-major one (see ThreadLayout): they run once per call, and the
    NumPy forms of these strided copies cost more than a B=1 LSTM's whole time loop
    at H=128. Every padded place is written 0."""
    transpose_into = transposer(dtype)

    @cache.cpu_jit(**_OPTIONS)
    def columns_of_threads(w, gates, hidden, units, out):
        # out (n, K', G·U): [tid, k, g·U + u] = w[g·H + tid·U + u, k], k < K = w.shape[1];
        # rows k >= K and units u past H are 0
        out[...] = 0
        for tid in range(out.shape[0]):
            count = min(units, hidden - tid * units)
            if count > 0:
                for g in range(gates):
                    transpose_into(w, g * hidden + tid * units, 0, count, w.shape[1],
                                   out[tid], 0, g * units)

    @no_alias  # distinct arrays: the row copies vectorize
    @cache.cpu_jit(**_OPTIONS)
    def rows_of_threads(w, gates, hidden, units, out):
        # out (n, G·U, K'): [tid, g·U + u, k] = w[g·H + tid·U + u, k]; the rest 0
        out[...] = 0
        columns = w.shape[1]
        for tid in range(out.shape[0]):
            count = min(units, hidden - tid * units)
            for g in range(gates):
                for u in range(max(count, 0)):
                    source, target = w[g * hidden + tid * units + u], out[tid, g * units + u]
                    for k in range(columns):
                        target[k] = source[k]

    @no_alias  # distinct arrays: the row copies vectorize
    @cache.cpu_jit(**_OPTIONS)
    def rows_from_threads(a, gates, hidden, units, columns, out):
        # out (G·H, columns): out[g·H + tid·U + u, k] = a[tid, g·U + u, k]
        for tid in range(a.shape[0]):
            count = min(units, hidden - tid * units)
            for g in range(gates):
                for u in range(max(count, 0)):
                    source, target = a[tid, g * units + u], out[g * hidden + tid * units + u]
                    for k in range(columns):
                        target[k] = source[k]

    @no_alias  # distinct arrays: the row copies vectorize
    @cache.cpu_jit(**_OPTIONS)
    def backward_pack(w, gates, hidden, units, out):
        # out (n, n·G·U, U): [tid, src·G·U + g·U + v, u] = w[g·H + src·U + v, tid·U + u]
        out[...] = 0
        n = out.shape[0]
        for tid in range(n):
            count = min(units, hidden - tid * units)
            for src in range(n):
                rows = min(units, hidden - src * units)
                for g in range(gates):
                    for v in range(max(rows, 0)):
                        # a row's slice, then a loop from 0: LLVM vectorizes the copy
                        source = w[g * hidden + src * units + v, tid * units:tid * units + count]
                        target = out[tid, (src * gates + g) * units + v]
                        for u in range(count):
                            target[u] = source[u]

    return columns_of_threads, rows_of_threads, rows_from_threads, backward_pack


class ThreadLayout:
    """How ``hidden`` units are split among ``threads`` threads: ``units`` (U) each, in
    whole vectors (the micro-kernel's columns), the last ones padded; conversions of arrays between PyTorch's layout (..., G·H) and the
    thread-major one (n, ..., G·U), and the packed weights."""

    def __init__(self, hidden, threads, dtype):
        self.hidden, self.threads = hidden, threads
        lanes = VECTOR_BYTES // np.dtype(dtype).itemsize  # U in whole vectors
        self.units = -(-(-(-hidden // threads)) // lanes) * lanes
        bounds = np.minimum(np.arange(threads + 1) * self.units, hidden)
        self.counts = [int(c) for c in np.diff(bounds)]  # real units each thread owns

    def to_threads(self, a, gates=1, out=None):
        """(..., gates·H) -> (n, ..., gates·U), padded with zeros; into ``out`` where
        given (a workspace, ``take``)."""
        n, units, hidden = self.threads, self.units, self.hidden
        lead = a.shape[:-1]
        if out is None:
            out = np.empty((n,) + lead + (gates * units,), dtype=a.dtype)
        source = a.reshape(lead + (gates, hidden))
        blocks = out.reshape((n,) + lead + (gates, units))
        for tid, count in enumerate(self.counts):
            blocks[tid, ..., :count] = source[..., tid * units:tid * units + count]
            blocks[tid, ..., count:] = 0
        return out

    def from_threads(self, a, gates=1):
        """(n, ..., gates·U) -> (..., gates·H), a new array."""
        n, units, hidden = self.threads, self.units, self.hidden
        lead = a.shape[1:-1]
        out = np.empty(lead + (gates, hidden), dtype=a.dtype)
        blocks = a.reshape((n,) + lead + (gates, units))
        for tid, count in enumerate(self.counts):
            out[..., tid * units:tid * units + count] = blocks[tid, ..., :count]
        return out.reshape(lead + (gates * hidden,))

    def _kernels(self, dtype):
        return layout_kernels(np.dtype(dtype))

    def pack_columns(self, w, gates, out):
        """(n, K', G·U): [tid, k, g·U + u] = w[g·H + tid·U + u, k] for w (G·H, K), K <= K'
        (rows past K and padded units 0): W_ihᵀ for the input projection, W_hh for the
        forward's recurrent product (``pack_forward``)."""
        self._kernels(w.dtype)[0](np.ascontiguousarray(w), gates, self.hidden, self.units,
                                  out)
        return out

    def pack_forward(self, w_hh, gates, out):
        """(n, n·U, G·U): [tid, k, g·U + u] = W_hh[g·H + tid·U + u, k] (k padded)."""
        return self.pack_columns(w_hh, gates, out)

    def pack_rows(self, w, gates, out):
        """(n, G·U, K'): [tid, g·U + u, k] = w[g·H + tid·U + u, k] (the rest 0)."""
        self._kernels(w.dtype)[1](np.ascontiguousarray(w), gates, self.hidden, self.units,
                                  out)
        return out

    def unpack_rows(self, a, gates, columns):
        """(G·H, columns) from a (n, G·U, K'), ``pack_rows``' inverse: a new array."""
        out = np.empty((gates * self.hidden, columns), dtype=a.dtype)
        self._kernels(a.dtype)[2](np.ascontiguousarray(a), gates, self.hidden, self.units,
                                  columns, out)
        return out

    def pack_backward(self, w_hh, gates, out):
        """(n, n·G·U, U): [tid, src·G·U + g·U + v, u] = W_hh[g·H + src·U + v, tid·U + u]."""
        self._kernels(w_hh.dtype)[3](np.ascontiguousarray(w_hh), gates, self.hidden,
                                     self.units, out)
        return out


#: Multiply-adds of a step's recurrent product below which one more thread costs more
#: (a barrier, about a microsecond on two cores) than it saves; measured on the
#: benchmark's shapes (benchmarks/NOTES.md, "The CPU region").
WORK_PER_THREAD = 1 << 14

_thread_limit = None


def set_num_threads(count):
    """At most ``count`` threads for the CPU path's regions and kernels from now on
    (``None``: Numba's, ``NUMBA_NUM_THREADS``). Also sets Numba's own thread count."""
    global _thread_limit
    if count is not None:
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)):
            raise TypeError(f"count: expected an int or None, got {type(count).__name__}")
        if not 1 <= count <= numba.config.NUMBA_NUM_THREADS:
            raise ValueError(f"count: expected 1 to {numba.config.NUMBA_NUM_THREADS} "
                             f"(NUMBA_NUM_THREADS), got {count}")
    targets.start_threads()
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS if count is None else int(count))
    _thread_limit = None if count is None else int(count)


def get_num_threads():
    """The most threads a CPU region uses now."""
    if _thread_limit is not None:
        return _thread_limit
    if not targets._threads_started:
        return max(1, min(numba.config.NUMBA_NUM_THREADS, os.cpu_count() or 1))
    return numba.get_num_threads()


def _parallel_ok():
    # a region needs all its threads at once: Numba's omp and workqueue layers give
    # them (one chunk of the prange each); TBB may run two chunks on one thread
    return sys.platform != "win32" and numba.config.THREADING_LAYER != "tbb"


def threads_for(batch, hidden, width, gates, dtype):
    """The thread count of a region for a step of ``batch`` rows, ``hidden`` units and a
    recurrent input of ``width`` values: one per WORK_PER_THREAD multiply-adds, at
    most ``get_num_threads()`` and one per vector of units."""
    if not _parallel_ok():
        return 1
    work = batch * gates * hidden * width
    vectors = -(-hidden // (VECTOR_BYTES // np.dtype(dtype).itemsize))
    return int(max(1, min(get_num_threads(), vectors, work // WORK_PER_THREAD)))


# ------------------------------------------------------------------ the kernels
#: A cell's regions: forward and backward callables, and ``compiled``, their Numba
#: functions by name (one thread, and the parallel region) for inspection.
RegionKernels = namedtuple("RegionKernels", ["forward", "backward", "compiled"])


@functools.lru_cache(maxsize=None)
def micro_kernel(rows, vectors, lanes):
    """An intrinsic ``tile(source, t, b0, weights, r0, out)``: for the ``rows`` batch rows
    from b0 and the ``vectors``·``lanes`` columns from r0,

        out[b, r] = Σ_k source[·, t, b, ·][k] · weights[k, r]

    with k over the thread-major source (n, T, B, K/n) in unit order, each sum in its
    own vector lane by fused multiply-adds (llvm.fma: one rounding each, the same bits
    scalar or packed), the rows·vectors accumulators in registers for the whole k loop:
    a register-tiled micro-kernel written in LLVM IR, as Numba would not keep a tile of
    sums in registers. Arrays C-contiguous; columns within ``out``'s and ``weights``'
    rows."""
    @intrinsic
    def kernel(typingctx, source, t, b0, weights, r0, out):
        if not (isinstance(source, types.Array) and source.ndim == 4 and source.layout == "C"
                and isinstance(weights, types.Array) and weights.layout == "C"
                and isinstance(out, types.Array) and out.layout == "C"):
            return None
        def codegen(context, builder, signature, args):
            st, _, _, wt, _, ot = signature.args
            src = context.make_array(st)(context, builder, args[0])
            wgt = context.make_array(wt)(context, builder, args[3])
            dst = context.make_array(ot)(context, builder, args[5])
            intp = context.get_value_type(types.intp)
            t_ = context.cast(builder, args[1], signature.args[1], types.intp)
            b_ = context.cast(builder, args[2], signature.args[2], types.intp)
            r_ = context.cast(builder, args[4], signature.args[4], types.intp)
            n, steps, batch, width = cgutils.unpack_tuple(builder, src.shape, 4)
            _, wrow = cgutils.unpack_tuple(builder, wgt.shape, 2)
            _, orow = cgutils.unpack_tuple(builder, dst.shape, 2)
            elt = context.get_value_type(st.dtype)
            vec = ir.VectorType(elt, lanes)
            suffix = f"v{lanes}f{st.dtype.bitwidth}"
            fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec, vec, vec]), f"llvm.fma.{suffix}")
            accs = [cgutils.alloca_once_value(builder, ir.Constant(vec, [0.0] * lanes)) for _ in range(rows * vectors)]
            undef = ir.Constant(vec, ir.Undefined)
            mask = ir.Constant(ir.VectorType(ir.IntType(32), lanes), [0] * lanes)
            align = context.get_abi_sizeof(elt)
            with cgutils.for_range(builder, n, intp=intp) as src_loop:
                s = src_loop.index
                # element offset of source[s, t, b, 0]
                base = builder.mul(builder.add(builder.mul(s, steps), t_), batch)
                with cgutils.for_range(builder, width, intp=intp) as v_loop:
                    v = v_loop.index
                    k = builder.add(builder.mul(s, width), v)
                    hs = []
                    for i in range(rows):
                        off = builder.add(builder.mul(builder.add(base, builder.add(b_, ir.Constant(intp, i))), width), v)
                        h = builder.load(builder.gep(src.data, [off]))
                        hv = builder.insert_element(undef, h, ir.Constant(ir.IntType(32), 0))
                        hs.append(builder.shuffle_vector(hv, undef, mask))
                    wbase = builder.add(builder.mul(k, wrow), r_)
                    for q in range(vectors):
                        p = builder.gep(wgt.data, [builder.add(wbase, ir.Constant(intp, q * lanes))])
                        w = builder.load(builder.bitcast(p, vec.as_pointer()), align=align)
                        for i in range(rows):
                            a = accs[i * vectors + q]
                            builder.store(builder.call(fma, [hs[i], w, builder.load(a)]), a)
            for i in range(rows):
                obase = builder.add(builder.mul(builder.add(b_, ir.Constant(intp, i)), orow), r_)
                for q in range(vectors):
                    p = builder.gep(dst.data, [builder.add(obase, ir.Constant(intp, q * lanes))])
                    builder.store(builder.load(accs[i * vectors + q]), builder.bitcast(p, vec.as_pointer()), align=align)
            return context.get_dummy_value()
        return types.void(source, t, b0, weights, r0, out), codegen
    return kernel


#: The micro-kernel's tiles: ROWS batch rows by VECTORS vectors of one 64-byte register
#: (16 float32 or 8 float64 lanes): 16 accumulators, 4 weight vectors and 4 broadcast
#: inputs, 24 of AVX-512's 32 registers (AVX2 splits each in two); a row alone (batch 1,
#: or the rows past whole tiles) by ROW_VECTORS vectors, enough independent sums to
#: cover the latency of a fused multiply-add.
ROWS, VECTORS, ROW_VECTORS, VECTOR_BYTES = 4, 4, 8, 64


@functools.lru_cache(maxsize=None)
def products_of(dtype):
    """``products(active, t, source, weights, out)``: out[b, r] = Σ_k source[·, t, b,
    ·][k]·weights[k, r] for the first ``active`` rows and every column of ``out``, by
    ``micro_kernel`` tiles (rows and columns past whole tiles by smaller ones; columns
    come in whole vectors: ThreadLayout pads U to them)."""
    lanes = VECTOR_BYTES // np.dtype(dtype).itemsize
    tile, row_tile = VECTORS * lanes, ROW_VECTORS * lanes
    block, block_column = micro_kernel(ROWS, VECTORS, lanes), micro_kernel(ROWS, 1, lanes)
    row, row_column = micro_kernel(1, ROW_VECTORS, lanes), micro_kernel(1, 1, lanes)

    @cache.cpu_jit(**_OPTIONS)
    def products(active, t, source, weights, out):
        # columns outer, rows inner: a strip of the weights (K × one tile's columns)
        # stays in the core's cache while every row tile uses it, instead of the whole
        # matrix streaming from memory once per row tile (each output's sum is the same)
        total = out.shape[1]
        whole = active - active % ROWS
        r0 = 0
        while r0 + tile <= total:
            for b0 in range(0, whole, ROWS):
                block(source, t, b0, weights, r0, out)
            r0 += tile
        while r0 < total:
            for b0 in range(0, whole, ROWS):
                block_column(source, t, b0, weights, r0, out)
            r0 += lanes
        for b0 in range(whole, active):
            r0 = 0
            while r0 + row_tile <= total:
                row(source, t, b0, weights, r0, out)
                r0 += row_tile
            while r0 < total:
                row_column(source, t, b0, weights, r0, out)
                r0 += lanes

    return products


@functools.lru_cache(maxsize=None)
def gradient_kernels(dtype):
    """The GEMMs after a backward loop, in one parallel region (no BLAS: no other thread
    pool to wake, see layer_backward): ``gradients(threads, dgx, dgh, dgx_t, dgh_t, x,
    h, w_ih, dx, dw_ih, dw_hh, db_ih, db_hh)`` with, per thread, its own slice of
    G·U gate rows (dW_ih, dW_hh, db_ih, db_hh) and every ``threads``-th step of dx."""
    products = products_of(dtype)

    transpose_into = transposer(dtype)

    @cache.cpu_jit(**_OPTIONS)
    def transpose(a, out):
        # a (T,B,R) -> out (1,1,R,T·B), by register tiles
        steps, batch, rows = a.shape
        transpose_into(a.reshape(steps * batch, rows), 0, 0, steps * batch, rows, out[0, 0],
                       0, 0)

    @cache.cpu_jit(**_OPTIONS)
    def thread_gradients(tid, threads, dgx, dgh, dgx_t, dgh_t, x, h, w_ih, dx, dw_ih, dw_hh,
                         db_ih, db_hh, differs):
        # dgx, dgh (n,T,B,G·U); dgx_t, dgh_t (n,1,1,G·U,T·B) workspaces; x (T·B,I'),
        # h (T·B,H') padded to whole vectors; w_ih (n·G·U,I'); dx (T,B,I');
        # dw_ih (n,G·U,I'), dw_hh (n,G·U,H'), db_ih, db_hh (n,G·U)
        steps = dgx.shape[1]
        transpose(dgx[tid], dgx_t[tid])
        rows = dgx.shape[3]
        products(rows, 0, dgx_t[tid], x, dw_ih[tid])
        if differs:
            transpose(dgh[tid], dgh_t[tid])
            products(rows, 0, dgh_t[tid], h, dw_hh[tid])
        else:
            products(rows, 0, dgx_t[tid], h, dw_hh[tid])
        for r in range(rows):
            total = dgx_t[tid, 0, 0, r, 0] - dgx_t[tid, 0, 0, r, 0]
            for k in range(dgx_t.shape[4]):
                total += dgx_t[tid, 0, 0, r, k]
            db_ih[tid, r] = total
        for r in range(rows):
            source = dgh_t if differs else dgx_t
            total = source[tid, 0, 0, r, 0] - source[tid, 0, 0, r, 0]
            for k in range(source.shape[4]):
                total += source[tid, 0, 0, r, k]
            db_hh[tid, r] = total
        for t in range(tid, steps, threads):
            products(dx.shape[1], t, dgx, w_ih, dx[t])

    @cache.cpu_jit(parallel=True, **_OPTIONS)
    def gradients(threads, dgx, dgh, dgx_t, dgh_t, x, h, w_ih, dx, dw_ih, dw_hh, db_ih, db_hh,
                  differs):
        for tid in numba.prange(threads):
            thread_gradients(tid, threads, dgx, dgh, dgx_t, dgh_t, x, h, w_ih, dx, dw_ih,
                             dw_hh, db_ih, db_hh, differs)

    @cache.cpu_jit(**_OPTIONS)
    def gradients_serial(threads, dgx, dgh, dgx_t, dgh_t, x, h, w_ih, dx, dw_ih, dw_hh, db_ih,
                         db_hh, differs):
        for tid in range(threads):
            thread_gradients(tid, threads, dgx, dgh, dgx_t, dgh_t, x, h, w_ih, dx, dw_ih,
                             dw_hh, db_ih, db_hh, differs)

    def run(threads, *args):
        _launch(gradients_serial, gradients, threads, args)

    return run


def _launch(serial, parallel, threads, args, serially=False):
    """``parallel(threads, *args)`` where ``threads`` > 1 can all run at once (not
    ``serially``, a threading layer that gives them, Numba started with as many), else
    ``serial(threads, *args)``, which does every thread's share in turn. Returns
    whether the parallel region ran."""
    if threads > 1 and not serially and _parallel_ok():
        targets.start_threads()
        if numba.get_num_threads() >= threads:
            parallel(threads, *args)
            return True
    serial(threads, *args)
    return False


def region_kernels(cell, dtype):
    """The forward and backward regions of ``cell`` for ``dtype``: callables running a
    whole layer-direction on thread-major arrays (``layer_forward`` and
    ``layer_backward`` below say what they take)."""
    return _region_kernels(cell, np.dtype(dtype))


@functools.lru_cache(maxsize=None)
def _region_kernels(cell, dtype):
    forward_at, backward_at = unit_steps(cell, dtype, targets.CPU)
    gates = cell.num_gates
    scratch = stack_array(gates, dtype)
    products = products_of(dtype)

    def unit_loops(zoned):
        """The loops over a slice's units, with zoneout or without (``zoned`` is a
        constant of each compilation: a run-time test inside the loop kept LLVM from
        vectorizing it, 20 ms against 5.5 for an LSTM's T=100 forward)."""
        @no_alias
        @cache.cpu_jit(**_OPTIONS)
        def forward_units(t, active, gx, rec_sums, b_hh, h_seq, c_seq, saved, zo):
            # one thread's slice, H = U: gx (T,B,G·U), rec_sums (B,G·U), b_hh (G·U,),
            # h_seq and c_seq (T+1,B,U), saved (T,B,W·U), zo (T,B,S·U). Every unit of
            # the slice runs, padding too (zero inputs and weights: its states stay 0,
            # and its rows of W_hh are 0): with the loop's bound equal to the stride
            # between gate blocks, LLVM can tell that the stores never overlap.
            units = h_seq.shape[2]
            xg = scratch()
            rec = scratch()
            for b in range(active):
                for u in range(units):
                    forward_at(t, b, u, units, xg, rec, gx, rec_sums, b_hh, h_seq, c_seq,
                               saved, zo, zoned)

        @no_alias
        @cache.cpu_jit(**_OPTIONS)
        def backward_units(t, active, dy, dh_rec, h_seq, c_seq, saved, dh_carry, dc_carry,
                           dgx, dgh, zo):
            units = h_seq.shape[2]
            for b in range(active):
                for u in range(units):
                    backward_at(t, b, u, units, dy[t, b, u] + dh_carry[b, u] + dh_rec[b, u],
                                h_seq, c_seq, saved, dh_carry, dc_carry, dgx, dgh, zo, zoned)

        return forward_units, backward_units

    forward_plain, backward_plain = unit_loops(False)
    forward_zoned, backward_zoned = unit_loops(True)

    @cache.cpu_jit(**_OPTIONS)
    def project(tid, sizes, x, w_ih, b_ih, gx):
        # the thread's columns of gx = x·W_ihᵀ + b_ih for all T·B rows at once, by the
        # micro-kernel (x (1,1,T·B,I); w_ih (n,I,G·U), b_ih (n,G·U), gx (n,T,B,G·U)):
        # no BLAS call, so no other thread pool wakes up beside the region's
        steps, batch, width = gx.shape[1:]
        out, bias = gx[tid].reshape(steps * batch, width), b_ih[tid]
        products(out.shape[0], 0, x, w_ih[tid], out)
        for k in range(out.shape[0]):
            for r in range(bias.shape[0]):
                out[k, r] += bias[r]

    @functools.lru_cache(maxsize=None)
    def chain(zoning):
        """The regions with zoneout (``zoning``) or without: each compiles (or loads)
        only the unit loop it runs, on first use. Their ``zoned`` argument is unused."""
        forward_units, backward_units = ((forward_zoned, backward_zoned) if zoning
                                         else (forward_plain, backward_plain))

        @cache.cpu_jit(**_OPTIONS)
        def forward_step(tid, t, sizes, gx, w_hh, b_hh, h_seq, c_seq, saved, zo, zoned,
                         sums):
            active = sizes[t]
            products(active, t, h_seq, w_hh[tid], sums[tid])
            forward_units(t, active, gx[tid], sums[tid], b_hh[tid], h_seq[tid], c_seq[tid],
                          saved[tid], zo[tid])

        @cache.cpu_jit(**_OPTIONS)
        def backward_step(tid, t, sizes, dy, w_hh_t, h_seq, c_seq, saved, dh_carry,
                          dc_carry, dgx, dgh, zo, zoned, sums):
            active = sizes[t]
            rec = sums[tid]
            if t + 1 < sizes.shape[0]:  # dgh[t+1]·W_hh: rows past sizes[t+1] of dgh are zeros
                products(active, t + 1, dgh, w_hh_t[tid], rec)
            else:
                rec[:] = 0
            backward_units(t, active, dy[tid], rec, h_seq[tid], c_seq[tid], saved[tid],
                           dh_carry[tid], dc_carry[tid], dgx[tid], dgh[tid], zo[tid])

        @cache.cpu_jit(**_OPTIONS)
        def backward_last(tid, sizes, w_hh_t, dh_carry, dgh, sums):
            # the gradient of h_0 through W_hh, from every thread's dgh[0]
            active = sizes[0] if sizes.shape[0] else 0
            rec = sums[tid]
            products(active, 0, dgh, w_hh_t[tid], rec)
            carry = dh_carry[tid]
            for b in range(active):
                for u in range(carry.shape[1]):
                    carry[b, u] += rec[b, u]

        @cache.cpu_jit(**_OPTIONS)
        def forward_serial(threads, sizes, x, w_ih, b_ih, gx, w_hh, b_hh, h_seq, c_seq, saved,
                           zo, zoned, sums, counter):
            # every thread's slice in turn, step by step: one thread, no barrier
            for tid in range(threads):
                project(tid, sizes, x, w_ih, b_ih, gx)
            for t in range(sizes.shape[0]):
                for tid in range(threads):
                    forward_step(tid, t, sizes, gx, w_hh, b_hh, h_seq, c_seq, saved, zo,
                                 zoned, sums)

        @cache.cpu_jit(**_OPTIONS)
        def backward_serial(threads, sizes, dy, w_hh_t, h_seq, c_seq, saved, dh_carry,
                            dc_carry, dgx, dgh, zo, zoned, sums, counter):
            steps = sizes.shape[0]
            for s in range(steps):
                for tid in range(threads):
                    backward_step(tid, steps - 1 - s, sizes, dy, w_hh_t, h_seq, c_seq,
                                  saved, dh_carry, dc_carry, dgx, dgh, zo, zoned, sums)
            for tid in range(threads):
                backward_last(tid, sizes, w_hh_t, dh_carry, dgh, sums)

        @cache.cpu_jit(parallel=True, **_OPTIONS)
        def forward_parallel(threads, sizes, x, w_ih, b_ih, gx, w_hh, b_hh, h_seq, c_seq, saved,
                             zo, zoned, sums, counter):
            for tid in numba.prange(threads):
                project(tid, sizes, x, w_ih, b_ih, gx)  # its own columns: no barrier
                for t in range(sizes.shape[0]):
                    forward_step(tid, t, sizes, gx, w_hh, b_hh, h_seq, c_seq, saved, zo,
                                 zoned, sums)
                    if not barrier(counter, threads, t):
                        break

        @cache.cpu_jit(parallel=True, **_OPTIONS)
        def backward_parallel(threads, sizes, dy, w_hh_t, h_seq, c_seq, saved, dh_carry,
                              dc_carry, dgx, dgh, zo, zoned, sums, counter):
            steps = sizes.shape[0]
            for tid in numba.prange(threads):
                done = True
                for s in range(steps):
                    backward_step(tid, steps - 1 - s, sizes, dy, w_hh_t, h_seq, c_seq,
                                  saved, dh_carry, dc_carry, dgx, dgh, zo, zoned, sums)
                    if not barrier(counter, threads, s):
                        done = False
                        break
                if done:
                    backward_last(tid, sizes, w_hh_t, dh_carry, dgh, sums)

        return forward_serial, forward_parallel, backward_serial, backward_parallel

    def run(serial, parallel, threads, serially, args):
        counter = np.zeros(2, np.int64)  # arrivals, and whether a thread gave up
        if _launch(serial, parallel, threads, args + (counter,), serially) and counter[1]:
            _warn_abandoned(threads)
            raise _Abandoned

    def forward(threads, *args, serially=False):
        """Run forward_step for every step and thread (see layer_forward; args end with
        zoned, sums)."""
        serial, parallel, _, _ = chain(bool(args[-2]))
        run(serial, parallel, threads, serially, args)

    def backward(threads, *args, serially=False):
        _, _, serial, parallel = chain(bool(args[-2]))
        run(serial, parallel, threads, serially, args)

    class Compiled(dict):  # by name, made on first look (without zoneout)
        def __missing__(self, name):
            names = ("forward_serial", "forward_parallel", "backward_serial",
                     "backward_parallel")
            return dict(zip(names, chain(False)))[name]

    return RegionKernels(forward, backward, Compiled())


class _Abandoned(RuntimeError):
    """A region's threads did not all arrive: the caller reruns it on one thread."""


_warned = False


def _warn_abandoned(threads):
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(f"numba_rnn: a CPU region could not run its {threads} threads at "
                      "once (another parallel region holding Numba's threads?); it ran on "
                      "one thread instead", RuntimeWarning, stacklevel=4)


# ------------------------------------------------------------------ workspaces
class Workspaces:
    """Arrays kept between calls, by shape and dtype: a fresh array of megabytes costs
    its page faults on first touch, which at B=32, H=128 took longer than the whole
    time loop (19 ms against 5.5 ms for an LSTM's T=100 forward). ``take`` gives a
    kept array or a new one (contents undefined), ``give`` keeps arrays for the next
    call, at most ``KEEP`` of a shape."""

    KEEP = 4

    def __init__(self):
        self._free = {}
        self._lock = threading.Lock()

    def take(self, shape, dtype):
        key = (tuple(shape), np.dtype(dtype))  # np.int64 sizes hash and compare as ints
        with self._lock:
            kept = self._free.get(key)
            if kept:
                return kept.pop()
        return np.empty(key[0], dtype=key[1])

    def give(self, *arrays):
        with self._lock:
            for a in arrays:
                kept = self._free.setdefault((a.shape, a.dtype), [])
                if len(kept) < self.KEEP:
                    kept.append(a)

    def clear(self):
        with self._lock:
            self._free.clear()


workspaces = Workspaces()


# ------------------------------------------------------------------ a layer-direction
class RegionState:
    """What a region's forward keeps for its backward, thread-major: h_seq and c_seq
    (n,T+1,B,U) (c_seq a stand-in for one-state cells), saved (n,T,B,W·U), zo
    (n,T,B,S·U) or a stand-in; its arrays go back to the workspaces when it is freed."""

    __slots__ = ("layout", "h_seq", "c_seq", "saved", "zo", "zoned", "__weakref__")

    def __init__(self, layout, h_seq, c_seq, saved, zo, zoned):
        self.layout, self.h_seq, self.c_seq = layout, h_seq, c_seq
        self.saved, self.zo, self.zoned = saved, zo, zoned
        weakref.finalize(self, workspaces.give, h_seq, c_seq, saved, zo)


def _stand_in(threads, ndim, dtype):
    return np.zeros((threads,) + (1,) * (ndim - 1), dtype=dtype)


def _sizes(batching):
    return np.asarray(batching.batch_sizes, dtype=np.int64)


def _run(launch, state_arrays):
    """``launch(serially=False)``; rerun by one thread (``launch(True)``, the in/out
    ``state_arrays`` restored first; every other output is written again whole) where
    the region could not get its threads at once."""
    kept = [a.copy() for a in state_arrays]
    try:
        launch(False)
    except _Abandoned:
        for a, k in zip(state_arrays, kept):
            a[...] = k
        launch(True)


def layer_forward(cell, x, states0, params, batching, zo):
    """One layer-direction's forward on a sorted batch (recurrent.layer_forward's
    arguments; no projection, not a layer-normalized cell). Returns h_seq (T+1,B,H),
    the final states (each sequence's after its own last step, (B,H) each) and the
    RegionState for the backward."""
    steps, batch, _ = x.shape
    gates, dtype = cell.num_gates, x.dtype
    hidden = params.w_hh.shape[0] // gates
    layout = ThreadLayout(hidden, threads_for(batch, hidden, hidden, gates, dtype), dtype)
    threads, units = layout.threads, layout.units
    width = gates * units
    take = workspaces.take
    # gx = x·W_ihᵀ + b_ih: in the region, each thread its own columns
    w_ih = layout.pack_columns(params.w_ih, gates, take((threads, x.shape[2], width), dtype))
    b_ih = layout.to_threads(params.b_ih, gates, take((threads, width), dtype))
    gx = take((threads, steps, batch, width), dtype)
    x4 = np.ascontiguousarray(x).reshape(1, 1, steps * batch, x.shape[2])
    padded = batching.order is not None  # rows of finished sequences: zeros, never written
    seqs = []
    for state0 in states0:
        seq = take((threads, steps + 1, batch, units), dtype)
        if padded:
            seq[:, 1:] = 0
        layout.to_threads(state0, out=seq[:, 0])
        seqs.append(seq)
    h_seq = seqs[0]
    c_seq = seqs[1] if cell.num_states > 1 else _stand_in(threads, 4, dtype)
    saved = take((threads, steps, batch, cell.saved_width * units), dtype)
    zoned = int(zo is not None)
    zo_t = (layout.to_threads(zo, cell.num_states,
                              take((threads, steps, batch, cell.num_states * units), dtype))
            if zoned else _stand_in(threads, 4, dtype))
    w_hh = layout.pack_forward(params.w_hh, gates, take((threads, threads * units, width),
                                                        dtype))
    b_hh = layout.to_threads(params.b_hh, gates, take((threads, width), dtype))
    sums = take((threads, batch, width), dtype)
    kernels = region_kernels(cell, dtype)
    _run(lambda serially: kernels.forward(threads, _sizes(batching), x4, w_ih, b_ih,
                                          gx, w_hh, b_hh, h_seq,
                                          c_seq, saved, zo_t, zoned, sums,
                                          serially=serially), [])
    workspaces.give(w_ih, b_ih, gx, w_hh, b_hh, sums)
    if batching.order is None:
        finals = [layout.from_threads(seq[:, steps]) for seq in seqs]
    else:
        finals = [layout.from_threads(seq[:, batching._last, np.arange(batch)]) for seq in seqs]
    return layout.from_threads(h_seq), finals, RegionState(layout, h_seq, c_seq, saved, zo_t,
                                                           zoned)


def layer_backward(cell, state, params, doutput, carry, batching, x, h_seq_std):
    """One layer-direction's backward (recurrent.layer_backward's arguments; ``carry``:
    the (B,H) gradients of the final states, updated in place to those of the initial
    states; x the layer's input, h_seq_std its (T+1,B,H) states). Returns (dx, the
    parameters' gradients as a dict: w_ih, w_hh, b_ih, b_hh)."""
    layout, dtype = state.layout, doutput.dtype
    gates, threads, units = cell.num_gates, layout.threads, layout.units
    width = gates * units
    _, steps, batch, _ = state.saved.shape
    take = workspaces.take
    dy = layout.to_threads(doutput, out=take((threads, steps, batch, units), dtype))
    dh_carry = layout.to_threads(carry[0], out=take((threads, batch, units), dtype))
    dc_carry = (layout.to_threads(carry[1], out=take((threads, batch, units), dtype))
                if cell.num_states > 1 else _stand_in(threads, 3, dtype))
    made = [take((threads, steps, batch, width), dtype)
            for _ in range(2 if cell.dgh_differs else 1)]
    if batching.order is not None:  # rows of finished sequences add nothing to the GEMMs
        for a in made:
            a[...] = 0
    dgx, dgh = made[0], made[-1]
    w_hh_t = layout.pack_backward(params.w_hh, gates,
                                  take((threads, threads * width, units), dtype))
    sums = take((threads, batch, units), dtype)
    kernels = region_kernels(cell, dtype)
    _run(lambda serially: kernels.backward(threads, _sizes(batching), dy, w_hh_t,
                                           state.h_seq, state.c_seq, state.saved, dh_carry,
                                           dc_carry, dgx, dgh, state.zo, state.zoned, sums,
                                           serially=serially),
         [dh_carry, dc_carry])
    carry[0][...] = layout.from_threads(dh_carry)
    if cell.num_states > 1:
        carry[1][...] = layout.from_threads(dc_carry)
    workspaces.give(dy, dh_carry, w_hh_t, sums)
    if cell.num_states > 1:
        workspaces.give(dc_carry)
    result = _weight_gradients(cell, layout, params, x, h_seq_std, dgx, dgh, dtype)
    workspaces.give(*made)
    return result


def _padded_columns(a, lanes, take):
    """(..., K) -> (..., K') with K' the next multiple of ``lanes``, zeros after K."""
    width = -(-a.shape[-1] // lanes) * lanes
    out = take(a.shape[:-1] + (width,), a.dtype)
    out[..., :a.shape[-1]] = a
    out[..., a.shape[-1]:] = 0
    return out


def _weight_gradients(cell, layout, params, x, h_seq, dgx, dgh, dtype):
    """(dx (T,B,I), dW_ih, dW_hh, db_ih, db_hh) from the thread-major gate gradients, as
    recurrent.layer_backward computes them after its loop, by the micro-kernel in one
    region (every sum in the order of its rows: the same bits for every thread
    count)."""
    gates, threads, units = cell.num_gates, layout.threads, layout.units
    width = gates * units
    steps, batch, inputs = x.shape
    hidden = layout.hidden
    lanes = VECTOR_BYTES // np.dtype(dtype).itemsize
    take = workspaces.take
    x_rows = _padded_columns(x.reshape(steps * batch, inputs), lanes, take)
    h_rows = _padded_columns(h_seq[:steps].reshape(steps * batch, hidden), lanes, take)
    # W_ih's rows in the gate gradients' order (thread, gate, unit), zero for padding
    w_ih = layout.pack_rows(params.w_ih, gates, take((threads, width, x_rows.shape[1]), dtype))
    transposed = [take((threads, 1, 1, width, steps * batch), dtype)
                  for _ in range(2 if cell.dgh_differs else 1)]
    dx = take((steps, batch, x_rows.shape[1]), dtype)
    dw_ih = take((threads, width, x_rows.shape[1]), dtype)
    dw_hh = take((threads, width, h_rows.shape[1]), dtype)
    db_ih, db_hh = take((threads, width), dtype), take((threads, width), dtype)
    gradient_kernels(dtype)(threads, dgx, dgh, transposed[0], transposed[-1], x_rows, h_rows,
                            w_ih.reshape(threads * width, -1), dx, dw_ih, dw_hh, db_ih,
                            db_hh, int(cell.dgh_differs))

    grads = dict(w_ih=layout.unpack_rows(dw_ih, gates, inputs),
                 w_hh=layout.unpack_rows(dw_hh, gates, hidden),
                 b_ih=layout.from_threads(db_ih, gates), b_hh=layout.from_threads(db_hh, gates))
    dx_out = dx[..., :inputs].copy()  # dx goes back to the workspaces
    workspaces.give(x_rows, h_rows, w_ih, dx, dw_ih, dw_hh, db_ih, db_hh, *transposed)
    return dx_out, grads
