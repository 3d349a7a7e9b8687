"""What every cell shares: the cell description the time loop reads, typed constants and
activations, and zoneout's functions.

A cell is described by a ``Cell`` (its units, its parameter layout, its NumPy reference
step, its state names; ``kernels/cells.py`` registers it); ``numba_rnn.recurrent``, the
layers and the PyTorch bridge run any cell from it and never ask which one it is. A
cell contributes two functions, written once and compiled for a ``target``
(``targets.py``: CUDA device functions, or numba.njit functions for the CPU path), the
math of one hidden unit j of one batch row b at step t, with ``H`` the hidden size,
``G`` the number of gates and ``W`` the saved width in units of ``H``::

    forward_unit(t, b, j, H, xg, rec, b_hh, h_seq, c_seq, saved)
        xg (G,)        this unit's input projections gx[t, b, g·H + j], one per gate, of
                       gx = x·W_ihᵀ + b_ih (T,B,G*H); kernels load them (a persistent
                       kernel before the barrier that precedes step t)
        rec (G,)       this unit's recurrent sums h_{t-1}·W_hhᵀ, one per gate (no bias)
        b_hh (G*H,)    recurrent bias
        h_seq, c_seq   (T+1,B,H): index t holds the state before step t, the unit writes
                       index t+1 (c_seq only for cells with two states)
        saved (T,B,W*H) what backward needs of step t

    backward_unit(t, b, j, H, dh, h_seq, c_seq, saved, dh_carry, dc_carry, dgx, dgh)
        dh             the whole gradient reaching the cell's new h_t (the kernel adds
                       the output's gradient dy[t], the carried one and, where it
                       computes it, the part through W_hh from step t+1)
        dh_carry, dc_carry (B,H): on entry dc_carry holds the gradient reaching the
                       cell's new c_t; on exit both hold the part of the gradient of the
                       previous states that does not go through W_hh
        dgx (T,B,G*H)  gradient of the input projection (of gx[t])
        dgh (T,B,G*H)  gradient of rec + b_hh, only for cells with ``dgh_differs``;
                       where it equals dgx the unit does not write it

``kernels/steps.py`` builds each kernel variant (GEMM plus gate kernel, fused step,
persistent; the CPU path has the first) from these; arguments a cell does not use are
1-element placeholders.

A unit reads the previous states at index t of h_seq, c_seq and nothing at index t+1 in
backward (what it needs of the new states it saves, or recomputes), so that zoneout
(``zoneout_units``) can mix the new states with the previous ones after the unit ran.

Layer-normalized cells (``norm`` set) run on kernels of their own, one block per batch
row (``kernels/norm.py``), since a normalization reduces over a whole row.
"""
import functools
import math
from collections import namedtuple

import numpy as np

from . import targets

#: One parameter of a layer-direction (or of a one-step cell), in the order the layer
#: registers them and the cell's reference step takes them:
#:   kind   the name without the layer suffix ("weight_ih"; "weight_ih_l0_reverse")
#:   field  the recurrent.LayerParams field it fills ("w_ih", "w_hh", "b_ih", "b_hh",
#:          "w_hr", "gamma_ih", "gamma_hh", "gamma_c", "beta_c")
#:   shape  its dimensions by name: "gates" (G·H), "hidden" (H), "input" (the layer's
#:          input width), "state" (h's width: proj_size where set, else H), "proj"
#:   init   "uniform" (U(-1/sqrt(H), 1/sqrt(H)), PyTorch's), "ones", "zeros", or a
#:          function (shape, dtype, hidden, options) -> array, options being the cell's
#:          options (Cell.options) as the layer was given them
#:   when   None (always), "bias" (only with bias=True) or "projection" (only with
#:          proj_size > 0)
Param = namedtuple("Param", ["kind", "field", "shape", "init", "when"],
                   defaults=["uniform", None])

