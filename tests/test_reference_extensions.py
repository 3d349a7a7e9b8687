"""The NumPy reference's layer-normalised cells ("ln_lstm", "ln_gru"), zoneout and
weight-dropped (DropConnect) w_hh, held against PyTorch autograd in float64: a small
torch implementation written from the equations, stepping the whole batch through time
with per-entry activity masks rather than one sequence at a time as the reference does."""
import numpy as np
import pytest

from numba_rnn import reference
from oracles import require

#: max|actual - expected| / max(max|actual|, max|expected|), per array.
RTOL = 1e-10

NUM_STATES = {"lstm": 2, "ln_lstm": 2, "gru": 1, "ln_gru": 1, "rnn_tanh": 1}
GATES = {"lstm": 4, "ln_lstm": 4, "gru": 3, "ln_gru": 3, "rnn_tanh": 1}


@pytest.fixture(scope="module")
def torch():
    return require("torch")


def assert_rel(actual, expected, name):
    actual = np.asarray(actual, dtype=np.float64)
    expected = expected.detach().numpy() if hasattr(expected, "detach") else np.asarray(expected)
    assert actual.shape == expected.shape, (name, actual.shape, expected.shape)
    assert np.isfinite(actual).all(), name
    scale = max(np.abs(actual).max(initial=0.0), np.abs(expected).max(initial=0.0))
    error = 0.0 if scale == 0.0 else np.abs(actual - expected).max() / scale
    assert error < RTOL, (name, error)


def assert_identical(a, b, name="value"):
    """Exactly equal nested tuples/lists of arrays."""
    if isinstance(a, (tuple, list)):
        assert len(a) == len(b), name
        for j, (x, y) in enumerate(zip(a, b)):
            assert_identical(x, y, f"{name}[{j}]")
    else:
        assert np.array_equal(a, b), name


# ----------------------------------------------------------------------------------------
# The torch oracle, from the equations.

def torch_cell(torch, cell, x, states, p):
    F = torch.nn.functional
    sig, tanh = torch.sigmoid, torch.tanh

    def ln(v, gamma, beta=None):
        return F.layer_norm(v, (v.shape[-1],), gamma, beta, eps=1e-5)

    if cell in ("lstm", "ln_lstm"):
        h, c = states
        if cell == "lstm":
            w_ih, w_hh, b_ih, b_hh = p
            a = x @ w_ih.T + b_ih + h @ w_hh.T + b_hh
        else:
            w_ih, w_hh, b, g_ih, g_hh, g_c, beta_c = p
            a = ln(x @ w_ih.T, g_ih) + ln(h @ w_hh.T, g_hh) + b
        a_i, a_f, a_g, a_o = a.chunk(4, dim=-1)
        c = sig(a_f) * c + sig(a_i) * tanh(a_g)
        return sig(a_o) * tanh(c if cell == "lstm" else ln(c, g_c, beta_c)), c
    if cell in ("gru", "ln_gru"):
        (h,) = states
        if cell == "gru":
            w_ih, w_hh, b_ih, b_hh = p
            gx, gh = x @ w_ih.T + b_ih, h @ w_hh.T + b_hh
        else:
            w_ih, w_hh, b_ih, b_hh, g_ih, g_hh = p
            gx, gh = ln(x @ w_ih.T, g_ih) + b_ih, ln(h @ w_hh.T, g_hh) + b_hh
        gx_r, gx_z, gx_n = gx.chunk(3, dim=-1)
        gh_r, gh_z, gh_n = gh.chunk(3, dim=-1)
        r, z = sig(gx_r + gh_r), sig(gx_z + gh_z)
        n = tanh(gx_n + r * gh_n)
        return ((1 - z) * n + z * h,)
    assert cell == "rnn_tanh"
    (h,) = states
    w_ih, w_hh, b_ih, b_hh = p
    return (tanh(x @ w_ih.T + b_ih + h @ w_hh.T + b_hh),)


