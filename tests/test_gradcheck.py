"""Central finite differences in float64, through the very same kernels, for the input,
h_0, c_0 and every parameter; and the reference's own backward checked the same way."""
import numpy as np
import pytest

from numba_rnn import reference
from numba_rnn.testing import GRADCHECK_MAX_RELATIVE_ERROR, relative_error
from oracles import finite_difference_check, make_problem, num_states


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("mode", ["lstm", "gru"])
def test_kernels_gradcheck(rng, mode, num_layers):
    layer, x, states, upstream = make_problem(rng, mode, 3, 2, 3, 3, num_layers, "float64")
    errors = finite_difference_check(layer, x, states, upstream)
    assert set(errors) >= {"input", "h_0", "weight_hh_l0", "bias_ih_l0"}
    assert ("c_0" in errors) == (mode == "lstm")


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("mode", ["lstm", "gru"])
def test_reference_gradcheck(rng, mode, num_layers, eps=1e-6):
    steps, batch, inputs, hidden = 3, 2, 3, 4
    gates = (4 if mode == "lstm" else 3) * hidden
    layers = [[rng.uniform(-0.7, 0.7, shape) for shape in (
        (gates, inputs if k == 0 else hidden), (gates, hidden), (gates,), (gates,))]
        for k in range(num_layers)]
    x = rng.standard_normal((steps, batch, inputs))
    states0 = [rng.standard_normal((num_layers, batch, hidden)) for _ in range(num_states(mode))]
    doutput = rng.standard_normal((steps, batch, hidden))
    dstates_n = [rng.standard_normal((num_layers, batch, hidden)) for _ in states0]

    def loss():
        output, states_n, _ = reference.stack_forward(mode, x, states0, layers)
        return (output * doutput).sum() + sum((s * d).sum() for s, d in zip(states_n, dstates_n))

    _, _, caches = reference.stack_forward(mode, x, states0, layers)
    dx, dstates0, grads = reference.stack_backward(mode, doutput, dstates_n, caches)
    leaves = [("x", x, dx)] + [(f"state{k}", s, d) for k, (s, d) in enumerate(zip(states0, dstates0))]
    leaves += [(f"layer{k} param{j}", layers[k][j], grads[k][j])
               for k in range(num_layers) for j in range(4)]
    for name, array, analytic in leaves:
        numeric = np.zeros_like(array)
        for index in np.ndindex(array.shape):
            original = array[index]
            array[index] = original + eps
            plus = loss()
            array[index] = original - eps
            minus = loss()
            array[index] = original
            numeric[index] = (plus - minus) / (2 * eps)
        assert relative_error(analytic, numeric) < GRADCHECK_MAX_RELATIVE_ERROR, name
