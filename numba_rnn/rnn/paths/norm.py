"""The layer-normalized cells' loop (kernels/norm.py), their "plain": the input
projection normalized once for every step, gx = LN(x·W_ihᵀ; γ_ih) + b_ih; each step the
recurrent GEMM and the cell's row kernel; after the backward loop, the gradients of the
input projection's norm and of every gain."""
from collections import namedtuple

from ... import backend
from ...backend import kernel_views, xp
from ...kernels.norm import ROW_THREADS, norm_kernels, row_kernels, row_shared_bytes
from . import common

PATH = "plain"

#: What a layer-normalized cell's forward keeps for its backward (LayerCache.norm): the
#: input projection's normalized rows and reciprocal deviations, and per step those of
#: the recurrent projection (ghat (T,B,G*H), rstd (T,B,2)).
NormCache = namedtuple("NormCache", ["xhat_ih", "rstd_ih", "ghat", "rstd"])


def runs(cell):
    return cell.norm is not None


def _state_norm_params(cell, params, dtype):
    """(gamma_c, beta_c) of a cell that normalizes its state, else placeholders."""
    if cell.norm.state_norm:
        return params.gamma_c, params.beta_c
    return backend.placeholder(1, dtype), backend.placeholder(1, dtype)


def forward(cell, x, states0, params, batching, zo):
    steps, batch, _ = x.shape
    zoned, kernel_zo = common.zoneout(zo, x.dtype)
    # gx = LN(x·W_ihᵀ; γ_ih) + b_ih, every step at once
    gx_raw = common.projection(x, params.w_ih)
    xhat_ih, gx = xp.empty_like(gx_raw), xp.empty_like(gx_raw)
    rstd_ih = xp.empty(gx.shape[0], dtype=x.dtype)
    shared = row_shared_bytes(x.dtype)
    backend.launch_grid(row_kernels(x.dtype).forward, gx.shape[0], ROW_THREADS, shared,
                        gx_raw, params.gamma_ih, params.b_ih, gx, xhat_ih, rstd_ih)
    width = gx.shape[1]
    norm = NormCache(xhat_ih, rstd_ih, xp.zeros((steps, batch, width), dtype=x.dtype),
                     xp.zeros((steps, batch, 2), dtype=x.dtype))
    gx = common.by_step(gx, x)
    seqs = common.sequences(cell, x, states0, params)
    h_seq = seqs.states[0]
    gh = common.gate_workspace(cell, x, params)
    gamma_c, beta_c = _state_norm_params(cell, params, x.dtype)
    views = kernel_views(gx, gh, params.gamma_hh, params.b_hh, gamma_c, beta_c, h_seq,
                         seqs.c, seqs.saved, norm.ghat, norm.rstd, kernel_zo)
    kernel = norm_kernels(cell, x.dtype).forward
    for t, active in common.recurrent_steps(gh, h_seq, params, batching):
        backend.launch_grid(kernel, active, ROW_THREADS, shared, t, *views, zoned)
    return common.finish(PATH, x, seqs, batching, zo, norm=norm)


def backward(cell, cache, params, doutput, carry, batching):
    x, saved = cache.x, cache.saved
    xhat_ih, rstd_ih, ghat, rstd = cache.norm
    steps, batch, _ = x.shape
    hidden = common.hidden_size(cell, params)
    loop = common.backward_loop(cell, cache, params, carry)
    state_norm = cell.norm.state_norm
    dgh_raw = xp.zeros_like(loop.dgx)  # the gradient of h_{t-1}·W_hhᵀ
    dn_seq = (xp.zeros((steps, batch, hidden), dtype=x.dtype) if state_norm
              else backend.placeholder(3, x.dtype))
    gamma_c, _ = _state_norm_params(cell, params, x.dtype)
    kernel = norm_kernels(cell, x.dtype).backward
    shared = row_shared_bytes(x.dtype)
    views = kernel_views(doutput, loop.h_seq, loop.c_seq, saved, ghat, rstd, params.gamma_hh,
                         gamma_c, loop.dh_carry, loop.dc_carry, loop.dgx, loop.kernel_dgh,
                         dgh_raw, dn_seq, loop.kernel_zo)
    for t, active in common.reverse_steps(dgh_raw, params, loop.dh_carry, batching):
        backend.launch_grid(kernel, active, ROW_THREADS, shared, t, *views, loop.zoned)

    dgx_rows, dgh_rows = common.rows(loop.dgx), common.rows(loop.dgh)
    width = dgx_rows.shape[1]  # G·H; ĉ is saved from this column on (kernels/norm.py)
    dgx_raw = xp.empty_like(dgx_rows)  # back through LN(x·W_ihᵀ; γ_ih)
    backend.launch_grid(row_kernels(x.dtype).backward, dgx_rows.shape[0], ROW_THREADS,
                        shared, dgx_rows, xhat_ih, rstd_ih, params.gamma_ih, dgx_raw)
    extra = {}
    if state_norm:
        dn_rows = common.rows(dn_seq)
        extra = dict(
            gamma_c=(dn_rows * common.rows(saved[:, :, width:width + hidden])).sum(axis=0),
            beta_c=dn_rows.sum(axis=0))
    return common.gradients(x, loop.h_seq, params, loop.dgx, loop.dgh, da_ih=dgx_raw,
                            da_hh=common.rows(dgh_raw),
                            gamma_ih=(dgx_rows * xhat_ih).sum(axis=0),
                            gamma_hh=(dgh_rows * common.rows(ghat)).sum(axis=0), **extra)
