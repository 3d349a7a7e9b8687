"""Tensor and reverse-mode autograd over whole arrays.

Every operation that involves a tensor requiring gradients records a ``Function``: edges
to its inputs' functions (or to the leaves themselves) and a closure that maps the
gradients of its outputs to the gradients of its inputs. ``Tensor.backward`` runs the
functions from the output back in reverse topological order, so that the gradients that
every use of a tensor contributes are summed before they propagate further, and
accumulates (``+=``) into the ``.grad`` of leaf tensors, as PyTorch does. A function may
have several outputs (a recurrent layer returns the output sequence and the final
states); its closure then runs once, after the gradients of all of them are known.

Graph lifetime follows PyTorch: backward() releases the arrays that closures saved (a
second backward through them raises RuntimeError) unless ``retain_graph=True``. Grad
mode (``no_grad``, ``enable_grad``, ``set_grad_enabled``) is per thread.
"""
import contextlib
import functools
import inspect
import numbers
import threading
import weakref

import numpy as np

from . import backend
from .backend import xp

# Grad mode is per thread, as in PyTorch: a thread starts with gradients enabled.
_local = threading.local()


def is_grad_enabled():
    """Whether operations record the graph in this thread."""
    return getattr(_local, "grad_enabled", True)


def _set_grad_mode(enabled):
    _local.grad_enabled = enabled


class _GradMode(contextlib.ContextDecorator):
    """A context manager and decorator that sets grad mode to ``self._enabled`` on entry
    and restores the previous mode on exit. Entries nest (each saves its own previous
    mode), and each call of a decorated function gets a fresh context, so a recursive
    decorated function restores the mode its caller had; a decorated generator runs each
    step in the mode, and its caller keeps its own between steps, as in PyTorch."""

    _enabled = None

    def __new__(cls, orig_func=None):
        if orig_func is None:
            return super().__new__(cls)
        if not callable(orig_func):
            raise TypeError(f"{cls.__name__}: expected no argument or a function to "
                            f"decorate, got {type(orig_func).__name__}")
        return cls()(orig_func)  # used bare, as @nr.no_grad

    def __init__(self):
        self._previous = []

    def __call__(self, func):
        if inspect.isgeneratorfunction(func):
            return _wrap_generator(self._recreate_cm, func)
        return super().__call__(func)

    def _recreate_cm(self):
        return type(self)()

    def __enter__(self):
        self._previous.append(is_grad_enabled())
        _set_grad_mode(self._enabled)
        return self

    def __exit__(self, *exc):
        _set_grad_mode(self._previous.pop())
        return False


def _wrap_generator(context, func):
    """``func``, a generator function, with every step of its generator run within a
    fresh ``context()`` (PyTorch's _wrap_generator does the same)."""
    @functools.wraps(func)
    def generator(*args, **kwargs):
        steps = func(*args, **kwargs)
        try:
            with context():
                response = steps.send(None)
            while True:
                try:
                    request = yield response
                except GeneratorExit:
                    with context():
                        steps.close()
                    raise
                except BaseException as exc:
                    with context():
                        response = steps.throw(exc)
                else:
                    with context():
                        response = steps.send(request)
        except StopIteration as stop:
            return stop.value

    return generator


class no_grad(_GradMode):
    """Within this context (or decorated function), operations record no graph, as
    ``torch.no_grad``."""

    _enabled = False


class enable_grad(_GradMode):
    """Within this context (or decorated function), operations record the graph again,
    also inside ``no_grad``, as ``torch.enable_grad``."""

    _enabled = True


class set_grad_enabled(_GradMode):
    """``set_grad_enabled(mode)`` switches grad mode on or off at once, as a function;
    as a context manager or decorator it restores the previous mode on exit."""

    def __new__(cls, mode):
        return object.__new__(cls)

    def __init__(self, mode):
        if not isinstance(mode, (bool, np.bool_)):
            raise TypeError(f"mode: expected True or False, got {type(mode).__name__} {mode!r}")
        self._enabled = bool(mode)
        self._before = is_grad_enabled()
        _set_grad_mode(self._enabled)

    def __call__(self, func):
        _set_grad_mode(self._before)  # decorating switches nothing until a call
        return super().__call__(func)

    def _recreate_cm(self):
        return set_grad_enabled(self._enabled)

    def __enter__(self):
        _set_grad_mode(self._enabled)
        return self

    def __exit__(self, *exc):
        _set_grad_mode(self._before)
        return False


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

    __slots__ = ("edges", "backward", "n_outputs", "saves", "retained", "versions")

    def __init__(self, inputs, backward, n_outputs=1, saves=True):
        self.edges = tuple(_edge(t) for t in inputs)
        self.backward = backward
        self.n_outputs = n_outputs
        self.saves = saves
        self.retained = None  # {output number: weakref of a tensor that retains its grad}
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


