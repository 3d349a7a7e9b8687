"""RMSprop, Adagrad, Adadelta and L-BFGS against torch.optim step by step (parameters and
state), closures on every optimizer, the learning-rate schedulers against
torch.optim.lr_scheduler (the learning rates of every epoch), state dicts both ways, and
bad arguments, refused before anything changes."""
import math
import warnings

import numpy as np
import pytest

import numba_rnn as nr
from numba_rnn.optim import lr_scheduler
from numba_rnn.testing import TOLERANCES, assert_close
from oracles import import_torch
from test_bad_input import assert_refused

# The per-step comparison of RMSprop, Adagrad and Adadelta with torch.optim is
# test_optim.py's (their configurations are in its CONFIGS); the helpers are shared.
from test_optim import (STEPS, assert_state_equal, gradients, id_of, make_params,  # noqa: E402
                        set_grads)


def test_param_groups_use_their_own_hyperparameters(rng):
    torch = import_torch()
    start = make_params(rng, "float64")
    ours = [nr.tensor(a, requires_grad=True) for a in start]
    theirs = [torch.tensor(a, requires_grad=True) for a in start]
    groups = lambda ps: [{"params": ps[:1]},  # noqa: E731
                         {"params": ps[1:], "lr": 0.5, "momentum": 0.3, "centered": True}]
    ours_opt = nr.optim.RMSprop(groups(ours), lr=0.05)
    theirs_opt = torch.optim.RMSprop(groups(theirs), lr=0.05, foreach=False)
    for grads in gradients(rng, "float64", steps=3):
        set_grads(ours, grads, nr.tensor)
        set_grads(theirs, grads, torch.from_numpy)
        ours_opt.step()
        theirs_opt.step()
    for p, q in zip(ours, theirs):
        assert_close(p, q.detach(), "float64", "parameter")


def test_update_by_hand_without_torch():
    """One step of each rule, worked out by hand."""
    g = np.array([0.5, -2.0])
    p = nr.tensor(np.array([1.0, 1.0]), requires_grad=True)
    opt = nr.optim.RMSprop([p], lr=0.1, alpha=0.5, eps=0.0)
    p.grad = nr.tensor(g)
    opt.step()  # v = 0.5·g², p -= 0.1·g/sqrt(0.5·g²) = 0.1·sign(g)·sqrt(2)
    np.testing.assert_allclose(p.numpy(), 1.0 - 0.1 * np.sign(g) * np.sqrt(2), rtol=1e-12)
    p = nr.tensor(np.array([1.0, 1.0]), requires_grad=True)
    opt = nr.optim.Adagrad([p], lr=0.1, initial_accumulator_value=1.0, eps=0.0)
    p.grad = nr.tensor(g)
    opt.step()  # sum = 1 + g², p -= 0.1·g/sqrt(1 + g²)
    np.testing.assert_allclose(p.numpy(), 1.0 - 0.1 * g / np.sqrt(1 + g * g), rtol=1e-12)
    p = nr.tensor(np.array([1.0, 1.0]), requires_grad=True)
    opt = nr.optim.Adadelta([p], lr=1.0, rho=0.5, eps=1e-2)
    p.grad = nr.tensor(g)
    opt.step()  # v = 0.5·g², δ = sqrt(eps)/sqrt(v + eps)·g
    delta = np.sqrt(1e-2) / np.sqrt(0.5 * g * g + 1e-2) * g
    np.testing.assert_allclose(p.numpy(), 1.0 - delta, rtol=1e-12)
    np.testing.assert_allclose(opt.state[p]["acc_delta"], 0.5 * delta * delta, rtol=1e-12)


def test_adagrad_has_state_from_construction_as_torch():
    torch = import_torch()
    ours = [nr.tensor(np.ones(3), requires_grad=True), nr.tensor(np.ones(2), requires_grad=True)]
    theirs = [torch.ones(3, dtype=torch.float64, requires_grad=True),
              torch.ones(2, dtype=torch.float64, requires_grad=True)]
    ours_opt = nr.optim.Adagrad(ours, initial_accumulator_value=0.25)
    theirs_opt = torch.optim.Adagrad(theirs, initial_accumulator_value=0.25)
    state, expected = ours_opt.state_dict()["state"], theirs_opt.state_dict()["state"]
    assert sorted(state) == sorted(expected) == [0, 1]
    for k in expected:
        assert_state_equal(state[k], expected[k], "float64", f"state {k}")


@pytest.mark.parametrize("name,options", [("RMSprop", dict(lr=0.01, momentum=0.9, centered=True)),
                                          ("Adagrad", dict(lr=0.1, lr_decay=0.01)),
                                          ("Adadelta", dict(rho=0.8))])
