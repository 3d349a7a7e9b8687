"""``torch.autograd``'s functions that programs call: ``backward``, ``grad``,
``Variable``, over the engine (``engine.py``)."""
from .engine import is_tensor, refuse_create_graph, run_backward, storage_of, wrap

__all__ = ["Variable", "backward", "grad"]


def Variable(data, requires_grad=False, volatile=False):
    """What ``torch.autograd.Variable(t, requires_grad=...)`` is since PyTorch 0.4: a
    tensor sharing ``data``'s values, a leaf that requires grad when asked."""
    array = data._array if is_tensor(data) else storage_of(data)
    if is_tensor(data) and not requires_grad:
        return data
    return wrap(array, requires_grad=requires_grad)


def _tensors(value, name):
    values = [value] if is_tensor(value) else list(value)
    for k, t in enumerate(values):
        if not is_tensor(t):
            raise TypeError(f"{name}: expected Tensors, got {type(t).__name__} at index {k}")
    return values


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False):
    """Backward from each of ``tensors`` (with its gradient, where given)."""
    refuse_create_graph(create_graph, "backward")
    tensors = [tensors] if is_tensor(tensors) else list(tensors)
    grads = [None] * len(tensors) if grad_tensors is None else (
        [grad_tensors] if is_tensor(grad_tensors) else list(grad_tensors))
    for k, (t, g) in enumerate(zip(tensors, grads)):
        t.backward(g, retain_graph=retain_graph if k == len(tensors) - 1 else True)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         allow_unused=None, is_grads_batched=False, materialize_grads=False):
    """The gradients of ``outputs`` (weighted by ``grad_outputs``; None for a scalar)
    with respect to each of ``inputs``, as ``torch.autograd.grad``: a tuple of Tensors,
    no ``.grad`` touched. An input the outputs do not depend on is an error unless
    ``allow_unused`` (then None) or ``materialize_grads`` (then zeros).
    ``create_graph=True`` and ``is_grads_batched=True`` are refused with an error:
    numba_rnn's autograd differentiates once."""
    refuse_create_graph(create_graph, "grad")
    if is_grads_batched:
        raise NotImplementedError("grad(is_grads_batched=True): numba_rnn's autograd has "
                                  "no batched (vmapped) backward; loop over the gradients")
    outputs, inputs = _tensors(outputs, "outputs"), _tensors(inputs, "inputs")
    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    elif is_tensor(grad_outputs):
        grad_outputs = [grad_outputs]
    if len(grad_outputs) != len(outputs):
        raise ValueError(f"grad_outputs: expected {len(outputs)} gradients (one per "
                         f"output), got {len(grad_outputs)}")
    for k, t in enumerate(inputs):
        if not t.requires_grad:
            raise RuntimeError(f"inputs: the tensor at index {k} does not require grad")
    roots, grads = [], []
    for k, (t, g) in enumerate(zip(outputs, grad_outputs)):
        if not t.requires_grad:
            raise RuntimeError(f"outputs: element {k} does not require grad and does not "
                               "have a grad_fn")
        roots.append(t)
        grads.append(t._root_gradient(g, f"grad_outputs[{k}]", "grad"))
    found = run_backward(roots, grads, bool(retain_graph), wanted=inputs)
    result = []
    for k, t in enumerate(inputs):
        g = found[id(t)]
        if g is None:
            if materialize_grads:
                g = t._array * 0
            elif not allow_unused:
                raise RuntimeError(f"inputs: the tensor at index {k} appears to not have "
                                   "been used in the graph; pass allow_unused=True if "
                                   "that is intended")
        result.append(None if g is None else wrap(g))
    return tuple(result)
