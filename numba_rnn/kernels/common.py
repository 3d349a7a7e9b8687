"""What every cell shares: the cell description the time loop reads, typed constants and
activations, and the thread-to-unit mapping.

A cell is described by a ``Cell``; ``numba_rnn.recurrent`` runs any cell from it and
never asks which one it is. A cell contributes two device functions, the math of one
hidden unit j of one batch row b at step t, with ``H`` the hidden size, ``G`` the number
of gates and ``W`` the saved width in units of ``H``::

    forward_unit(t, b, j, H, xg, rec, b_hh, h_seq, c_seq, saved)
        xg (G,)        this unit's input projections gx[t, b, g·H + j], one per gate, of
                       gx = x·W_ihᵀ + b_ih (T,B,G*H); kernels load them (a persistent
                       kernel before the barrier that precedes step t)
        rec (G,)       this unit's recurrent sums h_{t-1}·W_hhᵀ, one per gate (no bias)
        b_hh (G*H,)    recurrent bias
        h_seq, c_seq   (T+1,B,H): index t holds the state before step t, the unit writes
                       index t+1 (c_seq only for cells with two states)
        saved (T,B,W*H) what backward needs of step t

    backward_unit(t, b, j, H, dy, dh_rec, h_seq, c_seq, saved, dh_carry, dc_carry, dgx, dgh)
        dy (T,B,H)     gradient of the layer's output sequence
        dh_rec         the gradient reaching h_t through W_hh from step t+1 where the
                       kernel computes it (fused, persistent), else 0
        dh_carry, dc_carry (B,H): on entry the rest of the gradient reaching step t's
                       new states from later steps; on exit the part of the gradient of
                       the previous states that does not go through W_hh
        dgx (T,B,G*H)  gradient of the input projection (of gx[t])
        dgh (T,B,G*H)  gradient of rec + b_hh, only for cells with ``dgh_differs``;
                       where it equals dgx the unit does not write it

``kernels/steps.py`` builds each kernel variant (GEMM plus gate kernel, fused step,
persistent) from these; arguments a cell does not use are 1-element placeholders.
"""
import functools
import math
from collections import namedtuple

import numpy as np

from ..backend import cuda

Cell = namedtuple(
    "Cell",
    [
        "name",          # "lstm", "gru", "rnn_tanh", "rnn_relu" (PyTorch's mode names)
        "num_gates",     # G: gate blocks in W_ih, W_hh rows, in PyTorch's order
        "num_states",    # S: 2 for (h, c), 1 for h
        "saved_width",   # W: columns of `saved` per step, in units of H
        "dgh_differs",   # whether the backward kernel writes a dgh separate from dgx
        "units",         # units(dtype) -> (forward_unit, backward_unit) device functions
    ],
)


@functools.lru_cache(maxsize=None)
def activations(dtype):
    """``(one, sigmoid)`` for ``dtype``: the constant is typed so that float32 kernels
    stay in float32 (an untyped ``1.0`` would promote their arithmetic to float64)."""
    one = np.dtype(dtype).type(1)

    @cuda.jit(device=True)
    def sigmoid(x):
        return one / (one + math.exp(-x))

    return one, sigmoid


@cuda.jit(device=True)
def unit_of_thread(batch, hidden):
    """(b, j) of this thread's (batch row, hidden unit), or (-1, -1) past the end."""
    idx = cuda.grid(1)
    if idx >= batch * hidden:
        return -1, -1
    return idx // hidden, idx % hidden
