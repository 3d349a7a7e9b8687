"""The persistent path on the CPU backend: one compiled parallel region for a layer's
whole time loop, forward and backward (kernels/region.py); no projection, not a
layer-normalized cell (plan.choose_path). Its states stay in the region's layout, in
the RegionState it keeps as LayerCache.saved; state_seqs holds h's sequence alone (the
GEMM of dW_hh reads it)."""
from ... import backend
from ...kernels import region
from ..plan import LayerCache, LayerParams

PATH = "persistent"


def runs(cell):
    return backend.on_cpu()


def forward(cell, x, states0, params, batching, zo):
    h_seq, finals, saved = region.layer_forward(cell, x, states0, params, batching, zo)
    return h_seq[1:], tuple(finals), LayerCache(x, (h_seq,), None, saved, PATH, zo)


def backward(cell, cache, params, doutput, carry, batching):
    dx, grads = region.layer_backward(cell, cache.saved, params, doutput, carry, batching,
                                      cache.x, cache.state_seqs[0])
    return dx, LayerParams(**grads)
