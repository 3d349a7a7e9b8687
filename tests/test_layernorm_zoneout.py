"""Issue 16: the layer-normalized LSTM and GRU, zoneout and DropConnect on W_hh, through
the time loop and the layers, against the NumPy reference (itself held against PyTorch
autograd in test_reference_extensions.py) and float64 finite differences through the
very same kernels, training-mode masks included."""
import numpy as np
import pytest

import numba_rnn as nr
from numba_rnn import recurrent, reference
from numba_rnn.kernels import CELLS
from numba_rnn.kernels.norm import ROW_THREADS
from numba_rnn.testing import assert_close, reference_results, to_numpy
from oracles import (assert_matches, call, directional_check, directional_gradcheck,
                     gradcheck, loss_of, make_problem, named_leaves)

LN_MODES = ["ln_lstm", "ln_gru"]
PLAIN_MODES = ["lstm", "gru", "rnn_tanh", "rnn_relu"]
#: the reference's parameter order, as LayerParams fields
REFERENCE_FIELDS = {
    "ln_lstm": ("w_ih", "w_hh", "b_ih", "gamma_ih", "gamma_hh", "gamma_c", "beta_c"),
    "ln_gru": ("w_ih", "w_hh", "b_ih", "b_hh", "gamma_ih", "gamma_hh"),
}


def random_layers(rng, cell, inputs, hidden, num_layers, num_dirs, dtype):
    """LayerParams per layer and direction, gains and shifts away from their 1 and 0."""
    gates = cell.num_gates * hidden
    layers = []
    for k in range(num_layers):
        directions = []
        for _ in range(num_dirs):
            width = inputs if k == 0 else hidden * num_dirs
            values = [rng.uniform(-0.6, 0.6, shape).astype(dtype)
                      for shape in ((gates, width), (gates, hidden), (gates,), (gates,))]
            extra = {}
            if cell.norm is not None:
                extra = dict(gamma_ih=rng.uniform(0.5, 1.5, gates).astype(dtype),
                             gamma_hh=rng.uniform(0.5, 1.5, gates).astype(dtype))
                if cell.norm.state_norm:
                    values[3] = np.zeros(gates, dtype)  # one bias, with the input's norm
                    extra.update(gamma_c=rng.uniform(0.5, 1.5, hidden).astype(dtype),
                                 beta_c=rng.uniform(-0.5, 0.5, hidden).astype(dtype))
            directions.append(recurrent.LayerParams(*values, **extra))
        layers.append(directions)
    return layers


def run_against_reference(rng, mode, dtype, zoneout=0.0, weight_dropout=0.0, training=True,
                          lengths=(3, 1, 2), hidden=5, num_layers=2, num_dirs=2):
    """recurrent.stack_forward/backward against reference.stack_forward/backward with the
    very masks the time loop drew (read from its cache), gradients arriving at the output
    and every final state."""
    cell = CELLS[mode]
    steps, batch, inputs = 3, len(lengths), 3
    layers = random_layers(rng, cell, inputs, hidden, num_layers, num_dirs, dtype)
    x = rng.standard_normal((steps, batch, inputs)).astype(dtype)
    shape = (num_layers * num_dirs, batch, hidden)
    states0 = tuple(rng.standard_normal(shape).astype(dtype) for _ in range(cell.num_states))
    doutput = rng.standard_normal((steps, batch, num_dirs * hidden)).astype(dtype)
    dstates_n = tuple(rng.standard_normal(shape).astype(dtype) for _ in range(cell.num_states))
    drawn = []

    def draw(shape, dtype):
        drawn.append(rng.random(shape).astype(dtype))
        return drawn[-1]

    output, states_n, cache = recurrent.stack_forward(
        cell, x, states0, layers, lengths=list(lengths), zoneout=zoneout,
        weight_dropout=weight_dropout, draw=draw if training else None)
    dx, dstates0, grads = recurrent.stack_backward(cell, cache, layers, doutput, dstates_n)
    if training and (zoneout or weight_dropout):
        assert drawn, "training drew no mask"
    zo = None
    if zoneout:
        zo = [[tuple(z[:, :, s * hidden:(s + 1) * hidden] for s in range(cell.num_states))
               for z in per_layer] for per_layer in cache.zoneout]
        if training:  # a 0/1 mask, keeping about a fraction p
            values = np.concatenate([z.ravel() for per_layer in cache.zoneout
                                     for z in per_layer])
            assert set(np.unique(values)) <= {0.0, 1.0}
        else:
            assert all((z == dtype_type(dtype)(zoneout)).all() for per_layer in cache.zoneout
                       for z in per_layer)
    weight_masks = cache.weight_masks if weight_dropout and training else None
    if not training:
        assert all(m is None for per_layer in cache.weight_masks for m in per_layer)
    fields = REFERENCE_FIELDS.get(mode, recurrent.LayerParams._fields[:4])
    ref_layers = [[tuple(getattr(p, f) for f in fields) for p in directions]
                  for directions in layers]
    ref_output, ref_states_n, ref_cache = reference.stack_forward(
        mode, x, states0, ref_layers, lengths=list(lengths), zoneout=zo,
        weight_masks=weight_masks)
    ref_dx, ref_dstates0, ref_grads = reference.stack_backward(mode, doutput, dstates_n,
                                                               ref_cache)
    assert_close(output, ref_output, dtype, "output")
    assert_close(dx, ref_dx, dtype, "dx")
    for s in range(cell.num_states):
        assert_close(states_n[s], ref_states_n[s], dtype, f"state {s} final")
        assert_close(dstates0[s], ref_dstates0[s], dtype, f"d state {s} initial")
    for k in range(num_layers):
        for d in range(num_dirs):
            for field, ref_grad in zip(fields, ref_grads[k][d]):
                assert_close(getattr(grads[k][d], field), ref_grad, dtype,
                             f"d {field} layer {k} direction {d}")
    return cache


