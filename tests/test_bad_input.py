"""Malformed calls raise ValueError or TypeError naming the argument, what was expected and
what was given, before any kernel runs, leaving parameters and gradients untouched."""
import numpy as np
import pytest

import numba_rnn as nr
from numba_rnn import backend

T, B, I, H, L = 3, 2, 4, 5, 2


def good_state(dtype="float32", batch=B):
    return np.zeros((L, batch, H), dtype=dtype)


# (name, layer, call arguments, exception, words the message must contain)
CALLS = [
    ("input rank 1", "lstm", (np.zeros(I, "float32"),), ValueError, ["input", "3-D", "(4,)"]),
    ("input rank 4", "gru", (np.zeros((T, B, 1, I), "float32"),), ValueError, ["input", "3-D", "(3, 2, 1, 4)"]),
    ("feature size", "lstm", (np.zeros((T, B, I + 1), "float32"),), ValueError, ["input", "input_size", "4", "(3, 2, 5)"]),
    ("integer input", "gru", (np.zeros((T, B, I), "int64"),), TypeError, ["input", "float32", "int64"]),
    ("float64 into float32", "lstm", (np.zeros((T, B, I), "float64"),), TypeError, ["input", "float32", "float64"]),
    ("empty sequence", "lstm", (np.zeros((0, B, I), "float32"),), ValueError, ["input", "at least one step", "(0, 2, 4)"]),
    ("not an array", "gru", ("abc",), TypeError, ["input"]),
    ("h_0 shape", "gru", (np.zeros((T, B, I), "float32"), good_state(batch=B + 1)), ValueError, ["h_0", "(2, 2, 5)", "(2, 3, 5)"]),
    ("h_0 layers", "lstm", (np.zeros((T, B, I), "float32"), (np.zeros((1, B, H), "float32"), good_state())), ValueError, ["h_0", "(2, 2, 5)", "(1, 2, 5)"]),
    ("c_0 shape", "lstm", (np.zeros((T, B, I), "float32"), (good_state(), np.zeros((L, B, H + 1), "float32"))), ValueError, ["c_0", "(2, 2, 5)", "(2, 2, 6)"]),
    ("lstm state not a pair", "lstm", (np.zeros((T, B, I), "float32"), good_state()), TypeError, ["hx", "(h_0, c_0)", "ndarray"]),
    ("lstm state triple", "lstm", (np.zeros((T, B, I), "float32"), (good_state(),) * 3), TypeError, ["hx", "(h_0, c_0)", "length 3"]),
    ("gru state pair", "gru", (np.zeros((T, B, I), "float32"), (good_state(), good_state())), TypeError, ["hx", "h_0", "tuple of 2"]),
    ("integer state", "gru", (np.zeros((T, B, I), "float32"), good_state("int32")), TypeError, ["h_0", "float32", "int32"]),
    ("unbatched state rank", "gru", (np.zeros((T, I), "float32"), good_state()), ValueError, ["h_0", "(2, 5)", "(2, 2, 5)"]),
]

CONSTRUCTORS = [
    ("hidden_size 0", lambda: nr.LSTM(I, 0), ValueError, ["hidden_size", ">= 1", "0"]),
    ("input_size float", lambda: nr.GRU(2.5, H), TypeError, ["input_size", "int", "2.5"]),
    ("num_layers 0", lambda: nr.GRU(I, H, num_layers=0), ValueError, ["num_layers", "0"]),
    ("dropout > 1", lambda: nr.LSTM(I, H, dropout=1.5), ValueError, ["dropout", "[0, 1]", "1.5"]),
    ("dropout negative", lambda: nr.GRU(I, H, dropout=-0.1), ValueError, ["dropout", "-0.1"]),
    ("proj_size >= hidden", lambda: nr.LSTM(I, H, proj_size=H), ValueError, ["proj_size", "hidden_size", "5"]),
    ("integer dtype", lambda: nr.LSTM(I, H, dtype="int32"), TypeError, ["dtype", "float32", "int32"]),
    ("batch_first not bool", lambda: nr.GRU(I, H, batch_first="yes"), TypeError, ["batch_first", "yes"]),
]

