"""Tensor and reverse-mode autograd over whole arrays.

Every operation that involves a tensor requiring gradients records a ``Function``: its
inputs and a closure that maps the gradients of its outputs to the gradients of its
inputs. ``Tensor.backward`` orders the recorded functions topologically and applies them
from the output back, accumulating (``+=``) into the ``.grad`` of leaf tensors, as PyTorch
does. A function may have several outputs (a recurrent layer returns the output sequence
and the final states); its closure then runs once, after the gradients of all of them
are known.
"""
import contextlib
import numbers

import numpy as np

from . import backend
from .backend import xp

_grad_enabled = True


class no_grad(contextlib.ContextDecorator):
    """Within this context, operations record no graph (as ``torch.no_grad``)."""

    def __enter__(self):
        global _grad_enabled
        self._previous, _grad_enabled = _grad_enabled, False
        return self

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self._previous
        return False


def is_grad_enabled():
    return _grad_enabled


class Function:
    """One recorded operation: ``backward(grads) -> one gradient (or None) per input``.

    ``grads`` is the output's gradient array for a single-output function, or a list with
    one entry per output (``None`` where that output received no gradient).
    """

    __slots__ = ("inputs", "backward", "n_outputs")

    def __init__(self, inputs, backward, n_outputs=1):
        self.inputs = inputs
        self.backward = backward
        self.n_outputs = n_outputs


def _dtype_of(dtype):
    """A NumPy dtype from a string, a NumPy type or dtype."""
    try:
        return np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype: expected a NumPy dtype or its name, got {dtype!r}") from None


def _to_storage(data, dtype=None):
    """Device storage for ``data``; lists and Python scalars follow PyTorch's defaults
    (float32 for floats, int64 for integers) when no dtype is given."""
    if isinstance(data, Tensor):
        data = data.data
    if dtype is not None:
        return backend.to_device(data, _dtype_of(dtype))
    if isinstance(data, (list, tuple, numbers.Number)):
        host = np.asarray(data)
        if host.dtype == np.float64:
            host = host.astype(np.float32)
        elif host.dtype.kind in "iu":
            host = host.astype(np.int64)
        return backend.to_device(host)
    return backend.to_device(data)


def tensor(data, dtype=None, requires_grad=False):
    """A new leaf tensor holding a copy of ``data`` on the device."""
    storage = _to_storage(data, dtype)
    if storage is data or (isinstance(data, Tensor) and storage is data.data):
        storage = storage.copy()
    return Tensor(storage, requires_grad=requires_grad)


def _unbroadcast(grad, shape):
    """Sum ``grad`` over the axes that broadcasting added or stretched to reach ``shape``."""
    if grad.shape == tuple(shape):
        return grad
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad


