"""Layer-normalized GRU: GRU's unit math (``gru.py``, gate order r, z, n) on normalized
projections; ``norm.py`` builds the kernels, with the row reductions.

    gx = LN(x_t·W_ihᵀ; γ_ih) + b_ih        gh = LN(h_{t-1}·W_hhᵀ; γ_hh) + b_hh   (over 3H)
    r = σ(gx_r + gh_r)   z = σ(gx_z + gh_z)   n = tanh(gx_n + r ⊙ gh_n)
    h_t = (1 − z) ⊙ n + z ⊙ h_{t-1}

The kernel hands gru.py's units rec = γ_hh ⊙ x̂ of h_{t-1}·W_hhᵀ and the loop's gx; the
unit's dgh is then the gradient of LN(…; γ_hh) + b_hh, which the kernel takes back
through LN. No state is normalized.
"""
import functools

import numpy as np

from . import gru
from .cells import (GEMM_PARAMETERS, Cell, Param, layer_norm_backward, layer_norm_forward,
                    register, sigmoid)
from .norm import NormSpec, NormUnits, no_state_norm


@functools.lru_cache(maxsize=None)
def units(dtype, target):
    return NormUnits(*gru.units(dtype, target), *no_state_norm(dtype, target))


# ------------------------------------------------ NumPy reference (reference.py's oracle)
def ln_gru_forward_step(x, states, params):
    """Layer-normalised GRU; params = (w_ih (3H,I), w_hh (3H,H), b_ih (3H,), b_hh (3H,),
    gamma_ih (3H,), gamma_hh (3H,)): gx = LN(x·W_ihᵀ; γ_ih) + b_ih,
    gh = LN(h·W_hhᵀ; γ_hh) + b_hh, then the GRU's gates on gx and gh."""
    (h_prev,) = states
    w_ih, w_hh, b_ih, b_hh, gamma_ih, gamma_hh = params
    ln_x, ln_x_cache = layer_norm_forward(x @ w_ih.T, gamma_ih)
    ln_h, ln_h_cache = layer_norm_forward(h_prev @ w_hh.T, gamma_hh)
    gx_r, gx_z, gx_n = np.split(ln_x + b_ih, 3, axis=1)
    gh_r, gh_z, gh_n = np.split(ln_h + b_hh, 3, axis=1)
    r, z = sigmoid(gx_r + gh_r), sigmoid(gx_z + gh_z)
    n = np.tanh(gx_n + r * gh_n)
    h = (1 - z) * n + z * h_prev
    return (h,), (x, h_prev, r, z, n, gh_n, ln_x_cache, ln_h_cache, params)


def ln_gru_backward_step(dstates, cache):
    (dh,) = dstates
    x, h_prev, r, z, n, gh_n, ln_x_cache, ln_h_cache, params = cache
    w_ih, w_hh = params[:2]
    da_n = dh * (1 - z) * (1 - n**2)
    da_r = da_n * gh_n * r * (1 - r)
    da_z = dh * (h_prev - n) * z * (1 - z)
    dgx = np.concatenate([da_r, da_z, da_n], axis=1)
    dgh = np.concatenate([da_r, da_z, da_n * r], axis=1)
    dpx, dgamma_ih, _ = layer_norm_backward(dgx, ln_x_cache)
    dph, dgamma_hh, _ = layer_norm_backward(dgh, ln_h_cache)
    dparams = (dpx.T @ x, dph.T @ h_prev, dgx.sum(0), dgh.sum(0), dgamma_ih, dgamma_hh)
    return dpx @ w_ih, (dh * z + dph @ w_hh,), dparams


CELL = register(Cell(name="ln_gru", num_gates=3, num_states=1, saved_width=4,
                     dgh_differs=True, units=units, norm=NormSpec(state_norm=False),
                     parameters=GEMM_PARAMETERS + (
                         Param("gamma_ih", "gamma_ih", ("gates",), "ones"),
                         Param("gamma_hh", "gamma_hh", ("gates",), "ones")),
                     reference=(ln_gru_forward_step, ln_gru_backward_step)))
