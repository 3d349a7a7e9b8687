"""nn.init, the normalisations, more activations and losses, Softmax/LogSoftmax,
Identity and Flatten: forward values and gradients against PyTorch in float32 and
float64, every backward against float64 central finite differences (without PyTorch),
distributions of the initialisers, and bad input."""
import warnings

import numpy as np
import pytest

import numba_rnn as nr
from numba_rnn.nn import functional as F
from numba_rnn.nn import init
from numba_rnn.testing import assert_close
from oracles import check_op, gradcheck, import_torch, per_library

DTYPES = ["float32", "float64"]


def _torch_dtype(torch, dtype):
    return getattr(torch, np.dtype(dtype).name)


def probabilities(rng, shape):
    return rng.uniform(0.05, 0.95, shape)


# ============================================================================= init
FAN_SHAPES = [(3, 4), (5, 2, 3), (4, 3, 2, 2)]


@pytest.mark.parametrize("shape", FAN_SHAPES)
def test_fans_equal_pytorch(shape):
    torch = import_torch()
    expected = torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
    assert init._calculate_fan_in_and_fan_out(nr.tensor(np.zeros(shape))) == expected
    for mode, k in (("fan_in", 0), ("fan_out", 1)):
        assert init._calculate_correct_fan(nr.tensor(np.zeros(shape)), mode) == expected[k]


def test_calculate_gain_equals_pytorch():
    torch = import_torch()
    for name in init.NONLINEARITIES:
        assert init.calculate_gain(name) == pytest.approx(torch.nn.init.calculate_gain(name))
    for slope in (0, 0.2, 1, -0.5):
        assert init.calculate_gain("leaky_relu", slope) == pytest.approx(
            torch.nn.init.calculate_gain("leaky_relu", slope))


def _sample(fn, shape=(200, 300), dtype="float64", **kwargs):
    t = nr.tensor(np.zeros(shape, dtype))
    assert fn(t, **kwargs) is t
    return t.numpy()


@pytest.mark.parametrize("dtype", DTYPES)
def test_uniform_and_normal_statistics(dtype):
    nr.manual_seed(0)
    values = _sample(init.uniform_, dtype=dtype, a=-0.5, b=1.5)
    assert values.dtype == np.dtype(dtype)
    assert values.min() >= -0.5 and values.max() <= 1.5
    assert values.min() < -0.49 and values.max() > 1.49
    assert values.mean() == pytest.approx(0.5, abs=0.02)
    assert values.std() == pytest.approx(2 / np.sqrt(12), rel=0.02)
    default = _sample(init.uniform_, dtype=dtype)
    assert default.min() >= 0 and default.max() <= 1
    values = _sample(init.normal_, dtype=dtype, mean=2.0, std=0.5)
    assert values.mean() == pytest.approx(2.0, abs=0.01)
    assert values.std() == pytest.approx(0.5, rel=0.02)
    values = _sample(init.trunc_normal_, dtype=dtype, mean=0.0, std=1.0, a=-1.0, b=1.5)
    assert values.min() >= -1.0 and values.max() <= 1.5 and values.std() > 0.5
    narrow = _sample(init.trunc_normal_, shape=(3000,), dtype=dtype, mean=0.4, std=0.1, a=0.5, b=0.7)
    assert narrow.min() >= 0.5 and narrow.max() <= 0.7  # uniform proposals (little mass)


@pytest.mark.parametrize("shape", FAN_SHAPES[1:] + [(300, 200)])
def test_xavier_and_kaiming_statistics(shape):
    torch = import_torch()
    big = (3000,) + shape[1:] if np.prod(shape) < 10000 else shape  # enough samples
    fan_in, fan_out_big = torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(big))
    nr.manual_seed(1)
    bound = 2.0 * np.sqrt(6.0 / (fan_in + fan_out_big))
    values = _sample(init.xavier_uniform_, big, gain=2.0)
    assert np.abs(values).max() <= bound and np.abs(values).max() > 0.98 * bound
    std = np.sqrt(2.0 / (fan_in + fan_out_big))
    assert _sample(init.xavier_normal_, big).std() == pytest.approx(std, rel=0.03)
    for mode, fan in (("fan_in", fan_in), ("fan_out", fan_out_big)):
        gain = np.sqrt(2.0 / (1 + 0.2 ** 2))
        bound = gain * np.sqrt(3.0 / fan)
        values = _sample(init.kaiming_uniform_, big, a=0.2, mode=mode)
        assert np.abs(values).max() <= bound and np.abs(values).max() > 0.98 * bound
        values = _sample(init.kaiming_normal_, big, mode=mode, nonlinearity="relu")
        assert values.std() == pytest.approx(np.sqrt(2.0 / fan), rel=0.03)
        assert abs(values.mean()) < 0.05 * values.std()


