"""The Tensor: device storage (``_array``), its gradient, its version counter (bumped by
``_write_`` at every in-place write), the backward pass from it, dtype conversions and
Python values; and, bound by name at the end of this module, its methods, PyTorch's.

Autograd lives below it, in ``numba_rnn.autograd``: grad mode (per thread), the engine
that records each operation as a graph node and runs the backward pass, and the version
checks; this module registers the Tensor class with the engine at its end. The ops
(``numba_rnn.ops``: elementwise, arith, reduce, movement, index, join, softmax) are
defined once there, each with its derivative, and bound here as methods from one table
per topic: ``Tensor.sum is nr.sum is ops.reduce.sum``.
"""
import numbers
import weakref

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
from .ops import arith, elementwise, index, join, movement, reduce
from .ops import inplace as _inplace
from .ops import softmax as _softmax_ops
from .ops.convert import array_of as _array_of  # noqa: F401
from .ops.convert import axes as _axes
from .ops.convert import size_arguments as _size_arguments
from .ops.reduce import ValuesIndices  # noqa: F401  (numba_rnn.tensor.ValuesIndices)

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

    # ---------------------------------------------- signatures other than the op's
    def softmax(self, dim, dtype=None):
        return _softmax_ops.softmax(self, dim, dtype=dtype)

    def log_softmax(self, dim, dtype=None):
        return _softmax_ops.log_softmax(self, dim, dtype=dtype)

    def where(self, condition, other):
        return join.where(condition, self, other)

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

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[k] for k in range(self.shape[0]))

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return len(self._array)

    # ----------------------------------------------------------------- in place
    # (the in-place ops are ops.arith's, ops.movement's and ops.inplace's; the random
    # fills are here because they draw from numba_rnn.random, which the ops do not import)
    def uniform_(self, a=0.0, b=1.0):
        return _inplace.in_place(self, lambda x: backend.to_device(
            random.uniform(a, b, x.shape, x.dtype)), (), lambda g: (None,))

    def normal_(self, mean=0.0, std=1.0):
        return _inplace.in_place(self, lambda x: backend.to_device(
            (random.normal(x.shape, np.float64) * std + mean).astype(x.dtype)),
            (), lambda g: (None,))

    def bernoulli_(self, p=0.5):
        return _inplace.in_place(self, lambda x: backend.to_device(
            (random.rand(x.shape) < p).astype(x.dtype)), (), lambda g: (None,))

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


_LEGACY_NAMES = {np.dtype(k): v for k, v in (
    (np.float32, "FloatTensor"), (np.float64, "DoubleTensor"), (np.float16, "HalfTensor"),
    (np.int64, "LongTensor"), (np.int32, "IntTensor"), (np.int16, "ShortTensor"),
    (np.int8, "CharTensor"), (np.uint8, "ByteTensor"), (np.bool_, "BoolTensor"))}

Tensor._make = staticmethod(_wrap)
Tensor._storage = staticmethod(_to_storage)
register_tensor_class(Tensor)

def _bind(module, names, dunders=None):
    """Tensor methods that are ``module``'s ops themselves: ``names`` by their own name,
    ``dunders`` as {method: op name}."""
    for name in names:
        setattr(Tensor, name, getattr(module, name))
    for method, name in (dunders or {}).items():
        setattr(Tensor, method, getattr(module, name))


# The ops, each defined once in numba_rnn/ops/, as methods: one table per topic.
# elementwise (PyTorch's Tensor has these; leaky_relu, gelu and softplus are
# torch.nn.functional's only)
_bind(elementwise, ("exp", "log", "log1p", "expm1", "log2", "log10", "sqrt", "rsqrt",
                    "reciprocal", "square", "tanh", "sigmoid", "relu", "sin", "cos", "abs",
                    "absolute", "sign", "floor", "ceil", "trunc", "round"),
      {"__abs__": "abs"})
# arithmetic, comparisons, logic, clamp/maximum/minimum, masked_fill; in place too
_bind(arith, (
    "add", "sub", "mul", "div", "multiply", "divide", "subtract", "true_divide", "neg",
    "negative", "pow", "matmul", "mm", "bmm", "dot", "eq", "ne", "lt", "le", "gt", "ge",
    "greater", "less", "greater_equal", "less_equal", "not_equal", "equal", "allclose",
    "logical_not", "logical_and", "logical_or", "isnan", "isinf", "isfinite", "clamp",
    "clip", "clamp_min", "clamp_max", "maximum", "minimum", "masked_fill",
    "add_", "sub_", "mul_", "div_", "clamp_", "masked_fill_"), {
    "__add__": "add", "__radd__": "radd", "__sub__": "sub", "__rsub__": "rsub",
    "__mul__": "mul", "__rmul__": "rmul", "__truediv__": "div", "__rtruediv__": "rdiv",
    "__floordiv__": "floor_divide", "__rfloordiv__": "rfloordiv", "__mod__": "remainder",
    "__neg__": "neg", "__pos__": "positive", "__pow__": "pow", "__rpow__": "rpow",
    "__matmul__": "matmul", "__rmatmul__": "rmatmul",
    # in place, as PyTorch: x += y changes x (see ops.inplace.in_place for the rules)
    "__iadd__": "add_", "__isub__": "sub_", "__imul__": "mul_", "__itruediv__": "div_",
    "__eq__": "eq", "__ne__": "ne", "__lt__": "lt", "__le__": "le", "__gt__": "gt",
    "__ge__": "ge", "__and__": "bitwise_and", "__rand__": "bitwise_and",
    "__or__": "bitwise_or", "__ror__": "bitwise_or", "__xor__": "bitwise_xor",
    "__rxor__": "bitwise_xor", "__invert__": "bitwise_not", "__contains__": "contains"})
Tensor.__hash__ = object.__hash__  # tensors are hashed by identity, as in PyTorch
# reductions
_bind(reduce, ("sum", "mean", "var", "std", "norm", "logsumexp", "cumsum", "prod", "max",
               "min", "amax", "amin", "argmax", "argmin", "topk", "sort", "argsort", "all",
               "any"))
# movement (shapes and the order of elements); the in-place shape changes too
_bind(movement, (
    "reshape", "view", "view_as", "reshape_as", "flatten", "unflatten", "transpose",
    "swapaxes", "swapdims", "t", "permute", "movedim", "contiguous", "squeeze", "unsqueeze",
    "expand", "expand_as", "broadcast_to", "repeat", "narrow", "split", "chunk",
    "tensor_split", "unbind", "clone", "flip", "unsqueeze_", "squeeze_", "t_", "transpose_"))
Tensor.T = property(movement.reversed_dims)
# indexing
_bind(index, ("gather", "index_select", "masked_select"),
      {"__getitem__": "getitem", "__setitem__": "setitem"})
# the writes of no other topic
_bind(_inplace, ("copy_", "fill_", "zero_"))
