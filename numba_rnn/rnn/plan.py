"""Path policy and planning: which path a layer-direction runs (``choose_path``, or the
one ``force_path`` forces in this thread), how the persistent kernels separate their steps
(``use_handoff``), and how the fused and persistent kernels are launched (``fit_plan``,
``fused_plan``, ``persistent_plan``); with the tuples the paths share (LayerParams,
LayerCache). The path names themselves are the registry's (``paths.PATHS``)."""
import contextlib
import threading
from collections import namedtuple

import numba
import numpy as np

from .. import backend
from ..kernels.steps import BLOCK_THREADS, SHAPE, layout, staged_rows, step_kernels

# One layer and direction's parameters; w_hr is None without a projection; the gains
# and shift of the layer norms (gamma_ih, gamma_hh (G*H,), gamma_c, beta_c (H,)) are
# those of a layer-normalized cell (kernels/norm.py), None otherwise.
LayerParams = namedtuple("LayerParams", ["w_ih", "w_hh", "b_ih", "b_hh", "w_hr", "gamma_ih",
                                         "gamma_hh", "gamma_c", "beta_c"],
                         defaults=[None] * 5)

# What one layer and direction's forward keeps for its backward: zo the zoneout weights
# (T,B,S*H) or None; norm a NormCache for a layer-normalized cell (paths/norm.py); path
# and handoff the forward's, and runner the name of the module that ran it
# (paths.REGISTRY), which its backward runs too (whichever thread runs it: PyTorch's
# autograd runs a CUDA backward on a thread of its own, where force_path/use_handoff are
# unset).
LayerCache = namedtuple("LayerCache", ["x", "state_seqs", "m_seq", "saved", "path", "zo",
                                       "norm", "handoff", "runner"],
                        defaults=[None, None, None, None])


#: Whether the fused and persistent kernels have passed the test suite on a GPU. Until
#: they have, the automatic choice stays on the plain path there (a forced path still
#: runs them); the simulator always chooses the plain path, its fastest.
FUSED_VALIDATED_ON_GPU = False

# Automatic choice on a GPU (initial thresholds, to be tuned with bench_rnn.py): the
# persistent kernel up to this batch size when W_hh fits on chip, else the fused kernel up
# to its own bound, else cuBLAS.
PERSISTENT_MAX_BATCH = 32
FUSED_MAX_BATCH = 8

#: How persistent kernels separate their steps: "grid" (cuda.cg.this_grid().sync()) or
#: "flags" (an arrival counter and a spin); both are correct, a GPU run keeps the faster.
HANDOFFS = ("grid", "flags")
DEFAULT_HANDOFF = "grid"

_local = threading.local()  # the forced path and handoff are per thread, as grad mode is


def forced_path():
    """The path that ``force_path`` forces in this thread, or None."""
    return getattr(_local, "forced_path", None)


def handoff():
    """The handoff persistent kernels use in this thread (``use_handoff``)."""
    return getattr(_local, "handoff", None) or DEFAULT_HANDOFF


def _thread_setting(name, value):
    @contextlib.contextmanager
    def setting():
        previous = getattr(_local, name, None)
        setattr(_local, name, value)
        try:
            yield
        finally:
            setattr(_local, name, previous)
    return setting()


def force_path(path):
    """Within this context every layer run by this thread runs ``path`` ("plain",
    "fused", "persistent": paths.PATHS), or the automatic choice for None; a layer the
    path cannot run raises ValueError."""
    from .paths import PATHS  # the registry's names (the registry imports this module)
    if path is not None and path not in PATHS:
        raise ValueError(f"path: expected one of {', '.join(PATHS)} or None, got {path!r}")
    return _thread_setting("forced_path", path)



def use_handoff(mode):
    """Within this context, persistent kernels run by this thread separate their steps by
    ``mode``: "grid" or "flags"."""
    if mode not in HANDOFFS:
        raise ValueError(f"handoff: expected one of {', '.join(HANDOFFS)}, got {mode!r}")
    return _thread_setting("handoff", mode)


def kernel_signatures(dtype):
    """The argument types (Numba types) that ``layer_forward`` and ``layer_backward``
    launch the fused and persistent kernels with, by StepKernels field: they size those
    kernels before a launch (their static shared memory). tests/test_compile.py checks
    them against the launches themselves."""
    value = numba.from_dtype(np.dtype(dtype))
    int64, int32 = numba.types.int64, numba.types.int32

    def array(ndim, element=value):
        return numba.types.Array(element, ndim, "C")

    forward = (array(3), array(2), array(1), array(3), array(3), array(3))
    backward = (array(3), array(2), array(3), array(3), array(3), array(2), array(2),
                array(3), array(3))
    persistent_forward = (array(1, int32),) + forward + (int64, int64, array(1, int32))
    persistent_backward = (array(1, int32),) + backward + (int64, int64, array(1, int32))
    return {"fused_forward": (int64, int64) + forward + (int64, int64),
            "fused_backward": (int64, int64, int64) + backward + (int64, int64),
            "persistent_forward": persistent_forward,
            "persistent_forward_flags": persistent_forward,
            "persistent_backward": persistent_backward,
            "persistent_backward_flags": persistent_backward}


#: How a layer's fused or persistent kernels are launched: ``units`` of H per block,
#: ``blocks``, ``threads`` per block, ``staged`` batch rows of input through shared
#: memory at a time, and the dynamic shared memory (bytes) of the forward and the
#: backward kernel.
Plan = namedtuple("Plan", ["units", "blocks", "threads", "staged", "forward_shared",
                           "backward_shared"])


