"""Linear, Embedding, Dropout, activations, Sequential and the losses: forward values and
gradients against PyTorch (same weights, same inputs), float64 finite differences, and
bad input."""
from collections import OrderedDict

import numpy as np
import pytest

import numba_rnn as nr
from numba_rnn import backend
from numba_rnn.nn import functional as F
from numba_rnn.testing import assert_close
from oracles import check_op, gradcheck, import_torch, per_library
from test_bad_input import assert_refused

DTYPES = ["float32", "float64"]


def _torch_module(torch, ours, theirs):
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    return theirs


def module_cases(torch, dtype):
    """(name, our module, the same PyTorch module, input shape)"""
    nn, tnn = nr.nn, torch.nn
    cases = [
        ("linear", nn.Linear(4, 3, dtype=dtype), tnn.Linear(4, 3), (2, 5, 4)),
        ("linear no bias", nn.Linear(4, 3, bias=False, dtype=dtype), tnn.Linear(4, 3, bias=False), (6, 4)),
        ("linear 1-D", nn.Linear(4, 2, dtype=dtype), tnn.Linear(4, 2), (4,)),
        ("sequential", nn.Sequential(nn.Linear(4, 5, dtype=dtype), nn.Tanh(), nn.Linear(5, 3, dtype=dtype),
                                     nn.ReLU(), nn.Linear(3, 2, dtype=dtype), nn.Sigmoid()),
         tnn.Sequential(tnn.Linear(4, 5), tnn.Tanh(), tnn.Linear(5, 3), tnn.ReLU(),
                        tnn.Linear(3, 2), tnn.Sigmoid()), (3, 4)),
    ]
    return [(name, ours, theirs.to(getattr(torch, dtype)), shape)
            for name, ours, theirs, shape in cases]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", range(4))
def test_module_equals_pytorch(case, dtype, rng):
    torch = import_torch()
    name, ours, theirs, shape = module_cases(torch, dtype)[case]
    theirs = _torch_module(torch, ours, theirs)
    check_op([shape], per_library(ours, theirs), dtype=dtype, rng=rng)
    for (n, p), (_, q) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert_close(p.grad, q.grad, dtype, n)


@pytest.mark.parametrize("padding_idx", [None, 2, -1])
def test_embedding_equals_pytorch(padding_idx, rng):
    torch = import_torch()
    ours = nr.nn.Embedding(6, 3, padding_idx=padding_idx)
    theirs = _torch_module(torch, ours, torch.nn.Embedding(6, 3, padding_idx=padding_idx))
    indices = np.array([[1, 2, 2], [5, 1, 0]])  # repeated rows accumulate
    weight = rng.standard_normal((2, 3, 3)).astype("float32")
    out = ours(indices)
    expected = theirs(torch.from_numpy(indices))
    assert_close(out, expected, "float32", "output")
    (out * weight).sum().backward()
    (expected * torch.from_numpy(weight)).sum().backward()
    assert_close(ours.weight.grad, theirs.weight.grad, "float32", "d weight")
    if padding_idx is not None:
        assert np.all(ours.weight.numpy()[padding_idx] == 0)


def test_embedding_gradient_by_hand():
    """Without PyTorch: each looked-up row's gradient is the sum of the upstream rows."""
    emb = nr.nn.Embedding(4, 2)
    emb(np.array([3, 1, 3])).backward(np.array([[1, 2], [10, 20], [100, 200]], "float32"))
    np.testing.assert_array_equal(emb.weight.grad.numpy(),
                                  [[0, 0], [10, 20], [0, 0], [101, 202]])


def test_linear_initialisation_bounds():
    nr.manual_seed(0)
    layer = nr.nn.Linear(25, 400)
    for p in layer.parameters():
        values = p.numpy()
        assert np.abs(values).max() <= 0.2 and np.abs(values).max() > 0.19


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("shape", [(5, 4), (2, 4, 3), (4,)])
def test_cross_entropy_equals_pytorch(shape, reduction, rng):
    classes = shape[0] if len(shape) == 1 else shape[1]
    target_shape = () if len(shape) == 1 else (shape[0],) + shape[2:]
    target = rng.integers(0, classes, size=target_shape)
    if target.ndim:
        target.ravel()[0] = -100  # one ignored entry
    check_op([3 * rng.standard_normal(shape)],
             lambda m, x, t: m.nn.functional.cross_entropy(x, t, reduction=reduction),
             rng=rng, extra=(target,))


def test_cross_entropy_ignore_index_and_module(rng):
    torch = import_torch()
    target = np.array([0, 3, 3, 1])
    loss = nr.nn.CrossEntropyLoss(ignore_index=3)
    check_op([rng.standard_normal((4, 5))],
             per_library(loss, torch.nn.CrossEntropyLoss(ignore_index=3)), rng=rng,
             extra=(target,))