class Tensor:
    """An n-dimensional array on the device, with an optional gradient."""

    __array_priority__ = 1000  # so that ndarray <op> Tensor defers to Tensor's reflected op

    def __init__(self, data, requires_grad=False, _fn=None, _output_nr=0):
        self.data = data
        if requires_grad and data.dtype not in backend.FLOAT_DTYPES:
            raise TypeError(
                f"requires_grad: only float32 and float64 tensors can require gradients, "
                f"got dtype {data.dtype}"
            )
        self.requires_grad = bool(requires_grad)
        self.grad = None
        self._fn = _fn
        self._output_nr = _output_nr

    # ----------------------------------------------------------------- properties
    shape = property(lambda self: tuple(self.data.shape))
    dtype = property(lambda self: self.data.dtype)
    ndim = property(lambda self: self.data.ndim)
    is_leaf = property(lambda self: self._fn is None)

    def __len__(self):
        return len(self.data)

    def numel(self):
        return int(self.data.size)

    def numpy(self):
        """A host NumPy copy of the data."""
        return np.array(backend.to_host(self.data), copy=True)

    def __array__(self, dtype=None, copy=None):
        host = backend.to_host(self.data)
        return host if dtype is None else host.astype(dtype)

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item(): expected a tensor with one element, got shape {self.shape}")
        return self.data.reshape(()).item()

    def detach(self):
        """The same storage, cut from the graph."""
        return Tensor(self.data)

    def requires_grad_(self, requires_grad=True):
        if not self.is_leaf:
            raise RuntimeError("requires_grad_: only leaf tensors can change requires_grad")
        Tensor.__init__(self, self.data, requires_grad)
        return self

    def __repr__(self):
        body = np.array2string(backend.to_host(self.data), separator=", ", prefix="tensor(")
        extra = ""
        if self.data.dtype != np.float32:
            extra += f", dtype={self.data.dtype}"
        if self.requires_grad:
            extra += ", requires_grad=True"
        return f"tensor({body}{extra})"

    # ------------------------------------------------------------------- autograd
    def backward(self, gradient=None):
        """Accumulate d(self)/d(leaf), weighted by ``gradient``, into every leaf's ``.grad``."""
        if not self.requires_grad:
            raise RuntimeError("backward: this tensor does not require grad and has no graph")
        if gradient is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"backward: gradient can be omitted only for a scalar, got shape {self.shape}"
                )
            grad = xp.ones_like(self.data)
        else:
            grad = _to_storage(gradient, self.dtype)
            if grad.shape != self.data.shape:
                raise ValueError(
                    f"gradient: expected shape {self.shape}, got {tuple(grad.shape)}"
                )
        _run_backward(self, grad)

    def _accumulate(self, grad):
        if self.grad is None:
            self.grad = Tensor(xp.array(grad, dtype=self.dtype, copy=True))
        else:
            self.grad.data += grad

    # ---------------------------------------------------------------- arithmetic
    def _operand(self, other):
        if isinstance(other, Tensor):
            return other
        if isinstance(other, numbers.Number):
            return Tensor(xp.asarray(other, dtype=self.dtype))
        return Tensor(backend.to_device(other))

    def __add__(self, other):
        other = self._operand(other)
        return _record(self.data + other.data, (self, other),
                       lambda g: (_unbroadcast(g, self.shape), _unbroadcast(g, other.shape)))

    def __sub__(self, other):
        other = self._operand(other)
        return _record(self.data - other.data, (self, other),
                       lambda g: (_unbroadcast(g, self.shape), -_unbroadcast(g, other.shape)))

    def __mul__(self, other):
        other = self._operand(other)
        a, b = self.data, other.data
        return _record(a * b, (self, other),
                       lambda g: (_unbroadcast(g * b, self.shape), _unbroadcast(g * a, other.shape)))

    def __truediv__(self, other):
        other = self._operand(other)
        a, b = self.data, other.data
        return _record(a / b, (self, other),
                       lambda g: (_unbroadcast(g / b, self.shape),
                                  _unbroadcast(-g * a / (b * b), other.shape)))

    def __radd__(self, other):
        return self._operand(other) + self

    def __rsub__(self, other):
        return self._operand(other) - self

    def __rmul__(self, other):
        return self._operand(other) * self

    def __rtruediv__(self, other):
        return self._operand(other) / self

    def __neg__(self):
        return _record(-self.data, (self,), lambda g: (-g,))

    def __pow__(self, exponent):
        if not isinstance(exponent, numbers.Real):
            raise TypeError(f"exponent: expected a real number, got {type(exponent).__name__}")
        a = self.data
        return _record(a ** exponent, (self,), lambda g: (g * exponent * a ** (exponent - 1),))

    def __matmul__(self, other):
        other = self._operand(other)
        a, b = self.data, other.data

        def backward(g):
            # Promote 1-D operands as matmul does, so that one rule covers every rank.
            a2 = a[None, :] if a.ndim == 1 else a
            b2 = b[:, None] if b.ndim == 1 else b
            if b.ndim == 1:
                g = g[..., None]
            if a.ndim == 1:
                g = g[..., None, :]
            da = _unbroadcast(g @ xp.swapaxes(b2, -1, -2), a2.shape).reshape(a.shape)
            db = _unbroadcast(xp.swapaxes(a2, -1, -2) @ g, b2.shape).reshape(b.shape)
            return da, db

        return _record(a @ b, (self, other), backward)

    def __rmatmul__(self, other):
        return self._operand(other) @ self

    # ---------------------------------------------------------------- reductions
    def sum(self, dim=None, keepdim=False, axis=None, keepdims=None):
        axes = _axes(dim if axis is None else axis, self.ndim)
        keep = keepdim if keepdims is None else keepdims
        shape = self.shape

        def backward(g):
            if not keep:
                g = g.reshape(tuple(1 if i in axes else n for i, n in enumerate(shape)))
            return (xp.broadcast_to(g, shape),)

        return _record(self.data.sum(axis=axes, keepdims=keep), (self,), backward)

    def mean(self, dim=None, keepdim=False, axis=None, keepdims=None):
        axes = _axes(dim if axis is None else axis, self.ndim)
        count = 1
        for i in axes:
            count *= self.shape[i]
        return self.sum(dim=axes, keepdim=keepdim if keepdims is None else keepdims) / count

    # ------------------------------------------------------------------- shapes
    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        original = self.shape
        return _record(self.data.reshape(shape), (self,), lambda g: (g.reshape(original),))

    view = reshape

    def transpose(self, dim0, dim1):
        return _record(xp.swapaxes(self.data, dim0, dim1), (self,),
                       lambda g: (xp.swapaxes(g, dim0, dim1),))

    @property
    def T(self):
        return _record(self.data.T, (self,), lambda g: (g.T,))

    def __getitem__(self, key):
        parts = key if isinstance(key, tuple) else (key,)
        for part in parts:
            if not isinstance(part, (numbers.Integral, slice, type(Ellipsis))) or isinstance(part, bool):
                raise TypeError(
                    f"index: expected ints, slices or ..., got {type(part).__name__}"
                )
        shape, dtype = self.shape, self.dtype

        def backward(g):
            full = xp.zeros(shape, dtype=dtype)
            full[key] = g  # ints and slices never select an element twice
            return (full,)

        return _record(self.data[key], (self,), backward)


