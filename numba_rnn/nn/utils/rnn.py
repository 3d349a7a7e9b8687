"""``torch.nn.utils.rnn`` in numba_rnn: packed sequences.

A ``PackedSequence`` holds a batch of sequences of different lengths time step by time
step, longest first: ``data`` is (N, *) with N the sum of the lengths, ``batch_sizes[t]``
the number of sequences still running at step t (an int64 Tensor on the host, as PyTorch
keeps it on the CPU), and ``sorted_indices``/``unsorted_indices`` the permutation from the
caller's batch order to the length order and back (None when the batch came sorted).

Packing and unpacking are gathers and scatters on whole arrays (``xp``), recorded for
autograd: gradients flow from packed data to the padded tensor and back. The index
arrays are computed on the host from the lengths, which live there too.
"""
from collections import namedtuple

import numpy as np

from ... import backend
from ...backend import xp
from ...tensor import Tensor, _record, _to_arguments, _to_storage, _wrap
from ..checks import check_bool, check_choice

__all__ = ["PackedSequence", "pack_padded_sequence", "pad_packed_sequence", "pad_sequence",
           "pack_sequence", "unpad_sequence", "unpack_sequence", "invert_permutation"]


class PackingError(ValueError, RuntimeError):
    """Malformed lengths or packed data: a ValueError, as bad input is in numba_rnn, and a
    RuntimeError, as PyTorch raises for the same calls."""


_NOT_SORTED = ("`lengths` array must be sorted in decreasing order when `enforce_sorted` is "
               "True. You can pass `enforce_sorted=False` to pack_padded_sequence and/or "
               "pack_sequence to sidestep this requirement")


def _host_tensor(values):
    """An int64 Tensor on the host (NumPy storage, also with CuPy), as PyTorch keeps
    ``batch_sizes`` and the lengths on the CPU."""
    return _wrap(np.ascontiguousarray(values, dtype=np.int64))


def _host_ints(value, name):
    """``value`` (a list, an array, a Tensor, a CPU torch tensor) as a 1-D host int64
    NumPy array."""
    if isinstance(value, Tensor):
        values = value.numpy()
    elif type(value).__module__.startswith("torch") and hasattr(value, "detach"):
        values = value.detach().cpu().numpy()
    elif backend.is_device_array(value):
        values = np.asarray(backend.to_host(value))
    else:
        try:
            values = np.asarray(value)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name}: expected a list or 1-D tensor of integers, got "
                            f"{type(value).__name__} ({exc})") from None
    if values.ndim != 1 or not (values.dtype.kind in "iu" or (
            values.dtype.kind == "f" and np.all(values == np.round(values)))):
        raise TypeError(f"{name}: expected a list or 1-D tensor of integers, got "
                        f"{values.dtype} values of shape {values.shape}")
    return values.astype(np.int64)


def invert_permutation(permutation):
    """The inverse of ``permutation`` (a 1-D int64 Tensor, or None), as PyTorch's."""
    if permutation is None:
        return None
    perm = permutation._array if isinstance(permutation, Tensor) else _to_storage(permutation)
    inverse = xp.empty_like(perm)
    inverse[perm] = xp.arange(perm.shape[0], dtype=perm.dtype)
    return _wrap(inverse)


def _index_tensor(value, name):
    """A device int64 Tensor for sorted/unsorted indices (or None)."""
    if value is None:
        return None
    if isinstance(value, Tensor):
        if value.dtype == np.int64:
            return value
        array = value._array
    else:
        array = _to_storage(_host_ints(value, name))
    return _wrap(array.astype(np.int64, copy=False))


