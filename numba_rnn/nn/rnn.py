"""Recurrent layers and cells with ``torch.nn``'s signatures, parameter names and gate
order.

Every argument is checked here, before any kernel runs (API.md, "Bad input"); the work is
done by ``numba_rnn.recurrent`` and recorded in the autograd graph as one operation whose
outputs are the output sequence and the final states. A cell is a one-step, one-layer run
of the same machinery.
"""
import math
import re

import numpy as np

from .. import backend, random, recurrent
from ..backend import xp
from ..kernels import cells
from ..tensor import Tensor, _to_storage, _wrap, record_multi
from .checks import (check_bool, check_choice, check_dtype, check_int, check_probability,
                     check_real)
from .module import Module, Parameter
from .utils import rnn as _packing
from .utils.rnn import PackedSequence

class EmptySequenceError(ValueError, RuntimeError):
    """A sequence of length 0: bad input (ValueError) that PyTorch refuses with a
    RuntimeError."""

#: Options beyond torch.nn's, with the values that mean "off" (also what a module saved
#: whole before they existed gets when loaded); ``forget_bias`` is None for every layer
#: whose cell has no such option (Cell.options), as it always was.
_OPTION_DEFAULTS = {"zoneout": 0.0, "weight_dropout": 0.0, "forget_bias": None}


def _kind(name):
    """"weight_ih" from "weight_ih_l1_reverse" (or from a cell's "weight_ih")."""
    return re.sub(r"_l\d+(_reverse)?$", "", name)


