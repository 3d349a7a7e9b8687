"""The autograd engine: the order in which functions run (gradients of every use summed
first), graph lifetime (released after backward, retain_graph, retain_grad), and grad
mode (no_grad, enable_grad, set_grad_enabled; per thread). The random-graph tests in
test_graphs.py cover the order at scale; here are the cases by hand."""
import gc
import sys
import threading
import weakref

import numpy as np
import pytest

import numba_rnn as nr
from numba_rnn import recurrent
from numba_rnn.testing import assert_close
from oracles import gradcheck, import_torch

tensor_module = sys.modules["numba_rnn.tensor"]  # nr.tensor is the function


def leaf(values, dtype="float64"):
    return nr.tensor(np.array(values, dtype=dtype), requires_grad=True)


# ------------------------------------------------------------------------ order
def test_a_tensor_used_by_paths_of_different_lengths():
    # the first example: PyTorch gives 2 + 2·3 = 8 per element
    x = leaf([1.0, 2.0])
    b = x * 2
    (b + b * 3).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [8.0, 8.0])


def test_mean_centering_and_row_normalisation_by_hand():
    rng = np.random.default_rng(0)
    x0, w = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    x = leaf(x0)
    b = x * 2
    ((b - b.mean()) * nr.tensor(w)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * (w - w.mean()), rtol=1e-12)

    # f = Σ w·b/s with b = x², s = Σ_row b: df/db = w/s - Σ_row(w·b)/s²
    x = leaf(x0)
    b = x * x
    (b / b.sum(1, keepdim=True) * nr.tensor(w)).sum().backward()
    bb = x0 * x0
    s = bb.sum(1, keepdims=True)
    expected = (w / s - (w * bb).sum(1, keepdims=True) / s ** 2) * 2 * x0
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-10)


def test_residual_over_an_lstm_equals_torch(rng):
    torch = import_torch()
    ours_lstm, ours_lin = nr.LSTM(3, 3, dtype="float64"), nr.nn.Linear(3, 3, dtype="float64")
    theirs_lstm = torch.nn.LSTM(3, 3, dtype=torch.float64)
    theirs_lin = torch.nn.Linear(3, 3, dtype=torch.float64)
    theirs_lstm.load_state_dict({k: torch.from_numpy(v) for k, v in ours_lstm.state_dict().items()})
    theirs_lin.load_state_dict({k: torch.from_numpy(v) for k, v in ours_lin.state_dict().items()})
    x0 = rng.standard_normal((4, 2, 3))
    results = []
    for lib, lstm, lin in ((nr, ours_lstm, ours_lin), (torch, theirs_lstm, theirs_lin)):
        x = lib.tensor(x0.copy(), requires_grad=True)
        out, _ = lstm(x)
        out = out + lin(out)        # the residual: out feeds two paths
        (out * out).sum().backward()
        results.append([x.grad] + [p.grad for p in (*lstm.parameters(), *lin.parameters())])
    for ours, theirs in zip(*results):
        assert_close(ours, theirs, "float64", "gradient")


def test_deep_chain_with_a_shared_tensor_at_every_step():
    # y ← y + 0.001·y, 3000 times: no recursion limit, and each step's two uses summed
    x = leaf([1.0, -2.0])
    y = x
    for _ in range(3000):
        y = y + y * 0.001
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.001 ** 3000] * 2, rtol=1e-9)


def test_multi_output_function_waits_for_all_its_outputs():
    # output and h_n of one GRU call reach the loss through paths of different lengths
    layer = nr.GRU(2, 3, dtype="float64")
    x = leaf(np.random.default_rng(1).standard_normal((3, 1, 2)))

    def loss():
        out, h_n = layer(x)
        h = h_n * 2
        return out.sum() + (h * h).sum() + (h + out[-1]).sum()

    gradcheck(loss, {"input": x, **dict(layer.named_parameters())})


# --------------------------------------------------------------- graph lifetime
def test_backward_releases_the_saved_arrays():
    x = leaf([1.0, 2.0, 3.0])
    z = x * 3.0
    saved = weakref.ref(z._array)
    w = z * z                        # saves z's array for its backward
    del z
    gc.collect()
    assert saved() is not None
    w.sum().backward()
    gc.collect()
    assert saved() is None


def test_a_second_backward_raises_and_changes_nothing():
    x = leaf([1.0, 2.0])
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="second time.*retain_graph=True"):
        y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 4.0])
    # a new graph over the same leaves is fine
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [4.0, 8.0])


def test_a_second_backward_through_a_shared_part_raises():
    x = leaf([1.0, 2.0])
    shared = x * x
    (shared * 2).sum().backward()
    with pytest.raises(RuntimeError, match="second time"):
        (shared * 3).sum().backward()


