"""RMSprop with optional momentum and centering, in the image of
``torch.optim.RMSprop``; each parameter's update is one launch of ``rmsprop_kernel``.
"""
from .. import backend
from ..kernels.optim import rmsprop_kernel
from .._core.checks import check_bool, check_real
from .optimizer import Optimizer, _check_common, _flat, _zeros, _zeros_if_missing


class RMSprop(Optimizer):
    """RMSprop (Hinton) with optional momentum and centering, as ``torch.optim.RMSprop``:
    ``v = α·v + (1 - α)·g²``, ``p -= lr·g / (sqrt(v) + eps)`` (``v - ḡ²`` under the root
    when centered; through a momentum buffer when momentum > 0)."""

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
                 centered=False, *, maximize=False):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered,
                                      maximize=maximize))

    def _check_group(self, group):
        _check_common(group)
        check_real("alpha", group["alpha"], 0.0)
        check_real("eps", group["eps"], 0.0)
        check_real("momentum", group["momentum"], 0.0)
        check_bool("centered", group["centered"])

    def _update(self, p, grad, group, state):
        dtype = p.dtype.type
        if not state:
            state["step"] = 0.0
            state["square_avg"] = _zeros(p)
        momentum, centered = group["momentum"], group["centered"]
        unused = backend.placeholder(1, p.dtype)
        buffer = _flat(_zeros_if_missing(state, "momentum_buffer", p)) if momentum > 0 else unused
        grad_avg = _flat(_zeros_if_missing(state, "grad_avg", p)) if centered else unused
        state["step"] += 1
        param = _flat(p._array)
        alpha = group["alpha"]
        backend.launch(rmsprop_kernel(p.dtype), param.size, param, grad,
                       _flat(state["square_avg"]), grad_avg, buffer, dtype(group["lr"]),
                       dtype(alpha), dtype(1 - alpha), dtype(group["eps"]),
                       dtype(group["weight_decay"]), dtype(momentum), bool(centered),
                       bool(group["maximize"]))
