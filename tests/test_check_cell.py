"""Issue 28 points 1 and 2: what ``numba_rnn.cells.register`` refuses, before any layer
runs a cell (each refusal's message names the problem), and
``numba_rnn.testing.check_cell``: a correct cell passes on every path here, a backward
broken in one gate is reported with that gate's name; and the README's worked example
("Your own cell") runs as written."""
import re
from pathlib import Path

import numpy as np
import pytest

from numba_rnn.cells import Cell, activations, device, register, unregister, validate
from numba_rnn.cells import ligru, mgu
from numba_rnn.kernels import CELLS
from numba_rnn.testing import CellReport, check_cell

README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.fixture(scope="module", autouse=True)
def drops_the_imported_cells(launch_record):
    """mgu and ligru registered themselves when imported: unregistered after this file."""
    yield
    for name in (mgu.CELL.name, ligru.CELL.name):
        unregister(name)


@pytest.fixture(autouse=True)
def drops_its_cells(launch_record):
    """Whatever a test here registers is unregistered after it, its launches dropped
    from the session's record (the compile check compiles registered cells only)."""
    before = set(CELLS)
    yield
    added = set(CELLS) - before
    for name in added:
        unregister(name)
    for recipe in [r for r in launch_record.signatures
                   if any(("cell", n) in (r.args or ()) for n in added | {"test_broken"})]:
        del launch_record.signatures[recipe]


def _mgu(**changes):
    return mgu.CELL._replace(name="test_bad", **changes)


def _refused(cell, match):
    with pytest.raises(ValueError, match=match) as info:
        register(cell)
    assert "test_bad" not in CELLS
    return str(info.value)


def test_the_package_cells_pass_the_registration_checks():
    for name in ("lstm", "gru", "rnn_tanh", "rnn_relu"):
        assert validate(CELLS[name]) is CELLS[name]


def test_refuses_units_of_the_wrong_arity():
    def units(dtype, target):
        forward, backward = mgu.units(dtype, target)

        @device(target)
        def short_forward(t, b, j, hidden, xg, rec, b_hh, h_seq, saved):
            pass
        return short_forward, backward

    message = _refused(_mgu(units=units), "forward_unit takes 9")
    assert "expected 10 plain ones: (t, b, j, hidden, xg, rec, b_hh, h_seq, c_seq, saved)" \
        in message


def test_refuses_a_unit_that_does_not_compile():
    def units(dtype, target):
        forward, backward = mgu.units(dtype, target)

        @device(target)
        def bad_forward(t, b, j, hidden, xg, rec, b_hh, h_seq, c_seq, saved):
            h_seq[t + 1, b, j] = no_such_function(xg[0])  # noqa: F821
        return bad_forward, backward

    message = _refused(_mgu(units=units), "forward_unit does not compile for the CPU")
    assert "no_such_function" in message and len(message) < 600


def test_refuses_a_saved_width_too_small():
    message = _refused(_mgu(saved_width=2), "saved_width 2 is too small")
    assert "needs saved_width >= 3" in message


def test_refuses_a_backward_that_reads_what_forward_did_not_write():
    def units(dtype, target):
        forward, _ = mgu.units(dtype, target)
        one = activations(dtype, target)[0]

        @device(target)
        def greedy_backward(t, b, j, hidden, dh, h_seq, c_seq, saved, dh_carry, dc_carry,
                            dgx, dgh):
            dgx[t, b, j] = dh * saved[t, b, 3 * hidden + j]  # past what forward saves
            dgx[t, b, hidden + j] = dh
            dgh[t, b, j] = dh
            dgh[t, b, hidden + j] = dh
            dh_carry[b, j] = dh * one
        return forward, greedy_backward

    _refused(_mgu(units=units, saved_width=4), "backward reads saved entries forward did "
                                              "not write")


def test_refuses_a_backward_that_reads_the_new_state():
    def units(dtype, target):
        forward, _ = mgu.units(dtype, target)

        @device(target)
        def late_backward(t, b, j, hidden, dh, h_seq, c_seq, saved, dh_carry, dc_carry,
                          dgx, dgh):
            dgx[t, b, j] = dh * h_seq[t + 1, b, j]
            dgx[t, b, hidden + j] = dh
            dgh[t, b, j] = dh
            dgh[t, b, hidden + j] = dh
            dh_carry[b, j] = dh
        return forward, late_backward

    _refused(_mgu(units=units), r"reads the new states h_seq\[t\+1\]")


def test_refuses_a_gate_left_without_gradient_and_a_dgh_not_asked_for():
    def units(dtype, target):
        forward, _ = mgu.units(dtype, target)

        @device(target)
        def lazy_backward(t, b, j, hidden, dh, h_seq, c_seq, saved, dh_carry, dc_carry,
                          dgx, dgh):
            dgx[t, b, j] = dh
            dgh[t, b, j] = dh
            dgh[t, b, hidden + j] = dh
            dh_carry[b, j] = dh
        return forward, lazy_backward

    _refused(_mgu(units=units), r"dgx of gate\(s\) \[1\] unwritten")
    _refused(_mgu(dgh_differs=False), "writes dgh, but dgh_differs is False")


def test_refuses_units_that_are_not_device_functions():
    def units(dtype, target):
        return (lambda *a: None), (lambda *a: None)
    _refused(_mgu(units=units), "expected a function compiled by the target's device "
                                "decorator")


def _broken_ligru():
    """LiGRU with the derivative of its candidate gate h wrong: (1 − z) dropped."""
    def units(dtype, target):
        one, sigmoid, _ = activations(dtype, target)
        zero = one - one
        forward, _ = ligru.units(dtype, target)

        @device(target)
        def broken_backward(t, b, j, hidden, dh, h_seq, c_seq, saved, dh_carry, dc_carry,
                            dgx, dgh):
            z = saved[t, b, j]
            candidate = saved[t, b, hidden + j]
            dgx[t, b, j] = dh * (h_seq[t, b, j] - candidate) * z * (one - z)
            dgx[t, b, hidden + j] = dh if candidate > zero else zero  # should be dh·(1 − z)
            dh_carry[b, j] = dh * z
        return forward, broken_backward
    return ligru.CELL._replace(name="test_broken", units=units)


def test_check_cell_names_the_gate_whose_derivative_is_wrong():
    broken = _broken_ligru()
    with pytest.raises(AssertionError) as info:
        check_cell(broken, gates=ligru.GATES, paths=["cpu-plain", "simulator-plain"])
    text = str(info.value)
    assert "wrong gate(s): 'h'" in text and "gate 'h': dgx is wrong (1-step problem)" in text
    report = check_cell(broken, gates=ligru.GATES, paths=["cpu-region"], raises=False)
    assert isinstance(report, CellReport) and not report.ok
    assert report.wrong_gates() == ["h"]
    wrong = {(c.quantity, c.gate) for c in report.failures if c.steps == 1}
    assert ("dgx", "h") in wrong and ("dgx", "z") not in wrong
    assert all(c.ok for c in report.checks if c.steps == 1 and c.gate == "z")


def test_check_cell_refuses_float32():
    with pytest.raises(ValueError, match="float64"):
        check_cell(mgu.CELL, dtype="float32")


def _readme_example():
    section = README.read_text().split("## Your own cell", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_example_runs_and_passes_check_cell(capsys):
    code = _readme_example()
    code = code.replace('check_cell(UGRNN, gates=("g", "c"))',
                        'check_cell(UGRNN, gates=("g", "c"), paths=["cpu-plain"])')
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102
    assert "OK:" in capsys.readouterr().out
    assert CELLS["ugrnn"] is namespace["UGRNN"]