@pytest.mark.parametrize("shape", [(3, 5), (5, 3), (4, 2, 3), (4, 4)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_orthogonal(shape, dtype):
    nr.manual_seed(2)
    values = _sample(init.orthogonal_, shape, dtype, gain=1.5).reshape(shape[0], -1)
    rows, cols = values.shape
    gram = values @ values.T if rows <= cols else values.T @ values
    assert_close(gram, 1.5 ** 2 * np.eye(min(rows, cols)), dtype, "Q Qᵀ")
    nr.manual_seed(2)
    np.testing.assert_array_equal(_sample(init.orthogonal_, shape, dtype, gain=1.5),
                                  values.reshape(shape))


def test_fills_and_eye():
    t = nr.tensor(np.zeros((2, 3), "float32"))
    assert init.constant_(t, 0.25) is t and np.all(t.numpy() == 0.25)
    assert np.all(init.ones_(t).numpy() == 1) and np.all(init.zeros_(t).numpy() == 0)
    np.testing.assert_array_equal(init.eye_(t).numpy(), np.eye(2, 3))
    ints = nr.tensor(np.zeros(4, np.int64))
    assert np.all(init.constant_(ints, 3).numpy() == 3) and ints.dtype == np.int64


def test_init_in_place_reproducible_and_graph_free(rng):
    layer = nr.nn.Linear(4, 3)
    weight, storage = layer.weight, layer.weight._array
    x = nr.tensor(rng.standard_normal((2, 4)).astype("float32"))
    layer(x).sum().backward()
    grad = weight.grad.numpy()
    version = weight._version
    nr.manual_seed(5)
    assert init.kaiming_uniform_(weight, a=np.sqrt(5)) is weight
    first = weight.numpy()
    assert weight._array is storage and weight.is_leaf and weight.requires_grad
    assert weight._version > version  # a graph that saved the old values is stale
    np.testing.assert_array_equal(weight.grad.numpy(), grad)
    nr.manual_seed(5)
    init.kaiming_uniform_(weight, a=np.sqrt(5))
    np.testing.assert_array_equal(weight.numpy(), first)
    own = np.random.default_rng(7)
    init.normal_(weight, generator=own)
    np.testing.assert_array_equal(
        weight.numpy(), np.random.default_rng(7).standard_normal((3, 4)).astype("float32"))
    stale = layer(x).sum()
    init.zeros_(layer.bias)
    with pytest.raises(RuntimeError, match="modified in place"):
        stale.backward()


def test_kaiming_of_zero_elements_warns():
    t = nr.tensor(np.zeros((0, 3)))
    with pytest.warns(UserWarning, match="zero-element"):
        assert init.kaiming_uniform_(t) is t
    assert init.orthogonal_(t) is t


# ================================================================ softmax family
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("dim", [0, 1, -1, 2])
def test_softmax_and_log_softmax_dims(dim, dtype, rng):
    x = rng.standard_normal((3, 4, 2))
    for op in ("softmax", "log_softmax"):
        check_op([x], lambda m, a: getattr(m.nn.functional, op)(a, dim), dtype=dtype, rng=rng)
    check_op([x], lambda m, a: m.nn.Softmax(dim)(a), dtype=dtype, rng=rng)
    check_op([x], lambda m, a: m.nn.LogSoftmax(dim=dim)(a), dtype=dtype, rng=rng)


def test_softmax_dtype_implicit_dim_and_scalar(rng):
    torch = import_torch()
    x = rng.standard_normal((2, 3))
    a = nr.tensor(x.astype("float32"), requires_grad=True)
    out = F.log_softmax(a, 1, dtype="float64")
    assert out.dtype == np.float64
    expected = torch.nn.functional.log_softmax(torch.tensor(x.astype("float32")), 1,
                                               dtype=torch.float64)
    assert_close(out, expected, "float64", "cast output")
    out.sum().backward()
    assert a.grad.dtype == np.float32
    with pytest.warns(UserWarning, match="Implicit dimension"):
        implicit = F.softmax(nr.tensor(x))
    assert_close(implicit, torch.softmax(torch.tensor(x), 1), "float64", "implicit dim")
    scalar = F.softmax(nr.tensor(np.array(3.0)), 0)
    assert scalar.shape == () and scalar.item() == 1.0


# ================================================================ activations
@pytest.mark.parametrize("dtype", DTYPES)
def test_activations_equal_pytorch(dtype, rng):
    torch = import_torch()
    nn, tnn = nr.nn, torch.nn
    x = [3 * rng.standard_normal((4, 5))]
    cases = [(nn.LeakyReLU(), tnn.LeakyReLU()), (nn.LeakyReLU(0.2, True), tnn.LeakyReLU(0.2)),
             (nn.GELU(), tnn.GELU()), (nn.GELU("tanh"), tnn.GELU("tanh")),
             (nn.Softplus(), tnn.Softplus()), (nn.Softplus(2.0, 3.0), tnn.Softplus(2.0, 3.0)),
             (nn.ReLU(inplace=True), tnn.ReLU()), (nn.Identity(3, a=1), tnn.Identity()),
             (nn.Flatten(), tnn.Flatten()), (nn.Flatten(0, 1), tnn.Flatten(0, 1))]
    for ours, theirs in cases:
        check_op(x, per_library(ours, theirs), dtype=dtype, rng=rng)
        if not getattr(ours, "inplace", False):  # PyTorch's in place refuses a leaf
            assert repr(ours) == repr(theirs)
    assert repr(nn.LeakyReLU(0.2, True)) == repr(tnn.LeakyReLU(0.2, True))
    assert repr(nn.ReLU(inplace=True)) == repr(tnn.ReLU(inplace=True))
    big = [np.array([-800.0, -30.0, 0.0, 30.0, 800.0])]
    check_op(big, lambda m, a: m.nn.functional.sigmoid(a), dtype=dtype, rng=rng)
    check_op(big, lambda m, a: m.nn.functional.softplus(a), dtype=dtype, rng=rng)


def test_flatten_shapes():
    torch = import_torch()
    x = np.zeros((2, 3, 4, 5))
    for start, end in ((1, -1), (0, -1), (1, 2), (-2, -1), (2, 2)):
        assert nr.nn.Flatten(start, end)(x).shape == tuple(
            torch.nn.Flatten(start, end)(torch.from_numpy(x)).shape)


# ====================================================================== losses
REDUCTIONS = ["mean", "sum", "none"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_regression_losses_equal_pytorch(reduction, dtype, rng):
    x, y = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    w = rng.uniform(0.5, 2.0, (3, 4))
    for beta in (1.0, 0.5, 0.0):
        check_op([x, y], lambda m, a, b: m.nn.functional.smooth_l1_loss(
            a, b, reduction=reduction, beta=beta), dtype=dtype, rng=rng)
    for delta in (1.0, 0.3):
        check_op([x, y], lambda m, a, b: m.nn.functional.huber_loss(a, b, reduction, delta),
                 dtype=dtype, rng=rng)
        check_op([x, y, w], lambda m, a, b, c: m.nn.functional.huber_loss(
            a, b, reduction, delta, weight=c), dtype=dtype, rng=rng)
    for name in ("l1_loss", "mse_loss"):
        check_op([x, y], lambda m, a, b: getattr(m.nn.functional, name)(
            a, b, reduction=reduction), dtype=dtype, rng=rng)
        check_op([x, y, w], lambda m, a, b, c: getattr(m.nn.functional, name)(
            a, b, reduction=reduction, weight=c), dtype=dtype, rng=rng)
    for module in (lambda nn: nn.L1Loss(reduction=reduction),
                   lambda nn: nn.SmoothL1Loss(reduction=reduction, beta=0.5),
                   lambda nn: nn.HuberLoss(reduction, 0.5),
                   lambda nn: nn.MSELoss(reduction=reduction)):
        check_op([x, y], lambda m, a, b: module(m.nn)(a, b), dtype=dtype, rng=rng)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_cross_entropy_equals_pytorch(reduction, dtype, rng):
    torch = import_torch()
    p, t = probabilities(rng, (3, 4)), probabilities(rng, (3, 4))
    t[0, :2] = (0.0, 1.0)
    w, pw = rng.uniform(0.5, 2.0, (4,)), rng.uniform(0.5, 3.0, (4,))

    def constant(m, value):  # a weight of the library m's, or None
        return None if value is None else m.tensor(value.astype(dtype))

    check_op([p, t], lambda m, a, b: m.nn.functional.binary_cross_entropy(
        a, b, reduction=reduction), dtype=dtype, rng=rng)
    check_op([p, t], lambda m, a, b: m.nn.functional.binary_cross_entropy(
        a, b, constant(m, w), reduction=reduction), dtype=dtype, rng=rng)
    logits = 4 * rng.standard_normal((3, 4))
    logits[0, 0] = 60.0  # far in the tails: computed stably
    for weight, pos_weight in ((None, None), (w, None), (None, pw), (w, pw)):
        check_op([logits, t], lambda m, a, b: m.nn.functional.binary_cross_entropy_with_logits(
            a, b, constant(m, weight), reduction=reduction, pos_weight=constant(m, pos_weight)),
            dtype=dtype, rng=rng)
    check_op([p, t], lambda m, a, b: m.nn.BCELoss(reduction=reduction)(a, b), dtype=dtype,
             rng=rng, grads=[0])
    ours = nr.nn.BCEWithLogitsLoss(reduction=reduction, pos_weight=constant(nr, pw))
    theirs = torch.nn.BCEWithLogitsLoss(reduction=reduction, pos_weight=constant(torch, pw))
    check_op([logits, t], per_library(ours, theirs), dtype=dtype, rng=rng, grads=[0])
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["pos_weight"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(5, 4), (3, 4, 2), (4,)])
def test_nll_and_cross_entropy_with_weights_equal_pytorch(shape, reduction, dtype, rng):
    torch = import_torch()
    classes = shape[0] if len(shape) == 1 else shape[1]
    target = rng.integers(0, classes, () if len(shape) == 1 else (shape[0],) + shape[2:])
    if target.ndim:
        target.ravel()[0] = -100
    w = rng.uniform(0.5, 2.0, classes).astype(dtype)
    x = 2 * rng.standard_normal(shape)
    class_dim = 0 if len(shape) == 1 else 1

    def cross_entropy(m, a, t, weight, smoothing):
        return m.nn.functional.cross_entropy(a, t, None if weight is None else m.tensor(weight),
                                             reduction=reduction, label_smoothing=smoothing)

    for ignore in (-100, 1):
        check_op([x, np.where(target == -100, ignore, target)],
                 lambda m, a, t: m.nn.functional.nll_loss(
                     m.nn.functional.log_softmax(a, class_dim), t, m.tensor(w),
                     ignore_index=ignore, reduction=reduction), dtype=dtype, rng=rng)
    for weight, smoothing in ((w, 0.0), (None, 0.2), (w, 0.3)):
        check_op([x, target], lambda m, a, t: cross_entropy(m, a, t, weight, smoothing),
                 dtype=dtype, rng=rng)
    probs = rng.uniform(0, 1, shape)
    probs /= probs.sum(axis=class_dim, keepdims=True)
    for weight, smoothing in ((None, 0.0), (w, 0.1)):
        check_op([x, probs], lambda m, a, t: cross_entropy(m, a, t, weight, smoothing),
                 dtype=dtype, rng=rng)
    for ours, theirs in ((nr.nn.NLLLoss(nr.tensor(w), reduction=reduction),
                          torch.nn.NLLLoss(torch.tensor(w), reduction=reduction)),
                         (nr.nn.CrossEntropyLoss(nr.tensor(w), ignore_index=2,
                                                 reduction=reduction, label_smoothing=0.1),
                          torch.nn.CrossEntropyLoss(torch.tensor(w), ignore_index=2,
                                                    reduction=reduction, label_smoothing=0.1))):
        ignored = ours.ignore_index
        check_op([x, np.where(target == -100, ignored, target)], per_library(ours, theirs),
                 dtype=dtype, rng=rng)
        assert list(ours.state_dict()) == list(theirs.state_dict()) == ["weight"]


def test_legacy_size_average_and_reduce(rng):
    torch = import_torch()
    x, y = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    for size_average, reduce in ((False, None), (None, False), (True, True)):
        with pytest.warns(UserWarning, match="size_average and reduce"):
            ours = F.l1_loss(nr.tensor(x), nr.tensor(y), size_average, reduce)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = torch.nn.functional.l1_loss(torch.tensor(x), torch.tensor(y),
                                                   size_average, reduce)
        assert_close(ours, expected, "float64", f"{size_average}, {reduce}")
    with pytest.warns(UserWarning, match="reduction='sum'"):
        assert nr.nn.MSELoss(size_average=False).reduction == "sum"


# ============================================================== normalisation
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,normalized", [((3, 4), (4,)), ((2, 3, 4), (3, 4)), ((5,), 5)])
def test_layer_norm_equals_pytorch(shape, normalized, dtype, rng):
    torch = import_torch()
    tf = torch.nn.functional
    n = (normalized,) if isinstance(normalized, int) else normalized
    x = 2 + 3 * rng.standard_normal(shape)
    w, b = rng.standard_normal(n), rng.standard_normal(n)
    check_op([x, w, b], per_library(lambda a, c, d: F.layer_norm(a, normalized, c, d, 1e-3),
                                    lambda a, c, d: tf.layer_norm(a, n, c, d, 1e-3)),
             dtype=dtype, rng=rng)
    check_op([x], per_library(lambda a: F.layer_norm(a, normalized),
                              lambda a: tf.layer_norm(a, n)), dtype=dtype, rng=rng)
    for options in ({}, {"bias": False}, {"elementwise_affine": False}, {"eps": 0.1}):
        ours = nr.nn.LayerNorm(normalized, dtype=dtype, **options)
        theirs = torch.nn.LayerNorm(normalized, dtype=_torch_dtype(torch, dtype), **options)
        assert list(ours.state_dict()) == list(theirs.state_dict())
        assert repr(ours) == repr(theirs)
        with torch.no_grad():
            for (name, p), (_, q) in zip(ours.named_parameters(), theirs.named_parameters()):
                p._array[...] = rng.standard_normal(p.shape)
                q.copy_(torch.from_numpy(p.numpy()))
        check_op([x], per_library(ours, theirs), dtype=dtype, rng=rng)
        if not options.get("elementwise_affine", True):
            continue
        (ours(x.astype(dtype)) * nr.tensor(x.astype(dtype))).sum().backward()
        (theirs(torch.tensor(x.astype(dtype))) * torch.tensor(x.astype(dtype))).sum().backward()
        for (name, p), (_, q) in zip(ours.named_parameters(), theirs.named_parameters()):
            assert_close(p.grad, q.grad, dtype, f"d {name}")


def _bn_pair(torch, dtype, rng, **options):
    ours = nr.nn.BatchNorm1d(3, dtype=dtype, **options)
    theirs = torch.nn.BatchNorm1d(3, dtype=_torch_dtype(torch, dtype), **options)
    if ours.weight is not None:
        weights = {name: rng.standard_normal(3) for name, _ in ours.named_parameters()}
        ours.load_state_dict({**ours.state_dict(), **weights}, strict=True)
        theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
    return ours, theirs


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("options", [{}, {"momentum": None}, {"affine": False},
                                     {"track_running_stats": False}, {"bias": False}],
                         ids=["default", "cumulative", "no affine", "no stats", "no bias"])
@pytest.mark.parametrize("shape", [(5, 3), (4, 3, 2)])
def test_batch_norm_training_and_eval_equal_pytorch(shape, options, dtype, rng):
    torch = import_torch()
    ours, theirs = _bn_pair(torch, dtype, rng, **options)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert repr(ours) == repr(theirs)
    for step in range(3):
        x = 1.5 + 2 * rng.standard_normal(shape)
        check_op([x], per_library(ours, theirs), dtype=dtype, rng=rng)
        for (name, p), (_, q) in zip(ours.named_parameters(), theirs.named_parameters()):
            assert_close(p.grad, q.grad, dtype, f"d {name}, step {step}")
            p.grad = q.grad = None
    for name, value in theirs.state_dict().items():
        assert_close(ours.state_dict()[name], value, dtype, name)
    if ours.track_running_stats:
        assert ours.num_batches_tracked.item() == 3
        assert ours.num_batches_tracked.dtype == np.int64
    ours.eval(), theirs.eval()
    check_op([rng.standard_normal(shape)], per_library(ours, theirs), dtype=dtype, rng=rng)
    for name, value in theirs.state_dict().items():  # eval leaves the statistics alone
        assert_close(ours.state_dict()[name], value, dtype, name)


@pytest.mark.parametrize("dtype", DTYPES)
def test_functional_batch_norm_equals_pytorch(dtype, rng):
    torch = import_torch()
    x = rng.standard_normal((4, 3, 2, 2))  # F.batch_norm takes (N, C, *)
    w, b = rng.standard_normal(3), rng.standard_normal(3)
    mean, var = rng.standard_normal(3), rng.uniform(0.5, 2, 3)
    ours_stats = [nr.tensor(s.astype(dtype)) for s in (mean, var)]
    theirs_stats = [torch.tensor(s.astype(dtype)) for s in (mean, var)]
    stats = {nr: ours_stats, torch: theirs_stats}
    for training in (True, False):
        check_op([x, w, b], lambda m, a, c, d: m.nn.functional.batch_norm(
            a, *stats[m], c, d, training, 0.3, 1e-3), dtype=dtype, rng=rng)
        for ours, theirs in zip(ours_stats, theirs_stats):
            assert_close(ours, theirs, dtype, "running statistics")


def test_batch_norm_state_dict_loads_both_ways(rng):
    torch = import_torch()
    theirs = torch.nn.BatchNorm1d(3)
    theirs(torch.randn(6, 3))
    ours = nr.nn.BatchNorm1d(3)
    ours.load_state_dict(theirs.state_dict())
    assert ours.num_batches_tracked.item() == 1
    back = torch.nn.BatchNorm1d(3)
    back.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in ours.state_dict().items()})
    for name, value in theirs.state_dict().items():
        assert_close(back.state_dict()[name], value, "float32", name)
    ours.double()
    assert ours.running_mean.dtype == np.float64 and ours.num_batches_tracked.dtype == np.int64


