"""Tolerances and comparisons that tests, the demo and the benchmarks share: one table,
written once; and ``check_cell``, the finite-difference check of a cell's hand-derived
backward (numba_rnn.cells)."""
from collections import namedtuple

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


# ------------------------------------------------ check_cell: a cell's backward, checked
#: One comparison of check_cell's report: on ``backend``'s ``path``, in the problem of
#: ``steps`` steps, the gradient ``quantity`` ("dgx", "dgh", "dh_carry", "dc_carry", or a
#: parameter of the cell's own) of ``gate`` (its name; None for the states) against
#: central differences: ``error`` = max|analytic − numeric| / max(max|analytic|,
#: max|numeric|) over the block, ``where`` its worst element.
CellCheck = namedtuple("CellCheck", ["backend", "path", "steps", "quantity", "gate",
                                     "error", "where", "ok"])

#: What each quantity of the report is the gradient of, and how it is measured.
QUANTITIES = {
    "dgx": "gate's input pre-activation gx (the layer's input, with W_ih = I)",
    "dgh": "gate's recurrent pre-activation h_{t-1}·W_hhᵀ + b_hh (via b_hh and W_hh)",
    "dh_carry": "h_0, which is dh_carry + dgh·W_hh of the first step",
    "dc_carry": "c_0, the dc_carry the first step leaves",
}


def _paths_here(paths):
    """[(backend, path)] to check: the given ones (("cpu", "plain"), "simulator-fused";
    "region" names the CPU's persistent path), or every one this process can run."""
    if paths is None:
        paths = []
        for name in backend.available_backends():
            if name in ("cuda", "simulator"):
                paths += [(name, p) for p in ("plain", "fused", "persistent")]
            elif name == "cpu":
                paths += [(name, p) for p in ("plain", "persistent")]
    result = []
    for entry in paths:
        name, path = entry.split("-", 1) if isinstance(entry, str) else entry
        result.append((name, "persistent" if path == "region" else path))
    return result


def _label(name, path):
    return f"{name} {'region' if name == 'cpu' and path == 'persistent' else path}"


class CellReport:
    """check_cell's result: ``checks`` (CellCheck rows), ``skipped`` ((backend, path,
    why)), ``ok``, ``failures``, and ``str()`` a table with a diagnosis that names the
    gates whose derivatives are wrong."""

    def __init__(self, cell, tolerance, eps):
        self.cell, self.tolerance, self.eps = cell, tolerance, eps
        self.checks, self.skipped = [], []

    @property
    def ok(self):
        return bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def failures(self):
        return [c for c in self.checks if not c.ok]

    def wrong_gates(self):
        """The gates whose dgx or dgh fails in the one-step problem, where no carried
        gradient enters: the derivatives to look at first."""
        return sorted({c.gate for c in self.failures if c.steps == 1 and c.gate is not None},
                      key=str)

    def diagnosis(self):
        lines = []
        groups = {}
        gates = self.wrong_gates()
        for c in self.failures:
            if gates and (c.steps != 1 or c.gate is None):
                continue  # follows from a wrong gate: h_0 and every earlier step use it
            groups.setdefault((c.quantity, c.gate, c.steps), []).append(c)
        for (quantity, gate, steps), rows in groups.items():
            worst = max(rows, key=lambda c: c.error)
            what = f"gate {gate!r}: {quantity}" if gate is not None else quantity
            lines.append(f"  {what} is wrong ({steps}-step problem), the gradient of the "
                         f"{QUANTITIES.get(quantity, quantity)}, on "
                         f"{', '.join(_label(c.backend, c.path) for c in rows)}: worst "
                         f"{worst.error:.1e} at {worst.where}")
        one_step = {c.quantity for c in self.failures if c.steps == 1}
        if gates and len(groups) < len(self.failures):
            lines.append("  (the other failures, of h_0 and of the longer problem, follow "
                         "from these: fix them first)")
        elif self.failures and not one_step:
            lines.append("  every one-step check passes: what fails depends on the step "
                         "(saved[t], h_seq[t] indexed by t) or on the gradient carried in "
                         "(dc_carry on entry)")
        elif one_step and one_step <= {"dh_carry", "dc_carry"}:
            lines.append("  every gate's dgx and dgh pass: the carries the unit leaves "
                         "(dh_carry, dc_carry) are wrong")
        return lines

    def __str__(self):
        head = (f"check_cell({self.cell.name!r}): backward against central differences of "
                f"its forward, float64, eps {self.eps:g}; error = max|analytic - numeric| / "
                f"max|.| per block, tolerance {self.tolerance:g}")
        rows = [("path", "steps", "gradient", "gate", "error", "worst at", "")]
        rows += [(_label(c.backend, c.path), str(c.steps), c.quantity,
                  "" if c.gate is None else str(c.gate), f"{c.error:.1e}", c.where,
                  "ok" if c.ok else "WRONG") for c in self.checks]
        widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
        table = ["  " + "  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip()
                 for r in rows]
        skipped = [f"  skipped {_label(n, p)}: {why}" for n, p, why in self.skipped]
        if self.ok:
            verdict = [f"OK: {len(self.checks)} checks on "
                       f"{len({(c.backend, c.path) for c in self.checks})} paths"]
        elif not self.checks:
            verdict = ["FAILED: no path could run the cell"]
        else:
            gates = self.wrong_gates()
            verdict = [f"FAILED: {len(self.failures)} of {len(self.checks)} checks"
                       + (f"; wrong gate(s): {', '.join(map(repr, gates))}" if gates else "")
                       ] + self.diagnosis()
        return "\n".join([head] + table + skipped + verdict)

    __repr__ = __str__