#: The parameters of a cell whose pre-activations are x·W_ihᵀ + b_ih and h·W_hhᵀ + b_hh
#: (PyTorch's recurrent layers'; LSTM adds PROJECTION).
GEMM_PARAMETERS = (
    Param("weight_ih", "w_ih", ("gates", "input")),
    Param("weight_hh", "w_hh", ("gates", "state")),
    Param("bias_ih", "b_ih", ("gates",), when="bias"),
    Param("bias_hh", "b_hh", ("gates",), when="bias"),
)
#: LSTM's projection h_t = m_t·W_hrᵀ (proj_size).
PROJECTION = Param("weight_hr", "w_hr", ("proj", "hidden"), when="projection")

#: How the PyTorch bridge (numba_rnn.torch) answers a cell that PyTorch has: op is the
#: name of PyTorch's recurrent op (torch._VF.<op>, <op>_cell), class_name the torch.nn
#: class that its messages name.
TorchOp = namedtuple("TorchOp", ["op", "class_name"])

_FIELDS = (
    "name",          # the registered name: "lstm", "gru", "rnn_tanh", ... (PyTorch's
                     # mode names for the built-in cells)
    "num_gates",     # G: gate blocks in W_ih, W_hh rows, in PyTorch's order
    "num_states",    # S: 2 for (h, c), 1 for h
    "saved_width",   # W: columns of `saved` per step, in units of H
    "dgh_differs",   # whether the backward kernel writes a dgh separate from dgx
    "units",         # units(dtype, target) -> (forward_unit, backward_unit), compiled
                     # for targets.CUDA or targets.CPU
    "norm",          # None, or for layer-normalized cells: norm.NormSpec
    "parameters",    # the layer's parameters: a tuple of Param
    "reference",     # None, or (forward_step, backward_step): the NumPy float64 step
                     # that reference.py runs (its contract is reference.py's)
    "state_names",   # the states' names, h first: ("h", "c"); the modules call the
                     # initial ones h_0, c_0
    "options",       # ((name, default), ...): numeric options the layers take for
                     # this cell (checked finite reals) and hand to Param inits
    "torch",         # None, or a TorchOp: the PyTorch op this cell answers
)


class Cell(namedtuple("Cell", _FIELDS, defaults=[None, GEMM_PARAMETERS, None, None, (),
                                                 None])):
    """Everything about a cell: what the time loop, the kernels, the layers, the NumPy
    reference and the PyTorch bridge need of it. Register one with
    ``kernels.cells.register``; nothing outside the cell's own file names it."""

    __slots__ = ()

    def __new__(cls, name, num_gates, num_states, saved_width, dgh_differs, units,
                norm=None, parameters=GEMM_PARAMETERS, reference=None, state_names=None,
                options=(), torch=None):
        if state_names is None:
            state_names = ("h", "c")[:num_states]
        return super().__new__(cls, name, num_gates, num_states, saved_width, dgh_differs,
                               units, norm, tuple(parameters), reference,
                               tuple(state_names), tuple(options), torch)

    @property
    def has_projection(self):
        """Whether a layer of this cell takes proj_size."""
        return any(p.when == "projection" for p in self.parameters)


@functools.lru_cache(maxsize=None)
def activations(dtype, target):
    """``(one, sigmoid, tanh)`` for ``dtype`` and ``target``: the constant is typed so that
    float32 kernels stay in float32 (an untyped ``1.0`` would promote their arithmetic
    to float64). On a GPU the functions are libdevice's (``math.exp``, ``math.tanh``);
    on the CPU they are ``fastmath``'s, branch-free and without libm calls, so that a
    loop over units vectorizes (their accuracy: fastmath.ULP_BOUND)."""
    one = np.dtype(dtype).type(1)
    if target == targets.CPU:
        from . import fastmath
        functions = fastmath.functions(dtype)
        return one, functions.sigmoid, functions.tanh

    @targets.device(target)
    def sigmoid(x):
        return one / (one + math.exp(-x))

    @targets.device(target)
    def tanh(x):
        return math.tanh(x)

    return one, sigmoid, tanh


