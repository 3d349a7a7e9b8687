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

import numpy as np

from . import targets
from .cells import Cell, TorchOp, register
from .common import activations


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


# ------------------------------------------------ NumPy reference (reference.py's oracle)
def _rnn_forward_step(activation):
    def forward(x, states, params):
        (h_prev,) = states
        w_ih, w_hh, b_ih, b_hh = params
        a = x @ w_ih.T + b_ih + h_prev @ w_hh.T + b_hh
        return (activation(a),), (x, h_prev, a, params)
    return forward


def _rnn_backward_step(derivative):
    def backward(dstates, cache):
        (dh,) = dstates
        x, h_prev, a, (w_ih, w_hh, _, _) = cache
        da = dh * derivative(a)
        return da @ w_ih, (da @ w_hh,), (da.T @ x, da.T @ h_prev, da.sum(0), da.sum(0))
    return backward


rnn_tanh_forward_step = _rnn_forward_step(np.tanh)
rnn_tanh_backward_step = _rnn_backward_step(lambda a: 1 - np.tanh(a) ** 2)
rnn_relu_forward_step = _rnn_forward_step(lambda a: np.maximum(a, 0.0))
rnn_relu_backward_step = _rnn_backward_step(lambda a: (a > 0).astype(np.float64))


TANH = register(Cell(name="rnn_tanh", num_gates=1, num_states=1, saved_width=1,
                     dgh_differs=False, units=functools.partial(units, relu=False),
                     reference=(rnn_tanh_forward_step, rnn_tanh_backward_step),
                     torch=TorchOp("rnn_tanh", "RNN")))
RELU = register(Cell(name="rnn_relu", num_gates=1, num_states=1, saved_width=1,
                     dgh_differs=False, units=functools.partial(units, relu=True),
                     reference=(rnn_relu_forward_step, rnn_relu_backward_step),
                     torch=TorchOp("rnn_relu", "RNN")))