def dtype_type(dtype):
    return np.dtype(dtype).type


# ------------------------------------------------------------------ the time loop
@pytest.mark.parametrize("regularizer", ["none", "both", "eval"])
@pytest.mark.parametrize("mode", LN_MODES)
def test_layer_norm_time_loop_matches_reference(rng, mode, regularizer):
    """Two layers, two directions, variable lengths, float64, a hidden size past the
    block's threads (the row loops stride)."""
    zoneout = 0.4 if regularizer in ("zoneout", "both", "eval") else 0.0
    weight_dropout = 0.3 if regularizer in ("weight_dropout", "both", "eval") else 0.0
    run_against_reference(rng, mode, "float64", zoneout, weight_dropout,
                          training=regularizer != "eval", hidden=ROW_THREADS + 3)


@pytest.mark.parametrize("mode", LN_MODES)
def test_layer_norm_time_loop_float32(rng, mode):
    run_against_reference(rng, mode, "float32", 0.3, 0.3, lengths=(3, 3), num_layers=1)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("mode", PLAIN_MODES)
def test_zoneout_and_weight_dropout_match_reference(rng, mode, training):
    run_against_reference(rng, mode, "float64", 0.4, 0.3, training=training)


def test_zoneout_float32(rng):
    run_against_reference(rng, "lstm", "float32", 0.3, 0.3, lengths=(3, 3), num_layers=1)


def test_masks_are_new_each_call_and_the_seed_reproduces_them(rng):
    cell = CELLS["lstm"]
    layers = random_layers(rng, cell, 2, 3, 1, 1, "float64")
    x = rng.standard_normal((4, 2, 2))
    states0 = (np.zeros((1, 2, 3)),) * 2

    def masks():
        _, _, cache = recurrent.stack_forward(cell, x, states0, layers, zoneout=0.5,
                                              weight_dropout=0.5,
                                              draw=nr.random.device_uniform)
        return to_numpy(cache.zoneout[0][0]), to_numpy(cache.weight_masks[0][0])

    nr.manual_seed(3)
    first, second = masks(), masks()
    nr.manual_seed(3)
    again = masks()
    assert not np.array_equal(first[0], second[0]) and not np.array_equal(first[1], second[1])
    assert np.array_equal(first[0], again[0]) and np.array_equal(first[1], again[1])
    # DropConnect: zeros or 1/(1 - p); zoneout: zeros or ones
    assert set(np.unique(first[1])) <= {0.0, 2.0} and set(np.unique(first[0])) <= {0.0, 1.0}


# --------------------------------------------------------------------- the layers
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("mode", LN_MODES)
def test_layer_norm_layers_match_reference(rng, mode, dtype):
    problem = make_problem(rng, mode, 3, 2, 3, 4, 2, dtype, bidirectional=True,
                           lengths=[3, 2])
    layer = problem[0]
    for name, p in layer.named_parameters():  # gains and shifts away from 1 and 0
        if name.startswith(("gamma", "beta", "bias")):
            p.data.uniform_(0.5, 1.5)
    assert_matches(reference_results(*problem), *problem)


