"""Gradient utilities, as ``torch.nn.utils``."""
import math

from ...backend import xp
from ...tensor import Tensor, _wrap
from ..checks import check_bool, check_real
from . import rnn  # noqa: F401  (nn.utils.rnn, as torch.nn.utils.rnn)


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scale the gradients of ``parameters`` in place so that their total norm (the
    ``norm_type`` norm of all of them as one vector) is at most ``max_norm``; returns the
    total norm before clipping, as a 0-d Tensor. PyTorch's rule: every gradient is
    multiplied by min(1, max_norm / (total_norm + 1e-6))."""
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    grads = [p.grad._array for p in parameters if p.grad is not None]
    max_norm = check_real("max_norm", max_norm)
    norm_type = check_real("norm_type", norm_type)
    if norm_type <= 0:
        raise ValueError(f"norm_type: expected a positive number or inf, got {norm_type}")
    check_bool("error_if_nonfinite", error_if_nonfinite)
    if not grads:
        return _wrap(xp.zeros((), dtype=xp.float32))
    dtype = grads[0].dtype
    if math.isinf(norm_type):
        norms = xp.stack([xp.abs(g).max() for g in grads]).astype(dtype)
        total = norms.max()
    else:
        norms = xp.stack([(xp.abs(g) ** norm_type).sum() ** (1.0 / norm_type) for g in grads])
        total = ((norms.astype(dtype) ** norm_type).sum() ** (1.0 / norm_type)).astype(dtype)
    if error_if_nonfinite and not bool(xp.isfinite(total)):
        raise RuntimeError(f"clip_grad_norm_: the total norm of order {norm_type} of the "
                           "gradients is non-finite, so it cannot be clipped")
    coefficient = xp.minimum(max_norm / (total + 1e-6), 1.0).astype(dtype)
    for g in grads:
        g *= coefficient
    return _wrap(total)
