"""LSTM: one time step's gate math, forward and backward (PyTorch's gate order i, f, g, o).

Forward, with a = gx[t] + gh + b_hh the pre-activations (B, 4H):
    i = σ(a_i)   f = σ(a_f)   g = tanh(a_g)   o = σ(a_o)
    c_t = f ⊙ c_{t-1} + i ⊙ g
    h_t = o ⊙ tanh(c_t)
saved[t] = (i, f, g, o), activated.

Backward, with dh = dy[t] + dh_carry and dc = dc_carry the gradients reaching h_t, c_t:
    dc_t   = dc + dh ⊙ o ⊙ (1 − tanh²(c_t))
    da_i = dc_t ⊙ g ⊙ i(1 − i)            da_f = dc_t ⊙ c_{t-1} ⊙ f(1 − f)
    da_g = dc_t ⊙ i ⊙ (1 − g²)            da_o = dh ⊙ tanh(c_t) ⊙ o(1 − o)
    dc_{t-1} = dc_t ⊙ f
    dh_{t-1} = da·W_hh, done by the time loop, so the kernel leaves 0 in dh_carry.
dgx[t] = dgh[t] = da: the input and recurrent projections enter a the same way.
"""
import functools
import math

from ..backend import cuda
from .common import Cell, activations, unit_of_thread


@functools.lru_cache(maxsize=None)
def kernels(dtype):
    one, sigmoid = activations(dtype)
    zero = one - one

    @cuda.jit
    def lstm_forward_step(t, batch, gx, gh, b_hh, h_seq, c_seq, saved):
        # gx (T,B,4H), gh (B,4H), b_hh (4H,), h_seq and c_seq (T+1,B,H), saved (T,B,4H)
        hidden = h_seq.shape[2]
        b, j = unit_of_thread(batch, hidden)
        if b < 0:
            return
        i = sigmoid(gx[t, b, j] + gh[b, j] + b_hh[j])
        f = sigmoid(gx[t, b, hidden + j] + gh[b, hidden + j] + b_hh[hidden + j])
        g = math.tanh(gx[t, b, 2 * hidden + j] + gh[b, 2 * hidden + j] + b_hh[2 * hidden + j])
        o = sigmoid(gx[t, b, 3 * hidden + j] + gh[b, 3 * hidden + j] + b_hh[3 * hidden + j])
        c = f * c_seq[t, b, j] + i * g
        c_seq[t + 1, b, j] = c
        h_seq[t + 1, b, j] = o * math.tanh(c)
        saved[t, b, j] = i
        saved[t, b, hidden + j] = f
        saved[t, b, 2 * hidden + j] = g
        saved[t, b, 3 * hidden + j] = o

    @cuda.jit
    def lstm_backward_step(t, batch, dy, h_seq, c_seq, saved, dh_carry, dc_carry, dgx):
        # dy (T,B,H), h_seq and c_seq (T+1,B,H), saved (T,B,4H),
        # dh_carry and dc_carry (B,H) in/out, dgx (T,B,4H) out (dgh equals dgx)
        hidden = h_seq.shape[2]
        b, j = unit_of_thread(batch, hidden)
        if b < 0:
            return
        i = saved[t, b, j]
        f = saved[t, b, hidden + j]
        g = saved[t, b, 2 * hidden + j]
        o = saved[t, b, 3 * hidden + j]
        tanh_c = math.tanh(c_seq[t + 1, b, j])
        dh = dy[t, b, j] + dh_carry[b, j]
        dc = dc_carry[b, j] + dh * o * (one - tanh_c * tanh_c)
        dgx[t, b, j] = dc * g * i * (one - i)
        dgx[t, b, hidden + j] = dc * c_seq[t, b, j] * f * (one - f)
        dgx[t, b, 2 * hidden + j] = dc * i * (one - g * g)
        dgx[t, b, 3 * hidden + j] = dh * tanh_c * o * (one - o)
        dc_carry[b, j] = dc * f
        dh_carry[b, j] = zero

    return lstm_forward_step, lstm_backward_step


CELL = Cell(name="lstm", num_gates=4, num_states=2, saved_width=4, dgh_differs=False,
            kernels=kernels)
