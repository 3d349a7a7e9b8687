"""numba_rnn inside PyTorch: ``torch.nn`` recurrent modules whose forward and backward
run numba_rnn's kernels.

    import numba_rnn.torch as nrt
    lstm = nrt.LSTM(8, 16, num_layers=2, batch_first=True)    # a torch.nn.LSTM
    output, (h_n, c_n) = lstm(x)                              # x: a torch tensor

``LSTM``, ``GRU``, ``RNN`` and ``LSTMCell``, ``GRUCell``, ``RNNCell`` subclass the
``torch.nn`` classes of the same names: the same constructor, ``torch.nn.Parameter``s
with the same names, shapes and initialisation (state dicts are interchangeable both
ways), ``.to()``, ``.double()``, hooks, optimizers, ``DistributedDataParallel``. Their
forward is PyTorch's own, for the version installed, run with the one call it makes
into PyTorch's recurrent kernels (``torch._VF.lstm`` and friends) answered by
numba_rnn: argument checks, error messages, ``PackedSequence`` handling, unbatched
input and default states are exactly PyTorch's. The recurrent layers also take
numba_rnn's ``lengths=`` (as ``pack_padded_sequence(..., enforce_sorted=False)``, the
layer, and ``pad_packed_sequence(..., total_length=T)``).

The call into numba_rnn is one ``torch.autograd.Function`` per layer call: its forward
runs ``recurrent.stack_forward`` on the tensors' memory, its backward
``recurrent.stack_backward``. CUDA tensors reach the kernels through DLPack as CuPy
arrays, without a copy, on PyTorch's current stream; CPU tensors reach the simulator as
NumPy views (a CPU tensor on a GPU machine is copied to the GPU and back). Dropout
between layers draws its masks from PyTorch's generator. PyTorch is needed for this
module only.
"""
import types

import numpy as np
import torch
from torch.nn.modules import rnn as _torch_rnn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from . import backend, recurrent
from .kernels import CELLS

__all__ = ["LSTM", "GRU", "RNN", "LSTMCell", "GRUCell", "RNNCell"]

_DTYPES = (torch.float32, torch.float64)


# ------------------------------------------------------------------ memory
def _device_index(tensor):
    return tensor.device.index if tensor.device.index is not None else torch.cuda.current_device()


def _to_backend(tensor):
    """The tensor's memory as a backend array: a CuPy view of a CUDA tensor, a NumPy
    view of a CPU tensor without a GPU (a copy on the GPU for a CPU tensor)."""
    tensor = tensor.detach()
    if tensor.is_cuda:
        if backend.backend_name() != "cuda":
            raise RuntimeError(f"numba_rnn runs on {backend.backend_name()!r} here (storage "
                               "in host memory): it found no usable GPU or was asked for the "
                               "CPU; move the module and its inputs to the CPU "
                               "(module.cpu()) to use it there")
        return backend.xp.from_dlpack(tensor)
    return backend.to_device(tensor.numpy())


def _to_torch(array, like):
    """A backend array as a tensor on ``like``'s device (no copy where it lives there)."""
    if backend.backend_name() == "cuda":
        tensor = torch.from_dlpack(array)
        return tensor if like.is_cuda else tensor.cpu()
    return torch.from_numpy(np.asarray(array))


class _OnTorchStream:
    """Within it, numba_rnn's kernels and CuPy's work run on PyTorch's current CUDA
    stream of ``tensor``'s device (nothing to do on the CPU)."""

    def __init__(self, tensor):
        self._contexts = []
        if tensor.is_cuda:
            import cupy
            index = _device_index(tensor)
            stream = torch.cuda.current_stream(index).cuda_stream
            self._contexts = [cupy.cuda.Device(index), cupy.cuda.ExternalStream(stream)]

    def __enter__(self):
        for context in self._contexts:
            context.__enter__()
        return self

    def __exit__(self, *exc):
        for context in reversed(self._contexts):
            context.__exit__(*exc)
        return False


