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

Besides the plain cells, "ln_lstm" and "ln_gru" are layer-normalised cells (each cell's
docstring gives its parameters; no w_hr). ``stack_forward`` also takes ``zoneout`` (per
step, per state, the weight that keeps the previous state: h = z⊙h_prev + (1-z)⊙h_cell,
Krueger et al. 2016) and ``weight_masks`` (DropConnect on w_hh, whose gradient is returned
for the raw w_hh), both for layers without a projection.
"""
import numpy as np


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def lstm_forward_step(x, states, params):
    h_prev, c_prev = states
    w_ih, w_hh, b_ih, b_hh = params[:4]
    w_hr = params[4] if len(params) > 4 else None
    a = x @ w_ih.T + b_ih + h_prev @ w_hh.T + b_hh
    a_i, a_f, a_g, a_o = np.split(a, 4, axis=1)
    i, f, g, o = sigmoid(a_i), sigmoid(a_f), np.tanh(a_g), sigmoid(a_o)
    c = f * c_prev + i * g
    m = o * np.tanh(c)
    h = m if w_hr is None else m @ w_hr.T
    return (h, c), (x, h_prev, c_prev, c, i, f, g, o, m, params)


def lstm_backward_step(dstates, cache):
    dh, dc = dstates
    x, h_prev, c_prev, c, i, f, g, o, m, params = cache
    w_ih, w_hh = params[:2]
    dparams_hr = ()
    if len(params) > 4:  # h = m·W_hrᵀ
        dparams_hr = (dh.T @ m,)
        dh = dh @ params[4]
    tanh_c = np.tanh(c)
    dc = dc + dh * o * (1 - tanh_c**2)
    da = np.concatenate(
        [dc * g * i * (1 - i), dc * c_prev * f * (1 - f), dc * i * (1 - g**2),
         dh * tanh_c * o * (1 - o)],
        axis=1,
    )
    dparams = (da.T @ x, da.T @ h_prev, da.sum(0), da.sum(0)) + dparams_hr
    return da @ w_ih, (da @ w_hh, dc * f), dparams


def gru_forward_step(x, states, params):
    (h_prev,) = states
    w_ih, w_hh, b_ih, b_hh = params
    gx_r, gx_z, gx_n = np.split(x @ w_ih.T + b_ih, 3, axis=1)
    gh_r, gh_z, gh_n = np.split(h_prev @ w_hh.T + b_hh, 3, axis=1)
    r, z = sigmoid(gx_r + gh_r), sigmoid(gx_z + gh_z)
    n = np.tanh(gx_n + r * gh_n)
    h = (1 - z) * n + z * h_prev
    return (h,), (x, h_prev, r, z, n, gh_n, params)


def gru_backward_step(dstates, cache):
    (dh,) = dstates
    x, h_prev, r, z, n, gh_n, (w_ih, w_hh, _, _) = cache
    da_n = dh * (1 - z) * (1 - n**2)
    da_r = da_n * gh_n * r * (1 - r)
    da_z = dh * (h_prev - n) * z * (1 - z)
    dgx = np.concatenate([da_r, da_z, da_n], axis=1)
    dgh = np.concatenate([da_r, da_z, da_n * r], axis=1)
    dparams = (dgx.T @ x, dgh.T @ h_prev, dgx.sum(0), dgh.sum(0))
    return dgx @ w_ih, (dh * z + dgh @ w_hh,), dparams


def _rnn_forward_step(activation):
    def forward(x, states, params):
        (h_prev,) = states
        w_ih, w_hh, b_ih, b_hh = params
        a = x @ w_ih.T + b_ih + h_prev @ w_hh.T + b_hh
        return (activation(a),), (x, h_prev, a, params)
    return forward


def _rnn_backward_step(derivative):
    def backward(dstates, cache):
        (dh,) = dstates
        x, h_prev, a, (w_ih, w_hh, _, _) = cache
        da = dh * derivative(a)
        return da @ w_ih, (da @ w_hh,), (da.T @ x, da.T @ h_prev, da.sum(0), da.sum(0))
    return backward


rnn_tanh_forward_step = _rnn_forward_step(np.tanh)
rnn_tanh_backward_step = _rnn_backward_step(lambda a: 1 - np.tanh(a) ** 2)
rnn_relu_forward_step = _rnn_forward_step(lambda a: np.maximum(a, 0.0))
rnn_relu_backward_step = _rnn_backward_step(lambda a: (a > 0).astype(np.float64))

LAYER_NORM_EPS = 1e-5


def layer_norm_forward(v, gamma, beta=None):
    """LN(v; γ, β) over the last axis of ``v`` (mean and biased variance, as
    torch.nn.LayerNorm, eps 1e-5); returns (y, cache)."""
    mean = v.mean(axis=-1, keepdims=True)
    rstd = 1.0 / np.sqrt(((v - mean) ** 2).mean(axis=-1, keepdims=True) + LAYER_NORM_EPS)
    x_hat = (v - mean) * rstd
    y = gamma * x_hat
    if beta is not None:
        y = y + beta
    return y, (x_hat, rstd, gamma)


def layer_norm_backward(dy, cache):
    """Gradients of LN given dy: (dv, dγ, dβ), dβ summed over the rows as dγ is."""
    x_hat, rstd, gamma = cache
    dy_hat = dy * gamma
    dv = rstd * (dy_hat - dy_hat.mean(axis=-1, keepdims=True)
                 - x_hat * (dy_hat * x_hat).mean(axis=-1, keepdims=True))
    return dv, (dy * x_hat).sum(0), dy.sum(0)


def ln_lstm_forward_step(x, states, params):
    """Layer-normalised LSTM; params = (w_ih (4H,I), w_hh (4H,H), b (4H,), gamma_ih (4H,),
    gamma_hh (4H,), gamma_c (H,), beta_c (H,)):
    a = LN(x·W_ihᵀ; γ_ih) + LN(h·W_hhᵀ; γ_hh) + b, c' = f⊙c + i⊙g,
    h' = o⊙tanh(LN(c'; γ_c, β_c))."""
    h_prev, c_prev = states
    w_ih, w_hh, b, gamma_ih, gamma_hh, gamma_c, beta_c = params
    ln_x, ln_x_cache = layer_norm_forward(x @ w_ih.T, gamma_ih)
    ln_h, ln_h_cache = layer_norm_forward(h_prev @ w_hh.T, gamma_hh)
    a = ln_x + ln_h + b
    a_i, a_f, a_g, a_o = np.split(a, 4, axis=1)
    i, f, g, o = sigmoid(a_i), sigmoid(a_f), np.tanh(a_g), sigmoid(a_o)
    c = f * c_prev + i * g
    ln_c, ln_c_cache = layer_norm_forward(c, gamma_c, beta_c)
    tanh_c = np.tanh(ln_c)
    h = o * tanh_c
    return (h, c), (x, h_prev, c_prev, i, f, g, o, tanh_c, ln_x_cache, ln_h_cache,
                    ln_c_cache, params)


def ln_lstm_backward_step(dstates, cache):
    dh, dc = dstates
    (x, h_prev, c_prev, i, f, g, o, tanh_c, ln_x_cache, ln_h_cache, ln_c_cache,
     params) = cache
    w_ih, w_hh = params[:2]
    dc_ln, dgamma_c, dbeta_c = layer_norm_backward(dh * o * (1 - tanh_c**2), ln_c_cache)
    dc = dc + dc_ln
    da = np.concatenate(
        [dc * g * i * (1 - i), dc * c_prev * f * (1 - f), dc * i * (1 - g**2),
         dh * tanh_c * o * (1 - o)],
        axis=1,
    )
    dpx, dgamma_ih, _ = layer_norm_backward(da, ln_x_cache)
    dph, dgamma_hh, _ = layer_norm_backward(da, ln_h_cache)
    dparams = (dpx.T @ x, dph.T @ h_prev, da.sum(0), dgamma_ih, dgamma_hh, dgamma_c,
               dbeta_c)
    return dpx @ w_ih, (dph @ w_hh, dc * f), dparams


def ln_gru_forward_step(x, states, params):
    """Layer-normalised GRU; params = (w_ih (3H,I), w_hh (3H,H), b_ih (3H,), b_hh (3H,),
    gamma_ih (3H,), gamma_hh (3H,)): gx = LN(x·W_ihᵀ; γ_ih) + b_ih,
    gh = LN(h·W_hhᵀ; γ_hh) + b_hh, then the GRU's gates on gx and gh."""
    (h_prev,) = states
    w_ih, w_hh, b_ih, b_hh, gamma_ih, gamma_hh = params
    ln_x, ln_x_cache = layer_norm_forward(x @ w_ih.T, gamma_ih)
    ln_h, ln_h_cache = layer_norm_forward(h_prev @ w_hh.T, gamma_hh)
    gx_r, gx_z, gx_n = np.split(ln_x + b_ih, 3, axis=1)
    gh_r, gh_z, gh_n = np.split(ln_h + b_hh, 3, axis=1)
    r, z = sigmoid(gx_r + gh_r), sigmoid(gx_z + gh_z)
    n = np.tanh(gx_n + r * gh_n)
    h = (1 - z) * n + z * h_prev
    return (h,), (x, h_prev, r, z, n, gh_n, ln_x_cache, ln_h_cache, params)


