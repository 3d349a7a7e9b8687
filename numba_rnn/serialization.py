"""``torch.serialization`` in numba_rnn: which classes and functions ``nr.load``'s
default (``weights_only=True``) may rebuild. See ``numba_rnn/checkpoint.py`` for the
format and the rule."""
from .checkpoint import (CheckpointError, WeightsOnlyError, add_safe_globals,
                         clear_safe_globals, get_safe_globals, load, safe_globals, save)

__all__ = ["add_safe_globals", "get_safe_globals", "clear_safe_globals", "safe_globals",
           "load", "save", "CheckpointError", "WeightsOnlyError"]
