"""Every kernel variant of the time loop, built once for any cell from its two unit
functions (``common.py``), so that a cell's math is written once.

GEMM plus gate kernel (``forward``/``backward``): the time loop computes the recurrent
product gh = h_{t-1}·W_hhᵀ with cuBLAS each step, the kernel reads it (forward), and the
loop adds dgh[t]·W_hh to the carried dh after the kernel (backward). Two launches a step;
one thread per (batch row, unit).

The fused and persistent kernels share one algorithm for one time step of the block's
units [j0, j0+U) (``forward_step``, ``backward_step``; PERF.md, "The small-batch
design"):

* the matrix products: forward, rec[b, g, u] = Σ_k h_{t-1}[b, k]·W_hh[g·H + j0 + u, k],
  the block's R = G·U rows of W_hh against each batch row; backward, dh_rec[b, u] =
  Σ_i dgates[t+1, b, i]·W_hhᵀ[j0 + u, i], its R = U rows of W_hhᵀ. The input (h_{t-1},
  or the gate gradients of step t+1) is staged in shared memory, ``staged`` batch rows at
  a time (all of them when they fit; recurrent's plan says), with coalesced loads
  (``ld.global.cg`` on a GPU: other blocks wrote it, and L1 may hold a stale line); each
  warp takes a (group of GROUP rows, slice of k) item, its 32 lanes stride over k with
  GROUP·TILE accumulators each, TILE batch rows at a time (every thread works, whatever
  the batch; each value loaded from shared memory feeds several multiply-adds), and a
  warp reduction (on a GPU one reduce-scatter of the 16 sums by shuffles; atomic adds
  into shared memory in the simulator, which has no warp operations) adds into one
  partial sum per (slice, batch row, row); a long input goes through in chunks of CHUNK
  values of k;
* the gate math: the owners of (batch row, unit) add the slices and call the cell's
  unit function.

Fused (``fused_forward``/``fused_backward``): one launch a step, the block's rows of W_hh
read from global memory (L2) each step. Persistent (``persistent_forward``/
``persistent_backward``): one launch for the whole sequence; each block loads its rows
of W_hh (forward) or W_hhᵀ (backward) on chip once (registers and shared memory,
below), and steps are separated by a grid-wide handoff: ``cuda.cg.this_grid().sync()``,
or (the ``_flags`` variants) an arrival counter: each block fences its writes, adds one
atomically, and spins on an acquire load of the counter until every block has arrived,
having loaded its next inputs (gx[t+1]) first. Every block of a persistent grid
must be resident at once (``recurrent.persistent_plan``); both variants are cooperative
launches, which the driver starts only when the whole grid fits. In the simulator a grid
barrier only synchronizes one block: persistent kernels run there with one block.

Where a persistent block keeps its weights (PERF.md: registers first, then shared
memory): the first GROUP rows of its slice (group 0) keep their first ``kept`` =
min(K, threads·REGISTERS) values of k in registers, REGISTERS values a thread (k = tid
+ threads·n); every thread multiplies its values with the staged inputs, and each
warp adds its sums into a piece of the partial sums of its own, which the gate math
adds with the others in a fixed order (no atomics: the same numbers every run).
Shared memory holds the rest. On an H100 that is 24 KiB of a block's weights off
shared memory, with one staged row what takes the persistent path to LSTM H = 1410 and
GRU H = 1605 in float32 (H = 1320 and 1489 before; benchmarks/NOTES.md).

Shared memory, in elements of the dtype (``layout``): [W rows (persistent only: rows
of group 0 from k = kept on, the others whole) | the staged inputs, staged·min(K,
CHUNK) | partial sums, P·staged·R (P pieces: the S slices of k, and on chip one more
per warp for the register rows), R fastest so that the gate math reads them without
bank conflicts].
"""
from collections import namedtuple

import numba
import numpy as np

from .. import backend
from ..backend import cuda
from . import cache, registry, targets
from .common import unit_steps
from .cells import CELLS

#: The register tile of the matrix products: each thread accumulates GROUP rows of the
#: weights against TILE batch rows (GROUP·TILE sums), so that every value it loads from
#: shared memory feeds several multiply-adds.
TILE = 4
GROUP = 4
_SUMS = GROUP * TILE  # a constant for cuda.local.array (an expression is not, to Numba)

