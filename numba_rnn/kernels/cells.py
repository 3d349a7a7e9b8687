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

Besides, the NumPy helpers that reference steps share (``sigmoid``, layer
normalization): float64 NumPy only, no code shared with the kernels.
"""
import numpy as np

from .common import GEMM_PARAMETERS, PROJECTION, Cell, Param, TorchOp

__all__ = ["Cell", "Param", "TorchOp", "GEMM_PARAMETERS", "PROJECTION", "CELLS",
           "register", "unregister", "lookup", "sigmoid", "layer_norm_forward",
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


def register(cell, replace=False):
    """Registers ``cell`` under ``cell.name`` and returns it. A second cell of a name
    already registered is refused unless ``replace`` (the same cell again is a no-op)."""
    _check(cell)
    known = CELLS.get(cell.name)
    if known is not None and known != cell and not replace:
        raise ValueError(f"cell {cell.name!r}: a different cell of that name is registered "
                         "(pass replace=True to replace it)")
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