@functools.lru_cache(maxsize=None)
def zoneout_units(dtype, num_states, target):
    """Zoneout's device functions (Krueger et al. 2016), with zo (T,B,S*H) the weights of
    the previous states, z = a 0/1 mask in training, p in eval:

        h_t = z_h ⊙ h_{t-1} + (1 − z_h) ⊙ h̃_t      c_t = z_c ⊙ c_{t-1} + (1 − z_c) ⊙ c̃_t

    with h̃_t, c̃_t what the cell computed from the previous states. ``mix`` runs after a
    unit's forward; in backward ``split`` gives the unit its share (1 − z) of the
    gradients reaching h_t (``total_h``) and c_t (in dc_carry), and ``join`` adds the
    share z that goes straight to the previous states after the unit ran."""
    one = np.dtype(dtype).type(1)
    zero = one - one
    two = num_states > 1

    @targets.device(target)
    def mix(t, b, j, hidden, zo, h_seq, c_seq):
        z = zo[t, b, j]
        h_seq[t + 1, b, j] = z * h_seq[t, b, j] + (one - z) * h_seq[t + 1, b, j]
        if two:
            z = zo[t, b, hidden + j]
            c_seq[t + 1, b, j] = z * c_seq[t, b, j] + (one - z) * c_seq[t + 1, b, j]

    @targets.device(target)
    def split(t, b, j, hidden, zo, total_h, dc_carry):
        # returns (the unit's dh, the whole gradient reaching c_t)
        total_c = zero
        if two:
            total_c = dc_carry[b, j]
            dc_carry[b, j] = (one - zo[t, b, hidden + j]) * total_c
        return (one - zo[t, b, j]) * total_h, total_c

    @targets.device(target)
    def join(t, b, j, hidden, zo, total_h, total_c, dh_carry, dc_carry):
        dh_carry[b, j] += zo[t, b, j] * total_h
        if two:
            dc_carry[b, j] += zo[t, b, hidden + j] * total_c

    return mix, split, join


@functools.lru_cache(maxsize=None)
def unit_steps(cell, dtype, target):
    """``(forward_at, backward_at)``: one unit's whole step as the GEMM-plus-gate kernel
    and the CPU region both run it, with zoneout where ``zoned`` (common.zoneout_units):

        forward_at(t, b, j, H, xg, rec, gx, gh, b_hh, h_seq, c_seq, saved, zo, zoned)
            loads the unit's G values of gx[t, b] and gh[b] (the step's h_{t-1}·W_hhᵀ)
            into the scratch xg, rec (G,), runs forward_unit, then mixes
        backward_at(t, b, j, H, total_h, h_seq, c_seq, saved, dh_carry, dc_carry, dgx,
                    dgh, zo, zoned)
            runs backward_unit on the unit's share of total_h, the whole gradient
            reaching h_t, and gives zoneout's share to the previous states"""
    forward_unit, backward_unit = cell.units(dtype, target)
    mix, split, join = zoneout_units(dtype, cell.num_states, target)
    gates = cell.num_gates

    @targets.device(target)
    def forward_at(t, b, j, hidden, xg, rec, gx, gh, b_hh, h_seq, c_seq, saved, zo, zoned):
        for g in range(gates):
            xg[g] = gx[t, b, g * hidden + j]
            rec[g] = gh[b, g * hidden + j]
        forward_unit(t, b, j, hidden, xg, rec, b_hh, h_seq, c_seq, saved)
        if zoned:
            mix(t, b, j, hidden, zo, h_seq, c_seq)

    @targets.device(target)
    def backward_at(t, b, j, hidden, total_h, h_seq, c_seq, saved, dh_carry, dc_carry, dgx,
                    dgh, zo, zoned):
        if zoned:
            dh, total_c = split(t, b, j, hidden, zo, total_h, dc_carry)
            backward_unit(t, b, j, hidden, dh, h_seq, c_seq, saved, dh_carry, dc_carry,
                          dgx, dgh)
            join(t, b, j, hidden, zo, total_h, total_c, dh_carry, dc_carry)
        else:
            backward_unit(t, b, j, hidden, total_h, h_seq, c_seq, saved, dh_carry,
                          dc_carry, dgx, dgh)

    return forward_at, backward_at
