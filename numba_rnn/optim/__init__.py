"""Optimizers in the image of ``torch.optim``: SGD, Adam, AdamW, RMSprop, Adagrad,
Adadelta and L-BFGS with PyTorch's update rules, arguments, defaults and state-dict
format, and the learning-rate schedulers of ``optim.lr_scheduler``. Each parameter's
update (all but L-BFGS) is one ``numba.cuda`` kernel launch (``kernels/optim.py``) over
its flat storage; the hyper-parameters that depend only on the step count (bias
corrections, Adagrad's decayed rate) are computed on the host as PyTorch does. L-BFGS
works on flat device arrays of all parameters at once, as ``torch.optim.LBFGS``.

Usage, as with PyTorch::

    opt = nr.optim.Adam(model.parameters(), lr=1e-3)
    opt.zero_grad(); loss.backward(); opt.step()
"""
from .optimizer import Optimizer
from .sgd import SGD
from .adam import Adam
from .adamw import AdamW
from .rmsprop import RMSprop
from .adagrad import Adagrad
from .adadelta import Adadelta
from .lbfgs import LBFGS, _cubic_interpolate, _strong_wolfe  # noqa: F401  (tests use them)

from . import lr_scheduler  # after Optimizer: it imports it from this package

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "LBFGS",
           "lr_scheduler"]
