"""The autograd engine: graph nodes (``Function``), recording an operation's outputs
(``record``, ``record_multi``), and the backward pass over whole arrays
(``run_backward``), with the version checks that refuse a stale graph.

Every operation that involves a tensor requiring gradients records a ``Function``: edges
to its inputs' functions (or to the leaves themselves) and a closure that maps the
gradients of its outputs to the gradients of its inputs. ``run_backward`` runs the
functions from the output back in reverse topological order, so that the gradients that
every use of a tensor contributes are summed before they propagate further, and
accumulates (``+=``) into the ``.grad`` of leaf tensors, as PyTorch does. A function may
have several outputs (a recurrent layer returns the output sequence and the final
states); its closure then runs once, after the gradients of all of them are known.

Graph lifetime follows PyTorch: backward releases the arrays that closures saved (a
second backward through them raises RuntimeError) unless ``retain_graph=True``.

The engine makes the tensors it records with the Tensor class that ``numba_rnn.tensor``
registers (``register_tensor_class``): the engine sits below the Tensor, which calls it.
"""
from .grad_mode import is_grad_enabled

_tensor_class = None


def register_tensor_class(cls):
    """Make ``cls`` (numba_rnn's Tensor) the class of the tensors the engine records;
    ``cls._make(array, requires_grad, fn, output_nr)`` builds one around an array,
    ``cls._storage(value, dtype)`` converts a user's value to device storage."""
    global _tensor_class
    _tensor_class = cls


def wrap(array, requires_grad=False, _fn=None, _output_nr=0):
    """A Tensor around device storage ``array`` (no copy)."""
    return _tensor_class._make(array, requires_grad, _fn, _output_nr)


def is_tensor(value):
    return isinstance(value, _tensor_class)


def storage_of(value, dtype=None):
    """Device storage for a user's value (a Tensor's own array, else converted as
    ``nr.tensor`` converts: the Tensor's one converter)."""
    return _tensor_class._storage(value, dtype)


class Function:
    """One recorded operation: ``backward(grads) -> one gradient (or None) per input``.

    ``grads`` is the output's gradient array for a single-output function, or a list with
    one entry per output (``None`` where that output received no gradient).

    ``edges`` has one entry per input: None (the input needs no gradient), the input
    itself when it is a leaf that requires grad (its ``.grad`` accumulates), or
    ``(function, output number)`` of the operation that produced it. The graph holds
    functions and leaves, not intermediate tensors: their arrays stay alive only where
    a ``backward`` closure saved them. ``saves`` says whether it did; such a closure is
    dropped after it runs (unless the graph is retained), which frees those arrays.
    ``versions``: the leaf inputs with their ``_version`` when recorded; a leaf written
    in place since (an optimizer step, load_state_dict) would make the saved arrays
    stale, and backward refuses to run, as PyTorch's version counters do.
    """

    __slots__ = ("edges", "backward", "n_outputs", "saves", "retained", "versions", "dtypes")

    def __init__(self, inputs, backward, n_outputs=1, saves=True):
        self.edges = tuple(_edge(t) for t in inputs)
        self.backward = backward
        self.n_outputs = n_outputs
        self.saves = saves
        self.retained = None  # {output number: weakref of a tensor that retains its grad}
        self.dtypes = None  # each output's dtype: the engine casts gradients to it
        self.versions = tuple((t, t._version) for t in inputs if t._fn is None) if saves else ()

    def release(self):
        """Drop the closure and what it saved."""
        self.backward = None
        self.versions = ()


class GradientShapeError(ValueError, RuntimeError):
    """A ``backward(gradient)`` whose shape is not the tensor's: a ValueError, as bad
    input is here, and a RuntimeError, as PyTorch raises."""


def _edge(t):
    if not t.requires_grad:
        return None
    return t if t._fn is None else (t._fn, t._output_nr)


def record(data, inputs, backward, saves=True):
    """A tensor holding ``data``; its graph node is recorded when an input needs one.
    ``saves``: whether ``backward`` keeps arrays alive (False where it keeps only shapes
    and constants: such a node can be run again after its graph was released)."""
    return record_multi([data], inputs, backward, saves)[0]


def record_multi(datas, inputs, backward, saves=True):
    """Tensors holding ``datas``, the outputs of one operation. ``backward`` takes the
    output's gradient (one output) or the list of their gradients (``None`` for an output
    that got none), and returns one gradient (or None) per input."""
    if is_grad_enabled() and any(t.requires_grad for t in inputs):
        fn = Function(inputs, backward, len(datas), saves)
        fn.dtypes = tuple(d.dtype for d in datas)
        return [wrap(d, requires_grad=True, _fn=fn, _output_nr=k) for k, d in enumerate(datas)]
    return [wrap(d) for d in datas]