def test_state_dicts_move_between_us_and_torch(name, options, rng):
    torch = import_torch()
    start = make_params(rng, "float64")
    grads = gradients(rng, "float64", steps=4)
    ours = [nr.tensor(a, requires_grad=True) for a in start]
    ours_opt = getattr(nr.optim, name)(ours, **options)
    for g in grads[:2]:
        set_grads(ours, g, nr.tensor)
        ours_opt.step()
    # ours -> torch (PyTorch keeps the step count as a tensor)
    theirs = [torch.tensor(p.numpy(), requires_grad=True) for p in ours]
    theirs_opt = getattr(torch.optim, name)(theirs, foreach=False, **options)
    state = ours_opt.state_dict()
    state["state"] = {k: {n: torch.tensor(v) for n, v in entry.items()}
                      for k, entry in state["state"].items()}
    theirs_opt.load_state_dict(state)
    # torch -> ours
    back = [nr.tensor(p.numpy(), requires_grad=True) for p in ours]
    back_opt = getattr(nr.optim, name)(back, lr=123.0)
    back_opt.load_state_dict(theirs_opt.state_dict())
    assert back_opt.param_groups[0]["lr"] == ours_opt.param_groups[0]["lr"]
    for g in grads[2:]:
        for params, wrap in ((ours, nr.tensor), (back, nr.tensor), (theirs, torch.from_numpy)):
            set_grads(params, g, wrap)
        ours_opt.step()
        back_opt.step()
        theirs_opt.step()
    for p, q, r in zip(ours, theirs, back):
        assert_close(p, q.detach(), "float64", "parameter")
        np.testing.assert_array_equal(p.numpy(), r.numpy())


# ------------------------------------------------------------------ closures
ALL = [("SGD", dict(lr=0.1, momentum=0.5)), ("Adam", dict(lr=0.1)), ("AdamW", dict(lr=0.1)),
       ("RMSprop", dict(lr=0.1)), ("Adagrad", dict(lr=0.1)), ("Adadelta", dict())]


@pytest.mark.parametrize("name,options", ALL, ids=[a[0] for a in ALL])
def test_step_calls_the_closure_with_grad_enabled_and_returns_its_loss(name, options):
    target = nr.tensor(np.array([1.0, -2.0, 0.5]))
    p = nr.tensor(np.zeros(3), requires_grad=True)
    twin = nr.tensor(np.zeros(3), requires_grad=True)
    opt = getattr(nr.optim, name)([p], **options)
    twin_opt = getattr(nr.optim, name)([twin], **options)
    calls = []

    def closure():
        calls.append(nr.is_grad_enabled())
        opt.zero_grad()
        loss = ((p - target) * (p - target)).sum()
        loss.backward()
        return loss

    for _ in range(2):
        with nr.no_grad():
            loss = opt.step(closure)
        assert isinstance(loss, nr.Tensor) and loss is not None
        twin_opt.zero_grad()
        twin_loss = ((twin - target) * (twin - target)).sum()
        twin_loss.backward()
        twin_opt.step()
        assert loss.item() == twin_loss.item()
    assert calls == [True, True]
    np.testing.assert_array_equal(p.numpy(), twin.numpy())
    assert opt.step() is None
    opt.zero_grad()
    assert p.grad is None
    p.grad = nr.tensor(np.ones(3))
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(p.grad.numpy(), 0)


# -------------------------------------------------------------------- L-BFGS
LBFGS_CONFIGS = [
    dict(max_iter=5),
    dict(lr=0.5, max_iter=6, history_size=2),
    dict(max_iter=10, line_search_fn="strong_wolfe"),
    dict(line_search_fn="strong_wolfe", history_size=3, tolerance_change=1e-6),
    dict(max_iter=4, max_eval=6, tolerance_grad=1e-3, line_search_fn="strong_wolfe"),
    dict(lr=0.2, tolerance_change=1e-2),   # stops when the loss no longer changes
    dict(lr=0.05, tolerance_change=0.05),  # stops when the step no longer moves
]
LBFGS_STATE = ("func_evals", "n_iter", "t", "H_diag", "prev_loss")
LBFGS_VECTORS = ("d", "prev_flat_grad")
LBFGS_LISTS = ("old_dirs", "old_stps", "ro")


def least_squares_closure(opt, params, A, b):
    """The closure of a least-squares-like loss, Σ r² + Σ r⁴/4 with r = A·w + c - b, for
    either library (params, A and b are its tensors)."""
    def evaluate():
        opt.zero_grad()
        w, c = params
        r = A @ w + c - b
        loss = (r * r).sum() + (r * r * r * r).sum() * 0.25
        loss.backward()
        return loss
    return evaluate


def lbfgs_pair(torch, rng, dtype, options):
    """(ours, ours_opt, ours_closure, theirs, theirs_opt, theirs_closure, (A, b))."""
    A, b = rng.standard_normal((6, 3)).astype(dtype), rng.standard_normal(6).astype(dtype)
    start = [rng.standard_normal(3).astype(dtype), rng.standard_normal(1).astype(dtype)]
    ours = [nr.tensor(a, requires_grad=True) for a in start]
    theirs = [torch.tensor(a, requires_grad=True) for a in start]
    ours_opt = nr.optim.LBFGS(ours, **options)
    theirs_opt = torch.optim.LBFGS(theirs, **options)
    return (ours, ours_opt, least_squares_closure(ours_opt, ours, nr.tensor(A), nr.tensor(b)),
            theirs, theirs_opt,
            least_squares_closure(theirs_opt, theirs, torch.tensor(A), torch.tensor(b)), (A, b))