def torch_stack(torch, cell, x, states0, layers, lengths, zoneout=None, weight_masks=None,
                masks=None):
    """The whole batch through time at once: entry b is active at processed step s while
    s < lengths[b]; the reverse direction reads its input through a per-entry index map
    (original time lengths[b]-1-s) and writes its output back through the same map."""
    steps, batch, _ = x.shape
    num_dirs = len(layers[0])
    active = torch.tensor([[s < n for n in lengths] for s in range(steps)])[..., None]
    reverse = torch.tensor([[n - 1 - s if s < n else s for n in lengths]
                            for s in range(steps)])
    columns = torch.arange(batch)[None, :]
    finals = [[None] * (len(layers) * num_dirs) for _ in states0]
    inputs = x
    for k, directions in enumerate(layers):
        outputs = []
        for d, p in enumerate(directions):
            p = list(p)
            if weight_masks is not None and weight_masks[k] is not None \
                    and weight_masks[k][d] is not None:
                p[1] = p[1] * torch.from_numpy(weight_masks[k][d])
            zones = None
            if zoneout is not None and zoneout[k] is not None and zoneout[k][d] is not None:
                # steps past an entry's length are never active: what is there is not read
                zones = [None if z is None else torch.from_numpy(np.nan_to_num(z))
                         for z in zoneout[k][d]]
            index = k * num_dirs + d
            seq = inputs[reverse, columns] if d else inputs
            states = tuple(s0[index] for s0 in states0)
            outs = []
            for s in range(steps):
                new = torch_cell(torch, cell, seq[s], states, p)
                if zones is not None:
                    new = tuple(n if z is None else z[s] * prev + (1 - z[s]) * n
                                for n, prev, z in zip(new, states, zones))
                states = tuple(torch.where(active[s], n, prev) for n, prev in zip(new, states))
                outs.append(torch.where(active[s], states[0], torch.zeros_like(states[0])))
            out = torch.stack(outs)
            outputs.append(out[reverse, columns] * active if d else out)
            for j, state in enumerate(states):
                finals[j][index] = state
        inputs = torch.cat(outputs, dim=2)
        if masks is not None and masks[k] is not None:
            inputs = inputs * torch.from_numpy(masks[k])
    return inputs, tuple(torch.stack(f) for f in finals)


def torch_results(torch, cell, x, states0, layers, lengths, doutput, dstates_n, **options):
    """Output, final states and the gradients (x, states0, params per layer and
    direction) of sum(output·doutput) + Σ sum(final·dfinal), by autograd."""
    tx = torch.tensor(x, requires_grad=True)
    ts = [torch.tensor(s, requires_grad=True) for s in states0]
    tl = [[[torch.tensor(p, requires_grad=True) for p in params] for params in directions]
          for directions in layers]
    output, finals = torch_stack(torch, cell, tx, ts, tl, lengths, **options)
    loss = (output * torch.from_numpy(doutput)).sum() + sum(
        (f * torch.from_numpy(g)).sum() for f, g in zip(finals, dstates_n))
    leaves = [tx] + ts + [p for directions in tl for params in directions for p in params]
    grads = iter(torch.autograd.grad(loss, leaves))
    dx = next(grads)
    dstates0 = [next(grads) for _ in ts]
    dlayers = [[[next(grads) for _ in params] for params in directions] for directions in tl]
    return output, finals, dx, dstates0, dlayers


# ----------------------------------------------------------------------------------------
# Problems.

def cell_params(rng, cell, inputs, hidden):
    gates = GATES[cell] * hidden
    w = [rng.uniform(-0.7, 0.7, (gates, inputs)), rng.uniform(-0.7, 0.7, (gates, hidden))]
    if cell == "ln_lstm":
        return tuple(w + [rng.uniform(-0.5, 0.5, gates), rng.uniform(0.5, 1.5, gates),
                          rng.uniform(0.5, 1.5, gates), rng.uniform(0.5, 1.5, hidden),
                          rng.uniform(-0.5, 0.5, hidden)])
    biases = [rng.uniform(-0.5, 0.5, gates), rng.uniform(-0.5, 0.5, gates)]
    if cell == "ln_gru":
        return tuple(w + biases + [rng.uniform(0.5, 1.5, gates), rng.uniform(0.5, 1.5, gates)])
    return tuple(w + biases)


