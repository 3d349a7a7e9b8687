"""Layer-normalized cells: the kernels that reduce over a row, built once for any cell
whose description has ``norm`` set (``lnlstm.py``, ``lngru.py``).

LN(v; γ, β) = γ ⊙ (v − mean(v)) / sqrt(var(v) + ε) + β over each row of v, with the
biased variance and ε = 1e-5, as ``torch.nn.LayerNorm``; x̂ = (v − mean(v))·rstd with
rstd = 1/sqrt(var(v) + ε) is kept for backward, whose gradient is

    dv = rstd ⊙ (dŷ − mean(dŷ) − x̂ ⊙ mean(dŷ ⊙ x̂)),   dŷ = γ ⊙ d(LN(v)),
    dγ = Σ_rows d(LN(v)) ⊙ x̂,   dβ = Σ_rows d(LN(v)).

A one-thread-per-unit kernel cannot normalize (each unit needs the whole row's mean and
variance), so these kernels give one block of ROW_THREADS threads to each row; its
threads stride over the row and meet in a shared-memory tree (``targets.primitives``'
``row_sum``), in dynamic shared memory of ``row_shared_bytes(dtype)``. On the CPU path
(``targets.row_kernel``) a row is one thread's work and the rows spread over threads.

* ``row_kernels(dtype)``: ``forward(x, gamma, bias, y, xhat, rstd)`` normalizes every row
  of x (N,K) into y = γ ⊙ x̂ + bias, and ``backward(dy, xhat, rstd, gamma, dx)``; the time
  loop runs them on the input projections of all steps at once (LN(x·W_ihᵀ; γ_ih)).
* ``norm_kernels(cell, dtype)``: one time step, a block per active batch row b:

  forward: ĝ = x̂ of gh[b] = h_{t-1}·W_hhᵀ (saved in ghat[t, b], rstd in rstd[t, b, 0]);
  each unit j runs the cell's forward_unit with rec = γ_hh ⊙ ĝ and the normalized input
  projection gx[t] (the layer's bias already in it); a cell with ``state_norm`` then
  normalizes the new c row (x̂ kept in ``saved`` at column G·H, rstd in rstd[t, b, 1])
  and its ``finish_unit`` makes h from it; zoneout mixes last.

  backward: the gradients reaching h_t are summed into dh_carry; with ``state_norm`` the
  cell's ``prep_unit`` gives each unit's dĉ and dĉ·ĉ, summed over the row, and
  ``state_grad_unit`` its share of LN's backward; each unit runs the cell's
  backward_unit (zoneout splitting around it, as on the plain path); then the block
  takes the gradient of the normalized recurrent projection (dgh, or dgx where it does
  not differ) back through LN into dgh_raw[t, b], which the loop multiplies by W_hh.

The units' signatures are the plain cells' (``common.py``), and the norm functions'::

    finish_unit(t, b, j, H, gamma_c, beta_c, h_seq, saved)
    prep_unit(t, b, j, H, dh, gamma_c, saved, dn_seq) -> (dĉ_j, dĉ_j·ĉ_j)
    state_grad_unit(t, b, j, H, mean_dc, mean_dcc, rstd_c, gamma_c, saved, dn_seq) -> dc_j
"""
import functools
import math
from collections import namedtuple

import numba
import numpy as np

from .. import backend
from . import registry, targets
from .common import zoneout_units
from .cells import CELLS

#: A layer-normalized cell's extras: ``state_norm``: whether h_t = o ⊙ tanh(LN(c_t)), and
#: the units' functions: ``units(dtype)`` returns NormUnits.
NormSpec = namedtuple("NormSpec", ["state_norm"])
NormUnits = namedtuple("NormUnits", ["forward", "backward", "finish", "prep", "state_grad"])

EPS = 1e-5

#: Threads per row (a power of two, for the tree): the simulator runs each as a Python
#: thread, so few there; a GPU gets 8 warps. (The CPU path gives a row one thread.)
ROW_THREADS = 8 if backend.CUDA_SIMULATED else 256


def row_shared_bytes(dtype):
    """The dynamic shared memory of every kernel here: two values per thread, the
    tree's buffer (``targets.primitives``' row_sum)."""
    return 2 * ROW_THREADS * np.dtype(dtype).itemsize

