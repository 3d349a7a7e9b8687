"""numba_rnn.torch held against torch.nn on PyTorch's own module database.

``torch.testing._internal.common_modules.module_db`` (in the installed wheel) has one
entry for each of LSTM, GRU, RNN, LSTMCell, GRUCell and RNNCell, with the sample inputs
PyTorch's generic module tests run. For every entry, float32 and float64, on the CPU,
and every sample (the recurrent layers' samples also with PackedSequence inputs, which
the functions give on request), in training mode and, where the entry says the modes
differ, in eval mode: torch.nn's module and numba_rnn.torch's, with the same
parameters (load_state_dict), run on copies of the same inputs; every output (nested
tuples, a PackedSequence's data and batch sizes) and the gradient of a random weighting
of all of them with respect to every parameter and every floating input that requires
grad must agree within the dtype's tolerance (numba_rnn.testing.TOLERANCES). The
entries' error inputs must raise the same exception, with the same message, from both.

tools/torch_suite.py runs PyTorch's test_nn.py and test_modules.py themselves against
numba_rnn.torch; this file is the part of that which CI can run without PyTorch's
repository.
"""
import contextlib
import copy
import re
import sys
import types
import unittest
import warnings

import pytest

from numba_rnn import backend
from numba_rnn.testing import assert_close
from oracles import import_torch

CLASSES = ("LSTM", "GRU", "RNN", "LSTMCell", "GRUCell", "RNNCell")
DTYPES = ("float32", "float64")


@contextlib.contextmanager
def _quiet_import(torch):
    """Importing torch.testing._internal without what it does to the session: it needs
    ``expecttest`` (not a dependency of torch; a stand-in while it imports, where
    absent), freezes torch.backends' flags (``disable_global_flags``: later plain
    assignments such as ``torch.backends.cudnn.allow_tf32 = False`` would raise) and
    adds warning filters."""
    stub = None
    if "expecttest" not in sys.modules:
        try:
            import expecttest  # noqa: F401
        except ImportError:
            stub = types.ModuleType("expecttest")
            stub.TestCase = unittest.TestCase
            sys.modules["expecttest"] = stub
    flags = torch.backends.flags_frozen.__globals__
    frozen = flags["__allow_nonbracketed_mutation_flag"]
    filters = list(warnings.filters)
    try:
        yield
    finally:
        flags["__allow_nonbracketed_mutation_flag"] = frozen
        warnings.filters[:] = filters
        if stub is not None and sys.modules.get("expecttest") is stub:
            del sys.modules["expecttest"]


@pytest.fixture(scope="module")
def db():
    """(torch, numba_rnn.torch, {class name: its module_db entry})."""
    torch = import_torch()
    nrt = pytest.importorskip("numba_rnn.torch")
    with _quiet_import(torch):
        from torch.testing._internal import common_modules
    entries = {info.module_cls.__name__: info for info in common_modules.module_db
               if info.module_cls in {getattr(torch.nn, name) for name in CLASSES}}
    assert sorted(entries) == sorted(CLASSES), f"module_db entries: {sorted(entries)}"
    return torch, nrt, entries, common_modules


@contextlib.contextmanager
def _on_cpu_path():
    """CPU tensors on numba_rnn's CPU path (the suite's default backend here is the
    simulator); elsewhere the process's backend."""
    if "cpu" in backend.available_backends():
        with backend.use_backend("cpu"):
            yield
    else:
        yield


def _leaves(torch, obj):
    """The tensors of a nested output or input, in order (a PackedSequence: its data and
    its batch sizes)."""
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, torch.nn.utils.rnn.PackedSequence):
        return [obj.data, obj.batch_sizes]
    if isinstance(obj, (tuple, list)):
        return [t for item in obj for t in _leaves(torch, item)]
    if isinstance(obj, dict):
        return [t for key in sorted(obj) for t in _leaves(torch, obj[key])]
    return []


def _structure(torch, obj):
    """The nesting of an output, with shapes and dtypes, for an exact comparison."""
    if isinstance(obj, torch.Tensor):
        return ("tensor", tuple(obj.shape), obj.dtype, obj.requires_grad)
    if isinstance(obj, torch.nn.utils.rnn.PackedSequence):
        return ("packed", _structure(torch, obj.data), obj.batch_sizes.tolist(),
                None if obj.sorted_indices is None else obj.sorted_indices.tolist(),
                None if obj.unsorted_indices is None else obj.unsorted_indices.tolist())
    if isinstance(obj, (tuple, list)):
        return (type(obj).__name__, tuple(_structure(torch, item) for item in obj))
    return (type(obj).__name__, obj)


