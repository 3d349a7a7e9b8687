"""The time loop, written once for every cell: one direction of one layer, and a stack of
layers, forward and backward (backpropagation through time).

Everything here works on device arrays, time-major: ``x`` is (T, B, I), states are
(B, H) per layer, or (L, B, H) for a stack. Inputs are assumed valid: ``numba_rnn.nn``
checks them before calling in. What a cell contributes is described in
``numba_rnn.kernels.common``; nothing here knows which cell it runs.

Per layer (DESIGN.md, "How data flows"):
    gx = x·W_ihᵀ + b_ih                one GEMM over all T·B rows
    for t: gh = h_{t-1}·W_hhᵀ           the recurrent GEMM
           forward_step kernel          gates and new states from gx[t], gh, b_hh
backward, for t = T-1 … 0:
           backward_step kernel         dgx[t], dgh[t], the pointwise state gradients
           dh_{t-1} += dgh[t]·W_hh
then dW_ih, dW_hh, db, dx as GEMMs and sums over all T·B rows.
"""
from collections import namedtuple

from .backend import launch, xp

LayerParams = namedtuple("LayerParams", ["w_ih", "w_hh", "b_ih", "b_hh"])

# What one layer's forward keeps for its backward.
LayerCache = namedtuple("LayerCache", ["x", "state_seqs", "saved"])


def layer_forward(cell, x, states0, params):
    """Run one layer over the sequence.

    x (T,B,I); states0: ``cell.num_states`` arrays (B,H); params: LayerParams with
    w_ih (G*H,I), w_hh (G*H,H), b_ih and b_hh (G*H,).
    Returns (output (T,B,H), final states, LayerCache).
    """
    steps, batch, _ = x.shape
    hidden = params.w_hh.shape[1]
    forward_step, _ = cell.kernels(x.dtype)

    gx = _rows(x) @ params.w_ih.T
    gx += params.b_ih
    gx = gx.reshape(steps, batch, -1)
    state_seqs = []
    for state0 in states0:
        seq = xp.empty((steps + 1, batch, hidden), dtype=x.dtype)
        seq[0] = state0
        state_seqs.append(seq)
    saved = xp.empty((steps, batch, cell.saved_width * hidden), dtype=x.dtype)
    gh = xp.empty((batch, cell.num_gates * hidden), dtype=x.dtype)
    w_hh_t = params.w_hh.T
    h_seq = state_seqs[0]
    for t in range(steps):
        xp.matmul(h_seq[t], w_hh_t, out=gh)
        launch(forward_step, batch * hidden, t, gx, gh, params.b_hh, *state_seqs, saved)

    finals = tuple(seq[steps] for seq in state_seqs)
    return h_seq[1:], finals, LayerCache(x, tuple(state_seqs), saved)


def layer_backward(cell, cache, params, doutput, dfinals):
    """Backpropagate through one layer.

    doutput (T,B,H) or None; dfinals: one (B,H) array or None per state.
    Returns (dx (T,B,I), dstates0 tuple of (B,H), LayerParams of gradients).
    """
    x, state_seqs, saved = cache
    steps, batch, _ = x.shape
    hidden = params.w_hh.shape[1]
    _, backward_step = cell.kernels(x.dtype)

    if doutput is None:
        doutput = xp.zeros((steps, batch, hidden), dtype=x.dtype)
    else:  # gradients may arrive as broadcast (read-only, zero-stride) views
        doutput = xp.ascontiguousarray(doutput, dtype=x.dtype)
    carry = tuple(
        xp.zeros((batch, hidden), dtype=x.dtype) if d is None else xp.array(d, dtype=x.dtype)
        for d in dfinals
    )
    width = cell.num_gates * hidden
    dgx = xp.empty((steps, batch, width), dtype=x.dtype)
    # Kernel arguments never alias (the simulator copies each argument in and out).
    if cell.dgh_differs:
        dgh = xp.empty_like(dgx)
        dgates = (dgx, dgh)
    else:
        dgh = dgx
        dgates = (dgx,)
    dh_carry = carry[0]
    for t in range(steps - 1, -1, -1):
        launch(backward_step, batch * hidden, t, doutput, *state_seqs, saved, *carry, *dgates)
        dh_carry += dgh[t] @ params.w_hh

    dgx_rows, dgh_rows = _rows(dgx), _rows(dgh)
    dx = (dgx_rows @ params.w_ih).reshape(x.shape)
    grads = LayerParams(
        w_ih=dgx_rows.T @ _rows(x),
        w_hh=dgh_rows.T @ _rows(state_seqs[0][:steps]),
        b_ih=dgx_rows.sum(axis=0),
        b_hh=dgh_rows.sum(axis=0),
    )
    return dx, carry, grads


def stack_forward(cell, x, states0, layers):
    """Run ``len(layers)`` layers, each feeding the next.

    x (T,B,I); states0: ``cell.num_states`` arrays (L,B,H); layers: L LayerParams.
    Returns (output (T,B,H), final states as (L,B,H) arrays, per-layer caches).
    """
    caches, finals, inputs = [], [], x
    for k, params in enumerate(layers):
        inputs, layer_finals, cache = layer_forward(cell, inputs, [s[k] for s in states0], params)
        caches.append(cache)
        finals.append(layer_finals)
    states_n = tuple(xp.stack(per_state) for per_state in zip(*finals))
    return inputs, states_n, caches


def stack_backward(cell, caches, layers, doutput, dstates_n):
    """Backpropagate through the stack.

    doutput (T,B,H) or None; dstates_n: one (L,B,H) array or None per state.
    Returns (dx (T,B,I), dstates0 as (L,B,H) arrays, one LayerParams of gradients per layer).
    """
    num_layers = len(layers)
    dstates0 = [[None] * num_layers for _ in range(cell.num_states)]
    grads = [None] * num_layers
    dinputs = doutput
    for k in range(num_layers - 1, -1, -1):
        dfinals = [None if d is None else d[k] for d in dstates_n]
        dinputs, layer_dstates0, grads[k] = layer_backward(
            cell, caches[k], layers[k], dinputs, dfinals
        )
        for s, d in enumerate(layer_dstates0):
            dstates0[s][k] = d
    return dinputs, tuple(xp.stack(d) for d in dstates0), grads


def _rows(a):
    """(T,B,N) as (T*B,N), for the GEMMs over all steps at once."""
    return a.reshape(-1, a.shape[-1])
