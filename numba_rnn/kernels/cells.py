"""The cell registry: the one place where layers, the NumPy reference, the PyTorch bridge
and the kernel registry find a cell by name.

A cell is one file that builds a ``Cell`` (``common.py``: its gate and state counts,
saved width, the two unit functions, its parameter layout, its NumPy reference step and
its state names) and registers it::

    from numba_rnn.kernels.cells import Cell, Param, register

    CELL = register(Cell(name="mgu", num_gates=2, num_states=1, saved_width=3,
                         dgh_differs=True, units=units, reference=(step, step_backward)))

after which ``lookup("mgu")`` (or ``CELLS["mgu"]``) is that cell, and
``numba_rnn.nn.RecurrentLayer(CELL, input_size, hidden_size, ...)`` a layer of it on
every kernel path. The built-in cells (``lstm.py``, ``gru.py``, ``rnn.py``,
``lnlstm.py``, ``lngru.py``) register themselves the same way when ``kernels`` is
imported.

``register`` refuses a malformed cell with a ValueError naming the problem, before any
layer uses it: first the spec's fields (``_check``), then, for a cell with GEMM units
(no ``norm``) from outside this package, its units themselves (``_check_units``): their
argument lists against the contract (common.py), a compilation for the CPU
(``numba.njit``; Numba's error summarized), and one run on a tiny problem that shows
``saved_width`` suffices and that backward reads only what forward wrote (the
probes are described at ``_check_units``). The package's own cells are held to the same
by the test suite (``validate`` runs the checks on any cell).

Besides, the NumPy helpers that reference steps share (``sigmoid``, layer
normalization): float64 NumPy only, no code shared with the kernels.
"""
import inspect

import numpy as np

from . import targets
from .common import GEMM_PARAMETERS, PROJECTION, Cell, Param, TorchOp

__all__ = ["Cell", "Param", "TorchOp", "GEMM_PARAMETERS", "PROJECTION", "CELLS",
           "register", "unregister", "lookup", "validate", "FORWARD_ARGUMENTS",
           "BACKWARD_ARGUMENTS", "sigmoid", "layer_norm_forward",
           "layer_norm_backward", "LAYER_NORM_EPS"]

#: Every registered cell by name, in registration order.
CELLS = {}

_DIMENSIONS = ("gates", "hidden", "input", "state", "proj")
_INITS = ("uniform", "ones", "zeros")
_WHEN = (None, "bias", "projection")


def _refuse(cell, problem):
    raise ValueError(f"cell {getattr(cell, 'name', cell)!r}: {problem}")


def _check(cell):
    """Refuses a malformed Cell with a message naming the problem."""
    if not isinstance(cell, Cell):
        raise TypeError(f"cell: expected a numba_rnn.kernels.cells.Cell, got "
                        f"{type(cell).__name__}")
    if not isinstance(cell.name, str) or not cell.name:
        _refuse(cell, f"name: expected a non-empty string, got {cell.name!r}")
    for field, low in (("num_gates", 1), ("saved_width", 1)):
        value = getattr(cell, field)
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            _refuse(cell, f"{field}: expected an integer >= {low}, got {value!r}")
    if cell.num_states not in (1, 2):
        _refuse(cell, f"num_states: expected 1 (h) or 2 (h, c), got {cell.num_states!r}")
    if len(cell.state_names) != cell.num_states:
        _refuse(cell, f"state_names: expected {cell.num_states} names (num_states), got "
                      f"{cell.state_names!r}")
    if not callable(cell.units):
        _refuse(cell, f"units: expected a function (dtype, target) -> (forward_unit, "
                      f"backward_unit), got {type(cell.units).__name__}")
    if cell.reference is not None and (len(cell.reference) != 2
                                       or not all(callable(f) for f in cell.reference)):
        _refuse(cell, "reference: expected None or (forward_step, backward_step)")
    kinds = set()
    for param in cell.parameters:
        if not isinstance(param, Param):
            _refuse(cell, f"parameters: expected Param entries, got {param!r}")
        if param.kind in kinds:
            _refuse(cell, f"parameters: {param.kind!r} twice")
        kinds.add(param.kind)
        if any(d not in _DIMENSIONS for d in param.shape):
            _refuse(cell, f"parameter {param.kind}: shape {param.shape!r}, expected "
                          f"dimensions among {', '.join(_DIMENSIONS)}")
        if param.init not in _INITS and not callable(param.init):
            _refuse(cell, f"parameter {param.kind}: init {param.init!r}, expected one of "
                          f"{', '.join(_INITS)} or a function")
        if param.when not in _WHEN:
            _refuse(cell, f"parameter {param.kind}: when {param.when!r}, expected None, "
                          f"'bias' or 'projection'")
    fields = [p.field for p in cell.parameters]
    for field in ("w_ih", "w_hh"):
        if field not in fields:
            _refuse(cell, f"parameters: none fills {field} (the kernels' GEMMs need it)")