class _Recurrent(Module):
    """What layers and cells share: parameters, argument checks and the recorded call.
    Everything about the cell comes from its ``Cell`` (kernels/cells.py): this code
    asks no cell's name."""

    def _init_common(self, cell, input_size, hidden_size, bias, dtype):
        self._cell = cells.lookup(cell)
        self.mode = self._cell.name
        self.input_size = check_int("input_size", input_size, 1)
        self.hidden_size = check_int("hidden_size", hidden_size, 1)
        # the flag, kept apart too: a layer-normalized LSTM cell's parameter ``bias``
        # takes the name ``bias`` over (as torch.nn.Linear's does)
        self.bias = self._has_bias = check_bool("bias", bias)
        self.dtype = check_dtype(dtype)
        for name, default in _OPTION_DEFAULTS.items():
            setattr(self, name, default)

    def _init_options(self, options):
        """The cell's own options (Cell.options; a layer-normalized LSTM's forget_bias):
        finite real numbers, their defaults where not given."""
        known = dict(self._cell.options)
        for name in options:
            if name not in known:
                raise TypeError(f"{name}: not an option of the {self.mode} cell (its "
                                f"options: {', '.join(known) or 'none'})")
        for name, default in known.items():
            given = options.get(name, default)
            value = check_real(name, given)
            if not math.isfinite(value):
                raise ValueError(f"{name}: expected a finite number, got {given}")
            setattr(self, name, value)

    def _cell_options(self):
        return {name: getattr(self, name) for name, _ in self._cell.options}

    def _options_repr(self, names):
        """", name=value" for each of the cell's options away from its default, where a
        parameter that takes options (a function init) is among ``names``."""
        fed = {p.kind for p in self._cell.parameters if callable(p.init)}
        if not any(_kind(name) in fed for name in names):
            return ""
        return "".join(f", {name}={getattr(self, name)}" for name, default in self._cell.options
                       if getattr(self, name) != default)

    def __getstate__(self):
        # the cell's kernels are code, not state: rebuilt from ``mode`` (nr.save of a
        # whole module, pickle, copy.deepcopy)
        state = dict(self.__dict__)
        state.pop("_cell", None)
        return state

    def __setstate__(self, state):
        # options a module saved whole by an earlier version does not have
        for name, default in _OPTION_DEFAULTS.items():
            state.setdefault(name, default)
        if "_has_bias" not in state:
            state["_has_bias"] = bool(state.get("bias", True))
        self.__dict__.update(state)
        self.__dict__["_cell"] = cells.lookup(self.__dict__["mode"])

    def _make_parameters(self, suffix, layer_input, state_size, proj_size):
        """Registers one layer-direction's parameters, as the cell's layout
        (Cell.parameters) gives them: in its order, with its shapes and initial values
        (U(-1/sqrt(H), 1/sqrt(H)) for "uniform", PyTorch's); returns their names."""
        hidden = self.hidden_size
        sizes = {"gates": self._cell.num_gates * hidden, "hidden": hidden,
                 "input": layer_input, "state": state_size, "proj": proj_size}
        bound = 1.0 / math.sqrt(hidden)
        initials = {
            "uniform": lambda shape: random.uniform(-bound, bound, shape, self.dtype),
            "ones": lambda shape: np.ones(shape, dtype=self.dtype),
            "zeros": lambda shape: np.zeros(shape, dtype=self.dtype),
        }
        present = {None: True, "bias": self._has_bias, "projection": bool(proj_size)}
        names = []
        for param in self._cell.parameters:
            if not present[param.when]:
                continue
            shape = tuple(sizes[d] for d in param.shape)
            if callable(param.init):
                value = np.asarray(param.init(shape, self.dtype, hidden, self._cell_options()),
                                   dtype=self.dtype)
            else:
                value = initials[param.init](shape)
            name = param.kind + suffix
            setattr(self, name, Parameter(value))
            names.append(name)
        return names

    def _field(self, name):
        """The recurrent.LayerParams field of the parameter ``name``."""
        kind = _kind(name)
        return next(p.field for p in self._cell.parameters if p.kind == kind)

    def _layer_params(self, names):
        """recurrent.LayerParams for the parameters ``names`` (zero biases where there
        are none)."""
        values = {self._field(name): getattr(self, name)._array for name in names}
        zeros = None
        for field in ("b_ih", "b_hh"):
            if field not in values:
                if zeros is None:
                    zeros = xp.zeros(values["w_ih"].shape[0], dtype=self.dtype)
                values[field] = zeros
        return recurrent.LayerParams(**values)

    def _as_checked_tensor(self, name, value):
        """``value`` (a Tensor or anything array-like) as a Tensor of the module's dtype."""
        if not isinstance(value, Tensor):
            try:
                value = _wrap(_to_storage(value))
            except (TypeError, ValueError) as exc:
                raise TypeError(
                    f"{name}: expected a Tensor or an array, got {type(value).__name__} ({exc})"
                ) from None
        if value.dtype != self.dtype:
            raise TypeError(
                f"{name}: expected dtype {self.dtype} (the module's), got {value.dtype}"
            )
        return value

    def _check_states(self, hx, expected_shapes, what):
        """The initial states as Tensors of ``expected_shapes`` (one per state), or None."""
        names = [state + "_0" for state in self._cell.state_names]
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
        states = []
        for name, value, expected, meaning in zip(names, values, expected_shapes, what):
            state = self._as_checked_tensor(name, value)
            if state.shape != expected:
                raise ValueError(f"{name}: expected shape {expected} ({meaning}), got {state.shape}")
            states.append(state)
        return states

    def _record(self, x, x_tm, states, states0, layer_names, lengths, dropout,
                x_from_tm, state_from, state_to):
        """Run the stack on time-major device arrays and record it as one operation.

        x: the input Tensor; x_tm its data as (T,B,I); states: the state Tensors or None;
        states0: their data as (L*D,B,H) arrays; layer_names: per layer, per direction,
        the parameter names; x_from_tm, state_from, state_to: the layout maps between the
        user's shapes and the time-major ones.
        """
        cell = self._cell
        layers = [[self._layer_params(names) for names in directions]
                  for directions in layer_names]
        params = [getattr(self, name) for directions in layer_names
                  for names in directions for name in names]
        output, states_n, cache = recurrent.stack_forward(
            cell, x_tm, states0, layers, lengths=lengths, dropout=dropout,
            random=(lambda shape: random.device_uniform(shape, self.dtype)) if dropout > 0.0
            else None, zoneout=self.zoneout,
            weight_dropout=self.weight_dropout,
            draw=random.device_uniform if self.training else None)
        # which kernels ran (recurrent.PATHS), per layer and direction: readable, and
        # forced with recurrent.force_path
        self.last_paths = [[c.path for c in directions] for directions in cache.layers]

        def backward(grads):
            doutput, dstates_n = grads[0], grads[1:]
            dx, dstates0, dlayers = recurrent.stack_backward(
                cell, cache, layers,
                None if doutput is None else x_from_tm(doutput, inverse=True),
                [None if d is None else state_to(d) for d in dstates_n])
            result = [x_from_tm(dx)]
            if states is not None:
                result += [state_from(d) for d in dstates0]
            for directions, grad_dirs in zip(layer_names, dlayers):
                for names, layer_grads in zip(directions, grad_dirs):
                    result += [getattr(layer_grads, self._field(name)) for name in names]
            return result

        inputs = [x, *(states or []), *params]
        return record_multi([x_from_tm(output), *(state_from(s) for s in states_n)],
                            inputs, backward)


