"""The main job (`python -m numba_rnn`) and the backend's choice of device."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
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


def test_backend_is_chosen_by_itself():
    """A GPU where there is one; else the CPU path, silently (no simulator warning), and
    no NUMBA_ENABLE_CUDASIM left for child processes to inherit."""
    code = ("import os, numba_rnn as nr, numba_rnn.nn, numba_rnn.tensor\n"
            "print(nr.backend_name(), os.environ.get('NUMBA_ENABLE_CUDASIM'))")
    done = run(["-c", code])
    assert done.returncode == 0, done.stderr
    name, variable = done.stdout.split()
    assert name in ("cuda", "cpu") and variable == "None"
    assert "simulator" not in done.stderr and "Warning" not in done.stderr, done.stderr


@pytest.mark.parametrize("env", [{"NUMBA_ENABLE_CUDASIM": "1"},
                                 {"NUMBA_RNN_BACKEND": "simulator"}])
def test_simulator_on_request_is_silent(env):
    done = run(["-c", "import numba_rnn as nr; print(nr.backend_name(), "
                      "nr.available_backends())"], **env)
    assert done.stdout.split()[0] == "simulator", done.stderr
    assert "Warning" not in done.stderr


def test_cpu_on_request_and_bad_names_refused():
    done = run(["-c", "import numba_rnn as nr; print(nr.backend_name())"],
               NUMBA_RNN_BACKEND="cpu")
    assert done.stdout.strip() == "cpu", done.stderr
    bad = run(["-c", "import numba_rnn"], NUMBA_RNN_BACKEND="tpu")
    assert bad.returncode != 0 and "NUMBA_RNN_BACKEND: expected one of cuda, cpu, simulator, " \
        "got 'tpu'" in bad.stderr


def test_demo_on_the_simulator_when_asked():
    done = run(["-m", "numba_rnn", "--backend", "simulator"])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "on simulator" in done.stdout and "all checks passed" in done.stdout


def test_demo_takes_a_backend_this_process_cannot_switch_to(monkeypatch):
    """On a GPU machine a process's storage is CuPy's and available_backends() is
    ("cuda",): `--backend simulator` (or cpu) runs the demo in a new process with
    NUMBA_RNN_BACKEND set, instead of being refused (README, "Where it runs")."""
    from numba_rnn import __main__ as demo
    from numba_rnn import backend

    monkeypatch.setattr(backend, "available_backends", lambda: ("cuda",))
    monkeypatch.setenv("NUMBA_ENABLE_CUDASIM", "1")   # a child must choose for itself
    calls = []

    def call(command, env):
        calls.append((command, env))
        return 0

    monkeypatch.setattr(demo.subprocess, "call", call)
    assert demo.main(["--backend", "simulator", "--dtype", "float64"]) == 0
    (command, env), = calls
    assert command == [sys.executable, "-m", "numba_rnn", "--backend", "simulator",
                       "--dtype", "float64"]
    assert env["NUMBA_RNN_BACKEND"] == "simulator" and "NUMBA_ENABLE_CUDASIM" not in env


def test_demo_refuses_cuda_without_a_gpu_saying_why(monkeypatch, capsys):
    from numba_rnn import __main__ as demo
    from numba_rnn import backend

    monkeypatch.setattr(backend, "available_backends", lambda: ("cpu", "simulator"))
    with pytest.raises(SystemExit) as exited:
        demo.main(["--backend", "cuda"])
    assert exited.value.code == 2
    assert "--backend cuda: no usable GPU in this process" in capsys.readouterr().err


def test_a_gpu_without_cupy_is_named_once_with_the_wheel_to_install():
    """A machine whose driver shows an NVIDIA GPU (faked here: /proc/driver/nvidia/gpus)
    but where CuPy cannot be imported runs on the CPU path, and says so once, naming
    the CuPy wheel to install; without a GPU it stays silent (test above)."""
    code = ("import os, sys\n"
            "sys.modules['cupy'] = None\n"            # CuPy absent: its import fails
            "listdir = os.listdir\n"
            "os.listdir = lambda p='.': ['0000:3b:00.0'] if p == '/proc/driver/nvidia/gpus' "
            "else listdir(p)\n"
            "import numba_rnn as nr, numba_rnn.nn, numba_rnn.tensor\n"
            "print(nr.backend_name())\n")
    done = run(["-c", code])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "cpu"
    assert done.stderr.count("RuntimeWarning") == 1, done.stderr
    assert "an NVIDIA GPU" in done.stderr and "CuPy is not importable" in done.stderr
    assert "running on the CPU path" in done.stderr and "pip install cupy-cuda" in done.stderr


def test_the_wheel_named_follows_the_driver(monkeypatch):
    from numba_rnn import backend

    monkeypatch.setattr(backend.select, "_nvidia_gpus", lambda: ["0000:3b:00.0"])
    monkeypatch.setattr(backend.select, "_driver_cuda_major", lambda: 13)
    monkeypatch.setattr(backend.select, "_installed_cupy", lambda: ["cupy-cuda12x 13.6.0"])
    message = backend.gpu_unused_message("CuPy finds no CUDA driver or device (...)")
    assert "pip install cupy-cuda13x" in message and "the driver's CUDA is 13" in message
    assert "installed: cupy-cuda12x 13.6.0" in message
    monkeypatch.setattr(backend.select, "_driver_cuda_major", lambda: None)
    assert "cupy-cuda12x or cupy-cuda13x" in backend.gpu_unused_message("CuPy is not importable")
    monkeypatch.setattr(backend.select, "_nvidia_gpus", lambda: [])
    assert backend.gpu_unused_message("CuPy is not importable") is None


def test_compile_only_mode_builds_kernels_for_the_real_target_and_launches_none():
    code = ("import numba_rnn as nr\n"
            "from numba_rnn import backend\n"
            "from numba_rnn.kernels import registry\n"
            "kernels = registry.all_kernels()\n"
            "assert all(type(k).__name__ == 'CUDADispatcher' for k in kernels.values())\n"
            "try:\n"
            "    backend.launch(next(iter(kernels.values())), 1)\n"
            "except RuntimeError as exc:\n"
            "    print('refused:', exc)\n"
            "print(nr.backend_name(), len(kernels))\n")
    done = run(["-c", code], NUMBA_RNN_COMPILE_ONLY="1")
    assert done.returncode == 0, done.stderr
    assert "refused:" in done.stdout and "launches none" in done.stdout
    from numba_rnn.kernels import registry
    assert done.stdout.strip().endswith(f"compile-only {len(registry.all_kernels())}")
    assert "no usable GPU" not in done.stderr
    clash = run(["-c", "import numba_rnn"], NUMBA_RNN_COMPILE_ONLY="1", NUMBA_ENABLE_CUDASIM="1")
    assert clash.returncode != 0 and "NUMBA_ENABLE_CUDASIM" in clash.stderr


class _FakeStream:
    def __init__(self, log, name):
        self.log, self.name = log, name

    def record(self):
        self.log.append(("record", self.name))
        return self.name

    def wait_event(self, event):
        self.log.append(("wait", self.name, event))


def test_concurrent_streams_are_joined_even_when_the_block_raises():
    """backend.concurrently on a GPU (its CuPy streams stood in for): the main stream
    waits for every side stream after the block, also after an exception."""
    from types import SimpleNamespace

    from numba_rnn import backend

    log = []
    main = _FakeStream(log, "main")
    count = iter(range(10))
    fake = SimpleNamespace(cuda=SimpleNamespace(
        Stream=lambda non_blocking: _FakeStream(log, f"side{next(count)}"),
        get_current_stream=lambda: main))
    concurrently = backend.gpu._streams_of(fake)
    with pytest.raises(KeyError):
        with concurrently(2) as streams:
            assert [s.name for s in streams] == ["side0", "side1"]
            raise KeyError("a failure inside the block")
    assert log[-4:] == [("record", "side0"), ("wait", "main", "side0"),
                        ("record", "side1"), ("wait", "main", "side1")]
    with concurrently(2):
        pass
    assert log[-1] == ("wait", "main", "side1")   # the same two side streams, reused


def _performance_warning_classes():
    """numba-cuda's NumbaPerformanceWarning and numba's, where each exists."""
    from numba_rnn import backend
    return list(backend.base._performance_warnings())


def test_the_warning_numba_cuda_raises_is_its_own_class():
    """numba-cuda's dispatcher warns with numba.cuda.core.errors' class (read from its
    source), which is not numba.core.errors' where both exist: a filter on the latter
    alone lets the former through."""
    import importlib.util

    spec = importlib.util.find_spec("numba_cuda")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("numba-cuda is not installed as its own package here")
    source = Path(list(spec.submodule_search_locations)[0], "numba", "cuda", "dispatcher.py")
    text = source.read_text()
    assert "from numba.cuda.core import errors" in text
    assert "errors.NumbaPerformanceWarning(msg)" in text and "low occupancy" in text
    classes = _performance_warning_classes()
    assert classes[0].__module__ == "numba.cuda.core.errors"


@pytest.mark.parametrize("which", range(len(_performance_warning_classes())),
                         ids=lambda k: _performance_warning_classes()[k].__module__)
def test_low_occupancy_warnings_stay_inside(which):
    """Numba warns about grids under 128 blocks when a launch is configured; small grids
    are deliberate here, so the warning must not reach the user, whichever class raises
    it (numba-cuda's own first: the one its dispatcher really raises)."""
    import warnings

    from numba_rnn import backend

    warning = _performance_warning_classes()[which]

    class Kernel:
        def __getitem__(self, config):
            warnings.warn(warning("Grid size 1 will likely result in GPU "
                                  "under-utilization due to low occupancy."))
            return lambda *args: None

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        backend.base.configure(Kernel(), 1, 32, 0, 0)
        layer = nr.GRU(2, 3)
        layer(np.ones((2, 1, 2), "float32"))[0].sum().backward()


@pytest.mark.parametrize("requires_grad", [False, True])
def test_torch_tensors_that_require_grad_give_their_values(requires_grad):
    torch = pytest.importorskip("torch")
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() and nr.backend_name() == "cuda" else [])
    for device in devices:
        source = torch.arange(6, dtype=torch.float32, device=device).reshape(2, 3)
        source.requires_grad_(requires_grad)
        copied = nr.tensor(source)
        np.testing.assert_array_equal(copied.numpy(), np.arange(6).reshape(2, 3))
        layer = nr.LSTM(3, 2)
        output, _ = layer(source[None] * 1)       # also as a layer's input
        assert output.shape == (1, 2, 2)
