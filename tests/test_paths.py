"""The fused and persistent kernels (kernels/steps.py) against the same oracles as the
plain path: the NumPy reference for outputs and every gradient, float64 finite
differences through the kernels, and PyTorch where importable. In the simulator the
persistent kernel runs with one block (its grid barrier synchronizes one block there);
a GPU run of this file covers many blocks at sizes that fill the chip."""
import numpy as np
import pytest

import numba_rnn as nr
from numba_rnn import backend, recurrent
from numba_rnn.kernels import CELLS
from numba_rnn.kernels.steps import BLOCK_THREADS, GPU_SHAPE, LANES, REGISTERS, TILE, layout
from numba_rnn.testing import reference_results
from oracles import assert_matches, directional_check, loss_of, make_problem

ON_GPU = backend.backend_name() == "cuda"
MODES = ["lstm", "gru", "rnn_tanh", "rnn_relu"]
# (steps, batch, inputs, hidden, layers, options)
CASES = [
    (4, 3, 3, 5, 1, {}),
    (3, 2, 4, 4, 2, {"bidirectional": True}),
    (5, 3, 2, 3, 1, {"lengths": [2, 5, 3]}),
    (3, 2, 3, 4, 2, {"batch_first": True, "bidirectional": True, "lengths": [3, 1]}),
]
if ON_GPU:  # many blocks, and sizes that fill the chip
    CASES += [(20, 16, 64, 256, 1, {}), (10, 32, 32, 512, 2, {"bidirectional": True,
                                                              "lengths": list(range(10, 0, -1)) * 3 + [4, 7]})]


def _problem(rng, mode, case, dtype):
    steps, batch, inputs, hidden, layers, options = case
    options = dict(options)
    lengths = options.pop("lengths", None)
    return make_problem(rng, mode, steps, batch, inputs, hidden, layers, dtype, lengths=lengths,
                        **options)


# (path, handoff of the persistent kernels)
VARIANTS = [("fused", "grid"), ("persistent", "grid"), ("persistent", "flags")]