def test_refused_batch_norm_changes_nothing():
    bn = nr.nn.BatchNorm1d(3)
    before = {k: v.copy() for k, v in bn.state_dict().items()}
    for bad in (np.zeros((1, 3), "float32"), np.zeros((2, 3)), np.zeros((2, 4), "float32")):
        with pytest.raises((ValueError, TypeError)):
            bn(bad)
    for name, value in bn.state_dict().items():
        np.testing.assert_array_equal(value, before[name])


def test_new_modules_are_exported():
    from numba_rnn.nn import layers

    for name in layers.__all__:
        assert getattr(nr.nn, name) is getattr(layers, name)
    for name in init.__all__:
        assert callable(getattr(nr.nn.init, name))


# ============================================= finite differences, float64, no torch
def weighted_sum(fn, shape, rng):
    weight = nr.tensor(rng.standard_normal(shape))
    return lambda: (fn() * weight).sum()


def leaf(array):
    return nr.tensor(np.asarray(array, dtype=np.float64), requires_grad=True)


@pytest.mark.parametrize("dim", [0, -1])
def test_gradcheck_softmax_family(dim, rng):
    x = leaf(rng.standard_normal((3, 4)))
    for fn in (F.softmax, F.log_softmax):
        gradcheck(weighted_sum(lambda: fn(x, dim), x.shape, rng), {"input": x})
        x.grad = None