NormKernels = namedtuple("NormKernels", ["forward", "backward"])
RowKernels = namedtuple("RowKernels", ["forward", "backward"])


@functools.lru_cache(maxsize=None)
def row_functions(dtype, target):
    """(normalize, norm_grad) for ``dtype`` and ``target``: the threads of a row
    (``targets.primitives``) stride over it and meet in ``buf``."""
    dtype = np.dtype(dtype)
    value = numba.from_dtype(dtype)
    zero, one, eps = dtype.type(0), dtype.type(1), dtype.type(EPS)
    lane, barrier, row_sum = targets.primitives(target)

    @targets.device(target)
    def normalize(buf, row, xhat, width):
        # xhat[k] = (row[k] − mean)·rstd; returns rstd. Two passes (mean, then the
        # squared deviations), and a barrier at the end: threads read others' xhat next.
        tid, threads = lane()
        total = zero
        for k in range(tid, width, threads):
            total += row[k]
        inverse = one / value(width)  # in the dtype: an int divisor would promote to float64
        total, _ = row_sum(buf, total, zero)
        mean = total * inverse
        squares = zero
        for k in range(tid, width, threads):
            d = row[k] - mean
            squares += d * d
        squares, _ = row_sum(buf, squares, zero)
        rstd = one / math.sqrt(squares * inverse + eps)
        for k in range(tid, width, threads):
            xhat[k] = (row[k] - mean) * rstd
        barrier()
        return rstd

    @targets.device(target)
    def norm_grad(buf, dy, xhat, rstd, gamma, dx, width):
        # dx = rstd·(dŷ − mean(dŷ) − x̂·mean(dŷ·x̂)), dŷ = γ ⊙ dy, over one row
        tid, threads = lane()
        s1, s2 = zero, zero
        for k in range(tid, width, threads):
            d = dy[k] * gamma[k]
            s1 += d
            s2 += d * xhat[k]
        s1, s2 = row_sum(buf, s1, s2)
        inverse = one / value(width)
        m1, m2 = s1 * inverse, s2 * inverse
        for k in range(tid, width, threads):
            dx[k] = rstd * (dy[k] * gamma[k] - m1 - xhat[k] * m2)

    return normalize, norm_grad


@registry.factory(lambda: [(dtype,) for dtype in backend.FLOAT_DTYPES])
def row_kernels(dtype, target):
    dtype = np.dtype(dtype)
    normalize, norm_grad = row_functions(dtype, target)
    lane, _, _ = targets.primitives(target)

    def forward_row(n, buf, x, gamma, bias, y, xhat, rstd):
        # x, y, xhat (N,K); gamma, bias (K,); rstd (N,); one row n
        tid, threads = lane()
        width = x.shape[1]
        r = normalize(buf, x[n], xhat[n], width)
        for k in range(tid, width, threads):
            y[n, k] = gamma[k] * xhat[n, k] + bias[k]
        if tid == 0:
            rstd[n] = r

    def backward_row(n, buf, dy, xhat, rstd, gamma, dx):
        # dy, xhat, dx (N,K); rstd (N,); gamma (K,)
        norm_grad(buf, dy[n], xhat[n], rstd[n], gamma, dx[n], dy.shape[1])

    return RowKernels(targets.row_kernel(forward_row, target, dtype),
                      targets.row_kernel(backward_row, target, dtype))


def _norm_cells_and_dtypes():
    return [(cell, dtype) for cell in CELLS.values() if cell.norm is not None
            for dtype in backend.FLOAT_DTYPES]


