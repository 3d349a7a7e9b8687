"""Issue 28 point 3: cells from the literature built with the public cell API only
(numba_rnn/cells/mgu.py, ligru.py), each checked by ``check_cell`` (its hand-derived
backward against central differences of its own forward, on every path here) and
against a plain PyTorch loop of the paper's equations written below, forward and every
gradient, on the simulator's plain path, the CPU's plain path and its region; a cell defined in this file
(the coupled input-forget gate LSTM, two states) trains on the adding problem; and
``numba_rnn.torch.RecurrentLayer`` runs MGU inside PyTorch's autograd."""
import ast
import sys
from pathlib import Path

import numpy as np
import pytest

import numba_rnn as nr
from numba_rnn import backend, recurrent
from numba_rnn.cells import Cell, activations, device, lookup, register, unregister
from numba_rnn.cells import ligru, mgu
from numba_rnn.testing import check_cell
from oracles import import_torch
from test_cell_registration import on_path  # noqa: F401  (simulator plain, CPU plain, region)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
from adding_problem import BASELINE, adding_batch  # noqa: E402


# ------------------------------------------- a cell of this file: the CIFG LSTM
def cifg_units(dtype, target):
    """The coupled input-forget gate LSTM (Greff et al. 2017, "LSTM: A Search Space
    Odyssey"): LSTM with i = 1 − f; gates (f, g, o), states (h, c), a = gx + ĝ:
        f = σ(a_f)   g = tanh(a_g)   o = σ(a_o)
        c_t = f ⊙ c_{t-1} + (1 − f) ⊙ g      h_t = o ⊙ tanh(c_t)
    saved (f, g, o); backward recomputes c_t (zoneout may have replaced c_seq[t+1]):
        dc = dc_carry + dh ⊙ o ⊙ (1 − tanh²c_t)
        da_f = dc ⊙ (c_{t-1} − g) ⊙ f(1 − f)   da_g = dc ⊙ (1 − f) ⊙ (1 − g²)
        da_o = dh ⊙ tanh(c_t) ⊙ o(1 − o)      dc_{t-1} = dc ⊙ f,  dh_carry = 0"""
    one, sigmoid, tanh = activations(dtype, target)
    zero = one - one

    @device(target)
    def cifg_forward(t, b, j, hidden, xg, rec, b_hh, h_seq, c_seq, saved):
        f = sigmoid(xg[0] + rec[0] + b_hh[j])
        g = tanh(xg[1] + rec[1] + b_hh[hidden + j])
        o = sigmoid(xg[2] + rec[2] + b_hh[2 * hidden + j])
        c = f * c_seq[t, b, j] + (one - f) * g
        c_seq[t + 1, b, j] = c
        h_seq[t + 1, b, j] = o * tanh(c)
        saved[t, b, j] = f
        saved[t, b, hidden + j] = g
        saved[t, b, 2 * hidden + j] = o

    @device(target)
    def cifg_backward(t, b, j, hidden, dh, h_seq, c_seq, saved, dh_carry, dc_carry, dgx,
                      dgh):
        f = saved[t, b, j]
        g = saved[t, b, hidden + j]
        o = saved[t, b, 2 * hidden + j]
        c_prev = c_seq[t, b, j]
        tanh_c = tanh(f * c_prev + (one - f) * g)
        dc = dc_carry[b, j] + dh * o * (one - tanh_c * tanh_c)
        dgx[t, b, j] = dc * (c_prev - g) * f * (one - f)
        dgx[t, b, hidden + j] = dc * (one - f) * (one - g * g)
        dgx[t, b, 2 * hidden + j] = dh * tanh_c * o * (one - o)
        dc_carry[b, j] = dc * f
        dh_carry[b, j] = zero

    return cifg_forward, cifg_backward


CIFG = Cell(name="test_cifg_lstm", num_gates=3, num_states=2, saved_width=3,
            dgh_differs=False, units=cifg_units)
CELLS = (mgu.CELL, ligru.CELL, CIFG)


@pytest.fixture(scope="module", autouse=True)
def registered(launch_record):
    """The literature cells and this file's cell registered for this file's tests, then
    unregistered and their launches dropped from the session's record (the compile
    check compiles the registered cells in processes of their own, where these are not
    imported)."""
    for cell in CELLS:
        register(cell)
    yield
    names = {cell.name for cell in CELLS}
    for name in names:
        unregister(name)
    for recipe in [r for r in launch_record.signatures
                   if any(("cell", n) in (r.args or ()) for n in names)]:
        del launch_record.signatures[recipe]


# -------------------------------------------- the papers' equations in PyTorch
def torch_mgu(torch, x, h, w_ih, w_hh, b_ih, b_hh):
    """Zhou et al. 2016, the gate applied after U_n's product (as PyTorch's GRU)."""
    outputs = []
    for x_t in x:
        gx_f, gx_n = (x_t @ w_ih.T + b_ih).chunk(2, 1)
        gh_f, gh_n = (h @ w_hh.T + b_hh).chunk(2, 1)
        f = torch.sigmoid(gx_f + gh_f)
        n = torch.tanh(gx_n + f * gh_n)
        h = (1 - f) * h + f * n
        outputs.append(h)
    return torch.stack(outputs), h


