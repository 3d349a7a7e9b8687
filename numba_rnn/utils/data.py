"""``torch.utils.data`` in numba_rnn: datasets, samplers, ``DataLoader`` and collation.

Everything runs in the calling process: ``num_workers`` is accepted (so that PyTorch
programs run unchanged) but loading is never spread over worker processes. Shuffling and
``random_split`` draw from numba_rnn's generator (``nr.manual_seed``) unless a
``numpy.random.Generator`` is passed as ``generator``, so an order is reproducible;
the numbers are not PyTorch's.
"""
import bisect
import collections.abc
import copy
import itertools
import math
import numbers

import numpy as np

from .. import backend
from .. import random as _random
from ..ops.join import stack
from ..tensor import Tensor, _to_storage, _wrap

__all__ = ["Dataset", "IterableDataset", "TensorDataset", "Subset", "ConcatDataset",
           "ChainDataset", "random_split", "Sampler", "SequentialSampler", "RandomSampler",
           "SubsetRandomSampler", "BatchSampler", "DataLoader", "default_collate",
           "default_convert", "get_worker_info"]


class CollateError(ValueError, RuntimeError):
    """Samples that cannot be batched together (tensors of different shapes, lists of
    different lengths): a ValueError, and a RuntimeError as in PyTorch."""


def _generator(generator, name="generator"):
    """The numpy Generator to draw from: ``generator``, or numba_rnn's (read now, not at
    import: ``nr.manual_seed`` replaces it)."""
    if generator is None:
        return _random._generator
    if isinstance(generator, np.random.Generator):
        return generator
    raise TypeError(f"{name}: expected None (numba_rnn's generator, seeded by "
                    f"nr.manual_seed) or a numpy.random.Generator, got "
                    f"{type(generator).__name__}")


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{name} should be a positive integer value, but got {name}={value!r}")
    return int(value)


def _check_flag(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} should be a boolean value, but got {name}={value!r}")
    return bool(value)


# ---------------------------------------------------------------------- datasets
class Dataset:
    """A map-style dataset: subclasses define ``__getitem__(index)`` and, for samplers
    and ``len(loader)``, ``__len__``."""

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__}: subclasses of Dataset define "
                                  "__getitem__")

    def __add__(self, other):
        return ConcatDataset([self, other])


class IterableDataset(Dataset):
    """A dataset that is a stream: subclasses define ``__iter__``."""

    def __iter__(self):
        raise NotImplementedError(f"{type(self).__name__}: subclasses of IterableDataset "
                                  "define __iter__")

    def __add__(self, other):
        return ChainDataset([self, other])


class TensorDataset(Dataset):
    """Samples ``(t[i] for t in tensors)``; every tensor (a Tensor, or an array, made a
    Tensor here) has the same first dimension."""

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("tensors: expected at least one tensor")
        self.tensors = tuple(t if isinstance(t, Tensor) else _wrap(_to_storage(t))
                             for t in tensors)
        sizes = [t.shape[0] if t.ndim else None for t in self.tensors]
        if None in sizes or len(set(sizes)) != 1:
            raise ValueError(f"tensors: Size mismatch between tensors: expected one first "
                             f"dimension, got shapes {[t.shape for t in self.tensors]}")

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __len__(self):
        return self.tensors[0].shape[0]


class Subset(Dataset):
    """``dataset`` seen through ``indices``."""

    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = indices

    def __getitem__(self, index):
        if isinstance(index, list):
            return self.dataset[[self.indices[i] for i in index]]
        return self.dataset[self.indices[index]]

    def __len__(self):
        return len(self.indices)


class ConcatDataset(Dataset):
    """The datasets one after another."""

    def __init__(self, datasets):
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("datasets: expected at least one dataset")
        for d in self.datasets:
            if isinstance(d, IterableDataset):
                raise TypeError("ConcatDataset does not support IterableDataset")
        self.cumulative_sizes = list(itertools.accumulate(len(d) for d in self.datasets))

    def __len__(self):
        return self.cumulative_sizes[-1]

    def __getitem__(self, index):
        if index < 0:
            if -index > len(self):
                raise ValueError("absolute value of index should not exceed dataset length")
            index += len(self)
        k = bisect.bisect_right(self.cumulative_sizes, index)
        if k == len(self.datasets):
            raise IndexError(f"index {index} is out of range for a dataset of {len(self)}")
        start = self.cumulative_sizes[k - 1] if k else 0
        return self.datasets[k][index - start]