def test_gradcheck_activations(rng):
    x = leaf(2 * rng.standard_normal((3, 4)))
    fns = [lambda: F.leaky_relu(x, 0.1), lambda: F.gelu(x), lambda: F.gelu(x, "tanh"),
           lambda: F.softplus(x, 2.0, 3.0), lambda: F.sigmoid(x)]
    for fn in fns:
        x.grad = None
        gradcheck(weighted_sum(fn, x.shape, rng), {"input": x})


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradcheck_regression_losses(reduction, rng):
    x, y = leaf(rng.standard_normal((3, 4))), leaf(rng.standard_normal((3, 4)))
    w = leaf(rng.uniform(0.5, 2, (3, 4)))
    shape = (3, 4) if reduction == "none" else ()
    fns = [lambda: F.l1_loss(x, y, reduction=reduction),
           lambda: F.smooth_l1_loss(x, y, reduction=reduction, beta=0.7),
           lambda: F.huber_loss(x, y, reduction=reduction, delta=0.8),
           lambda: F.mse_loss(x, y, reduction=reduction)]
    for fn in fns:
        x.grad = y.grad = None
        gradcheck(weighted_sum(fn, shape, rng), {"input": x, "target": y})
    weighted = [lambda: F.l1_loss(x, y, reduction=reduction, weight=w),
                lambda: F.mse_loss(x, y, reduction=reduction, weight=w),
                lambda: F.huber_loss(x, y, reduction=reduction, delta=0.8, weight=w)]
    for fn in weighted:
        x.grad = y.grad = w.grad = None
        gradcheck(weighted_sum(fn, shape, rng), {"input": x, "target": y, "weight": w})


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradcheck_binary_cross_entropy(reduction, rng):
    p, t = leaf(probabilities(rng, (3, 4))), leaf(probabilities(rng, (3, 4)))
    logits = leaf(3 * rng.standard_normal((3, 4)))
    w, pw = nr.tensor(rng.uniform(0.5, 2, (4,))), nr.tensor(rng.uniform(0.5, 3, (3, 1)))
    shape = (3, 4) if reduction == "none" else ()
    gradcheck(weighted_sum(lambda: F.binary_cross_entropy(p, t, w, reduction=reduction),
                           shape, rng), {"input": p, "target": t})
    t.grad = None
    for weight, pos_weight in ((None, None), (w, pw)):
        logits.grad = t.grad = None
        gradcheck(weighted_sum(lambda: F.binary_cross_entropy_with_logits(
            logits, t, weight, reduction=reduction, pos_weight=pos_weight), shape, rng),
            {"input": logits, "target": t})


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradcheck_nll_and_cross_entropy(reduction, rng):
    x = leaf(rng.standard_normal((4, 3, 2)))
    target = np.array([[0, 2], [1, -100], [2, 2], [0, 1]])
    w = nr.tensor(rng.uniform(0.5, 2, 3))
    shape = (4, 2) if reduction == "none" else ()
    fns = [lambda: F.nll_loss(x, target, w, reduction=reduction),
           lambda: F.cross_entropy(x, target, w, reduction=reduction, label_smoothing=0.2),
           lambda: F.cross_entropy(x, target, reduction=reduction, label_smoothing=0.1)]
    for fn in fns:
        x.grad = None
        gradcheck(weighted_sum(fn, shape, rng), {"input": x})
    probs = leaf(rng.uniform(0, 1, (4, 3, 2)))
    x.grad = None
    gradcheck(weighted_sum(lambda: F.cross_entropy(x, probs, w, reduction=reduction,
                                                   label_smoothing=0.1), shape, rng),
              {"input": x, "target": probs})


