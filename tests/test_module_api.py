"""Module API of issue 14 point 4: buffers, registration, children, containers, apply,
dtype moves, requires_grad_, forward hooks, tied parameters in state_dict, non-strict
loading; state-dict keys held against torch.nn for the same model."""
import numpy as np
import pytest

import numba_rnn as nr
from numba_rnn import nn
from numba_rnn.testing import assert_close

try:
    import torch
except ImportError:
    torch = None


def build(lib):
    class Model(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = lib.nn.Embedding(5, 3)
            self.rnn = lib.nn.LSTM(3, 3)
            self.blocks = lib.nn.ModuleList([lib.nn.Linear(3, 3), lib.nn.Linear(3, 3)])
            self.heads = lib.nn.ModuleDict({"a": lib.nn.Linear(3, 5), "b": lib.nn.Linear(3, 2)})
            self.heads["a"].weight = self.embed.weight           # tied
            self.norm = lib.nn.BatchNorm1d(3)
            self.register_buffer("steps", lib.zeros(1))
            self.register_buffer("scratch", lib.zeros(2), persistent=False)
            self.register_parameter("scale", lib.nn.Parameter(lib.ones(1)))

        def forward(self, tokens):
            out, _ = self.rnn(self.embed(tokens))
            h = out[-1]
            for block in self.blocks:
                h = block(h).tanh()
            return self.heads["a"](self.norm(h)) * self.scale

    return Model()


def test_registration_and_traversal():
    model = build(nr)
    names = [n for n, _ in model.named_parameters()]
    assert "heads.a.weight" not in names and "embed.weight" in names  # shared, listed once
    keys = list(model.state_dict())
    assert "heads.a.weight" in keys and "embed.weight" in keys           # under every name
    assert "steps" in keys and "scratch" not in keys and "norm.running_mean" in keys
    assert [n for n, _ in model.named_children()] == ["embed", "rnn", "blocks", "heads", "norm"]
    assert len(model.blocks) == 2 and isinstance(model.blocks[-1], nn.Linear)
    assert list(model.heads.keys()) == ["a", "b"] and "b" in model.heads
    assert [n for n, _ in model.named_buffers()] == ["steps", "norm.running_mean",
                                                     "norm.running_var",
                                                     "norm.num_batches_tracked", "scratch"] or \
        set(n for n, _ in model.named_buffers()) >= {"steps", "scratch"}
    seen = []
    model.apply(lambda m: seen.append(type(m).__name__))
    assert seen[-1] == "Model" and seen.count("Linear") == 4
    model.rnn.flatten_parameters()                                      # a no-op that runs
    model.requires_grad_(False)
    assert not any(p.requires_grad for p in model.parameters())


@pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
def test_state_dict_keys_and_loading_match_torch():
    ours, theirs = build(nr), build(torch)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    result = ours.load_state_dict(theirs.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    tokens = np.array([[1, 2], [3, 4], [0, 1]])
    ours.eval(), theirs.eval()
    assert_close(ours(nr.tensor(tokens)), theirs(torch.tensor(tokens)), "float32", "output")


def test_non_strict_loading_and_refusals():
    model = build(nr)
    state = model.state_dict()
    state.pop("scale")
    state["extra"] = np.zeros(1)
    with pytest.raises(ValueError, match="missing"):
        model.load_state_dict(state)
    result = model.load_state_dict(state, strict=False)
    assert result.missing_keys == ["scale"] and result.unexpected_keys == ["extra"]
    with pytest.raises(TypeError, match="tensor: expected a Tensor"):
        model.register_buffer("bad", np.zeros(1))
    with pytest.raises(KeyError, match="attribute"):
        model.register_buffer("training", nr.zeros(1))


def test_double_keeps_parameter_objects_and_runs():
    model = build(nr)
    params = list(model.parameters())
    opt = nr.optim.SGD(model.parameters(), lr=0.1)
    model.double()
    assert all(p.dtype == np.float64 for p in params) and list(model.parameters()) == params
    assert model.steps.dtype == np.float64 and model.norm.num_batches_tracked.dtype == np.int64
    loss = model(nr.tensor([[1, 2], [3, 4]])).sum()
    loss.backward()
    opt.step()
    assert model.to(nr.float32) is model and params[0].dtype == np.float32
    assert model.to("cuda") is model and model.cuda() is model and model.cpu() is model


def test_forward_hooks():
    layer = nn.Linear(2, 2)
    calls = []
    handle = layer.register_forward_hook(lambda m, args, out: calls.append(out.shape) or out * 0)
    pre = layer.register_forward_pre_hook(lambda m, args: (args[0] * 2,))
    out = layer(nr.ones(1, 2))
    assert calls == [(1, 2)] and out.numpy().tolist() == [[0.0, 0.0]]
    handle.remove(), pre.remove()
    expected = nr.ones(1, 2) @ layer.weight.t() + layer.bias
    assert_close(layer(nr.ones(1, 2)), expected, "float32", "after removal")
