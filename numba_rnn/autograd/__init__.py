"""Reverse-mode autograd: grad mode (``grad_mode.py``), the engine (``engine.py``: graph
nodes, recording, the backward pass, version checks) and ``torch.autograd``'s functions
that programs call (``api.py``: ``backward``, ``grad``, ``Variable``). Nothing here
imports the Tensor: ``numba_rnn.tensor`` registers its class with the engine."""
from .api import Variable, backward, grad
from .grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled

__all__ = ["Variable", "backward", "grad", "no_grad", "enable_grad", "set_grad_enabled",
           "is_grad_enabled"]
