"""Issue 27 point 3 (the cell part): a cell defined in a test file, outside the package,
registered with the one registration call (``numba_rnn.kernels.cells.register``), runs
as a layer through ``nr.nn.RecurrentLayer`` on the simulator's plain path and on the CPU
path (its plain kernels and its region), checked against central finite differences in
float64 of the very same forward and against a plain NumPy loop of its equations.

The toy cell: a minimal gated unit (after Zhou et al. 2016, with the reset-style product
of PyTorch's GRU), 2 gates (f, n), one state h, a plain W_hh GEMM. With
gx = x_t·W_ihᵀ + b_ih and ĝ = h_{t-1}·W_hhᵀ + b_hh (each split f, n):

    f   = σ(gx_f + ĝ_f)
    n   = tanh(gx_n + f ⊙ ĝ_n)
    h_t = (1 − f) ⊙ h_{t-1} + f ⊙ n

saved[t] = (f, n, ĝ_n). Backward, by hand, with dh the gradient reaching h_t:

    da_n = dh ⊙ f ⊙ (1 − n²)                         (n's pre-activation)
    da_f = (dh ⊙ (n − h_{t-1}) + da_n ⊙ ĝ_n) ⊙ f(1 − f)
    dgx  = (da_f, da_n)          dgh = (da_f, da_n ⊙ f)   (of gx, of ĝ)
    dh_{t-1} = dh ⊙ (1 − f) + dgh·W_hh;  the unit leaves dh ⊙ (1 − f) in dh_carry.
"""
import functools

import numpy as np
import pytest

import numba_rnn as nr
from numba_rnn import backend, recurrent, reference
from numba_rnn.cells import mgu
from numba_rnn.kernels import cells
from numba_rnn.testing import reference_results
from oracles import assert_matches, directional_check, finite_difference_check

NAME = "test_toy_mgu"


# The cell's units: the minimal gated unit's of the package (numba_rnn/cells/mgu.py,
# written with the public API only, its equations those above); this file defines,
# registers and checks its own Cell of them, with its own NumPy oracle.
units = mgu.units


# -------------------------------------------------- the same equations in NumPy
def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def numpy_step(x, states, params):
    (h_prev,) = states
    w_ih, w_hh, b_ih, b_hh = params
    gx_f, gx_n = np.split(x @ w_ih.T + b_ih, 2, axis=1)
    gh_f, gh_n = np.split(h_prev @ w_hh.T + b_hh, 2, axis=1)
    f = sigmoid(gx_f + gh_f)
    n = np.tanh(gx_n + f * gh_n)
    return ((1 - f) * h_prev + f * n,), (x, h_prev, f, n, gh_n, params)


def numpy_step_backward(dstates, cache):
    (dh,) = dstates
    x, h_prev, f, n, gh_n, (w_ih, w_hh, _, _) = cache
    da_n = dh * f * (1 - n**2)
    da_f = (dh * (n - h_prev) + da_n * gh_n) * f * (1 - f)
    dgx = np.concatenate([da_f, da_n], axis=1)
    dgh = np.concatenate([da_f, da_n * f], axis=1)
    dparams = (dgx.T @ x, dgh.T @ h_prev, dgx.sum(0), dgh.sum(0))
    return dgx @ w_ih, (dh * (1 - f) + dgh @ w_hh,), dparams


def numpy_layer(x, h0, params, dout, dh_n):
    """One layer, one direction, a plain loop over t and back: (output, h_n, dx, dh0,
    dparams) in float64."""
    h, outputs, caches = h0, [], []
    for x_t in x:
        (h,), cache = numpy_step(x_t, (h,), params)
        outputs.append(h)
        caches.append(cache)
    dh, dx, dparams = dh_n, [None] * len(x), [np.zeros_like(p) for p in params]
    for t in range(len(x) - 1, -1, -1):
        dx[t], (dh,), step_grads = numpy_step_backward((dh + dout[t],), caches[t])
        dparams = [a + g for a, g in zip(dparams, step_grads)]
    return np.stack(outputs), h, np.stack(dx), dh, dparams


TOY = cells.Cell(name=NAME, num_gates=2, num_states=1, saved_width=3, dgh_differs=True,
                 units=units, reference=(numpy_step, numpy_step_backward))


@pytest.fixture(scope="module", autouse=True)
def registered(launch_record):
    """The toy cell registered (the one call) for this file's tests; afterwards
    unregistered, and its launches dropped from the session's record: the compile
    check (test_compile.py) compiles the registered cells in processes of their own,
    where a test file's cell does not exist."""
    cell = cells.register(TOY)
    yield cell
    for name in (NAME, mgu.CELL.name):  # mgu registered itself when imported
        cells.unregister(name)
    for recipe in [r for r in launch_record.signatures
                   if any(("cell", n) in (r.args or ()) for n in (NAME, mgu.CELL.name))]:
        del launch_record.signatures[recipe]


#: (backend, path): the simulator's plain path (the CUDA kernels; on a GPU, the GPU's),
#: the CPU path's plain kernels and its region (recurrent.force_path("persistent")).
PATHS = [("simulator", "plain"), ("cpu", "plain"), ("cpu", "persistent")]


@pytest.fixture(params=PATHS, ids=["-".join(p) for p in PATHS])
def on_path(request):
    name, path = request.param
    if name == "simulator" and backend.backend_name() == "cuda":
        name = "cuda"
    if name not in backend.available_backends():
        pytest.skip(f"no {name} backend here")
    with backend.use_backend(name), recurrent.force_path(path):
        yield path


