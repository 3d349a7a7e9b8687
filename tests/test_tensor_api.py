"""The Tensor API of issue 14 (creation functions, dtypes, shapes, indexing, reductions,
comparisons, in-place operations): every case is one function written against the
shared API, run once with numba_rnn and once with PyTorch on the same float64 values;
outputs and every input's gradient must agree, and the gradients must also match float64
central finite differences through numba_rnn alone (no PyTorch needed). The elementwise
ops are also held against PyTorch over wide ranges of values (EXTREME)."""
import numpy as np
import pytest

import numba_rnn as nr
from oracles import check_op, gradcheck

try:
    import torch
except ImportError:
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")

# name: (function of (library, *inputs), input shapes, positive inputs?)
CASES = {
    "exp": (lambda m, x: x.exp(), [(2, 3)], False),
    "log": (lambda m, x: m.log(x), [(2, 3)], True),
    "log1p": (lambda m, x: x.log1p(), [(2, 3)], True),
    "sqrt_rsqrt": (lambda m, x: x.sqrt() + m.rsqrt(x), [(2, 3)], True),
    "tanh_sigmoid_relu": (lambda m, x: m.tanh(x) * x.sigmoid() + m.relu(x), [(2, 3)], False),
    "abs_square_recip": (lambda m, x: x.abs() + m.square(x) + (x + 3).reciprocal(), [(2, 3)], False),
    "sin_cos": (lambda m, x: x.sin() * m.cos(x), [(3,)], False),
    "clamp": (lambda m, x: x.clamp(-0.5, 0.5) + m.clamp(x, min=0.1) + x.clamp(max=0.2), [(2, 3)], False),
    "pow": (lambda m, x, y: x ** 3 + x ** y + 2 ** y + m.pow(x, 0.5), [(2, 3), (2, 3)], True),
    "divide_broadcast": (lambda m, x, y: x / y - y * x + m.div(x, 2), [(2, 3), (3,)], True),
    "scalar_left": (lambda m, x: 1 - x + 2 / (x + 3) - 0.5 * x, [(4,)], False),
    "maximum_minimum": (lambda m, x, y: m.maximum(x, y) + m.minimum(x, y * 2), [(2, 3), (2, 3)], False),
    "max_min_tensor": (lambda m, x, y: m.max(x, y) - x.min(y), [(2, 3), (2, 3)], False),
    "sum_mean": (lambda m, x: x.sum(1) + x.mean((0, 1)) + m.sum(x, 0, keepdim=True).sum(), [(2, 3)], False),
    "var_std": (lambda m, x: x.var(1) + x.std() + x.var(0, unbiased=False).sum() + m.std(x, 1, keepdim=True).sum(), [(3, 4)], False),
    "max_all": (lambda m, x: x.max() + m.min(x), [(2, 3)], False),
    "max_dim": (lambda m, x: x.max(1).values + m.max(x, 1)[0] + x.min(0, keepdim=True)[0].sum(), [(2, 3)], False),
    "amax_logsumexp": (lambda m, x: x.amax(1) + m.logsumexp(x, 1) + x.logsumexp(0, keepdim=True).sum(), [(2, 3)], False),
    "norm": (lambda m, x: x.norm() + x.norm(p=1) + x.norm(dim=1).sum(), [(2, 3)], False),
    "cumsum_prod": (lambda m, x: x.cumsum(1) + m.cumsum(x, 0) + x.prod(1, keepdim=True), [(2, 3)], False),
    "topk_sort": (lambda m, x: x.topk(2, dim=1).values + m.sort(x, 1, descending=True)[0][:, :2] + x.topk(2, largest=False)[0], [(2, 3)], False),
    "view_reshape": (lambda m, x: x.view(-1).reshape(3, -1).t() * x.reshape(2, 3) + m.reshape(x, (2, 3)), [(2, 3)], False),
    "transpose_permute": (lambda m, x: x.transpose(0, 2).permute(2, 1, 0).contiguous() + x.permute(0, 2, 1).transpose(1, 2), [(2, 3, 2)], False),
    "squeeze_unsqueeze": (lambda m, x: x.unsqueeze(1).squeeze(1) + x.unsqueeze(-1).squeeze() + m.unsqueeze(x, 0)[0], [(2, 3)], False),
    "expand_repeat": (lambda m, x: x.expand(2, 2, 3) * x.repeat(1, 2, 1) + x.repeat(2, 1, 1)[2:] + x.expand(-1, 2, -1), [(2, 1, 3)], False),
    "flatten_narrow": (lambda m, x: x.flatten()[:4] + x.narrow(1, 1, 2).flatten() + m.flatten(x, 1)[0].sum(), [(2, 3)], False),
    "split_chunk_unbind": (lambda m, x: x.split(1, dim=1)[1] * x.chunk(2, 0)[0].sum() + x.unbind(1)[2].sum() + x.split([2, 1], 1)[0].sum(), [(2, 3)], False),
    "clone_flip": (lambda m, x: x.clone() * x.flip(0) + m.flip(x, [1]), [(2, 3)], False),
    "cat_stack": (lambda m, x, y: m.cat([x, y, x], 1).sum() + m.stack([x, y], 0).sum((0, 1)) + m.cat((x, y)).sum(0), [(2, 3), (2, 3)], False),
    "index_basic": (lambda m, x: x[1] + x[:, 1:].sum() + x[..., 0].sum() + x[None, 0, 1:2].sum(), [(2, 3)], False),
    "index_advanced": (lambda m, x: x[[0, 1, 0]].sum(0) + x[m.tensor([0, 0, 1]), 1] .sum() + x[:, m.tensor([2, 2])].sum(), [(2, 3)], False),
    "index_boolean": (lambda m, x: x[x > 0].sum() + x[m.tensor([True, False])].sum(), [(2, 3)], False),
    "gather_index_select": (lambda m, x: x.gather(1, m.tensor([[0, 2], [1, 1]])).sum() + x.index_select(1, m.tensor([2, 0, 2])).sum(0) + m.gather(x, 0, m.tensor([[1, 0, 1]])), [(2, 3)], False),
    "masked_fill_where": (lambda m, x, y: x.masked_fill(x > 0, 0.5) + m.where(x > 0, x, y) + m.where(y < 0, y, 0.0) + x.where(x < 0, y), [(2, 3), (2, 3)], False),
    "matmul_family": (lambda m, a, b: m.bmm(a, b).sum(0) + m.matmul(a, b)[1] + a[0].mm(b[1]) + a[0, 0].dot(b[0, :, 0]), [(2, 2, 3), (2, 3, 2)], False),
    "softmax_functions": (lambda m, x: m.softmax(x, 1) * m.log_softmax(x, dim=0) + x.softmax(dim=-1) + x.log_softmax(1), [(2, 3)], False),
    "casts": (lambda m, x: (x.double() * 2).to(x.dtype) + x.to(m.float64).type_as(x) + x.type(x.dtype) * x.long().to(x.dtype), [(2, 3)], False),
    "setitem": (lambda m, x, y: _setitem(x, y), [(2, 3), (2, 3)], False),
    "in_place_non_leaf": (lambda m, x, y: _in_place(x, y), [(2, 3), (2, 3)], False),
}


