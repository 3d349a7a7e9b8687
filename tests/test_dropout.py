"""Dropout between layers: training mode only, reproducible with nr.manual_seed, and the
mask drawn in forward is the one backward uses."""
import numpy as np
import pytest

import numba_rnn as nr
from numba_rnn.testing import assert_close
from oracles import build_layer, directional_check, make_problem

X = np.random.default_rng(5).standard_normal((4, 2, 3)).astype("float32")


def run(layer, seed):
    nr.manual_seed(seed)
    output, _ = layer(X)
    return output.numpy()


@pytest.mark.parametrize("mode", ["lstm", "gru", "rnn_tanh"])
def test_p0_equals_no_dropout_and_eval_turns_it_off(mode):
    nr.manual_seed(0)
    with_dropout = build_layer(mode, 3, 4, 3, "float32", dropout=0.0)
    nr.manual_seed(0)
    without = build_layer(mode, 3, 4, 3, "float32")
    np.testing.assert_array_equal(run(with_dropout, 1), run(without, 1))
    nr.manual_seed(0)
    half = build_layer(mode, 3, 4, 3, "float32", dropout=0.5)
    assert not np.allclose(run(half, 1), run(without, 1))
    half.eval()
    np.testing.assert_array_equal(run(half, 1), run(without, 1))


def test_p1_zeroes_the_next_layers_input():
    """With every layer-0 output dropped, layer 1 sees zeros: its output is what a layer
    fed zeros gives, and no gradient reaches layer 0 or the input."""
    nr.manual_seed(0)
    layer = nr.GRU(3, 4, num_layers=2, dropout=1.0)
    x = nr.tensor(X, requires_grad=True)
    output, _ = layer(x)
    second = nr.GRU(4, 4)
    second.load_state_dict({k[:-1] + "0": v for k, v in layer.state_dict().items()
                            if k.endswith("_l1")})
    expected, _ = second(np.zeros((4, 2, 4), "float32"))
    assert_close(output, expected, "float32", "output")
    output.sum().backward()
    assert np.all(x.grad.numpy() == 0)
    assert np.all(layer.weight_ih_l0.grad.numpy() == 0)
    assert np.all(layer.weight_ih_l1.grad.numpy() == 0)  # its input is all zeros
    assert np.any(layer.bias_ih_l1.grad.numpy() != 0)


def test_same_seed_same_output_other_seed_other_output():
    layer = nr.LSTM(3, 4, num_layers=2, dropout=0.3, bidirectional=True)
    np.testing.assert_array_equal(run(layer, 7), run(layer, 7))
    assert not np.array_equal(run(layer, 7), run(layer, 8))


class _Seeded:
    """Wraps a layer so that every call draws the same dropout masks."""

    def __init__(self, layer):
        self.layer = layer

    def __getattr__(self, name):
        return getattr(self.layer, name)

    def __call__(self, *args, **kwargs):
        nr.manual_seed(11)
        return self.layer(*args, **kwargs)


def test_backward_uses_the_forward_mask(rng):
    """Finite differences with the same mask every call equal backward's gradients: they
    would not if backward drew a mask of its own. Along random directions (two
    evaluations per leaf; element by element took 18 s in the simulator): a mask of
    backward's own changes the directional derivative as surely."""
    layer, x, states, upstream, lengths = make_problem(
        rng, "gru", 3, 2, 2, 3, 2, "float64", bidirectional=True)
    layer.dropout = 0.4
    directional_check(_Seeded(layer), x, states, upstream, lengths)
