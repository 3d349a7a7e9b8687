"""SGD with momentum, dampening, Nesterov momentum and weight decay, in the image of
``torch.optim.SGD``; each parameter's update is one launch of ``sgd_kernel``.
"""
from .. import backend
from ..backend import xp
from ..kernels.optim import sgd_kernel
from .._core.checks import check_bool, check_real
from .optimizer import Optimizer, _check_common, _flat


class SGD(Optimizer):
    """Stochastic gradient descent with momentum, dampening, Nesterov momentum and
    (coupled) weight decay, as ``torch.optim.SGD``."""

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0,
                 nesterov=False, *, maximize=False):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov,
                                      maximize=maximize))

    def _check_group(self, group):
        _check_common(group)
        check_real("momentum", group["momentum"], 0.0)
        check_real("dampening", group["dampening"])
        check_bool("nesterov", group["nesterov"])
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("nesterov: expected momentum > 0 and dampening = 0 with Nesterov "
                             f"momentum, got momentum={group['momentum']}, "
                             f"dampening={group['dampening']}")

    def _update(self, p, grad, group, state):
        dtype = p.dtype.type
        momentum = group["momentum"]
        first = False
        if momentum != 0:
            if state.get("momentum_buffer") is None:
                state["momentum_buffer"] = xp.zeros(p.shape, dtype=p.dtype)
                first = True
            buffer = _flat(state["momentum_buffer"])
        else:
            buffer = backend.placeholder(1, p.dtype)
        param = _flat(p._array)
        backend.launch(sgd_kernel(p.dtype), param.size, param, grad, buffer,
                       dtype(group["lr"]), dtype(momentum), dtype(1 - group["dampening"]),
                       dtype(group["weight_decay"]), bool(group["nesterov"]),
                       bool(group["maximize"]), first)
