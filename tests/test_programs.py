"""Seven small PyTorch programs of the kinds people write (tests/programs/), each run
twice: as written, with PyTorch, and with only its import lines changed to numba_rnn
(``import torch`` -> ``import numba_rnn as torch``, ``from torch.x import y`` -> ``from
numba_rnn.x import y``, ...). Both runs start from the same weights (the PyTorch run's
initial state_dict, loaded into the numba_rnn model); losses, outputs and the parameters
after the optimizer steps must agree (float32 1e-4, float64 1e-9 relative: the shared
tolerance table). Without PyTorch, the numba_rnn run alone must complete."""
import pathlib
import re

import numpy as np
import pytest

from numba_rnn.testing import assert_close

try:
    import torch
except ImportError:
    torch = None

HERE = pathlib.Path(__file__).parent / "programs"
PROGRAMS = sorted(p.stem for p in HERE.glob("*.py"))


def swap_imports(source):
    """The program with its torch imports pointed at numba_rnn; nothing else changes."""
    out = []
    for line in source.splitlines():
        line = re.sub(r"^import torch$", "import numba_rnn as torch", line)
        line = re.sub(r"^import torch\.([\w.]+) as (\w+)$", r"import numba_rnn.\1 as \2", line)
        line = re.sub(r"^from torch(\.[\w.]+)? import", r"from numba_rnn\1 import", line)
        out.append(line)
    return "\n".join(out) + "\n"


def load(name, swapped):
    path = HERE / f"{name}.py"
    source = path.read_text()
    if swapped:
        source = swap_imports(source)
    namespace = {"__name__": f"program_{name}"}
    exec(compile(source, str(path), "exec"), namespace)
    return namespace


def as_array(value):
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def test_only_import_lines_change():
    for name in PROGRAMS:
        source = (HERE / f"{name}.py").read_text()
        for before, after in zip(source.splitlines(), swap_imports(source).splitlines()):
            if before != after:
                assert before.startswith(("import torch", "from torch")), (name, before)
                assert "numba_rnn" in after and "torch" not in after.replace(
                    "as torch", ""), (name, after)
        assert "numba_rnn" not in source


@pytest.mark.skipif(torch is not None, reason="the comparison with PyTorch runs it")
@pytest.mark.parametrize("name", PROGRAMS)
def test_program_runs_on_numba_rnn(name):
    result = load(name, swapped=True)["main"](lambda model: None)
    assert result["losses"] and all(np.isfinite(result["losses"]))


@pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
@pytest.mark.parametrize("name", PROGRAMS)
def test_program_matches_pytorch(name):
    torch.manual_seed(0)
    torch.backends.cudnn.allow_tf32 = False
    start = {}

    def capture(model):
        start.update((k, v.detach().numpy().copy()) for k, v in model.state_dict().items())

    expected = load(name, swapped=False)["main"](capture)

    def restore(model):
        model.load_state_dict(start)

    result = load(name, swapped=True)["main"](restore)
    dtype = "float64" if any(v.dtype == np.float64 for v in start.values()) else "float32"
    assert set(result) == set(expected)
    for key, value in expected.items():
        ours = result[key]
        if key == "state":
            assert list(ours) == list(value), "state_dict keys and order"
            for k in value:
                assert_close(as_array(ours[k]), as_array(value[k]), dtype, f"{name} {k}")
        elif isinstance(value, list) and value and isinstance(value[0], (str, bool)):
            assert ours == value, (name, key)
        else:
            assert_close(np.asarray(as_array(ours), dtype=np.float64),
                         np.asarray(as_array(value), dtype=np.float64), dtype, f"{name} {key}")