def torch_ligru(torch, x, h, w_ih, w_hh, b_ih, b_hh):
    """Ravanelli et al. 2018 without the batch normalization."""
    outputs = []
    for x_t in x:
        a_z, a_h = (x_t @ w_ih.T + b_ih + h @ w_hh.T + b_hh).chunk(2, 1)
        z = torch.sigmoid(a_z)
        h = z * h + (1 - z) * torch.relu(a_h)
        outputs.append(h)
    return torch.stack(outputs), h


TORCH = {"mgu": torch_mgu, "ligru": torch_ligru}


def test_the_cells_use_only_the_public_api():
    for module in (mgu, ligru):
        tree = ast.parse(Path(module.__file__).read_text())
        imported = {n.module if isinstance(n, ast.ImportFrom) else a.name
                    for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
                    for a in n.names}
        assert imported <= {"functools", "numba_rnn.cells"}, (module.__name__, imported)
        assert lookup(module.CELL.name) is module.CELL


@pytest.mark.parametrize("module", [mgu, ligru], ids=["mgu", "ligru"])
def test_check_cell_passes(module):
    report = check_cell(module.CELL, gates=module.GATES)
    assert report.ok and {c.gate for c in report.checks} >= set(module.GATES)
    assert {(c.backend, c.path) for c in report.checks} >= {("cpu", "plain"),
                                                            ("cpu", "persistent")}


@pytest.mark.parametrize("module", [mgu, ligru], ids=["mgu", "ligru"])
def test_matches_the_papers_equations_in_pytorch(module, on_path):
    torch = import_torch()
    nr.manual_seed(5)
    rng = np.random.default_rng(5)
    layer = nr.RecurrentLayer(module.CELL.name, 3, 4, dtype="float64")
    x_np = rng.standard_normal((5, 3, 3))
    h_np = 0.5 * rng.standard_normal((1, 3, 4))
    upstream = [rng.standard_normal((5, 3, 4)), rng.standard_normal((1, 3, 4))]
    x = nr.tensor(x_np, requires_grad=True)
    h0 = nr.tensor(h_np, requires_grad=True)
    output, h_n = layer(x, h0)
    assert layer.last_paths == [[on_path]]
    ((output * nr.tensor(upstream[0])).sum() + (h_n * nr.tensor(upstream[1])).sum()).backward()

    names = ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]
    params = dict(layer.named_parameters())
    leaves = [torch.tensor(a, requires_grad=True)
              for a in [x_np, h_np[0]] + [params[n].numpy() for n in names]]
    out_t, h_t = TORCH[module.CELL.name](torch, *leaves)
    ((out_t * torch.tensor(upstream[0])).sum() + (h_t * torch.tensor(upstream[1][0])).sum()
     ).backward()
    np.testing.assert_allclose(output.numpy(), out_t.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(h_n.numpy()[0], h_t.detach().numpy(), rtol=1e-12, atol=1e-12)
    ours = [x.grad.numpy(), h0.grad.numpy()[0]] + [params[n].grad.numpy() for n in names]
    for name, a, leaf in zip(["input", "h_0"] + names, ours, leaves):
        np.testing.assert_allclose(a, leaf.grad.numpy(), rtol=1e-10, atol=1e-12,
                                   err_msg=name)


def test_a_cell_of_this_file_passes_check_cell_on_the_cpu():
    report = check_cell(CIFG, gates=("f", "g", "o"), paths=["cpu-plain", "cpu-region"])
    assert report.ok and {c.quantity for c in report.checks} >= {"dh_carry", "dc_carry"}


def test_a_cell_of_this_file_trains_on_the_adding_problem():
    """The CIFG LSTM of this file, Adam, 150 batches of 32 sequences of 8 steps:
    its error on fresh sequences ends well below the baseline of always answering the
    mean (1/6)."""
    # float64 on the CPU region: the kernels check_cell compiled for the cell above
    with backend.use_backend("cpu"), recurrent.force_path("persistent"):
        nr.manual_seed(0)
        rng = np.random.default_rng(0)
        layer = nr.RecurrentLayer(CIFG, 2, 16, dtype="float64")
        head = nr.nn.Linear(16, 1, dtype="float64")
        parameters = list(layer.parameters()) + list(head.parameters())
        optimizer = nr.optim.Adam(parameters, lr=0.02)

        def loss_of(x, y):
            output, _ = layer(nr.tensor(x, dtype="float64"))
            return ((head(output[-1]) - nr.tensor(y, dtype="float64")) ** 2).mean()

        for _ in range(150):
            x, y = adding_batch(rng, 8, 32)
            optimizer.zero_grad()
            loss_of(x, y).backward()
            optimizer.step()
        with nr.no_grad():
            final = loss_of(*adding_batch(np.random.default_rng(1), 8, 256)).item()
    assert final < BASELINE / 3, final