def test_retain_graph_keeps_it():
    x = leaf([1.0, 2.0])
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [4.0, 8.0])
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()


def test_graphs_that_saved_nothing_run_again_as_in_torch():
    # PyTorch frees only saved tensors: sums, additions and reshapes can be re-run
    x = leaf([1.0, 2.0])
    y = (x + 1.0).reshape(2, 1).T.sum()
    y.backward()
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0])


def test_a_layer_graph_is_released_too():
    layer = nr.LSTM(2, 3, dtype="float64")
    x = leaf(np.ones((2, 1, 2)))
    out, (h, c) = layer(x)
    loss = (out * out).sum() + c.sum()
    loss.backward(retain_graph=True)
    once = layer.weight_hh_l0.grad.numpy().copy()
    loss.backward()
    np.testing.assert_allclose(layer.weight_hh_l0.grad.numpy(), 2 * once, rtol=1e-12)
    with pytest.raises(RuntimeError, match="second time"):
        loss.backward()


def test_backward_with_a_gradient_for_a_non_scalar():
    x = leaf([[1.0, 2.0], [3.0, 4.0]])
    y = x * x
    with pytest.raises(RuntimeError, match="scalar"):
        y.backward()
    y.backward(np.array([[1.0, 0.0], [0.5, 2.0]]))
    np.testing.assert_array_equal(x.grad.numpy(), [[2.0, 0.0], [3.0, 16.0]])
    with pytest.raises(NotImplementedError, match="create_graph"):
        (x * 1.0).sum().backward(create_graph=True)


def test_non_leaf_grad_is_none_unless_retained():
    x = leaf([1.0, 2.0])
    b = x * 2
    kept = x * 3
    kept.retain_grad()
    assert kept.retains_grad and not b.retains_grad and not x.retains_grad
    loss = (b * kept).sum() + kept.sum()
    loss.backward(retain_graph=True)
    assert b.grad is None
    np.testing.assert_array_equal(kept.grad.numpy(), [3.0, 5.0])   # b + 1
    np.testing.assert_array_equal(x.grad.numpy(), [15.0, 27.0])    # 12x + 3
    loss.backward()
    np.testing.assert_array_equal(kept.grad.numpy(), [6.0, 10.0])  # accumulates, as .grad does
    x.retain_grad()                                                # a leaf: nothing to do
    with pytest.raises(RuntimeError, match="does not require grad"):
        nr.tensor([1.0]).retain_grad()


def test_retain_grad_equals_torch(rng):
    torch = import_torch()
    x0 = rng.standard_normal((2, 3))
    grads = []
    for lib in (nr, torch):
        x = lib.tensor(x0.copy(), requires_grad=True)
        h = x * x
        h.retain_grad()
        (h / h.sum(1, keepdim=True) + h).sum().backward()
        grads.append((x.grad, h.grad))
    for ours, theirs in zip(*grads):
        assert_close(ours, theirs, "float64", "gradient")


# ------------------------------------------------------------------- grad mode
def test_no_grad_records_nothing_and_nests():
    x = leaf([1.0])
    context = nr.no_grad()
    with context:
        with context:                       # the same object, entered twice
            assert not nr.is_grad_enabled()
        assert not nr.is_grad_enabled()
        y = x * 2
    assert nr.is_grad_enabled()
    assert not y.requires_grad and y.is_leaf


def test_no_grad_decorator_on_a_recursive_function():
    seen = []

    @nr.no_grad()
    def depth(n):
        seen.append(nr.is_grad_enabled())
        return 0 if n == 0 else 1 + depth(n - 1)

    assert depth(3) == 3
    assert seen == [False] * 4
    assert nr.is_grad_enabled()

    @nr.no_grad
    def bare():
        return nr.is_grad_enabled()

    assert bare() is False and nr.is_grad_enabled()


def test_enable_grad_and_set_grad_enabled():
    x = leaf([1.0])
    with nr.no_grad():
        with nr.enable_grad():
            assert (x * 2).requires_grad
        assert not (x * 2).requires_grad

        @nr.enable_grad()
        def recorded():
            return x * 2

        assert recorded().requires_grad and not nr.is_grad_enabled()

    nr.set_grad_enabled(False)              # as a function: at once
    try:
        assert not nr.is_grad_enabled()
    finally:
        nr.set_grad_enabled(True)
    with nr.set_grad_enabled(False):        # as a context: restored after
        assert not (x * 2).requires_grad
    assert nr.is_grad_enabled()

    @nr.set_grad_enabled(False)
    def off():
        return nr.is_grad_enabled()

    assert nr.is_grad_enabled() and off() is False and nr.is_grad_enabled()
    with pytest.raises(TypeError, match="mode"):
        nr.set_grad_enabled("no")


