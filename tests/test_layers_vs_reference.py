"""The kernels, through the layers, against the NumPy float64 reference: outputs, final
states and every gradient, in float32 and float64, for odd shapes too."""
import numpy as np
import pytest

from numba_rnn import recurrent, reference
from numba_rnn.kernels import CELLS
from numba_rnn.testing import assert_close
from numba_rnn.testing import reference_results
from oracles import assert_matches, make_problem

# (T, B, I, H, layers): odd hidden sizes, batch 1, one step, a hidden size past one warp.
SHAPES = [(3, 2, 3, 5, 1), (1, 1, 2, 3, 1), (2, 1, 4, 7, 2), (2, 3, 3, 33, 2)]
MODES = ["lstm", "gru", "rnn_tanh", "rnn_relu"]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "T%d-B%d-I%d-H%d-L%d" % s)
def test_layer_matches_reference(rng, mode, dtype, shape):
    problem = make_problem(rng, mode, *shape, dtype)
    assert_matches(reference_results(*problem), *problem)


@pytest.mark.parametrize("mode", ["lstm", "gru"])
@pytest.mark.parametrize("layout", ["batch_first", "no_states", "unbatched"])
def test_layouts_match_reference(rng, mode, layout):
    problem = make_problem(rng, mode, 3, 2, 3, 4, 2, "float32",
                           batch_first=layout == "batch_first",
                           with_states=layout != "no_states",
                           unbatched=layout == "unbatched")
    assert_matches(reference_results(*problem), *problem)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("mode", MODES)
def test_time_loop_matches_reference(rng, mode, dtype):
    """recurrent.stack_forward/backward directly, with gradients arriving at the output
    sequence and at every final state."""
    cell = CELLS[mode]
    steps, batch, inputs, hidden, num_layers = 4, 3, 2, 6, 2
    gates = cell.num_gates * hidden
    layers = [
        [recurrent.LayerParams(*(rng.uniform(-0.6, 0.6, shape).astype(dtype) for shape in (
            (gates, inputs if k == 0 else hidden), (gates, hidden), (gates,), (gates,))))]
        for k in range(num_layers)
    ]
    x = rng.standard_normal((steps, batch, inputs)).astype(dtype)
    states0 = tuple(rng.standard_normal((num_layers, batch, hidden)).astype(dtype)
                    for _ in range(cell.num_states))
    doutput = rng.standard_normal((steps, batch, hidden)).astype(dtype)
    dstates_n = tuple(rng.standard_normal((num_layers, batch, hidden)).astype(dtype)
                      for _ in range(cell.num_states))

    output, states_n, caches = recurrent.stack_forward(cell, x, states0, layers)
    dx, dstates0, grads = recurrent.stack_backward(cell, caches, layers, doutput, dstates_n)
    ref_output, ref_states_n, ref_caches = reference.stack_forward(mode, x, states0, layers)
    ref_dx, ref_dstates0, ref_grads = reference.stack_backward(
        mode, doutput, dstates_n, ref_caches)

    assert_close(output, ref_output, dtype, "output")
    assert_close(dx, ref_dx, dtype, "dx")
    for k in range(cell.num_states):
        assert_close(states_n[k], ref_states_n[k], dtype, f"state {k} final")
        assert_close(dstates0[k], ref_dstates0[k], dtype, f"d state {k} initial")
    for k in range(num_layers):
        for name, grad, ref_grad in zip(recurrent.LayerParams._fields[:4], grads[k][0],
                                        ref_grads[k][0]):
            assert_close(grad, ref_grad, dtype, f"d {name} layer {k}")
    assert np.isfinite(dx).all()
