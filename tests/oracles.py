"""Helpers that hold numba_rnn against its oracles: the NumPy reference, central finite
differences in float64, and PyTorch (optional). One problem description serves all
three, for every option of the layers."""
import os

import numpy as np
import pytest

import numba_rnn as nr
from numba_rnn.testing import (GRADCHECK_MAX_RELATIVE_ERROR, assert_close, num_states,
                               relative_error, to_numpy)

LAYERS = {"lstm": nr.LSTM, "gru": nr.GRU, "rnn_tanh": nr.RNN, "rnn_relu": nr.RNN,
          "ln_lstm": nr.LayerNormLSTM, "ln_gru": nr.LayerNormGRU}


def require(module):
    """``module``, imported for a test that needs it (an oracle, a test tool): a clean
    skip where it is absent, except under ``.ci/run`` (NUMBA_RNN_REQUIRE_ALL=1), where an
    absent one fails instead of letting CI pass on fewer checks than it claims."""
    if os.environ.get("NUMBA_RNN_REQUIRE_ALL") == "1":
        try:
            return __import__(module)
        except ImportError as exc:
            pytest.fail(f"{module} is required under .ci/run but does not import: {exc}",
                        pytrace=False)
    return pytest.importorskip(module)


def skip_or_fail(reason):
    """Skip a test whose tool is missing here; under .ci/run (NUMBA_RNN_REQUIRE_ALL=1)
    fail it instead."""
    if os.environ.get("NUMBA_RNN_REQUIRE_ALL") == "1":
        pytest.fail(f"required under .ci/run: {reason}", pytrace=False)
    pytest.skip(reason)


def import_torch():
    """PyTorch with TF32 off, or a clean skip where it is absent."""
    torch = require("torch")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    return torch


def build_layer(mode, inputs, hidden, num_layers, dtype, **options):
    if mode.startswith("rnn_"):
        options["nonlinearity"] = mode[4:]
    return LAYERS[mode](inputs, hidden, num_layers=num_layers, dtype=dtype, **options)


def make_problem(rng, mode, steps, batch, inputs, hidden, num_layers, dtype,
                 batch_first=False, with_states=True, unbatched=False, bidirectional=False,
                 proj_size=0, bias=True, lengths=None, **layer_options):
    """A layer, its input and initial states as requires-grad tensors, lengths (or None),
    and random upstream weights that turn output and final states into one scalar loss;
    ``layer_options`` go to the layer as they are (zoneout=..., forget_bias=...)."""
    options = dict(batch_first=batch_first, bidirectional=bidirectional, bias=bias,
                   **layer_options)
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
        data = leaf._array
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


def directional_gradcheck(loss_fn, arrays, grads, rng, eps=1e-6):
    """Central differences along one random direction v per array: for each name,
    (L(a + εv) - L(a - εv)) / 2ε against <grads[name], v>, the error relative to the
    largest the derivative could be, |grad|·|v|, below the gradcheck bound. Two
    evaluations of the float64 scalar ``loss_fn()`` per array instead of two per
    element; ``arrays``: name -> the array that ``loss_fn`` reads, perturbed in place
    and restored; ``grads``: name -> its gradient (None for zero)."""
    errors = {}
    for name, array in arrays.items():
        direction = rng.standard_normal(array.shape)
        base = np.array(to_numpy(array), dtype=np.float64)
        values = []
        for sign in (1.0, -1.0):
            array[...] = nr.backend.to_device(base + sign * eps * direction, array.dtype)
            with nr.no_grad():
                values.append(float(loss_fn()))
        array[...] = nr.backend.to_device(base, array.dtype)
        numeric = (values[0] - values[1]) / (2 * eps)
        grad = np.zeros(array.shape) if grads[name] is None else to_numpy(grads[name])
        analytic = float((grad * direction).sum())
        scale = max(np.linalg.norm(grad) * np.linalg.norm(direction), abs(numeric), 1e-12)
        errors[name] = abs(analytic - numeric) / scale
    worst = max(errors, key=errors.get)
    assert errors[worst] < GRADCHECK_MAX_RELATIVE_ERROR, (worst, errors)
    return errors


def finite_difference_check(layer, x, states, upstream, lengths=None, eps=1e-6):
    """gradcheck of a recurrent layer's loss for the input, the states and every
    parameter."""
    return gradcheck(lambda: loss_of(layer, x, states, upstream, lengths),
                     named_leaves(layer, x, states), eps)


