"""L-BFGS, in the image of ``torch.optim.LBFGS`` (torch/optim/lbfgs.py): the optimizer,
which works on one flat device vector of all parameters, and its helpers: the cubic
interpolation and strong-Wolfe line search of minFunc, and the closure's loss as a float.
"""
import numbers

import numpy as np

from .. import backend
from ..backend import xp
from .._core.checks import check_int, check_real
from ..tensor import Tensor
from .optimizer import Optimizer, _as_array, _call_closure


# ------------------------------------------------------------------------ L-BFGS
def _cubic_interpolate(x1, f1, g1, x2, f2, g2, bounds=None):
    """The minimizer of the cubic through two points with their values and slopes,
    clamped to ``bounds`` (torch/optim/lbfgs.py, from minFunc's polyinterp)."""
    if bounds is not None:
        xmin_bound, xmax_bound = bounds
    else:
        xmin_bound, xmax_bound = (x1, x2) if x1 <= x2 else (x2, x1)
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1 ** 2 - g1 * g2
    if d2_square >= 0:
        d2 = np.sqrt(d2_square)
        if x1 <= x2:
            min_pos = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
        else:
            min_pos = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
        return min(max(min_pos, xmin_bound), xmax_bound)
    return (xmin_bound + xmax_bound) / 2.0


def _strong_wolfe(obj_func, scalar, x, t, d, f, g, gtd, c1=1e-4, c2=0.9,
                  tolerance_change=1e-9, max_ls=25):
    """A line search along ``d`` for a step ``t`` meeting the strong Wolfe conditions
    (torch/optim/lbfgs.py, from minFunc's WolfeLineSearch): bracketing, then zoom.
    ``obj_func(x, t, d)`` gives the loss and flat gradient at x + t·d; ``scalar(a, b)``
    the host scalar a·b (or a, a reduction's result) in the parameters' dtype. Returns
    (loss, gradient, t, evaluations)."""
    d_norm = scalar(xp.abs(d).max())
    g = g.copy()
    f_new, g_new = obj_func(x, t, d)
    ls_func_evals = 1
    gtd_new = scalar(g_new, d)

    t_prev, f_prev, g_prev, gtd_prev = 0, f, g, gtd
    done = False
    ls_iter = 0
    while ls_iter < max_ls:
        if f_new > (f + c1 * t * gtd) or (ls_iter > 1 and f_new >= f_prev):
            bracket = [t_prev, t]
            bracket_f = [f_prev, f_new]
            bracket_g = [g_prev, g_new.copy()]
            bracket_gtd = [gtd_prev, gtd_new]
            break
        if abs(gtd_new) <= -c2 * gtd:
            bracket = [t]
            bracket_f = [f_new]
            bracket_g = [g_new]
            done = True
            break
        if gtd_new >= 0:
            bracket = [t_prev, t]
            bracket_f = [f_prev, f_new]
            bracket_g = [g_prev, g_new.copy()]
            bracket_gtd = [gtd_prev, gtd_new]
            break
        # interpolate
        min_step = t + 0.01 * (t - t_prev)
        max_step = t * 10
        tmp = t
        t = _cubic_interpolate(t_prev, f_prev, gtd_prev, t, f_new, gtd_new,
                               bounds=(min_step, max_step))
        t_prev = tmp
        f_prev = f_new
        g_prev = g_new.copy()
        gtd_prev = gtd_new
        f_new, g_new = obj_func(x, t, d)
        ls_func_evals += 1
        gtd_new = scalar(g_new, d)
        ls_iter += 1

    if ls_iter == max_ls:  # reached the most evaluations allowed
        bracket = [0, t]
        bracket_f = [f, f_new]
        bracket_g = [g, g_new]

    # zoom: refine the bracket until a point satisfies the conditions
    insuf_progress = False
    low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[-1] else (1, 0)
    while not done and ls_iter < max_ls:
        if abs(bracket[1] - bracket[0]) * d_norm < tolerance_change:
            break
        t = _cubic_interpolate(bracket[0], bracket_f[0], bracket_gtd[0],
                               bracket[1], bracket_f[1], bracket_gtd[1])
        # too close to an end of the bracket: move 0.1·its length away from it when the
        # last step made too little progress too, or t is at (or past) an end
        eps = 0.1 * (max(bracket) - min(bracket))
        if min(max(bracket) - t, t - min(bracket)) < eps:
            if insuf_progress or t >= max(bracket) or t <= min(bracket):
                if abs(t - max(bracket)) < abs(t - min(bracket)):
                    t = max(bracket) - eps
                else:
                    t = min(bracket) + eps
                insuf_progress = False
            else:
                insuf_progress = True
        else:
            insuf_progress = False

        f_new, g_new = obj_func(x, t, d)
        ls_func_evals += 1
        gtd_new = scalar(g_new, d)
        ls_iter += 1

        if f_new > (f + c1 * t * gtd) or f_new >= bracket_f[low_pos]:
            # Armijo condition not met, or not below the lowest point
            bracket[high_pos] = t
            bracket_f[high_pos] = f_new
            bracket_g[high_pos] = g_new.copy()
            bracket_gtd[high_pos] = gtd_new
            low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True  # the Wolfe conditions hold
            elif gtd_new * (bracket[high_pos] - bracket[low_pos]) >= 0:
                # the old high becomes the new low
                bracket[high_pos] = bracket[low_pos]
                bracket_f[high_pos] = bracket_f[low_pos]
                bracket_g[high_pos] = bracket_g[low_pos]
                bracket_gtd[high_pos] = bracket_gtd[low_pos]
            # the new point becomes the new low
            bracket[low_pos] = t
            bracket_f[low_pos] = f_new
            bracket_g[low_pos] = g_new.copy()
            bracket_gtd[low_pos] = gtd_new

    t = bracket[low_pos]
    f_new = bracket_f[low_pos]
    g_new = bracket_g[low_pos]
    return f_new, g_new, t, ls_func_evals


