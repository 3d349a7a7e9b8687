"""The main job (`python -m numba_rnn`) and the backend's choice of device."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

import numba_rnn as nr

ROOT = Path(__file__).resolve().parent.parent


def run(args, **env):
    environment = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    environment.update(env, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, *args], env=environment, capture_output=True,
                          text=True, timeout=600)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_demo_checks_against_the_reference(dtype):
    done = run(["-m", "numba_rnn", "--dtype", dtype])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "all checks passed" in done.stdout
    for layer in ("LSTM", "GRU"):
        assert f"{layer} " in done.stdout and "[ok" in done.stdout


def test_backend_is_chosen_by_itself_and_says_so_once():
    code = "import numba_rnn as nr, numba_rnn.nn, numba_rnn.tensor; print(nr.backend_name())"
    done = run(["-c", code])
    assert done.returncode == 0, done.stderr
    name = done.stdout.strip()
    assert name in ("cuda", "simulator")
    if name == "simulator":
        assert done.stderr.count("no usable GPU") == 1, done.stderr
    else:
        assert "no usable GPU" not in done.stderr


def test_simulator_on_request_is_silent():
    done = run(["-c", "import numba_rnn as nr; print(nr.backend_name())"],
               NUMBA_ENABLE_CUDASIM="1")
    assert done.stdout.strip() == "simulator"
    assert "no usable GPU" not in done.stderr
    assert nr.backend_name() in ("cuda", "simulator")
