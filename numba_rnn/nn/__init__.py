"""Modules in the image of ``torch.nn``."""
from .module import Module, Parameter
from .rnn import GRU, LSTM

__all__ = ["Module", "Parameter", "LSTM", "GRU"]