class RNNBase(_Recurrent):
    """The machinery that every recurrent layer shares: options, parameters, checks, the
    call. ``mode``: a registered cell's name or a Cell (kernels/cells.py); ``options``:
    the cell's own (Cell.options)."""

    def __init__(self, mode, input_size, hidden_size, num_layers=1, bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, proj_size=0,
                 dtype="float32", zoneout=0.0, weight_dropout=0.0, **options):
        super().__init__()
        self._init_common(mode, input_size, hidden_size, bias, dtype)
        self.nonlinearity = None
        self.zoneout = check_probability("zoneout", zoneout)
        self.weight_dropout = check_probability("weight_dropout", weight_dropout)
        self._init_options(options)
        self.num_layers = check_int("num_layers", num_layers, 1)
        self.batch_first = check_bool("batch_first", batch_first)
        self.bidirectional = check_bool("bidirectional", bidirectional)
        self.dropout = check_probability("dropout", dropout)
        self.proj_size = check_int("proj_size", proj_size, 0)
        if self.proj_size >= self.hidden_size:
            raise ValueError(
                f"proj_size: expected a value smaller than hidden_size ({self.hidden_size}), "
                f"got {self.proj_size}"
            )
        if self.proj_size and not self._cell.has_projection:
            raise ValueError(f"proj_size: only LSTM supports a projection (the "
                             f"{self.mode} cell has none), got {self.proj_size}")
        if self.proj_size and self.zoneout:
            raise ValueError(f"zoneout: not supported with proj_size (the projected state "
                             f"is not zoned out); got zoneout={self.zoneout} with "
                             f"proj_size={self.proj_size}")

        self._num_dirs = 2 if self.bidirectional else 1
        self._out_size = self.proj_size or self.hidden_size
        self._layer_names = []
        for k in range(self.num_layers):
            layer_input = self.input_size if k == 0 else self._out_size * self._num_dirs
            self._layer_names.append([
                self._make_parameters(f"_l{k}" + ("_reverse" if d else ""), layer_input,
                                      self._out_size, self.proj_size)
                for d in range(self._num_dirs)
            ])

    def flatten_parameters(self):
        """A no-op, for code written against cuDNN-backed PyTorch layers."""

    def extra_repr(self):
        text = f"{self.input_size}, {self.hidden_size}"
        for name, default in (("num_layers", 1), ("bias", True), ("batch_first", False),
                              ("dropout", 0.0), ("bidirectional", False), ("proj_size", 0),
                              (None, None), ("zoneout", 0.0), ("weight_dropout", 0.0)):
            if name is None:  # the cell's options, where a parameter takes them
                text += self._options_repr(self._layer_names[0][0])
            elif getattr(self, name) != default:
                text += f", {name}={getattr(self, name)}"
        if self.nonlinearity not in (None, "tanh"):
            text += f", nonlinearity={self.nonlinearity!r}"
        if self.dtype != np.float32:
            text += f", dtype={self.dtype}"
        return text

    def _check_input(self, input, batch_first):
        """Returns (input tensor, batched?, T, B)."""
        x = self._as_checked_tensor("input", input)
        if x.ndim not in (2, 3):
            layout = "(B, T, I)" if batch_first else "(T, B, I)"
            raise ValueError(
                f"input: expected a 3-D {layout} or 2-D (T, I) tensor, got shape {x.shape}"
            )
        if x.shape[-1] != self.input_size:
            raise ValueError(
                f"input: expected {self.input_size} features (input_size) in the last "
                f"dimension, got shape {x.shape}"
            )
        batched = x.ndim == 3
        if not batched:
            steps, batch = x.shape[0], 1
        elif batch_first:
            batch, steps = x.shape[:2]
        else:
            steps, batch = x.shape[:2]
        if steps < 1:
            raise EmptySequenceError(
                "input: Expected sequence length to be larger than 0 in RNN (a sequence of "
                f"at least one step), got shape {x.shape}")
        return x, batched, steps, batch  # a batch of 0 gives empty outputs, as in PyTorch

    def _check_lengths(self, lengths, steps, batch):
        if lengths is None:
            return None
        if isinstance(lengths, Tensor):
            lengths = lengths.numpy()
        values = np.asarray(backend.to_host(lengths) if backend.is_device_array(lengths)
                            else lengths)
        if values.ndim != 1 or values.dtype.kind not in "iu" and not (
                values.dtype.kind == "f" and np.all(values == np.round(values))):
            raise TypeError(
                f"lengths: expected one integer per batch entry, got {values.dtype} "
                f"values of shape {values.shape}"
            )
        if values.shape[0] != batch:
            raise ValueError(
                f"lengths: expected {batch} lengths (one per batch entry), got {values.shape[0]}"
            )
        if values.size and (values.min() < 1 or values.max() > steps):
            raise ValueError(
                f"lengths: expected every length in [1, {steps}] (the sequence length), "
                f"got {values.tolist()}"
            )
        return values.astype(np.int64)

    def forward(self, input, hx=None, lengths=None):
        """``output, h_n`` (LSTM: ``output, (h_n, c_n)``). ``input`` may be a
        PackedSequence; the output is then one too, packed as the input (``batch_first``
        does not apply to it), and the states are in the input's original batch order."""
        if isinstance(input, PackedSequence):
            return self._forward_packed(input, hx, lengths)
        return self._forward(input, hx, lengths, self.batch_first)

    def _forward_packed(self, packed, hx, lengths):
        """Unpack (recorded), run the padded batch with its lengths, pack the output as
        the input was packed (recorded): one time loop for both."""
        if lengths is not None:
            raise ValueError("lengths: a PackedSequence carries its own lengths; pass "
                             "lengths=None with it")
        data = self._as_checked_tensor("input", packed.data)
        if data.ndim != 2 or data.shape[1] != self.input_size:
            raise ValueError(
                f"input: expected PackedSequence data of shape (N, {self.input_size}) "
                f"(input_size {self.input_size}), got shape {data.shape}"
            )
        padded, lengths = _packing.pad_packed_sequence(packed._replace(data=data))
        output, states = self._forward(padded, hx, lengths, False)
        return _packing._pack_like(output, packed), states

    def _forward(self, input, hx, lengths, batch_first):
        x, batched, steps, batch = self._check_input(input, batch_first)
        layers_dirs = self.num_layers * self._num_dirs
        if batched:
            shapes = [(layers_dirs, batch, self._out_size), (layers_dirs, batch, self.hidden_size)]
        else:
            shapes = [(layers_dirs, self._out_size), (layers_dirs, self.hidden_size)]
        size_words = ["num_layers * num_directions, " + ("batch, " if batched else "") + w
                      for w in ("proj_size or hidden_size" if self.proj_size else "hidden_size",
                                "hidden_size")]
        states = self._check_states(hx, shapes, size_words)
        lengths = self._check_lengths(lengths, steps, batch)

        def x_from_tm(a, inverse=False):
            """Time-major (T,B,N) to the user's layout, or back with inverse=True."""
            if not batched:
                return a[:, None, :] if inverse else a[:, 0, :]
            return xp.ascontiguousarray(xp.swapaxes(a, 0, 1)) if batch_first else a

        def state_from(a):
            return a if batched else a[:, 0, :]

        def state_to(a):
            return a if batched else a[:, None, :]

        if states is None:
            states0 = tuple(xp.zeros((layers_dirs, batch, shape[-1]), dtype=self.dtype)
                            for shape in shapes[: self._cell.num_states])
        else:
            states0 = tuple(state_to(s._array) for s in states)
        dropout = self.dropout if self.training else 0.0
        results = self._record(x, x_from_tm(x._array, inverse=True), states, states0,
                               self._layer_names, lengths, dropout, x_from_tm, state_from,
                               state_to)
        return results[0], (results[1] if len(results) == 2 else tuple(results[1:]))