def _setitem(x, y):
    z = x * 1
    z[0] = y[1]
    z[1, 1:] = 2.0
    z[:, 0] += y[:, 2]
    return z * x


def _in_place(x, y):
    z = x * 2
    z.add_(y)
    z.mul_(x)
    z.sub_(y, alpha=0.5)
    z.div_(y * y + 1)
    z.clamp_(-0.8, 0.8)
    w = x.clone()
    w += y
    w *= 2
    w.masked_fill_(x > 0.5, 0.25)
    return z + w * w


def _inputs(shapes, positive, rng):
    arrays = [rng.uniform(0.5, 1.5, shape) if positive else rng.standard_normal(shape)
              for shape in shapes]
    return [a.round(3) + 0.001 * np.arange(a.size).reshape(a.shape) for a in arrays]


def _first(out):
    return out[0] if isinstance(out, tuple) else out


@pytest.mark.parametrize("name", CASES)
def test_against_finite_differences(name):
    fn, shapes, positive = CASES[name]
    rng = np.random.default_rng(0)
    arrays = _inputs(shapes, positive, rng)
    leaves = {f"x{k}": nr.tensor(a, requires_grad=True) for k, a in enumerate(arrays)}
    out = _first(fn(nr, *leaves.values()))
    weights = nr.tensor(rng.standard_normal(out.shape))
    gradcheck(lambda: (_first(fn(nr, *leaves.values())) * weights).sum(), leaves)


