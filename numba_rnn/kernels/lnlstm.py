"""Layer-normalized LSTM: one unit's math for one time step (PyTorch's gate order i, f,
g, o); ``norm.py`` builds the kernels from these, with the row reductions.

Forward, with LN over each row (norm.py) and the pre-activations
    a = LN(x_t·W_ihᵀ; γ_ih) + LN(h_{t-1}·W_hhᵀ; γ_hh) + b        (each LN over all 4H)
(the kernel gives a unit xg = the first term plus b, rec = the second; the gates and c_t
are lstm.py's forward unit):
    i = σ(a_i)   f = σ(a_f)   g = tanh(a_g)   o = σ(a_o)
    c_t = f ⊙ c_{t-1} + i ⊙ g
    ĉ = (c_t − mean(c_t))·rstd_c                                   (over H, by the kernel)
    n = γ_c ⊙ ĉ + β_c      h_t = o ⊙ tanh(n)
saved[t] = (i, f, g, o, ĉ, tanh(n)).

Backward, with dh, dc the gradients reaching the new h_t, c_t:
    dn = dh ⊙ o ⊙ (1 − tanh²(n))          (dγ_c = Σ dn ⊙ ĉ, dβ_c = Σ dn, after the loop)
    dĉ = γ_c ⊙ dn
    dc_t = dc + rstd_c·(dĉ − mean(dĉ) − ĉ ⊙ mean(dĉ ⊙ ĉ))          (the row's sums by the kernel)
    da_i = dc_t ⊙ g ⊙ i(1 − i)      da_f = dc_t ⊙ c_{t-1} ⊙ f(1 − f)
    da_g = dc_t ⊙ i ⊙ (1 − g²)      da_o = dh ⊙ tanh(n) ⊙ o(1 − o)
    dc_{t-1} = dc_t ⊙ f;  dh_{t-1} = LN's backward of da (by the kernel)·W_hh (by the loop)
dgx[t] = da: both normalized projections and b enter a the same way.
"""
import functools

import numpy as np

from . import lstm, targets
from .cells import (Cell, Param, layer_norm_backward, layer_norm_forward, register,
                    sigmoid)
from .common import activations
from .norm import NormSpec, NormUnits


@functools.lru_cache(maxsize=None)
def units(dtype, target):
    one, _, tanh = activations(dtype, target)
    gates_backward = lstm.gate_gradients(dtype, target)

    # lstm.py's forward unit: its gates and c_t are this cell's; the h_t it writes is
    # replaced by finish_unit's once the row's ĉ is known
    forward_unit = lstm.units(dtype, target)[0]

    @targets.device(target)
    def finish_unit(t, b, j, hidden, gamma_c, beta_c, h_seq, saved):
        # saved[t, b, 4H + j] holds ĉ
        tanh_n = tanh(gamma_c[j] * saved[t, b, 4 * hidden + j] + beta_c[j])
        saved[t, b, 5 * hidden + j] = tanh_n
        h_seq[t + 1, b, j] = saved[t, b, 3 * hidden + j] * tanh_n

    @targets.device(target)
    def prep_unit(t, b, j, hidden, dh, gamma_c, saved, dn_seq):
        o = saved[t, b, 3 * hidden + j]
        tanh_n = saved[t, b, 5 * hidden + j]
        dn = dh * o * (one - tanh_n * tanh_n)
        dn_seq[t, b, j] = dn
        dchat = dn * gamma_c[j]
        return dchat, dchat * saved[t, b, 4 * hidden + j]

    @targets.device(target)
    def state_grad_unit(t, b, j, hidden, m1, m2, rstd_c, gamma_c, saved, dn_seq):
        return rstd_c * (dn_seq[t, b, j] * gamma_c[j] - m1 - saved[t, b, 4 * hidden + j] * m2)

    @targets.device(target)
    def backward_unit(t, b, j, hidden, dh, h_seq, c_seq, saved, dh_carry, dc_carry, dgx,
                      dgh):
        # dc_carry holds dc_t whole (the kernel added LN's share); saved[5H + j] holds
        # tanh(n), h_t = o ⊙ tanh(n); dgh is unused
        i = saved[t, b, j]
        f = saved[t, b, hidden + j]
        g = saved[t, b, 2 * hidden + j]
        o = saved[t, b, 3 * hidden + j]
        gates_backward(t, b, j, hidden, i, f, g, o, dc_carry[b, j], dh,
                       saved[t, b, 5 * hidden + j], c_seq, dh_carry, dc_carry, dgx)

    return NormUnits(forward_unit, backward_unit, finish_unit, prep_unit, state_grad_unit)


