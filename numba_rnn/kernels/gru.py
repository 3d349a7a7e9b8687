"""GRU: one time step's gate math, forward and backward (PyTorch's gate order r, z, n).

Forward, with gx = x_t·W_ihᵀ + b_ih and ĝ = h_{t-1}·W_hhᵀ + b_hh (both (B, 3H)):
    r = σ(gx_r + ĝ_r)     z = σ(gx_z + ĝ_z)
    n = tanh(gx_n + r ⊙ ĝ_n)            (b_hn stays inside r ⊙ (…), as in PyTorch)
    h_t = (1 − z) ⊙ n + z ⊙ h_{t-1}
saved[t] = (r, z, n, ĝ_n).

Backward, with dh = dy[t] + dh_carry the gradient reaching h_t:
    dn = dh ⊙ (1 − z)                   dz = dh ⊙ (h_{t-1} − n)
    da_n = dn ⊙ (1 − n²)                dr = da_n ⊙ ĝ_n
    da_r = dr ⊙ r(1 − r)                da_z = dz ⊙ z(1 − z)
    dgx = (da_r, da_z, da_n)            dgh = (da_r, da_z, da_n ⊙ r)
    dh_{t-1} = dh ⊙ z + dgh·W_hh; the kernel leaves dh ⊙ z in dh_carry, the time loop
    adds the product.
"""
import functools
import math

from ..backend import cuda
from .common import Cell, activations, unit_of_thread


@functools.lru_cache(maxsize=None)
def kernels(dtype):
    one, sigmoid = activations(dtype)

    @cuda.jit
    def gru_forward_step(t, batch, gx, gh, b_hh, h_seq, saved):
        # gx (T,B,3H), gh (B,3H), b_hh (3H,), h_seq (T+1,B,H), saved (T,B,4H)
        hidden = h_seq.shape[2]
        b, j = unit_of_thread(batch, hidden)
        if b < 0:
            return
        r = sigmoid(gx[t, b, j] + gh[b, j] + b_hh[j])
        z = sigmoid(gx[t, b, hidden + j] + gh[b, hidden + j] + b_hh[hidden + j])
        gh_n = gh[b, 2 * hidden + j] + b_hh[2 * hidden + j]
        n = math.tanh(gx[t, b, 2 * hidden + j] + r * gh_n)
        h_seq[t + 1, b, j] = (one - z) * n + z * h_seq[t, b, j]
        saved[t, b, j] = r
        saved[t, b, hidden + j] = z
        saved[t, b, 2 * hidden + j] = n
        saved[t, b, 3 * hidden + j] = gh_n

    @cuda.jit
    def gru_backward_step(t, batch, dy, h_seq, saved, dh_carry, dgx, dgh):
        # dy (T,B,H), h_seq (T+1,B,H), saved (T,B,4H), dh_carry (B,H) in/out,
        # dgx and dgh (T,B,3H) out
        hidden = h_seq.shape[2]
        b, j = unit_of_thread(batch, hidden)
        if b < 0:
            return
        r = saved[t, b, j]
        z = saved[t, b, hidden + j]
        n = saved[t, b, 2 * hidden + j]
        gh_n = saved[t, b, 3 * hidden + j]
        dh = dy[t, b, j] + dh_carry[b, j]
        da_n = dh * (one - z) * (one - n * n)
        da_r = da_n * gh_n * r * (one - r)
        da_z = dh * (h_seq[t, b, j] - n) * z * (one - z)
        dgx[t, b, j] = da_r
        dgx[t, b, hidden + j] = da_z
        dgx[t, b, 2 * hidden + j] = da_n
        dgh[t, b, j] = da_r
        dgh[t, b, hidden + j] = da_z
        dgh[t, b, 2 * hidden + j] = da_n * r
        dh_carry[b, j] = dh * z

    return gru_forward_step, gru_backward_step


CELL = Cell(name="gru", num_gates=3, num_states=1, saved_width=4, dgh_differs=True,
            kernels=kernels)