def assert_lbfgs_state_equal(ours_state, theirs_state, dtype, where):
    assert set(ours_state) == set(theirs_state), (ours_state.keys(), theirs_state.keys())
    for key in LBFGS_STATE + LBFGS_VECTORS:
        assert_close(np.asarray(ours_state[key], dtype=np.float64),
                     np.asarray(theirs_state[key], dtype=np.float64), dtype, f"{where} {key}")
    for key in LBFGS_LISTS:
        assert len(ours_state[key]) == len(theirs_state[key]), key
        for k, (a, e) in enumerate(zip(ours_state[key], theirs_state[key])):
            if key != "ro":
                assert_close(np.asarray(a), e, dtype, f"{where} {key}[{k}]")
                continue
            # ro = 1/(y·s), y = g_k+1 - g_k: as the run converges y·s cancels, and its
            # rounding (the BLAS kernel's summation order: another processor, other
            # last bits) is relative to |y|·|s|, not to y·s itself; held there
            y, step = (np.asarray(theirs_state[name][k], dtype=np.float64)
                       for name in ("old_dirs", "old_stps"))
            rtol, atol = TOLERANCES[np.dtype(dtype)]
            scale = np.linalg.norm(y) * np.linalg.norm(step)
            difference = abs(1.0 / float(np.asarray(a)) - 1.0 / float(np.asarray(e)))
            assert difference <= rtol * scale + atol, (f"{where} ro[{k}]: 1/ro differs by "
                                                       f"{difference} (|y|·|s| = {scale})")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("options", LBFGS_CONFIGS,
                         ids=["-".join(f"{k}={v}" for k, v in c.items()) for c in LBFGS_CONFIGS])
def test_lbfgs_steps_equal_torch(options, dtype, rng):
    torch = import_torch()
    ours, ours_opt, ours_closure, theirs, theirs_opt, theirs_closure, _ = lbfgs_pair(
        torch, rng, dtype, options)
    # float32: one step (up to max_iter iterations); over more, the two float32
    # trajectories part by more than float32's tolerance, as any two float32 runs of
    # L-BFGS with other summation orders do
    for step in range(STEPS if dtype == "float64" else 1):
        ours_loss = ours_opt.step(ours_closure)
        theirs_loss = theirs_opt.step(theirs_closure)
        assert_close(ours_loss, theirs_loss, dtype, f"step {step} loss")
        for k, (p, q) in enumerate(zip(ours, theirs)):
            assert_close(p, q.detach(), dtype, f"step {step} parameter {k}")
        ours_state, theirs_state = ours_opt.state[ours[0]], theirs_opt.state[theirs[0]]
        assert [ours_state[k] for k in ("func_evals", "n_iter")] == \
            [theirs_state[k] for k in ("func_evals", "n_iter")]
        if dtype == "float64":
            # in float32, y = g_k+1 - g_k cancels, and scalars such as H_diag = y·s / y·y
            # carry the rounding of the dot products' summation orders beyond float32's
            # tolerance (the parameters do not)
            assert_lbfgs_state_equal(ours_state, theirs_state, dtype, f"step {step} state")
    assert not ours_opt.state.get(ours[1])  # the state is the first parameter's


def test_lbfgs_trains_an_lstm_cell_as_torch(rng):
    torch = import_torch()
    cell = nr.LSTMCell(2, 3, dtype="float64")
    twin = torch.nn.LSTMCell(2, 3, dtype=torch.float64)
    with torch.no_grad():
        for name, p in cell.named_parameters():
            getattr(twin, name).copy_(torch.from_numpy(p.numpy()))
    x, target = rng.standard_normal((2, 2)), rng.standard_normal((2, 3))
    ours_opt = nr.optim.LBFGS(cell.parameters(), max_iter=4, line_search_fn="strong_wolfe")
    theirs_opt = torch.optim.LBFGS(twin.parameters(), max_iter=4, line_search_fn="strong_wolfe")

    def ours_closure():
        ours_opt.zero_grad()
        h, c = cell(nr.tensor(x))
        loss = ((h - nr.tensor(target)) * (h - nr.tensor(target))).sum() + (c * c).sum() * 0.1
        loss.backward()
        return loss

    def theirs_closure():
        theirs_opt.zero_grad()
        h, c = twin(torch.from_numpy(x))
        loss = ((h - torch.from_numpy(target)) ** 2).sum() + (c * c).sum() * 0.1
        loss.backward()
        return loss

    for step in range(3):
        assert_close(ours_opt.step(ours_closure), theirs_opt.step(theirs_closure), "float64",
                     f"step {step} loss")
        for name, p in cell.named_parameters():
            assert_close(p, getattr(twin, name).detach(), "float64", f"step {step} {name}")


