"""What the training examples share: command-line options, a progress bar (tqdm, when
installed), loss-curve plots (matplotlib, when installed) and the device report."""
import argparse
import os

import numba_rnn as nr


def parser(description, small, large, native=None):
    """Options every example takes. ``small``, ``native`` and ``large`` map option names to
    the sizes of the simulator (tiny: minutes there), of the CPU path or a GPU (a few
    minutes on two cores; ``small`` when not given) and of ``--full``."""
    native = native or small
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--full", action="store_true",
                   help="larger sizes (meant for a GPU): " +
                        ", ".join(f"{k}={v}" for k, v in large.items()))
    for name, value in native.items():
        p.add_argument("--" + name.replace("_", "-"), type=type(value), default=None,
                       help=f"default {value} ({small[name]} in the simulator, "
                            f"{large[name]} with --full)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=".", help="folder for the PNG plot (default: here)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def settle(args, small, large, native=None):
    """Fill each size option left unset from ``--full``'s sizes, the simulator's tiny ones
    there, or the CPU path's and GPU's (``native``)."""
    if args.full:
        chosen = large
    elif nr.backend_name() == "simulator" or native is None:
        chosen = small
    else:
        chosen = native
    for name, value in chosen.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def announce(title, args, names):
    print(f"{title} on {nr.backend_name()}: " + ", ".join(f"{n}={getattr(args, n)}" for n in names))


def progress(iterable, total=None, desc=None, disable=False):
    """A tqdm progress bar where tqdm is installed, else the plain iterable."""
    try:
        from tqdm import tqdm
    except ImportError:
        return iterable
    return tqdm(iterable, total=total, desc=desc, disable=disable, leave=False,
                dynamic_ncols=True)


def plot_curves(curves, path, title, ylabel, log=True, extra=None):
    """Save ``curves`` (label -> list of values per step) as a PNG at ``path``; returns
    the path, or None where matplotlib is not installed. ``extra(axes)`` may add a second
    panel."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib is not installed: no plot; pip install matplotlib)")
        return None
    panels = 2 if extra else 1
    fig, axes = plt.subplots(1, panels, figsize=(6 * panels, 4), squeeze=False)
    ax = axes[0][0]
    for label, values in curves.items():
        ax.plot(range(1, len(values) + 1), values, label=label)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    if extra:
        extra(axes[0][1])
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"plot saved to {path}")
    return path