def _cell_problem(cell, steps, batch, hidden, rng):
    """A one-layer float64 layer of ``cell`` whose input is its pre-activations
    (input_size G·H, W_ih = I: dL/dx is dgx itself), its states, the loss's upstream
    weights, and the leaves to perturb: name -> (tensor, gate width or None)."""
    from .nn import RecurrentLayer
    from .tensor import tensor
    gates = cell.num_gates
    layer = RecurrentLayer(cell, gates * hidden, hidden, dtype="float64")
    kinds = {p.field: p.kind + "_l0" for p in cell.parameters}
    named = dict(layer.named_parameters())
    w_ih = named[kinds["w_ih"]]
    w_ih._array[...] = backend.to_device(np.eye(gates * hidden), w_ih._array.dtype)
    x = tensor(rng.standard_normal((steps, batch, gates * hidden)), dtype="float64",
               requires_grad=True)
    states = [tensor(0.8 * rng.standard_normal((1, batch, hidden)), dtype="float64",
                     requires_grad=True) for _ in range(cell.num_states)]
    upstream = [tensor(rng.standard_normal((steps, batch, hidden)), dtype="float64")] + [
        tensor(rng.standard_normal((1, batch, hidden)), dtype="float64") for _ in states]
    leaves = {"dgx": x}
    for field, quantity in (("b_hh", "dgh/b_hh"), ("w_hh", "dgh/w_hh")):
        if field in kinds and kinds[field] in named:
            leaves[quantity] = named[kinds[field]]
    leaves.update(zip(("dh_carry", "dc_carry"), states))
    own = {"w_ih", "b_ih", "w_hh", "b_hh"}
    for p in cell.parameters:  # parameters of the cell's own (gamma, ...), whole
        if p.field not in own and p.kind + "_l0" in named:
            leaves[p.kind] = named[p.kind + "_l0"]

    def loss():
        hx = tuple(states) if len(states) > 1 else states[0]
        output, finals = layer(x, hx)
        finals = finals if isinstance(finals, tuple) else (finals,)
        total = (output * upstream[0]).sum()
        for final, weight in zip(finals, upstream[1:]):
            total = total + (final * weight).sum()
        return total

    return layer, leaves, loss


def _numeric(loss, leaf, eps):
    from .autograd import no_grad
    data = leaf._array
    numeric = np.zeros(data.shape)
    with no_grad():
        for index in np.ndindex(data.shape):
            original = data[index].item()
            data[index] = original + eps
            plus = loss().item()
            data[index] = original - eps
            minus = loss().item()
            data[index] = original
            numeric[index] = (plus - minus) / (2 * eps)
    return numeric


def _blocks(quantity, analytic, numeric, gates, hidden, names):
    """(quantity, gate, analytic block, numeric block, describe(index)) per gate for the
    pre-activations' gradients, one whole block for the states and own parameters."""
    if quantity == "dgx":  # (T, B, G·H): the gate's columns
        for g in range(gates):
            cols = slice(g * hidden, (g + 1) * hidden)
            yield ("dgx", names[g], analytic[..., cols], numeric[..., cols],
                   lambda i: f"t={i[0]} b={i[1]} j={i[2]}")
    elif quantity.startswith("dgh/"):  # b_hh (G·H,) or W_hh (G·H, H): the gate's rows
        for g in range(gates):
            rows = slice(g * hidden, (g + 1) * hidden)
            yield (quantity, names[g], analytic[rows], numeric[rows],
                   (lambda i, q=quantity: f"{q[4:]}[{', '.join(map(str, i))}]"))
    else:  # states (1, B, H), or a parameter of the cell's own
        yield quantity, None, analytic, numeric, lambda i: f"[{', '.join(map(str, i))}]"