BIDIRECTIONAL_CALLS = [
    ("bidirectional h_0", lambda: nr.GRU(I, H, num_layers=L, bidirectional=True), (np.zeros((T, B, I), "float32"), good_state()), ValueError, ["h_0", "(4, 2, 5)", "(2, 2, 5)"]),
    ("projected h_0", lambda: nr.LSTM(I, H, proj_size=2), (np.zeros((T, B, I), "float32"), (np.zeros((1, B, H), "float32"), np.zeros((1, B, H), "float32"))), ValueError, ["h_0", "(1, 2, 2)", "proj_size", "(1, 2, 5)"]),
    ("projected c_0", lambda: nr.LSTM(I, H, proj_size=2), (np.zeros((T, B, I), "float32"), (np.zeros((1, B, 2), "float32"), np.zeros((1, B, 2), "float32"))), ValueError, ["c_0", "(1, 2, 5)", "(1, 2, 2)"]),
    ("lengths count", lambda: nr.GRU(I, H), (np.zeros((T, B, I), "float32"), None, [3]), ValueError, ["lengths", "2 lengths", "got 1"]),
    ("length 0", lambda: nr.LSTM(I, H), (np.zeros((T, B, I), "float32"), None, [0, 3]), ValueError, ["lengths", "[1, 3]", "[0, 3]"]),
    ("length past T", lambda: nr.RNN(I, H), (np.zeros((T, B, I), "float32"), None, [4, 3]), ValueError, ["lengths", "[1, 3]", "[4, 3]"]),
    ("fractional length", lambda: nr.RNN(I, H), (np.zeros((T, B, I), "float32"), None, [1.5, 3]), TypeError, ["lengths", "integer"]),
    ("cell input size", lambda: nr.LSTMCell(I, H), (np.zeros((B, I + 1), "float32"),), ValueError, ["input", "input_size 4", "(2, 5)"]),
    ("cell state shape", lambda: nr.GRUCell(I, H), (np.zeros((B, I), "float32"), np.zeros((B + 1, H), "float32")), ValueError, ["h_0", "(2, 5)", "(3, 5)"]),
    ("cell state pair", lambda: nr.LSTMCell(I, H), (np.zeros((B, I), "float32"), np.zeros((B, H), "float32")), TypeError, ["hx", "(h_0, c_0)"]),
]

MORE_CONSTRUCTORS = [
    ("nonlinearity", lambda: nr.RNN(I, H, nonlinearity="sigmoid"), ValueError, ["nonlinearity", "'tanh' or 'relu'", "'sigmoid'"]),
    ("cell nonlinearity", lambda: nr.RNNCell(I, H, nonlinearity="gelu"), ValueError, ["nonlinearity", "'gelu'"]),
    ("proj_size negative", lambda: nr.LSTM(I, H, proj_size=-1), ValueError, ["proj_size", ">= 0", "-1"]),
    ("cell hidden_size", lambda: nr.GRUCell(I, 0), ValueError, ["hidden_size", "0"]),
    ("bidirectional not bool", lambda: nr.GRU(I, H, bidirectional=2), TypeError, ["bidirectional", "2"]),
]
CONSTRUCTORS += MORE_CONSTRUCTORS


def refuse_kernels(monkeypatch):
    """From here on, any kernel launch (the time loop's paths launch through backend's)
    fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("a kernel ran before the input was checked")
    monkeypatch.setattr(backend, "launch", refuse)
    monkeypatch.setattr(backend, "launch_grid", refuse)


def _trained(mode):
    layer = {"lstm": nr.LSTM, "gru": nr.GRU}[mode](I, H, num_layers=L)
    output, _ = layer(np.ones((T, B, I), "float32"))
    output.sum().backward()
    return layer, {n: (p.numpy(), p.grad.numpy()) for n, p in layer.named_parameters()}


def assert_refused(call, error, words):
    """``call()`` raises ``error`` with every one of ``words`` in its message."""
    with pytest.raises(error) as info:
        call()
    for word in words:
        assert word in str(info.value), (word, str(info.value))


@pytest.mark.parametrize("name,mode,args,error,words", CALLS, ids=[c[0] for c in CALLS])
def test_bad_call(name, mode, args, error, words, monkeypatch):
    layer, before = _trained(mode)
    refuse_kernels(monkeypatch)
    assert_refused(lambda: layer(*args), error, words)
    for n, p in layer.named_parameters():
        np.testing.assert_array_equal(p.numpy(), before[n][0])
        np.testing.assert_array_equal(p.grad.numpy(), before[n][1])


@pytest.mark.parametrize("name,make,error,words", CONSTRUCTORS, ids=[c[0] for c in CONSTRUCTORS])
def test_bad_constructor(name, make, error, words):
    assert_refused(make, error, words)


@pytest.mark.parametrize("name,make,args,error,words", BIDIRECTIONAL_CALLS,
                         ids=[c[0] for c in BIDIRECTIONAL_CALLS])
def test_bad_call_of_other_layers_and_cells(name, make, args, error, words, monkeypatch):
    module = make()
    before = {n: p.numpy() for n, p in module.named_parameters()}
    refuse_kernels(monkeypatch)
    assert_refused(lambda: module(*args), error, words)
    for n, p in module.named_parameters():
        np.testing.assert_array_equal(p.numpy(), before[n])


def test_bad_state_dict_changes_nothing():
    layer = nr.GRU(I, H)
    before = layer.state_dict()
    wrong_shape = dict(before, weight_hh_l0=np.zeros((3 * H, H + 1)))
    with pytest.raises(ValueError, match=r"weight_hh_l0.*\(15, 5\).*\(15, 6\)"):
        layer.load_state_dict(wrong_shape)
    missing = {k: np.zeros_like(v) for k, v in before.items() if k != "bias_hh_l0"}
    with pytest.raises(ValueError, match="missing.*bias_hh_l0"):
        layer.load_state_dict(missing)
    for name, value in layer.state_dict().items():
        np.testing.assert_array_equal(value, before[name])
