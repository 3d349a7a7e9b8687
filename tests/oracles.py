"""Helpers that hold numba_rnn against its oracles: the NumPy reference, central finite
differences in float64, and PyTorch (optional). One problem description serves all
three, for every option of the layers."""
import numpy as np
import pytest

import numba_rnn as nr
from numba_rnn import reference
from numba_rnn.testing import GRADCHECK_MAX_RELATIVE_ERROR, assert_close, relative_error, to_numpy

LAYERS = {"lstm": nr.LSTM, "gru": nr.GRU, "rnn_tanh": nr.RNN, "rnn_relu": nr.RNN}
KINDS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")


def import_torch():
    """PyTorch with TF32 off, or a clean skip where it is absent."""
    torch = pytest.importorskip("torch")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    return torch


def num_states(mode):
    return 2 if mode == "lstm" else 1


def build_layer(mode, inputs, hidden, num_layers, dtype, **options):
    if mode.startswith("rnn_"):
        options["nonlinearity"] = mode[4:]
    return LAYERS[mode](inputs, hidden, num_layers=num_layers, dtype=dtype, **options)


def make_problem(rng, mode, steps, batch, inputs, hidden, num_layers, dtype,
                 batch_first=False, with_states=True, unbatched=False, bidirectional=False,
                 proj_size=0, bias=True, lengths=None):
    """A layer, its input and initial states as requires-grad tensors, lengths (or None),
    and random upstream weights that turn output and final states into one scalar loss."""
    options = dict(batch_first=batch_first, bidirectional=bidirectional, bias=bias)
    if proj_size:
        options["proj_size"] = proj_size
    layer = build_layer(mode, inputs, hidden, num_layers, dtype, **options)
    dirs = 2 if bidirectional else 1
    out = proj_size or hidden
    if unbatched:
        x_shape, s_shapes = (steps, inputs), [(num_layers * dirs, out), (num_layers * dirs, hidden)]
    else:
        x_shape = (batch, steps, inputs) if batch_first else (steps, batch, inputs)
        s_shapes = [(num_layers * dirs, batch, out), (num_layers * dirs, batch, hidden)]
    x = nr.tensor(rng.standard_normal(x_shape).astype(dtype), requires_grad=True)
    states = None
    if with_states:
        states = [nr.tensor(rng.standard_normal(shape).astype(dtype), requires_grad=True)
                  for shape in s_shapes[: num_states(mode)]]
    upstream = [rng.standard_normal(x_shape[:-1] + (dirs * out,))] + [
        rng.standard_normal(shape) for shape in s_shapes[: num_states(mode)]]
    return layer, x, states, [u.astype(dtype) for u in upstream], lengths


def call(layer, x, states, lengths=None):
    """Run a numba_rnn layer; returns the output and a list of final states."""
    hx = None if states is None else (tuple(states) if len(states) > 1 else states[0])
    output, finals = layer(x, hx, lengths=lengths)
    return output, list(finals) if isinstance(finals, tuple) else [finals]


def loss_of(layer, x, states, upstream, lengths=None):
    output, finals = call(layer, x, states, lengths)
    loss = (output * upstream[0]).sum()
    for final, weight in zip(finals, upstream[1:]):
        loss = loss + (final * weight).sum()
    return loss


def named_leaves(layer, x, states):
    leaves = {"input": x, **dict(layer.named_parameters())}
    for name, state in zip(("h_0", "c_0"), states or []):
        leaves[name] = state
    return leaves


def gradcheck(loss_fn, leaves, eps=1e-6):
    """Central differences of the scalar ``loss_fn()`` for every element of every leaf
    in ``leaves`` (name -> float64 Tensor), against the gradients that backward()
    accumulates; asserts the worst relative error is below the bound."""
    loss_fn().backward()
    errors = {}
    for name, leaf in leaves.items():
        data = leaf.data
        numeric = np.zeros(data.shape)
        with nr.no_grad():
            for index in np.ndindex(data.shape):
                original = data[index].item()
                data[index] = original + eps
                plus = loss_fn().item()
                data[index] = original - eps
                minus = loss_fn().item()
                data[index] = original
                numeric[index] = (plus - minus) / (2 * eps)
        assert leaf.grad is not None, f"{name} got no gradient"
        errors[name] = relative_error(leaf.grad, numeric)
    worst = max(errors, key=errors.get)
    assert errors[worst] < GRADCHECK_MAX_RELATIVE_ERROR, (worst, errors)
    return errors


def finite_difference_check(layer, x, states, upstream, lengths=None, eps=1e-6):
    """gradcheck of a recurrent layer's loss for the input, the states and every
    parameter."""
    return gradcheck(lambda: loss_of(layer, x, states, upstream, lengths),
                     named_leaves(layer, x, states), eps)


def reference_results(layer, x, states, upstream, lengths=None):
    """The NumPy reference's output, final states and every gradient, in float64, for the
    same problem."""
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
    dirs = 2 if layer.bidirectional else 1
    sizes = [layer.proj_size or layer.hidden_size, layer.hidden_size]
    if states is None:
        states0 = tuple(np.zeros((layer.num_layers * dirs, x_tm.shape[1], size))
                        for size in sizes[: num_states(mode)])
    else:
        states0 = tuple(state_tm(to_numpy(s).astype(np.float64)) for s in states)
    named = dict(layer.named_parameters())
    layers, names = [], []
    for k in range(layer.num_layers):
        directions, direction_names = [], []
        for d in range(dirs):
            suffix = f"_l{k}" + ("_reverse" if d else "")
            values = [named[kind + suffix].numpy().astype(np.float64)
                      if kind + suffix in named else None for kind in KINDS]
            if values[2] is None:
                values[2] = values[3] = np.zeros(values[0].shape[0])
            directions.append(tuple(values))
            direction_names.append([kind + suffix for kind in KINDS])
        layers.append(directions)
        names.append(direction_names)
    out, finals, caches = reference.stack_forward(mode, x_tm, states0, layers, lengths=lengths)
    dx, dstates0, grads = reference.stack_backward(
        mode, to_tm(upstream[0].astype(np.float64)),
        [state_tm(u.astype(np.float64)) for u in upstream[1:]], caches)
    result = {"output": from_tm(out), "input": from_tm(dx)}
    for name, final, dstate in zip(("h_0", "c_0"), finals, dstates0):
        result[name + " final"] = final[:, 0] if unbatched else final
        if states is not None:
            result[name] = dstate[:, 0] if unbatched else dstate
    for direction_names, grad_dirs in zip(names, grads):
        for kinds, layer_grads in zip(direction_names, grad_dirs):
            result.update(zip(kinds, layer_grads))
    return result


def assert_matches(expected, layer, x, states, upstream, lengths=None):
    """Forward values and every gradient of numba_rnn against ``expected`` (a mapping
    like reference_results gives)."""
    output, finals = call(layer, x, states, lengths)
    assert_close(output, expected["output"], layer.dtype, "output")
    for name, final in zip(("h_0", "c_0"), finals):
        assert_close(final, expected[name + " final"], layer.dtype, name + " final")
    loss_of(layer, x, states, upstream, lengths).backward()
    for name, leaf in named_leaves(layer, x, states).items():
        assert leaf.grad is not None, f"{name} got no gradient"
        assert_close(leaf.grad, expected[name], layer.dtype, f"d {name}")