@pytest.mark.parametrize("layout", ["batch_first", "no_states", "unbatched", "no_bias"])
def test_layer_norm_layouts_match_reference(rng, layout):
    for mode in LN_MODES:
        problem = make_problem(rng, mode, 3, 2, 3, 4, 1, "float64",
                               batch_first=layout == "batch_first",
                               with_states=layout != "no_states",
                               unbatched=layout == "unbatched", bias=layout != "no_bias")
        assert_matches(reference_results(*problem), *problem)


@pytest.mark.parametrize("mode", LN_MODES + ["lstm", "gru"])
def test_eval_zoneout_layers_match_reference(rng, mode):
    problem = make_problem(rng, mode, 3, 2, 2, 3, 1, "float64", lengths=[3, 1],
                           zoneout=0.3, weight_dropout=0.5)
    problem[0].eval()  # zoneout by its expectation, W_hh as it is
    assert_matches(reference_results(*problem), *problem)


@pytest.mark.parametrize("mode", LN_MODES)
def test_layer_norm_finite_differences(rng, mode):
    """Central differences in float64 through the kernels, with lengths: element by
    element for the state norm's gain and shift, along a random direction for every
    leaf (the reference tests check each element against the reference)."""
    layer, x, states, upstream, lengths = make_problem(rng, mode, 3, 2, 2, 3, 1, "float64",
                                                       lengths=[3, 2])
    for name, p in layer.named_parameters():
        if name.startswith(("gamma", "beta")):
            p.data.uniform_(0.5, 1.5)
    leaves = named_leaves(layer, x, states)

    def loss():
        return loss_of(layer, x, states, upstream, lengths)

    if mode == "ln_lstm":
        gradcheck(loss, {n: t for n, t in leaves.items() if n.startswith(("gamma_c", "beta"))})
    for leaf in leaves.values():
        leaf.grad = None
    directional_check(layer, x, states, upstream, lengths)


@pytest.mark.parametrize("mode", ["ln_lstm", "ln_gru", "lstm", "gru", "rnn_tanh"])
def test_training_masks_are_the_ones_backward_uses(rng, mode):
    """In training, a reseeded forward draws the same zoneout and DropConnect masks:
    central differences of those forwards agree with the gradient of one of them only
    if backward used the masks its forward drew (and W_hh's gradient went through the
    DropConnect mask)."""
    layer, x, states, upstream, _ = make_problem(rng, mode, 3, 2, 2, 3, 1, "float64",
                                                 zoneout=0.5, weight_dropout=0.4)
    layer.train()

    def loss():
        nr.manual_seed(11)
        return loss_of(layer, x, states, upstream)

    loss().backward()
    leaves = named_leaves(layer, x, states)
    directional_gradcheck(lambda: loss().item(), {n: t._array for n, t in leaves.items()},
                          {n: t.grad for n, t in leaves.items()}, rng)
    # the masks are live: another seed gives another loss
    nr.manual_seed(12)
    assert loss_of(layer, x, states, upstream).item() != loss().item()


def test_zoneout_one_keeps_the_states_and_dropconnect_one_cuts_w_hh(rng):
    layer, x, states, upstream, _ = make_problem(rng, "lstm", 3, 2, 2, 3, 1, "float64",
                                                 zoneout=1.0)
    output, (h_n, c_n) = call(layer, x, states)
    for t in range(3):
        assert_close(output[t], states[0][0], "float64", f"h at step {t}")
    assert_close(c_n, states[1], "float64", "c_n")
    layer = nr.GRU(2, 3, weight_dropout=1.0, dtype="float64")
    out, _ = layer(x)
    out.sum().backward()
    assert np.all(to_numpy(layer.weight_hh_l0.grad) == 0.0)
    assert np.any(to_numpy(layer.weight_ih_l0.grad) != 0.0)