def stack_problem(rng, cell, steps=3, batch=3, inputs=3, hidden=4, num_layers=2, num_dirs=2):
    layers = [[cell_params(rng, cell, inputs if k == 0 else num_dirs * hidden, hidden)
               for _ in range(num_dirs)] for k in range(num_layers)]
    x = rng.standard_normal((steps, batch, inputs))
    states0 = [rng.standard_normal((num_layers * num_dirs, batch, hidden))
               for _ in range(NUM_STATES[cell])]
    doutput = rng.standard_normal((steps, batch, num_dirs * hidden))
    dstates_n = [rng.standard_normal(s.shape) for s in states0]
    return x, states0, layers, doutput, dstates_n


def make_zoneout(rng, cell, shape, lengths, num_layers, num_dirs, kind):
    """Per layer, per direction, per state a (T,B,H) array; NaN at steps s >= length_b,
    which the reference must never read."""
    def one(p):
        if kind == "bernoulli":
            z = (rng.random(shape) < p).astype(np.float64)
        else:
            z = np.full(shape, p)
        for b, n in enumerate(lengths):
            z[n:, b] = np.nan
        return z
    return [[tuple(one(rng.uniform(0.2, 0.6)) for _ in range(NUM_STATES[cell]))
             for _ in range(num_dirs)] for _ in range(num_layers)]


def make_weight_masks(rng, layers, p=0.3):
    return [[(rng.random(params[1].shape) >= p) / (1 - p) for params in directions]
            for directions in layers]


def reference_results(cell, x, states0, layers, doutput, dstates_n, **options):
    output, finals, caches = reference.stack_forward(cell, x, states0, layers, **options)
    dx, dstates0, grads = reference.stack_backward(cell, doutput, dstates_n, caches)
    return output, finals, dx, dstates0, grads


def compare(ours, theirs):
    output, finals, dx, dstates0, grads = ours
    t_output, t_finals, t_dx, t_dstates0, t_grads = theirs
    assert_rel(output, t_output, "output")
    assert len(finals) == len(t_finals) == len(dstates0) == len(t_dstates0)
    for j in range(len(finals)):
        assert_rel(finals[j], t_finals[j], f"state {j} final")
        assert_rel(dstates0[j], t_dstates0[j], f"d state {j} initial")
    assert_rel(dx, t_dx, "dx")
    for k, (directions, t_directions) in enumerate(zip(grads, t_grads)):
        for d, (params, t_params) in enumerate(zip(directions, t_directions)):
            assert len(params) == len(t_params)
            for j, (g, t_g) in enumerate(zip(params, t_params)):
                assert_rel(g, t_g, f"d param {j} layer {k} direction {d}")


# ----------------------------------------------------------------------------------------
# Single steps of the layer-normalised cells.

@pytest.mark.parametrize("cell", ["ln_lstm", "ln_gru"])
def test_ln_cell_step_matches_torch(torch, cell):
    rng = np.random.default_rng(7)
    batch, inputs, hidden = 3, 3, 5
    params = cell_params(rng, cell, inputs, hidden)
    x = rng.standard_normal((batch, inputs))
    states = tuple(rng.standard_normal((batch, hidden)) for _ in range(NUM_STATES[cell]))
    dstates = tuple(rng.standard_normal((batch, hidden)) for _ in states)

    forward, backward = reference.CELLS[cell]
    new_states, cache = forward(x, states, params)
    dx, dstates_prev, dparams = backward(dstates, cache)

    tx = torch.tensor(x, requires_grad=True)
    ts = [torch.tensor(s, requires_grad=True) for s in states]
    tp = [torch.tensor(p, requires_grad=True) for p in params]
    t_new = torch_cell(torch, cell, tx, ts, tp)
    loss = sum((n * torch.from_numpy(g)).sum() for n, g in zip(t_new, dstates))
    t_grads = torch.autograd.grad(loss, [tx] + ts + tp)

    assert len(new_states) == len(t_new) and len(dparams) == len(params)
    for j, (n, t_n) in enumerate(zip(new_states, t_new)):
        assert_rel(n, t_n, f"state {j}")
    assert_rel(dx, t_grads[0], "dx")
    for j, g in enumerate(dstates_prev):
        assert_rel(g, t_grads[1 + j], f"d state {j}")
    for j, (g, p) in enumerate(zip(dparams, params)):
        assert g.shape == p.shape
        assert_rel(g, t_grads[1 + len(states) + j], f"d param {j}")


