"""Each op is defined once (issue 27 point 1): ``Tensor.x``, ``nr.x`` and ``F.x`` are
one function, and the bugs of the old copies are gone (point 6), each held against
PyTorch where it is installed and against exact values otherwise."""
import warnings

import numpy as np
import pytest

import numba_rnn as nr
import numba_rnn.nn.functional as F
from numba_rnn.ops import elementwise, join, softmax
from oracles import import_torch

ELEMENTWISE = ["exp", "log", "log1p", "expm1", "sqrt", "rsqrt", "reciprocal", "square",
               "tanh", "sigmoid", "relu", "sin", "cos", "abs", "sign", "floor", "ceil",
               "trunc", "round"]


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_tensor_method_and_function_are_one_op(name):
    op = getattr(elementwise, name)
    assert getattr(nr.Tensor, name) is op
    assert getattr(nr, name) is op


@pytest.mark.parametrize("name", ["relu", "tanh", "sigmoid", "leaky_relu", "gelu", "softplus"])
def test_functional_activations_are_the_ops(name):
    assert getattr(F, name) is getattr(elementwise, name)


def test_softmax_stack_where_are_one_op():
    assert F.softmax is nr.softmax is softmax.softmax
    assert F.log_softmax is nr.log_softmax is softmax.log_softmax
    assert nr.stack is join.stack and nr.cat is join.cat and nr.where is join.where


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sigmoid_does_not_overflow(dtype):
    # the old nr.sigmoid was 1/(1+exp(-x)): exp(100) overflowed in float32, with a warning
    x = nr.tensor(np.array([-1000.0, -100.0, -20.0, 0.0, 20.0, 100.0, 1000.0], dtype=dtype),
                  requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = nr.sigmoid(x)
        y.sum().backward()
    v = np.array([-1000, -100, -20, 0, 20, 100, 1000], dtype=np.float64)
    expected = np.exp(-np.logaddexp(0, -v))  # σ(v) in float64, without overflow
    got = y.numpy().astype(np.float64)
    assert np.all(np.isfinite(x.grad.numpy()))
    # within a float32 ulp or two of the exact value, subnormals included
    np.testing.assert_allclose(got, expected.astype(dtype), rtol=4 * np.finfo(dtype).eps,
                               atol=4 * np.finfo(dtype).smallest_subnormal)
    assert got[1] > 0  # σ(-100) = 3.7e-44: a float32 subnormal, not 0 from 1/(1+inf)


def test_integer_inputs_as_pytorch():
    ints = nr.tensor([-2, 0, 3])
    assert F.relu(ints).dtype == np.int64 and F.relu(ints).tolist() == [0, 0, 3]
    assert nr.relu(ints).tolist() == ints.relu().tolist() == [0, 0, 3]
    assert F.sigmoid(ints).dtype == np.float32  # a float function of ints computes in float32
    assert nr.exp(ints).dtype == np.float32


def test_against_pytorch_at_extreme_values():
    torch = import_torch()
    values = np.array([-1e4, -100.0, -30.0, -1.0, -1e-8, 0.0, 1e-8, 1.0, 30.0, 100.0, 1e4],
                      dtype=np.float32)
    for name in ["sigmoid", "tanh", "relu", "softplus", "gelu", "leaky_relu"]:
        ours = nr.tensor(values, requires_grad=True)
        theirs = torch.tensor(values, requires_grad=True)
        y = getattr(F, name)(ours)
        t = getattr(torch.nn.functional, name)(theirs)
        y.sum().backward()
        t.sum().backward()
        np.testing.assert_allclose(y.numpy(), t.detach().numpy(), rtol=1e-6, atol=1e-37,
                                   err_msg=name)
        np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-6,
                                   atol=1e-37, err_msg=name)


def test_stack_promotes_as_pytorch_in_the_data_loader_too():
    from numba_rnn.utils.data import default_collate
    a, b = nr.tensor([1, 2]), nr.tensor([1.5, 2.5])
    assert nr.stack([a, b]).dtype == np.float32  # int64 with float32: float32, as torch
    assert default_collate([a, b]).dtype == np.float32
    with pytest.raises(Exception, match="equal size"):
        default_collate([a, nr.tensor([1, 2, 3])])


def test_every_function_that_is_also_a_method_is_one_op():
    """nr.x is Tensor.x wherever PyTorch has both (softmax and log_softmax differ only
    in their signatures: Tensor.softmax(dim, dtype), torch.softmax(input, dim, ...))."""
    from numba_rnn import functions
    different = [name for name in functions._METHODS
                 if hasattr(nr.Tensor, name) and getattr(nr, name) is not getattr(nr.Tensor, name)]
    assert sorted(different) == ["log_softmax", "softmax"]
