"""Layers beyond the recurrent ones, with ``torch.nn``'s signatures, parameter names and
default initialisation: Linear, Embedding, Dropout, activations, Sequential, and the loss
modules."""
import math
from collections import OrderedDict

from .. import random
from . import functional as F
from .checks import check_bool, check_choice, check_dtype, check_int, check_probability
from .module import Module, Parameter

__all__ = ["Linear", "Embedding", "Dropout", "ReLU", "Tanh", "Sigmoid", "Sequential",
           "MSELoss", "CrossEntropyLoss"]


class Linear(Module):
    """y = x·Wᵀ + b; weight (out_features, in_features), bias (out_features,), both
    U(-1/sqrt(in_features), 1/sqrt(in_features)) as PyTorch's default initialisation."""

    def __init__(self, in_features, out_features, bias=True, dtype="float32"):
        super().__init__()
        self.in_features = check_int("in_features", in_features, 1)
        self.out_features = check_int("out_features", out_features, 1)
        dtype = check_dtype(dtype)
        bound = 1.0 / math.sqrt(self.in_features)
        self.weight = Parameter(random.uniform(-bound, bound, (self.out_features,
                                                               self.in_features), dtype))
        if check_bool("bias", bias):
            self.bias = Parameter(random.uniform(-bound, bound, (self.out_features,), dtype))
        else:
            self.bias = None

    def forward(self, input):
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Embedding(Module):
    """A lookup table: integer indices (*) → rows of ``weight`` (num_embeddings,
    embedding_dim), initialised N(0, 1); the row ``padding_idx`` starts at zero and gets
    no gradient."""

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, dtype="float32"):
        super().__init__()
        self.num_embeddings = check_int("num_embeddings", num_embeddings, 1)
        self.embedding_dim = check_int("embedding_dim", embedding_dim, 1)
        if padding_idx is not None:
            check_int("padding_idx", padding_idx, -self.num_embeddings)
            if padding_idx >= self.num_embeddings:
                raise ValueError(f"padding_idx: expected an int in [-{self.num_embeddings}, "
                                 f"{self.num_embeddings}), got {padding_idx}")
            padding_idx %= self.num_embeddings
        self.padding_idx = padding_idx
        weight = random.normal((self.num_embeddings, self.embedding_dim), check_dtype(dtype))
        if padding_idx is not None:
            weight[padding_idx] = 0
        self.weight = Parameter(weight)

    def forward(self, input):
        return F.embedding(input, self.weight, self.padding_idx)

    def extra_repr(self):
        pad = "" if self.padding_idx is None else f", padding_idx={self.padding_idx}"
        return f"{self.num_embeddings}, {self.embedding_dim}{pad}"


class Dropout(Module):
    """Zeroes elements with probability p and scales the rest by 1/(1-p), in training
    mode only."""

    def __init__(self, p=0.5):
        super().__init__()
        self.p = check_probability("p", p)

    def forward(self, input):
        return F.dropout(input, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}"


class ReLU(Module):
    def forward(self, input):
        return F.relu(input)


class Tanh(Module):
    def forward(self, input):
        return F.tanh(input)


class Sigmoid(Module):
    def forward(self, input):
        return F.sigmoid(input)


class Sequential(Module):
    """Modules applied in order; built from modules or from one OrderedDict of them.
    Submodules are named "0", "1", ... (or by the dict's keys), as in PyTorch."""

    def __init__(self, *args):
        super().__init__()
        if len(args) == 1 and isinstance(args[0], OrderedDict):
            items = list(args[0].items())
        else:
            items = [(str(k), module) for k, module in enumerate(args)]
        for name, module in items:
            if not isinstance(module, Module):
                raise TypeError(f"Sequential: expected Modules, got {type(module).__name__} "
                                f"for {name!r}")
            setattr(self, name, module)

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, index):
        modules = list(self._modules.values())
        if isinstance(index, slice):
            return Sequential(OrderedDict(list(self._modules.items())[index]))
        return modules[index]

    def append(self, module):
        if not isinstance(module, Module):
            raise TypeError(f"module: expected a Module, got {type(module).__name__}")
        setattr(self, str(len(self)), module)
        return self

    def forward(self, input):
        for module in self:
            input = module(input)
        return input


class _Loss(Module):
    def __init__(self, reduction="mean"):
        super().__init__()
        self.reduction = check_choice("reduction", reduction, F.REDUCTIONS)


class MSELoss(_Loss):
    """``F.mse_loss`` as a module."""

    def forward(self, input, target):
        return F.mse_loss(input, target, self.reduction)


class CrossEntropyLoss(_Loss):
    """``F.cross_entropy`` as a module."""

    def __init__(self, ignore_index=-100, reduction="mean"):
        super().__init__(reduction)
        self.ignore_index = check_int("ignore_index", ignore_index, -(2 ** 63))

    def forward(self, input, target):
        return F.cross_entropy(input, target, self.ignore_index, self.reduction)