def test_lbfgs_state_dicts_continue_exactly_and_move_between_us_and_torch(rng, tmp_path):
    torch = import_torch()
    options = dict(max_iter=3, history_size=2, line_search_fn="strong_wolfe")
    ours, ours_opt, ours_closure, theirs, theirs_opt, theirs_closure, (A, b) = lbfgs_pair(
        torch, rng, "float64", options)
    for _ in range(2):
        ours_opt.step(ours_closure)
        theirs_opt.step(theirs_closure)
    # ours, through a checkpoint
    nr.save({"params": [p.numpy() for p in ours], "optimizer": ours_opt.state_dict()},
            tmp_path / "lbfgs.npz")
    loaded = nr.load(tmp_path / "lbfgs.npz")
    resumed = [nr.tensor(a, requires_grad=True) for a in loaded["params"]]
    resumed_opt = nr.optim.LBFGS(resumed, lr=0.1)
    resumed_opt.load_state_dict(loaded["optimizer"])
    assert resumed_opt.param_groups[0]["history_size"] == 2
    # torch's, into ours
    from_torch = [nr.tensor(q.detach().numpy().copy(), requires_grad=True) for q in theirs]
    from_torch_opt = nr.optim.LBFGS(from_torch)
    from_torch_opt.load_state_dict(theirs_opt.state_dict())
    runs = [(ours_opt, ours_closure)] + [
        (opt, least_squares_closure(opt, params, nr.tensor(A), nr.tensor(b)))
        for params, opt in ((resumed, resumed_opt), (from_torch, from_torch_opt))]
    for _ in range(2):
        for opt, closure in runs:
            opt.step(closure)
        theirs_opt.step(theirs_closure)
    for p, r, s, q in zip(ours, resumed, from_torch, theirs):
        np.testing.assert_array_equal(p.numpy(), r.numpy())
        assert_close(s, q.detach(), "float64", "from torch's state")
        assert_close(p, q.detach(), "float64", "ours")


# Functions of a flat float64 vector with their gradients, for closures that compute both
# on the host the same way for both libraries: the line-search comparisons then see only
# the optimizers' arithmetic. Each case below takes a branch of the strong-Wolfe search
# that the least-squares problem does not.
FUNCTIONS = {
    "rosenbrock": (lambda v: (1 - v[0]) ** 2 + 100 * (v[1] - v[0] ** 2) ** 2,
                   lambda v: np.array([-2 * (1 - v[0]) - 400 * v[0] * (v[1] - v[0] ** 2),
                                       200 * (v[1] - v[0] ** 2)])),
    "pseudo_huber": (lambda v: np.sum(np.sqrt(1 + (3 * v) ** 2)) + 0.1 * np.sum(v),
                     lambda v: 9 * v / np.sqrt(1 + (3 * v) ** 2) + 0.1),
    "wave": (lambda v: np.sum(v ** 2 + 2 * np.sin(3 * v)), lambda v: 2 * v + 6 * np.cos(3 * v)),
    "abs": (lambda v: np.sum(np.abs(v - 0.3)), lambda v: np.sign(v - 0.3)),
}
LINE_SEARCHES = [("rosenbrock", 0.5),   # the curvature condition fails with gtd >= 0
                 ("rosenbrock", 30.0),  # the bracketing runs out of evaluations
                 ("pseudo_huber", 300.0)]  # zoom steps too close to an end move off it


@pytest.mark.parametrize("function,lr", LINE_SEARCHES, ids=[f"{f}-lr={lr}" for f, lr in LINE_SEARCHES])
def test_lbfgs_strong_wolfe_branches_equal_torch(function, lr):
    torch = import_torch()
    f, g = FUNCTIONS[function]
    ours = nr.tensor(np.array([-1.2, 1.0]), requires_grad=True)
    theirs = torch.tensor([-1.2, 1.0], dtype=torch.float64, requires_grad=True)
    options = dict(lr=lr, max_iter=10, line_search_fn="strong_wolfe")
    ours_opt, theirs_opt = nr.optim.LBFGS([ours], **options), torch.optim.LBFGS([theirs], **options)

    def ours_closure():
        ours.grad = nr.tensor(g(ours.numpy()))
        return np.asarray(f(ours.numpy()))  # a 0-d array serves as the loss too

    def theirs_closure():
        v = theirs.detach().numpy().copy()
        theirs.grad = torch.from_numpy(g(v))
        return f(v)

    for step in range(3):
        ours_opt.step(ours_closure)
        theirs_opt.step(theirs_closure)
        assert_close(ours, theirs.detach(), "float64", f"step {step}")
        assert ours_opt.state[ours]["func_evals"] == theirs_opt.state[theirs]["func_evals"]


@pytest.mark.parametrize("bounds", [None, (-1.0, 3.0)])
def test_cubic_interpolation_equals_torch(bounds):
    """The cubic's minimizer, clamped; the middle of the interval where the cubic has
    none (a negative discriminant)."""
    torch = import_torch()
    import importlib
    from numba_rnn.optim import _cubic_interpolate
    theirs = getattr(importlib.import_module("torch.optim.lbfgs"), "_cubic_interpolate", None)
    if theirs is None:
        pytest.skip("this PyTorch has no torch.optim.lbfgs._cubic_interpolate")
    for x1, f1, g1, x2, f2, g2 in [(0.0, 1.0, -2.0, 1.0, 0.5, 1.0), (2.0, 0.0, 1.0, 0.5, 1.0, -1.0),
                                   (0.0, 0.0, -1.0, 1.0, -5.0, -1.0), (0.0, 0.0, 1.0, 1.0, 0.5, 1.0)]:
        ours = _cubic_interpolate(x1, f1, np.float64(g1), x2, f2, np.float64(g2), bounds)
        expected = theirs(x1, f1, torch.tensor(g1, dtype=torch.float64), x2, f2,
                          torch.tensor(g2, dtype=torch.float64), bounds)
        assert_close(np.float64(ours), np.float64(expected), "float64", f"{x1, f1, g1, x2, f2, g2}")


ZOOMS = [("wave", [0.64110618, -1.66096413], [0.53355053, 1.06856416], 15.215052826893),
         ("abs", [0.3 - 1e-10], [1.0], 1.01e-10)]


