"""Optimizers against torch.optim over several steps (parameters and state after every
step), state dicts (ours, checkpointed, and PyTorch's in both directions), gradient
clipping against torch.nn.utils, and bad input."""
import numpy as np
import pytest

import numba_rnn as nr
from numba_rnn.testing import assert_close
from oracles import import_torch
from test_bad_input import assert_refused

SHAPES = [(3, 4), (5,), (2, 3, 2)]
CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.3, weight_decay=0.01)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.5, maximize=True)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("Adam", dict(lr=0.01, maximize=True)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.01, weight_decay=0.1, amsgrad=True)),
    ("RMSprop", dict()),
    ("RMSprop", dict(lr=0.01, alpha=0.9, eps=1e-6, weight_decay=0.1)),
    ("RMSprop", dict(lr=0.01, momentum=0.9)),
    ("RMSprop", dict(lr=0.01, centered=True)),
    ("RMSprop", dict(lr=0.01, centered=True, momentum=0.5, weight_decay=0.01, maximize=True)),
    ("Adagrad", dict(lr=0.1)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.1, weight_decay=0.1, initial_accumulator_value=0.5)),
    ("Adagrad", dict(lr=0.1, eps=1e-3, maximize=True)),
    ("Adadelta", dict()),
    ("Adadelta", dict(lr=0.5, rho=0.8, eps=1e-4, weight_decay=0.1)),
    ("Adadelta", dict(maximize=True)),
]
STEPS = 5


def make_params(rng, dtype, shapes=SHAPES):
    return [rng.standard_normal(shape).astype(dtype) for shape in shapes]


def gradients(rng, dtype, steps=STEPS, shapes=SHAPES):
    """Per step, one gradient per parameter; the second parameter has none at step 1,
    which both libraries skip."""
    result = []
    for step in range(steps):
        grads = [rng.standard_normal(shape).astype(dtype) for shape in shapes]
        if step == 1:
            grads[1] = None
        result.append(grads)
    return result


def set_grads(params, grads, wrap):
    for p, g in zip(params, grads):
        p.grad = None if g is None else wrap(g.copy())


def id_of(config):
    return f"{config[0]}-" + "-".join(f"{k}={v}" for k, v in config[1].items())


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("config", CONFIGS, ids=[id_of(c) for c in CONFIGS])
def test_steps_equal_torch_optim(config, dtype, rng):
    torch = import_torch()
    name, options = config
    start = make_params(rng, dtype)
    ours = [nr.tensor(a, requires_grad=True) for a in start]
    theirs = [torch.tensor(a, requires_grad=True) for a in start]
    ours_opt = getattr(nr.optim, name)(ours, **options)
    theirs_opt = getattr(torch.optim, name)(theirs, foreach=False, **options)
    for step, grads in enumerate(gradients(rng, dtype)):
        set_grads(ours, grads, nr.tensor)
        set_grads(theirs, grads, torch.from_numpy)
        ours_opt.step()
        theirs_opt.step()
        for k, (p, q) in enumerate(zip(ours, theirs)):
            assert_close(p, q.detach(), dtype, f"step {step} parameter {k}")
            if theirs_opt.state[q]:
                assert_state_equal(ours_opt.state[p], theirs_opt.state[q], dtype,
                                   f"step {step} state {k}")


def assert_state_equal(ours_state, theirs_state, dtype, where):
    assert set(ours_state) == set(theirs_state), (where, ours_state.keys(), theirs_state.keys())
    for key, value in theirs_state.items():
        if value is not None:
            assert_close(np.asarray(ours_state[key]), value, dtype, f"{where} {key}")