#: The unit functions' argument lists (the contract: common.py's docstring).
FORWARD_ARGUMENTS = ("t", "b", "j", "hidden", "xg", "rec", "b_hh", "h_seq", "c_seq",
                     "saved")
BACKWARD_ARGUMENTS = ("t", "b", "j", "hidden", "dh", "h_seq", "c_seq", "saved", "dh_carry",
                      "dc_carry", "dgx", "dgh")


def _summary(exc, lines=6):
    """The first lines of an exception's message that say what went wrong (Numba's
    typing errors end in pages of context)."""
    kept = [line.rstrip() for line in str(exc).splitlines() if line.strip()
            and not line.lstrip().startswith(("During:", "File ", "^"))]
    text = "; ".join(kept[:lines]) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"


def _unit_functions(cell):
    """The Python functions of ``cell.units(float64, CPU)``, after checking that it gives
    two functions compiled for the CPU with the contract's arities."""
    try:
        pair = cell.units(np.float64, targets.CPU)
    except Exception as exc:  # noqa: BLE001  (a user's function: any failure refuses it)
        _refuse(cell, f"units(np.float64, 'cpu') raised {_summary(exc)}")
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        _refuse(cell, "units(dtype, target): expected (forward_unit, backward_unit), got "
                      f"{type(pair).__name__}")
    functions = []
    for unit, role, expected in zip(pair, ("forward_unit", "backward_unit"),
                                    (FORWARD_ARGUMENTS, BACKWARD_ARGUMENTS)):
        python = getattr(unit, "py_func", None)
        if python is None or not hasattr(unit, "compile"):
            _refuse(cell, f"{role}: expected a function compiled by the target's device "
                          f"decorator (numba_rnn.cells.device(target)), got "
                          f"{type(unit).__name__} {unit!r}")
        if "cuda" in type(unit).__module__:
            _refuse(cell, f"{role}: units(dtype, 'cpu') returned a CUDA function; decorate "
                          "the units with numba_rnn.cells.device(target)")
        try:
            parameters = list(inspect.signature(python).parameters.values())
        except (TypeError, ValueError):
            parameters = None
        plain = parameters is not None and all(
            p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in parameters)
        if not plain or len(parameters) != len(expected):
            got = "?" if parameters is None else f"{len(parameters)} ({', '.join(map(str, parameters))})"
            _refuse(cell, f"{role} takes {got} arguments, expected {len(expected)} plain "
                          f"ones: ({', '.join(expected)})")
        functions.append(python)
    return functions


def _compiled(cell, python, role):
    import numba
    try:
        # bounds checked: an index past an array's end is an IndexError here, not a
        # silent write into the kernels' neighbouring memory
        return numba.njit(boundscheck=True, error_model="numpy")(python)
    except Exception as exc:  # noqa: BLE001
        _refuse(cell, f"{role} does not compile for the CPU: {_summary(exc)}")


def _call(cell, unit, role, args):
    try:
        unit(*args)
    except IndexError as exc:
        _refuse(cell, f"{role} indexes past an array's end ({_summary(exc, 2)}): an index "
                      "of saved beyond saved_width·H, of xg/rec beyond num_gates, of b_hh "
                      "beyond num_gates·H?")
    except Exception as exc:  # noqa: BLE001  (Numba's typing errors, or the unit's own)
        _refuse(cell, f"{role} does not compile for the CPU, or fails on a tiny problem: "
                      f"{_summary(exc)}")


#: The probe's sizes: steps, batch rows, hidden units.
_PROBE = (2, 2, 3)


