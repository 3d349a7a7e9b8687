"""What the paths that run on device arrays share (plain, fused, persistent, norm): the
input projection gx, the state sequences made before the loop, the gate gradients'
buffers, the recurrent GEMM around each step, and the weight gradients after the loop.

Per layer and direction (DESIGN.md, "How data flows"):
    gx = x·W_ihᵀ + b_ih                one GEMM over all T·B rows
    for t: gh = h_{t-1}·W_hhᵀ           the recurrent GEMM (or inside the path's kernel)
           step kernel                  gates and new states from gx[t], gh, b_hh
backward, for t = T-1 … 0:
           step kernel                  dgx[t], dgh[t], the pointwise state gradients
           dh_{t-1} += dgh[t]·W_hh
then dW_ih, dW_hh, db, dx as GEMMs and sums over all T·B rows (``gradients``).
"""
from collections import namedtuple

from ... import backend
from ...backend import xp
from ..plan import LayerCache, LayerParams


def rows(a):
    """(T,B,N) as (T*B,N), for the GEMMs over all steps at once."""
    return a.reshape(-1, a.shape[-1])


def hidden_size(cell, params):
    """H, from W_hh (G*H, P)."""
    return params.w_hh.shape[0] // cell.num_gates


def zoneout(zo, dtype):
    """(zoned, the zoneout weights as a kernel argument): 1 and ``zo``, or 0 and a
    stand-in without zoneout."""
    zoned = int(zo is not None)
    return zoned, zo if zoned else backend.placeholder(3, dtype)


def projection(x, w_ih):
    """x·W_ihᵀ for every step at once, as (T*B, G*H) rows."""
    return rows(x) @ w_ih.T


def by_step(gx, x):
    """(T*B, N) rows back as (T,B,N), by the steps of ``x``."""
    steps, batch, _ = x.shape
    return gx.reshape(steps, batch, gx.shape[-1])


def input_gates(x, params):
    """gx = x·W_ihᵀ + b_ih, (T,B,G*H): every step's input part at once."""
    gx = projection(x, params.w_ih)
    gx += params.b_ih
    return by_step(gx, x)


#: A layer-direction's sequences, all made before its loop starts (no allocation per
#: step): ``states`` one (T+1,B,·) array per state, row 0 the initial state; ``m`` the
#: projection's input m_t (T+1,B,H), or None without a projection; ``c`` the cell
#: state's sequence, or a stand-in for a cell without one; ``saved`` what the step
#: kernels keep for the backward (T,B,saved_width·H).
Sequences = namedtuple("Sequences", ["states", "m", "c", "saved"])


def sequences(cell, x, states0, params):
    """The Sequences of a forward over ``x`` from ``states0``."""
    steps, batch, _ = x.shape
    hidden = hidden_size(cell, params)
    state_seqs = []
    for state0 in states0:
        # Zeros: rows of finished sequences are never written, and read as padding.
        seq = xp.zeros((steps + 1, batch, state0.shape[-1]), dtype=x.dtype)
        seq[0] = state0
        state_seqs.append(seq)
    m_seq = None
    if params.w_hr is not None:  # the kernel writes m_t; h_t = m_t·W_hrᵀ
        m_seq = xp.zeros((steps + 1, batch, hidden), dtype=x.dtype)
    # stand-in for what a cell does not use (c_seq; dc_carry and dgh in backward)
    c_seq = state_seqs[1] if cell.num_states > 1 else backend.placeholder(3, x.dtype)
    # (zeros for a layer-normalized cell: its gains' gradients sum over every row)
    saved = (xp.empty if cell.norm is None else xp.zeros)(
        (steps, batch, cell.saved_width * hidden), dtype=x.dtype)
    return Sequences(tuple(state_seqs), m_seq, c_seq, saved)


def gate_workspace(cell, x, params):
    """gh (B, G*H), each step's h_{t-1}·W_hhᵀ."""
    batch = x.shape[1]
    return xp.empty((batch, cell.num_gates * hidden_size(cell, params)), dtype=x.dtype)


def recurrent_steps(gh, h_seq, params, batching):
    """Each step (t, active rows) in order, after gh[:active] = h_{t-1}·W_hhᵀ."""
    w_hh_t = params.w_hh.T
    for t, active in enumerate(batching.batch_sizes):
        xp.matmul(h_seq[t, :active], w_hh_t, out=gh[:active])
        yield t, active