def test_param_groups_use_their_own_hyperparameters(rng):
    torch = import_torch()
    start = make_params(rng, "float64")
    ours = [nr.tensor(a, requires_grad=True) for a in start]
    theirs = [torch.tensor(a, requires_grad=True) for a in start]
    ours_opt = nr.optim.SGD([{"params": ours[:1]}, {"params": ours[1:], "lr": 0.5}],
                            lr=0.1, momentum=0.9)
    theirs_opt = torch.optim.SGD([{"params": theirs[:1]}, {"params": theirs[1:], "lr": 0.5}],
                                 lr=0.1, momentum=0.9)
    for grads in gradients(rng, "float64"):
        set_grads(ours, grads, nr.tensor)
        set_grads(theirs, grads, torch.from_numpy)
        ours_opt.step()
        theirs_opt.step()
    for p, q in zip(ours, theirs):
        assert_close(p, q.detach(), "float64")


def test_update_by_hand_without_torch():
    """One SGD-momentum step and one Adam step, worked out by hand."""
    p = nr.tensor(np.array([1.0, -2.0]), requires_grad=True)
    opt = nr.optim.SGD([p], lr=0.5, momentum=0.9)
    for _ in range(2):
        p.grad = nr.tensor(np.array([0.2, 0.4]))
        opt.step()
    # buf = g, then 0.9·g + g = 1.9·g: p = p0 - 0.5·g - 0.5·1.9·g = p0 - 1.45·g
    np.testing.assert_allclose(p.numpy(), [1.0 - 1.45 * 0.2, -2.0 - 1.45 * 0.4], rtol=1e-12)
    q = nr.tensor(np.array([1.0]), requires_grad=True)
    adam = nr.optim.Adam([q], lr=0.1)
    q.grad = nr.tensor(np.array([-3.0]))
    adam.step()  # the first Adam step moves by lr·sign(g) (up to eps)
    np.testing.assert_allclose(q.numpy(), [1.1], rtol=1e-9)


def test_zero_grad():
    p = nr.tensor(np.ones(3, "float32"), requires_grad=True)
    opt = nr.optim.SGD([p])
    p.grad = nr.tensor(np.ones(3, "float32"))
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(p.grad.numpy(), 0)
    opt.zero_grad()
    assert p.grad is None


def _run(opt, params, grads_per_step):
    for grads in grads_per_step:
        set_grads(params, grads, nr.tensor)
        opt.step()


@pytest.mark.parametrize("name,options", [("SGD", dict(lr=0.1, momentum=0.9)),
                                          ("Adam", dict(lr=0.01, amsgrad=True)),
                                          ("AdamW", dict(lr=0.01))])
def test_state_dict_through_a_checkpoint_continues_bit_exactly(name, options, rng, tmp_path):
    start = make_params(rng, "float32")
    grads = gradients(rng, "float32", steps=6)
    first = [nr.tensor(a, requires_grad=True) for a in start]
    opt = getattr(nr.optim, name)(first, **options)
    _run(opt, first, grads[:3])
    nr.save({"params": [p.numpy() for p in first], "optimizer": opt.state_dict()},
            tmp_path / "ckpt.npz")
    loaded = nr.load(tmp_path / "ckpt.npz")
    second = [nr.tensor(a, requires_grad=True) for a in loaded["params"]]
    resumed = getattr(nr.optim, name)(second, lr=123.0)  # hyper-parameters come from the file
    resumed.load_state_dict(loaded["optimizer"])
    assert resumed.param_groups[0]["lr"] == options["lr"]
    _run(opt, first, grads[3:])
    _run(resumed, second, grads[3:])
    for p, q in zip(first, second):
        np.testing.assert_array_equal(p.numpy(), q.numpy())