# ------------------------------------------------------------ the Function
class _Stack(torch.autograd.Function):
    """One recurrent call: ``apply(spec, x, *states, *weights)`` with x time-major
    (T, B, I) or packed data (N, I), states (L·D, B, H), weights PyTorch's flat weights
    (w_ih, w_hh[, b_ih, b_hh][, w_hr] per layer and direction). Returns (output,
    *final states)."""

    @staticmethod
    def forward(ctx, spec, x, *tensors):
        num_states = spec.cell.num_states
        states, weights = tensors[:num_states], tensors[num_states:]
        with _OnTorchStream(x):
            x_tm = _to_backend(x)
            if spec.packed is not None:
                x_tm = spec.packed.pad(x_tm)
            states0 = tuple(_to_backend(s) for s in states)
            layers = spec.layer_params([_to_backend(w) for w in weights])
            output, finals, cache = recurrent.stack_forward(
                spec.cell, x_tm, states0, layers, lengths=spec.lengths(),
                dropout=spec.dropout, random=spec.draw(x) if spec.dropout else None)
            if spec.packed is not None:
                output = spec.packed.pack(output)
            results = tuple(_to_torch(a, x) for a in (output,) + tuple(finals))
        ctx.spec, ctx.cache, ctx.layers = spec, cache, layers
        # kept for their version counters: an in-place change of the input, a weight
        # or an output before backward is refused, as PyTorch's own layers refuse it
        ctx.save_for_backward(x, *weights, *results)
        return results

    @staticmethod
    def backward(ctx, doutput, *dfinals):
        spec = ctx.spec
        saved = ctx.saved_tensors  # raises if a saved tensor was modified in place
        x = saved[0]
        with _OnTorchStream(x):
            dout = None if doutput is None else _to_backend(doutput)
            if dout is not None and spec.packed is not None:
                dout = spec.packed.pad(dout)
            dx, dstates0, dlayers = recurrent.stack_backward(
                spec.cell, ctx.cache, ctx.layers, dout,
                [None if d is None else _to_backend(d) for d in dfinals])
            if spec.packed is not None:
                dx = spec.packed.pack(dx)
            grads = [_to_torch(dx, x)] + [_to_torch(d, x) for d in dstates0]
            for directions in dlayers:
                for layer_grads in directions:
                    grads += [_to_torch(g, x) for g in spec.weight_grads(layer_grads)]
        return (None, *grads)


class _Spec:
    """What a call of ``_Stack`` needs besides tensors."""

    def __init__(self, mode, num_layers, bidirectional, has_biases, dropout, lengths=None,
                 packed=None, has_projection=False):
        self.cell = CELLS[mode]
        self.num_layers = num_layers
        self.directions = 2 if bidirectional else 1
        self.has_biases = has_biases
        self.has_projection = has_projection
        self.dropout = dropout
        self.packed = packed
        self._lengths = lengths

    def lengths(self):
        return self._lengths if self.packed is None else self.packed.lengths

    def draw(self, like):
        """U[0,1) samples from PyTorch's generator of ``like``'s device."""
        def draw(shape):
            samples = torch.rand(shape, dtype=torch.float64, device=like.device)
            return _to_backend(samples)
        return draw

    def _per_layer(self):
        return 2 + 2 * self.has_biases + self.has_projection

    def layer_params(self, weights):
        """recurrent.LayerParams per layer and direction from PyTorch's flat weights."""
        per, layers = self._per_layer(), []
        for k in range(self.num_layers):
            directions = []
            for d in range(self.directions):
                w = weights[(k * self.directions + d) * per:][:per]
                w_ih, w_hh = w[0], w[1]
                if self.has_biases:
                    b_ih, b_hh = w[2], w[3]
                else:
                    b_ih = b_hh = backend.xp.zeros(w_ih.shape[0], dtype=w_ih.dtype)
                w_hr = w[-1] if self.has_projection else None
                directions.append(recurrent.LayerParams(w_ih, w_hh, b_ih, b_hh, w_hr))
            layers.append(directions)
        return layers

    def weight_grads(self, grads):
        """The gradients of one layer-direction's flat weights, in their order."""
        result = [grads.w_ih, grads.w_hh]
        if self.has_biases:
            result += [grads.b_ih, grads.b_hh]
        if self.has_projection:
            result.append(grads.w_hr)
        return result


