"""The Tensor: device storage (``_array``), its gradient, its version counter (bumped by
``_write_`` at every in-place write) and its methods, PyTorch's.

Autograd lives below it, in ``numba_rnn.autograd``: grad mode (per thread), the engine
that records each operation as a graph node and runs the backward pass, and the version
checks; this module registers the Tensor class with the engine at its end. The
elementwise ops (``numba_rnn.ops``) are defined once there and bound here as methods.
"""
import numbers
import weakref
from collections import namedtuple

import numpy as np

from . import backend, random
from ._core.devices import check_device as _check_device
from ._core.devices import device_type
from ._core.devices import is_device as _is_device
from ._core.dtypes import dtype_of
from .autograd.engine import Function, GradientShapeError, refuse_create_graph, register_tensor_class
from .autograd.engine import record as _record
from .autograd.engine import record_multi
from .autograd.engine import run_backward as _run_backward
from .autograd.grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .backend import xp
from .ops import elementwise, join, softmax as _softmax_ops
from .ops.convert import array_of as _array_of  # noqa: F401
from .ops.convert import index_array as _index_array
from .ops.convert import mask_array as _mask_array
from .ops.convert import promote as _promote
from .ops.convert import scalar_dtype as _scalar_dtype
from .ops.convert import unbroadcast as _unbroadcast

# old import paths (numba_rnn.tensor.no_grad, ...): the names live in autograd and _core
__all__ = ["Tensor", "Size", "tensor", "dtype_of", "device_type", "Function",
           "GradientShapeError", "record_multi", "no_grad", "enable_grad",
           "set_grad_enabled", "is_grad_enabled"]

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


