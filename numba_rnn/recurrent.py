"""The time loop, written once for every cell: one direction of one layer, and a stack of
layers and directions with variable lengths and dropout, forward and backward
(backpropagation through time).

Everything here works on device arrays, time-major: ``x`` is (T, B, I), states are
(B, H) per layer and direction, or (L*D, B, H) for a stack. Inputs are assumed valid:
``numba_rnn.nn`` checks them before calling in. What a cell contributes is described in
``numba_rnn.kernels.common``; nothing here knows which cell it runs.

Per layer and direction (DESIGN.md, "How data flows"):
    gx = x·W_ihᵀ + b_ih                one GEMM over all T·B rows
    for t: gh = h_{t-1}·W_hhᵀ           the recurrent GEMM
           forward_step kernel          gates and new states from gx[t], gh, b_hh
           [h_t = m_t·W_hrᵀ]            with a projection (LSTM proj_size)
backward, for t = T-1 … 0:
           backward_step kernel         dgx[t], dgh[t], the pointwise state gradients
           dh_{t-1} += dgh[t]·W_hh
then dW_ih, dW_hh, db, dx as GEMMs and sums over all T·B rows.

Variable lengths follow cuDNN's packed layout: the batch is sorted once, longest first, so
that the sequences still running at step t are the first ``batch_sizes[t]`` rows; each
step then works on those rows only, and finished sequences cost nothing. The reverse
direction runs the same loop on each sequence reversed within its own length.
"""
import contextlib
import threading
from collections import namedtuple

import numba
import numpy as np

from . import backend
from .backend import kernel_views, launch, launch_grid, xp
from .kernels import region
from .kernels.norm import ROW_THREADS, norm_kernels, row_kernels, row_shared_bytes
from .kernels.steps import BLOCK_THREADS, SHAPE, layout, staged_rows, step_kernels
from .random import dropout_mask

# One layer and direction's parameters; w_hr is None without a projection; the gains
# and shift of the layer norms (gamma_ih, gamma_hh (G*H,), gamma_c, beta_c (H,)) are
# those of a layer-normalized cell (kernels/norm.py), None otherwise.
LayerParams = namedtuple("LayerParams", ["w_ih", "w_hh", "b_ih", "b_hh", "w_hr", "gamma_ih",
                                         "gamma_hh", "gamma_c", "beta_c"],
                         defaults=[None] * 5)

# What one layer and direction's forward keeps for its backward: zo the zoneout weights
# (T,B,S*H) or None; norm a NormCache for a layer-normalized cell; path and handoff the
# forward's, which its backward runs too (whichever thread runs it: PyTorch's autograd
# runs a CUDA backward on a thread of its own, where force_path/use_handoff are unset).
LayerCache = namedtuple("LayerCache", ["x", "state_seqs", "m_seq", "saved", "path", "zo",
                                       "norm", "handoff"], defaults=[None, None, None])
NormCache = namedtuple("NormCache", ["xhat_ih", "rstd_ih", "ghat", "rstd"])


class Batching:
    """How a batch runs through time: the sort by length and the active rows per step.

    lengths: None (every sequence has all ``steps``) or one length per batch entry.
    """

    def __init__(self, lengths, steps, batch):
        self.steps = steps
        if lengths is None:
            self.order = None
            self.batch_sizes = [batch] * steps
            self._device_sizes = self._copy_sizes()
            return
        lengths = np.asarray(lengths, dtype=np.int64)
        order = np.argsort(-lengths, kind="stable")
        sorted_lengths = lengths[order]
        self.order = xp.asarray(order)
        self.inverse = xp.asarray(np.argsort(order))
        # Steps past the longest sequence have no active rows and are not run at all.
        self.batch_sizes = [int((sorted_lengths > t).sum())
                            for t in range(int(sorted_lengths.max(initial=0)))]
        self._last = xp.asarray(sorted_lengths)
        # Reversal within each length: step t of the reversed sequence b is step
        # len_b - 1 - t of the original; padding steps map to themselves.
        t = np.arange(steps)[:, None]
        self._reverse_rows = xp.asarray(
            np.where(t < sorted_lengths[None, :], sorted_lengths[None, :] - 1 - t, t))
        self._columns = xp.asarray(np.arange(batch)[None, :])
        self._device_sizes = self._copy_sizes()

    def _copy_sizes(self):
        return xp.asarray(np.array(self.batch_sizes, dtype=np.int32))

    def device_batch_sizes(self):
        """The active rows per step as a device int32 array (persistent kernels). Made
        with the batching, on the main stream, before the directions of a layer go to
        streams of their own: a copy made on one of them would not be ordered before
        the other's kernel."""
        return self._device_sizes

    def sort(self, a):
        """Batch (axis 1) into length order; no copy without lengths."""
        return a if self.order is None else a[:, self.order]

    def unsort(self, a):
        return a if self.order is None else a[:, self.inverse]

    def reverse(self, a):
        """Each sequence of a sorted, time-major (T,B,...) array reversed within its own
        length; applying it twice gives the array back."""
        if self.order is None:
            return xp.ascontiguousarray(a[::-1])
        return a[self._reverse_rows, self._columns]

    def finals(self, seq):
        """Each sequence's state after its own last step, from a (T+1,B,H) sequence."""
        if self.order is None:
            return seq[self.steps]
        return seq[self._last, self._columns[0]]