# ------------------------------------------------------------------------ the cells
@pytest.mark.parametrize("mode", LN_MODES)
def test_layer_norm_cells_match_reference_steps(rng, mode):
    cell_class = {"ln_lstm": nr.LayerNormLSTMCell, "ln_gru": nr.LayerNormGRUCell}[mode]
    cell = cell_class(3, 4, dtype="float64")
    for name, p in cell.named_parameters():
        if name.startswith(("gamma", "beta", "bias")):
            p.data.uniform_(0.5, 1.5)
    x = nr.tensor(rng.standard_normal((2, 3)), requires_grad=True)
    states = [nr.tensor(rng.standard_normal((2, 4)), requires_grad=True)
              for _ in range(CELLS[mode].num_states)]
    result = cell(x, tuple(states) if len(states) > 1 else states[0])
    result = result if isinstance(result, tuple) else (result,)
    upstream = [rng.standard_normal((2, 4)) for _ in result]
    sum(((r * nr.tensor(u)).sum() for r, u in zip(result, upstream)), nr.tensor(0.0)).backward()
    kinds = REFERENCE_KINDS[mode]
    params = tuple(getattr(cell, kind).numpy() for kind in kinds)
    forward, backward = reference.CELLS[mode]
    ref_states, ref_cache = forward(x.numpy(), tuple(s.numpy() for s in states), params)
    ref_dx, ref_dstates, ref_dparams = backward(tuple(upstream), ref_cache)
    for r, e in zip(result, ref_states):
        assert_close(r, e, "float64", "state")
    assert_close(x.grad, ref_dx, "float64", "dx")
    for s, e in zip(states, ref_dstates):
        assert_close(s.grad, e, "float64", "d state")
    for kind, e in zip(kinds, ref_dparams):
        assert_close(getattr(cell, kind).grad, e, "float64", f"d {kind}")


REFERENCE_KINDS = {"ln_lstm": ("weight_ih", "weight_hh", "bias", "gamma_ih", "gamma_hh",
                               "gamma_c", "beta_c"),
                   "ln_gru": ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "gamma_ih",
                              "gamma_hh")}


# --------------------------------------------------------------- parameters, API
def test_layer_norm_parameters_names_shapes_and_initial_values():
    nr.manual_seed(0)
    lstm = nr.LayerNormLSTM(3, 4, num_layers=2, bidirectional=True, forget_bias=2.5)
    names = [n for n, _ in lstm.named_parameters()]
    per = ["weight_ih", "weight_hh", "bias", "gamma_ih", "gamma_hh", "gamma_c", "beta_c"]
    assert names == [f"{kind}_l{k}{suffix}" for k in range(2) for suffix in ("", "_reverse")
                     for kind in per]
    assert lstm.weight_ih_l1.shape == (16, 8) and lstm.weight_hh_l0.shape == (16, 4)
    assert lstm.gamma_c_l0.shape == (4,) and lstm.gamma_ih_l0.shape == (16,)
    bias = lstm.bias_l0.numpy()
    assert np.all(bias[4:8] == 2.5) and np.all(bias[:4] == 0) and np.all(bias[8:] == 0)
    assert np.all(lstm.gamma_hh_l1_reverse.numpy() == 1) and np.all(lstm.beta_c_l0.numpy() == 0)
    assert np.abs(lstm.weight_hh_l0.numpy()).max() <= 0.5  # U(-1/sqrt(H), 1/sqrt(H))
    gru = nr.LayerNormGRU(3, 4, bias=False)
    assert [n for n, _ in gru.named_parameters()] == [
        "weight_ih_l0", "weight_hh_l0", "gamma_ih_l0", "gamma_hh_l0"]
    cell = nr.LayerNormLSTMCell(3, 4, forget_bias=0.5)
    assert [n for n, _ in cell.named_parameters()] == per
    # its parameter `bias` takes the name (as torch.nn.Linear's); the module still prints
    assert repr(cell) == "LayerNormLSTMCell(3, 4, forget_bias=0.5)"
    assert repr(nr.LayerNormLSTMCell(3, 4, bias=False)) == "LayerNormLSTMCell(3, 4, bias=False)"
    assert repr(nr.LayerNormLSTM(3, 4)) == "LayerNormLSTM(3, 4)"
    assert "forget_bias=2.5" in repr(lstm) and "zoneout=0.2" in repr(nr.GRU(2, 3, zoneout=0.2))
    # a state_dict round trip
    other = nr.LayerNormLSTM(3, 4, num_layers=2, bidirectional=True)
    other.load_state_dict(lstm.state_dict())
    x = np.random.default_rng(0).standard_normal((2, 1, 3)).astype(np.float32)
    assert np.array_equal(lstm(x)[0].numpy(), other(x)[0].numpy())