# ------------------------------------------------ NumPy reference (reference.py's oracle)
def ln_lstm_forward_step(x, states, params):
    """Layer-normalised LSTM; params = (w_ih (4H,I), w_hh (4H,H), b (4H,), gamma_ih (4H,),
    gamma_hh (4H,), gamma_c (H,), beta_c (H,)):
    a = LN(x·W_ihᵀ; γ_ih) + LN(h·W_hhᵀ; γ_hh) + b, c' = f⊙c + i⊙g,
    h' = o⊙tanh(LN(c'; γ_c, β_c))."""
    h_prev, c_prev = states
    w_ih, w_hh, b, gamma_ih, gamma_hh, gamma_c, beta_c = params
    ln_x, ln_x_cache = layer_norm_forward(x @ w_ih.T, gamma_ih)
    ln_h, ln_h_cache = layer_norm_forward(h_prev @ w_hh.T, gamma_hh)
    a = ln_x + ln_h + b
    a_i, a_f, a_g, a_o = np.split(a, 4, axis=1)
    i, f, g, o = sigmoid(a_i), sigmoid(a_f), np.tanh(a_g), sigmoid(a_o)
    c = f * c_prev + i * g
    ln_c, ln_c_cache = layer_norm_forward(c, gamma_c, beta_c)
    tanh_c = np.tanh(ln_c)
    h = o * tanh_c
    return (h, c), (x, h_prev, c_prev, i, f, g, o, tanh_c, ln_x_cache, ln_h_cache,
                    ln_c_cache, params)


def ln_lstm_backward_step(dstates, cache):
    dh, dc = dstates
    (x, h_prev, c_prev, i, f, g, o, tanh_c, ln_x_cache, ln_h_cache, ln_c_cache,
     params) = cache
    w_ih, w_hh = params[:2]
    dc_ln, dgamma_c, dbeta_c = layer_norm_backward(dh * o * (1 - tanh_c**2), ln_c_cache)
    dc = dc + dc_ln
    da = np.concatenate(
        [dc * g * i * (1 - i), dc * c_prev * f * (1 - f), dc * i * (1 - g**2),
         dh * tanh_c * o * (1 - o)],
        axis=1,
    )
    dpx, dgamma_ih, _ = layer_norm_backward(da, ln_x_cache)
    dph, dgamma_hh, _ = layer_norm_backward(da, ln_h_cache)
    dparams = (dpx.T @ x, dph.T @ h_prev, da.sum(0), dgamma_ih, dgamma_hh, dgamma_c,
               dbeta_c)
    return dpx @ w_ih, (dph @ w_hh, dc * f), dparams


def forget_bias(shape, dtype, hidden, options):
    """The one bias: ``forget_bias`` on the forget gate, zeros elsewhere."""
    value = np.zeros(shape, dtype=dtype)
    value[hidden:2 * hidden] = options["forget_bias"]
    return value


#: weight_ih, weight_hh, one bias (entering with the input projection), the gains of the
#: two projections' LNs (ones) and of c_t's LN (gain ones, shift zeros)
PARAMETERS = (
    Param("weight_ih", "w_ih", ("gates", "input")),
    Param("weight_hh", "w_hh", ("gates", "state")),
    Param("bias", "b_ih", ("gates",), forget_bias, when="bias"),
    Param("gamma_ih", "gamma_ih", ("gates",), "ones"),
    Param("gamma_hh", "gamma_hh", ("gates",), "ones"),
    Param("gamma_c", "gamma_c", ("hidden",), "ones"),
    Param("beta_c", "beta_c", ("hidden",), "zeros"),
)

CELL = register(Cell(name="ln_lstm", num_gates=4, num_states=2, saved_width=6,
                     dgh_differs=False, units=units, norm=NormSpec(state_norm=True),
                     parameters=PARAMETERS,
                     reference=(ln_lstm_forward_step, ln_lstm_backward_step),
                     options=(("forget_bias", 1.0),)))