def finish(path, x, seqs, batching, zo, norm=None, handoff=None):
    """A forward's (output (T,B,P), final states, LayerCache) from its Sequences."""
    finals = tuple(batching.finals(seq) for seq in seqs.states)
    return seqs.states[0][1:], finals, LayerCache(x, seqs.states, seqs.m, seqs.saved, path,
                                                  zo, norm, handoff)


#: What a backward loop works on, made before it starts: the forward's h and c
#: sequences (c a stand-in without one), the gate gradients dgx (T,B,G*H) and dgh (dgx
#: itself where the cell's are the same) with dgh as a kernel argument (a stand-in
#: then), the carries of h and c (the latter a stand-in), and the zoneout arguments.
Loop = namedtuple("Loop", ["h_seq", "c_seq", "dgx", "dgh", "kernel_dgh", "dh_carry",
                           "dc_carry", "zoned", "kernel_zo"])


def backward_loop(cell, cache, params, carry):
    """The Loop of a backward from ``cache``, with ``carry`` (one array per state, the
    final states' gradients; updated in place by the loop)."""
    x, state_seqs = cache.x, cache.state_seqs
    steps, batch, _ = x.shape
    width = cell.num_gates * hidden_size(cell, params)
    c_seq = state_seqs[1] if len(state_seqs) > 1 else backend.placeholder(3, x.dtype)
    # Zeros: the rows of finished sequences must add nothing to the weight gradients.
    dgx = xp.zeros((steps, batch, width), dtype=x.dtype)
    # Kernel arguments never alias (the simulator copies each argument in and out).
    dgh = xp.zeros_like(dgx) if cell.dgh_differs else dgx
    kernel_dgh = dgh if cell.dgh_differs else backend.placeholder(3, x.dtype)
    dc_carry = carry[1] if cell.num_states > 1 else backend.placeholder(2, x.dtype)
    return Loop(state_seqs[0], c_seq, dgx, dgh, kernel_dgh, carry[0], dc_carry,
                *zoneout(cache.zo, x.dtype))


def reverse_steps(dgh, params, dh_carry, batching):
    """Each step (t, active rows) from the last, then dh_carry[:active] += dgh[t]·W_hh
    (dgh[t] as the step's kernel wrote it)."""
    dh_recurrent = xp.empty_like(dh_carry)  # dgh[t]·W_hh, before it joins the carry
    sizes = batching.batch_sizes
    for t in range(len(sizes) - 1, -1, -1):
        active = sizes[t]
        yield t, active
        xp.matmul(dgh[t, :active], params.w_hh, out=dh_recurrent[:active])
        xp.add(dh_carry[:active], dh_recurrent[:active], out=dh_carry[:active])


def w_hh_columns(params):
    """W_hhᵀ, contiguous: a unit's W_hh column, as the fused and persistent backward
    kernels read it."""
    return xp.ascontiguousarray(params.w_hh.T)


def add_first_recurrent(loop, params, batching):
    """dh_0 += dgates[0]·W_hh, after a fused or persistent backward: each step's launch
    adds dgates[t+1]·W_hh itself, the gradient of h_0 through W_hh is left for this GEMM."""
    first = batching.batch_sizes[0]
    loop.dh_carry[:first] += loop.dgh[0, :first] @ params.w_hh


def gradients(x, h_seq, params, dgx, dgh, da_ih=None, da_hh=None, **extra):
    """(dx, LayerParams of gradients) after a backward loop, as GEMMs and sums over all
    T·B rows: dgx, dgh (T,B,G*H) the gradients of the gates' input and recurrent parts
    (and of b_ih, b_hh); da_ih, da_hh (rows) those of x·W_ihᵀ and h_{t-1}·W_hhᵀ where a
    norm stands between (dgx's and dgh's rows otherwise); ``extra``: more gradients."""
    dgx_rows, dgh_rows = rows(dgx), rows(dgh)
    da_ih = dgx_rows if da_ih is None else da_ih
    da_hh = dgh_rows if da_hh is None else da_hh
    dx = (da_ih @ params.w_ih).reshape(x.shape)
    return dx, LayerParams(
        w_ih=da_ih.T @ rows(x),
        w_hh=da_hh.T @ rows(h_seq[:x.shape[0]]),
        b_ih=dgx_rows.sum(axis=0),
        b_hh=dgh_rows.sum(axis=0),
        **extra)
