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

from . import gru
from .common import Cell
from .norm import NormSpec, NormUnits, no_state_norm


@functools.lru_cache(maxsize=None)
def units(dtype, target):
    return NormUnits(*gru.units(dtype, target), *no_state_norm(dtype, target))


CELL = Cell(name="ln_gru", num_gates=3, num_states=1, saved_width=4, dgh_differs=True,
            units=units, norm=NormSpec(state_norm=False))