def _check_units(cell):
    """Refuses a cell whose units break the contract (common.py), on a tiny problem run
    unit by unit on the CPU, in float64, with bounds checked:

    * arity: ``units(np.float64, "cpu")`` gives two functions compiled by the target's
      decorator, taking FORWARD_ARGUMENTS and BACKWARD_ARGUMENTS;
    * they compile (Numba's error summarized) and run;
    * forward writes h_t (and c_t) of every unit, finite from finite inputs, and writes
      no c_seq of a one-state cell;
    * ``saved`` has a guard block of H columns past ``saved_width·H``, filled with NaN:
      forward must leave it untouched (else saved_width is too small, and the message
      says how large it must be);
    * backward reads only what forward wrote: it runs with the saved entries forward
      left unwritten (NaN before forward, NaN after) and the new states h_seq[t+1],
      c_seq[t+1] (which zoneout may replace) set to NaN, and then twice to different
      finite garbage: its results must be finite in the first run and equal in the
      other two (the second catches a read that a branch hides from NaN);
    * backward writes every gate's dgx, dh_carry (and dgh where ``dgh_differs``), and
      no dgh without ``dgh_differs``, no dc_carry of a one-state cell.
    """
    forward_py, backward_py = _unit_functions(cell)
    forward = _compiled(cell, forward_py, "forward_unit")
    backward = _compiled(cell, backward_py, "backward_unit")
    steps, batch, hidden = _PROBE
    gates, width, two = cell.num_gates, cell.saved_width, cell.num_states > 1
    rng = np.random.default_rng(0)
    nan = np.nan
    gx = rng.standard_normal((steps, batch, gates * hidden))
    gh = rng.standard_normal((steps, batch, gates * hidden))
    b_hh = rng.standard_normal(gates * hidden)
    h_seq = np.full((steps + 1, batch, hidden), nan)
    c_seq = np.full((steps + 1, batch, hidden), nan)
    h_seq[0] = rng.standard_normal((batch, hidden))
    if two:
        c_seq[0] = rng.standard_normal((batch, hidden))
    saved = np.full((steps, batch, (width + 1) * hidden), nan)
    xg, rec = np.empty(gates), np.empty(gates)
    for t in range(steps):
        for b in range(batch):
            for j in range(hidden):
                xg[:] = gx[t, b, j::hidden][:gates]
                rec[:] = gh[t, b, j::hidden][:gates]
                _call(cell, forward, "forward_unit",
                      (t, b, j, hidden, xg, rec, b_hh, h_seq, c_seq, saved))
    written = ~np.isnan(saved)
    if written[..., width * hidden:].any():
        column = int(np.nonzero(written.any(axis=(0, 1)))[0].max())
        _refuse(cell, f"saved_width {width} is too small: forward writes saved column "
                      f"{column} of saved[t, b, :] with H={hidden} (needs saved_width >= "
                      f"{column // hidden + 1})")
    states = (("h_seq", h_seq), ("c_seq", c_seq)) if two else (("h_seq", h_seq),)
    for name, seq in states:
        if not np.isfinite(seq[1:]).all():
            _refuse(cell, f"forward leaves {name}[t+1] unwritten or not finite for finite "
                          "inputs (does it read c_seq of a one-state cell, or saved before "
                          "writing it?)")
    if not two and not np.isnan(c_seq).all():
        _refuse(cell, "forward writes c_seq, but num_states is 1")
    saved = saved[..., :width * hidden]
    written = written[..., :width * hidden]
    dh = rng.standard_normal((steps, batch, hidden))
    dc_in = rng.standard_normal((steps, batch, hidden))

    def run(saved_fill, state_fill):
        """Backward over every step, the unwritten entries of saved and the new
        states at each step set to the fills; returns its results."""
        dgx = np.full((steps, batch, gates * hidden), nan)
        dgh = np.full((steps, batch, gates * hidden), nan)
        dh_carry = np.full((batch, hidden), nan)
        dc_carry = np.full((batch, hidden), nan)
        probe_saved = np.where(written, saved, saved_fill)
        results = []
        for t in range(steps - 1, -1, -1):
            h_t, c_t = h_seq.copy(), c_seq.copy()
            h_t[t + 1:] = state_fill
            if two:
                c_t[t + 1:] = state_fill
                dc_carry[...] = dc_in[t]
            else:
                c_t[...] = state_fill
            dh_carry[...] = nan
            for b in range(batch):
                for j in range(hidden):
                    _call(cell, backward, "backward_unit",
                          (t, b, j, hidden, dh[t, b, j], h_t, c_t, probe_saved, dh_carry,
                           dc_carry, dgx, dgh))
            results += [dh_carry.copy(), dc_carry.copy()]
        return dgx, dgh, results

    dgx, dgh, carries = run(0.0, 0.0)
    unwritten = [g for g in range(gates)
                 if np.isnan(dgx[..., g * hidden:(g + 1) * hidden]).any()]
    if unwritten:
        _refuse(cell, f"backward leaves dgx of gate(s) {unwritten} unwritten: write every "
                      "gate's gradient dgx[t, b, g·H + j] (0 where it has none)")
    if cell.dgh_differs and np.isnan(dgh).any():
        _refuse(cell, "backward leaves dgh (partly) unwritten, with dgh_differs=True")
    if not cell.dgh_differs and not np.isnan(dgh).all():
        _refuse(cell, "backward writes dgh, but dgh_differs is False (the kernels then "
                      "give it no dgh: set dgh_differs=True, or write dgx only)")
    if any(np.isnan(c).any() for c in carries[0::2]):
        _refuse(cell, "backward leaves dh_carry unwritten: set it to the part of dh_{t-1} "
                      "that does not go through W_hh (0 where there is none)")
    if not two and not all(np.isnan(c).all() for c in carries[1::2]):
        _refuse(cell, "backward writes dc_carry, but num_states is 1")

    def finite(results):
        dgx, dgh, carries = results
        arrays = [dgx] + ([dgh] if cell.dgh_differs else []) + carries[0::2]
        return all(np.isfinite(a).all() for a in arrays) and (
            not two or all(np.isfinite(c).all() for c in carries[1::2]))

    if not finite(run(nan, 0.0)):
        _refuse(cell, f"backward reads saved entries forward did not write (saved_width "
                      f"{width}: forward writes {int(written[0, 0].sum())} of its "
                      f"{width * hidden} columns per row, with H={hidden})")
    if not finite(run(0.0, nan)):
        _refuse(cell, "backward reads the new states h_seq[t+1] or c_seq[t+1] (or c_seq "
                      "of a one-state cell): zoneout may replace them after forward; save "
                      "what backward needs, or recompute it")
    first, second = run(1e3, -7.0), run(-1e3, 3.0)
    same = all(np.array_equal(a, b, equal_nan=True) for a, b in
               zip([first[0], first[1]] + first[2], [second[0], second[1]] + second[2]))
    if not same:
        _refuse(cell, "backward's results depend on values forward did not write (saved "
                      "entries forward left unwritten, or the new states h_seq[t+1], "
                      "c_seq[t+1])")


