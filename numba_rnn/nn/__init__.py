"""Modules in the image of ``torch.nn``."""
from . import functional, utils
from .layers import (CrossEntropyLoss, Dropout, Embedding, Linear, MSELoss, ReLU, Sequential,
                     Sigmoid, Tanh)
from .module import Module, Parameter
from .rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell

__all__ = ["Module", "Parameter", "LSTM", "GRU", "RNN", "LSTMCell", "GRUCell", "RNNCell",
           "Linear", "Embedding", "Dropout", "ReLU", "Tanh", "Sigmoid", "Sequential",
           "MSELoss", "CrossEntropyLoss", "functional", "utils"]