def dtype_of(value, name="dtype", kinds="biuf"):
    """The NumPy dtype that ``value`` names: a NumPy dtype or scalar type, a name NumPy
    knows ("float32", "int64", ...; note that "float" is NumPy's float64, not
    torch.float), a Python type (float is float64), or a PyTorch dtype (torch.float32,
    ...). Anything else, None included, a dtype whose kind is not in ``kinds`` (b bool,
    i/u integers, f floats), or one the device cannot hold (not in native byte order,
    wider than 8 bytes) is refused with a TypeError naming ``name``."""
    resolved = None
    if type(value).__name__ == "dtype" and type(value).__module__ == "torch":
        value = str(value).rsplit(".", 1)[-1]  # torch.float32 -> "float32"
    if isinstance(value, (str, type, np.dtype)):
        try:
            resolved = np.dtype(value)
        except (TypeError, ValueError):
            resolved = None
    if (resolved is None or resolved.kind not in kinds or not resolved.isnative
            or resolved.itemsize > 8):
        raise TypeError(f"{name}: expected a NumPy dtype, its name or a torch dtype, of "
                        f"kind {', '.join(_KIND_NAMES[k] for k in kinds)}, got {value!r}")
    return resolved


_KIND_NAMES = {"b": "bool", "i": "signed integer", "u": "unsigned integer", "f": "float"}


def _to_storage(data, dtype=None):
    """Device storage for ``data``; lists and Python scalars follow PyTorch's defaults
    (float32 for floats, int64 for integers) when no dtype is given."""
    if isinstance(data, Tensor):
        data = data._array
    if dtype is not None:
        return backend.to_device(data, dtype_of(dtype))
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
    if storage is data or (isinstance(data, Tensor) and storage is data._array):
        storage = storage.copy()
    return _wrap(storage, requires_grad=requires_grad)


def _wrap(array, requires_grad=False, _fn=None, _output_nr=0):
    """A Tensor around device storage ``array`` (no copy): how the package makes its
    tensors (``Tensor(...)`` is PyTorch's legacy constructor)."""
    t = Tensor.__new__(Tensor)
    t._init(array, requires_grad, _fn, _output_nr)
    return t


def _check_device(device):
    """numba_rnn has one device: ``"cuda"`` and ``"cpu"`` (with an index 0, or as a
    ``device``) both name it."""
    if device is None or isinstance(device, device_type):
        return
    if isinstance(device, numbers.Integral) and not isinstance(device, bool) and device == 0:
        return
    if isinstance(device, str) and device.split(":")[0] in ("cuda", "cpu") and (
            device.count(":") == 0 or device.split(":", 1)[1] == "0"):
        return
    if type(device).__name__ == "device" and type(device).__module__ == "torch":
        return
    raise ValueError(f"device: expected 'cuda', 'cpu' (numba_rnn has one device) or an "
                     f"nr.device, got {device!r}")


class device_type:
    """``nr.device("cuda")`` or ``nr.device("cpu")``: both name numba_rnn's one device
    (the GPU when there is one, else the simulator); kept so that programs that move
    models and data with ``.to(device)`` run unchanged."""

    def __init__(self, type="cuda", index=None):
        if isinstance(type, device_type):
            type, index = type.type, type.index
        elif isinstance(type, str) and ":" in type:
            type, index = type.split(":", 1)
            index = int(index)
        _check_device(type if index is None else f"{type}:{index}")
        self.type = type
        self.index = index

    def __eq__(self, other):
        if isinstance(other, str):
            other = device_type(other)
        return isinstance(other, device_type) and self.type == other.type

    def __hash__(self):
        return hash(self.type)

    def __str__(self):
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self):
        return f"device(type={self.type!r}" + (
            ")" if self.index is None else f", index={self.index})")


