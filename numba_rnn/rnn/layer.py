"""One direction of one layer over a sorted batch, forward and backward: the path
(plan.choose_path), the module that runs it (paths.lookup), and that module's call."""
from ..backend import xp
from . import paths
from .paths.common import hidden_size
from .plan import choose_path


def layer_forward(cell, x, states0, params, batching, zo=None):
    """Run one layer in one direction over a sorted batch.

    x (T,B,I); states0: ``cell.num_states`` arrays (B,H) (h is (B,P) with a projection);
    params: LayerParams with w_ih (G*H,I), w_hh (G*H,P), b_ih and b_hh (G*H,), w_hr (P,H)
    or None (and the layer norms' gains for a layer-normalized cell); zo: None or the
    zoneout weights of the previous states (T,B,S*H), by step and sorted row.
    Returns (output (T,B,P), final states, LayerCache).
    """
    batch = x.shape[1]
    path = choose_path(cell, batch, hidden_size(cell, params), x.dtype,
                       params.w_hr is not None, zoneout=zo is not None)
    if zo is not None and params.w_hr is not None:
        raise ValueError("zoneout: not supported with a projection (proj_size): the state "
                         "that zoneout mixes would be the one before W_hr")
    name, module = paths.lookup(path, cell)
    output, finals, cache = module.forward(cell, x, states0, params, batching, zo)
    return output, finals, cache._replace(runner=name)


def layer_backward(cell, cache, params, doutput, dfinals, batching):
    """Backpropagate through one layer in one direction, on the forward's path.

    doutput (T,B,P) or None; dfinals: one array (B,H) or None per state.
    Returns (dx (T,B,I), dstates0 tuple, LayerParams of gradients).
    """
    x, h_seq = cache.x, cache.state_seqs[0]
    batch = x.shape[1]
    if doutput is None:
        doutput = xp.zeros(h_seq[1:].shape, dtype=x.dtype)
    else:  # gradients may arrive as broadcast (read-only, zero-stride) views
        doutput = xp.ascontiguousarray(doutput, dtype=x.dtype)
    widths = [h_seq.shape[-1]] + [hidden_size(cell, params)] * (cell.num_states - 1)
    carry = [
        xp.zeros((batch, w), dtype=x.dtype) if d is None else xp.array(d, dtype=x.dtype)
        for w, d in zip(widths, dfinals)
    ]
    dx, grads = paths.REGISTRY[cache.runner].backward(cell, cache, params, doutput, carry,
                                                      batching)
    return dx, tuple(carry), grads
