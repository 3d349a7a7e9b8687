"""Central finite differences in float64, through the very same kernels, for the input,
h_0, c_0 and every parameter; and the reference's own backward checked the same way."""
import numpy as np
import pytest

from numba_rnn import backend, reference
from numba_rnn.testing import GRADCHECK_MAX_RELATIVE_ERROR, relative_error
from oracles import directional_check, finite_difference_check, make_problem, num_states

# (cell, layers, options): plain stacks, then lengths, projections and bidirectional stacks.
CASES = [
    ("lstm", 1, {}),
    ("lstm", 2, {}),
    ("gru", 1, {}),
    ("gru", 2, {}),
    ("rnn_tanh", 2, {"bias": False}),
    ("rnn_relu", 1, {"lengths": [3, 1]}),
    ("lstm", 2, {"bidirectional": True, "lengths": [2, 3]}),
    ("gru", 2, {"bidirectional": True, "batch_first": True}),
    ("lstm", 1, {"proj_size": 2, "lengths": [1, 3]}),
    ("lstm", 2, {"proj_size": 2, "bidirectional": True}),
]


@pytest.mark.parametrize("mode,num_layers,options", CASES,
                         ids=[f"{c[0]}-L{c[1]}-" + "-".join(c[2]) for c in CASES])
def test_kernels_gradcheck(rng, mode, num_layers, options):
    check_kernels(rng, mode, num_layers, options)


def check_kernels(rng, mode, num_layers, options):
    """Element by element; in the simulator the two-layer bidirectional stacks go along
    random directions instead (two evaluations per leaf, not two per element: a minute
    less), their element-by-element check running on the CPU path (test_cpu_path.py,
    the same unit math compiled for the processor)."""
    problem = make_problem(rng, mode, 3, 2, 3, 3, num_layers, "float64", **options)
    if backend.backend_name() == "simulator" and num_layers == 2 and options.get("bidirectional"):
        errors = directional_check(*problem)
    else:
        errors = finite_difference_check(*problem)
    assert set(errors) >= {"input", "h_0", "weight_hh_l0"}
    assert ("c_0" in errors) == (mode == "lstm")


@pytest.mark.parametrize("mode,num_layers,options", CASES,
                         ids=[f"{c[0]}-L{c[1]}-" + "-".join(c[2]) for c in CASES])
def test_reference_gradcheck(rng, mode, num_layers, options, eps=1e-6):
    steps, batch, inputs, hidden = 3, 2, 3, 4
    dirs = 2 if options.get("bidirectional") else 1
    out = options.get("proj_size") or hidden
    gates = {"lstm": 4, "gru": 3}.get(mode, 1) * hidden
    layers = [[[rng.uniform(-0.7, 0.7, shape) for shape in (
        (gates, inputs if k == 0 else dirs * out), (gates, out), (gates,), (gates,))]
        + ([rng.uniform(-0.7, 0.7, (out, hidden))] if options.get("proj_size") else [])
        for _ in range(dirs)] for k in range(num_layers)]
    x = rng.standard_normal((steps, batch, inputs))
    sizes = [out, hidden][: num_states(mode)]
    states0 = [rng.standard_normal((num_layers * dirs, batch, size)) for size in sizes]
    lengths = options.get("lengths")
    doutput = rng.standard_normal((steps, batch, dirs * out))
    dstates_n = [rng.standard_normal(s.shape) for s in states0]

    def loss():
        output, states_n, _ = reference.stack_forward(mode, x, states0, layers, lengths)
        return (output * doutput).sum() + sum((s * d).sum() for s, d in zip(states_n, dstates_n))

    _, _, caches = reference.stack_forward(mode, x, states0, layers, lengths)
    dx, dstates0, grads = reference.stack_backward(mode, doutput, dstates_n, caches)
    leaves = [("x", x, dx)] + [(f"state{k}", s, d) for k, (s, d) in enumerate(zip(states0, dstates0))]
    leaves += [(f"layer{k} dir{d} param{j}", layers[k][d][j], grads[k][d][j])
               for k in range(num_layers) for d in range(dirs) for j in range(len(layers[k][d]))]
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
