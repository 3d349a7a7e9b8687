"""The fused path: one kernel each step (kernels/steps.py), the recurrent product inside
it, W_hh read from memory every step; launched by the fused Plan (plan.fused_plan)."""
from ... import backend
from ...backend import kernel_views
from ...kernels.steps import step_kernels
from .. import plan as planning
from . import common

PATH = "fused"


def runs(cell):
    return True


def _plan(cell, params, x):
    return planning.fused_plan(cell, common.hidden_size(cell, params), x.dtype, x.shape[1])


def forward(cell, x, states0, params, batching, zo):
    gx = common.input_gates(x, params)
    seqs = common.sequences(cell, x, states0, params)
    kernels = step_kernels(cell, x.dtype)
    plan = _plan(cell, params, x)
    views = kernel_views(gx, params.w_hh, params.b_hh, seqs.states[0], seqs.c, seqs.saved)
    for t, active in enumerate(batching.batch_sizes):
        backend.launch_grid(kernels.fused_forward, plan.blocks, plan.threads,
                            plan.forward_shared, t, active, *views, plan.units, plan.staged)
    return common.finish(PATH, x, seqs, batching, zo)


def backward(cell, cache, params, doutput, carry, batching):
    x = cache.x
    loop = common.backward_loop(cell, cache, params, carry)
    kernels = step_kernels(cell, x.dtype)
    plan = _plan(cell, params, x)
    views = kernel_views(doutput, common.w_hh_columns(params), loop.h_seq, loop.c_seq,
                         cache.saved, loop.dh_carry, loop.dc_carry, loop.dgx, loop.kernel_dgh)
    sizes = batching.batch_sizes
    for t in range(len(sizes) - 1, -1, -1):
        next_batch = sizes[t + 1] if t + 1 < len(sizes) else 0
        backend.launch_grid(kernels.fused_backward, plan.blocks, plan.threads,
                            plan.backward_shared, t, sizes[t], next_batch, *views, plan.units,
                            plan.staged)
    common.add_first_recurrent(loop, params, batching)
    return common.gradients(x, loop.h_seq, params, loop.dgx, loop.dgh)