_SIMULATOR = backend.CUDA_SIMULATED
#: The shape of a fused or persistent block on a GPU (and in the offline compile check):
#: ``lanes`` threads share one item of the matrix products (a warp), ``threads`` per
#: block (8 warps); ``chunk`` values of k staged at a time: a long input (the backward's
#: G·H gate gradients) goes through shared memory in chunks, so that the weights keep
#: most of it; ``registers``: values of k per thread and register row that a persistent
#: block keeps in registers, by itemsize: 4·6 float32 or 4·3 float64 (two registers
#: each) values a thread, 24 KiB of a block's weights (at 4·8 float32 NVVM left the
#: array in local memory, at 4·4 float64 ptxas spilled: the compile check fails both).
#: The performance model and the tests size a GPU's plans from it.
GPU_SHAPE = {"lanes": 32, "threads": 256, "chunk": 1024, "registers": {4: 6, 8: 3}}
#: The simulator runs every thread as a Python thread and has no warp operations: there
#: a "warp" is 4 lanes and a block 2 of them, which keeps it fast and still exercises
#: every piece of the algorithm; chunks of 8 and 2 (float32) or 1 (float64) register
#: values a thread, so that its small tests cross chunk boundaries and have register
#: rows both wider and narrower than what registers keep.
SHAPE = ({"lanes": 4, "threads": 8, "chunk": 8, "registers": {4: 2, 8: 1}} if _SIMULATOR
         else GPU_SHAPE)
LANES = SHAPE["lanes"]
BLOCK_THREADS = SHAPE["threads"]
CHUNK = SHAPE["chunk"]
REGISTERS = SHAPE["registers"]

StepKernels = namedtuple("StepKernels", [
    "forward", "backward", "fused_forward", "fused_backward",
    "persistent_forward", "persistent_backward",
    "persistent_forward_flags", "persistent_backward_flags"])


