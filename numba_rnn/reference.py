"""NumPy float64 reference of every cell and of the layer stack: the oracle that the
kernels are held against. Forward and hand-written backward, side by side, with no
autograd and no code shared with the kernels or the time loop they run in.

A cell step takes ``x`` (B,I), the previous states (a tuple, ``h`` first) and
``params = (w_ih (G*H,I), w_hh (G*H,P), b_ih (G*H,), b_hh (G*H,)[, w_hr (P,H)])``, and
returns the new states and a cache; its backward takes the gradients of the new states
and the cache and returns ``dx``, the gradients of the previous states and of the
parameters. The stack runs every sequence of the batch on its own, over its own length,
and the reverse direction on the sequence reversed: plainly, the definition that the
packed, sorted time loop of ``numba_rnn.recurrent`` must agree with.

Each cell's step lives in the cell's own file (``kernels/<cell>.py``), given to its
``Cell`` as ``reference``; ``cell`` here is a registered cell's name (or the Cell), and
``params`` are in the order of the cell's parameter layout (``Cell.parameters``; the
layer-normalised cells' docstrings give theirs, without w_hr). ``stack_forward`` also
takes ``zoneout`` (per step, per state, the weight that keeps the previous state:
h = z⊙h_prev + (1-z)⊙h_cell, Krueger et al. 2016) and ``weight_masks`` (DropConnect on w_hh, whose gradient is returned
for the raw w_hh), both for layers without a projection.
"""
from collections.abc import Mapping

import numpy as np

from .kernels import cells
from .kernels.cells import (LAYER_NORM_EPS, layer_norm_backward,  # noqa: F401 (re-exported)
                            layer_norm_forward, sigmoid)


class _References(Mapping):
    """``CELLS[name]``: the (forward_step, backward_step) of every registered cell that
    has a reference (the cells' own files define them; kernels.cells registers them)."""

    def _items(self):
        return {name: cell.reference for name, cell in cells.CELLS.items()
                if cell.reference is not None}

    def __getitem__(self, name):
        return self._items()[name]

    def __iter__(self):
        return iter(self._items())

    def __len__(self):
        return len(self._items())


CELLS = _References()


def _steps(cell):
    """The registered cell's (forward_step, backward_step); ``cell`` a name or a Cell."""
    spec = cells.lookup(cell)
    if spec.reference is None:
        raise ValueError(f"cell {spec.name!r}: no NumPy reference step was given")
    return spec.reference


def _num_params(cell):
    """How many parameters a cell's step takes before an optional projection w_hr."""
    return sum(p.when != "projection" for p in cells.lookup(cell).parameters)


def _f64(arrays):
    return tuple(np.asarray(a, dtype=np.float64) for a in arrays)


def _has_projection(cell, params):
    return len(params) > _num_params(cell)


def _zoneout_of(zoneout, k, d, states0, steps, batch):
    """Layer k, direction d's zoneout: a tuple with per state a (T,B,H) array or None, or
    None where no state of it zones out."""
    if zoneout is None or zoneout[k] is None or zoneout[k][d] is None:
        return None
    arrays = tuple(zoneout[k][d])
    if len(arrays) != len(states0):
        raise ValueError(f"zoneout of layer {k} direction {d}: {len(arrays)} arrays for "
                         f"{len(states0)} states")
    zones = []
    for state0, z in zip(states0, arrays):
        if z is not None:
            z = np.asarray(z, dtype=np.float64)
            if z.shape != (steps, batch, state0.shape[2]):
                raise ValueError(f"zoneout of layer {k} direction {d}: shape {z.shape}, "
                                 f"expected {(steps, batch, state0.shape[2])}")
        zones.append(z)
    return tuple(zones) if any(z is not None for z in zones) else None


def _weight_mask_of(weight_masks, k, d, params):
    """Layer k, direction d's DropConnect mask of w_hh, or None."""
    if weight_masks is None or weight_masks[k] is None or weight_masks[k][d] is None:
        return None
    mask = np.asarray(weight_masks[k][d], dtype=np.float64)
    if mask.shape != params[1].shape:
        raise ValueError(f"weight mask of layer {k} direction {d}: shape {mask.shape}, "
                         f"expected w_hh's {params[1].shape}")
    return mask