@pytest.mark.parametrize("function,x,d,t", ZOOMS, ids=[z[0] for z in ZOOMS])
def test_strong_wolfe_zoom_equals_torch(function, x, d, t):
    """The zoom's rarer branches, against PyTorch's own line search: a trial moved off
    the upper end of the bracket (wave), and a bracket too short to refine (abs)."""
    torch = import_torch()
    from numba_rnn.optim import _strong_wolfe
    import importlib
    theirs_search = getattr(importlib.import_module("torch.optim.lbfgs"), "_strong_wolfe", None)
    if theirs_search is None:
        pytest.skip("this PyTorch has no torch.optim.lbfgs._strong_wolfe")
    f, g = FUNCTIONS[function]
    x, d = np.array(x), np.array(d)
    gtd = np.float64(g(x) @ d)
    ours = _strong_wolfe(lambda x0, t, d: (float(f(x0 + t * d)), g(x0 + t * d)),
                         lambda a, b=None: np.float64(a if b is None else a @ b),
                         x, t, d, float(f(x)), g(x), gtd)
    theirs = theirs_search(
        lambda x0, t, d: (float(f(x0.numpy() + float(t) * d.numpy())),
                          torch.from_numpy(g(x0.numpy() + float(t) * d.numpy()))),
        torch.from_numpy(x), t, torch.from_numpy(d), float(f(x)), torch.from_numpy(g(x)),
        torch.tensor(gtd))
    assert ours[3] == theirs[3]  # evaluations
    for k, name in enumerate(("loss", "gradient", "t")):
        assert_close(np.asarray(ours[k], dtype=np.float64), theirs[k], "float64", name)


