"""Elman RNN: one time step, forward and backward, with tanh or ReLU.

Forward, with a = gx[t] + gh + b_hh (B, H):
    h_t = φ(a),  φ = tanh or relu
Nothing is saved: φ'(a) is read off h_t, as 1 − h_t² (tanh) or [h_t > 0] (relu).

Backward, with dh = dy[t] + dh_carry the gradient reaching h_t:
    da = dh ⊙ φ'(a);   dgx[t] = dgh[t] = da
    dh_{t-1} = da·W_hh, done by the time loop, so the kernel leaves 0 in dh_carry.
"""
import functools
import math

from ..backend import cuda
from .common import Cell, activations, unit_of_thread


@functools.lru_cache(maxsize=None)
def kernels(dtype, relu):
    one, _ = activations(dtype)
    zero = one - one

    @cuda.jit
    def rnn_forward_step(t, batch, gx, gh, b_hh, h_seq, saved):
        # gx (T,B,H), gh (B,H), b_hh (H,), h_seq (T+1,B,H); saved is unused
        hidden = h_seq.shape[2]
        b, j = unit_of_thread(batch, hidden)
        if b < 0:
            return
        a = gx[t, b, j] + gh[b, j] + b_hh[j]
        if relu:
            h_seq[t + 1, b, j] = a if a > zero else zero
        else:
            h_seq[t + 1, b, j] = math.tanh(a)

    @cuda.jit
    def rnn_backward_step(t, batch, dy, h_seq, saved, dh_carry, dgx):
        # dy (T,B,H), h_seq (T+1,B,H), dh_carry (B,H) in/out, dgx (T,B,H) out
        hidden = h_seq.shape[2]
        b, j = unit_of_thread(batch, hidden)
        if b < 0:
            return
        h = h_seq[t + 1, b, j]
        dh = dy[t, b, j] + dh_carry[b, j]
        if relu:
            dgx[t, b, j] = dh if h > zero else zero
        else:
            dgx[t, b, j] = dh * (one - h * h)
        dh_carry[b, j] = zero

    return rnn_forward_step, rnn_backward_step


TANH = Cell(name="rnn_tanh", num_gates=1, num_states=1, saved_width=0, dgh_differs=False,
            kernels=functools.partial(kernels, relu=False))
RELU = Cell(name="rnn_relu", num_gates=1, num_states=1, saved_width=0, dgh_differs=False,
            kernels=functools.partial(kernels, relu=True))