def _run(torch, module, sample):
    """Output, and the gradients (parameters, then floating inputs that require grad) of
    a fixed random weighting of every floating output, for ``module`` on a copy of the
    sample's forward input."""
    args = copy.deepcopy(sample.forward_input.args)
    kwargs = copy.deepcopy(sample.forward_input.kwargs)
    with _on_cpu_path():
        output = module(*args, **kwargs)
        outputs = [t for t in _leaves(torch, output) if t.is_floating_point()]
        generator = torch.Generator().manual_seed(0)
        loss = sum((t * torch.randn(t.shape, generator=generator, dtype=t.dtype)).sum()
                   for t in outputs)
        inputs = [t for t in _leaves(torch, (args, kwargs))
                  if t.is_floating_point() and t.requires_grad]
        wrt = list(module.parameters()) + inputs
        grads = torch.autograd.grad(loss, wrt, allow_unused=True)
    names = [f"grad {n}" for n, _ in module.named_parameters()] + [
        f"grad input {k}" for k in range(len(inputs))]
    return output, list(zip(names, grads))


def _pair(torch, nrt, name, sample, dtype, training):
    args, kwargs = sample.constructor_input.args, sample.constructor_input.kwargs
    theirs = getattr(torch.nn, name)(*args, **kwargs).to(dtype).train(training)
    ours = getattr(nrt, name)(*args, **kwargs).to(dtype).train(training)
    ours.load_state_dict(theirs.state_dict())
    return ours, theirs


def _samples(info, torch_dtype, training):
    # the recurrent layers' samples with PackedSequence inputs too (the cells' and
    # LSTM's functions take and ignore the flag)
    return info.module_inputs_func(info, device="cpu", dtype=torch_dtype, requires_grad=True,
                                   training=training, with_packed_sequence=True)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", CLASSES)
def test_module_db_samples_equal_torch_nn(db, name, dtype):
    torch, nrt, entries, _ = db
    info, torch_dtype = entries[name], getattr(torch, dtype)
    modes = (True, False) if info.train_and_eval_differ else (True,)
    checked = 0
    for training in modes:
        for index, sample in enumerate(_samples(info, torch_dtype, training)):
            if sample.forward_input is None:
                continue
            where = (f"{name} {dtype} {'train' if training else 'eval'} sample {index} "
                     f"{sample.constructor_input.kwargs or sample.constructor_input.args}")
            ours, theirs = _pair(torch, nrt, name, sample, torch_dtype, training)
            out_ours, grads_ours = _run(torch, ours, sample)
            out_theirs, grads_theirs = _run(torch, theirs, sample)
            assert _structure(torch, out_ours) == _structure(torch, out_theirs), where
            for k, (a, b) in enumerate(zip(_leaves(torch, out_ours), _leaves(torch, out_theirs))):
                if a.is_floating_point():
                    assert_close(a.detach(), b.detach(), dtype, f"{where}: output {k}")
                else:
                    assert torch.equal(a, b), f"{where}: output {k}"
            assert [n for n, _ in grads_ours] == [n for n, _ in grads_theirs], where
            for (label, a), (_, b) in zip(grads_ours, grads_theirs):
                assert (a is None) == (b is None), f"{where}: {label} defined on one side only"
                if a is not None:
                    assert_close(a, b, dtype, f"{where}: {label}")
            checked += 1
    assert checked >= 2, f"{name}: only {checked} samples"


@pytest.mark.parametrize("name", CLASSES)
def test_module_db_error_inputs_raise_as_torch_nn(db, name):
    """The entry's error inputs: the exception torch.nn raises (the entry's type and
    regex), with the same type and message from numba_rnn.torch."""
    torch, nrt, entries, common_modules = db
    info = entries[name]
    if info.module_error_inputs_func is None:
        pytest.skip(f"{name}: no error inputs in this torch's module_db")
    errors = info.module_error_inputs_func(info, device="cpu", dtype=torch.float32,
                                           requires_grad=False, training=True)
    for index, error in enumerate(errors):
        sample = error.module_error_input
        caught = []
        for cls in (getattr(torch.nn, name), getattr(nrt, name)):
            try:
                with _on_cpu_path():
                    module = cls(*sample.constructor_input.args,
                                 **sample.constructor_input.kwargs)
                    if error.error_on == common_modules.ModuleErrorEnum.FORWARD_ERROR:
                        module(*sample.forward_input.args, **sample.forward_input.kwargs)
            except Exception as exc:  # noqa: BLE001 - compared below
                caught.append((type(exc), str(exc)))
            else:
                caught.append((None, "no exception"))
        (theirs_type, theirs_msg), (ours_type, ours_msg) = caught
        where = f"{name} error input {index} ({error.error_regex!r})"
        assert theirs_type is error.error_type and re.search(error.error_regex, theirs_msg), \
            f"{where}: torch.nn itself raised {theirs_type}: {theirs_msg}"
        assert (ours_type, ours_msg) == (theirs_type, theirs_msg), where


def test_importing_module_db_leaves_the_session_as_it_was(db):
    """The fixture's import of torch.testing._internal left torch.backends' flags
    settable (the suite's import_torch assigns them) and no expecttest stand-in."""
    torch = db[0]
    assert not torch.backends.flags_frozen()
    torch.backends.cudnn.allow_tf32 = False
    stub = sys.modules.get("expecttest")
    assert stub is None or hasattr(stub, "__file__")