def ln_gru_backward_step(dstates, cache):
    (dh,) = dstates
    x, h_prev, r, z, n, gh_n, ln_x_cache, ln_h_cache, params = cache
    w_ih, w_hh = params[:2]
    da_n = dh * (1 - z) * (1 - n**2)
    da_r = da_n * gh_n * r * (1 - r)
    da_z = dh * (h_prev - n) * z * (1 - z)
    dgx = np.concatenate([da_r, da_z, da_n], axis=1)
    dgh = np.concatenate([da_r, da_z, da_n * r], axis=1)
    dpx, dgamma_ih, _ = layer_norm_backward(dgx, ln_x_cache)
    dph, dgamma_hh, _ = layer_norm_backward(dgh, ln_h_cache)
    dparams = (dpx.T @ x, dph.T @ h_prev, dgx.sum(0), dgh.sum(0), dgamma_ih, dgamma_hh)
    return dpx @ w_ih, (dh * z + dph @ w_hh,), dparams


CELLS = {
    "lstm": (lstm_forward_step, lstm_backward_step),
    "gru": (gru_forward_step, gru_backward_step),
    "rnn_tanh": (rnn_tanh_forward_step, rnn_tanh_backward_step),
    "rnn_relu": (rnn_relu_forward_step, rnn_relu_backward_step),
    "ln_lstm": (ln_lstm_forward_step, ln_lstm_backward_step),
    "ln_gru": (ln_gru_forward_step, ln_gru_backward_step),
}

#: How many parameters a cell takes before an optional projection w_hr (the plain cells'
#: four; the layer-normalised cells have none).
NUM_PARAMS = {"ln_lstm": 7, "ln_gru": 6}


def _f64(arrays):
    return tuple(np.asarray(a, dtype=np.float64) for a in arrays)


def _has_projection(cell, params):
    return len(params) > NUM_PARAMS.get(cell, 4)


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
    step, _ = CELLS[cell]
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
    _, step_backward = CELLS[cell]
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
