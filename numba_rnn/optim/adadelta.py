"""Adadelta, in the image of ``torch.optim.Adadelta``; each parameter's update is one
launch of ``adadelta_kernel``.
"""
from .. import backend
from ..kernels.optim import adadelta_kernel
from .._core.checks import check_real
from .optimizer import Optimizer, _check_common, _flat, _zeros


class Adadelta(Optimizer):
    """Adadelta (Zeiler), as ``torch.optim.Adadelta``: ``v = ρ·v + (1 - ρ)·g²``,
    ``δ = sqrt(u + eps) / sqrt(v + eps)·g``, ``u = ρ·u + (1 - ρ)·δ²``, ``p -= lr·δ``."""

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, *, maximize=False):
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay,
                                      maximize=maximize))

    def _check_group(self, group):
        _check_common(group)
        check_real("rho", group["rho"], 0.0, 1.0)
        check_real("eps", group["eps"], 0.0)

    def _update(self, p, grad, group, state):
        dtype = p.dtype.type
        if not state:
            state["step"] = 0.0
            state["square_avg"] = _zeros(p)
            state["acc_delta"] = _zeros(p)
        state["step"] += 1
        rho = group["rho"]
        param = _flat(p._array)
        backend.launch(adadelta_kernel(p.dtype), param.size, param, grad,
                       _flat(state["square_avg"]), _flat(state["acc_delta"]),
                       dtype(group["lr"]), dtype(rho), dtype(1 - rho), dtype(group["eps"]),
                       dtype(group["weight_decay"]), bool(group["maximize"]))
