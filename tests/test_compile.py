"""Every kernel compiled for real GPUs (sm_80 and sm_90) with NVVM and linked with
nvJitLink, on a machine without a GPU, with the argument types the test session really
launched it with; then checked: it compiles and links, a step kernel neither spills nor
uses local memory, a float32 kernel has no float64 instruction, and a persistent kernel
keeps one block per SM resident with the most shared memory its plan may ask.

conftest.py records every launch of the session and runs this file last;
``compile.exercise()`` launches every kernel once more, so that the file also stands
alone. The compiling runs in subprocesses with NUMBA_RNN_COMPILE_ONLY=1 (Numba is the
simulator or the real target per process). Without the compile extra (libNVVM,
nvJitLink, libcudadevrt) the tests skip, except under .ci/run, where they fail.
"""
import json
from pathlib import Path

import numpy as np
import pytest

from numba_rnn import backend, recurrent
from numba_rnn.backend import cuda
from numba_rnn.kernels import compile as kernels_compile
from numba_rnn.kernels import registry
from oracles import skip_or_fail

PACKAGE = Path(kernels_compile.__file__).resolve().parent.parent
REPORT = PACKAGE.parent / "benchmarks" / "results" / "kernels" / "kernels.json"


@pytest.fixture(scope="module")
def record(launch_record):
    kernels_compile.exercise()
    return launch_record


@pytest.fixture(scope="module")
def results(record):
    try:
        return kernels_compile.run_compiler(kernels_compile.jobs(record))
    except kernels_compile.CompilerUnavailable as exc:
        skip_or_fail(f"no CUDA compiler toolchain (pip install -e '.[compile]'): {exc}")


def test_every_kernel_is_launched_so_its_signature_is_known(record):
    missing = set(registry.all_kernels()) - set(record.signatures)
    assert not missing, f"kernels no test launched, so never compile-checked: {missing}"


def test_a_kernel_outside_the_registry_cannot_launch_unnoticed(record):
    """Every launch goes through backend.launch_grid, whose recorder (installed for the
    whole session by conftest.py) refuses a kernel that the registry does not know and
    so could not compile-check: a bare @cuda.jit kernel fails whichever test runs it."""
    @cuda.jit
    def bare(out):
        out[0] = 1

    with pytest.raises(RuntimeError, match="not registered"):
        backend.launch(bare, 1, np.zeros(1))


def test_declared_signatures_are_the_launched_ones(record):
    """recurrent.kernel_signatures sizes the fused and persistent kernels before they
    launch: they must be the types the time loop launches them with."""
    for dtype in ("float32", "float64"):
        for field, signature in recurrent.kernel_signatures(dtype).items():
            expected = tuple(registry.describe_type(t) for t in signature)
            launched = {s for recipe, signatures in record.signatures.items()
                        if recipe.field == field and ("dtype", dtype) in recipe.args
                        for s in signatures}
            assert launched == {expected}, (field, dtype, launched)


def test_every_kernel_compiles_and_links_for_sm80_and_sm90(record, results):
    compiled = {(tuple(r["recipe"][:2]) + (json.dumps(r["recipe"][2]), r["recipe"][3],
                 json.dumps(r["signature"]), r["target"])) for r in results}
    for recipe, signatures in record.signatures.items():
        for signature in signatures:
            for target in kernels_compile.TARGETS:
                key = (recipe.module, recipe.function, json.dumps(recipe.args), recipe.field,
                       json.dumps(signature), target)
                assert key in compiled, key
    problems = kernels_compile.problems(results)
    assert not problems, "\n".join(problems)


def test_the_flag_handoffs_spin_reloads_the_counter(results):
    """The _flags persistent kernels have one spin each (the handoff's wait), and every
    turn of it loads the counter again; the grid-barrier kernels have none."""
    persistent = [r for r in results if r["path"] == "persistent" and "error" not in r]
    assert persistent
    for r in persistent:
        flags = r["kernel"].endswith("_flags")
        assert (r["spins"], r["stale_spins"]) == ((1, 0) if flags else (0, 0)), r


_SPIN = """
    atom.global.add.u32 %r1, [%rd1], 1;
    {load}
    setp.le.s64 %p1, %rd2, %rd3;
    @%p1 bra $L__BB0_2;
$L__BB0_1:
    mov.u32 %r3, 64;
    nanosleep.u32 %r3;
    {again}
    setp.gt.s64 %p2, %rd2, %rd3;
    @%p2 bra $L__BB0_1;
$L__BB0_2:
    bar.sync 0;
"""