class _Packed:
    """The layout of a PackedSequence's data (N, F), rows sorted by length, step by step:
    ``pad`` gives the time-major (T, B, F) array, ``pack`` goes back."""

    def __init__(self, batch_sizes):
        sizes = batch_sizes.tolist()
        self.steps, self.batch = len(sizes), sizes[0]
        self.time = np.concatenate([np.full(n, t) for t, n in enumerate(sizes)])
        self.rows = np.concatenate([np.arange(n) for n in sizes])
        self.lengths = np.array([sum(n > b for n in sizes) for b in range(self.batch)])
        self._index = None

    def _indices(self):
        if self._index is None:
            self._index = (backend.to_device(self.time), backend.to_device(self.rows))
        return self._index

    def pad(self, data):
        padded = backend.xp.zeros((self.steps, self.batch, data.shape[-1]), dtype=data.dtype)
        padded[self._indices()] = data
        return padded

    def pack(self, padded):
        return backend.xp.ascontiguousarray(padded[self._indices()])


# --------------------------------------------------- PyTorch's _VF, answered
def _check(name, input, tensors):
    """PyTorch's own refusals of mismatched devices and dtypes, before any kernel runs."""
    if input.dtype not in _DTYPES:
        raise TypeError(f"{name}: numba_rnn computes in float32 or float64, got input of "
                        f"dtype {input.dtype}")
    for t in tensors:
        if t is None:
            continue
        if t.device != input.device:
            raise RuntimeError("Input and parameter tensors are not at the same device, found "
                               f"input tensor at {input.device} and parameter tensor at "
                               f"{t.device}")
        if t.dtype != input.dtype:
            raise RuntimeError(f"{name}: expected all tensors of dtype {input.dtype} (the "
                               f"input's), found one of dtype {t.dtype}")


def _layers(mode):
    def run(input, *args):
        if isinstance(args[0], torch.Tensor) and args[0].dtype == torch.int64 and args[0].dim() == 1:
            batch_sizes, hx, weights, has_biases, num_layers, dropout, train, bidirectional = args
            packed, batch_first = _Packed(batch_sizes), False
        else:
            hx, weights, has_biases, num_layers, dropout, train, bidirectional, batch_first = args
            packed = None
        states = tuple(hx) if isinstance(hx, (tuple, list)) else (hx,)
        _check(mode.upper(), input, list(states) + list(weights))
        per = len(weights) // (num_layers * (2 if bidirectional else 1))
        has_projection = per - 2 - 2 * bool(has_biases) == 1
        spec = _Spec(mode, num_layers, bidirectional, bool(has_biases),
                     float(dropout) if train else 0.0, packed=packed,
                     has_projection=has_projection)
        x = input.transpose(0, 1) if batch_first and packed is None else input
        output, *finals = _Stack.apply(spec, x, *states, *weights)
        if batch_first and packed is None:
            output = output.transpose(0, 1)
        return (output, *finals)
    return run


