"""Outputs, final states and every gradient equal torch.nn's layers and cells on the same
weights and inputs, over the option matrix (skipped where PyTorch is not importable)."""
import itertools
import random

import numpy as np
import pytest

import numba_rnn as nr
from numba_rnn import backend
from numba_rnn.testing import assert_close, reference_results
from oracles import assert_matches, build_layer, import_torch, make_problem

# The option matrix: cell × bias × batch_first × bidirectional × layers × proj_size ×
# lengths (none, or unsorted with ties) × dtype. The simulator runs a fixed sample of it
# (every cell and every option value appears), a GPU the whole of it.
MATRIX = [
    case for case in itertools.product(
        ["lstm", "gru", "rnn_tanh", "rnn_relu"], [True, False], [False, True], [False, True],
        [1, 2], [0, 2], [None, "unsorted"], ["float32", "float64"])
    if case[5] == 0 or case[0] == "lstm"
]
SAMPLE = MATRIX if backend.backend_name() == "cuda" else random.Random(3).sample(MATRIX, 48)
IDS = ["-".join(str(v) for v in (c[0], "bias" if c[1] else "nobias", "bf" if c[2] else "tm",
                                 "bi" if c[3] else "uni", f"L{c[4]}", f"P{c[5]}",
                                 c[6] or "full", c[7])) for c in SAMPLE]

STEPS, BATCH, INPUTS, HIDDEN = 4, 3, 3, 4
LENGTHS = {None: None, "unsorted": [2, 4, 2]}


def torch_results(torch, layer, x, states, upstream, lengths=None):
    """PyTorch's output, final states and gradients for the same problem, as NumPy; with
    lengths, through pack_padded_sequence(enforce_sorted=False) and pad_packed_sequence."""
    dtype = getattr(torch, str(layer.dtype))
    cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}.get(layer.mode, torch.nn.RNN)
    options = dict(num_layers=layer.num_layers, bias=layer.bias,
                   batch_first=layer.batch_first, bidirectional=layer.bidirectional)
    if layer.mode == "lstm":
        options["proj_size"] = layer.proj_size
    if layer.mode.startswith("rnn_"):
        options["nonlinearity"] = layer.nonlinearity
    module = cls(layer.input_size, layer.hidden_size, **options).to(dtype)
    module.load_state_dict({k: torch.from_numpy(v) for k, v in layer.state_dict().items()})
    tx = torch.tensor(x.numpy(), requires_grad=True)
    tstates = None if states is None else [torch.tensor(s.numpy(), requires_grad=True)
                                           for s in states]
    hx = None if tstates is None else (tuple(tstates) if len(tstates) > 1 else tstates[0])
    if lengths is None:
        output, finals = module(tx, hx)
    else:
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            tx, torch.tensor(lengths), batch_first=layer.batch_first, enforce_sorted=False)
        output, finals = module(packed, hx)
        output, _ = torch.nn.utils.rnn.pad_packed_sequence(
            output, batch_first=layer.batch_first, total_length=tx.shape[1 if layer.batch_first else 0])
    finals = list(finals) if isinstance(finals, tuple) else [finals]
    loss = (output * torch.from_numpy(upstream[0])).sum()
    for final, weight in zip(finals, upstream[1:]):
        loss = loss + (final * torch.from_numpy(weight)).sum()
    loss.backward()
    result = {"output": output.detach().numpy(), "input": tx.grad.numpy()}
    for k, (name, final) in enumerate(zip(("h_0", "c_0"), finals)):
        result[name + " final"] = final.detach().numpy()
        if tstates is not None:
            result[name] = tstates[k].grad.numpy()
    for name, param in module.named_parameters():
        result[name] = param.grad.numpy()
    return result


@pytest.mark.parametrize(
    "mode,bias,batch_first,bidirectional,num_layers,proj_size,lengths,dtype", SAMPLE, ids=IDS)
def test_option_matrix(rng, mode, bias, batch_first, bidirectional, num_layers, proj_size,
                       lengths, dtype):
    check_case(rng, mode, bias, batch_first, bidirectional, num_layers, proj_size, lengths,
               dtype)


def check_case(rng, mode, bias, batch_first, bidirectional, num_layers, proj_size, lengths,
               dtype):
    """One case of the matrix against PyTorch where importable, and against the NumPy
    reference always (test_cpu_path.py runs it on the CPU path)."""
    problem = make_problem(rng, mode, STEPS, BATCH, INPUTS, HIDDEN, num_layers, dtype,
                           batch_first=batch_first, bidirectional=bidirectional,
                           proj_size=proj_size, bias=bias, lengths=LENGTHS[lengths])
    assert_matches(reference_results(*problem), *problem)
    try:
        torch = import_torch()
    except pytest.skip.Exception:
        return
    problem[0].zero_grad()
    for leaf in (problem[1], *(problem[2] or [])):
        leaf.grad = None
    assert_matches(torch_results(torch, *problem), *problem)


def test_matrix_sample_covers_every_option():
    for position in range(8):
        assert {c[position] for c in SAMPLE} == {c[position] for c in MATRIX}, position