class LSTM(RNNBase):
    """Long short-term memory layers, as ``torch.nn.LSTM``: ``output, (h_n, c_n) =
    lstm(input, (h_0, c_0), lengths=None)``; beyond it, ``zoneout`` and
    ``weight_dropout`` (DropConnect on W_hh)."""

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, proj_size=0, dtype="float32", zoneout=0.0,
                 weight_dropout=0.0):
        super().__init__("lstm", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, proj_size, dtype, zoneout=zoneout,
                         weight_dropout=weight_dropout)


class GRU(RNNBase):
    """Gated recurrent unit layers, as ``torch.nn.GRU``: ``output, h_n = gru(input, h_0)``;
    beyond it, ``zoneout`` and ``weight_dropout``."""

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, dtype="float32", zoneout=0.0,
                 weight_dropout=0.0):
        super().__init__("gru", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, 0, dtype, zoneout=zoneout,
                         weight_dropout=weight_dropout)


class RNN(RNNBase):
    """Elman RNN layers with tanh or ReLU, as ``torch.nn.RNN``; beyond it, ``zoneout``
    and ``weight_dropout``."""

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, dtype="float32",
                 zoneout=0.0, weight_dropout=0.0):
        check_choice("nonlinearity", nonlinearity, ("tanh", "relu"))
        super().__init__("rnn_" + nonlinearity, input_size, hidden_size, num_layers, bias,
                         batch_first, dropout, bidirectional, 0, dtype, zoneout=zoneout,
                         weight_dropout=weight_dropout)
        self.nonlinearity = nonlinearity


