"""Light GRU (LiGRU): M. Ravanelli, P. Brakel, M. Omologo, Y. Bengio, "Light Gated
Recurrent Units for Speech Recognition", IEEE Transactions on Emerging Topics in
Computational Intelligence 2(2), 2018. The GRU without its reset gate, with a ReLU
candidate:

    z   = σ(W_z x_t + U_z h_{t-1} + b_z)
    h̃   = ReLU(W_h x_t + U_h h_{t-1} + b_h)
    h_t = z ⊙ h_{t-1} + (1 − z) ⊙ h̃

The paper's batch normalization of the input projections W_z x_t, W_h x_t is left out
(the biases b_ih + b_hh stand for its shift); put a normalization before the layer, or
write it as a cell of its own. Two gates (z, h̃), one state; with
a = x_t·W_ihᵀ + b_ih + h_{t-1}·W_hhᵀ + b_hh the pre-activations, split (z, h̃), both
projections enter a alike, so dgh = dgx; saved[t] = (z, h̃).

Backward, with dh the gradient reaching h_t:

    da_z = dh ⊙ (h_{t-1} − h̃) ⊙ z(1 − z)
    da_h = dh ⊙ (1 − z) ⊙ [h̃ > 0]
    dh_{t-1} = dh ⊙ z + da·W_hh: the unit leaves dh ⊙ z in dh_carry.

Only numba_rnn.cells, the public cell API, is used.
"""
import functools

from numba_rnn.cells import Cell, activations, device, register

#: The gates, in the order of weight_ih's and weight_hh's row blocks.
GATES = ("z", "h")


@functools.lru_cache(maxsize=None)
def units(dtype, target):
    one, sigmoid, _ = activations(dtype, target)
    zero = one - one

    @device(target)
    def ligru_forward_unit(t, b, j, hidden, xg, rec, b_hh, h_seq, c_seq, saved):
        z = sigmoid(xg[0] + rec[0] + b_hh[j])
        a = xg[1] + rec[1] + b_hh[hidden + j]
        candidate = a if a > zero else zero
        h_seq[t + 1, b, j] = z * h_seq[t, b, j] + (one - z) * candidate
        saved[t, b, j] = z
        saved[t, b, hidden + j] = candidate

    @device(target)
    def ligru_backward_unit(t, b, j, hidden, dh, h_seq, c_seq, saved, dh_carry, dc_carry,
                            dgx, dgh):
        z = saved[t, b, j]
        candidate = saved[t, b, hidden + j]
        dgx[t, b, j] = dh * (h_seq[t, b, j] - candidate) * z * (one - z)
        dgx[t, b, hidden + j] = dh * (one - z) if candidate > zero else zero
        dh_carry[b, j] = dh * z

    return ligru_forward_unit, ligru_backward_unit


CELL = register(Cell(name="ligru", num_gates=2, num_states=1, saved_width=2,
                     dgh_differs=False, units=units))