class PackedSequence(namedtuple("PackedSequence_", ["data", "batch_sizes", "sorted_indices",
                                                    "unsorted_indices"])):
    """A packed batch of variable-length sequences (see the module's docstring). Build it
    with ``pack_padded_sequence`` or ``pack_sequence``, not by hand; the constructor is
    PyTorch's: ``PackedSequence(data, batch_sizes, sorted_indices=None,
    unsorted_indices=None)`` (``unsorted_indices`` is computed when omitted), or
    ``PackedSequence((data, batch_sizes))``."""

    __slots__ = ()

    def __new__(cls, data, batch_sizes=None, sorted_indices=None, unsorted_indices=None):
        if batch_sizes is None:
            if not isinstance(data, (list, tuple)) or len(data) != 2:
                raise TypeError("PackedSequence: expected data and batch_sizes, or one "
                                f"(data, batch_sizes) pair, got {type(data).__name__}")
            data, batch_sizes = data
        if not isinstance(data, Tensor):
            data = _wrap(_to_storage(data))
        if not (isinstance(batch_sizes, Tensor) and isinstance(batch_sizes._array, np.ndarray)
                and batch_sizes.dtype == np.int64 and batch_sizes.ndim == 1):
            batch_sizes = _host_tensor(_host_ints(batch_sizes, "batch_sizes"))
        sorted_indices = _index_tensor(sorted_indices, "sorted_indices")
        if unsorted_indices is None:
            unsorted_indices = invert_permutation(sorted_indices)
        else:
            unsorted_indices = _index_tensor(unsorted_indices, "unsorted_indices")
        return super().__new__(cls, data, batch_sizes, sorted_indices, unsorted_indices)

    def to(self, *args, **kwargs):
        """``to(dtype)`` converts ``data`` (recorded for autograd; the indices stay
        int64); devices are numba_rnn's one device, so ``to("cuda")`` returns self."""
        dtype = _to_arguments(args, kwargs)
        if dtype is None or dtype == self.data.dtype:
            return self
        source = self.data.dtype
        data = _record(self.data._array.astype(dtype), (self.data,),
                       lambda g: (g.astype(source),), saves=False)
        return type(self)(data, self.batch_sizes, self.sorted_indices, self.unsorted_indices)

    def cuda(self, device=None):
        return self.to(device) if device is not None else self

    def cpu(self):
        return self

    def double(self):
        return self.to(np.float64)

    def float(self):
        return self.to(np.float32)

    @property
    def is_cuda(self):
        return not isinstance(self.data._array, np.ndarray)

    def is_pinned(self):
        return False


def _layout(batch_sizes):
    """(t, s) of every packed row: its time step and its position in length order."""
    batch_sizes = np.asarray(batch_sizes, dtype=np.int64)
    steps = np.repeat(np.arange(batch_sizes.shape[0]), batch_sizes)
    offsets = np.cumsum(batch_sizes) - batch_sizes
    positions = np.arange(steps.shape[0]) - np.repeat(offsets, batch_sizes)
    return steps, positions


def _gather(x, batch_sizes, order, batch_first):
    """Packed data (N, *) from the padded Tensor ``x``, recorded: row n is step t of the
    sequence in column ``order[s]`` (order None: s itself)."""
    steps, positions = _layout(batch_sizes)
    columns = positions if order is None else order[positions]
    key = (xp.asarray(columns), xp.asarray(steps)) if batch_first else (
        xp.asarray(steps), xp.asarray(columns))
    shape, dtype = x.shape, x.dtype

    def backward(g):
        full = xp.zeros(shape, dtype=dtype)
        full[key] = g  # every (t, b) is written at most once
        return (full,)

    return _record(x._array[key], (x,), backward, saves=False)


def _check_padded(input, name="input"):
    if not isinstance(input, Tensor):
        try:
            input = _wrap(_to_storage(input))
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name}: expected a Tensor or an array, got "
                            f"{type(input).__name__} ({exc})") from None
    if input.ndim < 2:
        raise ValueError(f"{name}: expected a padded batch of at least 2 dimensions, (T, B, *)"
                         f" or (B, T, *) with batch_first, got shape {input.shape}")
    return input