def _to_arguments(args, kwargs):
    """The dtype (or None) that ``Module.to``/``Tensor.to``'s arguments name; devices are
    checked and otherwise ignored (numba_rnn has one)."""
    unknown = set(kwargs) - {"dtype", "device", "non_blocking", "copy", "memory_format"}
    if unknown:
        raise TypeError(f"to(): unexpected keyword arguments {sorted(unknown)}")
    if len(args) > 2:
        raise TypeError(f"to(): expected at most a device and a dtype, got {len(args)} "
                        "positional arguments")
    dtype = kwargs.get("dtype")
    _check_device(kwargs.get("device"))
    for arg in args:
        if isinstance(arg, Tensor):
            dtype = arg.dtype
        elif _is_device(arg):
            _check_device(arg)
        else:
            dtype = arg
    return None if dtype is None else dtype_of(dtype)


def _is_device(value):
    return (isinstance(value, (device_type, numbers.Integral)) and not isinstance(value, bool)
            ) or (isinstance(value, str) and value.split(":")[0] in ("cuda", "cpu")) or (
        type(value).__name__ == "device" and type(value).__module__ == "torch")


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

    def __init__(self, *sizes_or_data, device=None):
        """The legacy constructor, as ``torch.Tensor``: ``Tensor(2, 3)`` is a float32
        tensor of that shape (zero-filled here), ``Tensor(data)`` a float32 copy of
        ``data``, ``Tensor()`` an empty one. New code uses ``nr.tensor`` and the creation
        functions."""
        _check_device(device)
        args = sizes_or_data
        if not args:
            array = xp.zeros((0,), dtype=np.float32)
        elif all(isinstance(a, numbers.Integral) and not isinstance(a, (bool, np.bool_))
                 for a in args):
            if any(a < 0 for a in args):
                raise ValueError(f"size: expected non-negative sizes, got {args}")
            array = xp.zeros(tuple(int(a) for a in args), dtype=np.float32)
        elif len(args) == 1:
            array = _to_storage(args[0], np.float32)
            if array is args[0] or (isinstance(args[0], Tensor) and array is args[0]._array):
                array = array.copy()
        else:
            raise TypeError(f"Tensor(): expected sizes (ints) or one sequence of data, got "
                            f"{', '.join(type(a).__name__ for a in args)}")
        self._init(array)

    def _init(self, data, requires_grad=False, _fn=None, _output_nr=0):
        self._array = data
        if requires_grad and data.dtype not in backend.FLOAT_DTYPES:
            raise TypeError(
                f"requires_grad: only float32 and float64 tensors can require gradients, "
                f"got dtype {data.dtype}"
            )
        self.requires_grad = bool(requires_grad)
        self.grad = None
        self._fn = _fn
        self._output_nr = _output_nr
        self._version = 0  # counts in-place writes of ``data`` (see Function.versions)

    # ----------------------------------------------------------------- properties
    shape = property(lambda self: tuple(self._array.shape))
    dtype = property(lambda self: self._array.dtype)
    ndim = property(lambda self: self._array.ndim)
    is_leaf = property(lambda self: self._fn is None)

    def __len__(self):
        return len(self._array)

    def numel(self):
        return int(self._array.size)

    def numpy(self):
        """A host NumPy copy of the data."""
        return np.array(backend.to_host(self._array), copy=True)

    def __array__(self, dtype=None, copy=None):
        host = backend.to_host(self._array)
        return host if dtype is None else host.astype(dtype)

    def item(self):
        if self._array.size != 1:
            raise ValueError(f"item(): expected a tensor with one element, got shape {self.shape}")
        return self._array.reshape(()).item()

    def detach(self):
        """The same storage, cut from the graph."""
        return _wrap(self._array)

    @property
    def data(self):
        """The same storage as a Tensor with no graph, as in PyTorch: writes to it
        (``p.data.add_(...)``) change this tensor's values and are not tracked."""
        return _wrap(self._array)

    @data.setter
    def data(self, value):
        array = value._array if isinstance(value, Tensor) else backend.to_device(value)
        self._array = array

    def requires_grad_(self, requires_grad=True):
        """Switch gradient tracking of a leaf on or off; ``.grad`` is kept, as in
        PyTorch."""
        if not self.is_leaf:
            raise RuntimeError("requires_grad_: only leaf tensors can change requires_grad")
        if requires_grad and self._array.dtype not in backend.FLOAT_DTYPES:
            raise TypeError(f"requires_grad: only float32 and float64 tensors can require "
                            f"gradients, got dtype {self._array.dtype}")
        self.requires_grad = bool(requires_grad)
        return self

    def __repr__(self):
        body = np.array2string(backend.to_host(self._array), separator=", ", prefix="tensor(")
        extra = ""
        if self._array.dtype != np.float32:
            extra += f", dtype={self._array.dtype}"
        if self.requires_grad:
            extra += ", requires_grad=True"
        return f"tensor({body}{extra})"

    # ------------------------------------------------------------------- autograd
    def backward(self, gradient=None, retain_graph=None, create_graph=False):
        """Accumulate d(self)/d(leaf), weighted by ``gradient`` (needed unless ``self``
        has one element), into the ``.grad`` of every leaf that requires grad, and of
        every non-leaf that called ``retain_grad()``.

        Afterwards the arrays that the graph saved for backward are released, and a
        second backward through the same operations raises RuntimeError, unless
        ``retain_graph=True`` keeps them, as in PyTorch."""
        if create_graph:
            raise NotImplementedError("create_graph: higher-order gradients are not "
                                      "supported; call backward() without create_graph")
        if not self.requires_grad:
            raise RuntimeError("backward: this tensor does not require grad and has no graph")
        if gradient is None:
            if self._array.size != 1:
                raise RuntimeError(
                    f"backward: gradient can be omitted only for a scalar, got shape {self.shape}"
                )
            grad = xp.ones_like(self._array)
        else:
            grad = _to_storage(gradient, self.dtype)
            if grad.shape != self._array.shape:
                raise GradientShapeError(
                    f"gradient: expected shape {self.shape}, got {tuple(grad.shape)}"
                )
        _run_backward(self, grad, bool(retain_graph))

    def retain_grad(self):
        """Have backward() fill this non-leaf tensor's ``.grad`` too (leaves always get
        theirs)."""
        if not self.requires_grad:
            raise RuntimeError("retain_grad: this tensor does not require grad")
        if self._fn is not None:
            if self._fn.retained is None:
                self._fn.retained = {}
            self._fn.retained[self._output_nr] = weakref.ref(self)

    @property
    def retains_grad(self):
        fn = self._fn
        return (fn is not None and fn.retained is not None
                and fn.retained.get(self._output_nr, lambda: None)() is self)

    def _accumulate(self, grad):
        if self.grad is None:
            self.grad = _wrap(xp.array(grad, dtype=self.dtype, copy=True))
        else:
            self.grad._array += grad

    # ---------------------------------------------------------------- arithmetic
    def _operand(self, other):
        if isinstance(other, Tensor):
            return other
        if isinstance(other, numbers.Number):
            return _wrap(xp.asarray(other, dtype=self.dtype))
        return _wrap(backend.to_device(other))

    def __add__(self, other):
        other = self._operand(other)
        shape, other_shape = self.shape, other.shape
        return _record(self._array + other._array, (self, other),
                       lambda g: (_unbroadcast(g, shape), _unbroadcast(g, other_shape)),
                       saves=False)

    def __sub__(self, other):
        other = self._operand(other)
        shape, other_shape = self.shape, other.shape
        return _record(self._array - other._array, (self, other),
                       lambda g: (_unbroadcast(g, shape), -_unbroadcast(g, other_shape)),
                       saves=False)

    def __mul__(self, other):
        other = self._operand(other)
        a, b = self._array, other._array
        return _record(a * b, (self, other),
                       lambda g: (_unbroadcast(g * b, a.shape), _unbroadcast(g * a, b.shape)))

    def __truediv__(self, other):
        other = self._operand(other)
        a, b = self._array, other._array
        return _record(a / b, (self, other),
                       lambda g: (_unbroadcast(g / b, a.shape),
                                  _unbroadcast(-g * a / (b * b), b.shape)))

    def __radd__(self, other):
        return self._operand(other) + self

    def __rsub__(self, other):
        return self._operand(other) - self

    def __rmul__(self, other):
        return self._operand(other) * self

    def __rtruediv__(self, other):
        return self._operand(other) / self

    def __neg__(self):
        return _record(-self._array, (self,), lambda g: (-g,), saves=False)

    def __pow__(self, exponent):
        if not isinstance(exponent, numbers.Real):
            raise TypeError(f"exponent: expected a real number, got {type(exponent).__name__}")
        a = self._array
        return _record(a ** exponent, (self,), lambda g: (g * exponent * a ** (exponent - 1),))

    def __matmul__(self, other):
        other = self._operand(other)
        a, b = self._array, other._array

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

        return _record(self._array.sum(axis=axes, keepdims=keep), (self,), backward, saves=False)

    def mean(self, dim=None, keepdim=False, axis=None, keepdims=None):
        axes = _axes(dim if axis is None else axis, self.ndim)
        keep = keepdim if keepdims is None else keepdims
        shape = self.shape
        count = 1
        for i in axes:
            count *= shape[i]
        count = self.dtype.type(count)  # x / count keeps x's dtype

        def backward(g):
            if not keep:
                g = g.reshape(tuple(1 if i in axes else n for i, n in enumerate(shape)))
            return (xp.broadcast_to(g / count, shape),)

        return _record(self._array.sum(axis=axes, keepdims=keep) / count, (self,), backward,
                       saves=False)

    # ------------------------------------------------------------------- shapes
    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        original = self.shape
        return _record(self._array.reshape(shape), (self,), lambda g: (g.reshape(original),),
                       saves=False)

    view = reshape

    def transpose(self, dim0, dim1):
        return _record(xp.swapaxes(self._array, dim0, dim1), (self,),
                       lambda g: (xp.swapaxes(g, dim0, dim1),), saves=False)

    @property
    def T(self):
        return _record(self._array.T, (self,), lambda g: (g.T,), saves=False)

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

        return _record(self._array[key], (self,), backward, saves=False)


