"""Minimal gated unit (MGU): G.-B. Zhou, J. Wu, C.-L. Zhang, Z.-H. Zhou, "Minimal Gated
Unit for Recurrent Neural Networks", International Journal of Automation and Computing
13(3), 2016. One gate, f, that both forgets and writes, and a candidate state n:

    f   = σ(W_f x_t + U_f h_{t-1} + b_f)
    n   = tanh(W_n x_t + f ⊙ (U_n h_{t-1} + b_hn) + b_in)
    h_t = (1 − f) ⊙ h_{t-1} + f ⊙ n

The paper gates the state before its product, U_n (f ⊙ h_{t-1}); here, as PyTorch's and
cuDNN's GRU gate their reset (r ⊙ (W_hn h + b_hn)), after it, which the kernels' one
h_{t-1}·W_hhᵀ per step allows. Two gates (f, n), one state; gx = x_t·W_ihᵀ + b_ih and
ĝ = h_{t-1}·W_hhᵀ + b_hh, each split (f, n); saved[t] = (f, n, ĝ_n).

Backward, with dh the gradient reaching h_t:

    da_n = dh ⊙ f ⊙ (1 − n²)
    da_f = (dh ⊙ (n − h_{t-1}) + da_n ⊙ ĝ_n) ⊙ f(1 − f)
    dgx  = (da_f, da_n)          dgh = (da_f, da_n ⊙ f)
    dh_{t-1} = dh ⊙ (1 − f) + dgh·W_hh: the unit leaves dh ⊙ (1 − f) in dh_carry.

Only numba_rnn.cells, the public cell API, is used.
"""
import functools

from numba_rnn.cells import Cell, activations, device, register

#: The gates, in the order of weight_ih's and weight_hh's row blocks.
GATES = ("f", "n")


@functools.lru_cache(maxsize=None)
def units(dtype, target):
    one, sigmoid, tanh = activations(dtype, target)

    @device(target)
    def mgu_forward_unit(t, b, j, hidden, xg, rec, b_hh, h_seq, c_seq, saved):
        f = sigmoid(xg[0] + rec[0] + b_hh[j])
        gh_n = rec[1] + b_hh[hidden + j]
        n = tanh(xg[1] + f * gh_n)
        h_seq[t + 1, b, j] = (one - f) * h_seq[t, b, j] + f * n
        saved[t, b, j] = f
        saved[t, b, hidden + j] = n
        saved[t, b, 2 * hidden + j] = gh_n

    @device(target)
    def mgu_backward_unit(t, b, j, hidden, dh, h_seq, c_seq, saved, dh_carry, dc_carry,
                          dgx, dgh):
        f = saved[t, b, j]
        n = saved[t, b, hidden + j]
        gh_n = saved[t, b, 2 * hidden + j]
        da_n = dh * f * (one - n * n)
        da_f = (dh * (n - h_seq[t, b, j]) + da_n * gh_n) * f * (one - f)
        dgx[t, b, j] = da_f
        dgx[t, b, hidden + j] = da_n
        dgh[t, b, j] = da_f
        dgh[t, b, hidden + j] = da_n * f
        dh_carry[b, j] = dh * (one - f)

    return mgu_forward_unit, mgu_backward_unit


CELL = register(Cell(name="mgu", num_gates=2, num_states=1, saved_width=3,
                     dgh_differs=True, units=units))