def test_layer_norm_packed_sequence_and_dropout_run(rng):
    lstm = nr.LayerNormLSTM(3, 4, num_layers=2, dropout=0.5, zoneout=0.1, weight_dropout=0.1)
    packed = nr.nn.utils.rnn.pack_sequence(
        [nr.tensor(rng.standard_normal((n, 3)).astype(np.float32)) for n in (3, 2)])
    output, (h_n, c_n) = lstm(packed)
    assert isinstance(output, nr.nn.utils.rnn.PackedSequence)
    padded, lengths = nr.nn.utils.rnn.pad_packed_sequence(output)
    assert padded.shape == (3, 2, 4) and lengths.tolist() == [3, 2]
    padded.sum().backward()
    assert lstm.gamma_c_l1.grad is not None and h_n.shape == (2, 2, 4)


def test_paths_fall_back_to_plain_and_forcing_another_is_refused():
    lstm, ln = CELLS["lstm"], CELLS["ln_lstm"]
    assert recurrent.choose_path(lstm, 2, 8, "float32", False, on_gpu=True, validated=True,
                                 zoneout=True) == "plain"
    assert recurrent.choose_path(ln, 2, 8, "float32", False, on_gpu=True,
                                 validated=True) == "plain"
    layer = nr.LSTM(2, 3, zoneout=0.2)
    with recurrent.force_path("fused"):
        with pytest.raises(ValueError, match="zoneout"):
            layer(np.zeros((2, 1, 2), np.float32))
    with recurrent.force_path("persistent"):
        with pytest.raises(ValueError, match="ln_gru"):
            nr.LayerNormGRU(2, 3)(np.zeros((2, 1, 2), np.float32))
    # DropConnect runs on every path: the masked W_hh is an ordinary W_hh to the kernels
    with recurrent.force_path("fused"):
        out, _ = nr.GRU(2, 3, weight_dropout=0.3)(np.ones((2, 1, 2), np.float32))
    assert np.isfinite(out.numpy()).all()


@pytest.mark.parametrize("make, error, words", [
    (lambda: nr.LSTM(2, 3, zoneout=1.5), ValueError, "zoneout"),
    (lambda: nr.GRU(2, 3, weight_dropout="0.1"), TypeError, "weight_dropout"),
    (lambda: nr.RNN(2, 3, zoneout=-0.1), ValueError, "zoneout"),
    (lambda: nr.LSTM(2, 3, proj_size=2, zoneout=0.1), ValueError, "zoneout"),
    (lambda: nr.LayerNormLSTM(2, 3, forget_bias=True), TypeError, "forget_bias"),
    (lambda: nr.LayerNormLSTM(2, 3, forget_bias=None), TypeError, "forget_bias"),
    (lambda: nr.LayerNormLSTMCell(2, 3, forget_bias=float("nan")), ValueError, "forget_bias"),
    (lambda: nr.LayerNormGRU(2, 0), ValueError, "hidden_size"),
    (lambda: nr.LayerNormLSTMCell(2, 3, dtype="int32"), TypeError, "dtype"),
])
def test_bad_arguments_are_refused(make, error, words):
    with pytest.raises(error, match=words):
        make()


def test_bad_input_to_a_layer_norm_layer_leaves_gradients_untouched():
    layer = nr.LayerNormLSTM(3, 4)
    with pytest.raises(ValueError, match="input"):
        layer(np.zeros((2, 1, 5), np.float32))
    assert all(p.grad is None for p in layer.parameters())


def test_a_module_saved_whole_before_these_options_still_loads_and_runs(tmp_path):
    """An object pickled without zoneout, weight_dropout and forget_bias (as saved by
    earlier versions) gets them as off when loaded."""
    layer = nr.LSTM(2, 3)
    state = layer.__getstate__()
    for name in ("zoneout", "weight_dropout", "forget_bias", "_has_bias"):
        state.pop(name)
    old = nr.LSTM.__new__(nr.LSTM)
    old.__setstate__(state)
    x = np.ones((2, 1, 2), np.float32)
    assert np.array_equal(old(x)[0].numpy(), layer(x)[0].numpy())
    assert repr(old) == "LSTM(2, 3)"


def test_zoneout_with_a_projection_is_refused_by_the_time_loop_too(rng):
    cell = CELLS["lstm"]
    params = recurrent.LayerParams(*(rng.standard_normal(s) for s in ((8, 2), (8, 1), (8,),
                                                                       (8,), (1, 2))))
    with pytest.raises(ValueError, match="zoneout"):
        recurrent.stack_forward(cell, rng.standard_normal((2, 1, 2)),
                                (np.zeros((1, 1, 1)), np.zeros((1, 1, 2))), [[params]],
                                zoneout=0.2)
