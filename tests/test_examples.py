"""The seeds' programs, written against numba_rnn, run as a user runs them and give
PyTorch's numbers on the same weights."""
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from numba_rnn.testing import assert_close
from oracles import import_torch

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load(name):
    """Import examples/NAME.py as a module (with examples/ importable, as when run)."""
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_script(name, *args):
    """Run ``python examples/NAME.py ARGS`` in a subprocess; returns its standard output."""
    env = dict(os.environ, PYTHONPATH=str(EXAMPLES.parent))
    done = subprocess.run([sys.executable, str(EXAMPLES / f"{name}.py"), *args], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_seed_000_runs_and_prints_the_right_shape():
    out = run_script("seed_000")
    assert out.count("output shape: (2, 2, 10)") == 2, out


def test_seed_002_runs_and_prints_every_gradient():
    out = run_script("seed_002")
    assert "Inputs Shape: (3, 2, 5)" in out
    for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
        assert f"{name} :" in out


def _torch_copy(torch, layer):
    cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[layer.mode]
    module = cls(layer.input_size, layer.hidden_size, layer.num_layers, batch_first=True)
    module.load_state_dict({k: torch.from_numpy(v) for k, v in layer.state_dict().items()})
    return module


def test_seed_000_equals_pytorch():
    torch = import_torch()
    result = load("seed_000").main()
    x = torch.tensor(result["input"].numpy())
    for key, attr in (("lstm", "lstm"), ("gru", "gru")):
        module = _torch_copy(torch, getattr(result[key], attr))
        expected, _ = module(x)
        assert_close(result[f"{key}_output"], expected, "float32", key)


def test_seed_002_equals_pytorch():
    torch = import_torch()
    result = load("seed_002").main(seed=7)
    lstm, gru = _torch_copy(torch, result["lstm"]), _torch_copy(torch, result["gru"])
    inputs, targets = torch.from_numpy(result["input"]), torch.from_numpy(result["target"])
    outputs, _ = lstm(inputs)
    loss = ((outputs - targets) ** 2).mean() / 3
    outputs, _ = gru(inputs)
    loss += ((outputs - targets) ** 2).mean() / 3
    loss.backward()
    assert_close(np.array(result["loss"].item()), loss.detach(), "float32", "loss")
    for ours, theirs in ((result["lstm"], lstm), (result["gru"], gru)):
        for (name, p), (_, q) in zip(ours.named_parameters(), theirs.named_parameters()):
            assert_close(p.grad, q.grad, "float32", name)