def pack_padded_sequence(input, lengths, batch_first=False, enforce_sorted=True):
    """Pack a padded batch ``input`` (T, B, *) ((B, T, *) with ``batch_first``) whose
    sequences have ``lengths`` (a list, an array, a Tensor or a CPU torch tensor). With
    ``enforce_sorted`` the lengths must be in decreasing order; otherwise the batch is
    sorted here and the permutation kept in the PackedSequence."""
    input = _check_padded(input)
    check_bool("batch_first", batch_first)
    check_bool("enforce_sorted", enforce_sorted)
    lengths = _host_ints(lengths, "lengths")
    batch, steps = input.shape[:2] if batch_first else input.shape[1::-1]
    if batch == 0:
        raise PackingError(f"input: expected a batch of at least one sequence, got shape "
                           f"{input.shape}")
    if lengths.shape[0] != batch:
        raise PackingError(f"Expected `len(lengths)` to be equal to batch_size, but got "
                           f"{lengths.shape[0]} (batch_size={batch})")
    if lengths.size and lengths.min() <= 0:
        raise PackingError("Length of all samples has to be greater than 0, but found an "
                           f"element in 'lengths' that is <= 0 (lengths {lengths.tolist()})")
    if lengths.size and lengths.max() > steps:
        raise PackingError(f"lengths: expected every length to be at most {steps} (the "
                           f"padded sequence length), got {lengths.tolist()}")
    if enforce_sorted:
        if np.any(np.diff(lengths) > 0):
            raise PackingError(f"{_NOT_SORTED} (lengths {lengths.tolist()})")
        order = None
    else:
        order = np.argsort(-lengths, kind="stable")
    sorted_lengths = lengths if order is None else lengths[order]
    batch_sizes = (sorted_lengths[None, :] > np.arange(sorted_lengths[0])[:, None]).sum(1)
    data = _gather(input, batch_sizes, order, batch_first)
    return PackedSequence(data, batch_sizes, None if order is None else _to_storage(order))


def _pack_like(padded, packed):
    """``padded`` (T, B, *), in the caller's batch order, packed as ``packed`` is (the
    same batch sizes and permutation): how a recurrent layer returns a PackedSequence."""
    order = (None if packed.sorted_indices is None
             else np.asarray(backend.to_host(packed.sorted_indices._array)))
    data = _gather(padded, packed.batch_sizes.numpy(), order, False)
    return PackedSequence(data, packed.batch_sizes, packed.sorted_indices,
                          packed.unsorted_indices)


def _check_packed(sequence):
    if not isinstance(sequence, PackedSequence):
        raise TypeError(f"sequence: expected a PackedSequence, got {type(sequence).__name__}")
    sizes = sequence.batch_sizes.numpy()
    data = sequence.data
    if sizes.ndim != 1 or sizes.size == 0 or sizes.min() < 1 or np.any(np.diff(sizes) > 0):
        raise PackingError(f"sequence: expected batch_sizes to be positive and non-increasing,"
                           f" got {sizes.tolist()}")
    if data.ndim < 1 or data.shape[0] != sizes.sum():
        raise PackingError(f"sequence: expected data with {int(sizes.sum())} rows (the sum of "
                           f"batch_sizes), got shape {data.shape}")
    order = None
    if sequence.sorted_indices is not None:
        order = np.asarray(backend.to_host(sequence.sorted_indices._array))
        if order.shape != (sizes[0],) or not np.array_equal(np.sort(order), np.arange(sizes[0])):
            raise PackingError(f"sequence: expected sorted_indices to be a permutation of "
                               f"{sizes[0]} entries, got {order.tolist()}")
    return sizes, order


def pad_packed_sequence(sequence, batch_first=False, padding_value=0.0, total_length=None):
    """The inverse of ``pack_padded_sequence``: ``(padded, lengths)``, padded (T, B, *)
    ((B, T, *) with ``batch_first``) in the batch order the sequence was packed from, T the
    longest length or ``total_length``, ``padding_value`` past each sequence's end;
    ``lengths`` an int64 host Tensor."""
    check_bool("batch_first", batch_first)
    sizes, order = _check_packed(sequence)
    data = sequence.data
    steps = sizes.shape[0]
    if total_length is not None:
        if isinstance(total_length, bool) or not isinstance(total_length, (int, np.integer)):
            raise TypeError(f"total_length: expected an int or None, got "
                            f"{type(total_length).__name__}")
        if total_length < steps:
            raise ValueError("Expected total_length to be at least the length of the longest "
                             f"sequence in input, but got total_length={total_length} and "
                             f"max sequence length being {steps}")
        steps = int(total_length)
    batch = int(sizes[0])
    time_of, positions = _layout(sizes)
    columns = positions if order is None else order[positions]
    key = (xp.asarray(columns), xp.asarray(time_of)) if batch_first else (
        xp.asarray(time_of), xp.asarray(columns))
    shape = ((batch, steps) if batch_first else (steps, batch)) + data.shape[1:]
    padded = xp.full(shape, padding_value, dtype=data.dtype)
    padded[key] = data._array
    output = _record(padded, (data,), lambda g: (g[key],), saves=False)
    sorted_lengths = (sizes[None, :] > np.arange(batch)[:, None]).sum(1)
    lengths = np.empty(batch, dtype=np.int64)
    lengths[np.arange(batch) if order is None else order] = sorted_lengths
    return output, _host_tensor(lengths)


