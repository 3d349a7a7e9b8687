"""numba_rnn.torch beyond first-order backward, held against torch.nn on the same weights:
create_graph=True (gradient penalties, double backward) and gradgradcheck in float64 for
every class and option, torch.func (vmap, jacrev, jacfwd, functional_call ensembles),
batched gradients, batches of size 0, sequences of length 0, PyTorch's argument checks
for the cells, and the forward's kernel path carried to a backward on another thread."""
import threading

import numpy as np
import pytest

from oracles import import_torch

torch = import_torch()
nrt = pytest.importorskip("numba_rnn.torch")
from torch.func import functional_call, jacfwd, jacrev, stack_module_state, vmap  # noqa: E402
from torch.nn.utils.rnn import pack_padded_sequence  # noqa: E402

D = torch.float64
TOL = dict(rtol=1e-9, atol=1e-11)  # float64: the kernels and torch agree to rounding

# (class, constructor arguments, input shape): every option the issue names
LAYERS = [
    ("LSTM", dict(input_size=3, hidden_size=4), (4, 2, 3)),
    ("LSTM", dict(input_size=3, hidden_size=4, proj_size=2), (4, 2, 3)),
    ("GRU", dict(input_size=3, hidden_size=4, num_layers=2, bidirectional=True), (4, 2, 3)),
    ("RNN", dict(input_size=3, hidden_size=4), (4, 2, 3)),
    ("RNN", dict(input_size=3, hidden_size=4, nonlinearity="relu", batch_first=True), (2, 4, 3)),
    ("LSTM", dict(input_size=3, hidden_size=3, num_layers=2, bidirectional=True, proj_size=2),
     (3, 2, 3)),
]
CELLS = [("LSTMCell", dict(input_size=3, hidden_size=4), (2, 3)),
         ("GRUCell", dict(input_size=3, hidden_size=4), (2, 3)),
         ("RNNCell", dict(input_size=3, hidden_size=4, nonlinearity="relu"), (2, 3)),
         ("RNNCell", dict(input_size=3, hidden_size=4), (3,))]
ALL = LAYERS + CELLS


def ids(cases):
    return [f"{name}-{'-'.join(f'{k}={v}' for k, v in kw.items() if k not in ('input_size', 'hidden_size'))}"
            for name, kw, _ in cases]


def pair(name, kwargs):
    theirs = getattr(torch.nn, name)(**kwargs, dtype=D)
    ours = getattr(nrt, name)(**kwargs, dtype=D)
    ours.load_state_dict(theirs.state_dict())
    return ours, theirs