@needs_torch
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", CASES)
def test_against_pytorch(name, dtype):
    fn, shapes, positive = CASES[name]
    rng = np.random.default_rng(1)
    out = check_op(_inputs(shapes, positive, rng), fn, dtype=dtype, rng=rng, name=name)[2]
    assert out.dtype == np.dtype(dtype), name


# ------------------------------------------------------------------ extreme ranges
def _functional(m):
    return m.nn.functional


# name: (function of (library, input), low, high): the elementwise ops over wide ranges,
# where overflow, underflow and cancellation show; values uniform in [low, high]
EXTREME = {
    "exp": (lambda m, x: m.exp(x), -100.0, 100.0),
    "expm1": (lambda m, x: m.expm1(x), -100.0, 100.0),
    "expm1 small": (lambda m, x: m.expm1(x), -1e-6, 1e-6),
    "log small": (lambda m, x: m.log(x), 1e-30, 1e-20),
    "log large": (lambda m, x: m.log(x), 1.0, 1e30),
    "log1p small": (lambda m, x: m.log1p(x), -1e-7, 1e-7),
    "log1p": (lambda m, x: m.log1p(x), -0.999, 1e30),
    "log2": (lambda m, x: m.log2(x), 1e-30, 1e30),
    "log10": (lambda m, x: m.log10(x), 1e-30, 1e30),
    "sqrt small": (lambda m, x: m.sqrt(x), 1e-30, 1e-20),
    "sqrt large": (lambda m, x: m.sqrt(x), 1.0, 1e30),
    "rsqrt small": (lambda m, x: m.rsqrt(x), 1e-12, 1e-6),
    "rsqrt large": (lambda m, x: m.rsqrt(x), 1.0, 1e30),
    "reciprocal": (lambda m, x: m.reciprocal(x), 1e-6, 1e6),
    "square": (lambda m, x: m.square(x), -1e15, 1e15),
    "sigmoid": (lambda m, x: m.sigmoid(x), -100.0, 100.0),
    "sigmoid huge": (lambda m, x: m.sigmoid(x), -1e4, 1e4),
    "tanh": (lambda m, x: m.tanh(x), -100.0, 100.0),
    "tanh small": (lambda m, x: m.tanh(x), -1e-6, 1e-6),
    "relu": (lambda m, x: m.relu(x), -100.0, 100.0),
    "leaky_relu": (lambda m, x: _functional(m).leaky_relu(x, 0.2), -100.0, 100.0),
    "softplus": (lambda m, x: _functional(m).softplus(x), -100.0, 100.0),
    "softplus beta": (lambda m, x: _functional(m).softplus(x, 3.0, 5.0), -100.0, 100.0),
    "gelu": (lambda m, x: _functional(m).gelu(x), -100.0, 100.0),
    "gelu tanh": (lambda m, x: _functional(m).gelu(x, approximate="tanh"), -100.0, 100.0),
    "sin_cos": (lambda m, x: m.sin(x) + m.cos(x), -100.0, 100.0),
    "abs": (lambda m, x: m.abs(x), -1e30, 1e30),
    "softmax": (lambda m, x: m.softmax(x, 1), -100.0, 100.0),
    "log_softmax": (lambda m, x: m.log_softmax(x, 1), -1e4, 1e4),
    "logsumexp": (lambda m, x: m.logsumexp(x, 1), -1e4, 1e4),
}
EXTREME_XFAIL = {}


@needs_torch
# exp and expm1 overflow to inf in float32 (as in PyTorch): the weighted loss then sums
# +inf and -inf, which NumPy warns about; the gradients do not depend on that sum
@pytest.mark.filterwarnings("ignore:invalid value encountered in reduce:RuntimeWarning")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", [
    pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=EXTREME_XFAIL[name]))
    if name in EXTREME_XFAIL else name for name in EXTREME])
def test_extreme_ranges_against_pytorch(name, dtype):
    fn, low, high = EXTREME[name]
    check_op([(4, 25)], fn, low, high, dtype=dtype, rng=np.random.default_rng(3), name=name)