def pad_sequence(sequences, batch_first=False, padding_value=0.0, padding_side="right"):
    """Stack Tensors of shapes (L_i, *) into one (max L, B, *) ((B, max L, *) with
    ``batch_first``) Tensor, filling with ``padding_value`` after (``padding_side="left"``:
    before) each sequence; recorded for autograd."""
    check_bool("batch_first", batch_first)
    check_choice("padding_side", padding_side, ("right", "left"))
    if isinstance(sequences, Tensor):
        sequences = [sequences[i] for i in range(sequences.shape[0])]
    sequences = [s if isinstance(s, Tensor) else _wrap(_to_storage(s)) for s in sequences]
    if not sequences:
        raise ValueError("sequences: expected at least one sequence, got an empty list")
    trailing, dtype = sequences[0].shape[1:], sequences[0].dtype
    for k, s in enumerate(sequences):
        if s.ndim < 1 or s.shape[1:] != trailing:
            raise ValueError(f"sequences: expected every sequence to be (L, *{trailing}), got "
                             f"shape {s.shape} at entry {k} and {sequences[0].shape} at entry 0")
        if s.dtype != dtype:
            raise TypeError(f"sequences: expected one dtype, got {s.dtype} at entry {k} and "
                            f"{dtype} at entry 0")
    longest = max(s.shape[0] for s in sequences)
    batch = len(sequences)
    shape = ((batch, longest) if batch_first else (longest, batch)) + trailing
    padded = xp.full(shape, padding_value, dtype=dtype)
    keys = []
    for k, s in enumerate(sequences):
        n = s.shape[0]
        steps = slice(0, n) if padding_side == "right" else slice(longest - n, longest)
        key = (k, steps) if batch_first else (steps, k)
        padded[key] = s._array
        keys.append(key)
    return _record(padded, sequences, lambda g: [g[key] for key in keys], saves=False)


def pack_sequence(sequences, enforce_sorted=True):
    """Pack a list of Tensors (L_i, *): ``pack_padded_sequence(pad_sequence(sequences),
    lengths, enforce_sorted=enforce_sorted)``."""
    sequences = [s if isinstance(s, Tensor) else _wrap(_to_storage(s)) for s in sequences]
    lengths = [s.shape[0] if s.ndim else 0 for s in sequences]
    return pack_padded_sequence(pad_sequence(sequences), lengths, enforce_sorted=enforce_sorted)


def unpad_sequence(padded_sequences, lengths, batch_first=False):
    """The list of Tensors that ``pad_sequence`` stacked, cut to ``lengths``."""
    check_bool("batch_first", batch_first)
    padded = _check_padded(padded_sequences, "padded_sequences")
    lengths = _host_ints(lengths, "lengths")
    batch = padded.shape[0] if batch_first else padded.shape[1]
    if lengths.shape[0] != batch:
        raise ValueError(f"lengths: expected {batch} lengths (one per sequence), got "
                         f"{lengths.shape[0]}")
    return [padded[k, :int(n)] if batch_first else padded[:int(n), k]
            for k, n in enumerate(lengths)]


def unpack_sequence(packed_sequences):
    """The list of Tensors that ``pack_sequence`` packed, in their original order."""
    padded, lengths = pad_packed_sequence(packed_sequences, batch_first=True)
    return unpad_sequence(padded, lengths, batch_first=True)