def directional_check(layer, x, states, upstream, lengths=None, seed=0):
    """directional_gradcheck of a recurrent layer's loss for the input, the states and
    every parameter: for kernels that are slow to run many times in the simulator."""
    def loss():
        return loss_of(layer, x, states, upstream, lengths)

    loss().backward()
    leaves = named_leaves(layer, x, states)
    return directional_gradcheck(lambda: loss().item(), {n: t._array for n, t in leaves.items()},
                                 {n: t.grad for n, t in leaves.items()},
                                 np.random.default_rng(seed))


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


def per_library(ours, theirs):
    """An ``fn(lib, *inputs)`` for check_op from two callables, one per library (our
    module or function, and the same PyTorch one)."""
    return lambda lib, *inputs: (ours if lib is nr else theirs)(*inputs)


def _outputs(out):
    return list(out) if isinstance(out, (tuple, list)) else [out]


def check_op(shapes, fn, low=None, high=None, dtype="float32", rng=None, grads=None,
             extra=(), name="op"):
    """Hold ``fn(lib, *inputs, *extra)`` against PyTorch: ``lib`` is ``numba_rnn`` and
    then ``torch``, ``inputs`` the same values as tensors of each.

    ``shapes``: one entry per input, a shape (values drawn from ``rng``: standard normal,
    or uniform in [``low``, ``high``] where both are given) or an array (used as it is:
    float ones cast to ``dtype``, integer and bool ones kept). ``extra``: more arguments
    after the tensors, to numba_rnn as they are and to PyTorch as tensors where they are
    arrays (integer targets, say). ``grads``: the numbers of the inputs whose gradients
    are compared (default: every float input; only those require grad).

    Compares each output's dtype and values (``numba_rnn.testing.assert_close``, the
    project's one tolerance) and, through a random weighting of the float outputs
    summed to one scalar, the gradient of every input in ``grads``; a tuple output
    (``max(dim)``'s values and indices) is compared element by element. Returns
    ``(ours, theirs, out, expected)``: both lists of inputs and both outputs, for more
    checks."""
    torch = import_torch()
    rng = np.random.default_rng(0) if rng is None else rng
    arrays = []
    for entry in shapes:
        if isinstance(entry, np.ndarray):
            arrays.append(entry.astype(dtype) if entry.dtype.kind == "f" else entry)
        elif low is not None and high is not None:
            arrays.append(rng.uniform(low, high, entry).astype(dtype))
        else:
            arrays.append(rng.standard_normal(entry).astype(dtype))
    if grads is None:
        grads = [k for k, a in enumerate(arrays) if a.dtype.kind == "f"]
    ours = [nr.tensor(a, requires_grad=k in grads) for k, a in enumerate(arrays)]
    theirs = [torch.tensor(a, requires_grad=k in grads) for k, a in enumerate(arrays)]
    torch_extra = [torch.from_numpy(e) if isinstance(e, np.ndarray) else e for e in extra]
    out, expected = fn(nr, *ours, *extra), fn(torch, *theirs, *torch_extra)
    outs, expecteds = _outputs(out), _outputs(expected)
    assert len(outs) == len(expecteds), f"{name}: {len(outs)} outputs, expected {len(expecteds)}"
    loss = reference = None
    for k, (a, b) in enumerate(zip(outs, expecteds)):
        label = name if len(outs) == 1 else f"{name} output {k}"
        expected_dtype = to_numpy(b).dtype
        assert a.dtype == expected_dtype, f"{label}: dtype {a.dtype}, expected {expected_dtype}"
        assert_close(a, b, dtype if a.dtype.kind == "f" else "float64", f"{label} value")
        if a.dtype.kind == "f" and grads:
            weight = np.asarray(rng.standard_normal(tuple(a.shape)), dtype=a.dtype)
            term = (a * nr.tensor(weight)).sum()
            expected_term = (b * torch.from_numpy(weight)).sum()
            loss = term if loss is None else loss + term
            reference = expected_term if reference is None else reference + expected_term
    if loss is not None:
        loss.backward()
        reference.backward()
    for k in grads:
        assert ours[k].grad is not None, f"{name}: input {k} got no gradient"
        assert_close(ours[k].grad, theirs[k].grad, dtype, f"{name}: d input {k}")
    return ours, theirs, out, expected
