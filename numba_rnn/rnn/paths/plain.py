"""The plain path: each step the recurrent GEMM (cuBLAS on a GPU) and one gate kernel
(kernels/steps.py); the only path of a projection (an LSTM's proj_size), where
h_t = m_t·W_hrᵀ follows each step."""
from ... import backend
from ...backend import kernel_views, xp
from ...kernels.steps import step_kernels
from . import common

PATH = "plain"


def runs(cell):
    return True


def forward(cell, x, states0, params, batching, zo):
    hidden = common.hidden_size(cell, params)
    zoned, kernel_zo = common.zoneout(zo, x.dtype)
    gx = common.input_gates(x, params)
    seqs = common.sequences(cell, x, states0, params)
    h_seq, m_seq = seqs.states[0], seqs.m
    kernel_h = h_seq if m_seq is None else m_seq
    kernels = step_kernels(cell, x.dtype)
    gh = common.gate_workspace(cell, x, params)
    # Everything the loop touches exists before it starts, and the kernels' device views
    # are made once (backend.kernel_views).
    views = kernel_views(gx, gh, params.b_hh, kernel_h, seqs.c, seqs.saved, kernel_zo)
    for t, active in common.recurrent_steps(gh, h_seq, params, batching):
        backend.launch(kernels.forward, active * hidden, t, active, *views, zoned)
        if m_seq is not None:
            xp.matmul(m_seq[t + 1, :active], params.w_hr.T, out=h_seq[t + 1, :active])
    return common.finish(PATH, x, seqs, batching, zo)


def backward(cell, cache, params, doutput, carry, batching):
    x, m_seq = cache.x, cache.m_seq
    steps, batch, _ = x.shape
    hidden = common.hidden_size(cell, params)
    loop = common.backward_loop(cell, cache, params, carry)
    kernels = step_kernels(cell, x.dtype)
    extra = {}
    if m_seq is not None:
        # h_t = m_t·W_hrᵀ: the kernel takes the gradient of m_t (as its dy, with a zero
        # carry of its own), and d(h_t) for all t gives dW_hr in one GEMM afterwards.
        dh_seq = xp.zeros(doutput.shape, dtype=x.dtype)
        dm_seq = xp.zeros((steps, batch, hidden), dtype=x.dtype)
        dm_carry = xp.zeros((batch, hidden), dtype=x.dtype)
        views = kernel_views(dm_seq, m_seq, loop.c_seq, cache.saved, dm_carry, loop.dc_carry,
                             loop.dgx, loop.kernel_dgh, loop.kernel_zo)
        sizes, dh_carry = batching.batch_sizes, loop.dh_carry
        for t in range(len(sizes) - 1, -1, -1):
            active = sizes[t]
            xp.add(doutput[t, :active], dh_carry[:active], out=dh_seq[t, :active])
            xp.matmul(dh_seq[t, :active], params.w_hr, out=dm_seq[t, :active])
            backend.launch(kernels.backward, active * hidden, t, active, *views, 0)
            xp.matmul(loop.dgh[t, :active], params.w_hh, out=dh_carry[:active])
        extra["w_hr"] = common.rows(dh_seq).T @ common.rows(m_seq[1:])
    else:
        views = kernel_views(doutput, loop.h_seq, loop.c_seq, cache.saved, loop.dh_carry,
                             loop.dc_carry, loop.dgx, loop.kernel_dgh, loop.kernel_zo)
        for t, active in common.reverse_steps(loop.dgh, params, loop.dh_carry, batching):
            backend.launch(kernels.backward, active * hidden, t, active, *views, loop.zoned)
    return common.gradients(x, loop.h_seq, params, loop.dgx, loop.dgh, **extra)
