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

CELLS = {
    "lstm": (lstm_forward_step, lstm_backward_step),
    "gru": (gru_forward_step, gru_backward_step),
    "rnn_tanh": (rnn_tanh_forward_step, rnn_tanh_backward_step),
    "rnn_relu": (rnn_relu_forward_step, rnn_relu_backward_step),
}


def _f64(arrays):
    return tuple(np.asarray(a, dtype=np.float64) for a in arrays)


def stack_forward(cell, x, states0, layers, lengths=None, masks=None):
    """x (T,B,I); states0: per state an (L*D,B,H) array, layer-major; layers: L lists of D
    parameter tuples; lengths: None or B
    lengths; masks: None or per layer a dropout multiplier for its output (or None).
    Returns (output (T,B,D*P), final states (L*D,B,H) each, caches)."""
    step, _ = CELLS[cell]
    inputs = np.asarray(x, dtype=np.float64)
    steps, batch, _ = inputs.shape
    lengths = [steps] * batch if lengths is None else [int(n) for n in lengths]
    states0 = _f64(states0)
    finals = [np.zeros_like(s) for s in states0]
    caches = {}
    for k, directions in enumerate(layers):
        outputs = []
        for d, params in enumerate(directions):
            params = _f64(p for p in params if p is not None)
            index = k * len(directions) + d
            output = None
            for b, length in enumerate(lengths):
                seq = inputs[:length, b:b + 1]
                seq = seq[::-1] if d else seq
                states = tuple(s[index, b:b + 1] for s in states0)
                outs, caches[k, d, b] = [], []
                for x_t in seq:
                    states, cache = step(x_t, states, params)
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
    return inputs, tuple(finals), (layers, lengths, masks, caches)


def stack_backward(cell, doutput, dstates_n, caches):
    """Gradients of the loss given d(output) (T,B,D*P) and d(final states) (L*D,B,H)
    each. Returns (dx (T,B,I), dstates0 (L*D,B,H) each, per layer a list of D tuples of
    parameter gradients)."""
    _, step_backward = CELLS[cell]
    layers, lengths, masks, step_caches = caches
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
                dseq = [None] * length
                for t in range(length - 1, -1, -1):
                    dstates = (dstates[0] + dout[t],) + dstates[1:]
                    dseq[t], dstates, step_grads = step_backward(dstates, step_caches[k, d, b][t])
                    grads[k][d] = step_grads if grads[k][d] is None else tuple(
                        a + g for a, g in zip(grads[k][d], step_grads))
                dseq = np.concatenate(dseq[::-1] if d else dseq)
                if dx is None:
                    dx = np.zeros(dinputs.shape[:2] + (dseq.shape[-1],))
                dx[:length, b] += dseq
                for s, state in enumerate(dstates):
                    dstates0[s][index, b] = state[0]
        dinputs = dx
    return dinputs, tuple(dstates0), grads
