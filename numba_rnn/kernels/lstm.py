"""LSTM: one unit's gate math for one time step, forward and backward (PyTorch's gate
order i, f, g, o). ``steps.py`` builds every kernel variant from these two functions.

Forward, with a = gx[t] + rec + b_hh the pre-activations (rec = h_{t-1}·W_hhᵀ, 4 gates):
    i = σ(a_i)   f = σ(a_f)   g = tanh(a_g)   o = σ(a_o)
    c_t = f ⊙ c_{t-1} + i ⊙ g
    h_t = o ⊙ tanh(c_t)
saved[t] = (i, f, g, o), activated.

Backward, with dh and dc = dc_carry the gradients reaching the new h_t, c_t (the kernel
sums dh; c_t = f ⊙ c_{t-1} + i ⊙ g is recomputed, not read back, as zoneout may have
replaced it in c_seq):
    dc_t   = dc + dh ⊙ o ⊙ (1 − tanh²(c_t))
    da_i = dc_t ⊙ g ⊙ i(1 − i)            da_f = dc_t ⊙ c_{t-1} ⊙ f(1 − f)
    da_g = dc_t ⊙ i ⊙ (1 − g²)            da_o = dh ⊙ tanh(c_t) ⊙ o(1 − o)
    dc_{t-1} = dc_t ⊙ f
    dh_{t-1} = da·W_hh entirely, so the unit leaves 0 in dh_carry.
dgx[t] = dgh[t] = da: the input and recurrent projections enter a the same way.
"""
import functools

import numpy as np

from . import targets
from .cells import GEMM_PARAMETERS, PROJECTION, Cell, TorchOp, register, sigmoid
from .common import activations


@functools.lru_cache(maxsize=None)
def gate_gradients(dtype, target):
    """The device function that ends an LSTM unit's backward (this one's and the
    layer-normalized one's, lnlstm.py): from the gates, dc_t whole and dh reaching
    h_t = o ⊙ tanh_out, it writes da (dgx[t]) and leaves dc_t ⊙ f, and 0, in the carries."""
    one, _, tanh = activations(dtype, target)
    zero = one - one

    @targets.device(target)
    def lstm_gate_gradients(t, b, j, hidden, i, f, g, o, dc, dh, tanh_out, c_seq, dh_carry,
                            dc_carry, dgx):
        dgx[t, b, j] = dc * g * i * (one - i)
        dgx[t, b, hidden + j] = dc * c_seq[t, b, j] * f * (one - f)
        dgx[t, b, 2 * hidden + j] = dc * i * (one - g * g)
        dgx[t, b, 3 * hidden + j] = dh * tanh_out * o * (one - o)
        dc_carry[b, j] = dc * f
        dh_carry[b, j] = zero

    return lstm_gate_gradients


@functools.lru_cache(maxsize=None)
def units(dtype, target):
    one, sigmoid, tanh = activations(dtype, target)
    finish = gate_gradients(dtype, target)

    @targets.device(target)
    def lstm_forward_unit(t, b, j, hidden, xg, rec, b_hh, h_seq, c_seq, saved):
        # xg (4,): this unit's input projections gx[t, b, g·H + j]; rec (4,): its
        # recurrent sums; b_hh (4H,), h_seq and c_seq (T+1,B,H), saved (T,B,4H)
        i = sigmoid(xg[0] + rec[0] + b_hh[j])
        f = sigmoid(xg[1] + rec[1] + b_hh[hidden + j])
        g = tanh(xg[2] + rec[2] + b_hh[2 * hidden + j])
        o = sigmoid(xg[3] + rec[3] + b_hh[3 * hidden + j])
        c = f * c_seq[t, b, j] + i * g
        c_seq[t + 1, b, j] = c
        h_seq[t + 1, b, j] = o * tanh(c)
        saved[t, b, j] = i
        saved[t, b, hidden + j] = f
        saved[t, b, 2 * hidden + j] = g
        saved[t, b, 3 * hidden + j] = o

    @targets.device(target)
    def lstm_backward_unit(t, b, j, hidden, dh, h_seq, c_seq, saved, dh_carry, dc_carry,
                           dgx, dgh):
        # h_seq and c_seq (T+1,B,H), saved (T,B,4H), dh_carry and dc_carry (B,H) in/out,
        # dgx (T,B,4H) out; dgh is unused (it equals dgx)
        i = saved[t, b, j]
        f = saved[t, b, hidden + j]
        g = saved[t, b, 2 * hidden + j]
        o = saved[t, b, 3 * hidden + j]
        tanh_c = tanh(f * c_seq[t, b, j] + i * g)
        dc = dc_carry[b, j] + dh * o * (one - tanh_c * tanh_c)
        finish(t, b, j, hidden, i, f, g, o, dc, dh, tanh_c, c_seq, dh_carry, dc_carry, dgx)

    return lstm_forward_unit, lstm_backward_unit


# ------------------------------------------------ NumPy reference (reference.py's oracle)
def lstm_forward_step(x, states, params):
    h_prev, c_prev = states
    w_ih, w_hh, b_ih, b_hh = params[:4]
    w_hr = params[4] if len(params) > 4 else None
    a = x @ w_ih.T + b_ih + h_prev @ w_hh.T + b_hh
    a_i, a_f, a_g, a_o = np.split(a, 4, axis=1)
    i, f, g, o = sigmoid(a_i), sigmoid(a_f), np.tanh(a_g), sigmoid(a_o)
    c = f * c_prev + i * g
    m = o * np.tanh(c)
    h = m if w_hr is None else m @ w_hr.T
    return (h, c), (x, h_prev, c_prev, c, i, f, g, o, m, params)


def lstm_backward_step(dstates, cache):
    dh, dc = dstates
    x, h_prev, c_prev, c, i, f, g, o, m, params = cache
    w_ih, w_hh = params[:2]
    dparams_hr = ()
    if len(params) > 4:  # h = m·W_hrᵀ
        dparams_hr = (dh.T @ m,)
        dh = dh @ params[4]
    tanh_c = np.tanh(c)
    dc = dc + dh * o * (1 - tanh_c**2)
    da = np.concatenate(
        [dc * g * i * (1 - i), dc * c_prev * f * (1 - f), dc * i * (1 - g**2),
         dh * tanh_c * o * (1 - o)],
        axis=1,
    )
    dparams = (da.T @ x, da.T @ h_prev, da.sum(0), da.sum(0)) + dparams_hr
    return da @ w_ih, (da @ w_hh, dc * f), dparams


CELL = register(Cell(name="lstm", num_gates=4, num_states=2, saved_width=4,
                     dgh_differs=False, units=units,
                     parameters=GEMM_PARAMETERS + (PROJECTION,),
                     reference=(lstm_forward_step, lstm_backward_step),
                     state_names=("h", "c"), torch=TorchOp("lstm", "LSTM")))