def test_gradcheck_layer_norm(rng):
    x = leaf(rng.standard_normal((2, 2, 3)))
    w, b = leaf(rng.standard_normal((2, 3))), leaf(rng.standard_normal((2, 3)))
    gradcheck(weighted_sum(lambda: F.layer_norm(x, (2, 3), w, b), x.shape, rng),
              {"input": x, "weight": w, "bias": b})
    x.grad = None
    gradcheck(weighted_sum(lambda: F.layer_norm(x, 3), x.shape, rng), {"input": x})


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(4, 3), (3, 3, 2)])
def test_gradcheck_batch_norm(shape, training, rng):
    x = leaf(rng.standard_normal(shape))
    w, b = leaf(rng.standard_normal(3)), leaf(rng.standard_normal(3))
    stats = [nr.tensor(rng.standard_normal(3)), nr.tensor(rng.uniform(0.5, 2, 3))]
    gradcheck(weighted_sum(lambda: F.batch_norm(x, *stats, w, b, training), shape, rng),
              {"input": x, "weight": w, "bias": b})
    model = nr.nn.BatchNorm1d(3, dtype="float64").train(training)
    x.grad = None
    gradcheck(weighted_sum(lambda: model(x), shape, rng),
              {"input": x, **dict(model.named_parameters())})