def tensor(data, dtype=None, *, device=None, requires_grad=False, pin_memory=False):
    """A new leaf tensor holding a copy of ``data`` on the device."""
    _check_device(device)
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

    def _write_(self):
        """Record that this tensor's storage was written in place: the one way every
        in-place write (an optimizer step, ``load_state_dict``, ``nn.init``, a running
        statistic) bumps the version counter, so that a graph that saved the old values
        refuses a stale backward, as PyTorch's version counters do. Returns self."""
        self._version += 1
        return self

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
        refuse_create_graph(create_graph, "backward")
        if not self.requires_grad:
            raise RuntimeError("backward: this tensor does not require grad and has no graph")
        grad = self._root_gradient(gradient, "gradient", "backward")
        _run_backward([self], [grad], bool(retain_graph))

    def _root_gradient(self, gradient, name, caller):
        """The gradient that a backward pass from ``self`` starts with: ``gradient``
        (argument ``name``) as an array of self's shape, or ones for a scalar."""
        if gradient is None:
            if self._array.size != 1:
                raise RuntimeError(
                    f"{caller}: gradient can be omitted only for a scalar, got shape {self.shape}"
                )
            return xp.ones_like(self._array)
        grad = _to_storage(gradient, self.dtype)
        if grad.shape != self._array.shape:
            raise GradientShapeError(f"{name}: expected shape {self.shape}, got {tuple(grad.shape)}")
        return grad

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
        """``other`` (a Tensor, a Python number, an array or a list) as a Tensor for a
        binary operation with ``self``; numbers take PyTorch's dtype (see
        ``_scalar_dtype``)."""
        if isinstance(other, Tensor):
            return other
        if isinstance(other, (numbers.Number, np.bool_)):
            return _wrap(xp.asarray(other, dtype=_scalar_dtype(self.dtype, other)))
        return _wrap(_to_storage(other))

    def _prepare(self, other, reflected=False):
        """(a, b, x, y): the operands in order (swapped when ``reflected``) and their
        arrays cast to the promoted dtype. Gradients come back in that dtype; the engine
        casts them to each input's own."""
        other = self._operand(other)
        a, b = (other, self) if reflected else (self, other)
        dtype = _promote(a, b)
        return a, b, a._array.astype(dtype, copy=False), b._array.astype(dtype, copy=False)

    def _binary(self, other, forward, backward, reflected=False):
        """``forward(x, y)``, recorded with ``backward(g, x, y)`` (which saves x, y)."""
        a, b, x, y = self._prepare(other, reflected)
        return _record(forward(x, y), (a, b), lambda g: backward(g, x, y))

    def __add__(self, other, reflected=False):
        a, b, x, y = self._prepare(other, reflected)
        sa, sb = x.shape, y.shape
        return _record(x + y, (a, b), lambda g: (_unbroadcast(g, sa), _unbroadcast(g, sb)),
                       saves=False)

    def __sub__(self, other, reflected=False):
        a, b, x, y = self._prepare(other, reflected)
        sa, sb = x.shape, y.shape
        return _record(x - y, (a, b), lambda g: (_unbroadcast(g, sa), -_unbroadcast(g, sb)),
                       saves=False)

    def __mul__(self, other, reflected=False):
        return self._binary(other, lambda x, y: x * y,
                            lambda g, x, y: (_unbroadcast(g * y, x.shape),
                                             _unbroadcast(g * x, y.shape)),
                            reflected=reflected)

    def __truediv__(self, other, reflected=False):
        other = self._operand(other)
        if self.dtype.kind != "f" and other.dtype.kind != "f":  # int / int is float32
            return _wrap(self._array.astype(np.float32)).__truediv__(
                _wrap(other._array.astype(np.float32)), reflected)
        return self._binary(other, lambda x, y: x / y,
                            lambda g, x, y: (_unbroadcast(g / y, x.shape),
                                             _unbroadcast(-g * x / (y * y), y.shape)),
                            reflected=reflected)

    def __radd__(self, other):
        return self.__add__(other, reflected=True)

    def __rsub__(self, other):
        return self.__sub__(other, reflected=True)

    def __rmul__(self, other):
        return self.__mul__(other, reflected=True)

    def __rtruediv__(self, other):
        return self.__truediv__(other, reflected=True)

    def __floordiv__(self, other):
        other = self._operand(other)
        return _wrap(xp.floor_divide(self._array, other._array))

    def __rfloordiv__(self, other):
        return self._operand(other).__floordiv__(self)

    def __mod__(self, other):
        other = self._operand(other)
        return _wrap(xp.remainder(self._array, other._array))

    def __neg__(self):
        return _record(-self._array, (self,), lambda g: (-g,), saves=False)

    def __pos__(self):
        return self

    def __abs__(self):
        return self.abs()

    def __pow__(self, exponent, reflected=False):
        if isinstance(exponent, numbers.Real) and not isinstance(exponent, bool) and not reflected:
            a = self._array
            if a.dtype.kind != "f" and not isinstance(exponent, numbers.Integral):
                a = a.astype(np.float32)
            e = a.dtype.type(exponent) if a.dtype.kind == "f" else exponent
            return _record(a ** e, (self,), lambda g: (g * e * a ** (e - 1),))

        def backward(g, x, y):
            z = x ** y
            dx = g * y * x ** (y - 1)
            with np.errstate(divide="ignore", invalid="ignore"):
                dy = g * z * xp.where(x > 0, xp.log(xp.where(x > 0, x, 1)), 0)
            return _unbroadcast(dx, x.shape), _unbroadcast(dy, y.shape)

        return self._binary(exponent, lambda x, y: x ** y, backward, reflected=reflected)

    def __rpow__(self, base):
        return self.__pow__(base, reflected=True)

    def __matmul__(self, other, reflected=False):
        def backward(g, a, b):
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

        other = self._operand(other)
        for name, t in (("input", self), ("other", other)):
            if t.ndim == 0:
                raise ValueError(f"matmul: {name}: expected at least 1 dimension, got a "
                                 "0-d tensor")
        return self._binary(other, lambda x, y: x @ y, backward, reflected=reflected)

    def __rmatmul__(self, other):
        return self.__matmul__(other, reflected=True)

    # In place, as PyTorch: x += y changes x (see _in_place for the rules).
    def __iadd__(self, other):
        return self.add_(other)

    def __isub__(self, other):
        return self.sub_(other)

    def __imul__(self, other):
        return self.mul_(other)

    def __itruediv__(self, other):
        return self.div_(other)

    def add(self, other, alpha=1):
        return self + (other if alpha == 1 else self._operand(other) * alpha)

    def sub(self, other, alpha=1):
        return self - (other if alpha == 1 else self._operand(other) * alpha)

    def mul(self, other):
        return self * other

    def div(self, other, rounding_mode=None):
        if rounding_mode is None:
            return self / other
        check_rounding = {"floor": xp.floor, "trunc": xp.trunc}
        if rounding_mode not in check_rounding:
            raise ValueError(f"rounding_mode: expected None, 'floor' or 'trunc', got "
                             f"{rounding_mode!r}")
        quotient = (self.detach() / other)._array
        result = check_rounding[rounding_mode](quotient)
        if self.dtype.kind != "f" and self._operand(other).dtype.kind != "f":
            result = result.astype(np.promote_types(self.dtype, self._operand(other).dtype))
        return _wrap(result)

    multiply, divide, subtract, true_divide = mul, div, sub, div

    def pow(self, exponent):
        return self ** exponent

    def matmul(self, other):
        return self @ other

    def mm(self, other):
        other = self._operand(other)
        if self.ndim != 2 or other.ndim != 2:
            raise ValueError(f"mm: expected two 2-D tensors, got shapes {self.shape} and "
                             f"{other.shape}")
        return self @ other

    def bmm(self, other):
        other = self._operand(other)
        if self.ndim != 3 or other.ndim != 3 or self.shape[0] != other.shape[0]:
            raise ValueError(f"bmm: expected two 3-D tensors with the same batch size, got "
                             f"shapes {self.shape} and {other.shape}")
        return self @ other

    def dot(self, other):
        other = self._operand(other)
        if self.ndim != 1 or other.ndim != 1:
            raise ValueError(f"dot: expected two 1-D tensors, got shapes {self.shape} and "
                             f"{other.shape}")
        return self @ other

    # ----------------------------------------------------------- comparisons
    def _compare(self, other, op):
        if not isinstance(other, (Tensor, numbers.Number, np.bool_, np.ndarray, list, tuple)) \
                and not backend.is_device_array(other):
            return NotImplemented
        other = self._operand(other)
        dtype = _promote(self, other)
        return _wrap(op(self._array.astype(dtype, copy=False),
                        other._array.astype(dtype, copy=False)))

    def __eq__(self, other):
        return self._compare(other, xp.equal)

    def __ne__(self, other):
        return self._compare(other, xp.not_equal)

    def __lt__(self, other):
        return self._compare(other, xp.less)

    def __le__(self, other):
        return self._compare(other, xp.less_equal)

    def __gt__(self, other):
        return self._compare(other, xp.greater)

    def __ge__(self, other):
        return self._compare(other, xp.greater_equal)

    __hash__ = object.__hash__  # tensors are hashed by identity, as in PyTorch

    eq, ne, lt, le, gt, ge = __eq__, __ne__, __lt__, __le__, __gt__, __ge__
    greater, less, greater_equal, less_equal, not_equal = gt, lt, ge, le, ne

    def equal(self, other):
        """True when both have the same shape and elements."""
        other = self._operand(other)
        return self.shape == other.shape and bool(xp.all(self._array == other._array))

    def allclose(self, other, rtol=1e-05, atol=1e-08, equal_nan=False):
        other = self._operand(other)
        return bool(xp.allclose(self._array, other._array, rtol, atol, equal_nan))

    def _logical(self, other, op):
        other = self._operand(other)
        return _wrap(op(self._array, other._array))

    def __and__(self, other):
        return self._logical(other, xp.bitwise_and)

    def __or__(self, other):
        return self._logical(other, xp.bitwise_or)

    def __xor__(self, other):
        return self._logical(other, xp.bitwise_xor)

    __rand__, __ror__, __rxor__ = __and__, __or__, __xor__

    def __invert__(self):
        return _wrap(xp.invert(self._array))

    def logical_not(self):
        return _wrap(xp.logical_not(self._array))

    def logical_and(self, other):
        return _wrap(xp.logical_and(self._array, self._operand(other)._array))

    def logical_or(self, other):
        return _wrap(xp.logical_or(self._array, self._operand(other)._array))

    def isnan(self):
        return _wrap(xp.isnan(self._array))

    def isinf(self):
        return _wrap(xp.isinf(self._array))

    def isfinite(self):
        return _wrap(xp.isfinite(self._array))

    def all(self, dim=None, keepdim=False):
        return _wrap(xp.all(self._array, axis=None if dim is None else _axes(dim, self.ndim),
                            keepdims=keepdim))

    def any(self, dim=None, keepdim=False):
        return _wrap(xp.any(self._array, axis=None if dim is None else _axes(dim, self.ndim),
                            keepdims=keepdim))

    # ------------------------------------------------------------ elementwise math
    def neg(self):
        return -self

    negative = neg

    def clamp(self, min=None, max=None):
        """Limit to [min, max] (either may be None, a number or a Tensor); the gradient
        passes where min <= x <= max, as in PyTorch."""
        if min is None and max is None:
            raise ValueError("clamp: expected at least one of min and max, got neither")
        low = None if min is None else self._operand(min)._array
        high = None if max is None else self._operand(max)._array
        x = self._array
        y = x
        if low is not None:
            y = xp.maximum(y, low.astype(x.dtype, copy=False))
        if high is not None:
            y = xp.minimum(y, high.astype(x.dtype, copy=False))
        if self.dtype.kind != "f":
            return _wrap(y)

        def backward(g):
            keep = xp.ones(x.shape, dtype=bool)
            if low is not None:
                keep &= x >= low
            if high is not None:
                keep &= x <= high
            return (g * keep,)

        return _record(y, (self,), backward)

    clip = clamp

    def clamp_min(self, min):
        return self.clamp(min=min)

    def clamp_max(self, max):
        return self.clamp(max=max)

    def maximum(self, other):
        return self._binary(other, xp.maximum, lambda g, x, y: _tie_split(g, x, y, xp.greater))

    def minimum(self, other):
        return self._binary(other, xp.minimum, lambda g, x, y: _tie_split(g, x, y, xp.less))

    def softmax(self, dim, dtype=None):
        return _softmax_ops.softmax(self, dim, dtype=dtype)

    def log_softmax(self, dim, dtype=None):
        return _softmax_ops.log_softmax(self, dim, dtype=dtype)

    def masked_fill(self, mask, value):
        """Elements where ``mask`` (a boolean tensor broadcastable to self) is true
        replaced by ``value`` (a number or a 0-d tensor)."""
        mask = _mask_array(mask, "mask")
        fill = self._operand(value)
        if fill.ndim != 0:
            raise ValueError(f"value: expected a number or a 0-d tensor, got shape {fill.shape}")
        x = self._array
        y = xp.where(mask, fill._array.astype(x.dtype), x)
        shape = x.shape
        return _record(y, (self, fill), lambda g: (
            _unbroadcast(xp.where(mask, 0, g), shape), xp.where(mask, g, 0).sum().reshape(())),
            saves=False)

    def where(self, condition, other):
        return join.where(condition, self, other)

    # ---------------------------------------------------------------- reductions
    def sum(self, dim=None, keepdim=False, dtype=None, axis=None, keepdims=None):
        axes = _axes(dim if axis is None else axis, self.ndim)
        keep = keepdim if keepdims is None else keepdims
        shape = self.shape
        x = self._array
        if dtype is not None:
            x = x.astype(dtype_of(dtype))
        elif x.dtype.kind in "biu":
            x = x.astype(np.int64)  # PyTorch sums integers and booleans as int64

        def backward(g):
            if not keep:
                g = g.reshape(tuple(1 if i in axes else n for i, n in enumerate(shape)))
            return (xp.broadcast_to(g, shape),)

        return _record(x.sum(axis=axes, keepdims=keep), (self,), backward, saves=False)

    def mean(self, dim=None, keepdim=False, dtype=None, axis=None, keepdims=None):
        if self.dtype.kind != "f" and dtype is None:
            raise TypeError(f"mean: expected a floating input, got dtype {self.dtype} "
                            "(pass dtype= or convert with .float())")
        axes = _axes(dim if axis is None else axis, self.ndim)
        keep = keepdim if keepdims is None else keepdims
        source = self if dtype is None else self.to(dtype)
        shape = source.shape
        count = 1
        for i in axes:
            count *= shape[i]
        count = source.dtype.type(count)  # x / count keeps x's dtype

        def backward(g):
            if not keep:
                g = g.reshape(tuple(1 if i in axes else n for i, n in enumerate(shape)))
            return (xp.broadcast_to(g / count, shape),)

        return _record(source._array.sum(axis=axes, keepdims=keep) / count, (source,),
                       backward, saves=False)

    def var(self, dim=None, unbiased=None, keepdim=False, correction=None):
        """Variance with Bessel's correction by default (``unbiased=False`` or
        ``correction=0`` for the biased one), as in PyTorch."""
        if isinstance(dim, bool) and unbiased is None:  # var(False): the old positional form
            dim, unbiased = None, dim
        if correction is None:
            correction = 0 if unbiased is False else 1
        axes = _axes(dim, self.ndim)
        count = 1
        for i in axes:
            count *= self.shape[i]
        centred = self - self.mean(axes, keepdim=True)
        return (centred * centred).sum(axes, keepdim=keepdim) / (count - correction)

    def std(self, dim=None, unbiased=None, keepdim=False, correction=None):
        return self.var(dim, unbiased, keepdim, correction).sqrt()

    def norm(self, p=2, dim=None, keepdim=False):
        """The p-norm (p = 1, 2, inf, or 'fro') over ``dim`` (all elements when None)."""
        if p == "fro":
            p = 2
        if p == 2:
            return (self * self).sum(dim, keepdim=keepdim).sqrt()
        if p == 1:
            return self.abs().sum(dim, keepdim=keepdim)
        if p == float("inf"):
            return self.abs().amax(dim, keepdim=keepdim)
        if isinstance(p, numbers.Real) and p > 0:
            return (self.abs() ** p).sum(dim, keepdim=keepdim) ** (1.0 / p)
        raise ValueError(f"p: expected a positive number, inf or 'fro', got {p!r}")

    def logsumexp(self, dim, keepdim=False):
        axes = _axes(dim, self.ndim)
        x = self._array
        top = x.max(axis=axes, keepdims=True)
        top = xp.where(xp.isfinite(top), top, 0)
        y = xp.log(xp.exp(x - top).sum(axis=axes, keepdims=True)) + top
        out = y if keepdim else y.reshape(tuple(n for i, n in enumerate(x.shape)
                                                 if i not in axes))
        return _record(out, (self,), lambda g: (
            (g if keepdim else g.reshape(y.shape)) * xp.exp(x - y),))

    def cumsum(self, dim):
        d = _axes(dim, self.ndim)[0]
        return _record(xp.cumsum(self._array, axis=d), (self,),
                       lambda g: (xp.flip(xp.cumsum(xp.flip(g, d), axis=d), d),), saves=False)

    def prod(self, dim=None, keepdim=False):
        axes = _axes(dim, self.ndim)
        x = self._array
        y = x.prod(axis=axes, keepdims=True)
        out = y if keepdim else y.reshape(tuple(n for i, n in enumerate(x.shape)
                                                 if i not in axes))

        def backward(g):
            g = g if keepdim else g.reshape(y.shape)
            others = xp.ones_like(x)  # the product of the other elements, zeros allowed
            moved = xp.moveaxis(x, axes, tuple(range(len(axes)))).reshape((-1,) + tuple(
                n for i, n in enumerate(x.shape) if i not in axes))
            left = xp.cumprod(xp.concatenate([xp.ones_like(moved[:1]), moved[:-1]]), axis=0)
            right = xp.flip(xp.cumprod(xp.concatenate(
                [xp.ones_like(moved[:1]), xp.flip(moved, 0)[:-1]]), axis=0), 0)
            others = xp.moveaxis((left * right).reshape(
                tuple(x.shape[i] for i in axes) + moved.shape[1:]),
                tuple(range(len(axes))), axes)
            return (g * others,)

        return _record(out, (self,), backward)

    def _extreme(self, dim, keepdim, largest):
        """max/min: over everything (the gradient split evenly among ties, as in
        PyTorch) or along ``dim`` (values and indices; the gradient goes to the index)."""
        x = self._array
        if dim is None:
            value = x.max() if largest else x.min()
            if self.dtype.kind != "f":
                return _wrap(xp.asarray(value))
            ties = (x == value)
            return _record(xp.asarray(value), (self,),
                           lambda g: (g * ties / ties.sum().astype(x.dtype),), saves=False)
        d = _axes(dim, self.ndim)[0]
        if x.size == 0:
            raise ValueError(f"dim: cannot reduce an empty tensor of shape {self.shape}")
        index = (xp.argmax if largest else xp.argmin)(x, axis=d)
        index = xp.expand_dims(index, d)
        values = self._take_along(index, d)
        if not keepdim:
            values, index = values.squeeze(d), index.squeeze(d)
        return ValuesIndices(values, _wrap(index.astype(np.int64)))

    def max(self, dim=None, keepdim=False):
        if isinstance(dim, Tensor):
            return self.maximum(dim)
        return self._extreme(dim, keepdim, True)

    def min(self, dim=None, keepdim=False):
        if isinstance(dim, Tensor):
            return self.minimum(dim)
        return self._extreme(dim, keepdim, False)

    def amax(self, dim=None, keepdim=False):
        if dim is None:
            return self.max()
        return _extreme_sum(self, dim, keepdim, True)

    def amin(self, dim=None, keepdim=False):
        if dim is None:
            return self.min()
        return _extreme_sum(self, dim, keepdim, False)

    def argmax(self, dim=None, keepdim=False):
        return self._arg_extreme(dim, keepdim, xp.argmax)

    def argmin(self, dim=None, keepdim=False):
        return self._arg_extreme(dim, keepdim, xp.argmin)

    def _arg_extreme(self, dim, keepdim, find):
        if dim is None:
            index = xp.asarray(find(self._array.reshape(-1)))
            return _wrap((index.reshape((1,) * self.ndim) if keepdim else index)
                         .astype(np.int64))
        d = _axes(dim, self.ndim)[0]
        index = find(self._array, axis=d)
        if keepdim:
            index = xp.expand_dims(index, d)
        return _wrap(xp.asarray(index).astype(np.int64))

    def _take_along(self, index, dim):
        """self[..., index, ...] along ``dim`` for an integer array ``index`` of self's
        rank (sizes may be smaller than self's in the other dimensions, as gather
        allows); the gradient is scattered back with addition."""
        key = _along_key(index, dim)
        shape, dtype = self.shape, self.dtype

        def backward(g):
            full = xp.zeros(shape, dtype=dtype)
            backend.scatter_add(full, key, g)
            return (full,)

        return _record(self._array[key], (self,), backward, saves=False)

    def gather(self, dim, index):
        d = _axes(dim, self.ndim)[0]
        index = _index_array(index, "index")
        if index.ndim != self.ndim:
            raise ValueError(f"index: expected {self.ndim} dimensions as input has, got "
                             f"shape {tuple(index.shape)}")
        return self._take_along(index, d)

    def index_select(self, dim, index):
        d = _axes(dim, self.ndim)[0]
        index = _index_array(index, "index")
        if index.ndim > 1:
            raise ValueError(f"index: expected a 1-D tensor, got shape {tuple(index.shape)}")
        return self[(slice(None),) * d + (index.reshape(-1),)]

    def masked_select(self, mask):
        mask = xp.broadcast_to(_mask_array(mask, "mask"), self.shape)
        return self[_wrap(mask)]

    def topk(self, k, dim=-1, largest=True, sorted=True):
        d = _axes(dim, self.ndim)[0]
        if not 0 <= k <= self.shape[d]:
            raise ValueError(f"k: expected an int in [0, {self.shape[d]}], got {k}")
        x = self._array
        order = xp.argsort(-x if largest else x, axis=d, kind="stable")
        index = xp.take(order, xp.arange(k), axis=d)
        return ValuesIndices(self._take_along(index, d), _wrap(index.astype(np.int64)))

    def sort(self, dim=-1, descending=False, stable=False):
        d = _axes(dim, self.ndim)[0]
        x = self._array
        index = xp.argsort(-x if descending and x.dtype.kind != "b" else x, axis=d,
                           kind="stable")
        if descending and x.dtype.kind == "b":
            index = xp.flip(index, d)
        return ValuesIndices(self._take_along(index, d), _wrap(index.astype(np.int64)))

    def argsort(self, dim=-1, descending=False, stable=False):
        return self.sort(dim, descending, stable).indices

    # ------------------------------------------------------------------- shapes
    def size(self, dim=None):
        if dim is None:
            return Size(self.shape)
        check = _axes(dim, self.ndim) if self.ndim else None
        if check is None:
            raise IndexError(f"dim: a 0-d tensor has no dimension {dim}")
        return self.shape[check[0]]

    def dim(self):
        return self.ndim

    ndimension = dim

    def nelement(self):
        return self.numel()

    def element_size(self):
        return self.dtype.itemsize

    def is_floating_point(self):
        return self.dtype.kind == "f"

    def is_contiguous(self):
        return bool(self._array.flags.c_contiguous)

    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        for n in shape:
            if not isinstance(n, numbers.Integral) or isinstance(n, bool):
                raise TypeError(f"shape: expected ints, got {shape!r}")
        original = self.shape
        try:
            data = self._array.reshape(tuple(int(n) for n in shape))
        except ValueError:
            raise ValueError(f"shape: {tuple(shape)} is invalid for a tensor of "
                             f"{self.numel()} elements, shape {original}") from None
        return _record(data, (self,), lambda g: (g.reshape(original),), saves=False)

    view = reshape

    def view_as(self, other):
        return self.reshape(other.shape)

    reshape_as = view_as

    def flatten(self, start_dim=0, end_dim=-1):
        if self.ndim == 0:
            return self.reshape(1)
        start, end = (_axes(d, self.ndim)[0] for d in (start_dim, end_dim))
        if start > end:
            raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
        shape = self.shape
        return self.reshape(shape[:start] + (-1,) + shape[end + 1:]) if shape[start:end + 1] \
            else self.reshape(shape[:start] + (1,) + shape[end + 1:])

    def unflatten(self, dim, sizes):
        d = _axes(dim, self.ndim)[0]
        return self.reshape(self.shape[:d] + tuple(sizes) + self.shape[d + 1:])

    def transpose(self, dim0, dim1):
        if self.ndim == 0:
            return self
        d0, d1 = _axes(dim0, self.ndim)[0], _axes(dim1, self.ndim)[0]
        return _record(xp.swapaxes(self._array, d0, d1), (self,),
                       lambda g: (xp.swapaxes(g, d0, d1),), saves=False)

    swapaxes = swapdims = transpose

    def t(self):
        if self.ndim > 2:
            raise ValueError(f"t(): expected a tensor of at most 2 dimensions, got shape "
                             f"{self.shape}; use transpose(dim0, dim1)")
        return self.transpose(0, 1) if self.ndim == 2 else self

    @property
    def T(self):
        return self.permute(*reversed(range(self.ndim)))

    def permute(self, *dims):
        if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
            dims = tuple(dims[0])
        axes = tuple(_axes(d, self.ndim)[0] for d in dims)
        if sorted(axes) != list(range(self.ndim)):
            raise ValueError(f"dims: expected a permutation of {self.ndim} dimensions, got "
                             f"{tuple(dims)}")
        inverse = tuple(np.argsort(axes))
        return _record(xp.transpose(self._array, axes), (self,),
                       lambda g: (xp.transpose(g, inverse),), saves=False)

    def movedim(self, source, destination):
        return _record(xp.moveaxis(self._array, source, destination), (self,),
                       lambda g: (xp.moveaxis(g, destination, source),), saves=False)

    def contiguous(self, memory_format=None):
        if self._array.flags.c_contiguous:
            return self
        return _record(xp.ascontiguousarray(self._array), (self,), lambda g: (g,),
                       saves=False)

    def squeeze(self, dim=None):
        if dim is None:
            axes = tuple(i for i, n in enumerate(self.shape) if n == 1)
        else:
            axes = tuple(i for i in _axes(dim, max(self.ndim, 1))
                         if self.ndim and self.shape[i] == 1)
        shape = self.shape
        return _record(self._array.reshape(tuple(n for i, n in enumerate(shape)
                                                 if i not in axes)),
                       (self,), lambda g: (g.reshape(shape),), saves=False)

    def unsqueeze(self, dim):
        if not isinstance(dim, numbers.Integral) or not -self.ndim - 1 <= dim <= self.ndim:
            raise ValueError(f"dim: expected an int in [{-self.ndim - 1}, {self.ndim}], "
                             f"got {dim!r}")
        d = dim % (self.ndim + 1)
        return self.reshape(self.shape[:d] + (1,) + self.shape[d:])

    def expand(self, *sizes):
        if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
            sizes = tuple(sizes[0])
        extra = len(sizes) - self.ndim
        if extra < 0:
            raise ValueError(f"sizes: expected at least {self.ndim} sizes, got {sizes}")
        target = tuple(self.shape[i - extra] if n == -1 else int(n)
                       for i, n in enumerate(sizes))
        shape = self.shape
        try:
            data = xp.broadcast_to(self._array, target)
        except ValueError:
            raise ValueError(f"sizes: cannot expand shape {shape} to {target}") from None
        return _record(data, (self,), lambda g: (_unbroadcast(g, shape),), saves=False)

    def expand_as(self, other):
        return self.expand(other.shape)

    def broadcast_to(self, shape):
        return self.expand(shape)

    def repeat(self, *sizes):
        if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
            sizes = tuple(sizes[0])
        if len(sizes) < self.ndim:
            raise ValueError(f"sizes: expected at least {self.ndim} repeats, got {sizes}")
        padded = (1,) * (len(sizes) - self.ndim) + self.shape
        shape = self.shape

        def backward(g):
            split = []
            for r, n in zip(sizes, padded):
                split += [r, n]
            return (g.reshape(split).sum(axis=tuple(range(0, len(split), 2))).reshape(shape),)

        return _record(xp.tile(self._array.reshape(padded), sizes), (self,), backward,
                       saves=False)

    def narrow(self, dim, start, length):
        d = _axes(dim, self.ndim)[0]
        start = int(start) % self.shape[d] if start < 0 else int(start)
        if start + length > self.shape[d] or length < 0:
            raise ValueError(f"narrow: start {start} + length {length} exceeds dimension "
                             f"{d} of size {self.shape[d]}")
        return self[(slice(None),) * d + (slice(start, start + length),)]

    def split(self, split_size_or_sections, dim=0):
        d = _axes(dim, self.ndim)[0]
        n = self.shape[d]
        if isinstance(split_size_or_sections, numbers.Integral):
            step = int(split_size_or_sections)
            if step <= 0:
                raise ValueError(f"split_size: expected a positive int, got {step}")
            sizes = [min(step, n - s) for s in range(0, n, step)] or [0]
        else:
            sizes = [int(s) for s in split_size_or_sections]
            if sum(sizes) != n:
                raise ValueError(f"split_size_or_sections: expected sizes summing to {n}, "
                                 f"got {sizes}")
        parts, start = [], 0
        for size in sizes:
            parts.append(self[(slice(None),) * d + (slice(start, start + size),)])
            start += size
        return tuple(parts)

    def chunk(self, chunks, dim=0):
        if not isinstance(chunks, numbers.Integral) or chunks < 1:
            raise ValueError(f"chunks: expected a positive int, got {chunks!r}")
        n = self.shape[_axes(dim, self.ndim)[0]]
        return self.split(max(-(-n // chunks), 1), dim)

    def tensor_split(self, sections, dim=0):
        n = self.shape[_axes(dim, self.ndim)[0]]
        base, extra = divmod(n, sections)
        return self.split([base + (k < extra) for k in range(sections)], dim)

    def unbind(self, dim=0):
        d = _axes(dim, self.ndim)[0]
        return tuple(self[(slice(None),) * d + (k,)] for k in range(self.shape[d]))

    def clone(self, memory_format=None):
        return _record(self._array.copy(), (self,), lambda g: (g,), saves=False)

    def flip(self, dims):
        axes = _axes(dims, self.ndim)
        return _record(xp.flip(self._array, axes), (self,), lambda g: (xp.flip(g, axes),),
                       saves=False)

    # ------------------------------------------------------------------ indexing
    def __getitem__(self, key):
        key, advanced = _index_key(key)
        shape, dtype = self.shape, self.dtype

        def backward(g):
            full = xp.zeros(shape, dtype=dtype)
            if advanced:
                backend.scatter_add(full, key, g)  # an index may select an element twice
            else:
                full[key] = g
            return (full,)

        try:
            data = self._array[key]
        except IndexError as exc:
            raise IndexError(f"index: {exc} (tensor of shape {shape})") from None
        return _record(data, (self,), backward, saves=False)

    def __setitem__(self, key, value):
        """``t[key] = value``, recorded: the gradient of the old values is cut where they
        were overwritten, and ``value`` gets the gradient of the elements it wrote."""
        key, _ = _index_key(key)
        value = self._operand(value)
        try:
            target_shape = self._array[key].shape
        except IndexError as exc:
            raise IndexError(f"index: {exc} (tensor of shape {self.shape})") from None
        value_shape = value.shape

        def compute(x):
            y = x.copy()
            y[key] = value._array.astype(x.dtype, copy=False)
            return y

        def backward(g):
            kept = g.copy()
            kept[key] = 0
            return kept, _unbroadcast(xp.broadcast_to(g[key], target_shape), value_shape)

        self._in_place(compute, (value,), backward)

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[k] for k in range(self.shape[0]))

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return len(self._array)

    def __contains__(self, element):
        return bool(xp.any(self._array == self._operand(element)._array))

    # ------------------------------------------------------------------ in place
    def _in_place(self, compute, others, backward):
        """Replace self's values by ``compute(old array)``, as PyTorch's in-place
        operations do. Recorded (when grad mode is on and self or ``others`` require
        grad), self becomes the output of a new node whose ``backward(g)`` gives the
        gradients of the old self and of ``others``; the new values go to a new array,
        so that arrays saved by earlier nodes stay as they were. A leaf that requires
        grad refuses, as in PyTorch. Not recorded, the values are written into self's
        own storage (what ``p.data.add_(...)`` and ``with no_grad(): p.mul_(...)``
        rely on), and self's version counts the write."""
        recording = is_grad_enabled() and (
            self.requires_grad or any(o.requires_grad for o in others))
        if recording and self.is_leaf and self.requires_grad:
            raise RuntimeError("a leaf tensor that requires grad is being used in an "
                               "in-place operation; use out-of-place operations, or "
                               "`with nr.no_grad():` for an update, or `.data`")
        new = compute(self._array)
        if recording:
            fn = Function((self,) + tuple(others), backward, 1, True)
            fn.dtypes = (new.dtype,)
            # the old values live on in the new node (self gets a new array), so later
            # writes to self cannot make them stale
            fn.versions = tuple(v for v in fn.versions if v[0] is not self)
            self._array, self._fn, self._output_nr = new, fn, 0
            self.requires_grad = True
        elif self._fn is None:
            self._array[...] = new
        else:
            self._array = new
        return self._write_()

    def _in_place_binary(self, other, op, grads):
        other = self._operand(other)
        old = self._array
        other_shape = other.shape

        def compute(x):
            y = op(x, other._array.astype(x.dtype, copy=False) if x.dtype.kind == "f"
                   else other._array)
            if y.shape != x.shape:
                raise ValueError(f"other: shape {other_shape} does not broadcast to the "
                                 f"in-place target's shape {x.shape}")
            return y.astype(x.dtype, copy=False)

        return self._in_place(compute, (other,), lambda g: grads(g, old, other._array,
                                                                   other_shape))

    def add_(self, other, alpha=1):
        if not isinstance(alpha, numbers.Number):  # the old add_(scalar, tensor) form
            alpha, other = other, alpha
        return self._in_place_binary(other, lambda x, y: x + alpha * y,
                                     lambda g, x, y, s: (g, _unbroadcast(alpha * g, s)))

    def sub_(self, other, alpha=1):
        return self.add_(other, -alpha)

    def mul_(self, other):
        return self._in_place_binary(other, lambda x, y: x * y,
                                     lambda g, x, y, s: (g * y, _unbroadcast(g * x, s)))

    def div_(self, other):
        return self._in_place_binary(other, lambda x, y: x / y,
                                     lambda g, x, y, s: (g / y,
                                                         _unbroadcast(-g * x / (y * y), s)))

    def copy_(self, src, non_blocking=False):
        src = self._operand(src)
        shape, src_shape = self.shape, src.shape
        try:
            xp.broadcast_to(src._array, shape)
        except ValueError:
            raise ValueError(f"src: shape {src_shape} does not broadcast to {shape}") from None
        return self._in_place(lambda x: xp.broadcast_to(src._array, shape).astype(x.dtype),
                              (src,), lambda g: (None, _unbroadcast(g, src_shape)))

    def fill_(self, value):
        value = self._operand(value)
        return self._in_place(lambda x: xp.full(x.shape, value._array, dtype=x.dtype),
                              (value,), lambda g: (None, g.sum().reshape(value.shape)))

    def zero_(self):
        return self.fill_(0)

    def uniform_(self, a=0.0, b=1.0):
        return self._in_place(lambda x: backend.to_device(random.uniform(a, b, x.shape,
                                                                         x.dtype)),
                              (), lambda g: (None,))

    def normal_(self, mean=0.0, std=1.0):
        return self._in_place(lambda x: backend.to_device(
            (random.normal(x.shape, np.float64) * std + mean).astype(x.dtype)),
            (), lambda g: (None,))

    def bernoulli_(self, p=0.5):
        return self._in_place(lambda x: backend.to_device(
            (random.rand(x.shape) < p).astype(x.dtype)), (), lambda g: (None,))

    def clamp_(self, min=None, max=None):
        low = -np.inf if min is None else min
        high = np.inf if max is None else max
        old = self._array
        return self._in_place(lambda x: xp.clip(x, low, high).astype(x.dtype), (),
                              lambda g: (g * ((old >= low) & (old <= high)),))

    def masked_fill_(self, mask, value):
        mask = _mask_array(mask, "mask")
        fill = self._operand(value)
        return self._in_place(lambda x: xp.where(mask, fill._array.astype(x.dtype), x),
                              (), lambda g: (xp.where(mask, 0, g),))

    def _become(self, result):
        """Shape changes in place (unsqueeze_, ...): self takes ``result``'s view; a leaf
        stays a leaf."""
        if self._fn is None:
            self._array = result._array
        else:
            self._array, self._fn, self._output_nr = result._array, result._fn, result._output_nr
        return self

    def unsqueeze_(self, dim):
        return self._become(self.unsqueeze(dim))

    def squeeze_(self, dim=None):
        return self._become(self.squeeze(dim))

    def t_(self):
        return self._become(self.t())

    def transpose_(self, dim0, dim1):
        return self._become(self.transpose(dim0, dim1))

    def detach_(self):
        self._fn, self._output_nr, self.requires_grad = None, 0, False
        return self

    # ------------------------------------------------------- dtypes and devices
    def to(self, *args, **kwargs):
        """``to(dtype)``, ``to(device)``, ``to(device, dtype)``, ``to(other)``: a dtype
        converts (recorded: the gradient comes back in this tensor's dtype); a device is
        numba_rnn's one device. Returns self when nothing changes, as PyTorch."""
        dtype = _to_arguments(args, kwargs)
        result = self if dtype is None else self._cast(dtype)
        if kwargs.get("copy") and result is self:
            result = self.clone()
        return result

    def _cast(self, dtype):
        dtype = dtype_of(dtype)
        if dtype == self.dtype:
            return self
        data = self._array.astype(dtype)
        if dtype.kind != "f":
            return _wrap(data)
        return _record(data, (self,), lambda g: (g,), saves=False)

    def float(self):
        return self._cast(np.float32)

    def double(self):
        return self._cast(np.float64)

    def half(self):
        return self._cast(np.float16)

    def long(self):
        return self._cast(np.int64)

    def int(self):
        return self._cast(np.int32)

    def short(self):
        return self._cast(np.int16)

    def byte(self):
        return self._cast(np.uint8)

    def bool(self):
        return self._cast(np.bool_)

    def type(self, dtype=None, non_blocking=False):
        """With no argument, PyTorch's type name ("torch.FloatTensor"); else the tensor
        converted to ``dtype`` (a dtype, or a name like "torch.LongTensor")."""
        if dtype is None:
            return "torch." + _LEGACY_NAMES.get(self.dtype, str(self.dtype))
        if isinstance(dtype, str) and dtype.endswith("Tensor"):
            names = {v: k for k, v in _LEGACY_NAMES.items()}
            short = dtype.rsplit(".", 1)[-1]
            if short not in names:
                raise TypeError(f"dtype: unknown tensor type {dtype!r}")
            dtype = names[short]
        return self._cast(dtype)

    def type_as(self, other):
        return self._cast(other.dtype)

    @property
    def device(self):
        return device_type("cuda" if backend.backend_name() == "cuda" else "cpu")

    @property
    def is_cuda(self):
        return backend.backend_name() == "cuda"

    def cuda(self, device=None, non_blocking=False):
        _check_device(device)
        return self

    def cpu(self):
        return self

    def new_tensor(self, data, dtype=None, device=None, requires_grad=False):
        _check_device(device)
        return tensor(data, self.dtype if dtype is None else dtype, requires_grad=requires_grad)

    def _new_filled(self, size, fill, dtype, device, requires_grad):
        _check_device(device)
        dtype = self.dtype if dtype is None else dtype_of(dtype)
        array = xp.full(_size_arguments(size), fill, dtype=dtype)
        return _wrap(array, requires_grad=requires_grad)

    def new_zeros(self, *size, dtype=None, device=None, requires_grad=False):
        return self._new_filled(size, 0, dtype, device, requires_grad)

    def new_ones(self, *size, dtype=None, device=None, requires_grad=False):
        return self._new_filled(size, 1, dtype, device, requires_grad)

    def new_empty(self, *size, dtype=None, device=None, requires_grad=False):
        return self._new_filled(size, 0, dtype, device, requires_grad)

    def new_full(self, size, fill_value, dtype=None, device=None, requires_grad=False):
        return self._new_filled((size,), fill_value, dtype, device, requires_grad)

    # ------------------------------------------------------------ Python values
    def _scalar(self, what):
        if self._array.size != 1:
            raise ValueError(f"{what}: only a tensor with one element can be converted to "
                             f"a Python scalar, got shape {self.shape}")
        return self._array.reshape(()).item()

    def __float__(self):
        return float(self._scalar("float()"))

    def __int__(self):
        return int(self._scalar("int()"))

    def __bool__(self):
        if self._array.size != 1:
            raise RuntimeError(f"Boolean value of a tensor with {self._array.size} elements "
                               "is ambiguous")
        return bool(self._scalar("bool()"))

    def __index__(self):
        if self.dtype.kind not in "iub":
            raise TypeError(f"only integer tensors of a single element can be used as an "
                            f"index, got dtype {self.dtype}")
        return int(self._scalar("index"))

    def __format__(self, spec):
        if self.ndim == 0:
            return format(self.item(), spec)
        return format(repr(self), spec)

    def tolist(self):
        return backend.to_host(self._array).tolist()

    # DLPack and the CUDA array interface: numpy/cupy/torch read the storage directly.
    def __dlpack__(self, *args, **kwargs):
        return self._array.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self):
        return self._array.__dlpack_device__()

    @property
    def __cuda_array_interface__(self):
        if not backend.is_device_array(self._array) or not hasattr(
                self._array, "__cuda_array_interface__"):
            raise AttributeError("__cuda_array_interface__: the storage is on the host")
        return self._array.__cuda_array_interface__


class Size(tuple):
    """A tensor's shape: a tuple, with ``numel()``, as ``torch.Size``."""

    def numel(self):
        count = 1
        for n in self:
            count *= n
        return count

    def __repr__(self):
        return f"nr.Size({list(self)})"


ValuesIndices = namedtuple("ValuesIndices", ["values", "indices"])
ValuesIndices.__doc__ = "What max/min along a dim, topk and sort return: (values, indices)."

_LEGACY_NAMES = {np.dtype(k): v for k, v in (
    (np.float32, "FloatTensor"), (np.float64, "DoubleTensor"), (np.float16, "HalfTensor"),
    (np.int64, "LongTensor"), (np.int32, "IntTensor"), (np.int16, "ShortTensor"),
    (np.int8, "CharTensor"), (np.uint8, "ByteTensor"), (np.bool_, "BoolTensor"))}


def _tie_split(g, x, y, better):
    """Gradients of maximum/minimum: to the better operand, halved at ties."""
    tie = (x == y) * x.dtype.type(0.5)
    return (_unbroadcast(g * (better(x, y) + tie), x.shape),
            _unbroadcast(g * (better(y, x) + tie), y.shape))


def _extreme_sum(t, dim, keepdim, largest):
    """amax/amin along ``dim``: the gradient split evenly among ties."""
    axes = _axes(dim, t.ndim)
    x = t._array
    y = (x.max if largest else x.min)(axis=axes, keepdims=True)
    out = y if keepdim else y.reshape(tuple(n for i, n in enumerate(x.shape) if i not in axes))
    if t.dtype.kind != "f":
        return _wrap(out)
    ties = (x == y)
    count = ties.sum(axis=axes, keepdims=True).astype(x.dtype)
    return _record(out, (t,), lambda g: (g.reshape(y.shape) * ties / count,), saves=False)


def _along_key(index, dim):
    """The index tuple that picks, for every position p of ``index``, the element at p
    with its coordinate along ``dim`` replaced by index[p]."""
    key = [xp.arange(n).reshape(tuple(-1 if k == i else 1 for k in range(index.ndim)))
           for i, n in enumerate(index.shape)]
    key[dim] = index
    return tuple(key)


def _index_key(key):
    """``key`` with Tensors, lists and host arrays as device arrays; and whether it
    indexes with arrays (then an element may be picked twice, and the gradient is
    scattered with addition)."""
    parts = key if isinstance(key, tuple) else (key,)
    out, advanced = [], False
    for part in parts:
        if isinstance(part, Tensor):
            if part.ndim == 0 and part.dtype.kind in "iu":
                out.append(int(part.item()))
                continue
            if part.dtype.kind not in "biu":
                raise TypeError(f"index: expected integer or boolean tensors, got dtype "
                                f"{part.dtype}")
            out.append(part._array)
            advanced = True
        elif isinstance(part, (bool, np.bool_)):
            out.append(bool(part))
            advanced = True
        elif isinstance(part, numbers.Integral):
            out.append(int(part))
        elif part is None or part is Ellipsis or isinstance(part, slice):
            out.append(part)
        elif isinstance(part, (list, np.ndarray)) or backend.is_device_array(part):
            array = _array_of(part, "index")
            if array.dtype.kind not in "biu":
                raise TypeError(f"index: expected integers or booleans, got dtype "
                                f"{array.dtype}")
            out.append(array)
            advanced = True
        else:
            raise TypeError(f"index: expected ints, slices, None, ..., or integer or boolean "
                            f"tensors, got {type(part).__name__}")
    return tuple(out), advanced


def _size_arguments(size):
    """A shape from creation-function arguments: ``(2, 3)``, ``((2, 3),)`` or ``([2, 3],)``."""
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    for n in size:
        if not isinstance(n, numbers.Integral) or isinstance(n, bool) or n < 0:
            raise ValueError(f"size: expected non-negative ints, got {tuple(size)!r}")
    return tuple(int(n) for n in size)


def _axes(dim, ndim):
    """``dim`` (None, an int or a sequence) as a tuple of non-negative axes."""
    if dim is None:
        return tuple(range(ndim))
    dims = (dim,) if isinstance(dim, numbers.Integral) else tuple(dim)
    return tuple(d % ndim for d in dims)


Tensor._make = staticmethod(_wrap)
Tensor._storage = staticmethod(_to_storage)
register_tensor_class(Tensor)

# The elementwise ops, defined once in ops/elementwise.py, as methods (PyTorch's Tensor has
# these; leaky_relu, gelu and softplus are torch.nn.functional's only)
for _name in ("exp", "log", "log1p", "expm1", "log2", "log10", "sqrt", "rsqrt", "reciprocal",
              "square", "tanh", "sigmoid", "relu", "sin", "cos", "abs", "absolute", "sign",
              "floor", "ceil", "trunc", "round"):
    setattr(Tensor, _name, getattr(elementwise, _name))