def _from_package(cell):
    """Whether ``cell``'s units are the package's own (kernels/): its tests hold them to
    the contract, and registering them at import compiles nothing."""
    module = getattr(cell.units, "__module__", "") or ""
    return module.startswith(__name__.rsplit(".", 1)[0] + ".")


def validate(cell):
    """Runs every check ``register`` runs, on any cell (the package's own included),
    registering nothing; returns the cell or raises the ValueError that names the
    problem."""
    _check(cell)
    if cell.norm is None:
        _check_units(cell)
    return cell


def register(cell, replace=False):
    """Registers ``cell`` under ``cell.name`` and returns it. A second cell of a name
    already registered is refused unless ``replace`` (the same cell again is a no-op).
    A malformed cell is refused with a ValueError naming the problem (see the module
    docstring): the spec, and for a cell from outside the package its units."""
    _check(cell)
    known = CELLS.get(cell.name)
    if known is not None and known != cell and not replace:
        raise ValueError(f"cell {cell.name!r}: a different cell of that name is registered "
                         "(pass replace=True to replace it)")
    if known != cell and cell.norm is None and not _from_package(cell):
        _check_units(cell)
    CELLS[cell.name] = cell
    return cell


def unregister(name):
    """Removes the cell registered as ``name`` (a name or the Cell itself)."""
    CELLS.pop(getattr(name, "name", name), None)


def lookup(cell):
    """The registered Cell of a name (a Cell is returned as it is)."""
    if isinstance(cell, Cell):
        return cell
    try:
        return CELLS[cell]
    except (KeyError, TypeError):
        raise ValueError(f"cell: expected a registered cell ({', '.join(map(repr, CELLS))}) "
                         f"or a Cell, got {cell!r}") from None


# ------------------------------------------------ NumPy helpers of the reference steps
def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


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
