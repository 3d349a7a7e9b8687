"""Issue 26: the CPU path's region (kernels/region.py), one compiled parallel region for a
layer's whole time loop, held against the plain CPU path (itself held against the NumPy
reference, PyTorch and float64 finite differences in test_cpu_path.py) for every cell,
with lengths, zoneout, two directions and two layers, on one thread and on two."""
import numpy as np
import pytest

import numba_rnn as nr
from numba_rnn import backend, recurrent
from numba_rnn.kernels import CELLS, region
from numba_rnn.recurrent import Batching, LayerParams

pytestmark = pytest.mark.skipif("cpu" not in backend.available_backends(),
                                reason="the CPU path runs where there is no GPU storage")

CELL_NAMES = ["lstm", "gru", "rnn_tanh", "rnn_relu"]
TOLERANCE = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 2e-5}


@pytest.fixture(autouse=True)
def cpu():
    with backend.use_backend("cpu"):
        yield


@pytest.fixture(params=["one", "two"])
def threads(request, monkeypatch):
    """The region on one thread, or on two (one thread per multiply-add of work)."""
    if request.param == "two":
        if region.get_num_threads() < 2:
            pytest.skip("one thread only here")
        monkeypatch.setattr(region, "WORK_PER_THREAD", 1)
    return request.param


def _problem(cell, dtype, steps=4, batch=3, inputs=5, hidden=20, seed=0):
    rng = np.random.default_rng(seed)
    g = cell.num_gates
    params = LayerParams(*(0.4 * rng.standard_normal(s).astype(dtype)
                           for s in [(g * hidden, inputs), (g * hidden, hidden), (g * hidden,),
                                     (g * hidden,)]))
    x = rng.standard_normal((steps, batch, inputs)).astype(dtype)
    states = [rng.standard_normal((batch, hidden)).astype(dtype)
              for _ in range(cell.num_states)]
    return x, states, params


def _layer(cell, path, x, states, params, batching, zo=None):
    with recurrent.force_path(path):
        out, finals, cache = recurrent.layer_forward(cell, x, states, params, batching, zo)
        assert cache.path == path
        dout = np.sin(np.arange(out.size)).reshape(out.shape).astype(out.dtype)
        dfinals = [np.cos(np.arange(f.size)).reshape(f.shape).astype(f.dtype) for f in finals]
        dx, dstates, grads = recurrent.layer_backward(cell, cache, params, dout, dfinals,
                                                      batching)
    return [out, *finals, dx, *dstates, grads.w_ih, grads.w_hh, grads.b_ih, grads.b_hh]


def _assert_same(actual, expected, dtype):
    for a, e in zip(actual, expected):
        assert a.shape == e.shape and a.dtype == e.dtype
        np.testing.assert_allclose(a, e, rtol=TOLERANCE[np.dtype(dtype)],
                                   atol=TOLERANCE[np.dtype(dtype)])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", CELL_NAMES)
