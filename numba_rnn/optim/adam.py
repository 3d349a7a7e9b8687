"""Adam with optional AMSGrad and L2 weight decay, in the image of
``torch.optim.Adam``; each parameter's update is one launch of ``adam_kernel``, with the
bias corrections computed on the host. ``AdamW`` (in ``adamw.py``) subclasses it.
"""
import math

from .. import backend
from ..backend import xp
from ..kernels.optim import adam_kernel
from .._core.checks import check_bool, check_real
from .optimizer import Optimizer, _check_common, _flat


class Adam(Optimizer):
    """Adam (Kingma and Ba) with optional AMSGrad, as ``torch.optim.Adam``; weight decay
    is added to the gradient (L2), unlike ``AdamW``."""

    _decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 amsgrad=False, *, maximize=False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps,
                                      weight_decay=weight_decay, amsgrad=amsgrad,
                                      maximize=maximize))

    def _check_group(self, group):
        _check_common(group)
        check_real("eps", group["eps"], 0.0)
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"betas: expected a pair (beta1, beta2), got {betas!r}")
        group["betas"] = tuple(betas)
        for k, beta in enumerate(betas):
            if not 0.0 <= check_real(f"betas[{k}]", beta) < 1.0:
                raise ValueError(f"betas[{k}]: expected a number in [0, 1), got {beta}")
        check_bool("amsgrad", group["amsgrad"])

    def _update(self, p, grad, group, state):
        dtype = p.dtype.type
        if not state:
            state["step"] = 0.0
            state["exp_avg"] = xp.zeros(p.shape, dtype=p.dtype)
            state["exp_avg_sq"] = xp.zeros(p.shape, dtype=p.dtype)
        if group["amsgrad"] and state.get("max_exp_avg_sq") is None:
            # the first step, or amsgrad switched on for a state that was made without it
            state["max_exp_avg_sq"] = xp.zeros(p.shape, dtype=p.dtype)
        state["step"] += 1
        step = state["step"]
        lr, wd, eps = group["lr"], group["weight_decay"], group["eps"]
        beta1, beta2 = group["betas"]
        param = _flat(p._array)
        backend.launch(
            adam_kernel(p.dtype), param.size, param, grad, _flat(state["exp_avg"]),
            _flat(state["exp_avg_sq"]),
            _flat(state["max_exp_avg_sq"]) if group["amsgrad"] else backend.placeholder(1, p.dtype),
            dtype(wd), dtype(1 - lr * wd), dtype(1 - beta1), dtype(beta2), dtype(1 - beta2),
            dtype(eps), dtype(lr / (1 - beta1 ** step)), dtype(math.sqrt(1 - beta2 ** step)),
            bool(group["amsgrad"]), bool(group["maximize"]), self._decoupled)
