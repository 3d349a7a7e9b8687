"""Training end to end: a short run lowers the loss by a stated factor,
truncated BPTT cuts the graph where it should, and the training examples run as a user
runs them, print their reports, save their plots and checkpoint."""
import importlib.util

import numpy as np
import pytest

import numba_rnn as nr
from test_examples import EXAMPLES, load, run_script


def test_a_short_training_run_lowers_the_loss_fourfold():
    """Regression example's model and data, 60 Adam steps: the mean loss of the last five
    steps is at most a quarter of the first five's (on the CPU path where there is one: a
    user's training run without a GPU; the kernels' own checks are elsewhere)."""
    with nr.use_backend("cpu" if "cpu" in nr.available_backends() else nr.backend_name()):
        _short_training_run()


def _short_training_run():
    regression = load("regression")
    nr.manual_seed(0)
    rng = np.random.default_rng(0)
    model = regression.Forecaster("LSTM", 8)
    optimizer = nr.optim.Adam(model.parameters(), lr=0.02)
    losses = []
    for _ in range(60):
        x, y = regression.waves(rng, 6, 8)
        optimizer.zero_grad()
        loss = nr.nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) <= np.mean(losses[:5]) / 4, losses


def test_detach_truncates_backpropagation_between_chunks(rng):
    """The second chunk's loss reaches neither the first chunk's input nor, through the
    carried state, the parameters' first-chunk use: the gradients equal those of a run
    that starts the second chunk from the same state given as plain numbers."""
    lstm = nr.LSTM(3, 4)
    first = nr.tensor(rng.standard_normal((2, 2, 3)).astype("float32"), requires_grad=True)
    second = rng.standard_normal((2, 2, 3)).astype("float32")
    _, state = lstm(first)
    carried = tuple(s.detach() for s in state)
    assert all(s.is_leaf and not s.requires_grad for s in carried)
    output, _ = lstm(second, carried)
    output.sum().backward()
    assert first.grad is None
    truncated = {n: p.grad.numpy() for n, p in lstm.named_parameters()}
    lstm.zero_grad()
    output, _ = lstm(second, tuple(s.numpy() for s in state))
    output.sum().backward()
    for name, p in lstm.named_parameters():
        np.testing.assert_array_equal(p.grad.numpy(), truncated[name])


def _has(module):
    return importlib.util.find_spec(module) is not None


def test_adding_problem_example(tmp_path):
    out = run_script("adding_problem", "--train-steps", "3", "--batch", "8", "--no-progress",
                     "--out", str(tmp_path))
    # a script run without a GPU takes the CPU path and its sizes: T=100
    assert "mean squared error on 32 fresh sequences of 100 steps" in out, out
    assert out.startswith("adding problem on cpu") or out.startswith("adding problem on cuda")
    for cell in ("RNN", "LSTM", "GRU"):
        assert f"  {cell} " in out
    assert (tmp_path / "adding_problem.png").exists() == _has("matplotlib")


def test_regression_example(tmp_path):
    out = run_script("regression", "--train-steps", "3", "--no-progress", "--out", str(tmp_path))
    assert "LSTM  first step" in out and "GRU   first step" in out
    assert (tmp_path / "regression.png").exists() == _has("matplotlib")


def test_char_lm_example_samples_checkpoints_and_resumes(tmp_path):
    args = ["--train-steps", "2", "--sample-every", "2", "--no-progress", "--out", str(tmp_path)]
    out = run_script("char_lm", *args)
    assert "--- step 2, loss" in out and "\nShall " in out
    saved = nr.load(tmp_path / "char_lm_checkpoint.npz")
    assert saved["step"] == 2 and len(saved["losses"]) == 2
    assert "lstm.weight_hh_l0" in saved["model"] and saved["optimizer"]["state"]
    out = run_script("char_lm", *args, "--resume")
    assert "resumed from" in out and "--- step 4, loss" in out
    assert nr.load(tmp_path / "char_lm_checkpoint.npz")["step"] == 4
    assert (tmp_path / "char_lm.png").exists() == _has("matplotlib")


@pytest.mark.parametrize("name", ["adding_problem", "char_lm", "regression", "torch_interop"])
def test_examples_document_how_to_run_them(name):
    text = (EXAMPLES / f"{name}.py").read_text()
    assert f"python examples/{name}.py" in text and "--full" in text
