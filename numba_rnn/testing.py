"""Tolerances and comparisons that tests, the demo and the benchmarks share: one table,
written once."""
import numpy as np

from . import backend, reference

#: (rtol, atol) for comparing a result computed in a dtype against a float64 oracle (the
#: NumPy reference, PyTorch in float64, or PyTorch in the same dtype).
TOLERANCES = {
    np.dtype(np.float32): (1e-4, 1e-5),
    np.dtype(np.float64): (1e-9, 1e-11),
}

#: Finite-difference gradient checks in float64: maximum relative error, measured as
#: max|analytic - numeric| / max(max|analytic|, max|numeric|) per tensor.
GRADCHECK_MAX_RELATIVE_ERROR = 1e-6


def to_numpy(a):
    """A host NumPy array from a Tensor, a device array or a CPU torch tensor."""
    if hasattr(a, "_array") and backend.is_device_array(getattr(a, "_array")):
        a = a._array  # a numba_rnn Tensor
    if hasattr(a, "detach") and hasattr(a, "cpu"):
        a = a.detach().cpu().numpy()
    return np.asarray(backend.to_host(a))


def assert_close(actual, expected, dtype, name="value"):
    """Assert ``actual`` (computed in ``dtype``) matches ``expected`` within TOLERANCES."""
    rtol, atol = TOLERANCES[np.dtype(dtype)]
    actual, expected = to_numpy(actual), to_numpy(expected)
    if actual.shape != expected.shape:
        raise AssertionError(f"{name}: shape {actual.shape} != expected {expected.shape}")
    np.testing.assert_allclose(actual.astype(np.float64), expected.astype(np.float64),
                               rtol=rtol, atol=atol, err_msg=name)


def relative_error(analytic, numeric):
    """max|analytic - numeric| / max(max|analytic|, max|numeric|): an error relative to the
    tensor's scale, meaningful also where single elements are near zero."""
    analytic = to_numpy(analytic).astype(np.float64)
    numeric = to_numpy(numeric).astype(np.float64)
    scale = max(np.max(np.abs(analytic), initial=0.0), np.max(np.abs(numeric), initial=0.0))
    if scale == 0.0:
        return 0.0
    return float(np.max(np.abs(analytic - numeric)) / scale)


KINDS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")
#: The parameter kinds of a layer-direction, in the reference's order, by mode.
KINDS_OF = {"ln_lstm": ("weight_ih", "weight_hh", "bias", "gamma_ih", "gamma_hh", "gamma_c",
                        "beta_c"),
            "ln_gru": ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "gamma_ih", "gamma_hh")}
_BIASES = ("bias", "bias_ih", "bias_hh")


def num_states(mode):
    return 2 if mode in ("lstm", "ln_lstm") else 1


def reference_results(layer, x, states, upstream, lengths=None):
    """The NumPy reference's output, final states and every gradient, in float64, for the
    same problem."""
    mode, batch_first = layer.mode, layer.batch_first
    x_np = to_numpy(x).astype(np.float64)
    unbatched = x_np.ndim == 2

    def to_tm(a):
        a = a[:, None] if unbatched else a
        return np.swapaxes(a, 0, 1) if batch_first and not unbatched else a

    def from_tm(a):
        a = np.swapaxes(a, 0, 1) if batch_first and not unbatched else a
        return a[:, 0] if unbatched else a

    def state_tm(a):
        return a[:, None] if unbatched else a

    x_tm = to_tm(x_np)
    dirs = 2 if layer.bidirectional else 1
    sizes = [layer.proj_size or layer.hidden_size, layer.hidden_size]
    if states is None:
        states0 = tuple(np.zeros((layer.num_layers * dirs, x_tm.shape[1], size))
                        for size in sizes[: num_states(mode)])
    else:
        states0 = tuple(state_tm(to_numpy(s).astype(np.float64)) for s in states)
    named = dict(layer.named_parameters())
    kinds = KINDS_OF.get(mode, KINDS)
    layers, names = [], []
    for k in range(layer.num_layers):
        directions, direction_names = [], []
        for d in range(dirs):
            suffix = f"_l{k}" + ("_reverse" if d else "")
            rows = named["weight_ih" + suffix].shape[0]
            values = [named[kind + suffix].numpy().astype(np.float64)
                      if kind + suffix in named
                      else np.zeros(rows) if kind in _BIASES else None for kind in kinds]
            directions.append(tuple(values))
            direction_names.append([kind + suffix for kind in kinds])
        layers.append(directions)
        names.append(direction_names)
    zoneout = None
    if getattr(layer, "zoneout", 0.0) and not layer.training:  # eval: z = p everywhere
        shape = x_tm.shape[:2] + (layer.hidden_size,)
        zoneout = [[(np.full(shape, layer.zoneout),) * num_states(mode)] * dirs
                   for _ in range(layer.num_layers)]
    out, finals, caches = reference.stack_forward(mode, x_tm, states0, layers, lengths=lengths,
                                                  zoneout=zoneout)
    dx, dstates0, grads = reference.stack_backward(
        mode, to_tm(upstream[0].astype(np.float64)),
        [state_tm(u.astype(np.float64)) for u in upstream[1:]], caches)
    result = {"output": from_tm(out), "input": from_tm(dx)}
    for name, final, dstate in zip(("h_0", "c_0"), finals, dstates0):
        result[name + " final"] = final[:, 0] if unbatched else final
        if states is not None:
            result[name] = dstate[:, 0] if unbatched else dstate
    for direction_names, grad_dirs in zip(names, grads):
        for kinds, layer_grads in zip(direction_names, grad_dirs):
            result.update(zip(kinds, layer_grads))
    return result
