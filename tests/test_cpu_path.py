"""Issue 15: the CPU path, the same cell math compiled by numba.njit, against the same
oracles as the CUDA kernels (the NumPy reference, PyTorch, float64 finite differences
through the very same compiled code), and against the CUDA kernels themselves run in
the simulator. Every test here runs on the "cpu" backend (the fixture below)."""
import numpy as np
import pytest

import numba_rnn as nr
from numba_rnn import backend, recurrent
from numba_rnn.kernels import CELLS, targets
from numba_rnn.kernels.steps import step_kernels
from oracles import directional_check, make_problem
from test_gradcheck import CASES as GRADCHECK_CASES
from test_gradcheck import check_kernels
from test_layernorm_zoneout import LN_MODES, PLAIN_MODES, run_against_reference
from test_optim import CONFIGS, id_of
from test_optim import test_steps_equal_torch_optim as optimizer_against_torch
from test_torch_parity import MATRIX, check_case

pytestmark = pytest.mark.skipif("cpu" not in backend.available_backends(),
                                reason="the CPU path runs where there is no GPU storage")


@pytest.fixture(autouse=True)
def cpu():
    with backend.use_backend("cpu"):
        yield


@pytest.fixture(params=["serial", "threads"])
def spread(request, monkeypatch):
    """Both compilations of the CPU kernels: below the size thresholds the calling thread
    runs a kernel's loop, above them Numba's threads (thresholds at 0 force it)."""
    if request.param == "threads":
        monkeypatch.setattr(targets, "PARALLEL_MIN_ITEMS", 0)
        monkeypatch.setattr(targets, "PARALLEL_MIN_ROWS", 0)
    return request.param


MATRIX_IDS = ["-".join(str(v) for v in (c[0], "bias" if c[1] else "nobias",
                                        "bf" if c[2] else "tm", "bi" if c[3] else "uni",
                                        f"L{c[4]}", f"P{c[5]}", c[6] or "full", c[7]))
              for c in MATRIX]


def test_the_fixture_runs_the_cpu_kernels():
    assert nr.backend_name() == "cpu" and targets.current() == targets.CPU
    kernels = step_kernels(CELLS["lstm"], np.float64)
    assert getattr(kernels.forward, "on_cpu", False) and kernels.fused_forward is None


def test_threads_run_a_kernel_above_its_threshold(monkeypatch):
    """Which compilation runs: the serial one below PARALLEL_MIN_ITEMS, the prange one
    from it on (both compute the same: the tests above run each)."""
    kernel = step_kernels(CELLS["gru"], np.float64).forward
    ran = []
    monkeypatch.setattr(kernel, "function", lambda n, *args: ran.append("threads"))
    monkeypatch.setattr(kernel, "_serial", lambda n, *args: ran.append("serial"))
    kernel(targets.PARALLEL_MIN_ITEMS - 1)
    kernel(targets.PARALLEL_MIN_ITEMS)
    assert ran == ["serial", "threads"]


@pytest.mark.parametrize(
    "mode,bias,batch_first,bidirectional,num_layers,proj_size,lengths,dtype", MATRIX,
    ids=MATRIX_IDS)
def test_option_matrix(rng, mode, bias, batch_first, bidirectional, num_layers, proj_size,
                       lengths, dtype):
    """All 320 cases of test_torch_parity's matrix (the simulator runs a sample): against
    the NumPy reference always, and PyTorch where importable."""
    check_case(rng, mode, bias, batch_first, bidirectional, num_layers, proj_size, lengths,
               dtype)


@pytest.mark.parametrize("mode,num_layers,options", GRADCHECK_CASES,
                         ids=[f"{c[0]}-L{c[1]}-" + "-".join(c[2]) for c in GRADCHECK_CASES])
def test_finite_differences_through_the_cpu_kernels(rng, mode, num_layers, options, spread):
    """test_gradcheck's cases, element by element in float64, for the input, the states
    and every parameter, through the compiled CPU code."""
    check_kernels(rng, mode, num_layers, options)


@pytest.mark.parametrize("regularizer", ["none", "both", "eval"])
@pytest.mark.parametrize("mode", LN_MODES)
def test_layer_norm_cells_against_the_reference(rng, mode, regularizer):
    """Two layers, two directions, lengths; zoneout and DropConnect masks in training
    (the ones the loop drew) or their expectation in eval; a hidden size of 11."""
    p = 0.0 if regularizer == "none" else 0.35
    run_against_reference(rng, mode, "float64", p, p, training=regularizer != "eval",
                          hidden=11)


@pytest.mark.parametrize("mode", PLAIN_MODES)
def test_zoneout_and_dropconnect_against_the_reference(rng, mode):
    run_against_reference(rng, mode, "float64", 0.4, 0.3)


@pytest.mark.parametrize("mode", LN_MODES)
def test_layer_norm_float32(rng, mode):
    run_against_reference(rng, mode, "float32", 0.3, 0.3, lengths=(3, 3), num_layers=1)


