"""Module: registration, dotted names, state dicts (PyTorch's included), zero_grad,
train/eval."""
import numpy as np
import pytest

import numba_rnn as nr
from oracles import import_torch


class Model(nr.nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nr.LSTM(3, 4, num_layers=2, batch_first=True)
        self.head = nr.nn.Parameter(np.ones((4, 1), dtype="float32"))
        self.note = "not a parameter"

    def forward(self, x):
        output, _ = self.lstm(x)
        return output @ self.head


def test_named_parameters_recurse_with_dotted_names():
    model = Model()
    names = [n for n, _ in model.named_parameters()]
    assert names == ["head"] + [f"lstm.{kind}_l{k}" for k in range(2)
                                for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    assert len(list(model.parameters())) == 9
    assert list(model.state_dict()) == names
    assert all(isinstance(v, np.ndarray) for v in model.state_dict().values())
    assert model.note == "not a parameter"


def test_backward_reaches_every_parameter_and_zero_grad_clears():
    model = Model()
    x = np.random.default_rng(0).standard_normal((2, 3, 3)).astype("float32")
    model(x).sum().backward()
    first = {n: p.grad.numpy() for n, p in model.named_parameters()}
    assert all(np.abs(g).sum() > 0 for g in first.values())
    model(x).sum().backward()
    for n, p in model.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), 2 * first[n], rtol=1e-6, atol=1e-7)
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_state_dict_round_trip_is_exact():
    source, target = Model(), Model()
    target.load_state_dict(source.state_dict())
    for (name, a), (_, b) in zip(source.state_dict().items(), target.state_dict().items()):
        np.testing.assert_array_equal(a, b, err_msg=name)


def test_load_state_dict_non_strict_reports_keys():
    model = Model()
    result = model.load_state_dict({"head": np.zeros((4, 1)), "extra": np.zeros(1)}, strict=False)
    assert "extra" in result.unexpected_keys and "lstm.weight_ih_l0" in result.missing_keys
    np.testing.assert_array_equal(model.head.numpy(), np.zeros((4, 1)))


def test_load_pytorch_state_dict_and_back():
    torch = import_torch()
    theirs = torch.nn.GRU(3, 5, num_layers=2)
    ours = nr.GRU(3, 5, num_layers=2)
    ours.load_state_dict(theirs.state_dict())
    for name, value in ours.state_dict().items():
        np.testing.assert_array_equal(value, theirs.state_dict()[name].numpy())
    back = torch.nn.GRU(3, 5, num_layers=2)
    back.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    for name, value in back.state_dict().items():
        assert torch.equal(value, theirs.state_dict()[name])


def test_train_eval_and_assignment_before_init():
    model = Model()
    assert model.training and model.lstm.training
    model.eval()
    assert not model.training and not model.lstm.training
    model.train()
    assert model.lstm.training

    class Broken(nr.nn.Module):
        def __init__(self):
            self.lstm = nr.LSTM(1, 1)

    with pytest.raises(AttributeError, match="Module.__init__"):
        Broken()


DTYPE_MODULES = {
    "LSTM": lambda dtype: nr.LSTM(2, 3, dtype=dtype),
    "GRU": lambda dtype: nr.GRU(2, 3, dtype=dtype),
    "RNN": lambda dtype: nr.RNN(2, 3, dtype=dtype),
    "LSTMCell": lambda dtype: nr.LSTMCell(2, 3, dtype=dtype),
    "GRUCell": lambda dtype: nr.GRUCell(2, 3, dtype=dtype),
    "RNNCell": lambda dtype: nr.RNNCell(2, 3, dtype=dtype),
    "Linear": lambda dtype: nr.nn.Linear(2, 3, dtype=dtype),
    "Embedding": lambda dtype: nr.nn.Embedding(4, 3, dtype=dtype),
}


def _torch_or_none():
    try:
        import torch
    except ImportError:
        return None
    return torch


@pytest.mark.parametrize("kind", sorted(DTYPE_MODULES))
def test_module_dtype_spellings(kind):
    make = DTYPE_MODULES[kind]
    torch = _torch_or_none()
    spellings = {np.dtype(np.float64): ["float64", "f8", "double", np.float64, np.dtype("float64"), float],
                 np.dtype(np.float32): [None, "float32", "f4", np.float32, np.dtype("float32")]}
    if torch is not None:
        spellings[np.dtype(np.float64)].append(torch.float64)
        spellings[np.dtype(np.float32)].append(torch.float32)
    for expected, values in spellings.items():
        for value in values:
            module = make(value)
            assert all(p.dtype == expected for p in module.parameters()), (value, expected)
    refused = ["bogus", "int32", np.int64, "float16", np.complex128, object, 3, True, ""]
    if torch is not None:
        refused += [torch.int64, torch.bfloat16]
    for value in refused:
        with pytest.raises(TypeError, match="dtype") as info:
            make(value)
        assert repr(value) in str(info.value)


def test_tensor_dtype_spellings():
    torch = _torch_or_none()
    assert nr.tensor([1, 2], dtype="float64").dtype == np.float64
    assert nr.tensor([1, 2], dtype=np.int32).dtype == np.int32
    assert nr.tensor([1.5], dtype=bool).dtype == np.bool_
    if torch is not None:
        assert nr.tensor([1, 2], dtype=torch.float64).dtype == np.float64
        assert nr.tensor([1, 2], dtype=torch.int64).dtype == np.int64
    for value in ("bogus", np.complex64, object, 1.5):
        with pytest.raises(TypeError, match="dtype"):
            nr.tensor([1, 2], dtype=value)


def test_dtypes_the_device_cannot_hold_are_refused():
    for value in (">f4", np.dtype(">f8"), "float128", np.longdouble, "U3", nr.tensor([1.0])):
        if np.dtype(np.longdouble).itemsize == 8 and value is np.longdouble:
            continue  # long double is float64 on this platform
        with pytest.raises(TypeError, match="dtype"):
            nr.tensor([1.0], dtype=value)