class LayerNormLSTM(RNNBase):
    """LSTM layers with layer normalization (Ba et al. 2016), which cuDNN and torch.nn do
    not have: ``output, (h_n, c_n) = lstm(input, (h_0, c_0), lengths=None)``, with

        a_t = LN(W_ih x_t; γ_ih) + LN(W_hh h_{t-1}; γ_hh) + b     (over all 4H)
        c_t = f ⊙ c_{t-1} + i ⊙ g,  h_t = o ⊙ tanh(LN(c_t; γ_c, β_c))

    Parameters per layer and direction: ``weight_ih_l{k}``, ``weight_hh_l{k}``,
    ``bias_l{k}`` (4H; ``forget_bias`` on the forget gate, zeros elsewhere),
    ``gamma_ih_l{k}``, ``gamma_hh_l{k}`` (ones), ``gamma_c_l{k}`` (ones), ``beta_c_l{k}``
    (zeros), with ``_reverse`` for the second direction."""

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, forget_bias=1.0, zoneout=0.0,
                 weight_dropout=0.0, dtype="float32"):
        super().__init__("ln_lstm", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, 0, dtype, zoneout=zoneout,
                         weight_dropout=weight_dropout, forget_bias=forget_bias)


class LayerNormGRU(RNNBase):
    """GRU layers with layer normalization: ``output, h_n = gru(input, h_0)``, with

        gx = LN(W_ih x_t; γ_ih) + b_ih,  gh = LN(W_hh h_{t-1}; γ_hh) + b_hh  (over 3H)

    then torch.nn.GRU's gates. Parameters per layer and direction: ``weight_ih_l{k}``,
    ``weight_hh_l{k}``, ``bias_ih_l{k}``, ``bias_hh_l{k}`` (as torch.nn.GRU's),
    ``gamma_ih_l{k}``, ``gamma_hh_l{k}`` (ones)."""

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, zoneout=0.0, weight_dropout=0.0,
                 dtype="float32"):
        super().__init__("ln_gru", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, 0, dtype, zoneout=zoneout,
                         weight_dropout=weight_dropout)


class RNNCellBase(_Recurrent):
    """One step of one layer: ``h_1 = cell(input, h_0)`` on the layers' kernels.
    ``mode``: a registered cell's name or a Cell; ``options``: the cell's own."""

    def __init__(self, mode, input_size, hidden_size, bias=True, dtype="float32",
                 **options):
        super().__init__()
        self._init_common(mode, input_size, hidden_size, bias, dtype)
        self.nonlinearity = None
        self._init_options(options)
        self._names = self._make_parameters("", input_size, self.hidden_size, 0)

    def extra_repr(self):
        text = f"{self.input_size}, {self.hidden_size}"
        if not self._has_bias:
            text += ", bias=False"
        text += self._options_repr(self._names)
        if self.nonlinearity not in (None, "tanh"):
            text += f", nonlinearity={self.nonlinearity!r}"
        return text

    def forward(self, input, hx=None):
        x = self._as_checked_tensor("input", input)
        if x.ndim not in (1, 2) or x.shape[-1] != self.input_size:
            raise ValueError(
                f"input: expected a 2-D (B, {self.input_size}) or 1-D ({self.input_size},) "
                f"tensor (input_size {self.input_size}), got shape {x.shape}"
            )
        batched = x.ndim == 2
        batch = x.shape[0] if batched else 1  # 0 rows give empty states, as in PyTorch
        shape = (batch, self.hidden_size) if batched else (self.hidden_size,)
        meaning = "batch, hidden_size" if batched else "hidden_size"
        states = self._check_states(hx, [shape, shape], [meaning, meaning])

        def x_from_tm(a, inverse=False):
            """(1,B,N) to the user's (B,N) or (N,), or back with inverse=True."""
            if inverse:
                return a.reshape(1, batch, a.shape[-1])
            return a[0] if batched else a[0, 0]

        def state_from(a):
            return a[0] if batched else a[0, 0]

        def state_to(a):
            return a.reshape(1, batch, a.shape[-1])

        if states is None:
            states0 = tuple(xp.zeros((1, batch, self.hidden_size), dtype=self.dtype)
                            for _ in range(self._cell.num_states))
        else:
            states0 = tuple(state_to(s._array) for s in states)
        results = self._record(x, x_from_tm(x._array, inverse=True), states, states0,
                               [[self._names]], None, 0.0, x_from_tm, state_from, state_to)
        states_1 = results[1:]
        return states_1[0] if len(states_1) == 1 else tuple(states_1)