def _cell(mode):
    def run(input, hx, w_ih, w_hh, b_ih=None, b_hh=None):
        states = tuple(hx) if isinstance(hx, (tuple, list)) else (hx,)
        _check(mode.upper() + "Cell", input, [*states, w_ih, w_hh, b_ih, b_hh])
        if input.size(1) != w_ih.size(1):
            raise RuntimeError(f"input has inconsistent input_size: got {input.size(1)} "
                               f"expected {w_ih.size(1)}")
        for k, state in enumerate(states):
            if state.size(0) != input.size(0):
                raise RuntimeError(f"Input batch size {input.size(0)} doesn't match hidden{k} "
                                   f"batch size {state.size(0)}")
            if state.size(1) != w_hh.size(1):
                raise RuntimeError(f"hidden{k} has inconsistent hidden_size: got "
                                   f"{state.size(1)}, expected {w_hh.size(1)}")
        weights = [w_ih, w_hh] + ([b_ih, b_hh] if b_ih is not None else [])
        spec = _Spec(mode, 1, False, b_ih is not None, 0.0)
        output, *finals = _Stack.apply(spec, input.unsqueeze(0),
                                       *[s.unsqueeze(0) for s in states], *weights)
        finals = [f.squeeze(0) for f in finals]
        return tuple(finals) if len(finals) > 1 else finals[0]
    return run


_VF = types.SimpleNamespace(
    lstm=_layers("lstm"), gru=_layers("gru"), rnn_tanh=_layers("rnn_tanh"),
    rnn_relu=_layers("rnn_relu"), lstm_cell=_cell("lstm"), gru_cell=_cell("gru"),
    rnn_tanh_cell=_cell("rnn_tanh"), rnn_relu_cell=_cell("rnn_relu"))

_GLOBALS = dict(vars(_torch_rnn), _VF=_VF)


def _rebound(function):
    """PyTorch's own ``function`` (a module's forward), reading ``_VF`` from here."""
    return types.FunctionType(function.__code__, _GLOBALS, function.__name__,
                              function.__defaults__, function.__closure__)


# ------------------------------------------------------------------ modules
class _Layers:
    """The forward that the recurrent layers add to PyTorch's: ``lengths=``."""

    def forward(self, input, hx=None, lengths=None):
        """PyTorch's forward (``input``: a padded tensor or a PackedSequence, ``hx``),
        on numba_rnn's kernels; ``lengths``: one length per batch entry of a padded
        batched input, as pack_padded_sequence(enforce_sorted=False) → layer →
        pad_packed_sequence(total_length=T) would give."""
        if lengths is None:
            return self._torch_forward(input, hx)
        if isinstance(input, PackedSequence) or input.dim() != 3:
            raise ValueError("lengths: expected a padded batched (3-D) input with lengths, "
                             f"got {'a PackedSequence' if isinstance(input, PackedSequence) else f'{input.dim()}-D input'}")
        steps = input.size(1 if self.batch_first else 0)
        lengths = torch.as_tensor(lengths, dtype=torch.int64, device="cpu")
        packed = pack_padded_sequence(input, lengths, batch_first=self.batch_first,
                                      enforce_sorted=False)
        output, hidden = self._torch_forward(packed, hx)
        output, _ = pad_packed_sequence(output, batch_first=self.batch_first,
                                        total_length=steps)
        return output, hidden


class LSTM(_Layers, torch.nn.LSTM):
    """``torch.nn.LSTM`` on numba_rnn's kernels."""
    _torch_forward = _rebound(torch.nn.LSTM.forward)


class GRU(_Layers, torch.nn.GRU):
    """``torch.nn.GRU`` on numba_rnn's kernels."""
    _torch_forward = _rebound(torch.nn.GRU.forward)


class RNN(_Layers, torch.nn.RNN):
    """``torch.nn.RNN`` (tanh or relu) on numba_rnn's kernels."""
    _torch_forward = _rebound(torch.nn.RNN.forward)


class LSTMCell(torch.nn.LSTMCell):
    """``torch.nn.LSTMCell`` on numba_rnn's kernels."""
    forward = _rebound(torch.nn.LSTMCell.forward)


class GRUCell(torch.nn.GRUCell):
    """``torch.nn.GRUCell`` on numba_rnn's kernels."""
    forward = _rebound(torch.nn.GRUCell.forward)


class RNNCell(torch.nn.RNNCell):
    """``torch.nn.RNNCell`` on numba_rnn's kernels."""
    forward = _rebound(torch.nn.RNNCell.forward)
