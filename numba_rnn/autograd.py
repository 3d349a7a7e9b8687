"""``torch.autograd``'s names that older programs still use."""
from .tensor import Tensor, _to_storage, _wrap, enable_grad, no_grad, set_grad_enabled

__all__ = ["Variable", "backward", "no_grad", "enable_grad", "set_grad_enabled"]


def Variable(data, requires_grad=False, volatile=False):
    """What ``torch.autograd.Variable(t, requires_grad=...)`` is since PyTorch 0.4: a
    tensor sharing ``data``'s values, a leaf that requires grad when asked."""
    array = data._array if isinstance(data, Tensor) else _to_storage(data)
    if isinstance(data, Tensor) and not requires_grad:
        return data
    return _wrap(array, requires_grad=requires_grad)


def backward(tensors, grad_tensors=None, retain_graph=None):
    """Backward from each of ``tensors`` (with its gradient, where given)."""
    tensors = [tensors] if isinstance(tensors, Tensor) else list(tensors)
    grads = [None] * len(tensors) if grad_tensors is None else (
        [grad_tensors] if isinstance(grad_tensors, Tensor) else list(grad_tensors))
    for k, (t, g) in enumerate(zip(tensors, grads)):
        t.backward(g, retain_graph=retain_graph if k == len(tensors) - 1 else True)
