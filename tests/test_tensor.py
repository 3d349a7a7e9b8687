"""The tensor and its autograd: every operation's gradient against central finite
differences in float64, and values and gradients against PyTorch where importable."""
import numpy as np
import pytest

import numba_rnn as nr
from numba_rnn.testing import GRADCHECK_MAX_RELATIVE_ERROR, relative_error
from oracles import check_op

try:
    import torch
except ImportError:
    torch = None

# (name, function of tensors written in the API both libraries share, input shapes)
CASES = [
    ("add", lambda a, b: a + b, [(2, 3), (2, 3)]),
    ("add broadcast", lambda a, b: a + b, [(2, 3, 4), (3, 1)]),
    ("sub broadcast", lambda a, b: a - b, [(3, 1), (2, 1, 4)]),
    ("mul broadcast", lambda a, b: a * b, [(2, 3), (3,)]),
    ("div broadcast", lambda a, b: a / (b * b + 1.0), [(2, 3), (2, 1)]),
    ("scalars", lambda a: 2.0 - 3.0 * a / 4.0 + 1.0 - 1.0 / (a * a + 2.0), [(3, 2)]),
    ("neg", lambda a: -a, [(4,)]),
    ("pow", lambda a: (a * a + 1.0) ** 1.5, [(2, 3)]),
    ("square", lambda a: a ** 2, [(2, 3)]),
    ("matmul 2d", lambda a, b: a @ b, [(2, 3), (3, 4)]),
    ("matmul batched", lambda a, b: a @ b, [(2, 3, 4), (4, 5)]),
    ("matmul broadcast", lambda a, b: a @ b, [(2, 1, 3, 4), (3, 4, 2)]),
    ("matmul vec-mat", lambda a, b: a @ b, [(3,), (3, 4)]),
    ("matmul mat-vec", lambda a, b: a @ b, [(2, 3), (3,)]),
    ("matmul dot", lambda a, b: a @ b, [(3,), (3,)]),
    ("sum", lambda a: a.sum(), [(2, 3)]),
    ("sum dim", lambda a: a.sum(1), [(2, 3, 4)]),
    ("sum dims keepdim", lambda a: a.sum((0, 2), keepdim=True), [(2, 3, 4)]),
    ("mean", lambda a: a.mean(), [(2, 3)]),
    ("mean dim", lambda a: a.mean(-1), [(2, 3)]),
    ("reshape", lambda a: a.reshape(3, 2) * a.reshape((3, 2)), [(2, 3)]),
    ("transpose", lambda a: a.transpose(0, 2) @ a.transpose(1, 2), [(2, 2, 2)]),
    (".T", lambda a, b: a.T @ b, [(3, 2), (3, 4)]),
    ("index int", lambda a: a[1] * a[-1], [(3, 4)]),
    ("index slices", lambda a: a[1:, ::2] * 2.0, [(3, 4)]),
    ("index mixed", lambda a: a[0, 1:3], [(2, 4)]),
    ("reuse", lambda a: a * a + a, [(3,)]),
]


@pytest.mark.parametrize("name,fn,shapes", CASES, ids=[c[0] for c in CASES])
def test_op_gradients_by_finite_differences(rng, name, fn, shapes, eps=1e-6):
    arrays = [rng.standard_normal(s) for s in shapes]
    leaves = [nr.tensor(a, requires_grad=True) for a in arrays]
    out = fn(*leaves)
    weight = rng.standard_normal(out.shape)
    (out * weight).sum().backward()
    for k, leaf in enumerate(leaves):
        numeric = np.zeros(arrays[k].shape)
        for index in np.ndindex(arrays[k].shape):
            plus = [a.copy() for a in arrays]
            minus = [a.copy() for a in arrays]
            plus[k][index] += eps
            minus[k][index] -= eps
            with nr.no_grad():
                f_plus = (fn(*[nr.tensor(a) for a in plus]).numpy() * weight).sum()
                f_minus = (fn(*[nr.tensor(a) for a in minus]).numpy() * weight).sum()
            numeric[index] = (f_plus - f_minus) / (2 * eps)
        assert leaf.grad.shape == leaf.shape
        assert relative_error(leaf.grad, numeric) < GRADCHECK_MAX_RELATIVE_ERROR


@pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name,fn,shapes", CASES, ids=[c[0] for c in CASES])
def test_op_against_pytorch(rng, name, fn, shapes, dtype):
    out = check_op(shapes, lambda lib, *tensors: fn(*tensors), dtype=dtype, rng=rng,
                   name=name)[2]
    assert out.dtype == np.dtype(dtype)


def test_gradients_accumulate_until_cleared():
    x = nr.tensor([1.0, 2.0, 3.0], requires_grad=True)
    (x * x).sum().backward()
    (x * 3.0).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.array([1.0, 2, 3]) + 3)
    x.grad = None
    x.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.ones(3))


def test_backward_with_gradient_argument_and_scalar_rule():
    x = nr.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    y = x * 2.0
    with pytest.raises(RuntimeError, match="scalar"):
        y.backward()
    y.backward(np.array([[1.0, 0.0], [0.5, 2.0]]))
    np.testing.assert_allclose(x.grad.numpy(), [[2.0, 0.0], [1.0, 4.0]])
    with pytest.raises(ValueError, match="gradient: expected shape"):
        y.backward(np.ones(3))


def test_no_grad_detach_and_leaves():
    x = nr.tensor([1.0, 2.0], requires_grad=True)
    with nr.no_grad():
        y = x * 2.0
    assert not y.requires_grad and y.is_leaf
    z = x.detach()
    assert not z.requires_grad and z._array is x._array
    w = x * 2.0
    assert w.requires_grad and not w.is_leaf
    with pytest.raises(RuntimeError):
        y.backward()


def test_construction_dtypes_and_conversions():
    assert nr.tensor([1.0, 2.0]).dtype == np.float32       # PyTorch's default float
    assert nr.tensor([[1, 2]]).dtype == np.int64
    assert nr.tensor(np.zeros(2)).dtype == np.float64      # arrays keep their dtype
    assert nr.tensor([1, 2], dtype="float64").dtype == np.float64
    t = nr.tensor([[1.5, 2.5]])
    assert t.shape == (1, 2) and t.ndim == 2 and t.sum().item() == 4.0
    assert isinstance(t.numpy(), np.ndarray) and np.asarray(t).shape == (1, 2)
    copy = nr.tensor(t)
    copy._array[0, 0] = 9.0
    assert t.numpy()[0, 0] == 1.5                          # nr.tensor copies
    with pytest.raises(TypeError, match="requires_grad"):
        nr.tensor([1, 2], requires_grad=True)
    with pytest.raises(TypeError, match="index"):
        t[np.array([0.5])]
    with pytest.raises(TypeError, match="index"):
        t[1.5]
    assert "tensor(" in repr(t)


@pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
def test_tensor_from_dlpack_and_array_interfaces():
    source = torch.arange(6, dtype=torch.float64).reshape(2, 3)
    np.testing.assert_array_equal(nr.tensor(source).numpy(), source.numpy())
