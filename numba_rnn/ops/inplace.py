"""In-place writes as the ops make them: ``in_place(target, compute, others, backward)``
replaces a tensor's values and records the write (the arithmetic ones, ``add_``, ...,
are in ``arith``; ``t[key] = v`` in ``index``; the shape ones, ``unsqueeze_``, ..., in
``movement`` through ``become``); and the writes of no other topic: ``copy_``,
``fill_``, ``zero_``. Every write ends in the tensor's ``_write_()``, which bumps its
version."""
from ..autograd.engine import Function
from ..autograd.grad_mode import is_grad_enabled
from ..backend import xp
from .convert import as_tensor, operand, unbroadcast

__all__ = ["copy_", "fill_", "zero_"]


def in_place(target, compute, others, backward):
    """Replace ``target``'s values by ``compute(old array)``, as PyTorch's in-place
    operations do. Recorded (when grad mode is on and target or ``others`` require
    grad), target becomes the output of a new node whose ``backward(g)`` gives the
    gradients of the old target and of ``others``; the new values go to a new array,
    so that arrays saved by earlier nodes stay as they were. A leaf that requires
    grad refuses, as in PyTorch. Not recorded, the values are written into target's
    own storage (what ``p.data.add_(...)`` and ``with no_grad(): p.mul_(...)``
    rely on), and target's version counts the write."""
    recording = is_grad_enabled() and (
        target.requires_grad or any(o.requires_grad for o in others))
    if recording and target.is_leaf and target.requires_grad:
        raise RuntimeError("a leaf tensor that requires grad is being used in an "
                           "in-place operation; use out-of-place operations, or "
                           "`with nr.no_grad():` for an update, or `.data`")
    new = compute(target._array)
    if recording:
        fn = Function((target,) + tuple(others), backward, 1, True)
        fn.dtypes = (new.dtype,)
        # the old values live on in the new node (target gets a new array), so later
        # writes to target cannot make them stale
        fn.versions = tuple(v for v in fn.versions if v[0] is not target)
        target._array, target._fn, target._output_nr = new, fn, 0
        target.requires_grad = True
    elif target._fn is None:
        target._array[...] = new
    else:
        target._array = new
    return target._write_()


def become(target, result):
    """Shape changes in place (unsqueeze_, ...): target takes ``result``'s view; a leaf
    stays a leaf."""
    if target._fn is None:
        target._array = result._array
    else:
        target._array, target._fn, target._output_nr = result._array, result._fn, result._output_nr
    return target


def copy_(input, src, non_blocking=False):
    input = as_tensor(input, "input")
    src = operand(input, src)
    shape, src_shape = input.shape, src.shape
    try:
        xp.broadcast_to(src._array, shape)
    except ValueError:
        raise ValueError(f"src: shape {src_shape} does not broadcast to {shape}") from None
    return in_place(input, lambda x: xp.broadcast_to(src._array, shape).astype(x.dtype),
                    (src,), lambda g: (None, unbroadcast(g, src_shape)))


def fill_(input, value):
    input = as_tensor(input, "input")
    value = operand(input, value)
    return in_place(input, lambda x: xp.full(x.shape, value._array, dtype=x.dtype),
                    (value,), lambda g: (None, g.sum().reshape(value.shape)))


def zero_(input):
    return fill_(input, 0)
