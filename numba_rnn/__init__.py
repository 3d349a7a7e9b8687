"""numba_rnn: LSTM, GRU and Elman RNN layers for NVIDIA GPUs, with numba.cuda kernels and
hand-derived backward passes, in PyTorch's image. See API.md for the contract."""
from . import nn, optim, utils
from .backend import backend_name
from .checkpoint import load, save
from .nn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell
from .random import manual_seed
from .tensor import (Tensor, enable_grad, is_grad_enabled, no_grad, set_grad_enabled,
                     tensor)

__version__ = "0.1.0"

__all__ = ["Tensor", "tensor", "no_grad", "enable_grad", "set_grad_enabled",
           "is_grad_enabled", "backend_name", "manual_seed", "nn", "optim",
           "save", "load", "LSTM", "GRU", "RNN", "LSTMCell", "GRUCell", "RNNCell"]