# ------------------------------------------------------------------ the paths
#: How a layer runs its steps (kernels/steps.py): cuBLAS GEMM plus a gate kernel each
#: step; one fused kernel each step; one persistent kernel for the whole sequence.
PATHS = ("plain", "fused", "persistent")

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
    "fused", "persistent"), or the automatic choice for None; a layer the path cannot run
    raises ValueError."""
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


def _persistent(kernels, direction, mode):
    """The persistent kernel of ``direction`` for handoff ``mode``, and its arrival
    counter: a zero for the flags, a stand-in for the grid barrier."""
    if mode == "grid":
        return getattr(kernels, "persistent_" + direction), backend.placeholder(1, np.int32)
    return getattr(kernels, f"persistent_{direction}_flags"), xp.zeros(1, dtype=np.int32)


# ------------------------------------------------------------- one layer-direction
def layer_forward(cell, x, states0, params, batching, zo=None):
    """Run one layer in one direction over a sorted batch.

    x (T,B,I); states0: ``cell.num_states`` arrays (B,H) (h is (B,P) with a projection);
    params: LayerParams with w_ih (G*H,I), w_hh (G*H,P), b_ih and b_hh (G*H,), w_hr (P,H)
    or None (and the layer norms' gains for a layer-normalized cell); zo: None or the
    zoneout weights of the previous states (T,B,S*H), by step and sorted row.
    Returns (output (T,B,P), final states, LayerCache).
    """
    steps, batch, _ = x.shape
    hidden = params.w_hh.shape[0] // cell.num_gates
    path = choose_path(cell, batch, hidden, x.dtype, params.w_hr is not None,
                       zoneout=zo is not None)
    mode = handoff() if path == "persistent" else None
    zoned = int(zo is not None)
    if zoned and params.w_hr is not None:
        raise ValueError("zoneout: not supported with a projection (proj_size): the state "
                         "that zoneout mixes would be the one before W_hr")
    kernel_zo = zo if zoned else backend.placeholder(3, x.dtype)
    if path == "persistent" and backend.on_cpu():
        # state_seqs: h's alone (the GEMM of dW_hh reads it; the rest stays in the
        # region's layout, in saved)
        h_seq, finals, saved = region.layer_forward(cell, x, states0, params, batching, zo)
        return h_seq[1:], tuple(finals), LayerCache(x, (h_seq,), None, saved, path, zo)

    gx = _rows(x) @ params.w_ih.T
    norm_cache = None
    if cell.norm is not None:  # gx = LN(x·W_ihᵀ; γ_ih) + b_ih, every step at once
        xhat_ih, gx_raw = xp.empty_like(gx), gx
        gx, rstd_ih = xp.empty_like(gx), xp.empty(gx.shape[0], dtype=x.dtype)
        launch_grid(row_kernels(x.dtype).forward, gx.shape[0], ROW_THREADS,
                    row_shared_bytes(x.dtype), gx_raw, params.gamma_ih, params.b_ih, gx,
                    xhat_ih, rstd_ih)
        width = gx.shape[1]
        norm_cache = NormCache(xhat_ih, rstd_ih,
                               xp.zeros((steps, batch, width), dtype=x.dtype),
                               xp.zeros((steps, batch, 2), dtype=x.dtype))
    else:
        gx += params.b_ih
    gx = gx.reshape(steps, batch, gx.shape[-1])
    state_seqs = []
    for state0 in states0:
        # Zeros: rows of finished sequences are never written, and read as padding.
        seq = xp.zeros((steps + 1, batch, state0.shape[-1]), dtype=x.dtype)
        seq[0] = state0
        state_seqs.append(seq)
    h_seq = state_seqs[0]
    m_seq = None
    kernel_h = h_seq
    if params.w_hr is not None:  # the kernel writes m_t; h_t = m_t·W_hrᵀ
        m_seq = kernel_h = xp.zeros((steps + 1, batch, hidden), dtype=x.dtype)
    # stand-ins for what a cell does not use (c_seq; dc_carry and dgh in backward)
    c_seq = state_seqs[1] if cell.num_states > 1 else backend.placeholder(3, x.dtype)
    # (zeros for a layer-normalized cell: its gains' gradients sum over every row)
    saved = (xp.empty if cell.norm is None else xp.zeros)(
        (steps, batch, cell.saved_width * hidden), dtype=x.dtype)
    # Everything the loop touches exists before it starts: no allocation per step, and
    # the kernels' device views are made once (backend.kernel_views).
    if cell.norm is not None:
        gh = xp.empty((batch, cell.num_gates * hidden), dtype=x.dtype)
        w_hh_t = params.w_hh.T
        gamma_c, beta_c = _state_norm_params(cell, params, x.dtype)
        views = kernel_views(gx, gh, params.gamma_hh, params.b_hh, gamma_c, beta_c, h_seq,
                             c_seq, saved, norm_cache.ghat, norm_cache.rstd, kernel_zo)
        forward = norm_kernels(cell, x.dtype).forward
        shared = row_shared_bytes(x.dtype)
        for t, active in enumerate(batching.batch_sizes):
            xp.matmul(h_seq[t, :active], w_hh_t, out=gh[:active])
            launch_grid(forward, active, ROW_THREADS, shared, t, *views, zoned)
    elif path == "plain":
        kernels = step_kernels(cell, x.dtype)
        gh = xp.empty((batch, cell.num_gates * hidden), dtype=x.dtype)
        w_hh_t = params.w_hh.T
        views = kernel_views(gx, gh, params.b_hh, kernel_h, c_seq, saved, kernel_zo)
        for t, active in enumerate(batching.batch_sizes):
            xp.matmul(h_seq[t, :active], w_hh_t, out=gh[:active])
            launch(kernels.forward, active * hidden, t, active, *views, zoned)
            if m_seq is not None:
                xp.matmul(m_seq[t + 1, :active], params.w_hr.T, out=h_seq[t + 1, :active])
    elif path == "fused":
        kernels = step_kernels(cell, x.dtype)
        plan = fused_plan(cell, hidden, x.dtype, batch)
        views = kernel_views(gx, params.w_hh, params.b_hh, h_seq, c_seq, saved)
        for t, active in enumerate(batching.batch_sizes):
            launch_grid(kernels.fused_forward, plan.blocks, plan.threads, plan.forward_shared,
                        t, active, *views, plan.units, plan.staged)
    else:
        plan = persistent_plan(cell, hidden, x.dtype, batch, mode)
        kernel, arrived = _persistent(step_kernels(cell, x.dtype), "forward", mode)
        launch_grid(kernel, plan.blocks, plan.threads, plan.forward_shared,
                    batching.device_batch_sizes(), gx, params.w_hh, params.b_hh, h_seq,
                    c_seq, saved, plan.units, plan.staged, arrived)

    finals = tuple(batching.finals(seq) for seq in state_seqs)
    return h_seq[1:], finals, LayerCache(x, tuple(state_seqs), m_seq, saved, path, zo,
                                         norm_cache, mode)


def _state_norm_params(cell, params, dtype):
    """(gamma_c, beta_c) of a cell that normalizes its state, else placeholders."""
    if cell.norm.state_norm:
        return params.gamma_c, params.beta_c
    return backend.placeholder(1, dtype), backend.placeholder(1, dtype)


def layer_backward(cell, cache, params, doutput, dfinals, batching):
    """Backpropagate through one layer in one direction, on the forward's path.

    doutput (T,B,P) or None; dfinals: one array (B,H) or None per state.
    Returns (dx (T,B,I), dstates0 tuple, LayerParams of gradients).
    """
    x, state_seqs, m_seq, saved, path, zo, norm_cache, mode = cache
    steps, batch, _ = x.shape
    hidden = params.w_hh.shape[0] // cell.num_gates
    zoned = int(zo is not None)
    kernel_zo = zo if zoned else backend.placeholder(3, x.dtype)

    h_seq = state_seqs[0]
    if doutput is None:
        doutput = xp.zeros(h_seq[1:].shape, dtype=x.dtype)
    else:  # gradients may arrive as broadcast (read-only, zero-stride) views
        doutput = xp.ascontiguousarray(doutput, dtype=x.dtype)
    widths = [h_seq.shape[-1]] + [hidden] * (cell.num_states - 1)
    carry = [
        xp.zeros((batch, w), dtype=x.dtype) if d is None else xp.array(d, dtype=x.dtype)
        for w, d in zip(widths, dfinals)
    ]
    c_seq = state_seqs[1] if len(state_seqs) > 1 else backend.placeholder(3, x.dtype)
    width = cell.num_gates * hidden
    if path == "persistent" and backend.on_cpu():  # saved: the region's RegionState
        dx, grads = region.layer_backward(cell, saved, params, doutput, carry, batching, x,
                                          h_seq)
        return dx, tuple(carry), LayerParams(**grads)
    # Zeros: the rows of finished sequences must add nothing to the weight gradients.
    dgx = xp.zeros((steps, batch, width), dtype=x.dtype)
    # Kernel arguments never alias (the simulator copies each argument in and out).
    dgh = xp.zeros_like(dgx) if cell.dgh_differs else dgx
    kernel_dgh = dgh if cell.dgh_differs else backend.placeholder(3, x.dtype)
    dh_carry = carry[0]
    dc_carry = carry[1] if cell.num_states > 1 else backend.placeholder(2, x.dtype)
    sizes = batching.batch_sizes
    if cell.norm is not None:
        dx, grads = _norm_layer_backward(cell, cache, params, doutput, batching, c_seq,
                                         dh_carry, dc_carry, dgx, dgh, kernel_dgh, kernel_zo,
                                         zoned)
        return dx, tuple(carry), grads
    kernels = step_kernels(cell, x.dtype)
    if m_seq is not None:
        # h_t = m_t·W_hrᵀ: the kernel takes the gradient of m_t (as its dy, with a zero
        # carry of its own), and d(h_t) for all t gives dW_hr in one GEMM afterwards.
        dh_seq = xp.zeros(doutput.shape, dtype=x.dtype)
        dm_seq = xp.zeros((steps, batch, hidden), dtype=x.dtype)
        dm_carry = xp.zeros((batch, hidden), dtype=x.dtype)
        views = kernel_views(dm_seq, m_seq, c_seq, saved, dm_carry, dc_carry, dgx, kernel_dgh,
                             kernel_zo)
        for t in range(len(sizes) - 1, -1, -1):
            active = sizes[t]
            xp.add(doutput[t, :active], dh_carry[:active], out=dh_seq[t, :active])
            xp.matmul(dh_seq[t, :active], params.w_hr, out=dm_seq[t, :active])
            launch(kernels.backward, active * hidden, t, active, *views, 0)
            xp.matmul(dgh[t, :active], params.w_hh, out=dh_carry[:active])
    elif path == "plain":
        dh_recurrent = xp.empty_like(dh_carry)  # dgh[t]·W_hh, before it joins the carry
        views = kernel_views(doutput, h_seq, c_seq, saved, dh_carry, dc_carry, dgx, kernel_dgh,
                             kernel_zo)
        for t in range(len(sizes) - 1, -1, -1):
            active = sizes[t]
            launch(kernels.backward, active * hidden, t, active, *views, zoned)
            xp.matmul(dgh[t, :active], params.w_hh, out=dh_recurrent[:active])
            xp.add(dh_carry[:active], dh_recurrent[:active], out=dh_carry[:active])
    else:
        # Each step's launch adds dgates[t+1]·W_hh itself; dgates[0]·W_hh, the
        # gradient of h_0 through W_hh, is left for one GEMM after the loop.
        w_hh_t = xp.ascontiguousarray(params.w_hh.T)  # a unit's W_hh column, contiguous
        if path == "fused":
            plan = fused_plan(cell, hidden, x.dtype, batch)
            views = kernel_views(doutput, w_hh_t, h_seq, c_seq, saved, dh_carry, dc_carry,
                                 dgx, kernel_dgh)
            for t in range(len(sizes) - 1, -1, -1):
                next_batch = sizes[t + 1] if t + 1 < len(sizes) else 0
                launch_grid(kernels.fused_backward, plan.blocks, plan.threads,
                            plan.backward_shared, t, sizes[t], next_batch, *views, plan.units,
                            plan.staged)
        else:
            plan = persistent_plan(cell, hidden, x.dtype, batch, mode)
            kernel, arrived = _persistent(kernels, "backward", mode)
            launch_grid(kernel, plan.blocks, plan.threads, plan.backward_shared,
                        batching.device_batch_sizes(), doutput, w_hh_t, h_seq, c_seq, saved,
                        dh_carry, dc_carry, dgx, kernel_dgh, plan.units, plan.staged,
                        arrived)
        dh_carry[:sizes[0]] += dgh[0, :sizes[0]] @ params.w_hh

    dgx_rows, dgh_rows = _rows(dgx), _rows(dgh)
    dx = (dgx_rows @ params.w_ih).reshape(x.shape)
    grads = LayerParams(
        w_ih=dgx_rows.T @ _rows(x),
        w_hh=dgh_rows.T @ _rows(h_seq[:steps]),
        b_ih=dgx_rows.sum(axis=0),
        b_hh=dgh_rows.sum(axis=0),
        w_hr=None if m_seq is None else _rows(dh_seq).T @ _rows(m_seq[1:]),
    )
    return dx, tuple(carry), grads


def _norm_layer_backward(cell, cache, params, doutput, batching, c_seq, dh_carry, dc_carry,
                         dgx, dgh, kernel_dgh, kernel_zo, zoned):
    """The rest of layer_backward for a layer-normalized cell (kernels/norm.py), with the
    arrays layer_backward made: its step kernel each step, W_hh's product by the loop,
    and the gradients of the input projection's norm and of every gain after the loop.
    Returns (dx, LayerParams of gradients); the carries end as the initial states'."""
    x, state_seqs, saved = cache.x, cache.state_seqs, cache.saved
    xhat_ih, rstd_ih, ghat, rstd = cache.norm
    steps, batch, _ = x.shape
    hidden = params.w_hh.shape[0] // cell.num_gates
    h_seq = state_seqs[0]
    state_norm = cell.norm.state_norm
    dgh_raw = xp.zeros_like(dgx)  # the gradient of h_{t-1}·W_hhᵀ
    dn_seq = (xp.zeros((steps, batch, hidden), dtype=x.dtype) if state_norm
              else backend.placeholder(3, x.dtype))
    gamma_c, _ = _state_norm_params(cell, params, x.dtype)
    dh_recurrent = xp.empty_like(dh_carry)
    backward = norm_kernels(cell, x.dtype).backward
    shared = row_shared_bytes(x.dtype)
    views = kernel_views(doutput, h_seq, c_seq, saved, ghat, rstd, params.gamma_hh, gamma_c,
                         dh_carry, dc_carry, dgx, kernel_dgh, dgh_raw, dn_seq, kernel_zo)
    sizes = batching.batch_sizes
    for t in range(len(sizes) - 1, -1, -1):
        active = sizes[t]
        launch_grid(backward, active, ROW_THREADS, shared, t, *views, zoned)
        xp.matmul(dgh_raw[t, :active], params.w_hh, out=dh_recurrent[:active])
        xp.add(dh_carry[:active], dh_recurrent[:active], out=dh_carry[:active])

    dgx_rows, dgh_rows = _rows(dgx), _rows(dgh)
    width = dgx_rows.shape[1]  # G·H; ĉ is saved from this column on (kernels/norm.py)
    dgx_raw = xp.empty_like(dgx_rows)  # back through LN(x·W_ihᵀ; γ_ih)
    launch_grid(row_kernels(x.dtype).backward, dgx_rows.shape[0], ROW_THREADS, shared,
                dgx_rows, xhat_ih, rstd_ih, params.gamma_ih, dgx_raw)
    dx = (dgx_raw @ params.w_ih).reshape(x.shape)
    extra = {}
    if state_norm:
        dn_rows = _rows(dn_seq)
        extra = dict(gamma_c=(dn_rows * _rows(saved[:, :, width:width + hidden])).sum(axis=0),
                     beta_c=dn_rows.sum(axis=0))
    grads = LayerParams(
        w_ih=dgx_raw.T @ _rows(x),
        w_hh=_rows(dgh_raw).T @ _rows(h_seq[:steps]),
        b_ih=dgx_rows.sum(axis=0),
        b_hh=dgh_rows.sum(axis=0),
        gamma_ih=(dgx_rows * xhat_ih).sum(axis=0),
        gamma_hh=(dgh_rows * _rows(ghat)).sum(axis=0),
        **extra)
    return dx, grads


#: What stack_backward needs of stack_forward: zoneout (per layer and direction the
#: weights of the previous states (T,B,S*H) in the caller's batch order, or None) and
#: weight_masks (per layer and direction W_hh's DropConnect multiplier, or None) are
#: also there to be read.
StackCache = namedtuple("StackCache", ["batching", "layers", "masks", "zoneout",
                                       "weight_masks"])


def _regularizers(cell, layers, shape, dtype, zoneout, weight_dropout, draw):
    """Per layer and direction the zoneout weights (T,B,S*H) and W_hh's DropConnect
    multiplier (or None each): training (``draw``) draws a 0/1 zoneout mask, keeping the
    previous state with probability ``zoneout``, and a mask over W_hh's elements that
    drops each with probability ``weight_dropout`` and scales the kept ones by
    1/(1 − p), once per call; eval uses z = p and W_hh as it is."""
    steps, batch = shape
    zo, wm = [], []
    for directions in layers:
        zo.append([None] * len(directions))
        wm.append([None] * len(directions))
        for d, params in enumerate(directions):
            hidden = params.w_hh.shape[0] // cell.num_gates
            if zoneout > 0.0:
                z_shape = (steps, batch, cell.num_states * hidden)
                zo[-1][d] = (xp.full(z_shape, zoneout, dtype=dtype) if draw is None else
                             (draw(z_shape, dtype) < zoneout).astype(dtype))
            if weight_dropout > 0.0 and draw is not None:
                wm[-1][d] = dropout_mask(params.w_hh.shape, weight_dropout, dtype,
                                         draw=lambda shape: draw(shape, dtype))
    return zo, wm


def _dropped(layers, weight_masks):
    """The layers with each W_hh multiplied by its DropConnect mask, where it has one."""
    return [[p if m is None else p._replace(w_hh=p.w_hh * m)
             for p, m in zip(directions, masks)]
            for directions, masks in zip(layers, weight_masks)]


def stack_forward(cell, x, states0, layers, lengths=None, dropout=0.0, random=None,
                  zoneout=0.0, weight_dropout=0.0, draw=None):
    """Run ``len(layers)`` layers, each feeding the next, each with one or two directions.

    x (T,B,I); states0: ``cell.num_states`` arrays (L*D,B,H), layer-major (layer 0
    forward, layer 0 reverse, layer 1 forward, ...); layers: L lists of D LayerParams;
    lengths: None or B lengths; dropout: the probability of zeroing an output of every
    layer but the last, with ``random(shape)`` drawing U[0,1) masks (None: no dropout);
    zoneout and weight_dropout (DropConnect on W_hh): probabilities, with
    ``draw(shape, dtype)`` drawing U[0,1) device arrays for training-mode masks (None:
    eval, zoneout by its expectation, no DropConnect); see ``_regularizers``.
    Returns (output (T,B,D*P), final states as (L*D,B,H) arrays, StackCache).
    """
    steps, batch, _ = x.shape
    batching = Batching(lengths, steps, batch)
    zo, weight_masks = _regularizers(cell, layers, (steps, batch), x.dtype, zoneout,
                                     weight_dropout, draw)
    layers = _dropped(layers, weight_masks)
    states0 = [batching.sort(s) for s in states0]
    inputs = batching.sort(x)
    caches, masks, finals = [], [], []
    num_dirs = len(layers[0])
    for k, directions in enumerate(layers):
        outputs, layer_caches = [None] * num_dirs, [None] * num_dirs
        with backend.concurrently(num_dirs) as streams:
            for d, params in enumerate(directions):
                with streams[d]:
                    source = inputs if d == 0 else batching.reverse(inputs)
                    index = k * num_dirs + d
                    z = (None if zo[k][d] is None
                         else xp.ascontiguousarray(batching.sort(zo[k][d])))
                    out, state_n, layer_caches[d] = layer_forward(
                        cell, source, [s[index] for s in states0], params, batching, z)
                    outputs[d] = out if d == 0 else batching.reverse(out)
                    finals.append(state_n)
        inputs = outputs[0] if num_dirs == 1 else xp.concatenate(outputs, axis=2)
        mask = None
        if random is not None and dropout > 0.0 and k < len(layers) - 1:
            mask = dropout_mask(inputs.shape, dropout, inputs.dtype, draw=random)
            inputs = inputs * mask
        caches.append(layer_caches)
        masks.append(mask)
    states_n = tuple(batching.unsort(xp.stack(per_state)) for per_state in zip(*finals))
    return batching.unsort(inputs), states_n, StackCache(batching, caches, masks, zo,
                                                         weight_masks)


def stack_backward(cell, cache, layers, doutput, dstates_n):
    """Backpropagate through the stack.

    layers: as given to stack_forward; doutput (T,B,D*P) or None; dstates_n: one
    (L*D,B,H) array or None per state. Returns (dx (T,B,I), dstates0 as (L*D,B,H)
    arrays, per layer a list of D LayerParams of gradients, W_hh's with respect to the
    parameter itself where DropConnect masked it).
    """
    batching, caches, masks, _, weight_masks = cache
    layers = _dropped(layers, weight_masks)
    num_layers, num_dirs = len(layers), len(layers[0])
    dstates_n = [None if d is None else batching.sort(d) for d in dstates_n]
    dstates0 = [[None] * (num_layers * num_dirs) for _ in range(cell.num_states)]
    grads = [[None] * num_dirs for _ in range(num_layers)]
    dinputs = None if doutput is None else batching.sort(doutput)
    for k in range(num_layers - 1, -1, -1):
        if masks[k] is not None and dinputs is not None:
            dinputs = dinputs * masks[k]
        width = None if dinputs is None else dinputs.shape[2] // num_dirs
        dxs = [None] * num_dirs
        with backend.concurrently(num_dirs) as streams:
            for d in range(num_dirs):
                with streams[d]:
                    index = k * num_dirs + d
                    dout = None if dinputs is None else dinputs[:, :, d * width:(d + 1) * width]
                    if d == 1 and dout is not None:
                        dout = batching.reverse(dout)
                    dx, layer_dstates0, grads[k][d] = layer_backward(
                        cell, caches[k][d], layers[k][d], dout,
                        [None if s is None else s[index] for s in dstates_n], batching)
                    dxs[d] = dx if d == 0 else batching.reverse(dx)
                    for s, state in enumerate(layer_dstates0):
                        dstates0[s][index] = state
        dinputs = dxs[0] if num_dirs == 1 else dxs[0] + dxs[1]
    for k, masks_k in enumerate(weight_masks):
        for d, mask in enumerate(masks_k):
            if mask is not None:  # the gradient reaches W_hh through the mask
                grads[k][d] = grads[k][d]._replace(w_hh=grads[k][d].w_hh * mask)
    return (batching.unsort(dinputs),
            tuple(batching.unsort(xp.stack(d)) for d in dstates0), grads)


def _rows(a):
    """(T,B,N) as (T*B,N), for the GEMMs over all steps at once."""
    return a.reshape(-1, a.shape[-1])