def leaves(value):
    """Every tensor in a module's result (nested tuples, PackedSequence data)."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, torch.nn.utils.rnn.PackedSequence):
        return [value.data]
    return [t for part in value for t in leaves(part)]


def first(result):
    return leaves(result)[0]


def penalty_gradients(module, x):
    """A WGAN-GP-style loss: the output's square plus the squared input gradient, taken
    with create_graph=True, differentiated once more with respect to every parameter
    and the input."""
    x = x.detach().clone().requires_grad_()
    outs = leaves(module(x))
    g, = torch.autograd.grad(sum(o.sum() for o in outs), x, create_graph=True)
    assert g.requires_grad, "create_graph=True must give a gradient with its graph"
    loss = sum(o.pow(2).mean() for o in outs) + g.pow(2).sum()
    return torch.autograd.grad(loss, [x, *module.parameters()])


@pytest.mark.parametrize("name,kwargs,shape", ALL, ids=ids(ALL))
def test_create_graph_gives_torch_nn_second_derivatives(name, kwargs, shape):
    ours, theirs = pair(name, kwargs)
    x = torch.randn(shape, dtype=D, generator=torch.Generator().manual_seed(1))
    for got, expected in zip(penalty_gradients(ours, x), penalty_gradients(theirs, x)):
        torch.testing.assert_close(got, expected, **TOL)


def test_the_issue_example_keeps_the_penalty_share():
    """The defect as reported: g had no graph, and the penalty's share of every weight
    gradient was silently missing."""
    torch.manual_seed(0)
    m = nrt.LSTM(3, 4)
    x = torch.randn(5, 2, 3, requires_grad=True)
    out, _ = m(x)
    g, = torch.autograd.grad(out.sum(), x, create_graph=True)
    assert g.requires_grad
    (out.pow(2).mean() + g.pow(2).sum()).backward()
    with_penalty = m.weight_hh_l0.grad.clone()
    m.zero_grad()
    out, _ = m(x)
    out.pow(2).mean().backward()
    assert (with_penalty - m.weight_hh_l0.grad).abs().max() > 1e-4


def _as_function(module, names):
    """The module as a function of (input, *parameters), for gradgradcheck."""
    def call(x, *params):
        return tuple(leaves(functional_call(module, dict(zip(names, params)), (x,))))
    return call


@pytest.mark.parametrize("name,kwargs,shape", ALL, ids=ids(ALL))
def test_gradgradcheck(name, kwargs, shape):
    """Fast mode (random projections of the Jacobians) for the layers, the full
    element-by-element check for the cells (the same kernels, one step)."""
    ours, _ = pair(name, kwargs)
    names = [n for n, _ in ours.named_parameters()]
    x = torch.randn(shape, dtype=D, requires_grad=True)
    params = [p.detach().clone().requires_grad_() for p in ours.parameters()]
    assert torch.autograd.gradgradcheck(_as_function(ours, names), (x, *params),
                                        fast_mode=not name.endswith("Cell"))


def test_gradgradcheck_packed_and_dropout():
    """Packed input, and dropout between layers: the second derivative goes through the
    very masks the forward drew (the generator is reset before each evaluation)."""
    torch.manual_seed(0)
    ours = nrt.GRU(3, 3, num_layers=2, dropout=0.4, dtype=D)
    names = [n for n, _ in ours.named_parameters()]
    lengths = [3, 1, 2]

    def call(x, *params):
        torch.manual_seed(7)
        packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
        out, h = functional_call(ours, dict(zip(names, params)), (packed,))
        return out.data, h

    x = torch.randn(3, 3, 3, dtype=D, requires_grad=True)
    params = [p.detach().clone().requires_grad_() for p in ours.parameters()]
    # gradgradcheck differentiates the create_graph backward numerically and so checks
    # it against itself: first, the create_graph backward (PyTorch's op with the
    # forward's masks) against the kernels' first-order backward
    by_kernels, by_torch = [torch.autograd.grad(sum(t.sum() for t in call(x, *params)),
                                                (x, *params), create_graph=create)
                            for create in (False, True)]
    for a, b in zip(by_kernels, by_torch):
        torch.testing.assert_close(a, b, **TOL)
    assert torch.autograd.gradgradcheck(call, (x, *params), fast_mode=True)
    dropped = call(x, *params)[0]
    ours.eval()
    assert not torch.allclose(dropped, call(x, *params)[0])  # the masks did something


# ---------------------------------------------------------------- torch.func
VMAPPED = [LAYERS[0], LAYERS[1], LAYERS[2], CELLS[0], CELLS[1]]


@pytest.mark.parametrize("name,kwargs,shape", VMAPPED, ids=ids(VMAPPED))
def test_vmap_equals_a_loop_of_torch_nn(name, kwargs, shape):
    """torch.nn's LSTM/GRU/LSTMCell have no batching rule (vmap raises); ours fold the
    vmapped dimension into the batch (shared weights) or loop (an ensemble's)."""
    ours, theirs = pair(name, kwargs)
    xs = torch.randn(3, *shape, dtype=D)
    expected = torch.stack([first(theirs(x)) for x in xs])
    torch.testing.assert_close(vmap(lambda x: first(ours(x)))(xs), expected, **TOL)
    torch.testing.assert_close(vmap(lambda x: first(ours(x)), in_dims=1)(xs.movedim(0, 1)),
                               expected, **TOL)
    # gradients through vmap
    xg = xs.clone().requires_grad_()
    got, = torch.autograd.grad(vmap(lambda x: first(ours(x)))(xg).pow(2).sum(), xg)
    xt = xs.clone().requires_grad_()
    want, = torch.autograd.grad(torch.stack([first(theirs(x)) for x in xt]).pow(2).sum(), xt)
    torch.testing.assert_close(got, want, **TOL)
    # an ensemble: weights that differ along the vmapped dimension
    models = [getattr(torch.nn, name)(**kwargs, dtype=D) for _ in range(3)]
    params, buffers = stack_module_state(models)
    ensemble = vmap(lambda p, b: first(functional_call(ours, (p, b), (xs[0],))))(params, buffers)
    torch.testing.assert_close(ensemble, torch.stack([first(m(xs[0])) for m in models]), **TOL)


@pytest.mark.parametrize("name,kwargs,shape", VMAPPED, ids=ids(VMAPPED))
def test_jacobians_and_batched_gradients(name, kwargs, shape):
    ours, theirs = pair(name, kwargs)
    x = torch.randn(shape, dtype=D)
    for transform in (jacrev, jacfwd):
        torch.testing.assert_close(transform(lambda x: first(ours(x)))(x),
                                   transform(lambda x: first(theirs(x)))(x), **TOL)
    torch.testing.assert_close(
        torch.autograd.functional.jacobian(lambda x: first(ours(x)), x, vectorize=True),
        torch.autograd.functional.jacobian(lambda x: first(theirs(x)), x, vectorize=True),
        **TOL)
    results = []
    for module in (ours, theirs):
        xg = x.clone().requires_grad_()
        out = first(module(xg))
        weights = torch.arange(4 * out.numel(), dtype=D).reshape(4, *out.shape).sin()
        results.append(torch.autograd.grad(out, xg, weights, is_grads_batched=True)[0])
    torch.testing.assert_close(*results, **TOL)


def test_vmap_randomness_of_dropout():
    ours = nrt.LSTM(3, 3, num_layers=2, dropout=0.5, dtype=D)
    xs = torch.randn(4, 5, 2, 3, dtype=D)

    def f(x):
        return ours(x)[0]

    with pytest.raises(RuntimeError, match="randomness"):
        vmap(f)(xs)
    same = vmap(f, randomness="same")(xs[:1].expand(4, 5, 2, 3))
    torch.testing.assert_close(same, same[:1].expand_as(same), rtol=0, atol=0)
    different = vmap(f, randomness="different")(xs[:1].expand(4, 5, 2, 3))
    assert not torch.equal(different[0], different[1])


# ------------------------------------------------------------ degenerate shapes
EMPTY = [("LSTM", dict(input_size=3, hidden_size=4, num_layers=2, bidirectional=True,
                       proj_size=2, dropout=0.3), (4, 0, 3)),
         ("GRU", dict(input_size=3, hidden_size=4, batch_first=True), (0, 4, 3)),
         ("RNN", dict(input_size=3, hidden_size=4, nonlinearity="relu", num_layers=2), (4, 0, 3))
         ] + [(name, kw, (0, 3)) for name, kw, _ in CELLS[:3]]


@pytest.mark.parametrize("name,kwargs,shape", EMPTY, ids=ids(EMPTY))
def test_a_batch_of_zero_gives_empty_results_and_zero_gradients(name, kwargs, shape):
    ours, theirs = pair(name, kwargs)
    x = torch.zeros(shape, dtype=D, requires_grad=True)
    got, expected = leaves(ours(x)), leaves(theirs(x))
    assert [t.shape for t in got] == [t.shape for t in expected]
    sum(t.sum() for t in got).backward()
    assert x.grad.shape == x.shape
    for p in ours.parameters():
        assert p.grad is not None and torch.count_nonzero(p.grad) == 0


@pytest.mark.parametrize("name", ["LSTM", "GRU", "RNN"])
def test_a_sequence_of_length_zero_is_refused_as_torch_refuses_it(name):
    ours, theirs = pair(name, dict(input_size=3, hidden_size=4))
    for shape in ((0, 2, 3), (0, 3)):
        with pytest.raises(RuntimeError) as expected:
            theirs(torch.zeros(shape, dtype=D))
        with pytest.raises(RuntimeError) as got:
            ours(torch.zeros(shape, dtype=D))
        assert str(got.value) == str(expected.value)


# ------------------------------------------------------------- argument checks
CELL_CALLS = [
    ("width", lambda c, dt: c(torch.zeros(2, 11, dtype=dt))),
    ("hidden batch", lambda c, dt: c(torch.zeros(2, 10, dtype=dt), torch.zeros(3, 4, dtype=dt))),
    ("hidden size", lambda c, dt: c(torch.zeros(2, 10, dtype=dt), torch.zeros(2, 5, dtype=dt))),
    ("3-D input", lambda c, dt: c(torch.zeros(1, 2, 10, dtype=dt))),
]


@pytest.mark.parametrize("kind", ["GRUCell", "RNNCell"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.int64])
@pytest.mark.parametrize("case,call", CELL_CALLS, ids=[c[0] for c in CELL_CALLS])
def test_cell_checks_in_torch_order_and_words(kind, dtype, case, call):
    """The input width (then the hidden sizes) before any dtype complaint, in every
    dtype; the class's own name (RNNCell, not an internal mode name)."""
    ours, theirs = pair(kind, dict(input_size=10, hidden_size=4))
    with pytest.raises(Exception) as expected:
        call(theirs.float(), dtype)
    with pytest.raises(type(expected.value)) as got:
        call(ours.float(), dtype)
    assert str(got.value) == str(expected.value)


@pytest.mark.parametrize("kind", ["LSTMCell", "GRUCell", "RNNCell"])
def test_cell_dtype_mismatch_in_torch_words(kind):
    ours, theirs = pair(kind, dict(input_size=3, hidden_size=4))
    for module in (ours, theirs):
        module.float()
    with pytest.raises(RuntimeError) as expected:
        theirs(torch.zeros(2, 3, dtype=D))
    with pytest.raises(RuntimeError) as got:
        ours(torch.zeros(2, 3, dtype=D))
    assert str(got.value) == str(expected.value)


# ------------------------------------------------------- the forward's path
def test_backward_on_another_thread_runs_the_forward_handoff(monkeypatch):
    """PyTorch runs a CUDA backward on an autograd thread of its own, where the
    thread-local force_path/use_handoff are unset: the backward must take the forward's
    choice from what the forward kept."""
    import numba_rnn as nr
    from numba_rnn import recurrent
    from numba_rnn.rnn.paths import persistent
    used = []
    real = persistent._persistent

    def spy(kernels, direction, mode):
        used.append((direction, mode))
        return real(kernels, direction, mode)

    monkeypatch.setattr(persistent, "_persistent", spy)
    with nr.use_backend("simulator"):
        ours = nrt.GRU(2, 3, dtype=D)
        with recurrent.force_path("persistent"), recurrent.use_handoff("flags"):
            out, _ = ours(torch.randn(2, 1, 2, dtype=D))
        errors = []

        def backward():
            try:
                with nr.use_backend("simulator"):
                    out.sum().backward()
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        worker = threading.Thread(target=backward)
        worker.start()
        worker.join()
    assert not errors, errors
    assert used == [("forward", "flags"), ("backward", "flags")]
    assert np.isfinite(ours.weight_hh_l0.grad.numpy()).all()
