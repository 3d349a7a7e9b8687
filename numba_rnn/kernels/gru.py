"""GRU: one unit's gate math for one time step, forward and backward (PyTorch's gate order
r, z, n). ``steps.py`` builds every kernel variant from these two functions.

Forward, with gx = x_t·W_ihᵀ + b_ih and ĝ = rec + b_hh, rec = h_{t-1}·W_hhᵀ (3 gates):
    r = σ(gx_r + ĝ_r)     z = σ(gx_z + ĝ_z)
    n = tanh(gx_n + r ⊙ ĝ_n)            (b_hn stays inside r ⊙ (…), as in PyTorch)
    h_t = (1 − z) ⊙ n + z ⊙ h_{t-1}
saved[t] = (r, z, n, ĝ_n).

Backward, with dh the gradient reaching the new h_t (the kernel sums it):
    dn = dh ⊙ (1 − z)                   dz = dh ⊙ (h_{t-1} − n)
    da_n = dn ⊙ (1 − n²)                dr = da_n ⊙ ĝ_n
    da_r = dr ⊙ r(1 − r)                da_z = dz ⊙ z(1 − z)
    dgx = (da_r, da_z, da_n)            dgh = (da_r, da_z, da_n ⊙ r)
    dh_{t-1} = dh ⊙ z + dgh·W_hh; the unit leaves dh ⊙ z in dh_carry.
"""
import functools

import numpy as np

from . import targets
from .cells import Cell, TorchOp, register, sigmoid
from .common import activations


@functools.lru_cache(maxsize=None)
def units(dtype, target):
    one, sigmoid, tanh = activations(dtype, target)

    @targets.device(target)
    def gru_forward_unit(t, b, j, hidden, xg, rec, b_hh, h_seq, c_seq, saved):
        # xg (3,): this unit's input projections gx[t, b, g·H + j]; rec (3,): its
        # recurrent sums; b_hh (3H,), h_seq (T+1,B,H), saved (T,B,4H); c_seq is unused
        r = sigmoid(xg[0] + rec[0] + b_hh[j])
        z = sigmoid(xg[1] + rec[1] + b_hh[hidden + j])
        gh_n = rec[2] + b_hh[2 * hidden + j]
        n = tanh(xg[2] + r * gh_n)
        h_seq[t + 1, b, j] = (one - z) * n + z * h_seq[t, b, j]
        saved[t, b, j] = r
        saved[t, b, hidden + j] = z
        saved[t, b, 2 * hidden + j] = n
        saved[t, b, 3 * hidden + j] = gh_n

    @targets.device(target)
    def gru_backward_unit(t, b, j, hidden, dh, h_seq, c_seq, saved, dh_carry, dc_carry,
                          dgx, dgh):
        # h_seq (T+1,B,H), saved (T,B,4H), dh_carry (B,H) in/out,
        # dgx and dgh (T,B,3H) out; c_seq and dc_carry are unused
        r = saved[t, b, j]
        z = saved[t, b, hidden + j]
        n = saved[t, b, 2 * hidden + j]
        gh_n = saved[t, b, 3 * hidden + j]
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

    return gru_forward_unit, gru_backward_unit


# ------------------------------------------------ NumPy reference (reference.py's oracle)
def gru_forward_step(x, states, params):
    (h_prev,) = states
    w_ih, w_hh, b_ih, b_hh = params
    gx_r, gx_z, gx_n = np.split(x @ w_ih.T + b_ih, 3, axis=1)
    gh_r, gh_z, gh_n = np.split(h_prev @ w_hh.T + b_hh, 3, axis=1)
    r, z = sigmoid(gx_r + gh_r), sigmoid(gx_z + gh_z)
    n = np.tanh(gx_n + r * gh_n)
    h = (1 - z) * n + z * h_prev
    return (h,), (x, h_prev, r, z, n, gh_n, params)


def gru_backward_step(dstates, cache):
    (dh,) = dstates
    x, h_prev, r, z, n, gh_n, (w_ih, w_hh, _, _) = cache
    da_n = dh * (1 - z) * (1 - n**2)
    da_r = da_n * gh_n * r * (1 - r)
    da_z = dh * (h_prev - n) * z * (1 - z)
    dgx = np.concatenate([da_r, da_z, da_n], axis=1)
    dgh = np.concatenate([da_r, da_z, da_n * r], axis=1)
    dparams = (dgx.T @ x, dgh.T @ h_prev, dgx.sum(0), dgh.sum(0))
    return dgx @ w_ih, (dh * z + dgh @ w_hh,), dparams


CELL = register(Cell(name="gru", num_gates=3, num_states=1, saved_width=4, dgh_differs=True,
                     units=units, reference=(gru_forward_step, gru_backward_step),
                     torch=TorchOp("gru", "GRU")))