_FREED = ("backward: trying to backward through the graph a second time (or through "
          "part of it that an earlier backward() went through); the arrays it saved "
          "were released then. Call the first backward(retain_graph=True) to keep them")


_MODIFIED = ("backward: a tensor of shape {shape} that this graph saved for the gradient "
             "was modified in place after the forward pass (its version is {new}, it was "
             "{old} then: an optimizer step or load_state_dict wrote it), so the "
             "gradient would be wrong; run the forward again after the update")


def refuse_create_graph(create_graph, caller):
    """numba_rnn's engine differentiates once: a backward pass that records its own graph
    (create_graph=True) is refused, never answered with first-order gradients that carry
    no graph."""
    if create_graph:
        raise NotImplementedError(
            f"{caller}(create_graph=True): numba_rnn's autograd computes first-order "
            "gradients only (its backward functions work on arrays and record no graph), "
            "so higher-order derivatives are refused rather than silently wrong; run the "
            "model inside PyTorch with numba_rnn.torch for gradient penalties or "
            "double backward, or call it without create_graph")


def run_backward(roots, grads, retain_graph, wanted=None):
    """Apply the recorded functions from ``roots`` (with their gradients ``grads``) back
    to the leaves, in reverse topological order: a function runs only once every
    consumer of its outputs has passed its gradient, so that each output's gradient is
    complete (summed over all its uses) before it propagates further (PyTorch's engine
    counts dependencies the same way). Iterative: graphs of long sequences are deep.

    Without ``wanted`` the gradients accumulate into the leaves' (and retained
    tensors') ``.grad``. With ``wanted`` (tensors, as ``autograd.grad``'s inputs) no
    ``.grad`` is touched: returns the gradient of each wanted tensor (None where none
    reached it)."""
    found = None if wanted is None else {id(t): None for t in wanted}

    def deliver(tensor, g):
        if found is None:
            tensor._accumulate(g)
        elif id(tensor) in found:
            found[id(tensor)] = g if found[id(tensor)] is None else found[id(tensor)] + g

    # the wanted non-leaves, by the function and output that produce them
    produced = {} if wanted is None else {(id(t._fn), t._output_nr): t for t in wanted
                                           if t._fn is not None}
    pending, stack, reachable = {}, [], {}
    for root, grad in zip(roots, grads):
        if root._fn is None:
            deliver(root, grad)
            continue
        slots = pending.setdefault(id(root._fn), [None] * root._fn.n_outputs)
        k = root._output_nr
        slots[k] = grad if slots[k] is None else slots[k] + grad
        if id(root._fn) not in reachable:
            reachable[id(root._fn)] = root._fn
            stack.append(root._fn)
    # Pass 1: every function reachable from the roots, and how many edges from those
    # functions lead into each one.
    consumers = {}
    while stack:
        fn = stack.pop()
        if fn.backward is None:
            raise RuntimeError(_FREED)
        for tensor, version in fn.versions:
            if tensor._version != version:
                raise RuntimeError(_MODIFIED.format(shape=tensor.shape, old=version,
                                                    new=tensor._version))
        for edge in fn.edges:
            if type(edge) is tuple:
                producer = edge[0]
                key = id(producer)
                consumers[key] = consumers.get(key, 0) + 1
                if key not in reachable:
                    reachable[key] = producer
                    stack.append(producer)

    # Pass 2: run each function once all its consumers have run.
    ready = [fn for key, fn in reachable.items() if consumers.get(key, 0) == 0]
    while ready:
        fn = ready.pop()
        out_grads = pending.pop(id(fn), None)
        in_grads = None
        if out_grads is not None:
            if found is None and fn.retained:
                for k, ref in fn.retained.items():
                    tensor = ref()
                    if tensor is not None and out_grads[k] is not None:
                        tensor._accumulate(out_grads[k])
            for k, g in enumerate(out_grads):
                if g is not None and (id(fn), k) in produced:
                    deliver(produced[(id(fn), k)], g)
            in_grads = fn.backward(out_grads if fn.n_outputs > 1 else out_grads[0])
        if fn.saves and not retain_graph:
            fn.release()
        for k, edge in enumerate(fn.edges):
            g = None if in_grads is None else in_grads[k]
            if type(edge) is tuple:
                producer, output_nr = edge
                key = id(producer)
                if g is not None:
                    if producer.dtypes is not None and g.dtype != producer.dtypes[output_nr]:
                        g = g.astype(producer.dtypes[output_nr])  # after a promotion
                    slots = pending.setdefault(key, [None] * producer.n_outputs)
                    slots[output_nr] = g if slots[output_nr] is None else slots[output_nr] + g
                consumers[key] -= 1
                if consumers[key] == 0:
                    ready.append(producer)
            elif edge is not None and g is not None:
                deliver(edge, g)
    return found