def test_cross_entropy_is_stable_for_huge_logits():
    logits = nr.tensor(np.array([[1e4, 0.0, -1e4]], "float32"), requires_grad=True)
    loss = F.cross_entropy(logits, np.array([1]))
    loss.backward()
    assert loss.item() == pytest.approx(1e4)
    np.testing.assert_allclose(logits.grad.numpy(), [[1, -1, 0]], atol=1e-6)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss_equals_pytorch(reduction, rng):
    check_op([rng.standard_normal((3, 4)), rng.standard_normal((3, 4))],
             lambda m, x, y: m.nn.MSELoss(reduction=reduction)(x, y), rng=rng)


def test_log_softmax_and_softmax_equal_pytorch(rng):
    x = [rng.standard_normal((3, 4, 2))]
    check_op(x, lambda m, a: m.nn.functional.log_softmax(a, dim=1), rng=rng)
    check_op(x, lambda m, a: m.nn.functional.softmax(a, dim=-1), rng=rng)


# ---------------------------------------------------- finite differences, float64
def _leaves(module, **inputs):
    return {**inputs, **dict(module.named_parameters())}


def test_gradcheck_linear_and_sequential(rng):
    x = nr.tensor(rng.standard_normal((2, 3, 4)), requires_grad=True)
    model = nr.nn.Sequential(nr.nn.Linear(4, 5, dtype="float64"), nr.nn.Tanh(),
                             nr.nn.Linear(5, 3, dtype="float64"), nr.nn.Sigmoid(),
                             nr.nn.Linear(3, 2, dtype="float64"))
    weight = rng.standard_normal((2, 3, 2))
    gradcheck(lambda: (model(x) * weight).sum(), _leaves(model, input=x))


def test_gradcheck_embedding(rng):
    emb = nr.nn.Embedding(5, 3, dtype="float64")
    indices = np.array([[0, 2, 2], [4, 1, 0]])
    weight = rng.standard_normal((2, 3, 3))
    gradcheck(lambda: (emb(indices) * weight).sum(), _leaves(emb))
    padded = nr.nn.Embedding(5, 3, padding_idx=4, dtype="float64")
    (padded(indices) * weight).sum().backward()
    assert np.all(padded.weight.grad.numpy()[4] == 0)  # PyTorch's rule for the padding row


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_gradcheck_losses(reduction, rng):
    logits = nr.tensor(rng.standard_normal((4, 3, 2)), requires_grad=True)
    target = np.array([[0, 2], [1, -100], [2, 2], [0, 1]])
    gradcheck(lambda: F.cross_entropy(logits, target, reduction=reduction), {"logits": logits})
    x = nr.tensor(rng.standard_normal((3, 2)), requires_grad=True)
    y = nr.tensor(rng.standard_normal((3, 2)), requires_grad=True)
    gradcheck(lambda: F.mse_loss(x, y, reduction=reduction), {"input": x, "target": y})


def test_gradcheck_softmax(rng):
    x = nr.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    weight = rng.standard_normal((3, 4))
    gradcheck(lambda: (F.softmax(x, dim=1) * weight).sum(), {"input": x})


# ------------------------------------------------------------------------ dropout
def test_dropout_mask_scale_and_modes():
    nr.manual_seed(3)
    drop = nr.nn.Dropout(0.25)
    x = nr.tensor(np.ones((200, 50), "float32"), requires_grad=True)
    y = drop(x)
    values = y.numpy()
    assert set(np.unique(values)) <= {0.0, np.float32(1 / 0.75)}
    assert abs((values == 0).mean() - 0.25) < 0.02
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), values)  # the same mask in backward
    drop.eval()
    np.testing.assert_array_equal(drop(x).numpy(), x.numpy())
    assert np.all(nr.nn.Dropout(1.0)(x).numpy() == 0)
    nr.manual_seed(3)
    np.testing.assert_array_equal(nr.nn.Dropout(0.25)(x).numpy(), values)


