"""NumPy float64 reference of every cell and of the layer stack: the oracle that the
kernels are held against. Forward and hand-written backward, side by side, with no
autograd and no code shared with the kernels or the time loop they run in.

A cell step takes ``x`` (B,I), the previous states (a tuple, ``h`` first) and
``params = (w_ih (G*H,I), w_hh (G*H,H), b_ih (G*H,), b_hh (G*H,))``, and returns the new
states and a cache; its backward takes the gradients of the new states and the cache and
returns ``dx``, the gradients of the previous states and of the four parameters.
"""
import numpy as np


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def lstm_forward_step(x, states, params):
    h_prev, c_prev = states
    w_ih, w_hh, b_ih, b_hh = params
    a = x @ w_ih.T + b_ih + h_prev @ w_hh.T + b_hh
    a_i, a_f, a_g, a_o = np.split(a, 4, axis=1)
    i, f, g, o = sigmoid(a_i), sigmoid(a_f), np.tanh(a_g), sigmoid(a_o)
    c = f * c_prev + i * g
    h = o * np.tanh(c)
    return (h, c), (x, h_prev, c_prev, c, i, f, g, o, params)


def lstm_backward_step(dstates, cache):
    dh, dc = dstates
    x, h_prev, c_prev, c, i, f, g, o, (w_ih, w_hh, _, _) = cache
    tanh_c = np.tanh(c)
    dc = dc + dh * o * (1 - tanh_c**2)
    da = np.concatenate(
        [dc * g * i * (1 - i), dc * c_prev * f * (1 - f), dc * i * (1 - g**2),
         dh * tanh_c * o * (1 - o)],
        axis=1,
    )
    dparams = (da.T @ x, da.T @ h_prev, da.sum(0), da.sum(0))
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


CELLS = {
    "lstm": (lstm_forward_step, lstm_backward_step),
    "gru": (gru_forward_step, gru_backward_step),
}


def stack_forward(cell, x, states0, layers):
    """x (T,B,I); states0: per state an (L,B,H) array; layers: L tuples of 4 parameters.
    Returns (output (T,B,H), final states (L,B,H) each, caches)."""
    step, _ = CELLS[cell]
    x = np.asarray(x, dtype=np.float64)
    caches, finals = [], []
    for k, params in enumerate(layers):
        params = tuple(np.asarray(p, dtype=np.float64) for p in params)
        states = tuple(np.asarray(s[k], dtype=np.float64) for s in states0)
        outputs, layer_caches = [], []
        for x_t in x:
            states, cache = step(x_t, states, params)
            outputs.append(states[0])
            layer_caches.append(cache)
        x = np.stack(outputs)
        caches.append(layer_caches)
        finals.append(states)
    return x, tuple(np.stack(s) for s in zip(*finals)), caches


def stack_backward(cell, doutput, dstates_n, caches):
    """Gradients of the loss given d(output) (T,B,H) and d(final states) (L,B,H) each.
    Returns (dx (T,B,I), dstates0 (L,B,H) each, per layer a tuple of 4 parameter grads)."""
    _, step_backward = CELLS[cell]
    dx = np.asarray(doutput, dtype=np.float64)
    dstates0, grads = [], []
    for k in range(len(caches) - 1, -1, -1):
        dstates = tuple(np.asarray(d[k], dtype=np.float64) for d in dstates_n)
        dparams = None
        dinputs = [None] * len(caches[k])
        for t in range(len(caches[k]) - 1, -1, -1):
            dstates = (dstates[0] + dx[t],) + dstates[1:]
            dinputs[t], dstates, step_grads = step_backward(dstates, caches[k][t])
            dparams = step_grads if dparams is None else tuple(
                a + b for a, b in zip(dparams, step_grads)
            )
        dx = np.stack(dinputs)
        dstates0.insert(0, dstates)
        grads.insert(0, dparams)
    return dx, tuple(np.stack(s) for s in zip(*dstates0)), grads
