"""Every kernel variant of the time loop, built once for any cell from its two unit
functions (``common.py``), so that a cell's math is written once.

One thread handles one (batch row b, hidden unit j) pair and all of that unit's gates.

GEMM plus gate kernel (``forward``/``backward``): the time loop computes the recurrent
product gh = h_{t-1}·W_hhᵀ with cuBLAS each step, the kernel reads it (forward), and the
loop adds dgh[t]·W_hh to the carried dh after the kernel (backward). Two launches a step.

Fused (``fused_forward``/``fused_backward``): one launch a step. Forward, each thread sums
its unit's G recurrent products itself from W_hhᵀ (H, G·H), whose row k threads of
consecutive units read at consecutive addresses; the pre-activations never go to memory.
Backward, the launch for step t first sums dh_rec = Σ_i dgates[t+1, b, i]·W_hh[i, j] from
the gradients the previous launch wrote, then does the gate backward: the product and the
gate math together, one step apart. After the loop, dgates[0]·W_hh (the gradient of h_0)
is one GEMM.

Persistent (``persistent_forward``/``persistent_backward``): one launch for the whole
sequence. Block k owns units [k·U, (k+1)·U) and keeps their slice of W_hh (G·U columns
of W_hhᵀ forward, U columns of W_hh backward; G·H·U values) in shared memory for all
steps; steps are separated by a grid-wide barrier, ``cuda.cg.this_grid().sync()``, so the
grid must be co-resident (a cooperative launch, sized by ``recurrent.persistent_plan``).
In the simulator a grid barrier only synchronizes one block: there it runs with one block.
"""
from collections import namedtuple

import numba
import numpy as np

from .. import backend
from ..backend import cuda
from . import registry
from .common import unit_of_thread

StepKernels = namedtuple("StepKernels", ["forward", "backward", "fused_forward", "fused_backward",
                                         "persistent_forward", "persistent_backward"])


def _every_cell_and_dtype():
    from . import CELLS
    return [(cell, dtype) for cell in CELLS.values() for dtype in backend.FLOAT_DTYPES]


