"""Your own recurrent cell, on every kernel path numba_rnn has: the public cell API.

A cell is its gate count ``G``, its state count (1: h; 2: h and a cell state c), the
width ``W`` of what its forward saves for backward (in units of the hidden size ``H``)
and two *unit functions*, written once in Python and compiled for a target: the GPU
(``numba.cuda`` device functions: the plain, fused and persistent kernels, and the
simulator) or the CPU (``numba.njit``: its plain kernels and its region). They are the
math of one hidden unit ``j`` of one batch row ``b`` at step ``t``; the kernels around
them do the GEMMs, the time loop, the layers, directions, lengths, dropout and zoneout.

The contract
------------
``units(dtype, target)`` returns ``(forward_unit, backward_unit)``, each decorated with
``device(target)``; constants typed by ``activations(dtype, target)`` (an untyped
``1.0`` would turn float32 kernels into float64 ones). The pre-activations of gate g are
``gx[t, b, g·H + j]`` (``x_t·W_ihᵀ + b_ih``: the unit gets its G values in ``xg``) and
``rec[g] + b_hh[g·H + j]`` (``rec``: its G values of ``h_{t-1}·W_hhᵀ``)::

    forward_unit(t, b, j, hidden, xg, rec, b_hh, h_seq, c_seq, saved)
        reads h_seq[t, b, j] (and c_seq[t, b, j]), the previous states; writes the new
        ones at index t + 1, and what backward needs at saved[t, b, k·H + j], k < W
    backward_unit(t, b, j, hidden, dh, h_seq, c_seq, saved, dh_carry, dc_carry, dgx, dgh)
        dh: the whole gradient reaching the new h_t; on entry dc_carry[b, j] holds the
        one reaching the new c_t. Writes dgx[t, b, g·H + j] for every gate (the
        gradient of its input pre-activation), with ``dgh_differs`` dgh[t, b, g·H + j]
        too (that of its recurrent one, rec + b_hh, where it differs from dgx), and
        leaves in dh_carry[b, j] (and dc_carry[b, j]) the part of the previous states'
        gradient that does not go through W_hh (the kernels add dgh·W_hh).

Backward reads the previous states (index t) and ``saved``, never the new states at
index t + 1 (zoneout replaces them after forward ran): what it needs of them, it saves
or recomputes. A one-state cell never touches c_seq, dc_carry.

``Cell(name, num_gates, num_states, saved_width, dgh_differs, units,
parameters=GEMM_PARAMETERS, reference=None, state_names=None)`` holds it all, ``register``
makes it known by name (``lookup``, ``unregister``), and ``numba_rnn.RecurrentLayer(cell,
input_size, hidden_size, num_layers=, bidirectional=, batch_first=, dropout=, ...)``,
``numba_rnn.RecurrentCell(cell, ...)`` and ``numba_rnn.torch.RecurrentLayer(cell, ...)``
run it. ``parameters`` is the layer's parameter layout (``Param`` entries;
``GEMM_PARAMETERS``: weight_ih, weight_hh, bias_ih, bias_hh, as PyTorch's layers);
``reference``: an optional NumPy step for numba_rnn.reference.

``register`` refuses, with a ValueError naming the problem, a spec it cannot run: wrong
counts, units of the wrong arity, units that do not compile for the CPU (Numba's error
summarized), a ``saved_width`` too small for what forward writes, a backward that reads
what forward did not write (or the new states), a gate whose dgx backward leaves
unwritten. ``numba_rnn.testing.check_cell(cell)`` then checks the hand-derived backward
against central finite differences of the cell's own forward, in float64, through the
real kernels on every path there is, and names the gate whose derivative is wrong.

A worked example: the update-gate RNN (UGRNN, Collins et al. 2017), two gates (g, c),
one state; a = gx + rec + b_hh enters both ways alike, so dgh = dgx::

    g = σ(a_g)      c = tanh(a_c)      h_t = g ⊙ h_{t-1} + (1 − g) ⊙ c
    da_g = dh ⊙ (h_{t-1} − c) ⊙ g(1 − g)      da_c = dh ⊙ (1 − g) ⊙ (1 − c²)
    dh_{t-1} = dh ⊙ g + da·W_hh

    import functools
    import numba_rnn as nr
    from numba_rnn.cells import Cell, activations, device, register

    @functools.lru_cache(maxsize=None)
    def units(dtype, target):
        one, sigmoid, tanh = activations(dtype, target)

        @device(target)
        def ugrnn_forward(t, b, j, hidden, xg, rec, b_hh, h_seq, c_seq, saved):
            g = sigmoid(xg[0] + rec[0] + b_hh[j])
            c = tanh(xg[1] + rec[1] + b_hh[hidden + j])
            h_seq[t + 1, b, j] = g * h_seq[t, b, j] + (one - g) * c
            saved[t, b, j] = g
            saved[t, b, hidden + j] = c

        @device(target)
        def ugrnn_backward(t, b, j, hidden, dh, h_seq, c_seq, saved, dh_carry, dc_carry,
                           dgx, dgh):
            g = saved[t, b, j]
            c = saved[t, b, hidden + j]
            dgx[t, b, j] = dh * (h_seq[t, b, j] - c) * g * (one - g)
            dgx[t, b, hidden + j] = dh * (one - g) * (one - c * c)
            dh_carry[b, j] = dh * g

        return ugrnn_forward, ugrnn_backward

    UGRNN = register(Cell(name="ugrnn", num_gates=2, num_states=1, saved_width=2,
                          dgh_differs=False, units=units))
    layer = nr.RecurrentLayer(UGRNN, 8, 16, num_layers=2, batch_first=True)

    from numba_rnn.testing import check_cell
    print(check_cell(UGRNN, gates=("g", "c")))

``numba_rnn/cells/mgu.py`` and ``ligru.py`` are two cells from the literature written
this way, with only this module's names.
"""
from ..kernels.cells import (BACKWARD_ARGUMENTS, FORWARD_ARGUMENTS, lookup, register,
                             unregister, validate)
from ..kernels.common import GEMM_PARAMETERS, Cell, Param, activations
from ..kernels.targets import CPU, CUDA, device

__all__ = ["Cell", "Param", "GEMM_PARAMETERS", "register", "unregister", "lookup",
           "validate", "activations", "device", "CPU", "CUDA", "FORWARD_ARGUMENTS",
           "BACKWARD_ARGUMENTS"]