def _axes(dim, ndim):
    """``dim`` (None, an int or a sequence) as a tuple of non-negative axes."""
    if dim is None:
        return tuple(range(ndim))
    dims = (dim,) if isinstance(dim, numbers.Integral) else tuple(dim)
    return tuple(d % ndim for d in dims)


def _record(data, inputs, backward):
    """A tensor holding ``data``; its graph node is recorded when an input needs one."""
    if _grad_enabled and any(t.requires_grad for t in inputs):
        return Tensor(data, requires_grad=True, _fn=Function(inputs, backward))
    return Tensor(data)


def record_multi(datas, inputs, backward):
    """Tensors holding ``datas``, the outputs of one operation whose ``backward`` takes the
    list of their gradients (``None`` for an output that got none) and returns one
    gradient (or None) per input."""
    if _grad_enabled and any(t.requires_grad for t in inputs):
        fn = Function(tuple(inputs), backward, n_outputs=len(datas))
        return [Tensor(d, requires_grad=True, _fn=fn, _output_nr=k) for k, d in enumerate(datas)]
    return [Tensor(d) for d in datas]


def _run_backward(root, grad):
    if root._fn is None:
        root._accumulate(grad)
        return
    # Topological order of the functions reachable from the root (inputs before users),
    # by an iterative depth-first search: graphs of long sequences are deep.
    order, seen, stack = [], {id(root._fn)}, [(root._fn, False)]
    while stack:
        fn, expanded = stack.pop()
        if expanded:
            order.append(fn)
            continue
        stack.append((fn, True))
        for t in fn.inputs:
            if t._fn is not None and id(t._fn) not in seen:
                seen.add(id(t._fn))
                stack.append((t._fn, False))

    pending = {id(root._fn): [None] * root._fn.n_outputs}
    pending[id(root._fn)][root._output_nr] = grad
    for fn in reversed(order):
        out_grads = pending.pop(id(fn), None)
        if out_grads is None:
            continue
        in_grads = fn.backward(out_grads if fn.n_outputs > 1 else out_grads[0])
        for t, g in zip(fn.inputs, in_grads):
            if g is None or not t.requires_grad:
                continue
            if t._fn is None:
                t._accumulate(g)
            else:
                slots = pending.setdefault(id(t._fn), [None] * t._fn.n_outputs)
                k = t._output_nr
                slots[k] = g if slots[k] is None else slots[k] + g