class LSTMCell(RNNCellBase):
    """One LSTM step, as ``torch.nn.LSTMCell``: ``h_1, c_1 = cell(input, (h_0, c_0))``."""

    def __init__(self, input_size, hidden_size, bias=True, dtype="float32"):
        super().__init__("lstm", input_size, hidden_size, bias, dtype)


class GRUCell(RNNCellBase):
    """One GRU step, as ``torch.nn.GRUCell``: ``h_1 = cell(input, h_0)``."""

    def __init__(self, input_size, hidden_size, bias=True, dtype="float32"):
        super().__init__("gru", input_size, hidden_size, bias, dtype)


class RNNCell(RNNCellBase):
    """One Elman RNN step, as ``torch.nn.RNNCell``: ``h_1 = cell(input, h_0)``."""

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh",
                 dtype="float32"):
        check_choice("nonlinearity", nonlinearity, ("tanh", "relu"))
        super().__init__("rnn_" + nonlinearity, input_size, hidden_size, bias, dtype)
        self.nonlinearity = nonlinearity


class LayerNormLSTMCell(RNNCellBase):
    """One step of LayerNormLSTM: ``h_1, c_1 = cell(input, (h_0, c_0))``, parameters
    ``weight_ih``, ``weight_hh``, ``bias``, ``gamma_ih``, ``gamma_hh``, ``gamma_c``,
    ``beta_c``."""

    def __init__(self, input_size, hidden_size, bias=True, forget_bias=1.0, dtype="float32"):
        super().__init__("ln_lstm", input_size, hidden_size, bias, dtype,
                         forget_bias=forget_bias)


class LayerNormGRUCell(RNNCellBase):
    """One step of LayerNormGRU: ``h_1 = cell(input, h_0)``, parameters ``weight_ih``,
    ``weight_hh``, ``bias_ih``, ``bias_hh``, ``gamma_ih``, ``gamma_hh``."""

    def __init__(self, input_size, hidden_size, bias=True, dtype="float32"):
        super().__init__("ln_gru", input_size, hidden_size, bias, dtype)


class RecurrentLayer(RNNBase):
    """Layers of any registered cell (kernels/cells.py: ``register``), on every kernel
    path: ``output, h_n = layer(input, hx, lengths=None)`` (``output, (h_n, c_n)`` for a
    cell of two states), with ``torch.nn``'s shapes and options. ``cell``: the Cell or
    its registered name; ``options``: the cell's own (Cell.options). Parameters per
    layer and direction as the cell's layout names them (``weight_ih_l{k}``, ...), with
    ``_reverse`` for the second direction."""

    def __init__(self, cell, input_size, hidden_size, num_layers=1, bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, proj_size=0,
                 dtype="float32", zoneout=0.0, weight_dropout=0.0, **options):
        super().__init__(cell, input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, proj_size, dtype, zoneout=zoneout,
                         weight_dropout=weight_dropout, **options)


class RecurrentCell(RNNCellBase):
    """One step of any registered cell: ``h_1 = cell(input, h_0)`` (``h_1, c_1`` for
    two states), parameters ``weight_ih``, ``weight_hh``, ... as the cell's layout
    names them."""

    def __init__(self, cell, input_size, hidden_size, bias=True, dtype="float32",
                 **options):
        super().__init__(cell, input_size, hidden_size, bias, dtype, **options)
