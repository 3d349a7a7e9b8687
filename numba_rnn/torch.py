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
``recurrent.stack_backward`` (a differentiable backward, for create_graph=True and the
torch.func transforms, is PyTorch's own recurrent op on the saved inputs: ``_Stack``).
CUDA tensors reach the kernels through DLPack as CuPy
arrays, without a copy, on PyTorch's current stream; CPU tensors reach the simulator as
NumPy views (a CPU tensor on a GPU machine is copied to the GPU and back). Dropout
between layers draws its masks from PyTorch's generator. PyTorch is needed for this
module only.
"""
import contextlib
import copy
import types

import numpy as np
import torch
from torch import _VF as _torch_VF
from torch.nn.modules import rnn as _torch_rnn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from . import backend, recurrent
from .kernels import cells

__all__ = ["LSTM", "GRU", "RNN", "LSTMCell", "GRUCell", "RNNCell"]

_DTYPES = (torch.float32, torch.float64)
_IN_FLOAT32 = (torch.float16, torch.bfloat16)  # storage dtypes computed in float32


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
    *final states).

    First-order backward runs numba_rnn's kernels. A backward that must itself be
    differentiable (``create_graph=True``: gradient penalties, double backward, Hessian
    products) or that runs under a ``torch.func`` transform (``jacrev``, batched
    gradients) is the same call on PyTorch's own recurrent op, differentiated by
    PyTorch's autograd (``_torch_stack``, with this call's dropout masks): exact to any
    order, never a silent first-order answer. Forward-mode AD (``jvp``, ``jacfwd``)
    takes that way too; ``vmap`` folds a vmapped batch into the layer's batch when the
    weights are shared, and loops otherwise.
    """

    @staticmethod
    def forward(spec, x, *tensors):
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
        spec.ran = (cache, layers)  # for setup_context (a torch.func transform may call
        return results              # it more than once per forward)

    @staticmethod
    def setup_context(ctx, inputs, output):
        spec = inputs[0]
        ctx.spec = spec
        ctx.cache, ctx.layers = spec.ran
        # the inputs for the exact (differentiable) backward; all of them, and the
        # outputs, for their version counters: an in-place change of the input, a
        # weight or an output before backward is refused, as PyTorch's own layers
        # refuse it
        ctx.save_for_backward(*inputs[1:], *output)
        ctx.save_for_forward(*inputs[1:])

    @staticmethod
    def backward(ctx, doutput, *dfinals):
        spec = ctx.spec
        saved = ctx.saved_tensors  # raises if a saved tensor was modified in place
        grads = (doutput, *dfinals)
        if torch.is_grad_enabled() or any(_functorch_wrapped(g) for g in grads):
            return (None, *_backward_by_torch(ctx, saved, grads))
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

    @staticmethod
    def jvp(ctx, _spec, *tangents):
        # J·t as the vector-Jacobian product of the (linear) pullback u -> uᵀJ: reverse
        # mode twice through _torch_stack, since forward mode cannot nest in forward mode
        primals = ctx.saved_tensors
        masks = _masks(ctx, primals[0])
        outputs, pullback = torch.func.vjp(lambda *a: _torch_stack(ctx.spec, a, masks),
                                           *primals)
        _, transpose = torch.func.vjp(lambda *u: pullback(u),
                                      *(torch.zeros_like(o) for o in outputs))
        return transpose(tuple(torch.zeros_like(p) if t is None else t
                               for p, t in zip(primals, tangents)))

    @staticmethod
    def vmap(info, in_dims, spec, x, *tensors):
        if spec.dropout and info.randomness == "error":
            raise RuntimeError(
                "vmap: called random operation while in randomness error mode. Please "
                "either use the 'same' or 'different' randomness flags on vmap or perform "
                "the randomness operation out of vmap")
        num_states = spec.cell.num_states
        inputs, dims = (x, *tensors), in_dims[1:]
        if spec.packed is None and all(d is None for d in dims[1 + num_states:]):
            # shared weights: the vmapped dimension joins the batch, one call for all
            size = info.batch_size

            def folded(t, d):  # (V, A, B, ...) -> (A, V·B, ...)
                t = t.unsqueeze(0).expand(size, *t.shape) if d is None else t.movedim(d, 0)
                return t.transpose(0, 1).reshape(t.shape[1], size * t.shape[2], *t.shape[3:])

            batch = folded(x, dims[0]).shape[1] // size if size else 0
            results = _Stack.apply(spec.tiled(size, info.randomness == "same"),
                                   *(folded(t, d) if k <= num_states else t
                                     for k, (t, d) in enumerate(zip(inputs, dims))))
            return (tuple(r.reshape(r.shape[0], size, batch, *r.shape[2:]) for r in results),
                    (1,) * len(results))
        # weights that differ along the vmapped dimension (an ensemble): one call each
        runs = []
        with _same_draws(x, info.randomness == "same" and spec.dropout) as draws:
            for index in range(info.batch_size):
                draws()
                runs.append(_Stack.apply(spec.copy(), *(
                    t if d is None else t.select(d, index) for t, d in zip(inputs, dims))))
        results = tuple(torch.stack(parts) for parts in zip(*runs))
        return results, (0,) * len(results)


def _functorch_wrapped(tensor):
    """Whether ``tensor`` is a torch.func transform's wrapper (jacrev) or a batch of
    gradients (is_grads_batched), which has no memory of its own for the kernels."""
    functorch = torch._C._functorch
    return tensor is not None and (functorch.is_functorch_wrapped_tensor(tensor)
                                   or functorch.is_legacy_batchedtensor(tensor))


def _masks(ctx, like):
    """The forward's dropout masks between layers as tensors in the input's layout (the
    packed one for packed input), None where there is none."""
    spec, cache = ctx.spec, ctx.cache
    masks = []
    for mask in cache.masks:
        if mask is not None:
            mask = cache.batching.unsort(mask)
            if spec.packed is not None:
                mask = spec.packed.pack(mask)
            mask = _to_torch(mask, like)
        masks.append(mask)
    return masks


def _torch_stack(spec, inputs, masks):
    """The call that ``_Stack`` answers, made on PyTorch's own recurrent op
    (``torch._VF``) with dropout between layers replaced by the given masks: the
    reference that the exact higher-order derivatives come from. inputs: (x, *states,
    *weights) as ``_Stack.apply`` takes them."""
    num_states = spec.cell.num_states
    x, states, weights = inputs[0], inputs[1:1 + num_states], inputs[1 + num_states:]
    op = getattr(_torch_VF, spec.mode)
    bidirectional = spec.directions == 2

    def call(x, states, weights, num_layers):
        hx = tuple(states) if num_states > 1 else states[0]
        if spec.packed is not None:
            return op(x, spec.packed.batch_sizes, hx, weights, spec.has_biases, num_layers,
                      0.0, False, bidirectional)
        return op(x, hx, weights, spec.has_biases, num_layers, 0.0, False, bidirectional,
                  False)

    if all(mask is None for mask in masks):
        return tuple(call(x, states, weights, spec.num_layers))
    per, span = spec._per_layer() * spec.directions, spec.directions
    finals = [[] for _ in states]
    for k, mask in enumerate(masks):
        output, *layer_finals = call(x, [s[k * span:(k + 1) * span] for s in states],
                                     weights[k * per:(k + 1) * per], 1)
        x = output if mask is None else output * mask
        for per_state, final in zip(finals, layer_finals):
            per_state.append(final)
    return (x, *(torch.cat(per_state) for per_state in finals))


def _backward_by_torch(ctx, saved, grads):
    """The gradients of ``_Stack``'s inputs through ``_torch_stack``, recorded for a
    further derivative where grad mode is on (create_graph=True). Under a torch.func
    transform, by torch.func's vjp, which composes with the transforms around it;
    otherwise by the autograd engine (PyTorch's packed recurrent op has no torch.func
    support, so packed input under a transform fails as torch.nn's does)."""
    inputs = saved[:len(saved) - len(grads)]
    masks = _masks(ctx, inputs[0])
    needed = ctx.needs_input_grad[1:]
    if any(_functorch_wrapped(t) for t in (*inputs, *grads)):
        outputs, pullback = torch.func.vjp(lambda *a: _torch_stack(ctx.spec, a, masks),
                                           *inputs)
        grads = tuple(torch.zeros_like(o) if g is None else g for o, g in zip(outputs, grads))
        return [g if need else None for g, need in zip(pullback(grads), needed)]
    wanted = [t for t, need in zip(inputs, needed) if need]
    with torch.enable_grad():
        outputs = _torch_stack(ctx.spec, inputs, masks)
    pairs = [(o, g) for o, g in zip(outputs, grads) if g is not None]
    found = iter(torch.autograd.grad([o for o, _ in pairs], wanted, [g for _, g in pairs],
                                     create_graph=torch.is_grad_enabled(), allow_unused=True))
    result = []
    for t, need in zip(inputs, needed):
        g = next(found) if need else None
        result.append(torch.zeros_like(t) if need and g is None else g)
    return result


@contextlib.contextmanager
def _same_draws(like, same):
    """``draws()`` before each of a loop's calls: with ``same``, each call draws the
    dropout masks the first one drew (vmap's randomness="same"), else nothing."""
    if not same:
        yield lambda: None
        return
    get, put = ((lambda: torch.cuda.get_rng_state(like.device), lambda s: torch.cuda.set_rng_state(s, like.device))
                if like.is_cuda else (torch.get_rng_state, torch.set_rng_state))
    state = get()
    yield lambda: put(state)


class _Spec:
    """What a call of ``_Stack`` needs besides tensors."""

    def __init__(self, cell, num_layers, bidirectional, has_biases, dropout, lengths=None,
                 packed=None, has_projection=False):
        self.cell = cells.lookup(cell)
        self.mode = self.cell.torch.op  # PyTorch's op (torch._VF.<mode>)
        self.num_layers = num_layers
        self.directions = 2 if bidirectional else 1
        self.has_biases = has_biases
        self.has_projection = has_projection
        self.dropout = dropout
        self.packed = packed
        self._lengths = lengths
        self._tile, self._same = 1, False
        self.ran = None

    def copy(self):
        """The same call, for another ``_Stack.apply`` (each keeps its own results)."""
        return copy.copy(self)

    def tiled(self, times, same):
        """The call on ``times`` batches side by side (vmap's batch folded into the
        layer's): lengths repeated; dropout masks drawn for all of them, or with
        ``same`` drawn for one and repeated."""
        spec = self.copy()
        if self._lengths is not None:
            spec._lengths = np.tile(self._lengths, times)
        spec._tile, spec._same = self._tile * times, same
        return spec

    def lengths(self):
        return self._lengths if self.packed is None else self.packed.lengths

    def draw(self, like):
        """U[0,1) samples from PyTorch's generator of ``like``'s device."""
        def draw(shape):
            if self._same:  # (T, V·B, F): one (T, B, F) draw for every vmapped batch
                steps, batch, width = shape
                samples = torch.rand((steps, batch // self._tile, width), dtype=torch.float64,
                                     device=like.device).repeat(1, self._tile, 1)
            else:
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
        self.batch_sizes = batch_sizes
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
def _type_name(dtype):
    """PyTorch's C++ name of a dtype ("Float", "Double", "Half", "BFloat16", "Long")."""
    return torch.empty(0, dtype=dtype).type().split(".")[-1][:-len("Tensor")]


def _check_devices(input, tensors):
    for t in tensors:
        if t is not None and t.device != input.device:
            raise RuntimeError("Input and parameter tensors are not at the same device, found "
                               f"input tensor at {input.device} and parameter tensor at "
                               f"{t.device}")


def _check_dtypes(name, input, tensors):
    """Every tensor of the input's dtype, one that numba_rnn computes in."""
    if input.dtype not in _DTYPES + _IN_FLOAT32:
        raise TypeError(f"{name}: numba_rnn computes in float32 or float64 (float16 and "
                        f"bfloat16 in float32), got input of dtype {input.dtype}")
    for t in tensors:
        if t is not None and t.dtype != input.dtype:
            raise RuntimeError(f"{name}: expected all tensors of dtype {input.dtype} (the "
                               f"input's), found one of dtype {t.dtype}")


def _in_float32(run):
    """``run`` on float16 or bfloat16 tensors computed in float32 (the kernels' widths),
    its results cast back to the input's dtype; autograd goes through the casts."""
    def cast(t):
        return t.float() if isinstance(t, torch.Tensor) and t.is_floating_point() else t

    def maybe_in_float32(input, *args):
        if input.dtype not in _IN_FLOAT32:
            return run(input, *args)
        args = [type(a)(cast(t) for t in a) if isinstance(a, (tuple, list)) else cast(a)
                for a in args]
        results = run(input.float(), *args)
        return tuple(r.to(input.dtype) for r in results) if isinstance(results, tuple) \
            else results.to(input.dtype)
    return maybe_in_float32


def _layers(cell):
    """PyTorch's op ``_VF.<cell.torch.op>`` (a layer call) on numba_rnn's kernels."""
    @_in_float32
    def run(input, *args):
        if isinstance(args[0], torch.Tensor) and args[0].dtype == torch.int64 and args[0].dim() == 1:
            batch_sizes, hx, weights, has_biases, num_layers, dropout, train, bidirectional = args
            packed, batch_first = _Packed(batch_sizes), False
        else:
            hx, weights, has_biases, num_layers, dropout, train, bidirectional, batch_first = args
            packed = None
            if input.size(1 if batch_first else 0) == 0:
                raise RuntimeError("Expected sequence length to be larger than 0 in RNN")
        states = tuple(hx) if isinstance(hx, (tuple, list)) else (hx,)
        _check_devices(input, list(states) + list(weights))
        _check_dtypes(cell.torch.class_name, input, list(states) + list(weights))
        per = len(weights) // (num_layers * (2 if bidirectional else 1))
        has_projection = per - 2 - 2 * bool(has_biases) == 1
        spec = _Spec(cell, num_layers, bidirectional, bool(has_biases),
                     float(dropout) if train else 0.0, packed=packed,
                     has_projection=has_projection)
        x = input.transpose(0, 1) if batch_first and packed is None else input
        output, *finals = _Stack.apply(spec, x, *states, *weights)
        if batch_first and packed is None:
            output = output.transpose(0, 1)
        return (output, *finals)
    return run


def _cell(cell):
    """PyTorch's op ``_VF.<cell.torch.op>_cell`` (one step) on numba_rnn's kernels."""
    name = cell.torch.class_name + "Cell"

    @_in_float32
    def run(input, hx, w_ih, w_hh, b_ih=None, b_hh=None):
        # PyTorch's order: sizes (check_rnn_cell_forward_input/_hidden), then devices,
        # then dtypes (its matrix products')
        states = tuple(hx) if isinstance(hx, (tuple, list)) else (hx,)
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
        _check_devices(input, [*states, w_ih, w_hh, b_ih, b_hh])
        for a, b in ((input, w_ih), (states[0], w_hh)):
            if a.dtype != b.dtype:
                raise RuntimeError("mat1 and mat2 must have the same dtype, but got "
                                   f"{_type_name(a.dtype)} and {_type_name(b.dtype)}")
        _check_dtypes(name, input, [*states, w_ih, w_hh, b_ih, b_hh])
        weights = [w_ih, w_hh] + ([b_ih, b_hh] if b_ih is not None else [])
        spec = _Spec(cell, 1, False, b_ih is not None, 0.0)
        output, *finals = _Stack.apply(spec, input.unsqueeze(0),
                                       *[s.unsqueeze(0) for s in states], *weights)
        finals = [f.squeeze(0) for f in finals]
        return tuple(finals) if len(finals) > 1 else finals[0]
    return run


#: Every registered cell that PyTorch has an op for (Cell.torch), answered: its layer
#: op and its one-step op.
_VF = types.SimpleNamespace(**{
    name: run for cell in cells.CELLS.values() if cell.torch is not None
    for name, run in ((cell.torch.op, _layers(cell)), (cell.torch.op + "_cell", _cell(cell)))})

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