# ----------------------------------------------------------- non-differentiable parts
NON_GRAD = {
    "compare": lambda m, x, y: [x > y, x >= 0, x < y, x <= y, x == x, x != y, x.eq(y), x.ne(y),
                                x.gt(0.1), m.lt(x, y), m.eq(x, 1.0)],
    "arg": lambda m, x, y: [x.argmax(), x.argmax(1), m.argmin(x, 0, keepdim=True),
                            x.max(1).indices, x.topk(2, 1).indices, x.sort(0)[1],
                            x.argsort(1, descending=True)],
    "logic": lambda m, x, y: [(x > 0) & (y > 0), (x > 0) | (y > 0), ~(x > 0), (x > 0).all(),
                              (x > 0).any(1), (x > 0).sum(), (x > 0).float().mean(),
                              (x > 0).long() + 1, m.isnan(x), x.sign(), x.round(),
                              x.floor(), x.ceil(), x // 1, x % 1, x.int(), x.long() // 2],
    "integer_math": lambda m, x, y: [m.arange(6).view(2, 3) * 2 + 1, m.arange(6) / 4,
                                     m.tensor([1, 2]) * 0.5, m.tensor([3, 4]) // 2,
                                     m.tensor([True, False]) + 1, m.arange(1, 7, 2),
                                     m.arange(0.0, 1.0, 0.25), m.linspace(0, 1, 5),
                                     m.eye(3), m.eye(2, 3), m.full((2, 2), 7),
                                     m.full((2,), 1.5), m.zeros(2, 3), m.ones((2, 3)),
                                     m.zeros([2], dtype=m.long), m.ones_like(x),
                                     m.zeros_like(x, dtype=m.float64), m.full_like(x, 3),
                                     x.new_zeros(2), x.new_ones((2, 1)), x.new_full((2,), 5.0),
                                     x.new_tensor([1, 2]), m.tensor(3.5), m.tensor([[1, 2]]),
                                     m.as_tensor([1.0, 2.0]), m.tensor([1, 2]).float(),
                                     m.LongTensor([1, 2]), m.FloatTensor([1, 2]),
                                     m.FloatTensor(2, 3).fill_(1), m.Tensor([1.5]),
                                     m.tensor([2.5, 3.5]).long()],
}


@needs_torch
@pytest.mark.parametrize("name", NON_GRAD)
def test_values_and_dtypes_against_pytorch(name):
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((2, 3)).round(2), rng.standard_normal((2, 3)).round(2)
    ours = NON_GRAD[name](nr, nr.tensor(x), nr.tensor(y))
    theirs = NON_GRAD[name](torch, torch.tensor(x), torch.tensor(y))
    for k, (a, b) in enumerate(zip(ours, theirs)):
        expected = b.numpy()
        assert a.shape == tuple(b.shape), (name, k)
        assert a.dtype == expected.dtype, (name, k, a.dtype, expected.dtype)
        np.testing.assert_array_equal(a.numpy(), expected, err_msg=f"{name} #{k}")


def test_dtype_names_and_conversions():
    assert nr.float is nr.float32 and nr.double is nr.float64 and nr.long is nr.int64
    x = nr.ones(2, 3)
    assert x.dtype == nr.float32 and x.double().dtype == nr.float64
    assert x.long().dtype == nr.int64 and x.int().dtype == nr.int32 and x.bool().dtype == nr.bool
    assert x.to(nr.float64).dtype == nr.float64 and x.to("cuda") is x and x.to(x) is x
    assert x.type() == "torch.FloatTensor" and x.long().type() == "torch.LongTensor"
    assert x.type("torch.LongTensor").dtype == nr.int64 and x.type_as(x.double()).dtype == nr.float64
    assert x.cuda() is x and x.cpu() is x and x.device == nr.device("cpu" if not nr.cuda.is_available() else "cuda")
    assert nr.zeros(2, device="cuda").shape == (2,) and nr.device("cuda:0").type == "cuda"
    assert x.size() == (2, 3) and x.size(1) == 3 and x.size(-2) == 2 and x.dim() == 2
    assert x.size().numel() == 6 and x.numel() == 6 and x.nelement() == 6
    with pytest.raises(ValueError, match="device"):
        nr.zeros(2, device="tpu")
    with pytest.raises(TypeError, match="dtype"):
        nr.zeros(2, dtype="complex128")
    with pytest.raises(ValueError, match="size"):
        nr.zeros(-1)


def test_python_values():
    t = nr.tensor([[1.5, 2.0], [3.0, 4.0]])
    assert float(t[0, 0]) == 1.5 and int(t[1, 1]) == 4 and len(t) == 2
    assert [row.tolist() for row in t] == [[1.5, 2.0], [3.0, 4.0]] and t.tolist()[1][0] == 3.0
    assert f"{t.sum():.1f}" == "10.5" and bool(t[0, 0] > 1)
    assert [0, 1, 2][nr.tensor(1)] == 1  # integer tensors index lists
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(t > 0)
    with pytest.raises(ValueError, match="one element"):
        float(t)
    with pytest.raises(TypeError, match="0-d"):
        len(nr.tensor(1.0))
    assert {t: 1}[t] == 1  # hashed by identity, although == is elementwise


def test_data_and_grad_are_tensors_sharing_storage():
    p = nr.nn.Parameter(nr.ones(3))
    (p * 2).sum().backward()
    assert isinstance(p.data, nr.Tensor) and isinstance(p.grad, nr.Tensor)
    p.data.add_(p.grad, alpha=-0.5)          # the word LM's update
    p.data.uniform_(-0.1, 0.1)
    assert np.all(np.abs(p.numpy()) <= 0.1) and not p.data.requires_grad
    p.data = nr.zeros(3)                     # replaces the values
    assert p.numpy().tolist() == [0, 0, 0] and p.requires_grad
    with pytest.raises(RuntimeError, match="leaf"):
        p.add_(1.0)                          # a leaf that requires grad, in grad mode
    with nr.no_grad():
        p.add_(1.0)
        p[0] = 5.0
    assert p.numpy().tolist() == [5, 1, 1] and p.is_leaf


def test_in_place_write_after_use_is_refused_or_exact():
    """A leaf modified in place after a node saved it makes backward refuse (version
    counters); a non-leaf modified in place keeps the values the node saved."""
    w = nr.tensor([1.0, 2.0], requires_grad=True)
    c = nr.tensor([3.0, 4.0])
    y = (w * c).sum()
    c.mul_(2)
    with pytest.raises(RuntimeError, match="modified in place"):
        y.backward()
    h = w * 3
    z = (h * h).sum()
    h.add_(10.0)                             # recorded: z's saved h is the old one
    z.backward()
    np.testing.assert_allclose(w.grad.numpy(), 18 * np.array([1.0, 2.0]))


def test_random_functions_follow_manual_seed():
    def draw():
        x = nr.zeros(3)
        return [nr.randn(2, 3), nr.rand(4), nr.randint(0, 5, (3,)), nr.randint(7, (2,)),
                nr.randperm(5), x.normal_(), nr.zeros(3).uniform_(-1, 1),
                nr.multinomial(nr.tensor([0.1, 0.5, 0.4]), 2),
                nr.normal(0.0, 2.0, size=(2,)), nr.nn.functional.dropout(nr.ones(8), 0.5)]

    nr.manual_seed(7)
    first = [t.numpy() for t in draw()]
    nr.manual_seed(7)
    second = [t.numpy() for t in draw()]
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    assert first[0].dtype == np.float32 and first[2].dtype == np.int64
    assert sorted(first[4].tolist()) == list(range(5)) and first[3].max() < 7
    counts = np.bincount(nr.multinomial(nr.tensor([0.0, 1.0, 3.0]), 2000, replacement=True)
                         .numpy(), minlength=3)
    assert counts[0] == 0 and 0.65 < counts[2] / 2000 < 0.85


def test_from_numpy_and_as_tensor():
    a = np.arange(4.0)
    t = nr.from_numpy(a)
    assert t.dtype == np.float64 and t.tolist() == [0, 1, 2, 3]
    if not nr.cuda.is_available():
        a[0] = 9.0
        assert t[0].item() == 9.0            # shares memory with the array, as PyTorch
    assert nr.as_tensor(t) is t and nr.as_tensor([1, 2]).dtype == np.int64
    v = nr.autograd.Variable(nr.ones(2), requires_grad=True)
    assert v.requires_grad and v.is_leaf


def test_bad_arguments_name_themselves():
    x = nr.ones(2, 3)
    with pytest.raises(ValueError, match="shape"):
        x.view(4, 2)
    with pytest.raises(ValueError, match="dims"):
        x.permute(0, 0)
    with pytest.raises(ValueError, match="tensors"):
        nr.cat([x, nr.ones(3, 3)], 1)
    with pytest.raises(ValueError, match="tensors"):
        nr.stack([x, nr.ones(3, 2)])
    with pytest.raises(TypeError, match="mask"):
        x.masked_fill(x, 0.0)
    with pytest.raises(ValueError, match="bmm"):
        nr.bmm(x, x)
    with pytest.raises(ValueError, match="split"):
        x.split([1, 1], 1)
    with pytest.raises(ValueError, match="k"):
        x.topk(4)
