"""numba_rnn: LSTM, GRU and Elman RNN layers for NVIDIA GPUs, with numba.cuda kernels and
hand-derived backward passes, in PyTorch's image; without a GPU the same cell math runs
compiled for the CPU. See docs/API.md for the contract."""
import builtins as _builtins
import numbers as _numbers

import numpy as _np

# the backend first: it switches Numba's CUDA simulator on (where asked, or where there is
# no GPU) before anything imports numba
from . import backend  # noqa: I001
from . import autograd, cells, cuda, nn, optim, serialization, testing, utils
from .backend import available_backends, backend_name, set_backend, use_backend
from .checkpoint import load, save
from .kernels.region import get_num_threads, set_num_threads
from .functions import *  # noqa: F401,F403  (creation, joining, function forms)
from .functions import __all__ as _functions
from .nn import (GRU, LSTM, RNN, GRUCell, LayerNormGRU, LayerNormGRUCell, LayerNormLSTM,
                 LayerNormLSTMCell, LSTMCell, RecurrentCell, RecurrentLayer, RNNCell)
from .random import manual_seed
from ._core.devices import device_type as device
from .autograd import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .tensor import Size, Tensor, tensor

__version__ = "0.1.0"

# dtypes: NumPy's, under PyTorch's names; usable wherever a dtype is, and equal to
# ``tensor.dtype``.
float32 = float = _np.dtype(_np.float32)
float64 = double = _np.dtype(_np.float64)
float16 = half = _np.dtype(_np.float16)
int64 = long = _np.dtype(_np.int64)
int32 = int = _np.dtype(_np.int32)
int16 = short = _np.dtype(_np.int16)
int8 = _np.dtype(_np.int8)
uint8 = _np.dtype(_np.uint8)
bool = _np.dtype(_np.bool_)
dtype = _np.dtype


def _legacy(name, dtype_):
    def constructor(*sizes_or_data, device=None):
        if sizes_or_data and not _builtins.all(isinstance(a, _numbers.Integral) for a in sizes_or_data):
            if len(sizes_or_data) != 1:
                raise TypeError(f"{name}(): expected sizes (ints) or one sequence of data")
            return tensor(sizes_or_data[0], dtype=dtype_, device=device)
        return Tensor(*sizes_or_data, device=device).to(dtype_)

    constructor.__name__ = constructor.__qualname__ = name
    constructor.__doc__ = (f"The legacy ``torch.{name}(sizes...)`` or ``torch.{name}(data)``: "
                           f"a {dtype_} tensor (zero-filled when given sizes).")
    return constructor


FloatTensor = _legacy("FloatTensor", float32)
DoubleTensor = _legacy("DoubleTensor", float64)
LongTensor = _legacy("LongTensor", int64)
IntTensor = _legacy("IntTensor", int32)
BoolTensor = _legacy("BoolTensor", bool)
ByteTensor = _legacy("ByteTensor", uint8)

__all__ = ["Tensor", "tensor", "Size", "device", "no_grad", "enable_grad",
           "set_grad_enabled", "is_grad_enabled", "backend_name", "available_backends",
           "set_backend", "use_backend", "manual_seed", "nn",
           "optim", "utils", "autograd", "cuda", "serialization", "save", "load", "LSTM", "GRU", "RNN",
           "LSTMCell", "GRUCell", "RNNCell", "LayerNormLSTM", "LayerNormGRU", "LayerNormLSTMCell",
           "LayerNormGRUCell", "RecurrentLayer", "RecurrentCell", "float32", "float", "float64", "double",
           "float16", "half", "int64", "long", "int32", "int", "int16", "short", "int8",
           "uint8", "bool", "dtype", "FloatTensor", "DoubleTensor", "LongTensor",
           "IntTensor", "BoolTensor", "ByteTensor", "set_num_threads",
           "get_num_threads"] + list(_functions)
