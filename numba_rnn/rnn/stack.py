"""A stack of layers and directions over a batch with variable lengths and dropout,
forward and backward (backpropagation through time), each layer-direction by
``layer.layer_forward`` and ``layer.layer_backward``.

Everything here works on device arrays, time-major: ``x`` is (T, B, I), states are
(B, H) per layer and direction, or (L*D, B, H) for a stack. Inputs are assumed valid:
``numba_rnn.nn`` checks them before calling in. What a cell contributes is described in
``numba_rnn.kernels.common``; nothing here knows which cell it runs.

Variable lengths follow cuDNN's packed layout: the batch is sorted once, longest first, so
that the sequences still running at step t are the first ``batch_sizes[t]`` rows; each
step then works on those rows only, and finished sequences cost nothing. The reverse
direction runs the same loop on each sequence reversed within its own length.
"""
from collections import namedtuple

import numpy as np

from .. import backend
from ..backend import xp
from ..random import dropout_mask
from .layer import layer_backward, layer_forward

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