@pytest.mark.parametrize("case", ["full", "lengths", "zoneout"])
def test_region_equals_the_plain_path(name, dtype, case, threads):
    if threads == "two" and np.dtype(dtype) == np.float32 and name != "lstm":
        pytest.skip("two threads: every cell in float64, the LSTM in float32 too (the "
                    "suite's compile time)")
    cell = CELLS[name]
    x, states, params = _problem(cell, dtype)
    steps, batch = x.shape[:2]
    lengths = [4, 2, 3] if case == "lengths" else None
    batching = Batching(lengths, steps, batch)
    if lengths is not None:  # the layer takes a batch sorted by length, longest first
        x, states = batching.sort(x), [s[batching.order] for s in states]
    zo = None
    if case == "zoneout":
        hidden = params.w_hh.shape[1]
        zo = (np.random.default_rng(1).random((steps, batch, cell.num_states * hidden))
              < 0.5).astype(dtype)
    _assert_same(_layer(cell, "persistent", x, states, params, batching, zo),
                 _layer(cell, "plain", x, states, params, batching, zo), dtype)


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_a_bidirectional_stack_equals_the_plain_path(name, threads):
    """Two layers of two directions with lengths: the second layer's input is both
    directions' outputs, its dx reaches the first (a workspace handed back while still
    returned would show here)."""
    cell = CELLS[name]
    rng = np.random.default_rng(2)
    g, hidden, layers_count, steps, batch = cell.num_gates, 12, 2, 5, 3
    layers = [[LayerParams(*(0.4 * rng.standard_normal(s) for s in
                             [(g * hidden, 4 if k == 0 else 2 * hidden), (g * hidden, hidden),
                              (g * hidden,), (g * hidden,)])) for _ in range(2)]
              for k in range(layers_count)]
    x = rng.standard_normal((steps, batch, 4))
    states = [rng.standard_normal((4, batch, hidden)) for _ in range(cell.num_states)]
    results = {}
    for path in ("plain", "persistent"):
        with recurrent.force_path(path):
            out, finals, cache = recurrent.stack_forward(cell, x, states, layers,
                                                         lengths=[3, 5, 4])
            dout = np.sin(np.arange(out.size)).reshape(out.shape)
            dx, dstates, grads = recurrent.stack_backward(cell, cache, layers, dout,
                                                          [None] * cell.num_states)
        flat = [out, *finals, dx, *dstates]
        flat += [a for per_layer in grads for p in per_layer for a in p[:4]]
        results[path] = flat
    _assert_same(results["persistent"], results["plain"], np.float64)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_same_bits_run_to_run_and_forward_for_any_thread_count(dtype, monkeypatch):
    cell = CELLS["lstm"]
    x, states, params = _problem(cell, dtype, hidden=40)
    batching = Batching(None, *x.shape[:2])
    first = _layer(cell, "persistent", x, states, params, batching)
    again = _layer(cell, "persistent", x, states, params, batching)
    for a, b in zip(first, again):
        assert np.array_equal(a, b)
    if region.get_num_threads() >= 2:
        monkeypatch.setattr(region, "WORK_PER_THREAD", 1)
        spread = _layer(cell, "persistent", x, states, params, batching)
        # the forward's sums run over the units in order whatever the threads
        for a, b in zip(first[:3], spread[:3]):
            assert np.array_equal(a, b)


def test_the_cpu_chooses_the_region_where_it_can(monkeypatch):
    lstm = CELLS["lstm"]
    assert recurrent.choose_path(lstm, 8, 64, np.float32, False) == "persistent"
    assert recurrent.choose_path(lstm, 8, 64, np.float32, False, zoneout=True) == "persistent"
    assert recurrent.choose_path(lstm, 8, 64, np.float32, True) == "plain"
    assert recurrent.choose_path(CELLS["ln_lstm"], 8, 64, np.float32, False) == "plain"
    with recurrent.force_path("plain"):
        assert recurrent.choose_path(lstm, 8, 64, np.float32, False) == "plain"
    with recurrent.force_path("fused"), pytest.raises(ValueError, match="fused"):
        recurrent.choose_path(lstm, 8, 64, np.float32, False)
    with recurrent.force_path("persistent"), pytest.raises(ValueError, match="proj_size"):
        recurrent.choose_path(lstm, 8, 64, np.float32, True)


def test_the_thread_count_follows_the_work():
    # batch 1, H=64: 16384 multiply-adds a step, one thread's share
    assert region.threads_for(1, 64, 64, 4, np.float32) == 1
    # never more threads than vectors of units
    assert region.threads_for(64, 16, 16, 4, np.float32) == 1
    if region.get_num_threads() >= 2 and region._parallel_ok():
        assert region.threads_for(32, 128, 128, 4, np.float32) == 2


def test_set_num_threads_checks_and_limits():
    with pytest.raises(TypeError, match="count"):
        nr.set_num_threads(1.5)
    with pytest.raises(ValueError, match="count"):
        nr.set_num_threads(0)
    before = nr.get_num_threads()
    try:
        nr.set_num_threads(1)
        assert nr.get_num_threads() == 1
        assert region.threads_for(64, 512, 512, 4, np.float32) == 1
    finally:
        nr.set_num_threads(None)
    assert nr.get_num_threads() == before