def check_cell(cell, dtype="float64", paths=None, gates=None, steps=3, batch=2, hidden=2,
               eps=1e-6, tolerance=GRADCHECK_MAX_RELATIVE_ERROR, seed=0, raises=True):
    """Checks ``cell``'s hand-derived backward against central finite differences of its
    own forward, in float64, through the real kernels: on every path of ``paths``
    (default: every one this process runs: the simulator's, or a GPU's, plain, fused and
    persistent paths, the CPU's plain path and its region), for a one-layer layer whose
    input is the pre-activations themselves (input_size G·H, W_ih = I, so dL/dx is
    dgx), random states and a random linear loss of the output and final states.

    Two problems per path: one step, where no carried gradient enters the unit (a
    failure there is that gate's derivative, or the carries it leaves), and ``steps``
    steps. Compared per gate block: dgx (against differences in each pre-activation),
    dgh (in b_hh and W_hh's rows of the gate), then h_0 (dh_carry + dgh·W_hh), c_0
    (dc_carry) and any parameter of the cell's own, whole. ``gates``: the gates' names
    for the report (default 0, 1, ...). Returns a ``CellReport``; where a check fails
    and ``raises``, raises AssertionError with the report, which names the gates. A cell
    not registered under its name is registered (``register``'s checks) while it runs."""
    from .kernels import cells
    cell = cells.lookup(cell)
    if np.dtype(dtype) != np.float64:
        raise ValueError(f"dtype: finite differences through the kernels need float64, "
                         f"got {dtype!r}")
    names = tuple(gates) if gates is not None else tuple(range(cell.num_gates))
    if len(names) != cell.num_gates:
        raise ValueError(f"gates: expected {cell.num_gates} names (num_gates), got {names!r}")
    report = CellReport(cell, tolerance, eps)
    known = cells.CELLS.get(cell.name)
    if known != cell:  # the kernels find a cell by name: registered while it runs
        cells.register(cell, replace=True)
    try:
        _check_paths(report, cell, paths, names, steps, batch, hidden, eps, tolerance, seed)
    finally:
        if known is None:
            cells.unregister(cell.name)
        elif known != cell:
            cells.CELLS[cell.name] = known
    if raises and not report.ok:
        raise AssertionError(str(report))
    return report


def _check_paths(report, cell, paths, names, steps, batch, hidden, eps, tolerance, seed):
    from . import recurrent
    from .random import manual_seed
    for name, path in _paths_here(paths):
        if name not in backend.available_backends():
            report.skipped.append((name, path, "no such backend here"))
            continue
        with backend.use_backend(name), recurrent.force_path(path):
            for problem_steps in (1, steps):
                manual_seed(seed)
                rng = np.random.default_rng(seed)
                layer, leaves, loss = _cell_problem(cell, problem_steps, batch, hidden, rng)
                try:
                    loss().backward()
                except ValueError as exc:  # a path that cannot run this problem
                    report.skipped.append((name, path, str(exc).splitlines()[0]))
                    break
                if layer.last_paths != [[path]]:
                    report.skipped.append((name, path, f"ran {layer.last_paths}"))
                    break
                found = {}  # (quantity, gate) -> the worst of its blocks (dgh: b_hh, W_hh)
                for quantity, leaf in leaves.items():
                    analytic = (np.zeros(leaf.shape) if leaf.grad is None
                                else to_numpy(leaf.grad).astype(np.float64))
                    numeric = _numeric(loss, leaf, eps)
                    for q, gate, a, n, where in _blocks(quantity, analytic, numeric,
                                                        cell.num_gates, hidden, names):
                        error = relative_error(a, n)
                        worst = np.unravel_index(np.argmax(np.abs(a - n)), a.shape)
                        check = CellCheck(name, path, problem_steps, q.split("/")[0], gate,
                                          error, where(tuple(map(int, worst))),
                                          error < tolerance)
                        key = (check.quantity, gate)
                        if key not in found or error > found[key].error:
                            found[key] = check
                report.checks += found.values()