# ------------------------------------------------------------------ schedulers
SCHEDULERS = [
    ("StepLR", dict(step_size=3, gamma=0.5)),
    ("MultiStepLR", dict(milestones=[2, 5, 5, 9], gamma=0.3)),
    ("ExponentialLR", dict(gamma=0.9)),
    ("LambdaLR", dict(lr_lambda=lambda epoch: 0.95 ** epoch)),
    ("LambdaLR", dict(lr_lambda=[lambda epoch: 1 / (1 + epoch), lambda epoch: 0.5 ** (epoch // 4)])),
    ("CosineAnnealingLR", dict(T_max=7, eta_min=0.01)),
    ("CosineAnnealingLR", dict(T_max=10)),
]
EPOCHS = 30


def scheduler_pair(torch, name, options, last_epoch=-1):
    ours_params = [nr.tensor(np.zeros(2), requires_grad=True) for _ in range(2)]
    theirs_params = [torch.zeros(2, requires_grad=True) for _ in range(2)]
    ours_opt = nr.optim.SGD([{"params": ours_params[:1]}, {"params": ours_params[1:], "lr": 0.3}],
                            lr=0.1, momentum=0.9)
    theirs_opt = torch.optim.SGD([{"params": theirs_params[:1]},
                                  {"params": theirs_params[1:], "lr": 0.3}], lr=0.1, momentum=0.9)
    return (ours_opt, getattr(lr_scheduler, name)(ours_opt, **options),
            theirs_opt, getattr(torch.optim.lr_scheduler, name)(theirs_opt, **options))


def lrs(opt):
    return [group["lr"] for group in opt.param_groups]


@pytest.mark.parametrize("name,options", SCHEDULERS, ids=[id_of(s) for s in SCHEDULERS])
def test_scheduler_learning_rates_equal_torch(name, options):
    torch = import_torch()
    ours_opt, ours, theirs_opt, theirs = scheduler_pair(torch, name, options)
    assert [g["initial_lr"] for g in ours_opt.param_groups] == [0.1, 0.3]
    for epoch in range(EPOCHS):
        assert_close(np.array(lrs(ours_opt)), np.array(lrs(theirs_opt)), "float64",
                     f"epoch {epoch} lr")
        assert_close(np.array(ours.get_last_lr()), np.array(theirs.get_last_lr()), "float64",
                     f"epoch {epoch} last lr")
        assert ours.last_epoch == theirs.last_epoch == epoch
        ours_opt.step()
        theirs_opt.step()
        ours.step()
        theirs.step()
    if hasattr(ours, "_get_closed_form_lr"):
        # the closed form, which step(epoch) uses, agrees with the chainable form
        assert_close(np.array(ours._get_closed_form_lr()), np.array(lrs(ours_opt)), "float64",
                     "closed form")


@pytest.mark.parametrize("name,options", SCHEDULERS, ids=[id_of(s) for s in SCHEDULERS])
def test_closed_forms_and_step_with_an_epoch_equal_torch(name, options):
    torch = import_torch()
    ours_opt, ours, theirs_opt, theirs = scheduler_pair(torch, name, options)
    for epoch in (4, 9, 2, 17, 28):
        with pytest.warns(UserWarning, match="epoch parameter"):
            ours.step(epoch)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs.step(epoch)
        assert_close(np.array(lrs(ours_opt)), np.array(lrs(theirs_opt)), "float64",
                     f"epoch {epoch}")
        if hasattr(ours, "_get_closed_form_lr"):  # LambdaLR has none: get_lr serves
            assert_close(np.array(lrs(ours_opt)), np.array(ours._get_closed_form_lr()),
                         "float64", f"closed form at {epoch}")


PLATEAUS = [
    dict(),
    dict(mode="max", threshold_mode="abs", threshold=0.05, patience=1, cooldown=2, factor=0.5),
    dict(patience=0, min_lr=[0.02, 0.05], factor=0.5, eps=1e-3),
    dict(mode="min", threshold_mode="abs", patience=2, cooldown=1, min_lr=0.01),
    dict(mode="max", threshold=0.01, patience=3),
]


@pytest.mark.parametrize("options", PLATEAUS, ids=[str(p) for p in PLATEAUS])
def test_reduce_lr_on_plateau_equals_torch(options):
    torch = import_torch()
    ours_opt, ours, theirs_opt, theirs = scheduler_pair(torch, "ReduceLROnPlateau", options)
    metrics = np.random.default_rng(5).standard_normal(EPOCHS).cumsum() * 0.1 + 3.0
    for epoch, metric in enumerate(metrics):
        value = [float(metric), nr.tensor(np.array(metric)), np.float32(metric)][epoch % 3]
        if epoch % 3 == 2:
            value = np.float64(metric)
        ours.step(value)
        theirs.step(float(metric))
        assert_close(np.array(lrs(ours_opt)), np.array(lrs(theirs_opt)), "float64",
                     f"epoch {epoch}")
        assert_close(np.array(ours.get_last_lr()), np.array(theirs.get_last_lr()), "float64",
                     f"epoch {epoch} last lr")
        for key in ("best", "num_bad_epochs", "cooldown_counter", "last_epoch"):
            assert getattr(ours, key) == getattr(theirs, key), (epoch, key)
        if epoch == EPOCHS // 2:  # go on with a scheduler restored from its state dict
            ours, state = lr_scheduler.ReduceLROnPlateau(ours_opt), ours.state_dict()
            ours.load_state_dict(state)
    assert lrs(ours_opt) != [0.1, 0.3]  # some reductions happened


def test_scheduler_state_dicts_resume_and_load_torch_ones(tmp_path):
    torch = import_torch()
    options = dict(milestones=[3, 6, 6, 11], gamma=0.5)
    ours_opt, ours, theirs_opt, theirs = scheduler_pair(torch, "MultiStepLR", options)
    ours_opt.step()
    theirs_opt.step()  # (PyTorch warns of a scheduler step before any optimizer step)
    for _ in range(4):
        ours.step()
        theirs.step()
    nr.save({"optimizer": ours_opt.state_dict(), "scheduler": ours.state_dict()},
            tmp_path / "ckpt.npz")
    loaded = nr.load(tmp_path / "ckpt.npz")
    # resumed from our checkpoint: the optimizer first (its groups keep initial_lr)
    resumed_params = [nr.tensor(np.zeros(2), requires_grad=True) for _ in range(2)]
    resumed_opt = nr.optim.SGD([{"params": resumed_params[:1]}, {"params": resumed_params[1:]}],
                               lr=1.0, momentum=0.9)
    resumed_opt.load_state_dict(loaded["optimizer"])
    assert [g["initial_lr"] for g in resumed_opt.param_groups] == [0.1, 0.3]
    resumed = lr_scheduler.MultiStepLR(resumed_opt, last_epoch=3, **options)
    resumed.load_state_dict(loaded["scheduler"])
    # torch's scheduler state into ours
    other_opt, from_torch, _, _ = scheduler_pair(torch, "MultiStepLR", options)
    from_torch.load_state_dict(theirs.state_dict())
    for group, lr in zip(other_opt.param_groups, lrs(theirs_opt)):
        group["lr"] = lr
    for epoch in range(4, 14):
        for scheduler in (ours, resumed, from_torch, theirs):
            scheduler.step()
        for opt in (resumed_opt, other_opt):
            assert lrs(opt) == lrs(ours_opt), epoch
        assert_close(np.array(lrs(ours_opt)), np.array(lrs(theirs_opt)), "float64",
                     f"epoch {epoch}")
    state = lr_scheduler.ReduceLROnPlateau(ours_opt, mode="max").state_dict()
    assert state["mode"] == "max" and state["best"] == -math.inf


@pytest.mark.parametrize("name,options", [("StepLR", dict(step_size=3, gamma=0.5)),
                                          ("CosineAnnealingLR", dict(T_max=7, eta_min=0.01))])
def test_resuming_at_an_epoch_equals_torch(name, options):
    """last_epoch=5 on groups that have their initial_lr (from a loaded optimizer state)
    and another lr: the first step is the closed form's (cosine), then the chainable."""
    torch = import_torch()
    ours_opt, _, theirs_opt, _ = scheduler_pair(torch, "ExponentialLR", dict(gamma=0.5))
    ours = getattr(lr_scheduler, name)(ours_opt, last_epoch=5, **options)
    theirs = getattr(torch.optim.lr_scheduler, name)(theirs_opt, last_epoch=5, **options)
    for epoch in range(6, 20):
        assert_close(np.array(lrs(ours_opt)), np.array(lrs(theirs_opt)), "float64", f"epoch {epoch}")
        assert ours.last_epoch == theirs.last_epoch
        ours_opt.step()
        theirs_opt.step()
        ours.step()
        theirs.step()


class Decay:
    """A callable object: LambdaLR's state dict keeps its attributes."""

    def __init__(self, rate):
        self.rate = rate

    def __call__(self, epoch):
        return self.rate ** epoch


def test_lambda_lr_state_dict_keeps_the_attributes_of_callable_objects():
    torch = import_torch()
    ours_opt, ours, theirs_opt, theirs = scheduler_pair(
        torch, "LambdaLR", dict(lr_lambda=[Decay(0.9), lambda epoch: 1.0]))
    for _ in range(3):
        ours.step()
    state = ours.state_dict()
    assert state["lr_lambdas"] == [{"rate": 0.9}, None]
    other_opt, other, _, _ = scheduler_pair(torch, "LambdaLR",
                                            dict(lr_lambda=[Decay(0.5), lambda epoch: 1.0]))
    other.load_state_dict(state)
    assert other.lr_lambdas[0].rate == 0.9 and other.last_epoch == 3
    theirs.lr_lambdas[0].rate = 0.7
    other.load_state_dict(theirs.state_dict())  # PyTorch's
    assert other.lr_lambdas[0].rate == 0.7 and other.last_epoch == 0


def test_reduce_lr_on_plateau_with_a_group_added_later():
    opt = nr.optim.SGD([_param()], lr=1.0)
    scheduler = lr_scheduler.ReduceLROnPlateau(opt, patience=0, min_lr=0.2)
    opt.add_param_group({"params": [_param()], "lr": 0.5})
    for metric in (1.0, 2.0, 3.0):
        scheduler.step(metric)
    assert lrs(opt) == [pytest.approx(0.2), pytest.approx(0.2)]  # min_lr for the new group too
    opt = nr.optim.SGD([_param()], lr=1.0)
    scheduler = lr_scheduler.ReduceLROnPlateau(opt, patience=0, min_lr=[0.2])
    opt.add_param_group({"params": [_param()], "lr": 0.5})
    scheduler.step(1.0)
    with pytest.raises(RuntimeError, match="min_lr"):
        scheduler.step(2.0)


def test_get_lr_outside_step_warns_as_torch():
    opt = nr.optim.SGD([nr.tensor(np.zeros(1), requires_grad=True)], lr=0.1)
    scheduler = lr_scheduler.StepLR(opt, 2)
    with pytest.warns(UserWarning, match="get_last_lr"):
        scheduler.get_lr()
    assert issubclass(lr_scheduler._LRScheduler, lr_scheduler.LRScheduler)


# ------------------------------------------------------------------- bad input
def _param(dtype="float32"):
    return nr.tensor(np.ones(2, dtype), requires_grad=True)


def _opt():
    return nr.optim.SGD([_param()], lr=0.1)


BAD = [
    ("RMSprop negative lr", lambda: nr.optim.RMSprop([_param()], lr=-1), ValueError, ["lr", "-1"]),
    ("RMSprop alpha", lambda: nr.optim.RMSprop([_param()], alpha=-0.5), ValueError, ["alpha", "-0.5"]),
    ("RMSprop momentum", lambda: nr.optim.RMSprop([_param()], momentum=-1), ValueError, ["momentum"]),
    ("RMSprop eps", lambda: nr.optim.RMSprop([_param()], eps=-1e-8), ValueError, ["eps"]),
    ("RMSprop centered", lambda: nr.optim.RMSprop([_param()], centered="yes"), TypeError, ["centered", "yes"]),
    ("Adagrad negative lr", lambda: nr.optim.Adagrad([_param()], lr=-0.1), ValueError, ["lr", "-0.1"]),
    ("Adagrad lr_decay", lambda: nr.optim.Adagrad([_param()], lr_decay=-1), ValueError, ["lr_decay"]),
    ("Adagrad accumulator", lambda: nr.optim.Adagrad([_param()], initial_accumulator_value=-1),
     ValueError, ["initial_accumulator_value"]),
    ("Adagrad weight_decay", lambda: nr.optim.Adagrad([_param()], weight_decay="0"), TypeError,
     ["weight_decay", "str"]),
    ("Adadelta negative lr", lambda: nr.optim.Adadelta([_param()], lr=-1), ValueError, ["lr"]),
    ("Adadelta rho", lambda: nr.optim.Adadelta([_param()], rho=1.5), ValueError, ["rho", "1.5"]),
    ("Adadelta maximize", lambda: nr.optim.Adadelta([_param()], maximize=1), TypeError, ["maximize"]),
    ("LBFGS negative lr", lambda: nr.optim.LBFGS([_param()], lr=-1), ValueError, ["lr"]),
    ("LBFGS max_iter", lambda: nr.optim.LBFGS([_param()], max_iter=0), ValueError, ["max_iter", "0"]),
    ("LBFGS max_eval", lambda: nr.optim.LBFGS([_param()], max_eval=2.5), TypeError, ["max_eval"]),
    ("LBFGS history_size", lambda: nr.optim.LBFGS([_param()], history_size=0), ValueError, ["history_size"]),
    ("LBFGS tolerance", lambda: nr.optim.LBFGS([_param()], tolerance_grad=-1), ValueError, ["tolerance_grad"]),
    ("LBFGS line search", lambda: nr.optim.LBFGS([_param()], line_search_fn="armijo"), ValueError,
     ["line_search_fn", "strong_wolfe", "armijo"]),
    ("LBFGS groups", lambda: nr.optim.LBFGS([{"params": [_param()]}, {"params": [_param()]}]),
     ValueError, ["param_group", "one group"]),
    ("LBFGS dtypes", lambda: nr.optim.LBFGS([_param(), _param("float64")]), TypeError,
     ["params", "float32", "float64"]),
    ("LBFGS no closure", lambda: nr.optim.LBFGS([_param()]).step(None), TypeError, ["closure"]),
    ("LBFGS loss", lambda: nr.optim.LBFGS([_param()]).step(lambda: "low"), TypeError,
     ["closure", "loss", "str"]),
    ("closure not callable", lambda: _opt().step(3), TypeError, ["closure", "int"]),
    ("not an optimizer", lambda: lr_scheduler.StepLR(object(), 2), TypeError, ["optimizer", "object"]),
    ("step_size", lambda: lr_scheduler.StepLR(_opt(), 0), ValueError, ["step_size", "0"]),
    ("step_size type", lambda: lr_scheduler.StepLR(_opt(), 2.5), TypeError, ["step_size", "2.5"]),
    ("gamma", lambda: lr_scheduler.ExponentialLR(_opt(), gamma=-0.5), ValueError, ["gamma", "-0.5"]),
    ("milestones", lambda: lr_scheduler.MultiStepLR(_opt(), milestones=5), TypeError, ["milestones", "5"]),
    ("milestone", lambda: lr_scheduler.MultiStepLR(_opt(), milestones=[2, 3.5]), TypeError,
     ["milestones[1]", "3.5"]),
    ("lr_lambda", lambda: lr_scheduler.LambdaLR(_opt(), lr_lambda=0.5), TypeError, ["lr_lambda", "float"]),
    ("lr_lambdas", lambda: lr_scheduler.LambdaLR(_opt(), lr_lambda=[abs, abs]), ValueError,
     ["lr_lambda", "1", "2"]),
    ("T_max", lambda: lr_scheduler.CosineAnnealingLR(_opt(), T_max=0), ValueError, ["T_max", "0"]),
    ("T_max type", lambda: lr_scheduler.CosineAnnealingLR(_opt(), T_max="7"), TypeError, ["T_max", "str"]),
    ("last_epoch", lambda: lr_scheduler.StepLR(_opt(), 2, last_epoch=-2), ValueError, ["last_epoch", "-2"]),
    ("resume without initial_lr", lambda: lr_scheduler.StepLR(_opt(), 2, last_epoch=3), ValueError,
     ["last_epoch", "initial_lr"]),
    ("plateau mode", lambda: lr_scheduler.ReduceLROnPlateau(_opt(), mode="avg"), ValueError, ["mode", "avg"]),
    ("plateau threshold_mode", lambda: lr_scheduler.ReduceLROnPlateau(_opt(), threshold_mode="pct"),
     ValueError, ["threshold_mode", "pct"]),
    ("plateau factor", lambda: lr_scheduler.ReduceLROnPlateau(_opt(), factor=1.0), ValueError, ["factor", "1.0"]),
    ("plateau patience", lambda: lr_scheduler.ReduceLROnPlateau(_opt(), patience=-1), ValueError, ["patience"]),
    ("plateau cooldown", lambda: lr_scheduler.ReduceLROnPlateau(_opt(), cooldown=1.5), TypeError, ["cooldown"]),
    ("plateau min_lr", lambda: lr_scheduler.ReduceLROnPlateau(_opt(), min_lr=[0.1, 0.2]), ValueError,
     ["min_lr", "1", "2"]),
    ("plateau eps", lambda: lr_scheduler.ReduceLROnPlateau(_opt(), eps=-1), ValueError, ["eps"]),
    ("plateau metrics", lambda: lr_scheduler.ReduceLROnPlateau(_opt()).step("low"), TypeError,
     ["metrics", "str"]),
]


@pytest.mark.parametrize("name,call,error,words", BAD, ids=[b[0] for b in BAD])
def test_bad_input(name, call, error, words):
    assert_refused(call, error, words)


def test_refusals_change_nothing():
    p, q = _param("float64"), _param("float64")
    opt = nr.optim.RMSprop([p], lr=0.1)
    with pytest.raises(ValueError, match="lr"):
        opt.add_param_group({"params": [q], "lr": -1.0})
    assert len(opt.param_groups) == 1 and q not in opt.state
    before = dict(opt.param_groups[0])
    for make in (lambda: lr_scheduler.StepLR(opt, step_size=0),
                 lambda: lr_scheduler.StepLR(opt, 2, last_epoch=5),
                 lambda: lr_scheduler.LambdaLR(opt, lr_lambda=[abs, abs]),
                 lambda: lr_scheduler.ReduceLROnPlateau(opt, factor=2.0)):
        with pytest.raises((ValueError, TypeError)):
            make()
        assert opt.param_groups[0] == before  # no initial_lr, lr as it was
    lbfgs = nr.optim.LBFGS([p])
    with pytest.raises(ValueError, match="shape"):
        lbfgs.load_state_dict({"state": {0: {"d": np.zeros(5), "n_iter": 1}},
                               "param_groups": lbfgs.state_dict()["param_groups"]})
    assert lbfgs.state == {}
