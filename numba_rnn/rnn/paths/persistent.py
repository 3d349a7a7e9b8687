"""The persistent path on a GPU: one cooperative kernel for the whole sequence
(kernels/steps.py), W_hh held on chip, its steps separated by the thread's handoff
(plan.use_handoff), which the forward keeps for its backward; launched by the persistent
Plan (plan.persistent_plan). The CPU's "persistent" is paths/region.py."""
import numpy as np

from ... import backend
from ...backend import xp
from ...kernels.steps import step_kernels
from .. import plan as planning
from . import common

PATH = "persistent"


def runs(cell):
    return True


def _persistent(kernels, direction, mode):
    """The persistent kernel of ``direction`` for handoff ``mode``, and its arrival
    counter: a zero for the flags, a stand-in for the grid barrier."""
    if mode == "grid":
        return getattr(kernels, "persistent_" + direction), backend.placeholder(1, np.int32)
    return getattr(kernels, f"persistent_{direction}_flags"), xp.zeros(1, dtype=np.int32)


def _launch(cell, params, x, direction, mode, batching, *args):
    """The persistent kernel of ``direction`` over ``args`` (between the batch sizes and
    the plan's figures)."""
    plan = planning.persistent_plan(cell, common.hidden_size(cell, params), x.dtype,
                                    x.shape[1], mode)
    kernel, arrived = _persistent(step_kernels(cell, x.dtype), direction, mode)
    shared = plan.forward_shared if direction == "forward" else plan.backward_shared
    backend.launch_grid(kernel, plan.blocks, plan.threads, shared,
                        batching.device_batch_sizes(), *args, plan.units, plan.staged, arrived)


def forward(cell, x, states0, params, batching, zo):
    mode = planning.handoff()
    gx = common.input_gates(x, params)
    seqs = common.sequences(cell, x, states0, params)
    _launch(cell, params, x, "forward", mode, batching, gx, params.w_hh, params.b_hh,
            seqs.states[0], seqs.c, seqs.saved)
    return common.finish(PATH, x, seqs, batching, zo, handoff=mode)


def backward(cell, cache, params, doutput, carry, batching):
    loop = common.backward_loop(cell, cache, params, carry)
    _launch(cell, params, cache.x, "backward", cache.handoff, batching, doutput,
            common.w_hh_columns(params), loop.h_seq, loop.c_seq, cache.saved, loop.dh_carry,
            loop.dc_carry, loop.dgx, loop.kernel_dgh)
    common.add_first_recurrent(loop, params, batching)
    return common.gradients(cache.x, loop.h_seq, params, loop.dgx, loop.dgh)