def test_state_dicts_move_between_us_and_torch(rng):
    torch = import_torch()
    start = make_params(rng, "float64")
    grads = gradients(rng, "float64", steps=4)
    ours = [nr.tensor(a, requires_grad=True) for a in start]
    ours_opt = nr.optim.Adam(ours, lr=0.01)
    _run(ours_opt, ours, grads[:2])
    # ours -> torch: PyTorch keeps the step count as a tensor
    theirs = [torch.tensor(p.numpy(), requires_grad=True) for p in ours]
    theirs_opt = torch.optim.Adam(theirs, lr=0.01, foreach=False)
    state = ours_opt.state_dict()
    state["state"] = {k: {n: torch.tensor(v) for n, v in entry.items()}
                      for k, entry in state["state"].items()}
    theirs_opt.load_state_dict(state)
    # torch -> ours
    back = [nr.tensor(p.numpy(), requires_grad=True) for p in ours]
    back_opt = nr.optim.Adam(back, lr=0.01)
    back_opt.load_state_dict(theirs_opt.state_dict())
    for grads_now in grads[2:]:
        set_grads(ours, grads_now, nr.tensor)
        set_grads(back, grads_now, nr.tensor)
        set_grads(theirs, grads_now, torch.from_numpy)
        ours_opt.step()
        back_opt.step()
        theirs_opt.step()
    for p, q, r in zip(ours, theirs, back):
        assert_close(p, q.detach(), "float64")
        np.testing.assert_array_equal(p.numpy(), r.numpy())


@pytest.mark.parametrize("norm_type", [2.0, 1.0, float("inf")])
@pytest.mark.parametrize("max_norm", [0.5, 100.0])
def test_clip_grad_norm_equals_torch(norm_type, max_norm, rng):
    torch = import_torch()
    grads = [rng.standard_normal(shape).astype("float32") for shape in SHAPES]
    ours = [nr.tensor(np.zeros(g.shape, "float32"), requires_grad=True) for g in grads]
    theirs = [torch.zeros(g.shape, requires_grad=True) for g in grads]
    set_grads(ours, grads, nr.tensor)
    set_grads(theirs, grads, torch.from_numpy)
    total = nr.nn.utils.clip_grad_norm_(ours, max_norm, norm_type)
    expected = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type)
    assert_close(total, expected, "float32", "total norm")
    for p, q in zip(ours, theirs):
        assert_close(p.grad, q.grad, "float32", "clipped gradient")


def test_clip_grad_norm_by_hand():
    p = nr.tensor(np.zeros(2), requires_grad=True)
    p.grad = nr.tensor(np.array([3.0, 4.0]))
    assert nr.nn.utils.clip_grad_norm_(p, 1.0).item() == pytest.approx(5.0)
    np.testing.assert_allclose(p.grad.numpy(), [0.6, 0.8], rtol=1e-6)
    p.grad = nr.tensor(np.array([np.inf, 1.0]))
    with pytest.raises(RuntimeError, match="non-finite"):
        nr.nn.utils.clip_grad_norm_([p], 1.0, error_if_nonfinite=True)


def _param():
    return nr.tensor(np.ones(2, "float32"), requires_grad=True)


BAD = [
    ("negative lr", lambda: nr.optim.SGD([_param()], lr=-1), ValueError, ["lr", "-1"]),
    ("beta1 >= 1", lambda: nr.optim.Adam([_param()], betas=(1.0, 0.9)), ValueError, ["betas[0]", "[0, 1)", "1.0"]),
    ("betas not a pair", lambda: nr.optim.AdamW([_param()], betas=0.9), TypeError, ["betas", "pair", "0.9"]),
    ("nesterov without momentum", lambda: nr.optim.SGD([_param()], nesterov=True), ValueError, ["nesterov", "momentum"]),
    ("empty params", lambda: nr.optim.Adam([]), ValueError, ["params", "empty"]),
    ("a tensor, not a list", lambda: nr.optim.Adam(_param()), TypeError, ["params", "Tensor"]),
    ("not tensors", lambda: nr.optim.SGD([np.zeros(2)]), TypeError, ["params", "ndarray"]),
    ("not a leaf", lambda: nr.optim.SGD([_param() * 2]), ValueError, ["params", "leaf"]),
    ("twice", lambda: (lambda p: nr.optim.SGD([p, p]))(_param()), ValueError, ["params", "more than one"]),
    ("max_norm", lambda: nr.nn.utils.clip_grad_norm_([_param()], "1"), TypeError, ["max_norm", "str"]),
    ("norm_type", lambda: nr.nn.utils.clip_grad_norm_([_param()], 1.0, 0), ValueError, ["norm_type", "0"]),
]


