"""Optimizer updates, one thread per parameter element, PyTorch's rules exactly
(``torch.optim``'s single-tensor path), on flat (contiguous) views:

SGD, with d = ±grad (- when maximizing) + weight_decay·p:
    buf = d on the first step, else momentum·buf + (1 - dampening)·d
    d   = d + momentum·buf (nesterov), or buf;       p = p - lr·d

Adam / AdamW, with g = ±grad:
    p = p·(1 - lr·wd) (AdamW), or g = g + wd·p (Adam)
    m = m + (g - m)·(1 - β1)             (torch's lerp)
    v = v·β2 + (1 - β2)·g²;   v̂ = max(v̂, v) with amsgrad
    p = p - step_size · m / (sqrt(v or v̂) / sqrt(1 - β2^t) + eps),  step_size = lr / (1 - β1^t)

RMSprop, with g = ±grad + weight_decay·p:
    v = α·v + (1 - α)·g²;   centered: ḡ = ḡ + (1 - α)·(g - ḡ),  avg = sqrt(v - ḡ²) + eps,
    else avg = sqrt(v) + eps
    momentum > 0: buf = momentum·buf + g / avg,  p = p - lr·buf;  else p = p - lr·(g / avg)

Adagrad, with g = ±grad + weight_decay·p:
    sum = sum + g²;   p = p - clr·(g / (sqrt(sum) + eps)),  clr = lr / (1 + (t - 1)·lr_decay)

Adadelta, with g = ±grad + weight_decay·p:
    v = ρ·v + (1 - ρ)·g²;   δ = sqrt(u + eps) / sqrt(v + eps) · g
    u = ρ·u + (1 - ρ)·δ²;   p = p - lr·δ

Hyper-parameters arrive as scalars of the parameter's dtype, so float32 stays float32.
Arrays that a variant does not use are 1-element placeholders (arguments never alias).
Each update is written once, as the function of one element i, and compiled for the GPU
and the CPU (``targets.grid_kernel``).
"""
import functools
import math

from .. import backend
from . import registry, targets


def _float_dtypes():
    return [(dtype,) for dtype in backend.FLOAT_DTYPES]


@functools.lru_cache(maxsize=None)
def _gradient(dtype, target):
    """The device function every update starts from: (g, p) with p = param[i] and
    g = ±grad[i] (- when maximizing) + weight_decay·p (L2 decay; none when 0)."""
    zero = dtype.type(0)

    @targets.device(target)
    def gradient(grad, param, i, weight_decay, maximize):
        g = grad[i]
        if maximize:
            g = -g
        p = param[i]
        if weight_decay != zero:
            g = g + weight_decay * p
        return g, p

    return gradient


@registry.factory(_float_dtypes)
def sgd_kernel(dtype, target):
    zero = dtype.type(0)
    gradient = _gradient(dtype, target)

    def sgd_item(i, param, grad, momentum_buffer, lr, momentum, one_minus_dampening,
                 weight_decay, nesterov, maximize, first_step):
        # param, grad, momentum_buffer (N,); flags are 0 or 1
        if i >= param.shape[0]:
            return
        d, p = gradient(grad, param, i, weight_decay, maximize)
        if momentum != zero:
            if first_step:
                buf = d
            else:
                buf = momentum * momentum_buffer[i] + one_minus_dampening * d
            momentum_buffer[i] = buf
            if nesterov:
                d = d + momentum * buf
            else:
                d = buf
        param[i] = p - lr * d

    return targets.grid_kernel(sgd_item, target, "sgd_step")


@registry.factory(_float_dtypes)
def adam_kernel(dtype, target):
    zero = dtype.type(0)
    gradient = _gradient(dtype, target)

    def adam_item(i, param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, weight_decay, decay,
                  one_minus_beta1, beta2, one_minus_beta2, eps, step_size,
                  bias_correction2_sqrt, amsgrad, maximize, decoupled):
        # param, grad, exp_avg, exp_avg_sq (N,); max_exp_avg_sq (N,) with amsgrad;
        # decay = 1 - lr·weight_decay (AdamW)
        if i >= param.shape[0]:
            return
        # decoupled (AdamW): the decay scales p instead of entering g
        g, p = gradient(grad, param, i, zero if decoupled else weight_decay, maximize)
        if decoupled and weight_decay != zero:
            p = p * decay
        m = exp_avg[i]
        m = m + one_minus_beta1 * (g - m)
        v = exp_avg_sq[i] * beta2 + one_minus_beta2 * g * g
        exp_avg[i] = m
        exp_avg_sq[i] = v
        if amsgrad:
            v = max(max_exp_avg_sq[i], v)
            max_exp_avg_sq[i] = v
        denom = math.sqrt(v) / bias_correction2_sqrt + eps
        param[i] = p - step_size * (m / denom)

    return targets.grid_kernel(adam_item, target, "adam_step")


@registry.factory(_float_dtypes)
def rmsprop_kernel(dtype, target):
    zero = dtype.type(0)
    gradient = _gradient(dtype, target)

    def rmsprop_item(i, param, grad, square_avg, grad_avg, momentum_buffer, lr, alpha,
                     one_minus_alpha, eps, weight_decay, momentum, centered, maximize):
        # param, grad, square_avg (N,); grad_avg (N,) when centered; momentum_buffer (N,)
        # when momentum > 0
        if i >= param.shape[0]:
            return
        g, p = gradient(grad, param, i, weight_decay, maximize)
        v = square_avg[i] * alpha + one_minus_alpha * g * g
        square_avg[i] = v
        if centered:
            m = grad_avg[i]
            m = m + one_minus_alpha * (g - m)
            grad_avg[i] = m
            avg = math.sqrt(v - m * m) + eps
        else:
            avg = math.sqrt(v) + eps
        if momentum > zero:
            buf = momentum * momentum_buffer[i] + g / avg
            momentum_buffer[i] = buf
            param[i] = p - lr * buf
        else:
            param[i] = p - lr * (g / avg)

    return targets.grid_kernel(rmsprop_item, target, "rmsprop_step")


@registry.factory(_float_dtypes)
def adagrad_kernel(dtype, target):
    gradient = _gradient(dtype, target)

    def adagrad_item(i, param, grad, state_sum, clr, eps, weight_decay, maximize):
        # param, grad, state_sum (N,); clr = lr / (1 + (step - 1)·lr_decay)
        if i >= param.shape[0]:
            return
        g, p = gradient(grad, param, i, weight_decay, maximize)
        s = state_sum[i] + g * g
        state_sum[i] = s
        param[i] = p - clr * (g / (math.sqrt(s) + eps))

    return targets.grid_kernel(adagrad_item, target, "adagrad_step")


@registry.factory(_float_dtypes)
def adadelta_kernel(dtype, target):
    gradient = _gradient(dtype, target)

    def adadelta_item(i, param, grad, square_avg, acc_delta, lr, rho, one_minus_rho, eps,
                      weight_decay, maximize):
        # param, grad, square_avg, acc_delta (N,)
        if i >= param.shape[0]:
            return
        g, p = gradient(grad, param, i, weight_decay, maximize)
        v = square_avg[i] * rho + one_minus_rho * g * g
        square_avg[i] = v
        delta = math.sqrt(acc_delta[i] + eps) / math.sqrt(v + eps) * g
        acc_delta[i] = acc_delta[i] * rho + one_minus_rho * delta * delta
        param[i] = p - lr * delta

    return targets.grid_kernel(adadelta_item, target, "adadelta_step")
