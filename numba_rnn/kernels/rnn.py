"""Elman RNN: one unit for one time step, forward and backward, with tanh or ReLU.
``steps.py`` builds every kernel variant from these two functions.

Forward, with a = gx[t] + rec + b_hh (rec = h_{t-1}·W_hhᵀ):
    h_t = φ(a),  φ = tanh or relu
saved[t] = h_t, from which φ'(a) is read, as 1 − h_t² (tanh) or [h_t > 0] (relu) (not
h_seq[t+1], which zoneout may have replaced).

Backward, with dh the gradient reaching the new h_t (the kernel sums it):
    da = dh ⊙ φ'(a);   dgx[t] = dgh[t] = da
    dh_{t-1} = da·W_hh entirely, so the unit leaves 0 in dh_carry.
"""
import functools

from . import targets
from .common import Cell, activations


@functools.lru_cache(maxsize=None)
def units(dtype, target, relu):
    one, _, tanh = activations(dtype, target)
    zero = one - one

    @targets.device(target)
    def rnn_forward_unit(t, b, j, hidden, xg, rec, b_hh, h_seq, c_seq, saved):
        # xg (1,): gx[t, b, j]; rec (1,); b_hh (H,), h_seq (T+1,B,H), saved (T,B,H);
        # c_seq is unused
        a = xg[0] + rec[0] + b_hh[j]
        if relu:
            h = a if a > zero else zero
        else:
            h = tanh(a)
        h_seq[t + 1, b, j] = h
        saved[t, b, j] = h

    @targets.device(target)
    def rnn_backward_unit(t, b, j, hidden, dh, h_seq, c_seq, saved, dh_carry, dc_carry,
                          dgx, dgh):
        # saved (T,B,H), dh_carry (B,H) in/out, dgx (T,B,H) out
        h = saved[t, b, j]
        if relu:
            dgx[t, b, j] = dh if h > zero else zero
        else:
            dgx[t, b, j] = dh * (one - h * h)
        dh_carry[b, j] = zero

    return rnn_forward_unit, rnn_backward_unit


TANH = Cell(name="rnn_tanh", num_gates=1, num_states=1, saved_width=1, dgh_differs=False,
            units=functools.partial(units, relu=False))
RELU = Cell(name="rnn_relu", num_gates=1, num_states=1, saved_width=1, dgh_differs=False,
            units=functools.partial(units, relu=True))