@registry.factory(_every_cell_and_dtype)
def step_kernels(cell, dtype):
    dtype = np.dtype(dtype)
    forward_unit, backward_unit = cell.units(dtype)
    gates = cell.num_gates
    reads_dgh = cell.dgh_differs  # the recurrent gradient is dgh where it differs from dgx
    value = numba.from_dtype(dtype)
    zero = dtype.type(0)

    # ------------------------------------------------------- GEMM plus gate kernel
    @cuda.jit
    def forward(t, batch, gx, gh, b_hh, h_seq, c_seq, saved):
        # gh (B,G*H): h_{t-1}·W_hhᵀ of this step
        hidden = b_hh.shape[0] // gates
        b, j = unit_of_thread(batch, hidden)
        if b < 0:
            return
        rec = cuda.local.array(gates, value)
        for g in range(gates):
            rec[g] = gh[b, g * hidden + j]
        forward_unit(t, b, j, hidden, gx, rec, b_hh, h_seq, c_seq, saved)

    @cuda.jit
    def backward(t, batch, dy, h_seq, c_seq, saved, dh_carry, dc_carry, dgx, dgh):
        hidden = dgx.shape[2] // gates
        b, j = unit_of_thread(batch, hidden)
        if b < 0:
            return
        backward_unit(t, b, j, hidden, dy, zero, h_seq, c_seq, saved, dh_carry, dc_carry,
                      dgx, dgh)

    # ----------------------------------------------------------------- fused step
    @cuda.jit
    def fused_forward(t, batch, gx, w_hh_t, b_hh, h_seq, c_seq, saved):
        # w_hh_t (H,G*H) = W_hhᵀ
        hidden = b_hh.shape[0] // gates
        b, j = unit_of_thread(batch, hidden)
        if b < 0:
            return
        rec = cuda.local.array(gates, value)
        for g in range(gates):
            rec[g] = zero
        for k in range(w_hh_t.shape[0]):
            h = h_seq[t, b, k]
            for g in range(gates):
                rec[g] += h * w_hh_t[k, g * hidden + j]
        forward_unit(t, b, j, hidden, gx, rec, b_hh, h_seq, c_seq, saved)

    @cuda.jit
    def fused_backward(t, batch, next_batch, dy, w_hh, h_seq, c_seq, saved, dh_carry,
                       dc_carry, dgx, dgh):
        # w_hh (G*H,H); next_batch: rows active at step t+1 (0 at the last step)
        hidden = dgx.shape[2] // gates
        b, j = unit_of_thread(batch, hidden)
        if b < 0:
            return
        dh_rec = zero
        if b < next_batch:
            for i in range(gates * hidden):
                if reads_dgh:
                    dh_rec += dgh[t + 1, b, i] * w_hh[i, j]
                else:
                    dh_rec += dgx[t + 1, b, i] * w_hh[i, j]
        backward_unit(t, b, j, hidden, dy, dh_rec, h_seq, c_seq, saved, dh_carry, dc_carry,
                      dgx, dgh)

    # ------------------------------------------------------------------ persistent
    @cuda.jit
    def persistent_forward(batch_sizes, gx, w_hh_t, b_hh, h_seq, c_seq, saved, units):
        # batch_sizes (T,) int32; dynamic shared memory: this block's slice of W_hhᵀ,
        # (H, G·units) flattened, column g·units + u holding unit j0 + u's gate g
        hidden = b_hh.shape[0] // gates
        width = gates * units
        w_slice = cuda.shared.array(0, value)
        j0 = cuda.blockIdx.x * units
        first, stride = cuda.threadIdx.x, cuda.blockDim.x
        for idx in range(first, hidden * width, stride):
            k, column = idx // width, idx % width
            g, u = column // units, column % units
            w_slice[idx] = w_hh_t[k, g * hidden + j0 + u] if j0 + u < hidden else zero
        cuda.syncthreads()
        grid = cuda.cg.this_grid()
        rec = cuda.local.array(gates, value)
        for t in range(batch_sizes.shape[0]):
            for pair in range(first, batch_sizes[t] * units, stride):
                b, u = pair // units, pair % units
                j = j0 + u
                if j < hidden:
                    for g in range(gates):
                        rec[g] = zero
                    for k in range(hidden):
                        h = h_seq[t, b, k]
                        for g in range(gates):
                            rec[g] += h * w_slice[k * width + g * units + u]
                    forward_unit(t, b, j, hidden, gx, rec, b_hh, h_seq, c_seq, saved)
            grid.sync()  # step t's states are complete everywhere before step t+1 reads them

    @cuda.jit
    def persistent_backward(batch_sizes, dy, w_hh, h_seq, c_seq, saved, dh_carry, dc_carry,
                            dgx, dgh, units):
        # dynamic shared memory: this block's columns of W_hh, (G·H, units) flattened
        hidden = dgx.shape[2] // gates
        w_slice = cuda.shared.array(0, value)
        j0 = cuda.blockIdx.x * units
        first, stride = cuda.threadIdx.x, cuda.blockDim.x
        for idx in range(first, gates * hidden * units, stride):
            i, u = idx // units, idx % units
            w_slice[idx] = w_hh[i, j0 + u] if j0 + u < hidden else zero
        cuda.syncthreads()
        grid = cuda.cg.this_grid()
        steps = batch_sizes.shape[0]
        for t in range(steps - 1, -1, -1):
            next_batch = batch_sizes[t + 1] if t + 1 < steps else 0
            for pair in range(first, batch_sizes[t] * units, stride):
                b, u = pair // units, pair % units
                j = j0 + u
                if j < hidden:
                    dh_rec = zero
                    if b < next_batch:
                        for i in range(gates * hidden):
                            if reads_dgh:
                                dh_rec += dgh[t + 1, b, i] * w_slice[i * units + u]
                            else:
                                dh_rec += dgx[t + 1, b, i] * w_slice[i * units + u]
                    backward_unit(t, b, j, hidden, dy, dh_rec, h_seq, c_seq, saved, dh_carry,
                                  dc_carry, dgx, dgh)
            grid.sync()  # step t's gate gradients are complete before step t-1 reads them

    return StepKernels(forward, backward, fused_forward, fused_backward, persistent_forward,
                       persistent_backward)