# ----------------------------------------------------------------------- modules
def test_sequential_naming_indexing_and_state_dict():
    model = nr.nn.Sequential(OrderedDict([("embed", nr.nn.Embedding(5, 3)),
                                          ("head", nr.nn.Linear(3, 2))]))
    assert [n for n, _ in model.named_parameters()] == ["embed.weight", "head.weight", "head.bias"]
    assert isinstance(model[1], nr.nn.Linear) and len(model) == 2
    assert len(model[:1]) == 1
    plain = nr.nn.Sequential(nr.nn.Linear(2, 2), nr.nn.Linear(2, 1))
    assert list(plain.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias"]


# --------------------------------------------------------------------- bad input
BAD = [
    ("linear in_features", lambda: nr.nn.Linear(0, 3), ValueError, ["in_features", "0"]),
    ("linear dtype", lambda: nr.nn.Linear(2, 3, dtype="int32"), TypeError, ["dtype", "'int32'"]),
    ("linear input size", lambda: nr.nn.Linear(4, 3)(np.zeros((2, 5), "float32")), ValueError, ["input", "(*, 4)", "(2, 5)"]),
    ("linear input dtype", lambda: nr.nn.Linear(4, 3)(np.zeros((2, 4))), TypeError, ["input", "float32", "float64"]),
    ("embedding float indices", lambda: nr.nn.Embedding(4, 2)(np.zeros(3)), TypeError, ["input", "integer", "float64"]),
    ("embedding out of range", lambda: nr.nn.Embedding(4, 2)(np.array([1, 4])), ValueError, ["input", "[0, 4)", "4"]),
    ("embedding padding_idx", lambda: nr.nn.Embedding(4, 2, padding_idx=4), ValueError, ["padding_idx", "4"]),
    ("dropout p", lambda: nr.nn.Dropout(1.5), ValueError, ["p", "[0, 1]", "1.5"]),
    ("reduction", lambda: nr.nn.MSELoss(reduction="avg"), ValueError, ["reduction", "'mean'", "'avg'"]),
    ("mse shapes", lambda: F.mse_loss(np.zeros((2, 3), "float32"), np.zeros((3,), "float32")), ValueError, ["target", "(2, 3)", "(3,)"]),
    ("mse dtypes", lambda: F.mse_loss(np.zeros(3, "float32"), np.zeros(3)), TypeError, ["target", "float32", "float64"]),
    ("cross_entropy float target", lambda: F.cross_entropy(np.zeros((2, 3), "float32"), np.zeros(2, "float32")), TypeError, ["target", "integer", "float32"]),
    ("cross_entropy target range", lambda: F.cross_entropy(np.zeros((2, 3), "float32"), np.array([0, 3])), ValueError, ["target", "[0, 3)", "3"]),
    ("cross_entropy target shape", lambda: F.cross_entropy(np.zeros((2, 3), "float32"), np.array([0, 1, 2])), ValueError, ["target", "(2,)", "(3,)"]),
    ("sequential member", lambda: nr.nn.Sequential(nr.nn.Linear(2, 2), "relu"), TypeError, ["Sequential", "str"]),
]


@pytest.mark.parametrize("name,call,error,words", BAD, ids=[b[0] for b in BAD])
def test_bad_input(name, call, error, words):
    assert_refused(call, error, words)


def test_refused_loss_leaves_gradients_untouched(monkeypatch):
    layer = nr.nn.Linear(3, 2)
    layer(np.ones((1, 3), "float32")).sum().backward()
    before = layer.weight.grad.numpy()
    monkeypatch.setattr(backend, "launch", lambda *a: pytest.fail("a kernel ran"))
    with pytest.raises(ValueError):
        F.cross_entropy(layer(np.ones((1, 3), "float32")), np.array([5]))
    np.testing.assert_array_equal(layer.weight.grad.numpy(), before)


def test_no_kernel_is_launched_over_zero_items(monkeypatch):
    """A launch of zero blocks fails on a GPU: empty lookups and zero-size parameters
    launch nothing, and still give the right (empty or zero) results."""
    blocks = []
    real = backend.launch_grid

    def record(kernel, grid, threads, shared, *args):
        blocks.append(grid)
        return real(kernel, grid, threads, shared, *args)

    monkeypatch.setattr(backend, "launch_grid", record)
    embedding = nr.nn.Embedding(4, 3)
    for ids in (np.zeros((0,), np.int64), np.zeros((2, 0), np.int64)):
        out = embedding(ids)
        assert out.shape == ids.shape + (3,)
        out.sum().backward()
        np.testing.assert_array_equal(embedding.weight.grad.numpy(), 0)
    for name in ("SGD", "Adam", "AdamW"):
        empty = nr.nn.Parameter(np.zeros((0, 3), "float32"))
        empty.grad = nr.tensor(np.zeros((0, 3), "float32"))
        opt = getattr(nr.optim, name)([empty], lr=0.1)
        opt.step()
        assert empty.shape == (0, 3)
    embedding(np.array([[1, 2]])).sum().backward()  # a real lookup still launches
    assert blocks and 0 not in blocks


def test_strided_index_arrays(rng):
    """Index arrays that are views with strides (a column of a batch) work as their
    contiguous copies do, forward and backward."""
    ids = rng.integers(0, 5, (4, 3))
    for strided in (ids[:, 1], ids[:, ::2]):
        assert not strided.flags.c_contiguous
        embedding = nr.nn.Embedding(5, 2, dtype="float64")
        weight = rng.standard_normal(strided.shape + (2,))
        (embedding(strided) * nr.tensor(weight)).sum().backward()
        expected = np.zeros((5, 2))
        np.add.at(expected, strided, weight)
        np.testing.assert_allclose(embedding.weight.grad.numpy(), expected, rtol=1e-12)
    targets = ids[:, 1]
    logits = rng.standard_normal((4, 5))
    for loss in (F.cross_entropy, lambda x, t: F.nll_loss(F.log_softmax(x, 1), t)):
        results = []
        for target in (targets, targets.copy()):
            x = nr.tensor(logits, requires_grad=True)
            value = loss(x, target)
            value.backward()
            results.append((value.item(), x.grad.numpy()))
        assert results[0][0] == results[1][0]
        np.testing.assert_array_equal(results[0][1], results[1][1])