@pytest.mark.parametrize("name,call,error,words", BAD, ids=[b[0] for b in BAD])
def test_bad_input(name, call, error, words):
    assert_refused(call, error, words)


def test_refused_state_dict_changes_nothing(rng):
    params = [nr.tensor(a, requires_grad=True) for a in make_params(rng, "float32")]
    opt = nr.optim.Adam(params, lr=0.01)
    _run(opt, params, gradients(rng, "float32", steps=2))
    before = opt.state_dict()
    wrong = opt.state_dict()
    wrong["state"][0]["exp_avg"] = np.zeros((4, 3))
    wrong["param_groups"][0]["lr"] = 5.0
    with pytest.raises(ValueError, match=r"exp_avg.*\(3, 4\).*\(4, 3\)"):
        opt.load_state_dict(wrong)
    with pytest.raises(ValueError, match="1 parameter groups, got 2"):
        opt.load_state_dict({"state": {}, "param_groups": before["param_groups"] * 2})
    after = opt.state_dict()
    assert after["param_groups"] == before["param_groups"]
    for k, entry in before["state"].items():
        for key, value in entry.items():
            np.testing.assert_array_equal(after["state"][k][key], value)


@pytest.mark.parametrize("name,options", [("SGD", dict(lr=0.1, momentum=0.9)),
                                          ("Adam", dict(lr=0.1)), ("AdamW", dict(lr=0.1))])
def test_frozen_parameters_and_missing_gradients_are_skipped(name, options, rng):
    """As torch.optim: parameters with requires_grad=False, or whose .grad is None, are
    accepted and left alone by step()."""
    start = [rng.standard_normal(3) for _ in range(3)]
    frozen = nr.tensor(start[0])                          # requires_grad=False
    unused = nr.tensor(start[1], requires_grad=True)      # .grad stays None
    live = nr.tensor(start[2], requires_grad=True)
    opt = getattr(nr.optim, name)([frozen, unused, live], **options)
    gradient = rng.standard_normal(3)
    live.grad = nr.tensor(gradient)
    opt.step()
    np.testing.assert_array_equal(frozen.numpy(), start[0])
    np.testing.assert_array_equal(unused.numpy(), start[1])
    assert not np.array_equal(live.numpy(), start[2])
    assert list(opt.state_dict()["state"]) == [2]
    with pytest.raises(ValueError, match="leaf"):
        getattr(nr.optim, name)([live * 2], **options)
    try:
        import torch
    except ImportError:
        return
    theirs = [torch.tensor(a, requires_grad=k > 0) for k, a in enumerate(start)]
    torch_opt = getattr(torch.optim, name)(theirs, **options)
    theirs[2].grad = torch.tensor(gradient)
    torch_opt.step()
    for ours, expected in zip((frozen, unused, live), theirs):
        assert_close(ours, expected.detach(), "float64", "parameter")


def test_amsgrad_switched_on_later_gets_state_of_its_own(rng):
    """Turning amsgrad on for a state made without it allocates max_exp_avg_sq (the
    kernel would otherwise write past a 1-element placeholder)."""
    p = nr.tensor(rng.standard_normal((2, 3)), requires_grad=True)
    twin = nr.tensor(p.numpy(), requires_grad=True)
    opt = nr.optim.Adam([p], lr=0.1)
    twin_opt = nr.optim.Adam([twin], lr=0.1)
    for step in range(2):
        gradient = rng.standard_normal((2, 3))
        p.grad, twin.grad = nr.tensor(gradient), nr.tensor(gradient)
        if step == 1:
            opt.param_groups[0]["amsgrad"] = True
        opt.step()
        twin_opt.step()
    state = opt.state[p]
    assert state["max_exp_avg_sq"].shape == (2, 3)
    # max(0, v) = v: the first amsgrad step is the plain Adam step
    np.testing.assert_array_equal(state["max_exp_avg_sq"], state["exp_avg_sq"])
    np.testing.assert_array_equal(p.numpy(), twin.numpy())
    np.testing.assert_array_equal(nr.backend.placeholder(1, np.float64), [0.0])
