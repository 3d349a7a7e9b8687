"""numba_rnn.torch: torch.nn's recurrent modules on numba_rnn's kernels, held against
torch.nn itself on the same weights (outputs, states, every gradient), PyTorch's
gradcheck in float64, its own argument checks, and data-parallel training under
DistributedDataParallel (gloo, two processes) against one process on the whole batch."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from numba_rnn.testing import assert_close
from oracles import import_torch

torch = import_torch()
nrt = pytest.importorskip("numba_rnn.torch")
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence  # noqa: E402

HERE = Path(__file__).resolve().parent
TORCH = {"LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU, "RNN": torch.nn.RNN,
         "LSTMCell": torch.nn.LSTMCell, "GRUCell": torch.nn.GRUCell, "RNNCell": torch.nn.RNNCell}
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def pair(kind, *args, dtype="float64", **kwargs):
    """(numba_rnn.torch module, torch.nn module) with the same weights."""
    ours = getattr(nrt, kind)(*args, dtype=DTYPES[dtype], **kwargs)
    theirs = TORCH[kind](*args, dtype=DTYPES[dtype], **kwargs)
    theirs.load_state_dict(ours.state_dict())
    return ours, theirs


def run(module, x, hx=None, packed_lengths=None, **call):
    """Output, final states and every gradient (input, states, parameters) of a
    weighted sum of everything the module returns."""
    x = x.detach().clone().requires_grad_()
    hx_leaves = None
    if hx is not None:
        hx_leaves = tuple(h.detach().clone().requires_grad_() for h in hx)
        hx = hx_leaves if len(hx_leaves) > 1 else hx_leaves[0]
    source = x
    if packed_lengths is not None:
        source = pack_padded_sequence(x, packed_lengths, batch_first=module.batch_first,
                                      enforce_sorted=False)
    result = module(source, hx, **call) if hx is not None else module(source, **call)
    cell = isinstance(module, torch.nn.RNNCellBase)
    output, finals = (None, result) if cell else result
    if isinstance(output, torch.nn.utils.rnn.PackedSequence):
        output, _ = pad_packed_sequence(output, batch_first=module.batch_first)
    finals = finals if isinstance(finals, tuple) else (finals,)
    gen = torch.Generator().manual_seed(0)
    loss = sum((t * torch.randn(t.shape, generator=gen, dtype=t.dtype)).sum()
               for t in ([output] if output is not None else []) + list(finals))
    loss.backward()
    grads = [x.grad] + ([h.grad for h in hx_leaves] if hx_leaves else [])
    grads += [p.grad for p in module.parameters()]
    module.zero_grad()
    return [output] + list(finals), grads


# (kind, constructor options, input shape, hx?, packed lengths or lengths= or None)
CASES = [
    ("LSTM", dict(), (5, 3, 4), False, None),
    ("LSTM", dict(num_layers=2, bidirectional=True, proj_size=2), (4, 2, 4), True, None),
    ("LSTM", dict(batch_first=True, bias=False), (2, 5, 4), True, None),
    ("LSTM", dict(bidirectional=True), (5, 3, 4), True, ("packed", [3, 5, 2])),
    ("LSTM", dict(num_layers=2, batch_first=True), (3, 4, 4), False, ("lengths", [4, 1, 3])),
    ("LSTM", dict(), (5, 4), False, None),                       # unbatched
    ("GRU", dict(), (5, 3, 4), True, None),
    ("GRU", dict(num_layers=2, bidirectional=True, batch_first=True), (2, 4, 4), True,
     ("packed", [2, 4])),
    ("GRU", dict(bias=False), (4, 4), True, None),               # unbatched, with h_0
    ("RNN", dict(nonlinearity="relu", num_layers=2), (4, 3, 4), True, None),
    ("RNN", dict(bidirectional=True), (5, 3, 4), False, ("lengths", [5, 2, 4])),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", range(len(CASES)), ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_layers_equal_torch_nn(case, dtype):
    kind, options, shape, with_hx, extra = CASES[case]
    torch.manual_seed(case)
    ours, theirs = pair(kind, 4, 3, dtype=dtype, **options)
    x = torch.randn(shape, dtype=DTYPES[dtype])
    hx = None
    if with_hx:
        layers = options.get("num_layers", 1) * (2 if options.get("bidirectional") else 1)
        batch = shape[0] if options.get("batch_first") else shape[1]
        lead = (layers, batch) if len(shape) == 3 else (layers,)
        sizes = [options.get("proj_size") or 3] + ([3] if kind == "LSTM" else [])
        hx = tuple(torch.randn(lead + (s,), dtype=DTYPES[dtype]) for s in sizes)
    packed = extra[1] if extra and extra[0] == "packed" else None
    lengths = extra[1] if extra and extra[0] == "lengths" else None
    ours_out, ours_grads = run(ours, x, hx, packed, **({"lengths": lengths} if lengths else {}))
    # torch.nn has no lengths=: its equivalent is pack → layer → pad (the longest
    # length is T in these cases, so no padding beyond it)
    theirs_out, theirs_grads = run(theirs, x, hx, packed or lengths)
    for a, b in zip(ours_out + ours_grads, theirs_out + theirs_grads):
        assert (a is None) == (b is None)
        if a is not None:
            assert_close(a.detach(), b.detach(), dtype, "value")


@pytest.mark.parametrize("kind", ["LSTMCell", "GRUCell", "RNNCell"])
@pytest.mark.parametrize("batched", [True, False])
def test_cells_equal_torch_nn(kind, batched):
    torch.manual_seed(1)
    ours, theirs = pair(kind, 4, 3, **({"nonlinearity": "relu"} if kind == "RNNCell" else {}))
    x = torch.randn((2, 4) if batched else (4,), dtype=torch.float64)
    lead = (2,) if batched else ()
    states = 2 if kind == "LSTMCell" else 1
    hx = tuple(torch.randn(lead + (3,), dtype=torch.float64) for _ in range(states))
    for a, b in zip(*[run(m, x, hx)[1] for m in (ours, theirs)]):
        assert_close(a, b, "float64", "gradient")


def test_gradcheck_in_float64():
    torch.manual_seed(2)
    lstm = nrt.LSTM(2, 3, num_layers=2, bidirectional=True, proj_size=2, dtype=torch.float64)
    x = torch.randn(3, 2, 2, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(4, 2, 2, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(4, 2, 3, dtype=torch.float64, requires_grad=True)
    names = [n for n, _ in lstm.named_parameters()]
    weights = [p.detach().clone().requires_grad_() for p in lstm.parameters()]

    def function(x, h0, c0, *weights):
        output, (h, c) = torch.func.functional_call(lstm, dict(zip(names, weights)),
                                                    (x, (h0, c0)))
        return output, h, c

    assert torch.autograd.gradcheck(function, (x, h0, c0, *weights), fast_mode=True)
    gru = nrt.GRU(2, 3, dtype=torch.float64)
    data = pack_padded_sequence(torch.randn(3, 2, 2, dtype=torch.float64), [3, 1],
                                enforce_sorted=False).data.requires_grad_()
    assert torch.autograd.gradcheck(
        lambda d: gru(torch.nn.utils.rnn.PackedSequence(
            d, torch.tensor([2, 1, 1]), torch.tensor([0, 1]), torch.tensor([0, 1])))[0].data,
        (data,))


def test_modules_are_torch_modules():
    ours = nrt.LSTM(4, 3, num_layers=2)
    assert isinstance(ours, torch.nn.LSTM) and isinstance(ours, torch.nn.Module)
    theirs = torch.nn.LSTM(4, 3, num_layers=2)
    ours.load_state_dict(theirs.state_dict())
    theirs.load_state_dict(ours.state_dict())
    assert list(ours.state_dict()) == list(theirs.state_dict())
    seen = []
    ours.register_forward_hook(lambda module, inputs, output: seen.append(output[0].shape))
    ours.double()
    assert all(p.dtype == torch.float64 for p in ours.parameters())
    output, _ = ours(torch.randn(5, 2, 4, dtype=torch.float64))
    assert seen == [(5, 2, 3)]
    opt = torch.optim.SGD(ours.parameters(), lr=0.1)
    before = ours.weight_hh_l1.detach().clone()
    output.sum().backward()
    opt.step()
    assert not torch.equal(before, ours.weight_hh_l1)


def test_dropout_uses_torch_rng_and_training_mode():
    ours = nrt.LSTM(4, 3, num_layers=3, dropout=0.5, dtype=torch.float64)
    x = torch.randn(4, 2, 4, dtype=torch.float64)
    torch.manual_seed(5)
    first, _ = ours(x)
    torch.manual_seed(5)
    again, _ = ours(x)
    assert torch.equal(first, again)
    different, _ = ours(x)
    assert not torch.equal(first, different)
    theirs = torch.nn.LSTM(4, 3, num_layers=3, dropout=0.5, dtype=torch.float64)
    theirs.load_state_dict(ours.state_dict())
    ours.eval()
    theirs.eval()
    assert_close(ours(x)[0].detach(), theirs(x)[0].detach(), "float64", "eval output")


def test_an_in_place_change_before_backward_is_refused():
    ours = nrt.GRU(4, 3)
    output, _ = ours(torch.randn(3, 2, 4))
    with torch.no_grad():
        ours.weight_hh_l0.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        output.sum().backward()


BAD_CALLS = [
    ("rank 4", lambda m: m(torch.zeros(2, 2, 2, 4))),
    ("input size", lambda m: m(torch.zeros(3, 2, 5))),
    ("h_0 batch", lambda m: m(torch.zeros(3, 2, 4), (torch.zeros(1, 3, 3), torch.zeros(1, 3, 3)))),
    ("h_0 rank", lambda m: m(torch.zeros(3, 2, 4), (torch.zeros(3, 3), torch.zeros(3, 3)))),
    ("dtype", lambda m: m(torch.zeros(3, 2, 4, dtype=torch.float64))),
    ("c_0 size", lambda m: m(torch.zeros(3, 2, 4), (torch.zeros(1, 2, 3), torch.zeros(1, 2, 4)))),
]


@pytest.mark.parametrize("name,call", BAD_CALLS, ids=[b[0] for b in BAD_CALLS])
def test_bad_input_is_refused_as_torch_refuses_it(name, call):
    ours, theirs = pair("LSTM", 4, 3, dtype="float32")
    before = {n: p.detach().clone() for n, p in ours.named_parameters()}
    with pytest.raises(Exception) as expected:
        call(theirs)
    with pytest.raises(type(expected.value)) as got:
        call(ours)
    assert str(got.value) == str(expected.value)
    for n, p in ours.named_parameters():
        assert torch.equal(p, before[n])


@pytest.mark.parametrize("kind", ["GRU", "LSTMCell"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_and_bfloat16_modules_compute_in_float32(kind, dtype):
    """A module in float16 or bfloat16 runs (as torch.nn's does): computed in float32,
    results and gradients in the module's dtype, equal to torch.nn's in that dtype
    within its rounding."""
    ours, theirs = pair(kind, 4, 3, dtype="float32")
    x = torch.randn((5, 2, 4) if kind == "GRU" else (2, 4)).to(dtype)
    expected, expected_grads = run(theirs.to(dtype), x)
    got, got_grads = run(ours.to(dtype), x)
    for a, b in zip(got + got_grads, expected + expected_grads):
        if b is None:  # a cell's output sequence
            assert a is None
            continue
        assert a.dtype == dtype
        torch.testing.assert_close(a.float(), b.float(), rtol=0.03, atol=0.03)


def test_ours_refuses_what_numba_rnn_cannot_compute():
    ours = nrt.GRU(4, 3).to(torch.complex64)
    with pytest.raises(TypeError, match="float32 or float64"):
        ours(torch.zeros(3, 2, 4, dtype=torch.complex64))
    with pytest.raises(ValueError, match="lengths"):
        nrt.GRU(4, 3)(torch.zeros(3, 4), lengths=[3])


def test_the_core_package_does_not_import_torch():
    code = "import sys, numba_rnn, numba_rnn.nn, numba_rnn.optim; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(HERE.parent)), timeout=300)
    assert done.stdout.strip() == "False", done.stderr


def test_data_parallel_training_equals_one_process(tmp_path):
    """Two gloo processes, each half of the batch, three SGD steps: the parameters equal
    one process's training on the whole batch."""
    done = subprocess.run([sys.executable, str(HERE / "ddp_training.py"), str(tmp_path)],
                          capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, PYTHONPATH=str(HERE.parent)))
    assert done.returncode == 0, done.stdout + done.stderr
    parallel = torch.load(tmp_path / "rank0.pt")
    alone = torch.load(tmp_path / "alone.pt")
    assert list(parallel) == list(alone)
    for name in parallel:
        assert_close(parallel[name], alone[name], "float64", name)
    assert not torch.equal(parallel["lstm.weight_hh_l0"], torch.load(tmp_path / "start.pt")[
        "lstm.weight_hh_l0"])


def test_the_example_trains_both_models_alike(tmp_path):
    done = subprocess.run([sys.executable, str(HERE.parent / "examples" / "torch_interop.py"),
                           "--train-steps", "4", "--no-progress", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=str(HERE.parent)))
    assert done.returncode == 0, done.stderr
    gap = float(done.stdout.split("largest difference between the two curves: ")[1].split()[0])
    assert gap < 1e-5, done.stdout
    assert "numba_rnn.torch" in done.stdout and "torch.nn" in done.stdout
