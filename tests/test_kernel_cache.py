"""The CPU kernels' disk cache (numba_rnn/kernels/cache.py): a second process loads what
the first compiled, a changed callee is compiled again (never served stale), and a
folder that cannot be used leaves the kernels compiling as before."""
import importlib.util
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from numba_rnn.kernels import cache, registry, targets

ROOT = Path(__file__).resolve().parent.parent

# An LSTM forward and backward in a new process, on the plain path and on the region
# (kernels/region.py): its outputs, and how many of the step kernels' and the regions'
# compilations were loaded from disk (hits) and compiled (misses).
_PROCESS = """
import numpy as np, numba_rnn as nr
from numba_rnn import recurrent
from numba_rnn.kernels.steps import step_kernels
from numba_rnn.kernels.region import region_kernels
from numba_rnn.kernels import CELLS
nr.manual_seed(0)
layer = nr.LSTM(3, 4)
x = nr.tensor(np.linspace(-1, 1, 2 * 2 * 3).reshape(2, 2, 3).astype("float32"),
              requires_grad=True)
results = []
for path in ("plain", "persistent"):
    with recurrent.force_path(path):
        x.grad = None
        out, _ = layer(x)
        out.sum().backward()
    results += [repr(round(float(out.sum().item()), 5)), repr(round(float(x.grad.sum().item()), 5))]
kernels = step_kernels(CELLS["lstm"], "float32")
compiled = region_kernels(CELLS["lstm"], "float32").compiled
stats = [k.serial().stats for k in (kernels.forward, kernels.backward)]
stats += [compiled[name].stats for name in ("forward_serial", "backward_serial")]
print(sum(sum(s.cache_hits.values()) for s in stats),
      sum(sum(s.cache_misses.values()) for s in stats), *results)
"""


def _run(folder):
    environment = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    environment.update(NUMBA_RNN_CACHE_DIR=str(folder), NUMBA_RNN_BACKEND="cpu",
                       PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", _PROCESS], env=environment,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    hits, misses, *results = done.stdout.split()
    return (int(hits), int(misses), *results)


def test_a_second_process_loads_the_kernels_instead_of_compiling(tmp_path):
    first = _run(tmp_path)
    second = _run(tmp_path)
    assert first[:2] == (0, 4), first  # compiled, and written
    assert second[:2] == (4, 0), second  # loaded: nothing compiled
    assert first[2:4] == first[4:6]  # the region computes what the plain path does
    assert second[2:] == first[2:]  # the same numbers


def _unit_module(folder, body):
    """A module (a new one each call) whose unit function ``unit`` returns ``body``."""
    path = folder / "unit_functions.py"
    path.write_text(f"def unit(x):\n    return {body}\n")
    spec = importlib.util.spec_from_file_location(f"unit_functions_{len(body)}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _kernel(module):
    unit = targets.device(targets.CPU)(module.unit)

    def fill_item(k, out):
        if k < out.shape[0]:
            out[k] = unit(out[k])

    return targets.grid_kernel(fill_item, targets.CPU)


def _misses(kernel):
    return sum(kernel.serial().stats.cache_misses.values())


def test_a_changed_unit_function_is_compiled_again(tmp_path, monkeypatch):
    """Numba's own cache keys a function by its file and bytecode, not its callees':
    the wrapper here is the same text both times, only the unit function it calls
    changes, and the cache must not serve the first compilation for it."""
    monkeypatch.setenv("NUMBA_RNN_CACHE_DIR", str(tmp_path / "cache"))
    out = np.zeros(3)
    first = _kernel(_unit_module(tmp_path, "x + 1.0"))
    first(3, out)
    assert _misses(first) == 1 and out.tolist() == [1.0] * 3

    again = _kernel(_unit_module(tmp_path, "x + 1.0"))  # same code: loaded from disk
    again(3, out)
    assert _misses(again) == 0 and sum(again.serial().stats.cache_hits.values()) == 1
    assert out.tolist() == [2.0] * 3

    changed = _kernel(_unit_module(tmp_path, "x + 10.0"))
    changed(3, out)
    assert _misses(changed) == 1 and out.tolist() == [12.0] * 3


def test_the_key_follows_closure_values_and_callees():
    def item_of(scale):
        def item(k, out):
            out[k] = scale * k
        return item

    def key_of(scale, source="source", options=()):
        namespace = {"item": targets.device(targets.CPU)(item_of(scale))}
        return cache.key(source, namespace, dict(options))

    key = key_of(2.0)
    assert key == key_of(2.0)  # another closure, the same values: the same key
    assert key != key_of(3.0) and key != key_of(np.float32(2))
    assert key != key_of(2.0, "source 2") and key != key_of(2.0, options={"f": {}})
    with pytest.raises(cache.Uncacheable):
        cache.key("source", {"item": object()}, {})


@pytest.mark.parametrize("unusable", ["under a file", "off"])
def test_an_unusable_folder_leaves_the_kernels_compiling(tmp_path, monkeypatch, unusable):
    blocker = tmp_path / "a file"
    blocker.write_text("")
    folder = str(blocker / "cache") if unusable == "under a file" else ""
    monkeypatch.setenv("NUMBA_RNN_CACHE_DIR", folder)
    monkeypatch.setattr(cache, "_warned", False)
    out = np.zeros(2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            _kernel(_unit_module(tmp_path, "x + 4.0"))(2, out)
    assert out.tolist() == [8.0, 8.0]
    warned = [w for w in caught if "disk cache" in str(w.message)]
    assert len(warned) == (unusable == "under a file")  # one, however many kernels


def test_every_cpu_kernel_of_the_package_can_be_cached(monkeypatch):
    """Every factory's CPU kernels reach only values the key can tell (a function,
    constant or type it cannot would silently compile without the cache)."""
    keyed = []

    def load(name, source, namespace, functions):
        keyed.append(cache.key(source, namespace, functions))  # raises Uncacheable
        return None

    monkeypatch.setattr(cache, "load", load)
    for cached, domain in registry._factories:
        for args in domain():
            cached.__wrapped__(*args, target=targets.CPU)  # a fresh build, not compiled
    assert len(keyed) > 30 and len(set(keyed)) == len(keyed)


def test_a_callee_in_another_module_file_changes_its_callers_key():
    """A cached caller's environment names the module file of each function it calls;
    the module's name hashes its source text (comments too) while a function's
    fingerprint reads its code: a callee that moved to a new module file (a comment
    changed) must change the caller's key, or the caller's cache entry would name a
    module that this process never made (ModuleNotFoundError on load)."""
    def callee(x):
        return x + 1

    def other(x):
        return x + 1

    callee.__module__ = cache._MODULE_PREFIX + "callee_aaaa"
    other.__module__ = cache._MODULE_PREFIX + "callee_bbbb"
    other.__qualname__ = callee.__qualname__
    other.__code__ = callee.__code__
    assert cache.fingerprint(callee) != cache.fingerprint(other)
    plain = [lambda x: x + 1, lambda x: x + 1]
    plain[1].__module__ = "somewhere_else"  # an ordinary module's name is not part of it
    assert cache.fingerprint(plain[0]) == cache.fingerprint(plain[1])