def test_an_abandoned_region_reruns_on_one_thread_with_its_carries_restored():
    carry = np.arange(6.0).reshape(2, 3)
    calls = []

    def launch(serially):
        calls.append(serially)
        carry[...] += 100  # what a partial run leaves behind
        if not serially:
            raise region._Abandoned

    region._run(launch, [carry])
    assert calls == [False, True]
    np.testing.assert_array_equal(carry, np.arange(6.0).reshape(2, 3) + 100)


def test_thread_layout_round_trips_and_packs_the_weights():
    layout = region.ThreadLayout(20, 2, np.float32)
    assert layout.units == 16 and layout.counts == [16, 4]
    rng = np.random.default_rng(3)
    a = rng.standard_normal((3, 2, 4 * 20)).astype(np.float32)
    threaded = layout.to_threads(a, 4)
    assert threaded.shape == (2, 3, 2, 4 * 16)
    assert np.all(threaded[1].reshape(3, 2, 4, 16)[..., 4:] == 0)  # padding
    np.testing.assert_array_equal(layout.from_threads(threaded, 4), a)
    w_hh = rng.standard_normal((80, 20)).astype(np.float32)
    packed = layout.pack_forward(w_hh, 4, np.empty((2, 32, 64), np.float32))
    # [tid, k, g·U + u] = W_hh[g·H + tid·U + u, k]
    assert packed[1, 3, 2 * 16 + 1] == w_hh[2 * 20 + 16 + 1, 3]
    assert packed[1, 25, 0] == 0 and packed[1, 0, 2 * 16 + 5] == 0
    back = layout.pack_backward(w_hh, 4, np.empty((2, 2 * 64, 16), np.float32))
    # [tid, src·G·U + g·U + v, u] = W_hh[g·H + src·U + v, tid·U + u]
    assert back[1, 64 + 2 * 16 + 1, 2] == w_hh[2 * 20 + 16 + 1, 16 + 2]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("hidden,threads,inputs", [(20, 2, 7), (128, 2, 128), (40, 3, 33),
                                                   (16, 1, 16)])
def test_compiled_weight_layouts_match_their_definitions(dtype, hidden, threads, inputs):
    """The compiled conversions (tile transposes, row copies) against their index
    definitions written out here, padding included; the round trip of pack_rows."""
    layout = region.ThreadLayout(hidden, threads, dtype)
    n, units, gates = layout.threads, layout.units, 4
    rng = np.random.default_rng(hidden + inputs)
    w = rng.standard_normal((gates * hidden, inputs)).astype(dtype)
    w_hh = rng.standard_normal((gates * hidden, hidden)).astype(dtype)
    columns = np.full((n, inputs + 5, gates * units), np.nan, dtype)
    rows = np.full((n, gates * units, inputs + 3), np.nan, dtype)
    back = np.full((n, n * gates * units, units), np.nan, dtype)
    layout.pack_columns(w, gates, columns)
    layout.pack_rows(w, gates, rows)
    layout.pack_backward(w_hh, gates, back)
    expected_columns = np.zeros_like(columns)
    expected_rows = np.zeros_like(rows)
    expected_back = np.zeros_like(back)
    for tid in range(n):
        for g in range(gates):
            for u in range(units):
                j = tid * units + u
                if j < hidden:
                    expected_columns[tid, :inputs, g * units + u] = w[g * hidden + j]
                    expected_rows[tid, g * units + u, :inputs] = w[g * hidden + j]
                for src in range(n):
                    for v in range(units):
                        if j < hidden and src * units + v < hidden:
                            expected_back[tid, (src * gates + g) * units + v, u] = \
                                w_hh[g * hidden + src * units + v, j]
    np.testing.assert_array_equal(columns, expected_columns)
    np.testing.assert_array_equal(rows, expected_rows)
    np.testing.assert_array_equal(back, expected_back)
    np.testing.assert_array_equal(layout.unpack_rows(rows, gates, inputs), w)
