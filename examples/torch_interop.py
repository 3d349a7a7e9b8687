"""numba_rnn inside a PyTorch program: the regression example's task (noisy sine waves,
predict the clean values one step ahead) with a plain PyTorch model whose recurrence is
numba_rnn.torch.LSTM, trained by torch.optim. Beside it, the same model with
torch.nn.LSTM, from the same initial weights on the same batches: both loss curves are
printed and should agree to rounding, since only the recurrent kernels differ.

Changing `torch.nn.LSTM` to `numba_rnn.torch.LSTM` is the whole port: the parameters,
the state dict, the optimizer, `model.double()` and the training loop stay PyTorch's.

Run: python examples/torch_interop.py            (T=50, H=64: minutes on the CPU path;
                                                  tiny in the simulator)
     python examples/torch_interop.py --full     (H=256, T=200: for a GPU)
"""
import copy
import os

import numpy as np

try:
    import torch
except ImportError:
    raise SystemExit("torch_interop.py needs PyTorch: pip install torch")

import numba_rnn as nr
import numba_rnn.torch as nrt
from _common import announce, parser, plot_curves, progress, settle
from regression import FEATURES, waves

SMALL = dict(seq_len=8, hidden=8, batch=6, train_steps=40, lr=0.02)
LARGE = dict(seq_len=200, hidden=256, batch=64, train_steps=2000, lr=0.002)
NATIVE = dict(seq_len=50, hidden=64, batch=32, train_steps=200, lr=0.005)


class Forecaster(torch.nn.Module):
    """A PyTorch model; ``recurrence`` is torch.nn.LSTM or numba_rnn.torch.LSTM."""

    def __init__(self, recurrence, hidden):
        super().__init__()
        self.rnn = recurrence(FEATURES, hidden, batch_first=True)
        self.head = torch.nn.Linear(hidden, FEATURES)

    def forward(self, x):
        output, _ = self.rnn(x)
        return self.head(output)


def main(argv=None):
    args = settle(parser(__doc__.splitlines()[0], SMALL, LARGE, NATIVE).parse_args(argv),
                  SMALL, LARGE, NATIVE)
    announce("PyTorch model with numba_rnn.torch.LSTM", args, list(SMALL))
    device = "cuda" if nr.backend_name() == "cuda" else "cpu"
    torch.manual_seed(args.seed)
    ours = Forecaster(nrt.LSTM, args.hidden).to(device)
    theirs = Forecaster(torch.nn.LSTM, args.hidden).to(device)
    theirs.load_state_dict(copy.deepcopy(ours.state_dict()))   # the same start
    models = {"numba_rnn.torch": ours, "torch.nn": theirs}
    optimizers = {k: torch.optim.Adam(m.parameters(), lr=args.lr) for k, m in models.items()}
    curves = {k: [] for k in models}
    rng = np.random.default_rng(args.seed)
    steps = progress(range(args.train_steps), desc="training", disable=args.no_progress)
    for _ in steps:
        x, y = (torch.from_numpy(a).to(device) for a in waves(rng, args.batch, args.seq_len))
        for name, model in models.items():
            optimizers[name].zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            optimizers[name].step()
            curves[name].append(loss.item())
    print("\nmean squared error per step, first and last:")
    for name, curve in curves.items():
        print(f"  {name:16s} {curve[0]:.5f} → {curve[-1]:.5f}")
    gap = max(abs(a - b) for a, b in zip(*curves.values()))
    print(f"largest difference between the two curves: {gap:.2e} (float32 rounding)")
    plot_curves(curves, os.path.join(args.out, "torch_interop.png"),
                "PyTorch model: numba_rnn.torch.LSTM and torch.nn.LSTM", "MSE")


if __name__ == "__main__":
    main()
