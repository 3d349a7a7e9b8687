"""PyTorch's tensor functions at the package level (``nr.zeros``, ``nr.cat``, ``nr.exp``,
...): creation functions, joining, and the function forms of Tensor's methods.

numba_rnn has one device: ``device="cuda"`` or ``"cpu"`` are accepted and name it. Random
functions draw from the generator that ``nr.manual_seed`` seeds. Floating results are
float32 unless a dtype is given, as in PyTorch.
"""
import builtins
import numbers

import numpy as np

from . import backend, random
from .backend import xp
from .ops import arith, elementwise, index, movement, reduce
from .ops import softmax as _softmax_ops
from .ops.join import cat, concat, concatenate, hstack, stack, vstack, where  # noqa: F401
from .tensor import Tensor, _check_device, _size_arguments, _to_storage, _wrap, dtype_of

__all__ = [
    "zeros", "ones", "empty", "full", "zeros_like", "ones_like", "empty_like", "full_like",
    "rand", "randn", "randint", "rand_like", "randn_like", "randint_like", "randperm",
    "normal", "bernoulli", "multinomial", "arange", "linspace", "eye", "from_numpy",
    "as_tensor", "is_tensor", "is_floating_point", "numel", "get_default_dtype",
    "cat", "concat", "concatenate", "stack", "hstack", "vstack", "where",
]

_FLOAT = np.dtype(np.float32)


def _dtype(dtype, default=_FLOAT):
    return default if dtype is None else dtype_of(dtype)


def _made(array, device, requires_grad):
    _check_device(device)
    return _wrap(array, requires_grad=requires_grad)


def _fill_dtype(value):
    if isinstance(value, (bool, np.bool_)):
        return np.dtype(np.bool_)
    if isinstance(value, numbers.Integral):
        return np.dtype(np.int64)
    return _FLOAT


# -------------------------------------------------------------------- creation
def zeros(*size, dtype=None, device=None, requires_grad=False, out=None):
    return _made(xp.zeros(_size_arguments(size), dtype=_dtype(dtype)), device, requires_grad)


def ones(*size, dtype=None, device=None, requires_grad=False):
    return _made(xp.ones(_size_arguments(size), dtype=_dtype(dtype)), device, requires_grad)


def empty(*size, dtype=None, device=None, requires_grad=False):
    """Uninitialised in PyTorch; zero-filled here."""
    return zeros(*size, dtype=dtype, device=device, requires_grad=requires_grad)


def full(size, fill_value, dtype=None, device=None, requires_grad=False):
    dtype = _dtype(dtype, _fill_dtype(fill_value))
    return _made(xp.full(_size_arguments((size,)), fill_value, dtype=dtype), device,
                 requires_grad)


def _like(input, dtype):
    if not isinstance(input, Tensor):
        raise TypeError(f"input: expected a Tensor, got {type(input).__name__}")
    return input.shape, _dtype(dtype, input.dtype)


def zeros_like(input, dtype=None, device=None, requires_grad=False):
    shape, dtype = _like(input, dtype)
    return _made(xp.zeros(shape, dtype=dtype), device, requires_grad)


def ones_like(input, dtype=None, device=None, requires_grad=False):
    shape, dtype = _like(input, dtype)
    return _made(xp.ones(shape, dtype=dtype), device, requires_grad)


def empty_like(input, dtype=None, device=None, requires_grad=False):
    return zeros_like(input, dtype, device, requires_grad)


def full_like(input, fill_value, dtype=None, device=None, requires_grad=False):
    shape, dtype = _like(input, dtype)
    return _made(xp.full(shape, fill_value, dtype=dtype), device, requires_grad)


def _float_dtype(dtype, name="dtype"):
    dtype = _dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"{name}: expected a floating dtype for random samples, got {dtype}")
    return dtype


def rand(*size, dtype=None, device=None, requires_grad=False, generator=None):
    """U[0, 1) samples."""
    dtype = _float_dtype(dtype)
    host = random.rand(_size_arguments(size)).astype(dtype)
    return _made(backend.to_device(host), device, requires_grad)


