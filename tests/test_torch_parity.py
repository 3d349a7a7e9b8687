"""Outputs, final states and every gradient equal torch.nn.LSTM / torch.nn.GRU on the same
weights and inputs (skipped where PyTorch is not importable)."""
import numpy as np
import pytest

from oracles import assert_matches, import_torch, make_problem


def torch_results(torch, layer, x, states, upstream):
    """PyTorch's output, final states and gradients for the same problem, as NumPy."""
    dtype = getattr(torch, str(layer.dtype))
    cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[layer.mode]
    module = cls(layer.input_size, layer.hidden_size, num_layers=layer.num_layers,
                 batch_first=layer.batch_first).to(dtype)
    module.load_state_dict({k: torch.from_numpy(v) for k, v in layer.state_dict().items()})
    tx = torch.tensor(x.numpy(), requires_grad=True)
    tstates = None if states is None else [torch.tensor(s.numpy(), requires_grad=True)
                                           for s in states]
    hx = None if tstates is None else (tuple(tstates) if len(tstates) > 1 else tstates[0])
    output, finals = module(tx, hx)
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


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("mode", ["lstm", "gru"])
def test_parity(rng, mode, num_layers, dtype):
    torch = import_torch()
    problem = make_problem(rng, mode, 4, 3, 3, 5, num_layers, dtype)
    assert_matches(torch_results(torch, *problem), *problem)


@pytest.mark.parametrize("mode", ["lstm", "gru"])
@pytest.mark.parametrize("layout", ["batch_first", "no_states", "unbatched"])
def test_parity_layouts(rng, mode, layout):
    torch = import_torch()
    problem = make_problem(rng, mode, 3, 2, 4, 6, 2, "float32",
                           batch_first=layout == "batch_first",
                           with_states=layout != "no_states",
                           unbatched=layout == "unbatched")
    assert_matches(torch_results(torch, *problem), *problem)


@pytest.mark.parametrize("mode", ["lstm", "gru"])
def test_default_initialisation_matches_pytorch_bounds(rng, mode):
    """U(-1/sqrt(H), 1/sqrt(H)) for every parameter, with PyTorch's names and shapes."""
    torch = import_torch()
    from oracles import LAYERS
    hidden = 16
    ours = LAYERS[mode](5, hidden, num_layers=2)
    theirs = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[mode](5, hidden, num_layers=2)
    assert [(n, tuple(p.shape)) for n, p in ours.named_parameters()] == \
        [(n, tuple(p.shape)) for n, p in theirs.named_parameters()]
    bound = 1 / np.sqrt(hidden)
    values = np.concatenate([p.numpy().ravel() for p in ours.parameters()])
    assert values.min() >= -bound and values.max() <= bound
    assert values.min() < -0.9 * bound and values.max() > 0.9 * bound