@registry.factory(_norm_cells_and_dtypes)
def norm_kernels(cell, dtype, target):
    dtype = np.dtype(dtype)
    value = numba.from_dtype(dtype)
    zero, one = dtype.type(0), dtype.type(1)
    units = cell.units(dtype, target)
    forward_unit, backward_unit = units.forward, units.backward
    finish_unit, prep_unit, state_grad_unit = units.finish, units.prep, units.state_grad
    state_norm = cell.norm.state_norm
    gates = cell.num_gates
    differs = cell.dgh_differs
    normalize, norm_grad = row_functions(dtype, target)
    lane, barrier, row_sum = targets.primitives(target)
    mix, split, join = zoneout_units(dtype, cell.num_states, target)

    def forward_row(b, buf, xg, rec, t, gx, gh, gamma_hh, b_hh, gamma_c, beta_c, h_seq, c_seq,
                    saved, ghat, rstd, zo, zoned):
        # gx (T,B,G*H) normalized, with the bias; gh (B,G*H) = h_{t-1}·W_hhᵀ; ghat
        # (T,B,G*H) and rstd (T,B,2) out; zo (T,B,S*H) zoneout weights when ``zoned``;
        # xg, rec (G,) the thread's scratch
        tid, threads = lane()
        hidden = b_hh.shape[0] // gates
        width = gates * hidden
        r = normalize(buf, gh[b], ghat[t, b], width)
        if tid == 0:
            rstd[t, b, 0] = r
        for j in range(tid, hidden, threads):
            for g in range(gates):
                xg[g] = gx[t, b, g * hidden + j]
                rec[g] = gamma_hh[g * hidden + j] * ghat[t, b, g * hidden + j]
            forward_unit(t, b, j, hidden, xg, rec, b_hh, h_seq, c_seq, saved)
        if state_norm:
            barrier()
            r = normalize(buf, c_seq[t + 1, b], saved[t, b, width:width + hidden], hidden)
            if tid == 0:
                rstd[t, b, 1] = r
            for j in range(tid, hidden, threads):
                finish_unit(t, b, j, hidden, gamma_c, beta_c, h_seq, saved)
        if zoned:
            for j in range(tid, hidden, threads):
                mix(t, b, j, hidden, zo, h_seq, c_seq)

    def backward_row(b, buf, t, dy, h_seq, c_seq, saved, ghat, rstd, gamma_hh, gamma_c,
                     dh_carry, dc_carry, dgx, dgh, dgh_raw, dn_seq, zo, zoned):
        # dgx, dgh (T,B,G*H): gradients of the normalized projections (dgh only where
        # it differs); dgh_raw (T,B,G*H) out: of h_{t-1}·W_hhᵀ; dn_seq (T,B,H) out: of
        # LN(c)'s output (state_norm)
        tid, threads = lane()
        hidden = dgx.shape[2] // gates
        s1, s2 = zero, zero
        for j in range(tid, hidden, threads):
            total_h = dy[t, b, j] + dh_carry[b, j]
            dh_carry[b, j] = total_h
            if state_norm:
                dh = (one - zo[t, b, j]) * total_h if zoned else total_h
                a1, a2 = prep_unit(t, b, j, hidden, dh, gamma_c, saved, dn_seq)
                s1 += a1
                s2 += a2
        if state_norm:
            s1, s2 = row_sum(buf, s1, s2)
        inverse = one / value(hidden)
        m1, m2 = s1 * inverse, s2 * inverse
        for j in range(tid, hidden, threads):
            total_h = dh_carry[b, j]
            dh, total_c = total_h, zero
            if zoned:
                dh, total_c = split(t, b, j, hidden, zo, total_h, dc_carry)
            if state_norm:
                dc_carry[b, j] += state_grad_unit(t, b, j, hidden, m1, m2, rstd[t, b, 1],
                                                  gamma_c, saved, dn_seq)
            backward_unit(t, b, j, hidden, dh, h_seq, c_seq, saved, dh_carry, dc_carry,
                          dgx, dgh)
            if zoned:
                join(t, b, j, hidden, zo, total_h, total_c, dh_carry, dc_carry)
        barrier()
        norm_grad(buf, dgh[t, b] if differs else dgx[t, b], ghat[t, b], rstd[t, b, 0],
                  gamma_hh, dgh_raw[t, b], gates * hidden)

    return NormKernels(targets.row_kernel(forward_row, target, dtype, (gates, gates)),
                       targets.row_kernel(backward_row, target, dtype))


@functools.lru_cache(maxsize=None)
def no_state_norm(dtype, target):
    """Stand-ins for the state-norm functions of a cell without one (never called)."""
    zero = np.dtype(dtype).type(0)

    @targets.device(target)
    def finish_unit(t, b, j, hidden, gamma_c, beta_c, h_seq, saved):
        pass

    @targets.device(target)
    def prep_unit(t, b, j, hidden, dh, gamma_c, saved, dn_seq):
        return zero, zero

    @targets.device(target)
    def state_grad_unit(t, b, j, hidden, m1, m2, rstd_c, gamma_c, saved, dn_seq):
        return zero

    return finish_unit, prep_unit, state_grad_unit