def randn(*size, dtype=None, device=None, requires_grad=False, generator=None):
    """N(0, 1) samples."""
    dtype = _float_dtype(dtype)
    return _made(backend.to_device(random.normal(_size_arguments(size), dtype)), device,
                 requires_grad)


def rand_like(input, dtype=None, device=None, requires_grad=False):
    return rand(input.shape, dtype=_like(input, dtype)[1], device=device,
                requires_grad=requires_grad)


def randn_like(input, dtype=None, device=None, requires_grad=False):
    return randn(input.shape, dtype=_like(input, dtype)[1], device=device,
                 requires_grad=requires_grad)


def randint(*args, size=None, dtype=None, device=None, requires_grad=False, generator=None):
    """``randint(high, size)`` or ``randint(low, high, size)``: integers in [low, high),
    int64 unless a dtype is given."""
    if size is None:
        if not args:
            raise TypeError("randint: expected (high, size) or (low, high, size)")
        args, size = args[:-1], args[-1]
    if len(args) == 1:
        low, high = 0, args[0]
    elif len(args) == 2:
        low, high = args
    else:
        raise TypeError(f"randint: expected (high, size) or (low, high, size), got "
                        f"{len(args) + 1} arguments")
    if high <= low:
        raise ValueError(f"high: expected more than low={low}, got {high}")
    shape = _size_arguments((size,))
    host = random.integers(int(low), int(high), shape).astype(_dtype(dtype, np.dtype(np.int64)))
    return _made(backend.to_device(host), device, requires_grad)


def randint_like(input, low=0, high=None, dtype=None, device=None):
    if high is None:
        low, high = 0, low
    return randint(low, high, input.shape, dtype=_like(input, dtype)[1], device=device)


def randperm(n, dtype=None, device=None, requires_grad=False, generator=None):
    host = random.permutation(int(n)).astype(_dtype(dtype, np.dtype(np.int64)))
    return _made(backend.to_device(host), device, requires_grad)


def normal(mean=0.0, std=1.0, size=None, dtype=None, device=None, generator=None):
    """Samples of N(mean, std²): ``size`` with number arguments, else the broadcast
    shape of the tensors ``mean`` and ``std``."""
    m = mean._array if isinstance(mean, Tensor) else mean
    s = std._array if isinstance(std, Tensor) else std
    if size is None:
        shape = np.broadcast_shapes(np.shape(backend.to_host(m)), np.shape(backend.to_host(s)))
        like = mean if isinstance(mean, Tensor) else std if isinstance(std, Tensor) else None
        dtype = _dtype(dtype, like.dtype if like is not None else _FLOAT)
    else:
        shape, dtype = _size_arguments((size,)), _float_dtype(dtype)
    draws = backend.to_device(random.normal(shape, np.float64))
    return _made((draws * s + m).astype(dtype), device, False)


def bernoulli(input, p=None, generator=None):
    """1 with probability ``input`` (elementwise; or ``p``), else 0, in input's dtype."""
    probs = input._array if p is None else xp.full(input.shape, p)
    draws = backend.to_device(random.rand(input.shape))
    return _wrap((draws < probs).astype(input.dtype))


def multinomial(input, num_samples, replacement=False, generator=None):
    """Indices drawn from the categorical distributions in the rows of ``input`` (1-D or
    2-D; non-negative weights, not necessarily summing to one), as ``torch.multinomial``."""
    weights = backend.to_host(input._array if isinstance(input, Tensor)
                              else _to_storage(input)).astype(np.float64)
    if weights.ndim not in (1, 2):
        raise ValueError(f"input: expected 1-D or 2-D weights, got shape {weights.shape}")
    if (weights < 0).any() or not np.isfinite(weights).all():
        raise ValueError("input: expected finite, non-negative weights")
    rows = weights.reshape(-1, weights.shape[-1])
    if not replacement and num_samples > rows.shape[1]:
        raise ValueError(f"num_samples: expected at most {rows.shape[1]} without "
                         f"replacement, got {num_samples}")
    out = np.empty((rows.shape[0], num_samples), dtype=np.int64)
    for k, row in enumerate(rows):
        total = row.sum()
        if total <= 0:
            raise ValueError(f"input: row {k} has no positive weight")
        out[k] = random.choice(row.size, num_samples, replacement, row / total)
    return _wrap(backend.to_device(out.reshape(weights.shape[:-1] + (num_samples,))))