def test_one_registration_gives_the_cell_to_layers_and_reference():
    assert cells.lookup(NAME) is TOY and nr.kernels.CELLS[NAME] is TOY
    assert reference.CELLS[NAME] == (numpy_step, numpy_step_backward)
    layer = nr.nn.RecurrentLayer(NAME, 3, 4, num_layers=2, bidirectional=True)
    assert layer.mode == NAME and layer.num_layers == 2
    assert [(n, p.shape) for n, p in layer.named_parameters()][:4] == [
        ("weight_ih_l0", (8, 3)), ("weight_hh_l0", (8, 4)), ("bias_ih_l0", (8,)),
        ("bias_hh_l0", (8,))]
    bound = 1 / np.sqrt(4)
    assert all(np.abs(p.numpy()).max() <= bound for p in layer.parameters())
    assert nr.nn.RecurrentLayer(TOY, 3, 4).mode == NAME   # the Cell itself serves too


def test_registration_refuses_bad_cells():
    with pytest.raises(ValueError, match="different cell of that name"):
        cells.register(TOY._replace(saved_width=4))
    with pytest.raises(ValueError, match="num_states"):
        cells.register(TOY._replace(name="bad", num_states=3))
    with pytest.raises(ValueError, match="w_hh"):
        cells.register(TOY._replace(name="bad", parameters=cells.GEMM_PARAMETERS[:1]))
    with pytest.raises(ValueError, match="registered cell"):
        nr.nn.RecurrentLayer("no_such_cell", 3, 4)
    with pytest.raises(ValueError, match="proj_size"):
        nr.nn.RecurrentLayer(NAME, 3, 4, proj_size=2)
    with pytest.raises(TypeError, match="forget_bias"):
        nr.nn.RecurrentLayer(NAME, 3, 4, forget_bias=1.0)
    assert "bad" not in cells.CELLS


def _single_layer_problem(seed=0, steps=4, batch=2, inputs=3, hidden=4):
    nr.manual_seed(seed)
    rng = np.random.default_rng(seed)
    layer = nr.nn.RecurrentLayer(NAME, inputs, hidden, dtype="float64")
    x = nr.tensor(rng.standard_normal((steps, batch, inputs)), requires_grad=True)
    h0 = nr.tensor(0.5 * rng.standard_normal((1, batch, hidden)), requires_grad=True)
    upstream = [rng.standard_normal((steps, batch, hidden)),
                rng.standard_normal((1, batch, hidden))]
    return layer, x, [h0], upstream


def test_forward_and_backward_match_a_numpy_loop(on_path):
    layer, x, states, upstream = _single_layer_problem()
    output, h_n = layer(x, states[0])
    assert layer.last_paths == [[on_path]]
    loss = (output * nr.tensor(upstream[0])).sum() + (h_n * nr.tensor(upstream[1])).sum()
    loss.backward()
    params = [layer.weight_ih_l0, layer.weight_hh_l0, layer.bias_ih_l0, layer.bias_hh_l0]
    expected = numpy_layer(x.numpy(), states[0].numpy()[0], [p.numpy() for p in params],
                           upstream[0], upstream[1][0])
    out, h, dx, dh0, dparams = expected
    np.testing.assert_allclose(output.numpy(), out, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(h_n.numpy()[0], h, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), dx, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(states[0].grad.numpy()[0], dh0, rtol=1e-10, atol=1e-12)
    for p, g in zip(params, dparams):
        np.testing.assert_allclose(p.grad.numpy(), g, rtol=1e-10, atol=1e-12)


def test_backward_matches_finite_differences_of_the_same_forward(on_path):
    """Every element of the input, the state and each parameter, central differences
    in float64 through the very same kernels."""
    layer, x, states, upstream = _single_layer_problem(seed=1, steps=3)
    finite_difference_check(layer, x, states, upstream)


def test_a_stack_with_lengths_matches_the_reference_and_finite_differences(on_path):
    """Two layers, two directions, batch-first, lengths: the package's stack and
    reference.stack_forward (which runs the registered cell's NumPy step), and central
    differences along a random direction per input, state and parameter."""
    nr.manual_seed(2)
    rng = np.random.default_rng(2)
    layer = nr.nn.RecurrentLayer(NAME, 3, 4, num_layers=2, bidirectional=True,
                                 batch_first=True, dtype="float64")
    x = nr.tensor(rng.standard_normal((3, 4, 3)), requires_grad=True)
    h0 = nr.tensor(0.5 * rng.standard_normal((4, 3, 4)), requires_grad=True)
    upstream = [rng.standard_normal((3, 4, 8)), rng.standard_normal((4, 3, 4))]
    lengths = [4, 2, 3]
    assert_matches(reference_results(layer, x, [h0], upstream, lengths), layer, x, [h0],
                   upstream, lengths)
    layer.zero_grad()  # directional_check's backward must start from zero gradients
    x.grad = h0.grad = None
    directional_check(layer, x, [h0], upstream, lengths)


def test_a_one_step_cell_module():
    cell = nr.nn.RecurrentCell(NAME, 3, 4, dtype="float64")
    rng = np.random.default_rng(3)
    x, h0 = rng.standard_normal((2, 3)), rng.standard_normal((2, 4))
    h1 = cell(x, h0)
    params = [cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh]
    (expected,), _ = numpy_step(x, (h0,), [p.numpy() for p in params])
    np.testing.assert_allclose(h1.numpy(), expected, rtol=1e-12, atol=1e-12)