def test_layer_norm_helpers_match_torch(torch):
    rng = np.random.default_rng(3)
    v, gamma, beta, dy = (rng.standard_normal(s) for s in ((3, 7), (7,), (7,), (3, 7)))
    y, cache = reference.layer_norm_forward(v, gamma, beta)
    dv, dgamma, dbeta = reference.layer_norm_backward(dy, cache)
    tv, tg, tb = (torch.tensor(a, requires_grad=True) for a in (v, gamma, beta))
    ty = torch.nn.functional.layer_norm(tv, (7,), tg, tb, eps=1e-5)
    grads = torch.autograd.grad((ty * torch.from_numpy(dy)).sum(), [tv, tg, tb])
    assert_rel(y, ty, "y")
    for name, ours, theirs in zip(("dv", "dgamma", "dbeta"), (dv, dgamma, dbeta), grads):
        assert_rel(ours, theirs, name)


# ----------------------------------------------------------------------------------------
# Stacks: two layers, bidirectional, variable lengths.

CELL_NAMES = ["ln_lstm", "ln_gru", "lstm", "gru", "rnn_tanh"]
VARIANTS = ["plain", "zoneout_bernoulli", "zoneout_constant", "weight_masks", "all"]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("cell", CELL_NAMES)
def test_stack_matches_torch(torch, cell, variant):
    rng = np.random.default_rng(10 * CELL_NAMES.index(cell) + VARIANTS.index(variant))
    lengths = [3, 1, 2]
    x, states0, layers, doutput, dstates_n = stack_problem(rng, cell)
    shape = (3, 3, 4)
    options = {}
    if variant in ("zoneout_bernoulli", "all"):
        options["zoneout"] = make_zoneout(rng, cell, shape, lengths, 2, 2, "bernoulli")
    if variant == "zoneout_constant":
        options["zoneout"] = make_zoneout(rng, cell, shape, lengths, 2, 2, "constant")
    if variant in ("weight_masks", "all"):
        options["weight_masks"] = make_weight_masks(rng, layers)
    if variant == "all":  # with dropout between the layers too
        options["masks"] = [(rng.random((3, 3, 8)) >= 0.25) / 0.75, None]
    ours = reference_results(cell, x, states0, layers, doutput, dstates_n, lengths=lengths,
                             **options)
    theirs = torch_results(torch, cell, x, states0, layers, lengths, doutput, dstates_n,
                           **options)
    compare(ours, theirs)


@pytest.mark.parametrize("cell", ["ln_lstm", "lstm", "gru"])
def test_partial_zoneout_and_masks_match_torch(torch, cell):
    """None where a layer, a direction or a state has no zoneout or no weight mask; one
    direction, every sequence at full length."""
    rng = np.random.default_rng(11)
    x, states0, layers, doutput, dstates_n = stack_problem(rng, cell, steps=4, batch=2,
                                                            num_dirs=1)
    zoneout = make_zoneout(rng, cell, (4, 2, 4), [4, 4], 2, 1, "bernoulli")
    zoneout[0] = None
    if NUM_STATES[cell] == 2:
        zoneout[1][0] = (None, zoneout[1][0][1])  # c zones out, h does not
    weight_masks = [None, [make_weight_masks(rng, layers)[1][0]]]
    options = dict(zoneout=zoneout, weight_masks=weight_masks)
    compare(reference_results(cell, x, states0, layers, doutput, dstates_n, **options),
            torch_results(torch, cell, x, states0, layers, [4, 4], doutput, dstates_n,
                          **options))