def _axes(dim, ndim):
    """``dim`` (None, an int or a sequence) as a tuple of non-negative axes."""
    if dim is None:
        return tuple(range(ndim))
    dims = (dim,) if isinstance(dim, numbers.Integral) else tuple(dim)
    return tuple(d % ndim for d in dims)


def _record(data, inputs, backward, saves=True):
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
        return [_wrap(d, requires_grad=True, _fn=fn, _output_nr=k) for k, d in enumerate(datas)]
    return [_wrap(d) for d in datas]


_FREED = ("backward: trying to backward through the graph a second time (or through "
          "part of it that an earlier backward() went through); the arrays it saved "
          "were released then. Call the first backward(retain_graph=True) to keep them")


_MODIFIED = ("backward: a tensor of shape {shape} that this graph saved for the gradient "
             "was modified in place after the forward pass (its version is {new}, it was "
             "{old} then: an optimizer step or load_state_dict wrote it), so the "
             "gradient would be wrong; run the forward again after the update")


def _run_backward(root, grad, retain_graph):
    """Apply the recorded functions from ``root`` back to the leaves, in reverse
    topological order: a function runs only once every consumer of its outputs has
    passed its gradient, so that each output's gradient is complete (summed over all
    its uses) before it propagates further (PyTorch's engine counts dependencies the
    same way). Iterative: graphs of long sequences are deep."""
    if root._fn is None:
        root._accumulate(grad)
        return
    # Pass 1: every function reachable from the root, and how many edges from those
    # functions lead into each one.
    reachable = {id(root._fn): root._fn}
    consumers = {}
    stack = [root._fn]
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
    pending = {id(root._fn): [None] * root._fn.n_outputs}
    pending[id(root._fn)][root._output_nr] = grad
    ready = [root._fn]
    while ready:
        fn = ready.pop()
        out_grads = pending.pop(id(fn), None)
        in_grads = None
        if out_grads is not None:
            if fn.retained:
                for k, ref in fn.retained.items():
                    tensor = ref()
                    if tensor is not None and out_grads[k] is not None:
                        tensor._accumulate(out_grads[k])
            in_grads = fn.backward(out_grads if fn.n_outputs > 1 else out_grads[0])
        if fn.saves and not retain_graph:
            fn.release()
        for k, edge in enumerate(fn.edges):
            g = None if in_grads is None else in_grads[k]
            if type(edge) is tuple:
                producer, output_nr = edge
                key = id(producer)
                if g is not None:
                    slots = pending.setdefault(key, [None] * producer.n_outputs)
                    slots[output_nr] = g if slots[output_nr] is None else slots[output_nr] + g
                consumers[key] -= 1
                if consumers[key] == 0:
                    ready.append(producer)
            elif edge is not None and g is not None:
                edge._accumulate(g)
