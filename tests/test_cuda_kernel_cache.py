"""The CUDA kernels' disk cache (numba_rnn/kernels/cache.py: module files named by a key,
compiled by ``cuda.jit(cache=True)``): the key follows every device function a kernel
calls, a second process with the real CUDA target loads what the first compiled, every
CUDA kernel of the package can be cached, and one that cannot compiles as before.

Loading is shown without a GPU: a NUMBA_RNN_COMPILE_ONLY=1 process runs numba-cuda's
own ``CUDADispatcher.compile`` (its disk cache's index and data files, keyed by
numba-cuda) with the three calls that need a device replaced: the current context (for
the compute capability), the codegen's "magic tuple" (CUDA runtime version and compute
capability, in numba-cuda's index key) and ``bind`` (loading the code onto the device).
What a GPU adds, loading the cached code onto it, is not shown here."""
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from numba_rnn import backend
from numba_rnn.backend import cuda
from numba_rnn.kernels import cache, registry, targets
from oracles import skip_or_fail

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(not backend.CUDA_SIMULATED,
                                reason="the simulator's kernels (a GPU runs the real ones)")


def _device_module(folder, body, name):
    """A module of its own whose device function ``scale`` returns ``body`` and whose
    ``unit`` calls it (a device function reached through another)."""
    path = folder / f"{name}.py"
    path.write_text("from numba import cuda\n\n"
                    f"@cuda.jit(device=True)\ndef scale(x):\n    return {body}\n\n"
                    "@cuda.jit(device=True)\ndef unit(x):\n    return scale(x) + 1.0\n")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _kernel_key(unit, fastmath=False):
    device = cuda.jit(device=True, fastmath=fastmath)(unit.py_func if hasattr(unit, "py_func")
                                                      else unit.fn)

    def fill(out):
        k = cuda.grid(1)
        if k < out.shape[0]:
            out[k] = device(out[k])

    source, namespace = cache.function_module(fill)
    return cache.key(source, namespace, {"fill": {"cuda.jit": {}}}), source, namespace


def test_the_key_follows_the_device_functions_a_kernel_calls(tmp_path):
    """numba-cuda's own index keys a kernel by its file, bytecode and closure, not by
    what it calls: the kernel's text is the same each time here, only a device function
    two calls down changes."""
    key, source, namespace = _kernel_key(_device_module(tmp_path, "2.0 * x", "first").unit)
    assert source.startswith("def fill(out):") and "@" not in source  # decorators gone
    assert set(namespace) == {"cuda", "device"}  # the closure's values and the globals
    same, _, _ = _kernel_key(_device_module(tmp_path, "2.0 * x", "again").unit)
    changed, _, _ = _kernel_key(_device_module(tmp_path, "3.0 * x", "changed").unit)
    fast, _, _ = _kernel_key(_device_module(tmp_path, "2.0 * x", "fast").unit, fastmath=True)
    assert key == same
    assert changed != key  # scale changed under unit, under the kernel's device function
    assert fast != key  # a device function's options are in the key too


def test_a_step_kernel_runs_from_its_module_file(tmp_path, monkeypatch):
    """The factories' kernels (generated wrappers and steps.py's closures alike) are the
    module files' functions, and a second build finds the same files."""
    from numba_rnn.kernels import CELLS, steps

    monkeypatch.setenv("NUMBA_RNN_CACHE_DIR", str(tmp_path))
    # modules an earlier test loaded from another folder (same keys) would be reused
    import sys
    for name in [m for m in sys.modules if m.startswith("numba_rnn_cached_")]:
        monkeypatch.delitem(sys.modules, name)
    kernels = steps.step_kernels.__wrapped__(CELLS["gru"], np.dtype("float64"),
                                             target=targets.CUDA)
    files = sorted(p.name for p in tmp_path.glob("numba_rnn_cached_*.py"))
    assert len(files) == len(kernels) == 8
    for name in kernels._fields:
        kernel = getattr(kernels, name)
        # the function's name: the flags variants are persistent_forward/_backward too
        assert kernel.cache_key.startswith(f"numba_rnn_cached_{name.removesuffix('_flags')}_")
        assert Path(kernel.fn.__code__.co_filename).parent == tmp_path
    again = steps.step_kernels.__wrapped__(CELLS["gru"], np.dtype("float64"),
                                           target=targets.CUDA)
    assert [k.cache_key for k in again] == [k.cache_key for k in kernels]
    assert sorted(p.name for p in tmp_path.glob("numba_rnn_cached_*.py")) == files


