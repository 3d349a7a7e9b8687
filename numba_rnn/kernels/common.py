"""What every cell's kernels share: the cell description the time loop reads, typed
constants and activations, and the thread-to-unit mapping.

A cell is described by a ``Cell``; ``numba_rnn.recurrent`` runs any cell from it and
never asks which one it is. A cell's kernels have these signatures, with ``t`` the step,
``H`` the hidden size, ``G`` the number of gates, ``S`` the number of state sequences
(``h`` first, then e.g. ``c``) and ``W`` the saved width in units of ``H``::

    forward_step(t, batch, gx, gh, b_hh, *state_seqs, saved)
        batch          rows active at step t: the first `batch` rows (sequences sorted
                       by length, longest first); rows past it are left untouched
        gx (T,B,G*H)   input projection x_t·W_ihᵀ + b_ih, all steps
        gh (B,G*H)     recurrent projection h_{t-1}·W_hhᵀ, this step (no bias)
        b_hh (G*H,)    recurrent bias
        state_seqs     S arrays (T+1,B,H): index t holds the state before step t; the
                       kernel writes index t+1
        saved (T,B,W*H) what backward needs of step t

    backward_step(t, batch, dy, *state_seqs, saved, *dstates, dgx[, dgh])
        dy (T,B,H)     gradient of the layer's output sequence
        dstates        S arrays (B,H): on entry the gradient reaching step t's new states
                       from later steps, excluding dy[t]; on exit the part of the gradient
                       of the previous states that does not go through W_hh (the time loop
                       adds dgh[t]·W_hh to dstates[0])
        dgx (T,B,G*H)  gradient of the input projection (of gx[t])
        dgh (T,B,G*H)  gradient of the recurrent projection plus bias (of gh + b_hh),
                       only for cells with ``dgh_differs``; where it equals dgx the
                       kernel does not take it (arguments never alias: the simulator
                       copies each one in and back out)

One thread handles one (batch row, hidden unit) pair and all of that unit's gates.
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
        "kernels",       # kernels(dtype) -> (forward_step, backward_step), compiled lazily
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