def arange(start=0, end=None, step=1, dtype=None, device=None, requires_grad=False):
    if end is None:
        start, end = 0, start
    values = (start, end, step)
    integral = builtins.all(isinstance(v, numbers.Integral) for v in values)
    dtype = _dtype(dtype, np.dtype(np.int64) if integral else _FLOAT)
    if step == 0:
        raise ValueError("step: expected a non-zero step, got 0")
    host = np.arange(start, end, step, dtype=np.float64 if not integral else np.int64)
    return _made(backend.to_device(host.astype(dtype)), device, requires_grad)


def linspace(start, end, steps, dtype=None, device=None, requires_grad=False):
    host = np.linspace(start, end, int(steps))
    return _made(backend.to_device(host.astype(_dtype(dtype))), device, requires_grad)


def eye(n, m=None, dtype=None, device=None, requires_grad=False):
    return _made(xp.eye(n, n if m is None else m, dtype=_dtype(dtype)), device, requires_grad)


def from_numpy(ndarray):
    """A tensor of the NumPy array's dtype and values. In the simulator it shares the
    array's memory, as PyTorch does; on a GPU the values are copied to the device."""
    if not isinstance(ndarray, np.ndarray):
        raise TypeError(f"ndarray: expected a numpy.ndarray, got {type(ndarray).__name__}")
    return _wrap(backend.to_device(ndarray))


def as_tensor(data, dtype=None, device=None):
    """``data`` as a tensor, sharing its memory where it can (a Tensor of that dtype is
    returned as is)."""
    _check_device(device)
    if isinstance(data, Tensor):
        return data if dtype is None else data.to(dtype)
    return _wrap(_to_storage(data, dtype))


def is_tensor(obj):
    return isinstance(obj, Tensor)


def is_floating_point(input):
    return input.is_floating_point()


def numel(input):
    return input.numel()


def get_default_dtype():
    return _FLOAT


# ------------------------------------------------------------------- joining
# cat, stack, hstack, vstack and where are numba_rnn.ops.join's (imported above)


# ------------------------------------------- Tensor methods as functions
# the ops defined once in numba_rnn.ops are themselves the functions: nr.sigmoid is
# Tensor.sigmoid is F.sigmoid, nr.sum is Tensor.sum
_OPS = {
    elementwise: ("exp", "log", "log1p", "expm1", "log2", "log10", "sqrt", "rsqrt",
                  "reciprocal", "square", "tanh", "sigmoid", "relu", "sin", "cos", "abs",
                  "absolute", "sign", "floor", "ceil", "trunc", "round"),
    arith: ("neg", "negative", "clamp", "clip", "clamp_min", "clamp_max", "pow", "maximum",
            "minimum", "add", "sub", "mul", "div", "multiply", "divide", "subtract",
            "true_divide", "matmul", "mm", "bmm", "dot", "masked_fill", "eq", "ne", "lt",
            "le", "gt", "ge", "greater", "less", "greater_equal", "less_equal", "not_equal",
            "equal", "allclose", "logical_not", "logical_and", "logical_or", "isnan",
            "isinf", "isfinite"),
    _softmax_ops: ("softmax", "log_softmax"),
    reduce: ("sum", "mean", "var", "std", "norm", "logsumexp", "cumsum", "prod", "max", "min",
             "amax", "amin", "argmax", "argmin", "topk", "sort", "argsort", "all", "any"),
    index: ("gather", "index_select", "masked_select"),
    movement: ("reshape", "flatten", "unflatten", "transpose", "swapaxes", "swapdims", "t",
               "permute", "movedim", "squeeze", "unsqueeze", "narrow", "split", "chunk",
               "tensor_split", "unbind", "clone", "flip"),
}
_METHODS = tuple(name for names in _OPS.values() for name in names)
for _module, _names in _OPS.items():
    for _name in _names:
        globals()[_name] = getattr(_module, _name)
__all__ += list(_METHODS)
