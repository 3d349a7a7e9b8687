"""Your own cell at built-in speed (issue 28 point 4), on the CPU: cells registered
through the public API (``numba_rnn.cells``) against the way PyTorch users write a custom
cell today, a ``torch.jit.script``-ed loop of the cell's equations (one op per gate per
step), and a registered copy of a built-in cell against the built-in itself (same units,
so the same generated kernels: the registration costs nothing per call).

    python benchmarks/bench_cells.py [--cells mgu,ligru] [--B 1,8,32] [--H 128,256]
                                     [--T 100] [--modes inference,training]
                                     [--repeats 20] [--warmup 2] [--out DIR]

The protocol is bench_rnn.py's for the CPU (benchmarks/README.md, "CPU protocol"): one
process, the same threads on both sides, the sides timed in turns, each timed call after
an untimed one; every case is checked against the PyTorch loop first (outputs and, in
training, every gradient). Writes DIR/results.json and DIR/results.md. CPU figures only:
nothing here runs on a GPU.
"""
import argparse
import json
import os
import sys

os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")  # before NumPy: bench_rnn.py says why

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numba_rnn as nr  # noqa: E402
from numba_rnn import cells  # noqa: E402

from bench_rnn import time_interleaved  # noqa: E402
from common import environment, import_torch, percentiles  # noqa: E402

#: The literature cells built on the public API: module, gate count.
LITERATURE = {"mgu": "numba_rnn.cells.mgu", "ligru": "numba_rnn.cells.ligru"}


def torch_loops(torch):
    """The cells' equations as PyTorch users write a custom cell: a scripted loop."""
    @torch.jit.script
    def mgu(x, h, w_ih, w_hh, b_ih, b_hh):
        outputs = []
        for t in range(x.shape[0]):
            gx_f, gx_n = (x[t] @ w_ih.t() + b_ih).chunk(2, 1)
            gh_f, gh_n = (h @ w_hh.t() + b_hh).chunk(2, 1)
            f = torch.sigmoid(gx_f + gh_f)
            n = torch.tanh(gx_n + f * gh_n)
            h = (1 - f) * h + f * n
            outputs.append(h)
        return torch.stack(outputs), h

    @torch.jit.script
    def ligru(x, h, w_ih, w_hh, b_ih, b_hh):
        outputs = []
        for t in range(x.shape[0]):
            a_z, a_h = (x[t] @ w_ih.t() + b_ih + h @ w_hh.t() + b_hh).chunk(2, 1)
            z = torch.sigmoid(a_z)
            h = z * h + (1 - z) * torch.relu(a_h)
            outputs.append(h)
        return torch.stack(outputs), h

    return {"mgu": mgu, "ligru": ligru}


class OurSide:
    def __init__(self, cell, T, B, H, rng, dtype):
        self.layer = nr.RecurrentLayer(cell, H, H, dtype=dtype)
        self.x_host = rng.standard_normal((T, B, H)).astype(dtype)
        self.x = nr.tensor(self.x_host, requires_grad=True)

    def inference(self):
        with nr.no_grad():
            return self.layer(self.x)

    def training(self):
        self.x.grad = None
        self.layer.zero_grad()
        out, h = self.layer(self.x)
        out.sum().backward()
        return out, h


class TorchLoop:
    def __init__(self, torch, loop, ours, B, H):
        self.torch, self.loop = torch, loop
        state = ours.layer.state_dict()
        self.params = [torch.tensor(state[k], requires_grad=True)
                       for k in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")]
        self.x = torch.tensor(ours.x_host, requires_grad=True)
        self.h0 = torch.zeros(B, H, dtype=self.x.dtype)

    def inference(self):
        with self.torch.no_grad():
            return self.loop(self.x, self.h0, *self.params)

    def training(self):
        self.x.grad = None
        for p in self.params:
            p.grad = None
        out, h = self.loop(self.x, self.h0, *self.params)
        out.sum().backward()
        return out, h


def check(ours, theirs, mode, tolerance):
    """The largest relative error of the outputs and (training) the gradients."""
    out_a, _ = getattr(ours, mode)()
    out_b, _ = getattr(theirs, mode)()
    pairs = [(out_a.numpy(), out_b.detach().numpy())]
    if mode == "training":
        pairs.append((ours.x.grad.numpy(), theirs.x.grad.numpy()))
        names = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")
        grads = dict(ours.layer.named_parameters())
        pairs += [(grads[n].grad.numpy(), p.grad.numpy()) for n, p in zip(names, theirs.params)]
    worst = max(float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-30))
                for a, b in pairs)
    if worst > tolerance:
        raise AssertionError(f"relative error {worst:.2e} > {tolerance:.0e}")
    return worst


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", default="mgu,ligru")
    p.add_argument("--B", default="1,8,32")
    p.add_argument("--H", default="128,256")
    p.add_argument("--T", type=int, default=100)
    p.add_argument("--modes", default="inference,training")
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--out", default="benchmarks/results/latest-cells")
    return p.parse_args(argv)