def layout(rows, width, warps, on_chip, staged, registers, chunk=CHUNK, lanes=LANES):
    """The dynamic shared memory of a block for R = ``rows`` rows of length K =
    ``width``, ``warps`` warps of ``lanes`` threads, the rows kept ``on_chip``
    (persistent, with ``registers`` values of k per thread and register row in
    registers) or read from memory (fused), and ``staged`` batch rows of one chunk of k
    (at most ``chunk`` values) staged at a time: (slices S, pieces P of the partial
    sums, register rows, values of k each register row keeps in registers, offset of
    the staged inputs, offset of the partial sums, total elements). Each row's k range
    within a chunk is cut into S slices so that every warp has an item when there are
    fewer groups of GROUP rows than warps; on chip each warp adds its register products
    into one more piece."""
    slices = max(1, warps // -(-rows // GROUP))
    if on_chip:
        held = min(GROUP, rows)
        kept = min(width, warps * lanes * registers)
        pieces = slices + warps
    else:
        held, kept, pieces = 0, 0, slices
    tile_at = rows * width - held * kept if on_chip else 0
    partial_at = tile_at + staged * min(width, chunk)
    return (slices, pieces, held, kept, tile_at, partial_at,
            partial_at + staged * rows * pieces)


def staged_rows(batch, fits):
    """How many of ``batch`` rows of input a block stages at once: all of them (above
    TILE rounded up to whole register tiles) when they fit, else fewer, by whole tiles
    down to TILE and then one by one; None when not even one row ``fits``."""
    staged = max(batch, 1)
    if staged > TILE:
        staged = -(-staged // TILE) * TILE
    while staged > TILE and not fits(staged):
        staged -= TILE
    while staged > 1 and not fits(staged):
        staged -= 1
    return staged if fits(staged) else None


def weight_offset(row, k, width, held, kept):
    """Where W[row, k] of a block's rows lies in shared memory (not for the values that
    registers keep: k < kept in the first ``held`` rows)."""
    if row < held:
        return row * (width - kept) + k - kept
    return row * width - held * kept + k


_layout = cuda.jit(device=True)(layout)
_weight_offset = cuda.jit(device=True)(weight_offset)

assert GROUP * TILE == 16, "reduce_scatter hands each pair of a warp's 32 lanes one sum"


@cuda.jit(device=True)
def _exchange(acc, lane, offset, half):
    # lanes differing in bit `offset` swap halves: each keeps one and adds the other's
    upper = (lane & offset) != 0
    for i in range(half):
        send = acc[i] if upper else acc[i + half]
        keep = acc[i + half] if upper else acc[i]
        acc[i] = keep + cuda.shfl_xor_sync(0xFFFFFFFF, send, offset)


@cuda.jit(device=True)
def reduce_scatter(acc, lane):
    """A warp's 16 sums at once (GPU only): ``acc`` holds 16 values in each of the 32
    lanes; returns (total, index), the warp's total of acc[index], which both lanes of
    a pair (lane, lane ^ 1) hold, the 16 pairs holding the 16 indices. 16 shuffles,
    where a reduction per sum takes 80."""
    _exchange(acc, lane, 16, 8)
    _exchange(acc, lane, 8, 4)
    _exchange(acc, lane, 4, 2)
    _exchange(acc, lane, 2, 1)
    total = acc[0] + cuda.shfl_xor_sync(0xFFFFFFFF, acc[0], 1)
    return total, (((lane >> 4) & 1) * 8 + ((lane >> 3) & 1) * 4 + ((lane >> 2) & 1) * 2
                   + ((lane >> 1) & 1))


if not _SIMULATOR:
    from llvmlite import ir
    from numba.cuda import types  # numba-cuda's types (numba.types: the CPU target's)
    from numba.cuda.extending import intrinsic

    @intrinsic
    def _load_acquire(typingctx, counter):
        """counter[0] (int32) by ``ld.acquire.gpu``: a load that sees the other blocks'
        atomic adds (from L2) and orders this block's later reads after it. The inline
        assembly has a side effect and clobbers memory, so that the compiler reloads it
        in every turn of a spin: numba-cuda's ``ldcv`` has neither, and NVVM hoisted it
        out of the loop (the compile check fails a spin that does not reload)."""
        if not (isinstance(counter, types.Array) and counter.dtype == types.int32):
            return None

        def codegen(context, builder, signature, args):
            data = context.make_array(signature.args[0])(context, builder, args[0]).data
            load = ir.InlineAsm(ir.FunctionType(ir.IntType(32), [data.type]),
                                "ld.acquire.gpu.b32 $0, [$1];", "=r,l,~{memory}",
                                side_effect=True)
            return builder.call(load, [data])

        return types.int32(counter), codegen


def _every_cell_and_dtype():
    return [(cell, dtype) for cell in CELLS.values() if cell.norm is None
            for dtype in backend.FLOAT_DTYPES]


@registry.factory(_every_cell_and_dtype)
def step_kernels(cell, dtype, target):
    dtype = np.dtype(dtype)
    forward_unit, backward_unit = cell.units(dtype, target)
    gates = cell.num_gates
    reads_dgh = cell.dgh_differs  # the recurrent gradient is dgh where it differs from dgx
    value = numba.from_dtype(dtype)
    zero = dtype.type(0)

    # ------------------------------------------------------- GEMM plus gate kernel
    # One work item per (batch row b, unit j) of the step's active rows: a thread each on
    # a GPU, a prange loop on the CPU (targets.grid_kernel), with xg and rec (G,) the
    # thread's scratch for the unit's G values of gx[t, b] and gh[b]. With ``zoned`` (1),
    # zoneout mixes the new states with the previous ones by the weights zo (T,B,S*H)
    # (common.unit_steps); only this variant runs it.
    forward_at, backward_at = unit_steps(cell, dtype, target)

    def forward_item(k, xg, rec, t, batch, gx, gh, b_hh, h_seq, c_seq, saved, zo, zoned):
        # gh (B,G*H): h_{t-1}·W_hhᵀ of this step
        hidden = b_hh.shape[0] // gates
        if k >= batch * hidden:
            return
        b, j = k // hidden, k % hidden
        forward_at(t, b, j, hidden, xg, rec, gx, gh, b_hh, h_seq, c_seq, saved, zo, zoned)

    def backward_item(k, t, batch, dy, h_seq, c_seq, saved, dh_carry, dc_carry, dgx, dgh, zo,
                      zoned):
        hidden = dgx.shape[2] // gates
        if k >= batch * hidden:
            return
        b, j = k // hidden, k % hidden
        backward_at(t, b, j, hidden, dy[t, b, j] + dh_carry[b, j], h_seq, c_seq, saved,
                    dh_carry, dc_carry, dgx, dgh, zo, zoned)

    forward = targets.grid_kernel(forward_item, target, dtype=dtype, scratch=(gates, gates))
    backward = targets.grid_kernel(backward_item, target)
    if target == targets.CPU:  # the CPU runs the plain path only (recurrent.choose_path)
        return StepKernels(forward, backward, *[None] * (len(StepKernels._fields) - 2))

    # ------------------------------------------------- the pieces of one block step
    # The simulator has no warp operations nor cache-hinted loads: it gets a reduction by
    # atomic adds into shared memory and plain loads; GPUs (and the offline compile
    # check) get shuffles, ld.global.cg, the flag handoff's spin on an acquire load
    # (ld.acquire.gpu) and nanosleep.
    if _SIMULATOR:
        @cuda.jit(device=True)
        def deposit(acc, smem, partial_at, staged, rows, count, r0, group, piece, lane):
            # no warp operations: every lane adds each of its sums into shared memory
            for q in range(GROUP):
                row = group * GROUP + q
                for i in range(TILE):
                    if row < rows and r0 + i < count:
                        cuda.atomic.add(smem, partial_at + (piece * staged + r0 + i) * rows
                                        + row, acc[q * TILE + i])

        @cuda.jit(device=True)
        def load(a, t, b, k):
            return a[t, b, k]

        @cuda.jit(device=True)
        def pause():
            pass

        @cuda.jit(device=True)
        def poll(counter):
            return counter[0]
    else:
        @cuda.jit(device=True)
        def deposit(acc, smem, partial_at, staged, rows, count, r0, group, piece, lane):
            # the warp's 16 sums by one reduce-scatter; one lane of each pair adds its sum
            # (one warp owns each piece of a row)
            total, which = reduce_scatter(acc, lane)
            row = group * GROUP + which // TILE
            i = which % TILE
            if (lane & 1) == 0 and row < rows and r0 + i < count:
                smem[partial_at + (piece * staged + r0 + i) * rows + row] += total

        @cuda.jit(device=True)
        def load(a, t, b, k):
            return cuda.ldcg(a, (t, b, k))  # L2: another block wrote it this launch

        @cuda.jit(device=True)
        def pause():
            cuda.nanosleep(64)

        @cuda.jit(device=True)
        def poll(counter):
            return _load_acquire(counter)

    registers = REGISTERS[dtype.itemsize]
    held_values = GROUP * registers  # a constant for cuda.local.array

    def make_products(on_chip):
        """``products``: the partial sums of a tile, for the block's rows on chip
        (registers ``wr`` and shared memory from offset 0, ``weight_offset``) or read
        from ``matrix`` in global memory."""
        @cuda.jit(device=True)
        def products(smem, wr, source, step, b0, count, width, rows, units, j0, hidden,
                     matrix, slices, pieces, held, kept, staged, tile_at, partial_at):
            # partial[s, i, row] = Σ_{k in slice s} source[step, b0 + i, k]·M[row, k]
            # for i < count; M's row `row` is matrix row (row // U)·H + j0 + row % U; on
            # chip, piece S + w has warp w's sums over the k of the first ``held`` rows
            # that registers keep (k < kept), which the slices then leave out
            tid, threads = cuda.threadIdx.x, cuda.blockDim.x
            warp, lane, warps = tid // LANES, tid % LANES, threads // LANES
            for idx in range(tid, pieces * staged * rows, threads):
                smem[partial_at + idx] = zero
            acc = cuda.local.array(_SUMS, value)
            w = cuda.local.array(GROUP, value)
            items = -(-rows // GROUP) * slices
            for c0 in range(0, width, CHUNK):
                span = min(CHUNK, width - c0)
                for idx in range(tid, count * span, threads):
                    i = idx // span
                    smem[tile_at + idx] = load(source, step, b0 + i, c0 + idx - i * span)
                cuda.syncthreads()
                chunk = (span + slices - 1) // slices
                for first in range(0, items, warps):
                    item = first + warp
                    group = item // slices
                    piece = item - group * slices
                    start = piece * chunk
                    if on_chip and group == 0:  # what registers keep is theirs to add
                        start = max(start, kept - c0)
                    for r0 in range(0, count, TILE):  # TILE batch rows at a time
                        for a in range(_SUMS):
                            acc[a] = zero
                        if item < items:
                            for kk in range(start + lane, min(span, (piece + 1) * chunk),
                                            LANES):
                                for q in range(GROUP):
                                    row = group * GROUP + q
                                    u = row % units
                                    w[q] = zero
                                    if row < rows and j0 + u < hidden:
                                        if on_chip:
                                            w[q] = smem[_weight_offset(row, c0 + kk, width,
                                                                       held, kept)]
                                        else:
                                            w[q] = matrix[(row // units) * hidden + j0 + u,
                                                          c0 + kk]
                                for i in range(TILE):
                                    if r0 + i < count:
                                        x = smem[tile_at + (r0 + i) * span + kk]
                                        for q in range(GROUP):
                                            acc[q * TILE + i] += w[q] * x
                            # the same for the whole warp, so its reductions stay in step
                            deposit(acc, smem, partial_at, staged, rows, count, r0, group,
                                    piece, lane)
                if on_chip and c0 < kept:
                    # the register rows: each thread its values k = tid + threads·n of
                    # this chunk, each warp's sums into a piece of its own, S + warp
                    for r0 in range(0, count, TILE):
                        for a in range(_SUMS):
                            acc[a] = zero
                        for n in range(registers):
                            k = tid + threads * n
                            if c0 <= k and k < c0 + span and k < kept:
                                for i in range(TILE):
                                    if r0 + i < count:
                                        x = smem[tile_at + (r0 + i) * span + k - c0]
                                        for q in range(GROUP):
                                            acc[q * TILE + i] += wr[q * registers + n] * x
                        deposit(acc, smem, partial_at, staged, rows, count, r0, 0,
                                slices + warp, lane)
                cuda.syncthreads()

        return products

    def make_forward_step(on_chip):
        products = make_products(on_chip)

        @cuda.jit(device=True)
        def forward_step(smem, wr, t, active, gx, w_hh, b_hh, h_seq, c_seq, saved, units,
                         staged, j0, xg, rec, pre, prefetched):
            # h_seq[t+1] and the state of the block's units from h_seq[t], all rows
            hidden = b_hh.shape[0] // gates
            rows = gates * units
            tid, threads = cuda.threadIdx.x, cuda.blockDim.x
            slices, pieces, held, kept, tile_at, partial_at, _ = _layout(
                rows, hidden, threads // LANES, on_chip, staged, registers, CHUNK, LANES)
            for b0 in range(0, active, staged):
                count = min(staged, active - b0)
                products(smem, wr, h_seq, t, b0, count, hidden, rows, units, j0, hidden,
                         w_hh, slices, pieces, held, kept, staged, tile_at, partial_at)
                for pair in range(tid, count * units, threads):
                    i = pair // units
                    j = j0 + pair - i * units
                    if j < hidden:
                        for g in range(gates):
                            total = zero
                            for piece in range(pieces):
                                total += smem[partial_at + (piece * staged + i) * rows
                                              + g * units + j - j0]
                            rec[g] = total
                            if prefetched and b0 == 0 and pair == tid:
                                xg[g] = pre[g]
                            else:
                                xg[g] = gx[t, b0 + i, g * hidden + j]
                        forward_unit(t, b0 + i, j, hidden, xg, rec, b_hh, h_seq, c_seq, saved)
                cuda.syncthreads()

        return forward_step

    def make_backward_step(on_chip):
        products = make_products(on_chip)

        @cuda.jit(device=True)
        def backward_step(smem, wr, t, active, next_batch, dy, w_hh_t, h_seq, c_seq, saved,
                          dh_carry, dc_carry, dgx, dgh, units, staged, j0):
            # step t's gate gradients of the block's units, with dh_rec from step t+1's
            hidden = dgx.shape[2] // gates
            width = gates * hidden
            tid, threads = cuda.threadIdx.x, cuda.blockDim.x
            slices, pieces, held, kept, tile_at, partial_at, _ = _layout(
                units, width, threads // LANES, on_chip, staged, registers, CHUNK, LANES)
            for b0 in range(0, active, staged):
                count = min(staged, active - b0)
                reach = min(count, next_batch - b0)  # rows that ran step t+1
                if reach > 0:
                    products(smem, wr, dgh if reads_dgh else dgx, t + 1, b0, reach, width,
                             units, units, j0, hidden, w_hh_t, slices, pieces, held, kept,
                             staged, tile_at, partial_at)
                for pair in range(tid, count * units, threads):
                    i = pair // units
                    u = pair - i * units
                    if j0 + u < hidden:
                        dh_rec = zero
                        if i < reach:
                            for piece in range(pieces):
                                dh_rec += smem[partial_at + (piece * staged + i) * units + u]
                        b, j = b0 + i, j0 + u
                        backward_unit(t, b, j, hidden, dy[t, b, j] + dh_carry[b, j] + dh_rec,
                                      h_seq, c_seq, saved, dh_carry, dc_carry, dgx, dgh)
                cuda.syncthreads()

        return backward_step

    # ----------------------------------------------------------------- fused step
    forward_step_global = make_forward_step(False)
    backward_step_global = make_backward_step(False)

    @cache.cuda_jit
    def fused_forward(t, active, gx, w_hh, b_hh, h_seq, c_seq, saved, units, staged):
        # w_hh (G*H,H); the block's units are [blockIdx·units, +units); ``staged`` batch
        # rows of h_{t-1} go through shared memory at a time
        smem = cuda.shared.array(0, value)
        xg = cuda.local.array(gates, value)
        rec = cuda.local.array(gates, value)
        forward_step_global(smem, xg, t, active, gx, w_hh, b_hh, h_seq, c_seq, saved,
                            units, staged, cuda.blockIdx.x * units, xg, rec, xg, False)

    @cache.cuda_jit
    def fused_backward(t, active, next_batch, dy, w_hh_t, h_seq, c_seq, saved, dh_carry,
                       dc_carry, dgx, dgh, units, staged):
        # w_hh_t (H,G*H) = W_hhᵀ; next_batch: rows active at step t+1 (0 at the last)
        smem = cuda.shared.array(0, value)
        unused = cuda.local.array(1, value)  # no register rows: the weights are in memory
        backward_step_global(smem, unused, t, active, next_batch, dy, w_hh_t, h_seq, c_seq,
                             saved, dh_carry, dc_carry, dgx, dgh, units, staged,
                             cuda.blockIdx.x * units)

    # ------------------------------------------------------------------ persistent
    forward_step_on_chip = make_forward_step(True)
    backward_step_on_chip = make_backward_step(True)

    @cuda.jit(device=True)
    def load_rows(smem, wr, matrix, rows, width, units, j0, hidden):
        # the block's row `row` is matrix row (row // U)·H + j0 + row % U (zeros past H):
        # its values k < kept of the first rows into registers, wr[q·REGISTERS + n] =
        # row q's value k = tid + threads·n; the rest into shared memory (weight_offset)
        tid, threads = cuda.threadIdx.x, cuda.blockDim.x
        _, _, held, kept, _, _, _ = _layout(rows, width, threads // LANES, True, 1,
                                            registers, CHUNK, LANES)
        for n in range(registers):
            k = tid + threads * n
            for q in range(GROUP):
                wr[q * registers + n] = zero
                if q < held and k < kept and j0 + q % units < hidden:
                    wr[q * registers + n] = matrix[(q // units) * hidden + j0 + q % units, k]
        for idx in range(tid, rows * width, threads):
            row = idx // width
            k = idx - row * width
            if row >= held or k >= kept:
                u = row % units
                at = _weight_offset(row, k, width, held, kept)
                if j0 + u < hidden:
                    smem[at] = matrix[(row // units) * hidden + j0 + u, k]
                else:
                    smem[at] = zero
        cuda.syncthreads()

    @cuda.jit(device=True)
    def grid_handoff(arrived, steps_done):
        cuda.cg.this_grid().sync()

    @cuda.jit(device=True)
    def flag_handoff(arrived, steps_done):
        # each block publishes its writes and arrives; then waits for every block
        if steps_done < 0:
            # never runs, but makes the launch cooperative, as the grid barrier's is: the
            # driver starts the grid only when all of it fits, so two grids (the
            # directions of a layer, on two streams) cannot each hold part of the GPU
            # and wait for each other forever
            cuda.cg.this_grid().sync()
        cuda.threadfence()
        cuda.syncthreads()
        if cuda.threadIdx.x == 0:
            cuda.atomic.add(arrived, 0, 1)
            target = steps_done * cuda.gridDim.x
            while poll(arrived) < target:  # the other blocks' atomic adds land in L2
                pause()
            cuda.threadfence()
        cuda.syncthreads()

    @cuda.jit(device=True)
    def prefetch(pre, gx, t, active, units, staged, j0, hidden):
        # this thread's first (row, unit) of step t, as forward_step will take it
        tid = cuda.threadIdx.x
        i = tid // units
        j = j0 + tid - i * units
        if tid < min(staged, active) * units and j < hidden:
            for g in range(gates):
                pre[g] = gx[t, i, g * hidden + j]
            return True
        return False

    def make_persistent(handoff):
        @cache.cuda_jit
        def persistent_forward(batch_sizes, gx, w_hh, b_hh, h_seq, c_seq, saved, units,
                               staged, arrived):
            # batch_sizes (T,) int32; w_hh (G*H,H); arrived (1,) int32, zero (flags)
            hidden = b_hh.shape[0] // gates
            j0 = cuda.blockIdx.x * units
            smem = cuda.shared.array(0, value)
            wr = cuda.local.array(held_values, value)
            load_rows(smem, wr, w_hh, gates * units, hidden, units, j0, hidden)
            xg = cuda.local.array(gates, value)
            rec = cuda.local.array(gates, value)
            pre = cuda.local.array(gates, value)
            prefetched = False
            steps = batch_sizes.shape[0]
            for t in range(steps):
                forward_step_on_chip(smem, wr, t, batch_sizes[t], gx, w_hh, b_hh, h_seq,
                                     c_seq, saved, units, staged, j0, xg, rec, pre,
                                     prefetched)
                if t + 1 < steps:
                    prefetched = prefetch(pre, gx, t + 1, batch_sizes[t + 1], units, staged,
                                          j0, hidden)
                    handoff(arrived, t + 1)  # step t's states complete everywhere

        @cache.cuda_jit
        def persistent_backward(batch_sizes, dy, w_hh_t, h_seq, c_seq, saved, dh_carry,
                                dc_carry, dgx, dgh, units, staged, arrived):
            # w_hh_t (H,G*H) = W_hhᵀ: the block keeps its units' rows
            hidden = dgx.shape[2] // gates
            j0 = cuda.blockIdx.x * units
            smem = cuda.shared.array(0, value)
            wr = cuda.local.array(held_values, value)
            load_rows(smem, wr, w_hh_t, units, gates * hidden, units, j0, hidden)
            steps = batch_sizes.shape[0]
            for t in range(steps - 1, -1, -1):
                next_batch = batch_sizes[t + 1] if t + 1 < steps else 0
                backward_step_on_chip(smem, wr, t, batch_sizes[t], next_batch, dy, w_hh_t,
                                      h_seq, c_seq, saved, dh_carry, dc_carry, dgx, dgh,
                                      units, staged, j0)
                if t > 0:
                    handoff(arrived, steps - t)  # step t's gate gradients complete

        return persistent_forward, persistent_backward

    persistent_forward, persistent_backward = make_persistent(grid_handoff)
    persistent_forward_flags, persistent_backward_flags = make_persistent(flag_handoff)
    return StepKernels(forward, backward, fused_forward, fused_backward, persistent_forward,
                       persistent_backward, persistent_forward_flags, persistent_backward_flags)