def test_spin_check_on_ptx():
    """A wait whose loop loads the counter again passes; one whose load was hoisted
    before the loop (what NVVM did with numba-cuda's ld.global.cv) is stale."""
    fresh = _SPIN.format(load="ld.acquire.gpu.b32 %r2, [%rd1];",
                         again="ld.acquire.gpu.b32 %r4, [%rd1];")
    hoisted = _SPIN.format(load="ld.global.cv.b32 %r2, [%rd1];", again="")
    atomic = _SPIN.format(load="", again="atom.global.add.u32 %r4, [%rd1], 0;")
    assert kernels_compile._spins(fresh) == (1, 0)
    assert kernels_compile._spins(atomic) == (1, 0)
    assert kernels_compile._spins(hoisted) == (1, 1)
    assert kernels_compile._spins("nanosleep.u32 %r1;\n    ret;") == (0, 0)


def test_the_float64_check_sees_real_ptx(results):
    """Every float64 step kernel computes in float64, so the detector that keeps float32
    kernels clean finds instructions in them: it reads the PTX that is compiled."""
    step = [r for r in results if r["path"] != "-" and "error" not in r]
    assert step and all(r["float64_instructions"] > 0 for r in step if r["dtype"] == "float64")


def test_the_report_in_the_repository_is_current(results):
    """benchmarks/results/kernels/ has a row for every kernel, path, dtype and target
    compiled now (python -m numba_rnn.kernels.report rewrites it)."""
    report = json.loads(REPORT.read_text())
    rows = {(r["kernel"], r["cell"], r["path"], r["dtype"], r["target"]) for r in report["rows"]}
    now = {(r["kernel"], r["cell"], r["path"], r["dtype"], r["target"]) for r in results}
    assert now <= rows, now - rows


# ------------------------------------------------------------ the checks themselves
def _result(**fields):
    base = {"kernel": "forward", "cell": "lstm", "path": "plain", "dtype": "float32",
            "target": "sm_90", "registers": 40, "stack": 0, "static_shared": 0, "local": 0,
            "spill_stores": 0, "spill_loads": 0, "cooperative": False,
            "float64_instructions": 0}
    base.update(fields)
    return base


@pytest.mark.parametrize("fields,words", [
    ({"error": "LinkerError: undefined"}, "does not compile or link"),
    ({"spill_stores": 8, "spill_loads": 8}, "spills 8/8"),
    ({"local": 16}, "16 bytes of local memory"),
    ({"stack": 32}, "32 bytes of stack"),
    # more than the grid barrier's frame: the register rows went to memory
    ({"path": "persistent", "cooperative": True, "stack": 144}, "144 bytes of stack"),
    ({"float64_instructions": 3}, "3 float64 instructions"),
    ({"spins": 1, "stale_spins": 1}, "do not load the counter again"),
    ({"static_shared": 2048}, "2048 bytes of static shared memory"),
    ({"path": "persistent", "registers": 80, "static_shared": 228 * 1024,
      "cooperative": True, "stack": 16}, "no room for one block per SM"),
])
def test_each_check_fails_what_it_should(fields, words):
    problems = kernels_compile.problems([_result(**fields)])
    assert any(words in problem for problem in problems), problems


def test_what_passes_the_checks():
    assert kernels_compile.problems([
        _result(),
        _result(dtype="float64", float64_instructions=200),
        # a grid sync calls into libcudadevrt: its ABI frame is the one stack allowed
        _result(path="persistent", registers=80, stack=16, static_shared=1024,
                cooperative=True)]) == []


def test_occupancy_arithmetic():
    blocks = kernels_compile.blocks_per_sm
    assert blocks("sm_90", 32, 256, 0) == 8            # threads: 2048 / 256
    assert blocks("sm_90", 64, 256, 0) == 4            # registers: 65536 / (64 · 256)
    assert blocks("sm_90", 65, 256, 0) == 3            # 72 per thread, allocated per warp
    assert blocks("sm_90", 80, 256, 227 * 1024) == 1   # shared: 228 KiB an SM
    assert blocks("sm_80", 80, 256, 163 * 1024) == 1
    assert blocks("sm_80", 80, 256, 164 * 1024) == 0   # over the SM's 164 KiB with the reserve


def test_float64_instruction_count():
    ptx = """
    .reg .f64 %fd<4>;
    // add.f64 in a comment does not count
    ld.global.f32 %f1, [%rd1];
    cvt.f64.f32 %fd1, %f1;
    fma.rn.f64 %fd2, %fd1, %fd1, %fd1;
    cvt.rn.f32.f64 %f2, %fd2;
    add.f32 %f3, %f2, %f1;
    """
    assert kernels_compile._float64_instructions(ptx) == 3
