"""Helpers that hold numba_rnn against its oracles: the NumPy reference, central finite
differences in float64, and PyTorch (optional)."""
import numpy as np
import pytest

import numba_rnn as nr
from numba_rnn import reference
from numba_rnn.testing import (
    GRADCHECK_MAX_RELATIVE_ERROR,
    assert_close,
    relative_error,
    to_numpy,
)

LAYERS = {"lstm": nr.LSTM, "gru": nr.GRU}


def import_torch():
    """PyTorch in float64-exact CPU mode, or a clean skip where it is absent."""
    torch = pytest.importorskip("torch")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    return torch


def num_states(mode):
    return 2 if mode == "lstm" else 1


def make_problem(rng, mode, steps, batch, inputs, hidden, layers, dtype,
                 batch_first=False, with_states=True, unbatched=False):
    """A layer, its input and initial states as requires-grad tensors, and random upstream
    weights that turn output and final states into one scalar loss."""
    layer = LAYERS[mode](inputs, hidden, num_layers=layers, batch_first=batch_first, dtype=dtype)
    if unbatched:
        x_shape, s_shape = (steps, inputs), (layers, hidden)
    else:
        x_shape = (batch, steps, inputs) if batch_first else (steps, batch, inputs)
        s_shape = (layers, batch, hidden)
    x = nr.tensor(rng.standard_normal(x_shape).astype(dtype), requires_grad=True)
    states = None
    if with_states:
        states = [nr.tensor(rng.standard_normal(s_shape).astype(dtype), requires_grad=True)
                  for _ in range(num_states(mode))]
    out_shape = x_shape[:-1] + (hidden,)
    upstream = [rng.standard_normal(out_shape)] + [
        rng.standard_normal(s_shape) for _ in range(num_states(mode))]
    return layer, x, states, [u.astype(dtype) for u in upstream]


def call(layer, x, states):
    """Run a numba_rnn layer; returns the output and a list of final states."""
    hx = None if states is None else (tuple(states) if len(states) > 1 else states[0])
    output, finals = layer(x, hx)
    return output, list(finals) if isinstance(finals, tuple) else [finals]


def loss_of(layer, x, states, upstream):
    output, finals = call(layer, x, states)
    loss = (output * upstream[0]).sum()
    for final, weight in zip(finals, upstream[1:]):
        loss = loss + (final * weight).sum()
    return loss


def named_leaves(layer, x, states):
    leaves = {"input": x, **dict(layer.named_parameters())}
    for name, state in zip(("h_0", "c_0"), states or []):
        leaves[name] = state
    return leaves


def finite_difference_check(layer, x, states, upstream, eps=1e-6):
    """Central differences of the scalar loss for every element of the input, the states
    and every parameter, against the gradients that backward() accumulates."""
    loss_of(layer, x, states, upstream).backward()
    errors = {}
    for name, leaf in named_leaves(layer, x, states).items():
        data = leaf.data
        numeric = np.zeros(data.shape)
        with nr.no_grad():
            for index in np.ndindex(data.shape):
                original = data[index].item()
                data[index] = original + eps
                plus = loss_of(layer, x, states, upstream).item()
                data[index] = original - eps
                minus = loss_of(layer, x, states, upstream).item()
                data[index] = original
                numeric[index] = (plus - minus) / (2 * eps)
        errors[name] = relative_error(leaf.grad, numeric)
    worst = max(errors, key=errors.get)
    assert errors[worst] < GRADCHECK_MAX_RELATIVE_ERROR, (worst, errors)
    return errors


def reference_results(layer, x, states, upstream):
    """The NumPy reference's output, final states and every gradient, in float64, for the
    same problem (time-major, batched)."""
    mode, batch_first = layer.mode, layer.batch_first
    x_np = to_numpy(x).astype(np.float64)
    unbatched = x_np.ndim == 2
    def to_tm(a):
        a = a[:, None] if unbatched else a
        return np.swapaxes(a, 0, 1) if batch_first and not unbatched else a
    def from_tm(a):
        a = np.swapaxes(a, 0, 1) if batch_first and not unbatched else a
        return a[:, 0] if unbatched else a
    def state_tm(a):
        return a[:, None] if unbatched else a
    x_tm = to_tm(x_np)
    hidden = layer.hidden_size
    if states is None:
        states0 = tuple(np.zeros((layer.num_layers, x_tm.shape[1], hidden))
                        for _ in range(num_states(mode)))
    else:
        states0 = tuple(state_tm(to_numpy(s).astype(np.float64)) for s in states)
    params = [p.numpy().astype(np.float64) for p in layer.parameters()]
    per_layer = [params[4 * k: 4 * k + 4] for k in range(layer.num_layers)]
    out, finals, caches = reference.stack_forward(mode, x_tm, states0, per_layer)
    dx, dstates0, grads = reference.stack_backward(
        mode, to_tm(upstream[0].astype(np.float64)),
        [state_tm(u.astype(np.float64)) for u in upstream[1:]], caches)
    result = {"output": from_tm(out), "input": from_tm(dx)}
    for name, final, dstate in zip(("h_0", "c_0"), finals, dstates0):
        result[name + " final"] = final[:, 0] if unbatched else final
        if states is not None:
            result[name] = dstate[:, 0] if unbatched else dstate
    for (name, _), grad in zip(layer.named_parameters(), (g for gs in grads for g in gs)):
        result[name] = grad
    return result


def assert_matches(expected, layer, x, states, upstream):
    """Forward values and every gradient of numba_rnn against ``expected`` (a mapping
    like reference_results gives)."""
    output, finals = call(layer, x, states)
    assert_close(output, expected["output"], layer.dtype, "output")
    for name, final in zip(("h_0", "c_0"), finals):
        assert_close(final, expected[name + " final"], layer.dtype, name + " final")
    loss_of(layer, x, states, upstream).backward()
    for name, leaf in named_leaves(layer, x, states).items():
        assert leaf.grad is not None, f"{name} got no gradient"
        assert_close(leaf.grad, expected[name], layer.dtype, f"d {name}")