class ChainDataset(IterableDataset):
    """Iterable datasets one after another."""

    def __init__(self, datasets):
        self.datasets = datasets

    def __iter__(self):
        for d in self.datasets:
            if not isinstance(d, IterableDataset):
                raise TypeError("ChainDataset only supports IterableDataset")
            yield from d

    def __len__(self):
        return sum(len(d) for d in self.datasets)


def random_split(dataset, lengths, generator=None):
    """Split ``dataset`` into non-overlapping Subsets of ``lengths`` (counts summing to
    its length, or fractions summing to 1, the remainder dealt round-robin as PyTorch
    does), in an order drawn from ``generator`` (default: numba_rnn's)."""
    lengths = list(lengths)
    total = len(dataset)
    if lengths and math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        for k, fraction in enumerate(lengths):
            if fraction < 0 or fraction > 1:
                raise ValueError(f"Fraction at index {k} is not between 0 and 1")
        counts = [int(math.floor(total * fraction)) for fraction in lengths]
        for k in range((total - sum(counts))):
            counts[k % len(counts)] += 1
        lengths = counts
    if any(isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0
           for n in lengths):
        raise ValueError(f"lengths: expected non-negative ints or fractions, got {lengths}")
    if sum(lengths) != total:
        raise ValueError("Sum of input lengths does not equal the length of the input "
                         f"dataset! ({sum(lengths)} != {total})")
    indices = _generator(generator).permutation(total).tolist()
    return [Subset(dataset, indices[end - n:end])
            for end, n in zip(itertools.accumulate(lengths), lengths)]


# ---------------------------------------------------------------------- samplers
class Sampler:
    """Yields dataset indices (or, for a batch sampler, lists of them)."""

    def __init__(self, data_source=None):
        pass

    def __iter__(self):
        raise NotImplementedError


class SequentialSampler(Sampler):
    """0, 1, ..., len(data_source) - 1."""

    def __init__(self, data_source):
        self.data_source = data_source

    def __iter__(self):
        return iter(range(len(self.data_source)))

    def __len__(self):
        return len(self.data_source)


