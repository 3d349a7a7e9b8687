"""Recurrent layers with ``torch.nn``'s signatures, parameter names and gate order.

Every argument is checked here, before any kernel runs (API.md, "Bad input"); the work is
done by ``numba_rnn.recurrent`` and recorded in the autograd graph as one operation whose
outputs are the output sequence and the final states.
"""
import math
import numbers

import numpy as np

from .. import backend, random, recurrent
from ..backend import xp
from ..kernels import CELLS
from ..tensor import Tensor, _to_storage, record_multi
from .module import Module, Parameter


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value}")
    return int(value)


def _check_bool(name, value):
    if not isinstance(value, bool):
        raise TypeError(f"{name}: expected True or False, got {type(value).__name__} {value!r}")
    return value


def _check_dtype(dtype):
    """The layer's storage dtype: float32 (also for None, PyTorch's default) or float64."""
    try:
        resolved = np.dtype("float32" if dtype is None else dtype)
    except TypeError:
        resolved = None
    if resolved not in backend.FLOAT_DTYPES:
        raise TypeError(f"dtype: expected 'float32' or 'float64', got {dtype!r}")
    return resolved


class RNNBase(Module):
    """The machinery that LSTM and GRU share: options, parameters, checks and the call."""

    def __init__(self, mode, input_size, hidden_size, num_layers=1, bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, proj_size=0,
                 dtype="float32"):
        super().__init__()
        self.mode = mode
        self._cell = CELLS[mode]
        self.input_size = _check_int("input_size", input_size, 1)
        self.hidden_size = _check_int("hidden_size", hidden_size, 1)
        self.num_layers = _check_int("num_layers", num_layers, 1)
        self.bias = _check_bool("bias", bias)
        self.batch_first = _check_bool("batch_first", batch_first)
        self.bidirectional = _check_bool("bidirectional", bidirectional)
        if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real):
            raise TypeError(f"dropout: expected a number in [0, 1], got {dropout!r}")
        if not 0.0 <= dropout <= 1.0:
            raise ValueError(f"dropout: expected a number in [0, 1], got {dropout}")
        self.dropout = float(dropout)
        self.proj_size = _check_int("proj_size", proj_size, 0)
        if self.proj_size >= self.hidden_size:
            raise ValueError(
                f"proj_size: expected a value smaller than hidden_size ({self.hidden_size}), "
                f"got {self.proj_size}"
            )
        self.dtype = _check_dtype(dtype)
        for option, value, default in (
            ("bidirectional", self.bidirectional, False),
            ("dropout", self.dropout, 0.0),
            ("proj_size", self.proj_size, 0),
            ("bias", self.bias, True),
        ):
            if value != default:
                raise NotImplementedError(
                    f"{option}={value!r} is not supported yet; only {option}={default!r}"
                )

        gates = self._cell.num_gates * self.hidden_size
        bound = 1.0 / math.sqrt(self.hidden_size)
        for k in range(self.num_layers):
            layer_input = self.input_size if k == 0 else self.hidden_size
            for name, shape in (
                (f"weight_ih_l{k}", (gates, layer_input)),
                (f"weight_hh_l{k}", (gates, self.hidden_size)),
                (f"bias_ih_l{k}", (gates,)),
                (f"bias_hh_l{k}", (gates,)),
            ):
                setattr(self, name, Parameter(random.uniform(-bound, bound, shape, self.dtype)))

    def flatten_parameters(self):
        """A no-op, for code written against cuDNN-backed PyTorch layers."""

    def extra_repr(self):
        text = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            text += f", num_layers={self.num_layers}"
        if self.batch_first:
            text += ", batch_first=True"
        if self.dtype != "float32":
            text += f", dtype={self.dtype}"
        return text

    # ------------------------------------------------------------------ checks
    def _as_checked_tensor(self, name, value):
        """``value`` (a Tensor or anything array-like) as a Tensor of the layer's dtype."""
        if not isinstance(value, Tensor):
            try:
                value = Tensor(_to_storage(value))
            except (TypeError, ValueError) as exc:
                raise TypeError(
                    f"{name}: expected a Tensor or an array, got {type(value).__name__} ({exc})"
                ) from None
        if value.dtype != self.dtype:
            raise TypeError(
                f"{name}: expected dtype {self.dtype} (the layer's), got {value.dtype}"
            )
        return value

    def _check_input(self, input):
        """Returns (input tensor, batched?, T, B)."""
        x = self._as_checked_tensor("input", input)
        if x.ndim not in (2, 3):
            layout = "(B, T, I)" if self.batch_first else "(T, B, I)"
            raise ValueError(
                f"input: expected a 3-D {layout} or 2-D (T, I) tensor, got shape {x.shape}"
            )
        if x.shape[-1] != self.input_size:
            raise ValueError(
                f"input: expected {self.input_size} features (input_size) in the last "
                f"dimension, got shape {x.shape}"
            )
        batched = x.ndim == 3
        steps, batch = (x.shape[1], x.shape[0]) if batched and self.batch_first else (
            x.shape[0], x.shape[1] if batched else 1)
        if steps < 1:
            raise ValueError(f"input: expected a sequence of at least one step, got shape {x.shape}")
        if batch < 1:
            raise ValueError(f"input: expected a batch of at least one sequence, got shape {x.shape}")
        return x, batched, steps, batch

    def _check_states(self, hx, batched, batch):
        """The initial states as Tensors (L,B,H), or (L,H) when unbatched, or None."""
        names = ("h_0", "c_0")[: self._cell.num_states]
        if hx is None:
            return None
        if len(names) > 1:
            if not isinstance(hx, (tuple, list)) or len(hx) != len(names):
                raise TypeError(
                    f"hx: expected a tuple ({', '.join(names)}) for {type(self).__name__}, "
                    f"got {type(hx).__name__}"
                    + (f" of length {len(hx)}" if isinstance(hx, (tuple, list)) else "")
                )
            values = tuple(hx)
        else:
            if isinstance(hx, tuple):
                raise TypeError(
                    f"hx: expected one tensor h_0 for {type(self).__name__}, "
                    f"got a tuple of {len(hx)}"
                )
            values = (hx,)
        expected = (self.num_layers, batch, self.hidden_size) if batched else (
            self.num_layers, self.hidden_size)
        states = []
        for name, value in zip(names, values):
            state = self._as_checked_tensor(name, value)
            if state.shape != expected:
                raise ValueError(
                    f"{name}: expected shape {expected} (num_layers, "
                    f"{'batch, ' if batched else ''}hidden_size), got {state.shape}"
                )
            states.append(state)
        return states

    # -------------------------------------------------------------------- call
    def forward(self, input, hx=None, lengths=None):
        if lengths is not None:
            raise NotImplementedError("lengths: variable-length batches are not supported yet")
        x, batched, steps, batch = self._check_input(input)
        states = self._check_states(hx, batched, batch)

        cell = self._cell
        shape_of_state = (self.num_layers, batch, self.hidden_size)
        params = list(self.parameters())
        layers = [recurrent.LayerParams(*(p.data for p in params[4 * k: 4 * k + 4]))
                  for k in range(self.num_layers)]

        def to_time_major(a):
            if not batched:
                return a[:, None, :]
            return xp.ascontiguousarray(xp.swapaxes(a, 0, 1)) if self.batch_first else a

        def from_time_major(a):
            if not batched:
                return a[:, 0, :]
            return xp.ascontiguousarray(xp.swapaxes(a, 0, 1)) if self.batch_first else a

        if states is None:
            states0 = tuple(xp.zeros(shape_of_state, dtype=self.dtype)
                            for _ in range(cell.num_states))
        else:
            states0 = tuple(s.data.reshape(shape_of_state) for s in states)
        output, states_n, caches = recurrent.stack_forward(
            cell, to_time_major(x.data), states0, layers)

        def state_layout(a):
            return a if batched else a[:, 0, :]

        def backward(grads):
            doutput, dstates_n = grads[0], grads[1:]
            dx, dstates0, dlayers = recurrent.stack_backward(
                cell, caches, layers,
                None if doutput is None else to_time_major(doutput),
                [None if d is None else d.reshape(shape_of_state) for d in dstates_n],
            )
            dstates = [state_layout(d) for d in dstates0] if states is not None else []
            return [from_time_major(dx), *dstates, *(g for layer in dlayers for g in layer)]

        inputs = [x, *(states or []), *params]
        results = record_multi(
            [from_time_major(output), *(state_layout(s) for s in states_n)], inputs, backward)
        return results[0], (results[1] if len(results) == 2 else tuple(results[1:]))


class LSTM(RNNBase):
    """Long short-term memory layers, as ``torch.nn.LSTM``: ``output, (h_n, c_n) =
    lstm(input, (h_0, c_0))``."""

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, proj_size=0, dtype="float32"):
        super().__init__("lstm", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, proj_size, dtype)


class GRU(RNNBase):
    """Gated recurrent unit layers, as ``torch.nn.GRU``: ``output, h_n = gru(input, h_0)``."""

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, dtype="float32"):
        super().__init__("gru", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, 0, dtype)
