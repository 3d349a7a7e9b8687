"""AdamW, Adam with decoupled weight decay, in the image of ``torch.optim.AdamW``:
``Adam`` (``adam.py``) with the decay applied to the parameter before the step, and a
default weight_decay of 0.01.
"""
from .adam import Adam


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov and Hutter), as ``torch.optim.AdamW``:
    ``p ← p·(1 - lr·weight_decay)`` before the Adam step; default weight_decay 0.01."""

    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, *, maximize=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize)