def _loss_value(loss):
    """The closure's loss as a Python float (a one-element Tensor, array or number)."""
    if isinstance(loss, Tensor):
        return float(loss.item())
    if backend.is_device_array(loss):
        return float(loss.reshape(()).item())
    try:
        return float(loss)
    except (TypeError, ValueError):
        raise TypeError(f"closure: expected it to return the loss (a one-element Tensor or "
                        f"a number), got {type(loss).__name__}") from None


class LBFGS(Optimizer):
    """L-BFGS, as ``torch.optim.LBFGS`` (from minFunc): ``step(closure)`` runs up to
    ``max_iter`` iterations, each a two-loop recursion over the last ``history_size``
    (s, y) pairs, then a fixed step of ``lr`` (the first scaled by 1/|g|₁) or, with
    ``line_search_fn="strong_wolfe"``, a strong-Wolfe line search. ``closure``
    re-evaluates the model, calls ``backward()`` and returns the loss. All parameters are
    handled as one flat vector on the device (one dtype); one parameter group only. The
    state (PyTorch's names: ``d``, ``t``, ``old_dirs``, ``old_stps``, ``ro``, ``H_diag``,
    ``prev_flat_grad``, ``prev_loss``, ``al``, ``func_evals``, ``n_iter``) is kept for the
    first parameter, as PyTorch does; its scalars are NumPy scalars of the parameters'
    dtype (PyTorch's are 0-d tensors)."""

    def __init__(self, params, lr=1, max_iter=20, max_eval=None, tolerance_grad=1e-7,
                 tolerance_change=1e-9, history_size=100, line_search_fn=None):
        max_iter = check_int("max_iter", max_iter, 1)
        if max_eval is None:
            max_eval = max_iter * 5 // 4
        super().__init__(params, dict(lr=lr, max_iter=max_iter, max_eval=max_eval,
                                      tolerance_grad=tolerance_grad,
                                      tolerance_change=tolerance_change,
                                      history_size=history_size,
                                      line_search_fn=line_search_fn))
        self._params = self.param_groups[0]["params"]
        if not self._params:
            raise ValueError("params: expected at least one parameter, got an empty group")
        dtypes = {np.dtype(p.dtype) for p in self._params}
        if len(dtypes) != 1:
            raise TypeError("params: LBFGS works on all parameters as one vector, so they "
                            f"need one dtype, got {sorted(d.name for d in dtypes)}")
        self._dtype = dtypes.pop()
        self._numel = sum(p.numel() for p in self._params)

    def add_param_group(self, param_group):
        if self.param_groups:
            raise ValueError("param_group: LBFGS doesn't support per-parameter options "
                             "(parameter groups): it has one group")
        super().add_param_group(param_group)

    def _check_group(self, group):
        check_real("lr", group["lr"], 0.0)
        check_int("max_iter", group["max_iter"], 1)
        check_int("max_eval", group["max_eval"], 1)
        check_real("tolerance_grad", group["tolerance_grad"], 0.0)
        check_real("tolerance_change", group["tolerance_change"], 0.0)
        check_int("history_size", group["history_size"], 1)
        if group["line_search_fn"] not in (None, "strong_wolfe"):
            raise ValueError("line_search_fn: expected None or 'strong_wolfe', got "
                             f"{group['line_search_fn']!r}")

    # ------------------------------------------- all parameters as one flat vector
    def _scalar(self, a, b=None):
        """``a`` (a reduction's result) or the dot product a·b, as a host scalar of the
        parameters' dtype (what PyTorch keeps as a 0-d tensor)."""
        value = a if b is None else xp.dot(a, b)
        return self._dtype.type(value.item())

    def _gather_flat_grad(self):
        views = [xp.zeros(p.numel(), dtype=self._dtype) if p.grad is None
                 else p.grad._array.reshape(-1) for p in self._params]
        return xp.concatenate(views).astype(self._dtype, copy=False)

    def _add_grad(self, step_size, update):
        offset = 0
        for p in self._params:
            n = p.numel()
            p._array[...] += step_size * update[offset:offset + n].reshape(p.shape)
            p._write_()  # written in place: graphs that saved it are stale
            offset += n

    def _clone_param(self):
        return [p._array.copy() for p in self._params]

    def _set_param(self, params_data):
        for p, data in zip(self._params, params_data):
            p._array[...] = data
            p._write_()

    def _directional_evaluate(self, closure, x, t, d):
        self._add_grad(t, d)
        loss = _loss_value(_call_closure(closure))
        flat_grad = self._gather_flat_grad()
        self._set_param(x)
        return loss, flat_grad

    def step(self, closure):
        """Up to ``max_iter`` L-BFGS iterations; ``closure()`` re-evaluates the model
        (zero_grad, forward, backward) and returns the loss. Returns the first loss."""
        if closure is None:
            raise TypeError("closure: LBFGS.step needs a closure that re-evaluates the "
                            "model and returns the loss, got None")
        group = self.param_groups[0]
        lr = float(group["lr"])
        max_iter = group["max_iter"]
        max_eval = group["max_eval"]
        tolerance_grad = group["tolerance_grad"]
        tolerance_change = group["tolerance_change"]
        line_search_fn = group["line_search_fn"]
        history_size = group["history_size"]
        scalar = self._scalar

        # L-BFGS's state is global: it is kept as the first parameter's, as in PyTorch
        state = self.state.setdefault(self._params[0], {})
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)

        orig_loss = _call_closure(closure)
        loss = _loss_value(orig_loss)
        current_evals = 1
        state["func_evals"] += 1

        flat_grad = self._gather_flat_grad()
        opt_cond = scalar(xp.abs(flat_grad).max()) <= tolerance_grad
        if opt_cond:
            return orig_loss

        d = state.get("d")
        t = state.get("t")
        old_dirs = state.get("old_dirs")
        old_stps = state.get("old_stps")
        ro = state.get("ro")
        H_diag = state.get("H_diag")
        prev_flat_grad = state.get("prev_flat_grad")
        prev_loss = state.get("prev_loss")

        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            state["n_iter"] += 1

            # the descent direction
            if state["n_iter"] == 1:
                d = -flat_grad
                old_dirs, old_stps, ro = [], [], []
                H_diag = 1
            else:
                y = flat_grad - prev_flat_grad
                s = d * t
                ys = scalar(y, s)
                if ys > 1e-10:
                    if len(old_dirs) == history_size:  # forget the oldest pair
                        old_dirs.pop(0)
                        old_stps.pop(0)
                        ro.pop(0)
                    old_dirs.append(y)
                    old_stps.append(s)
                    ro.append(1.0 / ys)
                    H_diag = ys / scalar(y, y)  # scale of the initial inverse Hessian
                num_old = len(old_dirs)
                if "al" not in state:
                    state["al"] = [None] * history_size
                al = state["al"]
                # the two-loop recursion, on one buffer
                q = -flat_grad
                for i in range(num_old - 1, -1, -1):
                    al[i] = scalar(old_stps[i], q) * ro[i]
                    q += (-al[i]) * old_dirs[i]
                d = r = q * H_diag
                for i in range(num_old):
                    be_i = scalar(old_dirs[i], r) * ro[i]
                    r += (al[i] - be_i) * old_stps[i]

            if prev_flat_grad is None:
                prev_flat_grad = flat_grad.copy()
            else:
                prev_flat_grad[...] = flat_grad
            prev_loss = loss

            # the step length
            if state["n_iter"] == 1:
                t = min(1.0, 1.0 / scalar(xp.abs(flat_grad).sum())) * lr
            else:
                t = lr
            gtd = scalar(flat_grad, d)  # the directional derivative
            if gtd > -tolerance_change:
                break

            ls_func_evals = 0
            if line_search_fn is not None:
                x_init = self._clone_param()

                def obj_func(x, t, d):
                    return self._directional_evaluate(closure, x, t, d)

                loss, flat_grad, t, ls_func_evals = _strong_wolfe(
                    obj_func, scalar, x_init, t, d, loss, flat_grad, gtd,
                    max_ls=max_eval - current_evals)
                self._add_grad(t, d)
                opt_cond = scalar(xp.abs(flat_grad).max()) <= tolerance_grad
            else:
                # a fixed step; the function is evaluated again unless this is the last
                # iteration (in a stochastic setting that evaluation is of no use)
                self._add_grad(t, d)
                if n_iter != max_iter:
                    loss = _loss_value(_call_closure(closure))
                    flat_grad = self._gather_flat_grad()
                    opt_cond = scalar(xp.abs(flat_grad).max()) <= tolerance_grad
                    ls_func_evals = 1

            current_evals += ls_func_evals
            state["func_evals"] += ls_func_evals

            # the conditions to stop
            if n_iter == max_iter:
                break
            if current_evals >= max_eval:
                break
            if opt_cond:
                break
            if scalar(xp.abs(d * t).max()) <= tolerance_change:  # no progress
                break
            if abs(loss - prev_loss) < tolerance_change:
                break

        state["d"] = d
        state["t"] = t
        state["old_dirs"] = old_dirs
        state["old_stps"] = old_stps
        state["ro"] = ro
        state["H_diag"] = H_diag
        state["prev_flat_grad"] = prev_flat_grad
        state["prev_loss"] = prev_loss
        return orig_loss

    def _load_state_value(self, p, where, name, value):
        """L-BFGS's state: ints, floats and None as they are, lists element by element,
        0-d values as scalars of the parameters' dtype, and vectors of every parameter's
        element as flat device arrays."""
        if value is None or isinstance(value, (bool, numbers.Integral)):
            return value
        if isinstance(value, float) and not isinstance(value, np.generic):
            return value
        if isinstance(value, (list, tuple)):
            return [self._load_state_value(p, f"{where}[{k}]", name, v)
                    for k, v in enumerate(value)]
        array = _as_array(value)
        if array.ndim == 0:
            return self._dtype.type(backend.to_host(array).item())
        if tuple(array.shape) != (self._numel,):
            raise ValueError(f"{where}: expected shape ({self._numel},) (every parameter's "
                             f"element) or a scalar, got {tuple(array.shape)}")
        return xp.array(backend.to_device(array, self._dtype), copy=True)