class RandomSampler(Sampler):
    """A permutation of the indices each epoch (or ``num_samples`` draws with
    ``replacement``), from ``generator`` (default: numba_rnn's, read when iteration
    starts)."""

    def __init__(self, data_source, replacement=False, num_samples=None, generator=None):
        self.data_source = data_source
        self.replacement = _check_flag("replacement", replacement)
        self._num_samples = num_samples
        self.generator = generator
        _generator(generator)
        _check_positive_int("num_samples", self.num_samples)

    @property
    def num_samples(self):
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __iter__(self):
        n = len(self.data_source)
        generator = _generator(self.generator)
        if self.replacement:
            yield from generator.integers(0, n, size=self.num_samples).tolist()
            return
        for _ in range(self.num_samples // n):
            yield from generator.permutation(n).tolist()
        yield from generator.permutation(n).tolist()[: self.num_samples % n]

    def __len__(self):
        return self.num_samples


class SubsetRandomSampler(Sampler):
    """``indices`` in a random order each epoch."""

    def __init__(self, indices, generator=None):
        self.indices = indices
        self.generator = generator
        _generator(generator)

    def __iter__(self):
        for k in _generator(self.generator).permutation(len(self.indices)).tolist():
            yield self.indices[k]

    def __len__(self):
        return len(self.indices)


class BatchSampler(Sampler):
    """Lists of ``batch_size`` indices from ``sampler``; the last, shorter one is dropped
    with ``drop_last``."""

    def __init__(self, sampler, batch_size, drop_last):
        self.sampler = sampler
        self.batch_size = _check_positive_int("batch_size", batch_size)
        self.drop_last = _check_flag("drop_last", drop_last)

    def __iter__(self):
        iterator = iter(self.sampler)
        while True:
            batch = list(itertools.islice(iterator, self.batch_size))
            if not batch or (self.drop_last and len(batch) < self.batch_size):
                return
            yield batch

    def __len__(self):
        if self.drop_last:
            return len(self.sampler) // self.batch_size
        return (len(self.sampler) + self.batch_size - 1) // self.batch_size


class _InfiniteConstantSampler(Sampler):
    def __iter__(self):
        while True:
            yield None


# --------------------------------------------------------------------- collation
_ERROR = ("default_collate: batch must contain tensors, numpy arrays, numbers, dicts or "
          "lists; found {}")


def _is_torch_tensor(value):
    return type(value).__module__.startswith("torch") and hasattr(value, "detach")


def _is_numpy_data(value):
    return type(value).__module__ == "numpy" and type(value).__name__ not in ("str_", "bytes_",
                                                                                "string_")


def _stack(tensors):
    """One Tensor from Tensors of one shape, along a new first axis (``nr.stack``, with
    the data loader's error for a shape mismatch); recorded for autograd where an
    element requires grad (a dataset of leaves being fitted)."""
    first = tensors[0]
    for k, t in enumerate(tensors):
        if t.shape != first.shape:
            raise CollateError(f"stack expects each tensor to be equal size, but got "
                               f"{list(first.shape)} at entry 0 and {list(t.shape)} at "
                               f"entry {k}")
    return stack(tensors)  # the one stack op (ops/join.py), PyTorch's promotion


def _as_tensor(value):
    if isinstance(value, Tensor):
        return value
    if _is_torch_tensor(value):
        value = value.detach().cpu().numpy()
    return _wrap(backend.to_device(np.asarray(value)))


def default_collate(batch):
    """Batch a list of samples as PyTorch does: Tensors, NumPy arrays and CPU torch
    tensors are stacked into a Tensor (a new first axis); NumPy scalars become a Tensor
    of their dtype; Python floats a float64 Tensor, ints an int64 one, bools a bool one;
    strings stay a list; dicts, namedtuples, tuples and lists are collated field by
    field (a tuple of fields comes back as a list, as in PyTorch)."""
    elem = batch[0]
    elem_type = type(elem)
    if isinstance(elem, Tensor) or _is_torch_tensor(elem):
        return _stack([_as_tensor(b) for b in batch])
    if _is_numpy_data(elem):
        if isinstance(elem, np.ndarray):
            if elem.dtype.kind in "SaUOV":
                raise TypeError(_ERROR.format(elem.dtype))
            return _stack([_as_tensor(b) for b in batch])
        if elem.shape == ():  # a NumPy scalar
            return _wrap(backend.to_device(np.asarray(batch)))
    if backend.is_device_array(elem):
        return _stack([_wrap(b) for b in batch])
    if isinstance(elem, float):
        return _wrap(backend.to_device(np.asarray(batch, dtype=np.float64)))
    if isinstance(elem, numbers.Integral):  # bool too: a bool Tensor, as torch.tensor gives
        return _wrap(_to_storage(list(batch)))
    if isinstance(elem, (str, bytes)):
        return batch
    if isinstance(elem, collections.abc.Mapping):
        collated = {key: default_collate([d[key] for d in batch]) for key in elem}
        try:
            if isinstance(elem, collections.abc.MutableMapping):
                clone = copy.copy(elem)
                clone.update(collated)
                return clone
            return elem_type(collated)
        except TypeError:
            return collated
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):  # a namedtuple
        return elem_type(*(default_collate(samples) for samples in zip(*batch)))
    if isinstance(elem, collections.abc.Sequence):
        size = len(elem)
        if any(len(b) != size for b in batch):
            raise CollateError("each element in list of batch should be of equal size")
        transposed = list(zip(*batch))  # tuples: strings come back as one, as in PyTorch
        if isinstance(elem, tuple):
            return [default_collate(samples) for samples in transposed]
        try:
            return elem_type([default_collate(samples) for samples in transposed])
        except TypeError:
            return [default_collate(samples) for samples in transposed]
    raise TypeError(_ERROR.format(elem_type))


def default_convert(data):
    """What a DataLoader without batching (``batch_size=None``) gives: NumPy arrays and
    scalars and torch tensors become Tensors, containers are converted element by element,
    anything else is passed through."""
    data_type = type(data)
    if isinstance(data, Tensor):
        return data
    if _is_torch_tensor(data):
        return _as_tensor(data)
    if _is_numpy_data(data):
        if isinstance(data, np.ndarray) and data.dtype.kind in "SaUOV":
            return data
        return _as_tensor(data)
    if isinstance(data, collections.abc.Mapping):
        converted = {key: default_convert(data[key]) for key in data}
        try:
            if isinstance(data, collections.abc.MutableMapping):
                clone = copy.copy(data)
                clone.update(converted)
                return clone
            return data_type(converted)
        except TypeError:
            return converted
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return data_type(*(default_convert(d) for d in data))
    if isinstance(data, tuple):
        return [default_convert(d) for d in data]
    if isinstance(data, collections.abc.Sequence) and not isinstance(data, (str, bytes)):
        try:
            return data_type([default_convert(d) for d in data])
        except TypeError:
            return [default_convert(d) for d in data]
    return data