def stack_forward(cell, x, states0, layers, lengths=None, masks=None, zoneout=None,
                  weight_masks=None):
    """x (T,B,I); states0: per state an (L*D,B,H) array, layer-major; layers: L lists of D
    parameter tuples; lengths: None or B
    lengths; masks: None or per layer a dropout multiplier for its output (or None).
    zoneout: None or per layer (or None) a list per direction (or None) of a tuple with
    per state (h first) a (T,B,H) array z (or None): at the s-th step a direction
    processes for entry b, h = z[s,b]⊙h_prev + (1 - z[s,b])⊙h_cell, and so for c.
    weight_masks: None or per layer (or None) a list per direction of an array of w_hh's
    shape (or None): the cell steps with w_hh ⊙ mask (DropConnect). Neither with w_hr.
    Returns (output (T,B,D*P), final states (L*D,B,H) each, caches)."""
    step, _ = _steps(cell)
    inputs = np.asarray(x, dtype=np.float64)
    steps, batch, _ = inputs.shape
    lengths = [steps] * batch if lengths is None else [int(n) for n in lengths]
    states0 = _f64(states0)
    finals = [np.zeros_like(s) for s in states0]
    caches, zone_caches, used_weight_masks = {}, {}, {}
    for k, directions in enumerate(layers):
        outputs = []
        for d, params in enumerate(directions):
            params = _f64(p for p in params if p is not None)
            index = k * len(directions) + d
            zones = _zoneout_of(zoneout, k, d, states0, steps, batch)
            weight_mask = _weight_mask_of(weight_masks, k, d, params)
            if (zones is not None or weight_mask is not None) and _has_projection(cell, params):
                raise ValueError(f"layer {k} direction {d}: zoneout and weight masks are "
                                 "for layers without a projection (w_hr)")
            if weight_mask is not None:
                params = params[:1] + (params[1] * weight_mask,) + params[2:]
                used_weight_masks[k, d] = weight_mask
            output = None
            for b, length in enumerate(lengths):
                seq = inputs[:length, b:b + 1]
                seq = seq[::-1] if d else seq
                states = tuple(s[index, b:b + 1] for s in states0)
                outs, caches[k, d, b] = [], []
                if zones is not None:
                    zone_caches[k, d, b] = []
                for s_index, x_t in enumerate(seq):
                    new_states, cache = step(x_t, states, params)
                    if zones is not None:  # zoneout: keep part of the previous states
                        z_step = tuple(None if z is None else z[s_index, b:b + 1]
                                       for z in zones)
                        new_states = tuple(
                            new if z is None else z * prev + (1 - z) * new
                            for new, prev, z in zip(new_states, states, z_step))
                        zone_caches[k, d, b].append(z_step)
                    states = new_states
                    outs.append(states[0][0])
                    caches[k, d, b].append(cache)
                outs = np.stack(outs)[::-1] if d else np.stack(outs)
                if output is None:
                    output = np.zeros((steps, batch, outs.shape[-1]))
                output[:length, b] = outs
                for s, state in enumerate(states):
                    finals[s][index, b] = state[0]
            outputs.append(output)
        inputs = np.concatenate(outputs, axis=2)
        if masks is not None and masks[k] is not None:
            inputs = inputs * masks[k]
    return inputs, tuple(finals), (layers, lengths, masks, caches, zone_caches,
                                   used_weight_masks)


def stack_backward(cell, doutput, dstates_n, caches):
    """Gradients of the loss given d(output) (T,B,D*P) and d(final states) (L*D,B,H)
    each. Returns (dx (T,B,I), dstates0 (L*D,B,H) each, per layer a list of D tuples of
    parameter gradients); a masked w_hh's gradient is that of the raw, unmasked w_hh."""
    _, step_backward = _steps(cell)
    layers, lengths, masks, step_caches = caches[:4]
    zone_caches, weight_masks = caches[4:] if len(caches) > 4 else ({}, {})
    dinputs = np.asarray(doutput, dtype=np.float64)
    dstates_n = _f64(dstates_n)
    dstates0 = [np.zeros_like(d) for d in dstates_n]
    grads = [[None] * len(directions) for directions in layers]
    for k in range(len(layers) - 1, -1, -1):
        if masks is not None and masks[k] is not None:
            dinputs = dinputs * masks[k]
        num_dirs = len(layers[k])
        width = dinputs.shape[2] // num_dirs
        dx = None
        for d in range(num_dirs):
            index = k * num_dirs + d
            for b, length in enumerate(lengths):
                dout = dinputs[:length, b:b + 1, d * width:(d + 1) * width]
                dout = dout[::-1] if d else dout
                dstates = tuple(s[index, b:b + 1] for s in dstates_n)
                zone_steps = zone_caches.get((k, d, b))
                dseq = [None] * length
                for t in range(length - 1, -1, -1):
                    dstates = (dstates[0] + dout[t],) + dstates[1:]
                    dcell = dstates
                    if zone_steps is not None:  # (1 - z) to the cell, z to the previous
                        z_step = zone_steps[t]
                        dcell = tuple(ds if z is None else (1 - z) * ds
                                      for ds, z in zip(dstates, z_step))
                    dseq[t], dprev, step_grads = step_backward(dcell, step_caches[k, d, b][t])
                    if zone_steps is not None:
                        dprev = tuple(dp if z is None else dp + z * ds
                                      for dp, ds, z in zip(dprev, dstates, z_step))
                    dstates = dprev
                    grads[k][d] = step_grads if grads[k][d] is None else tuple(
                        a + g for a, g in zip(grads[k][d], step_grads))
                dseq = np.concatenate(dseq[::-1] if d else dseq)
                if dx is None:
                    dx = np.zeros(dinputs.shape[:2] + (dseq.shape[-1],))
                dx[:length, b] += dseq
                for s, state in enumerate(dstates):
                    dstates0[s][index, b] = state[0]
            if (k, d) in weight_masks:  # d(w_hh ⊙ mask)/d w_hh
                g = grads[k][d]
                grads[k][d] = g[:1] + (g[1] * weight_masks[k, d],) + g[2:]
        dinputs = dx
    return dinputs, tuple(dstates0), grads
