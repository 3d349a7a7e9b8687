"""Sequence regression with the setup of seed 002: batch-first LSTM and GRU with five
input features, a mean-squared-error loss over every step, trained side by side.

The task: five sine waves with random frequencies and phases, observed with noise; at
every step the model predicts the five clean values one step ahead. Each recurrent layer
is read out by a Linear layer, and trains with Adam. The loss curves and one predicted
wave against the truth are saved as a PNG.

Run: python examples/regression.py            (T=50, H=64: minutes on the CPU path;
                                               tiny in the simulator)
     python examples/regression.py --full     (H=256, T=200: for a GPU)
"""
import os

import numpy as np

import numba_rnn as nr

from _common import announce, parser, plot_curves, progress, settle

FEATURES = 5  # input_size = output_size = 5, as in seed 002
SMALL = dict(seq_len=8, hidden=8, batch=6, train_steps=60, lr=0.02)
LARGE = dict(seq_len=200, hidden=256, batch=64, train_steps=2000, lr=0.002)
NATIVE = dict(seq_len=50, hidden=64, batch=32, train_steps=300, lr=0.005)


def waves(rng, batch, seq_len, noise=0.05):
    """x (B, T+0, F): noisy waves; y (B, T, F): the clean waves one step later."""
    t = np.arange(seq_len + 1)[None, :, None]
    freq = rng.uniform(0.1, 0.6, size=(batch, 1, FEATURES))
    phase = rng.uniform(0, 2 * np.pi, size=(batch, 1, FEATURES))
    clean = np.sin(freq * t + phase)
    x = clean[:, :-1] + noise * rng.standard_normal((batch, seq_len, FEATURES))
    return x.astype("float32"), clean[:, 1:].astype("float32")


class Forecaster(nr.nn.Module):
    def __init__(self, cell, hidden):
        super().__init__()
        self.rnn = {"LSTM": nr.LSTM, "GRU": nr.GRU}[cell](FEATURES, hidden, batch_first=True)
        self.head = nr.nn.Linear(hidden, FEATURES)

    def forward(self, x):
        output, _ = self.rnn(x)     # (B, T, H)
        return self.head(output)    # (B, T, F)


def main(argv=None):
    args = settle(parser(__doc__.splitlines()[0], SMALL, LARGE, NATIVE).parse_args(argv),
                  SMALL, LARGE, NATIVE)
    announce("sequence regression", args, list(SMALL))
    nr.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    models = {cell: Forecaster(cell, args.hidden) for cell in ("LSTM", "GRU")}
    optimizers = {c: nr.optim.Adam(m.parameters(), lr=args.lr) for c, m in models.items()}
    loss_fn = nr.nn.MSELoss()
    curves = {cell: [] for cell in models}
    steps = progress(range(args.train_steps), desc="training", disable=args.no_progress)
    for _ in steps:
        x, y = waves(rng, args.batch, args.seq_len)
        for cell, model in models.items():
            optimizers[cell].zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizers[cell].step()
            curves[cell].append(loss.item())
        if hasattr(steps, "set_postfix"):
            steps.set_postfix({c: f"{v[-1]:.4f}" for c, v in curves.items()})

    x, y = waves(np.random.default_rng(args.seed + 1), args.batch, args.seq_len)
    with nr.no_grad():
        predictions = {c: m.eval()(x).numpy() for c, m in models.items()}
    print(f"\nmean squared error on fresh waves (predicting 0 scores {np.mean(y ** 2):.3f}):")
    for cell, pred in predictions.items():
        print(f"  {cell:4s}  first step {curves[cell][0]:.4f}  last step {curves[cell][-1]:.4f}"
              f"  fresh data {np.mean((pred - y) ** 2):.4f}")

    def one_wave(ax):
        ax.plot(y[0, :, 0], "k-", label="truth")
        for cell, pred in predictions.items():
            ax.plot(pred[0, :, 0], "--", label=cell)
        ax.set_xlabel("step")
        ax.set_title("one wave, one step ahead")
        ax.legend()

    plot_curves(curves, os.path.join(args.out, "regression.png"),
                f"regression, T={args.seq_len}, H={args.hidden} ({nr.backend_name()})",
                "training MSE", extra=one_wave)
    return {"curves": curves, "predictions": predictions, "target": y}


if __name__ == "__main__":
    main()