def _plan(cell, hidden, dtype, batch, kernels, on_chip):
    """A Plan for ``kernels`` (forward, backward StepKernels fields) from their compiled
    figures on this device (``fit_plan``)."""
    dtype = np.dtype(dtype)
    step = step_kernels(cell, dtype)
    signatures = kernel_signatures(dtype)
    limits = [backend.cooperative_limits(getattr(step, name), signatures[name], BLOCK_THREADS)
              for name in kernels]
    return fit_plan(cell.num_gates, hidden, dtype.itemsize, batch, limits, on_chip)


def fit_plan(gates, hidden, itemsize, batch, limits, on_chip, shape=SHAPE):
    """The Plan of a cell of ``gates`` gates, or None when even one staged row takes more
    shared memory than a block may have, or (``on_chip``: persistent) when the blocks
    could not all be resident at once; ``limits``: the CooperativeLimits of the forward
    and the backward kernel. One block per SM (at most one per unit: their registers
    allow no second one, kernels.md), as many batch rows staged at once as fit, up to
    all of ``batch`` (steps.staged_rows). The block's ``shape`` is this process's
    kernels' (steps.SHAPE) unless given: the performance model and the tests size a
    GPU's plan (steps.GPU_SHAPE) from a process without one."""
    threads, lanes = shape["threads"], shape["lanes"]
    registers = shape["registers"][itemsize]
    units = -(-hidden // min([hidden] + [limit.max_blocks for limit in limits]))
    blocks = -(-hidden // units)
    warps = threads // lanes

    def shared(staged):  # forward, backward
        return [layout(rows, width, warps, on_chip, staged, registers, shape["chunk"],
                       lanes)[-1] * itemsize
                for rows, width in ((gates * units, hidden), (units, gates * hidden))]

    def fits(staged):
        return all(size <= limit.max_shared_bytes
                   and (not on_chip or limit.co_resident(size) >= blocks)
                   for limit, size in zip(limits, shared(staged)))

    staged = staged_rows(batch, fits)
    if staged is None:
        return None
    return Plan(units, blocks, threads, staged, *shared(staged))


def persistent_plan(cell, hidden, dtype, batch=1, mode=None):
    """The Plan of the persistent kernels (handoff ``mode``, by default this thread's) for
    ``batch`` rows, or
    None when the G·H² weights, with one staged row of input, do not fit in the
    registers (steps.REGISTERS) and shared memory of blocks that can all be resident at
    once. Sized from the compiled kernels' own figures (backend.cooperative_limits): at
    most one block per SM, each within the device's opt-in shared memory less the
    kernel's static part, all co-resident."""
    suffix = "" if (mode or handoff()) == "grid" else "_flags"
    return _plan(cell, hidden, dtype, batch, ("persistent_forward" + suffix,
                                              "persistent_backward" + suffix), True)


def fused_plan(cell, hidden, dtype, batch=1):
    """The Plan of the fused kernels (W_hh read from memory every step), or None when
    one staged row of input does not fit in a block's shared memory."""
    return _plan(cell, hidden, dtype, batch, ("fused_forward", "fused_backward"), False)


def choose_path(cell, batch, hidden, dtype, projection, on_gpu=None, validated=None,
                zoneout=False):
    """The path a layer-direction runs: the forced one (checked), or the automatic
    choice by problem size and what fits on chip. A projection, zoneout and the
    layer-normalized cells (their own row kernels, GEMMs between) run on "plain" only on
    a GPU. On the CPU backend "persistent" is one parallel region for the whole
    sequence (kernels/region.py), the automatic choice for every layer it runs (all
    but a projection and the layer-normalized cells); "plain" is the GEMM plus gate
    kernel loop."""
    if batch == 0:
        return "plain"  # an empty batch runs no kernel, whatever the path
    on_gpu = backend.backend_name() == "cuda" if on_gpu is None else on_gpu
    validated = FUSED_VALIDATED_ON_GPU if validated is None else validated
    forced = forced_path()
    only_plain = ("an LSTM with proj_size" if projection else "zoneout" if zoneout
                  else f"a {cell.name} cell" if cell.norm is not None else None)
    if backend.on_cpu():
        # the CPU's persistent path is one parallel region for the whole sequence
        # (kernels/region.py); it runs zoneout, and has no fused variant
        only_plain = ("an LSTM with proj_size" if projection
                      else f"a {cell.name} cell" if cell.norm is not None else None)
        if forced == "fused":
            raise ValueError("path: 'fused' has no kernel on the CPU path; 'plain' and "
                             "'persistent' (one region for the whole sequence) do")
        if forced is not None:
            if forced == "persistent" and only_plain:
                raise ValueError(f"path: 'persistent' cannot run {only_plain}; only "
                                 "'plain' can")
            return forced
        return "plain" if only_plain else "persistent"
    if forced is not None:
        if forced != "plain" and only_plain:
            raise ValueError(f"path: {forced!r} cannot run {only_plain}; only 'plain' can")
        if forced == "persistent" and persistent_plan(cell, hidden, dtype, batch) is None:
            raise ValueError(f"path: 'persistent' needs W_hh ({cell.num_gates}·{hidden}² "
                             f"values of {np.dtype(dtype)}) to fit in the shared memory of "
                             "the blocks that can be co-resident on this device")
        if forced == "fused" and fused_plan(cell, hidden, dtype, batch) is None:
            raise ValueError(f"path: 'fused' needs one row of {cell.num_gates}·{hidden} "
                             f"values of {np.dtype(dtype)} to fit in a block's shared "
                             "memory")
        return forced
    if only_plain or not on_gpu or not validated:
        return "plain"
    if batch <= PERSISTENT_MAX_BATCH and persistent_plan(cell, hidden, dtype, batch) is not None:
        return "persistent"
    if batch <= FUSED_MAX_BATCH and fused_plan(cell, hidden, dtype, batch) is not None:
        return "fused"
    return "plain"