def test_every_cuda_kernel_of_the_package_can_be_cached(monkeypatch):
    """Every factory's CUDA kernels reach only values the key can tell; the one that is
    not built through the cache (kernels/layers.py's embedding backward, a bare
    ``cuda.jit``) is named here, so that another one shows up."""
    keyed = []

    def load_cuda(name, source, namespace, options=None):
        keyed.append((name, cache.key(source, namespace, {name: {"cuda.jit": options}})))
        return None

    monkeypatch.setattr(cache, "load_cuda", load_cuda)
    built = []
    for cached, domain in registry._factories:
        for args in domain():
            result = cached.__wrapped__(*args, target=targets.CUDA)  # fresh, not compiled
            built += [k.__name__ for k in (result if hasattr(result, "_fields") else [result])
                      if k is not None]
    names = [name for name, _ in keyed]
    assert len(set(k for _, k in keyed)) == len(keyed) > 80  # 86 today
    assert sorted(set(built) - set(names)) == ["embedding_backward"]


def test_a_kernel_the_key_cannot_tell_compiles_as_before(monkeypatch, tmp_path):
    monkeypatch.setenv("NUMBA_RNN_CACHE_DIR", str(tmp_path))
    unknown = type("Unknown", (), {"value": 5.0})()

    def fill(out):
        out[0] = unknown.value

    kernel = cache.cuda_jit(fill)
    assert not hasattr(kernel, "cache_key") and not list(tmp_path.iterdir())
    out = np.zeros(1)
    kernel[1, 1](out)
    assert out[0] == 5.0


# A process with the real CUDA target (no device): builds the LSTM step kernels (the
# plain path, a GPU's default) through the disk cache and compiles each for its launch
# signature by numba-cuda's CUDADispatcher.compile, whose disk cache loads or saves it.
_PROCESS = """
import sys
import numba
from numba_rnn.kernels import compile as kernels_compile
try:
    kernels_compile._check_toolchain()
except kernels_compile.CompilerUnavailable as exc:
    print("unavailable", exc)
    sys.exit(3)
import numba.cuda.codegen, numba.cuda.dispatcher
from numba.cuda.cudadrv import devices
cc = (9, 0)
device = kernels_compile._Device(cc)
numba.cuda.dispatcher.get_current_device = lambda: device
devices.get_context = lambda *args: type("Context", (), {"device": device})()
numba.cuda.codegen.JITCUDACodegen.magic_tuple = lambda self: ((13, 0), cc)
numba.cuda.dispatcher._Kernel.bind = lambda self: None
from numba_rnn.kernels import CELLS, cache, registry, steps, targets
kernels = steps.step_kernels(CELLS["lstm"], "float32", target=targets.CUDA)
a = lambda n: numba.types.Array(numba.float32, n, "C")
i64 = numba.int64
signatures = {"forward": (i64, i64, a(3), a(2), a(1), a(3), a(3), a(3), a(3), i64),
              "backward": (i64, i64, a(3), a(3), a(3), a(3), a(2), a(2), a(3), a(3), a(3),
                           i64)}
for name, signature in signatures.items():
    getattr(kernels, name).compile(signature)
stats = [getattr(kernels, name).stats for name in signatures]
# the real target's kernels, every factory's: none the key cannot tell
uncached = sorted({k.__name__ for cached, domain in registry._factories for args in domain()
                   for k in (lambda r: r if hasattr(r, "_fields") else [r])(
                       cached.__wrapped__(*args, target=targets.CUDA))
                   if k is not None and not hasattr(k, "cache_key")})
print(sum(sum(s.cache_hits.values()) for s in stats),
      sum(sum(s.cache_misses.values()) for s in stats), ",".join(uncached))
"""


def _run(folder):
    environment = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    environment.update(NUMBA_RNN_CACHE_DIR=str(folder), NUMBA_RNN_COMPILE_ONLY="1",
                       PYTHONPATH=str(ROOT))
    environment.pop("NUMBA_CACHE_DIR", None)
    done = subprocess.run([sys.executable, "-c", _PROCESS], env=environment,
                          capture_output=True, text=True, timeout=300)
    if done.returncode == 3:
        skip_or_fail(f"no CUDA compiler toolchain (pip install -e '.[compile]'): {done.stdout}")
    assert done.returncode == 0, done.stderr[-3000:]
    hits, misses, uncached = (done.stdout.split() + [""])[:3]
    return int(hits), int(misses), uncached


def test_a_second_process_loads_the_cuda_kernels_instead_of_compiling(tmp_path):
    first = _run(tmp_path)
    assert first == (0, 2, "embedding_backward"), first  # compiled, and saved
    index = sorted(p.name for p in (tmp_path / "__pycache__").glob("*.nbi"))
    assert len(index) == 2 and all(n.startswith("numba_rnn_cached_") for n in index), index
    assert _run(tmp_path) == (2, 0, "embedding_backward")  # loaded: nothing compiled