def _in_thread(work):
    result = {}
    thread = threading.Thread(target=lambda: result.update(value=work()))
    thread.start()
    thread.join()
    return result["value"]


def test_grad_mode_is_per_thread():
    x = leaf([1.0])
    with nr.no_grad():
        # a new thread starts with gradients on, and its own mode stays its own
        assert _in_thread(lambda: (nr.is_grad_enabled(), (x * 2).requires_grad)) == (True, True)
        assert not nr.is_grad_enabled()
    inside, outside = threading.Event(), threading.Event()

    def hold_no_grad():
        with nr.no_grad():
            inside.set()
            outside.wait(5)
        return nr.is_grad_enabled()

    thread = threading.Thread(target=hold_no_grad)
    thread.start()
    inside.wait(5)
    assert nr.is_grad_enabled() and (x * 2).requires_grad   # while the thread is in no_grad
    outside.set()
    thread.join()


def test_forced_path_is_per_thread():
    with recurrent.force_path("fused"):
        assert recurrent.forced_path() == "fused"
        assert _in_thread(recurrent.forced_path) is None

        def force_in_thread():
            with recurrent.force_path("persistent"):
                return recurrent.forced_path()

        assert _in_thread(force_in_thread) == "persistent"
        assert recurrent.forced_path() == "fused"
    assert recurrent.forced_path() is None


def test_the_graph_holds_no_intermediate_tensor():
    # edges point at functions and leaves; an intermediate's array lives only where a
    # closure saved it
    x = leaf([1.0, 2.0])
    y = x + 1.0
    kept = weakref.ref(y._array)
    z = (y + 2.0).sum()
    del y
    gc.collect()
    assert kept() is None
    assert all(isinstance(e, (tuple, tensor_module.Tensor, type(None))) for e in z._fn.edges)
    z.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 1.0])


def test_decorated_generators_run_each_step_in_the_mode():
    x = leaf([1.0, 2.0])

    @nr.no_grad()
    def no_grad_steps():
        for _ in range(2):
            received = yield (x * 2).requires_grad, nr.is_grad_enabled()
            assert received == "go on"

    @nr.set_grad_enabled(False)
    def off_steps():
        yield nr.is_grad_enabled()

    steps = no_grad_steps()
    assert next(steps) == (False, False)
    assert nr.is_grad_enabled()                    # the caller's mode between steps
    assert steps.send("go on") == (False, False)
    with pytest.raises(StopIteration):
        steps.send("go on")
    assert list(off_steps()) == [False] and nr.is_grad_enabled()
    with nr.no_grad():
        assert list(nr.enable_grad()(lambda: (yield nr.is_grad_enabled()))()) == [True]
        assert not nr.is_grad_enabled()


def test_an_in_place_update_of_a_saved_parameter_is_refused():
    # two losses over one graph, an optimizer step between their backwards: the saved
    # value of w is stale, and PyTorch refuses as well
    w, x = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    h = w * x
    first, second = h.sum(), (h * h).sum()
    first.backward(retain_graph=True)
    nr.optim.SGD([w], lr=0.5).step()
    with pytest.raises(RuntimeError, match="modified in place"):
        second.backward()
    layer = nr.GRU(2, 2, dtype="float64")
    out, _ = layer(leaf(np.ones((2, 1, 2))))
    layer.load_state_dict(layer.state_dict())
    with pytest.raises(RuntimeError, match="modified in place"):
        out.sum().backward()
    # a forward after the update records the new version
    out, _ = layer(leaf(np.ones((2, 1, 2))))
    out.sum().backward()


def test_closures_keep_arrays_not_tensors():
    a = leaf([1.0, 2.0])
    for op in (lambda y: y * y, lambda y: y / (y + 3.0), nr.nn.functional.tanh,
               nr.nn.Linear(2, 2, dtype="float64")):
        y = a * 2
        kept = weakref.ref(y)
        z = op(y)
        del y
        gc.collect()
        assert kept() is None
        z.sum().backward()


def test_gradient_of_the_wrong_shape_is_both_errors():
    y = leaf([1.0, 2.0]) * 2
    for error in (ValueError, RuntimeError):     # ours, and PyTorch's
        with pytest.raises(error, match="gradient: expected shape"):
            y.backward(np.ones(3), retain_graph=True)


def test_requires_grad_switch_keeps_the_gradient():
    x = leaf([1.0, 2.0])
    (x * x).sum().backward()
    x.requires_grad_(False)
    assert not x.requires_grad and x.grad is not None
    assert not (x * 2).requires_grad
    x.requires_grad_()
    assert (x * 2).requires_grad
    with pytest.raises(TypeError, match="requires_grad"):
        nr.tensor([1, 2]).requires_grad_()