def main(argv=None):
    args = parse(argv)
    torch = import_torch()
    if nr.backend_name() != "cpu":
        sys.exit("bench_cells.py: the CPU backend is needed (NUMBA_RNN_BACKEND=cpu)")
    nr.set_num_threads(None)
    torch.set_num_threads(nr.get_num_threads())
    loops = torch_loops(torch)
    tolerance = {"float32": 1e-4, "float64": 1e-10}[args.dtype]
    records, rng = [], np.random.default_rng(0)
    import importlib
    names = args.cells.split(",")
    for name in names:
        importlib.import_module(LITERATURE[name])  # registers it
    # a built-in cell registered again through the public API: the same units
    copy = cells.register(cells.lookup("gru")._replace(name="gru_registered_copy"))
    try:
        for B in map(int, args.B.split(",")):
            for H in map(int, args.H.split(",")):
                for name in names:
                    ours = OurSide(name, args.T, B, H, rng, args.dtype)
                    theirs = TorchLoop(torch, loops[name], ours, B, H)
                    for mode in args.modes.split(","):
                        worst = check(ours, theirs, mode, tolerance)
                        a, b = time_interleaved([getattr(ours, mode), getattr(theirs, mode)],
                                                args.repeats, args.warmup)
                        records.append(dict(cell=name, T=args.T, B=B, H=H, mode=mode,
                                            against="torch.jit.script loop",
                                            relative_error=worst, ours=percentiles(a),
                                            theirs=percentiles(b)))
                builtin, registered = (OurSide(c, args.T, B, H, rng, args.dtype)
                                       for c in ("gru", copy.name))
                registered.layer.load_state_dict(builtin.layer.state_dict())
                registered.x = builtin.x
                for mode in args.modes.split(","):
                    a, b = time_interleaved([getattr(registered, mode), getattr(builtin, mode)],
                                            args.repeats, args.warmup)
                    records.append(dict(cell=copy.name, T=args.T, B=B, H=H, mode=mode,
                                        against="built-in nr.GRU", relative_error=0.0,
                                        ours=percentiles(a), theirs=percentiles(b)))
    finally:
        cells.unregister(copy.name)
        for name in names:
            cells.unregister(name)
    write(args, records, environment())


def write(args, records, env):
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"environment": env, "records": records}, f, indent=1, default=str)
    lines = [f"**CPU figures** (nothing here ran on a GPU): {env.get('device')}; "
             f"{nr.get_num_threads()} threads for both; {args.dtype}; wall-clock medians of "
             f"{args.repeats} calls in turns (benchmarks/README.md, CPU protocol); ratio = "
             "numba_rnn / the other side.", "",
             "| cell | against | T | B | I=H | mode | numba_rnn ms | other ms | ratio |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        lines.append(f"| {r['cell']} | {r['against']} | {r['T']} | {r['B']} | {r['H']} | "
                     f"{r['mode']} | {r['ours']['median_ms']:.2f} | "
                     f"{r['theirs']['median_ms']:.2f} | "
                     f"**{r['ours']['median_ms'] / r['theirs']['median_ms']:.2f}** |")
    table = "\n".join(lines) + "\n"
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(table)
    print(table)
    print(f"wrote {args.out}/results.json, results.md")


if __name__ == "__main__":
    main()