# ----------------------------------------------------------------------------------------
# The new arguments at their neutral values change nothing, bit for bit.

@pytest.mark.parametrize("cell", CELL_NAMES + ["rnn_relu"])
def test_neutral_zoneout_and_masks_change_nothing(cell):
    rng = np.random.default_rng(5)
    base_cell = "rnn_tanh" if cell == "rnn_relu" else cell
    x, states0, layers, doutput, dstates_n = stack_problem(rng, base_cell)
    lengths = [3, 1, 2]
    plain = reference_results(cell, x, states0, layers, doutput, dstates_n, lengths=lengths)
    zeros = [[tuple(np.zeros((3, 3, 4)) for _ in states0) for _ in range(2)] for _ in range(2)]
    ones = [[np.ones(p[1].shape) for p in directions] for directions in layers]
    nones = [None, [None, None]]
    for options in (dict(zoneout=zeros), dict(weight_masks=ones),
                    dict(zoneout=zeros, weight_masks=ones),
                    dict(zoneout=nones, weight_masks=nones),
                    dict(zoneout=None, weight_masks=None)):
        assert_identical(reference_results(cell, x, states0, layers, doutput, dstates_n,
                                           lengths=lengths, **options), plain, str(options))
    # the caches of a call without the new arguments still begin as they always did
    _, _, caches = reference.stack_forward(cell, x, states0, layers, lengths=lengths)
    assert caches[0] is layers and caches[1] == lengths and caches[2] is None
    assert len(caches[3]) == 2 * 2 * 3


def test_zoneout_of_ones_keeps_the_initial_states():
    rng = np.random.default_rng(2)
    x, states0, layers, doutput, dstates_n = stack_problem(rng, "lstm", num_layers=1,
                                                            num_dirs=1)
    zoneout = [[tuple(np.ones((3, 3, 4)) for _ in states0)]]
    output, finals, dx, dstates0, grads = reference_results(
        "lstm", x, states0, layers, doutput, dstates_n, zoneout=zoneout)
    assert_identical(output, np.broadcast_to(states0[0][0], output.shape))
    assert_identical(finals, tuple(states0))
    assert not dx.any() and not any(g.any() for g in grads[0][0])
    assert_rel(dstates0[0], dstates_n[0] + doutput.sum(0), "d h_0")
    assert_identical(dstates0[1], dstates_n[1])


def test_projection_with_zoneout_or_weight_masks_is_refused():
    rng = np.random.default_rng(4)
    hidden, proj = 4, 2
    params = [rng.standard_normal((16, 3)), rng.standard_normal((16, proj)),
              np.zeros(16), np.zeros(16), rng.standard_normal((proj, hidden))]
    x = rng.standard_normal((2, 1, 3))
    states0 = (rng.standard_normal((1, 1, proj)), rng.standard_normal((1, 1, hidden)))
    reference.stack_forward("lstm", x, states0, [[params]])  # fine without them
    with pytest.raises(ValueError):
        reference.stack_forward("lstm", x, states0, [[params]], zoneout=[[(
            np.zeros((2, 1, proj)), np.zeros((2, 1, hidden)))]])
    with pytest.raises(ValueError):
        reference.stack_forward("lstm", x, states0, [[params]],
                                weight_masks=[[np.ones((16, proj))]])


def test_misshapen_zoneout_or_weight_mask_is_refused():
    rng = np.random.default_rng(6)
    x, states0, layers, _, _ = stack_problem(rng, "gru", num_layers=1, num_dirs=1)
    with pytest.raises(ValueError):
        reference.stack_forward("gru", x, states0, layers, zoneout=[[(np.zeros((3, 3, 5)),)]])
    with pytest.raises(ValueError):
        reference.stack_forward("gru", x, states0, layers,
                                zoneout=[[(np.zeros((3, 3, 4)),) * 2]])
    with pytest.raises(ValueError):
        reference.stack_forward("gru", x, states0, layers, weight_masks=[[np.ones((12, 3))]])
