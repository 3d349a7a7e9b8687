"""Random computation graphs, held against PyTorch and float64 finite differences.

Hypothesis draws the structure of a graph: leaves, then operations whose inputs are any
earlier tensors (so non-leaf tensors feed several operations, through paths of different
lengths: diamonds, residuals, a tensor used many times), then a loss over several of them.
The operations are the tensor operations, the functional layers and losses, and the
modules (LSTM, GRU, RNN, bidirectional GRU, Linear, Embedding), a module sometimes called
twice in one graph. The same graph is built twice from one description, with numba_rnn
and with PyTorch, on the same float64 values, and every leaf's gradient (inputs and every
module parameter) must match PyTorch's where it is importable, and central finite
differences everywhere: for each leaf, the derivative of the loss along a random
direction, (L(w + εv) - L(w - εv)) / 2ε, against <grad, v>.

CI runs a fixed set of graphs (profile "ci", derandomized); HYPOTHESIS_PROFILE=thorough
draws many more at random.
"""
import os
from dataclasses import dataclass

import numpy as np

import numba_rnn as nr
from numba_rnn.testing import GRADCHECK_MAX_RELATIVE_ERROR, TOLERANCES, relative_error
from oracles import require

hypothesis = require("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

try:
    import torch
except ImportError:
    torch = None

settings.register_profile(
    "ci", derandomize=True, deadline=None, database=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile(
    "thorough", deadline=None, max_examples=2000, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def _examples(count):
    """``count`` in the CI profile; the loaded profile's own number otherwise."""
    return count if settings().derandomize else settings().max_examples


# Each operation: its number of tensor inputs.
TENSOR_OPS = {"neg": 1, "scale": 1, "root": 1, "center": 1, "normalize": 1, "last_step": 1,
              "project": 1, "bias": 1, "add": 2, "sub": 2, "div": 2, "attention": 3}
FUNCTIONAL_OPS = {"tanh": 1, "sigmoid": 1, "relu": 1, "softmax": 1, "log_softmax": 1,
                  "gate": 2}
MODULE_OPS = {"linear": 1, "lstm": 1, "gru": 1, "rnn": 1, "bigru": 1, "embedding": 0}
VOCABULARY = 5


@dataclass(frozen=True)
class Graph:
    steps: int
    batch: int
    features: int
    num_leaves: int
    nodes: tuple      # (operation, input indices, variant 0..2)
    sinks: tuple      # indices of the tensors the loss weighs
    loss: str         # "weighted", "mse" or "cross_entropy" (on the last tensor)
    seed: int


@st.composite
def graphs(draw, with_modules):
    operations = dict(TENSOR_OPS, **FUNCTIONAL_OPS, **(MODULE_OPS if with_modules else {}))
    names = sorted(operations)
    num_leaves = draw(st.integers(1, 3))
    nodes, count = [], num_leaves
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(names))
        inputs = tuple(draw(st.integers(0, count - 1)) for _ in range(operations[op]))
        nodes.append((op, inputs, draw(st.integers(0, 2))))
        count += 1
    sinks = (count - 1,) + tuple(draw(st.lists(st.integers(0, count - 1), max_size=3)))
    return Graph(draw(st.integers(1, 3)), draw(st.integers(1, 2)), draw(st.integers(2, 3)),
                 num_leaves, tuple(nodes), sinks,
                 draw(st.sampled_from(["weighted", "mse", "cross_entropy"])),
                 draw(st.integers(0, 2 ** 32 - 1)))


class Build:
    """One graph built with one library (numba_rnn or torch) on the values in ``values``
    (name -> float64 or integer array); values missing there are drawn from ``rng`` and
    kept, so that a second build, with either library, uses the same ones.
    ``leaves``: name -> every tensor that requires grad; ``loss``: the scalar."""

    def __init__(self, lib, graph, values, rng=None):
        self.lib, self.graph, self.values, self.rng = lib, graph, values, rng
        self.F = lib.nn.functional
        self.leaves, self.modules = {}, {}
        T, B, F = graph.steps, graph.batch, graph.features
        tensors = [self.leaf(f"x{k}", (T, B, F)) for k in range(graph.num_leaves)]
        for op, inputs, variant in graph.nodes:
            tensors.append(self.apply(op, [tensors[k] for k in inputs], variant))
        last = tensors[-1]
        loss = self.constant_weighted_sum("w", [tensors[k] for k in graph.sinks[1:]])
        if graph.loss == "mse":
            target = self.array("target", lambda rng: rng.standard_normal((T, B, F)))
            loss = loss + self.F.mse_loss(last, self.constant(target))
        elif graph.loss == "cross_entropy":
            # the targets as a strided view (every other column), as ids[:, c] would be
            classes = self.array("classes", lambda rng: rng.integers(0, F, (T * B, 2)))
            loss = loss + self.F.cross_entropy(last.reshape(T * B, F),
                                               self.indices(classes)[:, 0])
        else:
            loss = loss + self.constant_weighted_sum("w_last", [last])
        self.loss = loss

    # ------------------------------------------------------------------ values
    def array(self, name, make):
        if name not in self.values:
            self.values[name] = make(self.rng)
        return self.values[name]

    def leaf(self, name, shape, scale=1.0):
        """The leaf tensor ``name``: made once, the same tensor at every use."""
        if name in self.leaves:
            return self.leaves[name]
        value = self.array(name, lambda rng: scale * rng.standard_normal(shape))
        tensor = self.lib.tensor(value.copy(), requires_grad=True)
        self.leaves[name] = tensor
        return tensor

    def constant(self, value):
        return self.lib.tensor(value.copy())

    def indices(self, value):
        return value if self.lib is nr else torch.from_numpy(value)

    def constant_weighted_sum(self, prefix, tensors):
        """Σ_k (tensors[k] · w_k).sum() with constant random weights w_k."""
        total = 0.0
        for k, t in enumerate(tensors):
            shape = tuple(t.shape)
            weight = self.array(f"{prefix}{k}", lambda rng: rng.standard_normal(shape))
            total = total + (t * self.constant(weight)).sum()
        return total

    def module(self, kind, index):
        """The graph's module ``kind`` number ``index`` (made once, so a second use in the
        graph shares its parameters), with parameters from ``values``."""
        name = f"{kind}{index}"
        if name in self.modules:
            return self.modules[name]
        F, lib = self.graph.features, self.lib
        dtype = "float64" if lib is nr else torch.float64
        nn = lib.nn
        make = {
            "linear": lambda: nn.Linear(F, F, dtype=dtype),
            "embedding": lambda: nn.Embedding(VOCABULARY, F, dtype=dtype),
            "lstm": lambda: nn.LSTM(F, F, dtype=dtype),
            "gru": lambda: nn.GRU(F, F, dtype=dtype),
            "rnn": lambda: nn.RNN(F, F, dtype=dtype),
            "bigru": lambda: nn.GRU(F, F, bidirectional=True, dtype=dtype),
        }[kind]
        module = make()
        state = {}
        for key, value in module.state_dict().items():
            shape = tuple(value.shape)
            array = self.array(f"{name}.{key}", lambda rng: rng.uniform(-1, 1, shape))
            state[key] = array.copy() if lib is nr else torch.from_numpy(array.copy())
        module.load_state_dict(state)
        for key, param in module.named_parameters():
            self.leaves[f"{name}.{key}"] = param
        self.modules[name] = module
        return module

    # -------------------------------------------------------------- operations
    def apply(self, op, args, variant):
        hypothesis.event(op)  # counted in pytest --hypothesis-show-statistics
        F = self.F
        T, B, H = self.graph.steps, self.graph.batch, self.graph.features
        if op == "neg":
            return -args[0]
        if op == "scale":
            return args[0] * (-1.5, 0.5, 2.0)[variant]
        if op == "root":
            return (args[0] * args[0] + 1.0) ** 0.5
        if op == "center":
            return args[0] - args[0].mean(variant, keepdim=True)
        if op == "normalize":
            return args[0] / ((args[0] * args[0]).sum(variant, keepdim=True) + 1.0)
        if op == "last_step":
            x = args[0]
            if variant == 0:
                return x * x[-1]
            return x + x[:1] if variant == 1 else x * x[:, :1]
        if op == "project":
            weight = self.leaf(f"W{variant % 2}", (H, H), scale=H ** -0.5)
            return (args[0].reshape(T * B, H) @ weight.T).reshape(T, B, H)
        if op == "bias":
            return args[0] * self.leaf(f"v{variant % 2}", (H,))
        if op == "add":
            return args[0] + args[1]
        if op == "sub":
            return args[0] - args[1]
        if op == "div":
            return args[0] / (args[1] * args[1] + 1.0)
        if op == "attention":
            q, k, v = args
            return F.softmax(q @ k.transpose(1, 2), dim=2) @ v
        if op in ("tanh", "sigmoid", "relu"):
            return getattr(F, op)(args[0])
        if op in ("softmax", "log_softmax"):
            return getattr(F, op)(args[0], dim=2)
        if op == "gate":
            return args[0] * F.sigmoid(args[1])
        if op == "linear":
            return self.module("linear", variant % 2)(args[0])
        if op == "embedding":
            ids = self.array("ids", lambda rng: rng.integers(0, VOCABULARY, (T, B, 2)))
            return self.module("embedding", 0)(self.indices(ids)[:, :, 0])
        return self.recurrent(op, args[0], variant)

    def recurrent(self, kind, x, variant):
        """A recurrent module on x; variant 2 passes initial states, sliced from x."""
        layer = self.module(kind, variant % 2)
        if kind == "lstm":
            hx = (x[-1:], x[:1]) if variant == 2 else None
            output, (h_n, c_n) = layer(x, hx)
            return output + h_n * c_n
        if kind == "bigru":
            H = self.graph.features
            output, h_n = layer(x)
            return output[:, :, :H] * output[:, :, H:] + h_n[1]
        output, h_n = layer(x, x[-1:] if variant == 2 else None)
        return output * h_n if kind == "gru" else output - h_n


def loss_value(graph, values):
    with nr.no_grad():
        return Build(nr, graph, values).loss.item()


def check_graph(graph, eps=1e-6):
    values = {}
    ours = Build(nr, graph, values, np.random.default_rng(graph.seed))
    ours.loss.backward()
    tol = TOLERANCES[np.dtype(np.float64)][0]
    if torch is not None:
        theirs = Build(torch, graph, values)
        theirs.loss.backward()
        assert relative_error(ours.loss, theirs.loss.detach()) < tol, "loss"
        assert set(ours.leaves) == set(theirs.leaves)
        for name, leaf in ours.leaves.items():
            expected = theirs.leaves[name].grad
            assert (leaf.grad is None) == (expected is None), (name, leaf.grad, expected)
            if expected is not None:
                assert relative_error(leaf.grad, expected) < tol, (name, leaf.grad, expected)
    rng = np.random.default_rng(graph.seed + 1)
    for name, leaf in ours.leaves.items():
        direction = rng.standard_normal(leaf.shape)
        base = values[name]
        values[name] = base + eps * direction
        plus = loss_value(graph, values)
        values[name] = base - eps * direction
        minus = loss_value(graph, values)
        values[name] = base
        numeric = (plus - minus) / (2 * eps)
        grad = np.zeros(leaf.shape) if leaf.grad is None else leaf.grad.numpy()
        analytic = float((grad * direction).sum())
        # relative to the largest the directional derivative could be, |grad|·|v|
        scale = max(np.linalg.norm(grad) * np.linalg.norm(direction), abs(numeric), 1e-12)
        assert abs(analytic - numeric) / scale < GRADCHECK_MAX_RELATIVE_ERROR, (
            name, analytic, numeric)


@settings(max_examples=_examples(400))
@given(graphs(with_modules=False))
def test_random_graphs_of_tensor_operations(graph):
    check_graph(graph)


@settings(max_examples=_examples(200))
@given(graphs(with_modules=True))
def test_random_graphs_with_layers_and_losses(graph):
    """On the CPU path where there is one: what is under test is the autograd around the
    layers, and the layers' kernels are the same math as the simulator's (their own
    tests run both); the simulator made this the suite's slowest test."""
    with nr.use_backend("cpu" if "cpu" in nr.available_backends() else nr.backend_name()):
        check_graph(graph)