@pytest.mark.parametrize("mode", LN_MODES + ["lstm"])
def test_training_masks_finite_differences(rng, mode):
    """A layer in training with zoneout, DropConnect and dropout, reseeded before each
    forward so that every evaluation draws the same masks: the gradients backward takes
    through the masks agree with finite differences."""
    problem = make_problem(rng, mode, 3, 2, 2, 3, 2, "float64", bidirectional=True,
                           zoneout=0.4, weight_dropout=0.3, dropout=0.3)
    layer = problem[0]
    forward = layer.forward

    def reseeded(*args, **kwargs):
        nr.manual_seed(7)
        return forward(*args, **kwargs)

    layer.forward = reseeded
    directional_check(*problem)


MODULES = ["LSTM", "GRU", "RNN", "LayerNormLSTM", "LayerNormGRU"]


@pytest.mark.parametrize("name", MODULES)
def test_cpu_path_equals_the_cuda_kernels_in_the_simulator(rng, name, spread):
    """The same module, seed and input on both backends (training: dropout, zoneout and
    DropConnect masks, drawn the same on either): outputs and every gradient agree to
    float64 rounding. Where the simulator is not available the check is the reference's."""
    if name == "LayerNormLSTM" and spread == "threads":
        pytest.skip("the threaded row kernels are compiled and checked with LayerNormGRU "
                    "(13 s of compiling saved)")
    if "simulator" not in backend.available_backends():
        pytest.skip("no simulator in this process")
    options = dict(num_layers=2, bidirectional=True, dropout=0.3, zoneout=0.3,
                   weight_dropout=0.2, dtype="float64")
    module = getattr(nr, name)(3, 5, **options)
    x_np = rng.standard_normal((4, 3, 3))
    lengths = [4, 2, 3]
    results = {}
    for which in ("cpu", "simulator"):
        module.zero_grad()
        x = nr.tensor(x_np, requires_grad=True)
        with backend.use_backend(which):
            nr.manual_seed(11)
            out, states = module(x, lengths=lengths)
            states = states if isinstance(states, tuple) else (states,)
            loss = (out * out).sum() + sum((s * s).sum() for s in states)
            loss.backward()
        results[which] = [out.numpy(), x.grad.numpy()] + [s.numpy() for s in states] + [
            p.grad.numpy() for p in module.parameters()]
    for a, b in zip(results["cpu"], results["simulator"]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("config", CONFIGS, ids=[id_of(c) for c in CONFIGS])
def test_optimizers_against_torch(config, dtype, rng):
    """test_optim's comparison with torch.optim, every config, on the CPU kernels."""
    optimizer_against_torch(config, dtype, rng)


def test_embedding_backward_adds_repeated_rows(rng, spread):
    weight = nr.tensor(rng.standard_normal((6, 4)), requires_grad=True)
    indices = np.array([[1, 3, 1], [5, 1, 0]])
    upstream = rng.standard_normal((2, 3, 4))
    (nr.nn.functional.embedding(nr.tensor(indices), weight) * nr.tensor(upstream)).sum().backward()
    expected = np.zeros((6, 4))
    np.add.at(expected, indices.reshape(-1), upstream.reshape(-1, 4))
    np.testing.assert_allclose(weight.grad.numpy(), expected, rtol=1e-14)


def test_a_model_trains_on_the_cpu(rng):
    """Embedding, LSTM, Linear, cross entropy and Adam: the loss of a fixed batch falls."""
    nr.manual_seed(0)
    embed, lstm, head = nr.nn.Embedding(7, 5), nr.LSTM(5, 8, batch_first=True), nr.nn.Linear(8, 7)
    params = list(embed.parameters()) + list(lstm.parameters()) + list(head.parameters())
    opt = nr.optim.Adam(params, lr=0.05)
    tokens = nr.tensor(rng.integers(0, 7, (4, 6)))
    targets_ = nr.tensor(rng.integers(0, 7, (4 * 6,)))
    losses = []
    for _ in range(30):
        opt.zero_grad()
        out, _ = lstm(embed(tokens))
        loss = nr.nn.functional.cross_entropy(head(out).reshape(-1, 7), targets_)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


def test_forcing_the_gpu_only_path_on_the_cpu_is_refused(rng):
    """The CPU has the plain path and the region ("persistent", test_cpu_region.py), no
    fused kernel."""
    layer = nr.LSTM(3, 4)
    x = nr.tensor(rng.standard_normal((2, 1, 3)).astype("float32"))
    with recurrent.force_path("fused"), pytest.raises(ValueError, match="the CPU path"):
        layer(x)
    outputs = []
    for path in ("plain", "persistent"):
        with recurrent.force_path(path):
            outputs.append(layer(x)[0].numpy())
    np.testing.assert_allclose(outputs[0], outputs[1], rtol=1e-5, atol=1e-6)


def test_backend_switching_is_checked_and_per_thread():
    import threading

    with pytest.raises(ValueError, match="backend: expected one of"):
        with backend.use_backend("tpu"):
            pass
    with pytest.raises(ValueError, match="'cuda'"):
        backend.set_backend("cuda")
    seen = []
    thread = threading.Thread(target=lambda: seen.append(nr.backend_name()))
    thread.start()
    thread.join()
    assert nr.backend_name() == "cpu"
    assert seen == [backend.select._default]  # the fixture's switch is this thread's only