@pytest.mark.parametrize("mode", ["lstm", "gru", "rnn_relu"])
@pytest.mark.parametrize("layout", ["batch_first", "no_states", "unbatched", "short"])
def test_parity_layouts(rng, mode, layout):
    """Batch-first, default states, unbatched input, and lengths all shorter than T."""
    torch = import_torch()
    problem = make_problem(rng, mode, 3, 2, 4, 5, 2, "float32",
                           batch_first=layout == "batch_first",
                           with_states=layout != "no_states",
                           unbatched=layout == "unbatched", bidirectional=True,
                           lengths=[1, 2] if layout == "short" else None)
    assert_matches(torch_results(torch, *problem), *problem)


CELLS = {"lstm": (nr.LSTMCell, "LSTMCell"), "gru": (nr.GRUCell, "GRUCell"),
         "rnn_tanh": (nr.RNNCell, "RNNCell"), "rnn_relu": (nr.RNNCell, "RNNCell")}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("mode", list(CELLS))
def test_cells(rng, mode, batched, bias, dtype):
    torch = import_torch()
    ours_cls, name = CELLS[mode]
    options = {"nonlinearity": mode[4:]} if mode.startswith("rnn_") else {}
    ours = ours_cls(3, 4, bias=bias, dtype=dtype, **options)
    theirs = getattr(torch.nn, name)(3, 4, bias=bias, **options).to(getattr(torch, dtype))
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    shape = (2,) if batched else ()
    x_np = rng.standard_normal(shape + (3,)).astype(dtype)
    states_np = [rng.standard_normal(shape + (4,)).astype(dtype)
                 for _ in range(2 if mode == "lstm" else 1)]
    weights = [rng.standard_normal(shape + (4,)).astype(dtype) for _ in states_np]

    x = nr.tensor(x_np, requires_grad=True)
    states = [nr.tensor(s, requires_grad=True) for s in states_np]
    tx = torch.tensor(x_np, requires_grad=True)
    tstates = [torch.tensor(s, requires_grad=True) for s in states_np]
    out = ours(x, tuple(states) if mode == "lstm" else states[0])
    tout = theirs(tx, tuple(tstates) if mode == "lstm" else tstates[0])
    out = out if isinstance(out, tuple) else (out,)
    tout = tout if isinstance(tout, tuple) else (tout,)
    loss = sum(((o * w).sum() for o, w in zip(out, weights)), nr.tensor(0.0, dtype=dtype))
    tloss = sum((o * torch.from_numpy(w)).sum() for o, w in zip(tout, weights))
    loss.backward()
    tloss.backward()
    for a, b in zip(out, tout):
        assert a.shape == tuple(b.shape)
        assert_close(a, b, dtype, "state")
    assert_close(x.grad, tx.grad, dtype, "d input")
    for a, b in zip(states, tstates):
        assert_close(a.grad, b.grad, dtype, "d state")
    for (n, p), (_, q) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert_close(p.grad, q.grad, dtype, n)
    # Without states, the cell starts from zeros, as PyTorch's does.
    with nr.no_grad():
        default = ours(nr.tensor(x_np))
    tdefault = theirs(torch.tensor(x_np))
    default = default if isinstance(default, tuple) else (default,)
    tdefault = tdefault if isinstance(tdefault, tuple) else (tdefault,)
    for a, b in zip(default, tdefault):
        assert_close(a, b.detach(), dtype, "state from zeros")


@pytest.mark.parametrize("mode", ["lstm", "gru", "rnn_tanh"])
def test_default_initialisation_matches_pytorch(rng, mode):
    """U(-1/sqrt(H), 1/sqrt(H)) for every parameter, with PyTorch's names and shapes."""
    torch = import_torch()
    hidden = 16
    options = dict(bidirectional=True, **({"proj_size": 3} if mode == "lstm" else {}))
    ours = build_layer(mode, 5, hidden, 2, "float32", **options)
    cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}.get(mode, torch.nn.RNN)
    theirs = cls(5, hidden, num_layers=2, **options)
    assert [(n, tuple(p.shape)) for n, p in ours.named_parameters()] == \
        [(n, tuple(p.shape)) for n, p in theirs.named_parameters()]
    bound = 1 / np.sqrt(hidden)
    values = np.concatenate([p.numpy().ravel() for p in ours.parameters()])
    assert values.min() >= -bound and values.max() <= bound
    assert values.min() < -0.9 * bound and values.max() > 0.9 * bound


@pytest.mark.parametrize("mode", ["lstm", "rnn_tanh"])
def test_state_dict_round_trip_through_pytorch_is_exact(mode):
    torch = import_torch()
    options = dict(bidirectional=True, bias=False,
                   **({"proj_size": 2} if mode == "lstm" else {}))
    ours = build_layer(mode, 3, 5, 2, "float32", **options)
    cls = {"lstm": torch.nn.LSTM}.get(mode, torch.nn.RNN)
    theirs = cls(3, 5, num_layers=2, **options)
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    back = build_layer(mode, 3, 5, 2, "float32", **options)
    back.load_state_dict(theirs.state_dict())
    for name, value in ours.state_dict().items():
        np.testing.assert_array_equal(back.state_dict()[name], value)
