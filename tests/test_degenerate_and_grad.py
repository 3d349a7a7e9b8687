"""numba_rnn's own layers and autograd at the edges PyTorch defines: a batch of size 0
(empty outputs and states, a backward that runs and gives zero parameter gradients), a
sequence of length 0 (refused as PyTorch refuses it), ``nr.autograd.grad`` against
``backward()`` and PyTorch, and higher-order requests refused, never answered
first-order."""
import numpy as np
import pytest

import numba_rnn as nr
from oracles import import_torch

# (layer, constructor arguments, input shape with a batch of 0)
EMPTY = [
    (nr.LSTM, dict(num_layers=2, bidirectional=True, proj_size=2, dropout=0.5), (4, 0, 3)),
    (nr.GRU, dict(batch_first=True, zoneout=0.3, weight_dropout=0.3), (0, 4, 3)),
    (nr.RNN, dict(nonlinearity="relu"), (4, 0, 3)),
    (nr.LayerNormLSTM, dict(bidirectional=True, zoneout=0.2), (4, 0, 3)),
    (nr.LayerNormGRU, dict(num_layers=2), (4, 0, 3)),
]
EMPTY_CELLS = [nr.LSTMCell, nr.GRUCell, nr.RNNCell, nr.LayerNormLSTMCell, nr.LayerNormGRUCell]


def _check_empty_backward(module, x, results):
    sum(r.sum() for r in results).backward()
    assert x.grad.shape == x.shape
    for name, p in module.named_parameters():
        assert p.grad is not None and not np.any(p.grad.numpy()), name


@pytest.mark.parametrize("backend", ["cpu", "simulator"])
@pytest.mark.parametrize("layer,options,shape", EMPTY,
                         ids=[f"{c.__name__}-{len(o)}" for c, o, _ in EMPTY])
def test_a_batch_of_zero(backend, layer, options, shape):
    with nr.use_backend(backend):
        module = layer(3, 4, dtype="float64", **options)
        x = nr.tensor(np.zeros(shape), requires_grad=True)
        output, states = module(x, lengths=[] if not options.get("batch_first") else None)
        states = states if isinstance(states, tuple) else (states,)
        directions = 2 if options.get("bidirectional") else 1
        layers = options.get("num_layers", 1) * directions
        width = options.get("proj_size") or 4
        batch_axis = 0 if options.get("batch_first") else 1
        expected = list(shape)
        expected[batch_axis], expected[2] = 0, directions * width
        assert output.shape == tuple(expected)
        assert states[0].shape == (layers, 0, width)
        assert all(s.shape[:2] == (layers, 0) for s in states)
        _check_empty_backward(module, x, [output, *states])


@pytest.mark.parametrize("cell", EMPTY_CELLS, ids=[c.__name__ for c in EMPTY_CELLS])
def test_a_cell_on_zero_rows(cell):
    module = cell(3, 4, dtype="float64")
    x = nr.tensor(np.zeros((0, 3)), requires_grad=True)
    states = module(x)
    states = states if isinstance(states, tuple) else (states,)
    assert all(s.shape == (0, 4) for s in states)
    _check_empty_backward(module, x, states)


@pytest.mark.parametrize("shape", [(0, 2, 3), (0, 3)])
def test_a_sequence_of_length_zero_is_refused(shape):
    """PyTorch raises RuntimeError with these words; ours is also the ValueError that
    numba_rnn's bad input raises, naming the argument and the shape."""
    module = nr.GRU(3, 4)
    before = module.weight_hh_l0.numpy().copy()
    for kind in (RuntimeError, ValueError):
        with pytest.raises(kind, match=r"input: Expected sequence length to be larger "
                                       r"than 0 in RNN.*\(0, "):
            module(np.zeros(shape, "float32"))
    np.testing.assert_array_equal(module.weight_hh_l0.numpy(), before)
    assert module.weight_hh_l0.grad is None


# ----------------------------------------------------------------- autograd.grad
def test_grad_equals_backward_and_touches_no_grad(rng):
    lstm = nr.LSTM(3, 4, dtype="float64")
    x = nr.tensor(rng.standard_normal((5, 2, 3)), requires_grad=True)
    output, (h_n, _) = lstm(x)
    hidden = output * 2  # a non-leaf input of grad
    loss = (hidden * hidden).sum() + h_n.sum()
    gx, gw, gh = nr.autograd.grad(loss, [x, lstm.weight_hh_l0, hidden])
    assert x.grad is None and lstm.weight_hh_l0.grad is None
    np.testing.assert_allclose(gh.numpy(), 2 * hidden.numpy())
    output, (h_n, _) = lstm(x)
    ((output * 2) * (output * 2)).sum().__add__(h_n.sum()).backward()
    np.testing.assert_allclose(gx.numpy(), x.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(gw.numpy(), lstm.weight_hh_l0.grad.numpy(), rtol=1e-12)


def test_grad_equals_torch_with_several_outputs_and_weights(rng):
    torch = import_torch()
    values = rng.standard_normal(4)
    weights = [rng.standard_normal(4), rng.standard_normal(())]
    ours_x = nr.tensor(values, requires_grad=True)
    ours = nr.autograd.grad([ours_x * ours_x, (ours_x * 3).sum()], ours_x,
                            grad_outputs=[nr.tensor(weights[0]), nr.tensor(weights[1])])
    theirs_x = torch.tensor(values, requires_grad=True)
    theirs = torch.autograd.grad([theirs_x * theirs_x, (theirs_x * 3).sum()], theirs_x,
                                 grad_outputs=[torch.tensor(w) for w in weights])
    np.testing.assert_allclose(ours[0].numpy(), theirs[0].numpy(), rtol=1e-12)


def test_grad_unused_inputs_as_torch():
    x = nr.tensor(np.ones(3), requires_grad=True)
    unused = nr.tensor(np.ones(2), requires_grad=True)
    with pytest.raises(RuntimeError, match="allow_unused"):
        nr.autograd.grad((x * x).sum(), [x, unused])
    assert nr.autograd.grad((x * x).sum(), [x, unused], allow_unused=True)[1] is None
    zeros = nr.autograd.grad((x * x).sum(), [x, unused], materialize_grads=True)[1]
    np.testing.assert_array_equal(zeros.numpy(), np.zeros(2))
    with pytest.raises(RuntimeError, match="does not require grad"):
        nr.autograd.grad((x * x).sum(), nr.tensor(np.ones(3)))


@pytest.mark.parametrize("call", [
    lambda loss, x: nr.autograd.grad(loss, x, create_graph=True),
    lambda loss, x: loss.backward(create_graph=True),
    lambda loss, x: nr.autograd.backward(loss, create_graph=True),
], ids=["grad", "Tensor.backward", "autograd.backward"])
def test_create_graph_is_refused_not_answered_first_order(call):
    """numba_rnn's engine records no graph in backward: a second derivative would be
    silently missing, so the request is refused (NotImplementedError, a RuntimeError)
    before anything runs."""
    lstm = nr.LSTM(2, 3)
    x = nr.tensor(np.ones((2, 1, 2), "float32"), requires_grad=True)
    loss = lstm(x)[0].sum()
    with pytest.raises(RuntimeError, match="create_graph"):
        call(loss, x)
    assert x.grad is None and lstm.weight_hh_l0.grad is None
    loss.backward()  # the graph is intact: nothing ran
    assert x.grad is not None
