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

from . import lstm, targets
from .common import Cell, activations
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


CELL = Cell(name="ln_lstm", num_gates=4, num_states=2, saved_width=6, dgh_differs=False,
            units=units, norm=NormSpec(state_norm=True))