def get_worker_info():
    """None: numba_rnn loads in the main process (there are no workers)."""
    return None


# ---------------------------------------------------------------------- the loader
class DataLoader:
    """Batches of a dataset, as ``torch.utils.data.DataLoader``, loaded in this process.

    ``shuffle=True`` draws a new permutation each epoch from ``generator`` (default:
    numba_rnn's, seeded by ``nr.manual_seed``). ``num_workers``, ``pin_memory``,
    ``timeout``, ``worker_init_fn``, ``prefetch_factor``, ``persistent_workers`` and the
    other multiprocessing options are accepted and have no effect (``worker_init_fn`` is
    never called)."""

    def __init__(self, dataset, batch_size=1, shuffle=None, sampler=None, batch_sampler=None,
                 num_workers=0, collate_fn=None, pin_memory=False, drop_last=False,
                 timeout=0, worker_init_fn=None, multiprocessing_context=None, generator=None,
                 *, prefetch_factor=None, persistent_workers=False, pin_memory_device="",
                 in_order=True):
        if isinstance(num_workers, bool) or not isinstance(num_workers, numbers.Integral) \
                or num_workers < 0:
            raise ValueError("num_workers option should be non-negative; use num_workers=0 "
                             f"to disable multiprocessing (got {num_workers!r})")
        if not isinstance(timeout, numbers.Real) or timeout < 0:
            raise ValueError("timeout option should be non-negative")
        drop_last = _check_flag("drop_last", drop_last)
        if shuffle is not None:
            shuffle = _check_flag("shuffle", shuffle)
        _generator(generator)
        iterable = isinstance(dataset, IterableDataset)
        if iterable:
            if shuffle:
                raise ValueError("DataLoader with IterableDataset: expected unspecified "
                                 f"shuffle option, but got shuffle={shuffle}")
            if sampler is not None:
                raise ValueError("DataLoader with IterableDataset: expected unspecified "
                                 f"sampler option, but got sampler={sampler}")
            if batch_sampler is not None:
                raise ValueError("DataLoader with IterableDataset: expected unspecified "
                                 f"batch_sampler option, but got batch_sampler={batch_sampler}")
        elif sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("batch_sampler option is mutually exclusive with batch_size, "
                                 "shuffle, sampler, and drop_last")
            batch_size, drop_last = None, False
        elif batch_size is None:
            if drop_last:
                raise ValueError("batch_size=None option disables auto-batching and is "
                                 "mutually exclusive with drop_last")
        else:
            batch_size = _check_positive_int("batch_size", batch_size)
        if sampler is None:
            if iterable:
                sampler = _InfiniteConstantSampler()
            elif shuffle:
                sampler = RandomSampler(dataset, generator=generator)
            else:
                sampler = SequentialSampler(dataset)
        if batch_size is not None and batch_sampler is None:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)
        self.dataset = dataset
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.num_workers = int(num_workers)
        self.pin_memory = pin_memory
        self.timeout = timeout
        self.worker_init_fn = worker_init_fn
        self.prefetch_factor = prefetch_factor
        self.persistent_workers = persistent_workers
        self.generator = generator
        self.collate_fn = collate_fn if collate_fn is not None else (
            default_collate if batch_sampler is not None else default_convert)

    @property
    def _auto_collation(self):
        return self.batch_sampler is not None

    def _fetch(self, indices):
        getitems = getattr(self.dataset, "__getitems__", None)
        if getitems:
            return getitems(indices)
        return [self.dataset[i] for i in indices]

    def __iter__(self):
        if isinstance(self.dataset, IterableDataset):
            stream = iter(self.dataset)
            if not self._auto_collation:
                for sample in stream:
                    yield self.collate_fn(sample)
                return
            while True:
                batch = list(itertools.islice(stream, self.batch_size))
                if not batch or (self.drop_last and len(batch) < self.batch_size):
                    return
                yield self.collate_fn(batch)
        if self._auto_collation:
            for indices in self.batch_sampler:
                yield self.collate_fn(self._fetch(indices))
        else:
            for index in self.sampler:
                yield self.collate_fn(self.dataset[index])

    def __len__(self):
        if isinstance(self.dataset, IterableDataset):
            n = len(self.dataset)
            if self.batch_size is not None:
                n = n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)
            return n
        if self._auto_collation:
            return len(self.batch_sampler)
        return len(self.sampler)