@pytest.mark.parametrize("path,handoff", VARIANTS, ids=["fused", "persistent", "persistent-flags"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", range(len(CASES)))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_path_matches_reference(path, handoff, mode, case, dtype, rng):
    problem = _problem(rng, mode, CASES[case], dtype)
    hidden = CASES[case][3]
    plan = {"fused": recurrent.fused_plan, "persistent": recurrent.persistent_plan}[path]
    with recurrent.force_path(path), recurrent.use_handoff(handoff):
        if plan(CELLS[mode], hidden, dtype, CASES[case][1]) is None:
            with pytest.raises(ValueError, match="fit in"):
                problem[0](problem[1])   # too big for this device's shared memory: refused
            return
        assert_matches(reference_results(*problem), *problem)
    layer = problem[0]
    assert all(p == path for directions in layer.last_paths for p in directions)


@pytest.mark.parametrize("handoff", recurrent.HANDOFFS)
@pytest.mark.parametrize("path", ["fused", "persistent"])
@pytest.mark.parametrize("mode", MODES)
def test_path_finite_differences(path, mode, handoff, rng):
    """Along a random direction per input, state and parameter (the plain path's,
    element by element, are in test_gradcheck.py)."""
    if path == "fused" and handoff != "grid":
        pytest.skip("the handoff is the persistent kernels' only")
    problem = make_problem(rng, mode, 3, 3, 2, 5, 2, "float64", lengths=[3, 1, 2],
                           bidirectional=True)
    with recurrent.force_path(path), recurrent.use_handoff(handoff):
        directional_check(*problem)


def _gradients(path, handoff, steps, batch, hidden, lengths, seed, mode="lstm"):
    """Every gradient of a layer's loss on ``path`` (the same weights and data for the
    same arguments)."""
    nr.manual_seed(0)
    layer, x, states, upstream, lengths = make_problem(
        np.random.default_rng(seed), mode, steps, batch, 3, hidden, 1, "float64",
        lengths=lengths)
    with recurrent.force_path(path), recurrent.use_handoff(handoff):
        loss_of(layer, x, states, upstream, lengths).backward()
    return [x.grad.numpy()] + [p.grad.numpy() for p in layer.parameters()]


def _assert_same(gradients, expected):
    for a, b in zip(gradients, expected):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("mode", MODES)
def test_paths_agree_with_each_other(mode):
    """Same weights, same input: every path gives the plain path's numbers, with a batch
    of more rows than a tile (TILE) and fewer weight rows than warps."""
    problem = (4, TILE + 2, 2, [4, 2, 3, 1, 4, 3], 5, mode)
    plain = _gradients("plain", "grid", *problem)
    for variant in VARIANTS:
        _assert_same(_gradients(*variant, *problem), plain)


def test_dropout_between_layers_on_every_path():
    """A two-layer bidirectional GRU with dropout 0.5 between its layers, in training:
    with the same seed every path draws the same masks and gives the plain path's
    numbers, and the masks act (without dropout the gradients differ)."""
    def gradients(path, handoff, dropout=0.5):
        nr.manual_seed(3)
        layer, x, states, upstream, lengths = make_problem(
            np.random.default_rng(4), "gru", 3, 3, 3, 4, 2, "float64", lengths=[3, 1, 2],
            bidirectional=True, dropout=dropout)
        with recurrent.force_path(path), recurrent.use_handoff(handoff):
            loss_of(layer, x, states, upstream, lengths).backward()
        assert all(p == path for directions in layer.last_paths for p in directions)
        return [x.grad.numpy()] + [p.grad.numpy() for p in layer.parameters()]

    plain = gradients("plain", "grid")
    for variant in VARIANTS:
        _assert_same(gradients(*variant), plain)
    assert not np.allclose(gradients("plain", "grid", dropout=0.0)[0], plain[0])


def test_automatic_choice():
    lstm = CELLS["lstm"]
    # The simulator, a projection, or kernels not yet validated on a GPU: the plain path.
    assert recurrent.choose_path(lstm, 1, 8, "float32", False, on_gpu=False) == "plain"
    assert recurrent.choose_path(lstm, 1, 8, "float32", True, on_gpu=True, validated=True) == "plain"
    assert recurrent.choose_path(lstm, 1, 8, "float32", False, on_gpu=True, validated=False) == "plain"


def h100_limits(sms=132, max_shared=227 * 1024 - 1024):
    """A kernel's CooperativeLimits as an H100's would be: one block per SM, each with up
    to ``max_shared`` bytes of dynamic shared memory (the opt-in 227 KiB less the 1 KiB
    static section the compile report shows on sm_90), all resident at once."""
    return backend.CooperativeLimits(
        sms, max_shared, lambda shared: sms if shared <= max_shared else 0)


def fake_gpu(monkeypatch, sms=132, max_shared=227 * 1024 - 1024):
    """backend.cooperative_limits as an H100's would be (``h100_limits``)."""
    monkeypatch.setattr(backend, "cooperative_limits",
                        lambda kernel, signature, threads: h100_limits(sms, max_shared))


def _plan(cell, units, hidden, dtype, staged, on_chip=True):
    """The Plan of ``units`` per block and ``staged`` rows, its shared memory from
    steps.layout."""
    warps = BLOCK_THREADS // LANES
    size = np.dtype(dtype).itemsize
    g, registers = cell.num_gates, REGISTERS[size]
    return recurrent.Plan(units, -(-hidden // units), BLOCK_THREADS, staged,
                          layout(g * units, hidden, warps, on_chip, staged, registers)[-1] * size,
                          layout(units, g * hidden, warps, on_chip, staged, registers)[-1] * size)


def test_automatic_choice_on_a_gpu(monkeypatch):
    lstm, gru = CELLS["lstm"], CELLS["gru"]
    fake_gpu(monkeypatch)

    def choose(cell, batch, hidden, dtype="float32"):
        return recurrent.choose_path(cell, batch, hidden, dtype, False, on_gpu=True,
                                     validated=True)

    # LSTM H=2048 float32: 64 MiB of W_hh over 132 blocks is 512 KiB a block: too much
    assert recurrent.persistent_plan(lstm, 2048, "float32") is None
    assert choose(lstm, 1, 2048) == "fused" and choose(lstm, 32, 2048) == "plain"
    # H=1024: 8 units a block, 128 KiB of weights (beyond 48 KiB: the opt-in), 128 blocks
    plan = recurrent.persistent_plan(lstm, 1024, "float32", 32)
    assert plan.units == 8 and plan.blocks == 128
    assert plan == _plan(lstm, 8, 1024, "float32", plan.staged)   # as many rows as fit
    bigger = _plan(lstm, 8, 1024, "float32", plan.staged + TILE)
    assert plan.staged == 32 or max(bigger.forward_shared, bigger.backward_shared) > 226 * 1024
    # H=512: 4 units a block, 32 KiB of weights, 128 blocks, all 32 rows staged at once
    assert recurrent.persistent_plan(lstm, 512, "float32", 32) == _plan(lstm, 4, 512, "float32", 32)
    assert choose(lstm, 32, 512) == "persistent" and choose(lstm, 64, 512) == "plain"
    assert choose(gru, 8, 256) == "persistent"
    assert recurrent.persistent_plan(gru, 256, "float64", 3) == _plan(gru, 2, 256, "float64", 3)
    # the fused kernels: one block per SM too, their weights in memory
    assert recurrent.fused_plan(lstm, 2048, "float32", 8) == _plan(lstm, 16, 2048, "float32", 8,
                                                                   False)


def test_persistent_plan_needs_every_block_resident(monkeypatch):
    lstm = CELLS["lstm"]
    # Without the opt-in (48 KiB less the static KiB) H=1024 does not fit ...
    fake_gpu(monkeypatch, max_shared=47 * 1024)
    assert recurrent.persistent_plan(lstm, 1024, "float32") is None
    assert recurrent.persistent_plan(lstm, 256, "float32") == _plan(lstm, 2, 256, "float32", 1)
    # ... and a grid the device cannot hold at once is refused too
    monkeypatch.setattr(backend, "cooperative_limits", lambda k, s, t: backend.CooperativeLimits(
        132, 227 * 1024, lambda shared: 100))
    assert recurrent.persistent_plan(lstm, 512, "float32") is None
    assert recurrent.persistent_plan(lstm, 100, "float32") == _plan(lstm, 1, 100, "float32", 1)


def test_sizes_the_persistent_path_keeps_on_chip_on_an_h100():
    """Issue 11's sizes in float32 on 132 SMs with 227 KiB a block (less the 1 KiB
    static): LSTM H = 1385 and GRU H = 1600 fit, which shared memory alone cannot hold
    (its rows of 11 and 13 units do not fit without the register rows), at B = 1 and,
    fewer rows staged at a time, at B = 32."""
    limits = h100_limits()
    without_registers = dict(GPU_SHAPE, registers={4: 0, 8: 0})

    def plan(cell, hidden, batch, itemsize=4, shape=GPU_SHAPE):
        return recurrent.fit_plan(CELLS[cell].num_gates, hidden, itemsize, batch,
                                  [limits, limits], True, shape=shape)

    for cell, hidden in (("lstm", 1385), ("gru", 1600)):
        assert plan(cell, hidden, 1, shape=without_registers) is None
        one, many = plan(cell, hidden, 1), plan(cell, hidden, 32)
        assert one.staged == 1 and one.units == -(-hidden // limits.max_blocks)
        assert many is not None and 1 <= many.staged < 32
        assert max(one.forward_shared, one.backward_shared) <= limits.max_shared_bytes
    assert plan("lstm", 1500, 1) is None and plan("gru", 1700, 1) is None
    assert plan("lstm", 900, 1, itemsize=8) is not None   # float64 where it fits


@pytest.mark.parametrize("mode", ["lstm", "gru"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_register_rows_wider_than_what_registers_keep(mode, dtype, rng):
    """The first rows of a block keep their first threads·REGISTERS values of k in
    registers and the rest in shared memory: H beyond that, so that the forward's rows
    have both parts (the backward's G·H-wide rows have them at every size here)."""
    hidden = BLOCK_THREADS * REGISTERS[np.dtype(dtype).itemsize] + 3
    problem = make_problem(rng, mode, 3, 2, 3, hidden, 1, dtype, lengths=[3, 2])
    with recurrent.force_path("persistent"):
        assert_matches(reference_results(*problem), *problem)
    assert problem[0].last_paths == [["persistent"]]


def _too_big_for_persistent(dtype="float64"):
    """The smallest hidden size (a power of two) whose W_hh this device cannot keep on
    chip: 64 in the simulator's one block, about 1024 on an H100."""
    for hidden in (2 ** k for k in range(6, 14)):
        if recurrent.persistent_plan(CELLS["lstm"], hidden, dtype) is None:
            return hidden
    raise AssertionError("every size fits on chip")


def test_forced_paths_are_checked(rng):
    layer, x, states, upstream, lengths = make_problem(rng, "lstm", 2, 2, 3, 4, 1, "float32",
                                                       proj_size=2)
    with recurrent.force_path("fused"), pytest.raises(ValueError, match="proj_size"):
        layer(x)
    with pytest.raises(ValueError, match="path: expected one of"):
        with recurrent.force_path("fast"):
            pass
    big = nr.LSTM(3, _too_big_for_persistent(), dtype="float64")
    with recurrent.force_path("persistent"), pytest.raises(ValueError, match="fit in the shared"):
        big(np.zeros((2, 1, 3)))


def beyond_48_kib(plan):
    """Whether a Plan asks more dynamic shared memory than a block has without the
    opt-in, in its forward or its backward kernel (``plan.threads``, its third field,
    is the block's thread count, not a size)."""
    return max(plan.forward_shared, plan.backward_shared) > 48 * 1024


def test_the_plan_beyond_48_kib_is_its_shared_memory(monkeypatch):
    """What the GPU test below reads from the plan, on an H100's limits: float64 LSTM
    H=512 asks about 64 KiB a block (beyond 48 KiB), float32 LSTM H=256 about 8 KiB."""
    fake_gpu(monkeypatch)
    big = recurrent.persistent_plan(CELLS["lstm"], 512, "float64")
    small = recurrent.persistent_plan(CELLS["lstm"], 256, "float32")
    assert big is not None and beyond_48_kib(big), big
    assert small is not None and not beyond_48_kib(small), small


@pytest.mark.skipif(not ON_GPU, reason="beyond 48 KiB needs the opt-in of a GPU")
def test_persistent_kernel_beyond_48_kib_of_shared_memory(rng):
    """float64 LSTM H=512: 64 KiB of W_hh per block, which only the opt-in attribute
    (backend._allow_dynamic_shared) allows; the numbers must still be the reference's."""
    plan = recurrent.persistent_plan(CELLS["lstm"], 512, "float64")
    assert plan is not None and beyond_48_kib(plan), plan
    problem = make_problem(rng, "lstm", 3, 2, 8, 512, 1, "float64")
    with recurrent.force_path("persistent"):
        assert_matches(reference_results(*problem), *problem)


def test_batches_larger_than_what_is_staged_at_once(monkeypatch):
    """Where shared memory holds only TILE rows of input, the kernels go through the
    batch in several stagings; the numbers stay the plain path's."""
    lstm, hidden, batch = CELLS["lstm"], 3, 2 * TILE + 1
    problem = (3, batch, hidden, [3, 1, 2, 3, 3, 2, 1, 3, 2], 7)
    plain = _gradients("plain", "grid", *problem)
    for path, handoff in VARIANTS:
        # one block, room for TILE rows (the fused kernels keep their weights in memory)
        room = max(_plan(lstm, hidden, hidden, "float64", TILE, path != "fused")[4:])
        with monkeypatch.context() as patch:
            patch.setattr(backend, "cooperative_limits", lambda k, s, t: backend.CooperativeLimits(
                1, room, lambda shared: 1))
            plan = {"fused": recurrent.fused_plan, "persistent": recurrent.persistent_plan}[path]
            assert plan(lstm, hidden, "float64", batch).staged == TILE
            _assert_same(_gradients(path, handoff, *problem), plain)


def test_batch_sizes_reach_the_device_with_the_batching():
    """Made before the directions of a layer go to streams of their own (a copy made on
    one stream would not be ordered before the other's kernel)."""
    for lengths in (None, [3, 1, 2]):
        batching = recurrent.Batching(lengths, 3, 3)
        sizes = batching.device_batch_sizes()
        assert sizes is batching.device_batch_sizes()
        np.testing.assert_array_equal(backend.to_host(sizes), batching.batch_sizes)


def test_the_handoff_load_is_typed_with_numba_cuda_types():
    """The flag handoff's inline-PTX load (steps._load_acquire, built where Numba is the
    real CUDA target) types its argument with numba-cuda's types, ``numba.cuda.types``:
    ``numba.types`` is the CPU target's, which numba-cuda only aliases while numba is
    installed beside it. Checked in a process with the real target (compile-only)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    env.update(NUMBA_RNN_COMPILE_ONLY="1", PYTHONPATH=str(root))
    done = subprocess.run([sys.executable, "-c", "from numba_rnn.kernels import steps; "
                           "print(steps.types.__name__, steps._load_acquire.__name__)"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["numba.cuda.types", "_load_acquire"], done.stdout
