"""Modules in the image of ``torch.nn``."""
from . import functional, init, utils
from .layers import *  # noqa: F401,F403  (layers.__all__ lists them)
from .layers import __all__ as _layers
from .module import Module, ModuleDict, ModuleList, Parameter
from .rnn import (GRU, LSTM, RNN, GRUCell, LayerNormGRU, LayerNormGRUCell, LayerNormLSTM,
                  LayerNormLSTMCell, LSTMCell, RecurrentCell, RecurrentLayer, RNNCell)

__all__ = ["Module", "Parameter", "ModuleList", "ModuleDict", "LSTM", "GRU", "RNN",
           "LSTMCell", "GRUCell", "RNNCell", "LayerNormLSTM", "LayerNormGRU",
           "LayerNormLSTMCell", "LayerNormGRUCell", "RecurrentLayer", "RecurrentCell",
           "functional", "init", "utils"] + list(_layers)