# ================================================================== bad input
def _f32(*shape):
    return np.zeros(shape, "float32")


def _t(*shape):
    return nr.tensor(np.zeros(shape))


BAD = [
    ("eye_ rank", lambda: init.eye_(_t(2, 2, 2)), ValueError, ["tensor", "2-D", "(2, 2, 2)"]),
    ("orthogonal_ rank", lambda: init.orthogonal_(_t(3)), ValueError, ["tensor", "(3,)"]),
    ("fan of a vector", lambda: init.xavier_uniform_(_t(3)), ValueError, ["tensor", "(3,)"]),
    ("kaiming mode", lambda: init.kaiming_normal_(_t(2, 2), mode="fan_avg"), ValueError, ["mode", "'fan_in'", "'fan_avg'"]),
    ("kaiming nonlinearity", lambda: init.kaiming_uniform_(_t(2, 2), nonlinearity="swish"), ValueError, ["nonlinearity", "'swish'"]),
    ("gain nonlinearity", lambda: init.calculate_gain("swish"), ValueError, ["nonlinearity", "'relu'", "'swish'"]),
    ("gain param", lambda: init.calculate_gain("leaky_relu", "x"), ValueError, ["param", "'x'"]),
    ("uniform_ integers", lambda: init.uniform_(nr.tensor([1, 2])), TypeError, ["tensor", "int64"]),
    ("uniform_ array", lambda: init.uniform_(np.zeros(3)), TypeError, ["tensor", "ndarray"]),
    ("uniform_ bounds", lambda: init.uniform_(_t(2), 1, 0), ValueError, ["b", "1.0", "0.0"]),
    ("normal_ std", lambda: init.normal_(_t(2), 0, -1), ValueError, ["std", "-1"]),
    ("normal_ generator", lambda: init.normal_(_t(2), generator=3), TypeError, ["generator", "int"]),
    ("trunc_normal_ bounds", lambda: init.trunc_normal_(_t(2), a=1, b=1), ValueError, ["b", "1.0"]),
    ("constant_ value", lambda: init.constant_(_t(2), "1"), TypeError, ["val", "str"]),
    ("bce range", lambda: F.binary_cross_entropy(np.array([0.5, 1.5], "float32"), _f32(2)), ValueError, ["input", "[0, 1]", "1.5"]),
    ("bce shape", lambda: F.binary_cross_entropy(_f32(2), _f32(3)), ValueError, ["target", "(2,)", "(3,)"]),
    ("bce dtype", lambda: F.binary_cross_entropy(_f32(2), np.zeros(2)), TypeError, ["target", "float32", "float64"]),
    ("bce weight shape", lambda: F.binary_cross_entropy(_f32(2, 2), _f32(2, 2), np.ones(3)), ValueError, ["weight", "(2, 2)", "(3,)"]),
    ("bce weight grad", lambda: F.binary_cross_entropy(_f32(2), _f32(2), nr.tensor(np.ones(2, "float32"), requires_grad=True)), ValueError, ["weight", "requires grad"]),
    ("bce weight dtype", lambda: F.binary_cross_entropy(_f32(2), _f32(2), nr.tensor(np.ones(2))), TypeError, ["weight", "float32", "float64"]),
    ("pos_weight shape", lambda: F.binary_cross_entropy_with_logits(_f32(2, 3), _f32(2, 3), pos_weight=np.ones(2)), ValueError, ["pos_weight", "(2, 3)", "(2,)"]),
    ("bce integer input", lambda: F.binary_cross_entropy_with_logits(np.zeros(2, np.int64), _f32(2)), TypeError, ["input", "int64"]),
    ("smooth_l1 beta", lambda: F.smooth_l1_loss(_f32(2), _f32(2), beta=-1), ValueError, ["beta", "-1"]),
    ("huber delta", lambda: F.huber_loss(_f32(2), _f32(2), delta=0), ValueError, ["delta", "0"]),
    ("l1 weight shape", lambda: F.l1_loss(_f32(2, 2), _f32(2, 2), weight=_f32(2)), ValueError, ["weight", "(2, 2)", "(2,)"]),
    ("l1 shapes", lambda: F.l1_loss(_f32(2, 3), _f32(3)), ValueError, ["target", "(2, 3)", "(3,)"]),
    ("reduction", lambda: F.l1_loss(_f32(2), _f32(2), reduction="avg"), ValueError, ["reduction", "'mean'", "'avg'"]),
    ("size_average", lambda: F.l1_loss(_f32(2), _f32(2), size_average="yes"), TypeError, ["size_average", "'yes'"]),
    ("nll weight shape", lambda: F.nll_loss(_f32(2, 3), np.array([0, 1]), np.ones(4)), ValueError, ["weight", "(3,)", "(4,)"]),
    ("cross_entropy float target", lambda: F.cross_entropy(_f32(2, 3), _f32(2)), TypeError, ["target", "integer", "float32", "(2,)"]),
    ("label_smoothing", lambda: F.cross_entropy(_f32(2, 3), np.array([0, 1]), label_smoothing=1.5), ValueError, ["label_smoothing", "1.5"]),
    ("probabilities ignore_index", lambda: F.cross_entropy(_f32(2, 3), _f32(2, 3), ignore_index=0), ValueError, ["ignore_index", "0"]),
    ("layer_norm shape", lambda: F.layer_norm(_f32(2, 3), (4,)), ValueError, ["input", "(*, 4)", "(2, 3)"]),
    ("layer_norm weight", lambda: F.layer_norm(_f32(2, 3), 3, _f32(4)), ValueError, ["weight", "(3,)", "(4,)"]),
    ("layer_norm normalized_shape", lambda: F.layer_norm(_f32(2, 3), "3"), TypeError, ["normalized_shape", "'3'"]),
    ("batch_norm eval without statistics", lambda: F.batch_norm(_f32(2, 3), None, None), ValueError, ["running_mean", "None"]),
    ("batch_norm one value per channel", lambda: F.batch_norm(_f32(1, 3), None, None, training=True), ValueError, ["input", "more than 1 value", "(1, 3)"]),
    ("batch_norm statistics shape", lambda: F.batch_norm(_f32(2, 3), nr.tensor(_f32(4)), nr.tensor(_f32(4))), ValueError, ["running_mean", "(3,)", "(4,)"]),
    ("batch_norm statistics array", lambda: F.batch_norm(_f32(2, 3), _f32(3), _f32(3)), TypeError, ["running_mean", "ndarray"]),
    ("batch_norm rank", lambda: F.batch_norm(_f32(3), None, None, training=True), ValueError, ["input", "(N, C)", "(3,)"]),
    ("softmax dim", lambda: F.softmax(_f32(2, 3), 2), ValueError, ["dim", "[-2, 2)", "2"]),
    ("softmax dtype", lambda: F.softmax(_f32(2, 3), 1, dtype="int32"), TypeError, ["dtype", "int32"]),
    ("gelu approximate", lambda: F.gelu(_f32(2), approximate="fast"), ValueError, ["approximate", "'fast'"]),
    ("leaky_relu slope", lambda: F.leaky_relu(_f32(2), "a"), TypeError, ["negative_slope", "'a'"]),
    ("BatchNorm1d rank", lambda: nr.nn.BatchNorm1d(3)(_f32(2, 3, 4, 5)), ValueError, ["input", "4-D", "(2, 3, 4, 5)"]),
    ("BatchNorm1d channels", lambda: nr.nn.BatchNorm1d(3)(_f32(2, 4)), ValueError, ["input", "3 channels", "(2, 4)"]),
    ("BatchNorm1d dtype of input", lambda: nr.nn.BatchNorm1d(3)(np.zeros((2, 3))), TypeError, ["input", "float32", "float64"]),
    ("BatchNorm1d num_features", lambda: nr.nn.BatchNorm1d(0), ValueError, ["num_features", "0"]),
    ("BatchNorm1d momentum", lambda: nr.nn.BatchNorm1d(3, momentum=2), ValueError, ["momentum", "2"]),
    ("BatchNorm1d dtype", lambda: nr.nn.BatchNorm1d(3, dtype="int32"), TypeError, ["dtype", "int32"]),
    ("BatchNorm1d device", lambda: nr.nn.BatchNorm1d(3, device="tpu"), ValueError, ["device", "'tpu'"]),
    ("LayerNorm shape", lambda: nr.nn.LayerNorm(0), ValueError, ["normalized_shape", "0"]),
    ("LayerNorm dtype of input", lambda: nr.nn.LayerNorm(3, dtype="float64")(_f32(2, 3)), TypeError, ["input", "float64", "float32"]),
    ("Flatten order", lambda: nr.nn.Flatten(2, 1)(_f32(2, 3, 4)), ValueError, ["start_dim", "1", "2"]),
    ("Flatten range", lambda: nr.nn.Flatten(3)(_f32(2, 3)), ValueError, ["start_dim", "(2, 3)", "3"]),
    ("Softmax dim", lambda: nr.nn.Softmax(1.5), TypeError, ["dim", "1.5"]),
    ("NLLLoss reduction", lambda: nr.nn.NLLLoss(reduction="avg"), ValueError, ["reduction", "'avg'"]),
    ("CrossEntropyLoss weight", lambda: nr.nn.CrossEntropyLoss(weight="heavy"), TypeError, ["weight", "str"]),
    ("ReLU inplace", lambda: nr.nn.ReLU(inplace=1), TypeError, ["inplace", "1"]),
]


@pytest.mark.parametrize("name,call,error,words", BAD, ids=[b[0] for b in BAD])
def test_bad_input(name, call, error, words):
    with pytest.raises(error) as info:
        call()
    for word in words:
        assert word in str(info.value), (word, str(info.value))


@pytest.mark.parametrize("make", [lambda **kw: nr.nn.LayerNorm((2, 3), **kw),
                                  lambda **kw: nr.nn.BatchNorm1d(6, **kw)],
                         ids=["LayerNorm", "BatchNorm1d"])
def test_norm_parameters_start_at_ones_and_zeros_and_reset_to_them(make):
    layer = make()
    assert np.all(layer.weight.numpy() == 1) and np.all(layer.bias.numpy() == 0)
    with nr.no_grad():
        layer.weight.fill_(3.0)
        layer.bias.fill_(2.0)
    layer.reset_parameters()
    assert np.all(layer.weight.numpy() == 1) and np.all(layer.bias.numpy() == 0)
    assert [n for n, _ in make(bias=False).named_parameters()] == ["weight"]
    off = make(**({"elementwise_affine": False} if "LayerNorm" in type(layer).__name__
                  else {"affine": False}))
    assert off.weight is None and off.bias is None and not list(off.parameters())
