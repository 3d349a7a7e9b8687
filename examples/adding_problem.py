"""The adding problem (Hochreiter and Schmidhuber, 1997): a long-range dependency task.

Each input step carries a random number in [0, 1) and a marker; exactly two steps are
marked, one in each half of the sequence, and the target is the sum of the two marked
numbers. A model must carry the first number across up to T steps. Always answering 1
(the mean) scores a mean squared error of 1/6 ≈ 0.167: the baseline.

An Elman RNN, an LSTM and a GRU of the same width train side by side on the same batches
(Adam, gradient clipping). The seeds' claim is that the gated cells learn long
dependencies that the plain RNN does not; this prints each model's final error on fresh
data, and calls a model "learned" when its error is below a tenth of the baseline.

Run: python examples/adding_problem.py            (T=100, H=64: about 3 minutes on two
                                                   cores on the CPU path; tiny in the
                                                   simulator)
     python examples/adding_problem.py --full     (T=100, H=128, 4000 steps: for a GPU)
"""
import os

import numpy as np

import numba_rnn as nr
from numba_rnn.nn import functional as F

from _common import announce, parser, plot_curves, progress, settle

SMALL = dict(steps_per_seq=6, hidden=6, batch=8, train_steps=80, lr=0.02)
LARGE = dict(steps_per_seq=100, hidden=128, batch=64, train_steps=4000, lr=0.001)
BASELINE = 1.0 / 6.0
LEARNED = BASELINE / 10
NATIVE = dict(steps_per_seq=100, hidden=64, batch=32, train_steps=2000, lr=0.005)


def adding_batch(rng, steps, batch):
    """x (T, B, 2): numbers and markers; y (B, 1): the sum of the two marked numbers."""
    values = rng.random((steps, batch))
    markers = np.zeros((steps, batch))
    half = max(steps // 2, 1)
    first = rng.integers(0, half, size=batch)
    second = rng.integers(half, steps, size=batch) if steps > 1 else first
    markers[first, np.arange(batch)] = 1
    markers[second, np.arange(batch)] = 1
    x = np.stack([values, markers], axis=-1).astype("float32")
    y = (values * markers).sum(axis=0, keepdims=True).T.astype("float32")
    return x, y


class Regressor(nr.nn.Module):
    """A recurrent layer read out by a linear layer at the last step."""

    def __init__(self, cell, hidden):
        super().__init__()
        self.rnn = {"RNN": nr.RNN, "LSTM": nr.LSTM, "GRU": nr.GRU}[cell](2, hidden)
        self.head = nr.nn.Linear(hidden, 1)

    def forward(self, x):
        output, _ = self.rnn(x)
        return self.head(output[-1])


def main(argv=None):
    args = settle(parser(__doc__.splitlines()[0], SMALL, LARGE, NATIVE).parse_args(argv),
                  SMALL, LARGE, NATIVE)
    announce("adding problem", args, list(SMALL))
    nr.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    cells = ("RNN", "LSTM", "GRU")
    models = {cell: Regressor(cell, args.hidden) for cell in cells}
    optimizers = {cell: nr.optim.Adam(m.parameters(), lr=args.lr) for cell, m in models.items()}
    curves = {cell: [] for cell in cells}
    steps = progress(range(args.train_steps), desc="training", disable=args.no_progress)
    for step in steps:
        x, y = adding_batch(rng, args.steps_per_seq, args.batch)
        for cell in cells:
            optimizers[cell].zero_grad()
            loss = F.mse_loss(models[cell](x), y)
            loss.backward()
            nr.nn.utils.clip_grad_norm_(models[cell].parameters(), 1.0)
            optimizers[cell].step()
            curves[cell].append(loss.item())
        if hasattr(steps, "set_postfix"):
            steps.set_postfix({cell: f"{curves[cell][-1]:.3f}" for cell in cells})

    x, y = adding_batch(np.random.default_rng(args.seed + 1), args.steps_per_seq, 4 * args.batch)
    results = {}
    with nr.no_grad():
        for cell in cells:
            results[cell] = F.mse_loss(models[cell].eval()(x), y).item()
    print(f"\nmean squared error on {4 * args.batch} fresh sequences of {args.steps_per_seq} "
          f"steps (baseline {BASELINE:.3f}; learned below {LEARNED:.4f}):")
    for cell in cells:
        verdict = "learned" if results[cell] < LEARNED else "not learned"
        print(f"  {cell:4s}  {results[cell]:.4f}  ({results[cell] / BASELINE:.2f} of baseline)"
              f"  {verdict}")
    window = max(1, args.train_steps // 20)
    smooth = {c: np.convolve(v, np.ones(window) / window, mode="valid") for c, v in curves.items()}
    plot_curves(smooth, os.path.join(args.out, "adding_problem.png"),
                f"adding problem, T={args.steps_per_seq}, H={args.hidden} ({nr.backend_name()})",
                f"training MSE (mean of {window} steps)")
    return {"curves": curves, "results": results}


if __name__ == "__main__":
    main()
