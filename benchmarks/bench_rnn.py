"""numba_rnn against cuDNN (torch.nn.LSTM / GRU on the GPU), as ../shared/BENCHMARKS.md
prescribes: the same work, in one process, on one GPU; or (--device cpu) numba_rnn's CPU
path against PyTorch's CPU layers (oneDNN), in one process with the same threads.

    python benchmarks/bench_rnn.py [--device auto|cuda|cpu|simulator]
                                   [--cells lstm,gru] [--sets small,large,deepbench,stack]
                                   [--modes inference,training] [--quick] [--out DIR]
                                   [--repeats N] [--warmup N] [--soak N] [--bridge]
                                   [--dtypes float32,float64]   (cpu)
                                   [--case CELL:T:B:H[:LxD] ...] [--T N,..] [--B N,..]
                                   [--H N,..] [--jsonl FILE --tag TAG] [--case-timeout S]
                                   [--no-cudnn-timing]

--device auto (the default) is the GPU where there is one, else the process's backend:
the CPU path, or the simulator where NUMBA_ENABLE_CUDASIM=1 asks for it.

For every case, before anything is timed, numba_rnn's output, final states and (training)
every gradient are checked against PyTorch's on the case's own random weights and input;
a case that fails is reported and not timed. Then each implementation is timed with CUDA
events after warm-up: numba_rnn, cuDNN in float32 with TF32 off (the comparison), and
cuDNN with PyTorch's default (TF32 allowed in cuDNN) as a second column, and with
--bridge numba_rnn.torch's module (numba_rnn's kernels in PyTorch's autograd: what the
bridge costs per call, checked against PyTorch first). Peak device
memory of a training step is read for both. Writes DIR/results.json (one record per case,
mode and implementation, plus the environment), DIR/results.md (the ratio table, with
each case's floor) and DIR/ratio.png (ratio against batch size), and prints the table.

The floor of a case is a lower bound from datasheet peaks: per step and per layer and
direction, the longer of reading W_hh from HBM and its GEMM at the float32 rate (twice
in training: forward and backward), plus the input-side GEMMs over all steps at the
float32 rate (three times in training: forward, dx and dW). Barrier and launch costs are
left out, so no implementation can reach it.

On the CPU (--device cpu) the case sets are BENCHMARKS.md's scaled to what two cores run
in minutes (CPU_SETS), in float32 and float64 (--dtypes); PyTorch runs with
torch.set_num_threads equal to Numba's thread count; every case is checked against PyTorch
first, then the two sides are timed in turns by the wall clock (time.perf_counter), each
timed call after an untimed one, with NumPy's OpenBLAS told not to spin after its calls
(OPENBLAS_THREAD_TIMEOUT): benchmarks/README.md, "CPU protocol", says why each measure is
there; with --bridge, numba_rnn.torch's module on CPU tensors is a third side in the
same turns (its own columns). These are CPU figures: they say nothing about the GPU kernels.

--device simulator runs a correctness run in Numba's CUDA simulator instead: each
selected case scaled down to T=3, B=2, I=H=4 (same cell, layers and directions), checked
against the NumPy reference (and PyTorch on the CPU where importable). It says so, and
records no times: the simulator's speed means nothing.

Choosing cases: --case CELL:T:B:H[:LxD] (repeatable; I=H, one layer and direction unless
LxD says otherwise, e.g. lstm:100:8:512:2x2) runs those cases instead of the sets;
--T, --B and --H keep only the selected cases of those lengths, batches and widths.
For a run that may hang or be killed (benchmarks/gpu_check.sh): --jsonl FILE appends
each record to FILE as it is made (with --tag, and a "start" line before each case), so
that what finished survives; --case-timeout S ends the process, printing every thread's
traceback, when one case (its checks, timings and memory readings) takes longer than S
seconds (faulthandler's watchdog, which fires while a CUDA call waits);
--no-cudnn-timing checks against cuDNN but times numba_rnn alone (another run of the
same cases times cuDNN).
"""
import argparse
import contextlib
import faulthandler
import json
import os
import sys
import time
from collections import namedtuple

if "cpu" in sys.argv[1:] or "--device=cpu" in sys.argv[1:]:
    # The CPU protocol (benchmarks/README.md, "CPU protocol"): NumPy's OpenBLAS workers
    # spin ~0.1 s after each call by default, holding a core while the next call (the
    # other side's) runs; read when OpenBLAS loads, so set before NumPy is imported.
    # 2^4 cycles: they sleep at once.
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numba_rnn as nr  # noqa: E402
from numba_rnn import recurrent  # noqa: E402
from numba_rnn.testing import TOLERANCES, reference_results, relative_error  # noqa: E402

from common import (ON_GPU, DeviceMemory, datasheet, environment, import_torch,  # noqa: E402
                    percentiles, time_cuda)
from model import predicted_us_per_step  # noqa: E402

Case = namedtuple("Case", "set cell T B I H layers directions")

SETS = {
    "small": [Case("small", c, 100, b, h, h, 1, 1)
              for c in ("lstm", "gru") for b in (1, 8, 32) for h in (256, 512, 1024)],
    "large": [Case("large", c, 100, b, h, h, 1, 1)
              for c in ("lstm", "gru") for b in (64, 256) for h in (512, 1024)],
    "deepbench": [Case("deepbench", "lstm", 25, 64, 512, 512, 1, 1),
                  Case("deepbench", "lstm", 25, 64, 1024, 1024, 1, 1),
                  Case("deepbench", "lstm", 150, 16, 256, 256, 1, 1)],
    "stack": [Case("stack", "lstm", 100, 64, 512, 512, 2, 2)],
}
#: The same sets scaled for a CPU (minutes on two cores for the whole run).
CPU_SETS = {
    "small": [Case("small", c, 100, b, h, h, 1, 1)
              for c in ("lstm", "gru") for b in (1, 8, 32) for h in (128, 256)],
    "large": [Case("large", c, 100, 64, 512, 512, 1, 1) for c in ("lstm", "gru")],
    "deepbench": [Case("deepbench", "lstm", 25, 64, 512, 512, 1, 1),
                  Case("deepbench", "lstm", 150, 16, 256, 256, 1, 1)],
    "stack": [Case("stack", "lstm", 100, 16, 256, 256, 2, 2)],
}
DEVICES = ("auto", "cuda", "cpu", "simulator")
MODES = ("inference", "training")
GATES = {"lstm": 4, "gru": 3}
LAYERS = {"lstm": nr.LSTM, "gru": nr.GRU}
SIMULATOR_SIZE = dict(T=3, B=2, I=4, H=4)
# Growth a soak run may show: none in CuPy's pool on a GPU. In the simulator the "device"
# is the Python heap, where the simulator's thread bookkeeping (threading's registry of
# threads) grows its tables by a few KiB whatever the number of steps.
SOAK_ALLOWANCE = 0 if ON_GPU else 16 * 1024


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", choices=DEVICES,
                   help="cuda: against cuDNN; cpu: the CPU path against PyTorch on the CPU; "
                        "simulator: a correctness run (default: cuda where there is a GPU, "
                        "else the process's backend)")
    p.add_argument("--dtypes", default="float32,float64",
                   help="the CPU run's dtypes (the GPU's comparison is float32)")
    p.add_argument("--cells", default="lstm,gru")
    p.add_argument("--sets", default="small,large,deepbench,stack")
    p.add_argument("--modes", default="inference,training")
    p.add_argument("--quick", action="store_true",
                   help="the first and last case of each set and cell, 20 repeats")
    p.add_argument("--out", default="benchmarks/results/latest")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats (default 50; 20 with --quick)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--path", default="auto", choices=("auto",) + recurrent.PATHS,
                   help="force numba_rnn's kernel path (default: its automatic choice)")
    p.add_argument("--handoff", default=recurrent.DEFAULT_HANDOFF, choices=recurrent.HANDOFFS,
                   help="how the persistent kernels separate their steps: grid.sync() "
                        "or the arrival counter (default: %(default)s)")
    p.add_argument("--bridge", action="store_true",
                   help="also run numba_rnn.torch's module (numba_rnn's kernels inside "
                        "PyTorch's autograd): what the bridge costs per call")
    p.add_argument("--soak", type=int, default=0, metavar="N",
                   help="also repeat one training step N times and report device memory")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--case", action="append", default=[], metavar="CELL:T:B:H[:LxD]",
                   help="run this case (I=H) instead of the sets; repeatable")
    p.add_argument("--T", default=None, help="keep only cases of these lengths (comma list)")
    p.add_argument("--B", default=None, help="keep only cases of these batch sizes")
    p.add_argument("--H", default=None, help="keep only cases of these hidden sizes")
    p.add_argument("--jsonl", default=None, metavar="FILE",
                   help="append every record to FILE as it is made (JSON lines)")
    p.add_argument("--tag", default=None, help="a name written into each --jsonl line")
    p.add_argument("--case-timeout", type=float, default=None, metavar="S",
                   help="end the process (with tracebacks) when one case takes over S s")
    p.add_argument("--no-cudnn-timing", action="store_true",
                   help="check against cuDNN but do not time it (GPU)")
    args = p.parse_args(argv)
    args.case = [_case(p, text) for text in args.case]
    for option in ("T", "B", "H"):
        value = getattr(args, option)
        try:
            setattr(args, option, None if value is None else
                    {int(v) for v in value.split(",") if v.strip()})
        except ValueError:
            p.error(f"--{option}: expected comma-separated integers, got {value!r}")
    args.cells = _choices("--cells", args.cells, GATES)
    args.sets = _choices("--sets", args.sets, SETS)
    args.modes = _choices("--modes", args.modes, MODES)
    args.dtypes = _choices("--dtypes", args.dtypes, ("float32", "float64"))
    if args.device == "auto":
        args.device = "cuda" if ON_GPU else nr.backend_name()
    if args.device not in nr.backend.available_backends():
        p.error(f"--device: {args.device!r} is not available in this process (available: "
                f"{', '.join(nr.backend.available_backends())})")
    if args.repeats is None:
        args.repeats = 20 if args.quick else 50
    if args.repeats < 20:
        p.error(f"--repeats: BENCHMARKS.md asks for at least 20, got {args.repeats}")
    return args


def _case(parser, text):
    """A Case from --case CELL:T:B:H[:LxD] (I = H)."""
    parts = text.split(":")
    try:
        cell, steps, batch, hidden = parts[0], int(parts[1]), int(parts[2]), int(parts[3])
        layers, directions = (int(v) for v in parts[4].split("x")) if len(parts) > 4 else (1, 1)
        if len(parts) > 5 or cell not in GATES or directions not in (1, 2) or min(
                steps, batch, hidden, layers) < 1:
            raise ValueError(text)
    except (ValueError, IndexError):
        parser.error(f"--case: expected CELL:T:B:H[:LxD] with CELL in {', '.join(GATES)} "
                     f"(e.g. lstm:100:8:512 or gru:100:64:512:2x2), got {text!r}")
    return Case("case", cell, steps, batch, hidden, hidden, layers, directions)


def _choices(option, text, allowed):
    chosen = [c.strip() for c in text.split(",") if c.strip()]
    unknown = [c for c in chosen if c not in allowed]
    if unknown or not chosen:
        raise SystemExit(f"{option}: expected a comma-separated subset of "
                         f"{','.join(allowed)}, got {text!r}")
    return chosen


def select_cases(args):
    if getattr(args, "case", None):
        cases = list(args.case)
    else:
        cases = []
        sets = CPU_SETS if getattr(args, "device", None) == "cpu" else SETS
        for name in args.sets:
            for cell in args.cells:
                group = [c for c in sets[name] if c.cell == cell]
                if args.quick and len(group) > 2:
                    group = [group[0], group[-1]]
                cases += group
    for option in ("T", "B", "H"):
        wanted = getattr(args, option, None)
        if wanted is not None:
            cases = [c for c in cases if getattr(c, option) in wanted]
    if not cases:
        raise SystemExit("bench_rnn: no case left after --case/--sets/--cells and the "
                         "--T/--B/--H filters")
    return cases


class Records(list):
    """The run's records; with --jsonl each is also appended to that file as it is made
    (flushed and synced: a run killed later keeps it), tagged with --tag."""

    def __init__(self, args):
        super().__init__()
        self._path, self._tag = getattr(args, "jsonl", None), getattr(args, "tag", None)

    def write(self, **fields):
        if not self._path:
            return
        line = {"stage": "timing", "tag": self._tag, "time": round(time.time(), 3), **fields}
        data = (json.dumps(line, default=str) + "\n").encode()
        fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:  # one write per line (O_APPEND): other processes may share the file
            while data:
                data = data[os.write(fd, data):]
            os.fsync(fd)
        finally:
            os.close(fd)

    def append(self, r):
        super().append(r)
        self.write(event="record", **r)


def each_case(args, cases, records):
    """The cases, each announced in --jsonl ("start", then "done" once it is over) and,
    with --case-timeout, under faulthandler's watchdog: a case that hangs ends the
    process with every thread's traceback, and the next line of the file says nothing
    more about it (the start without a done names it)."""
    for case in progress(cases, args.no_progress):
        name = f"{case.cell}:{case.T}:{case.B}:{case.H}:{case.layers}x{case.directions}"
        records.write(event="start", check=name, case=case._asdict())
        if args.case_timeout:
            faulthandler.dump_traceback_later(args.case_timeout, exit=True)
        try:
            yield case
        finally:
            if args.case_timeout:
                faulthandler.cancel_dump_traceback_later()
        records.write(event="done", check=name, status="ok")


def floor_ms(case, mode, spec):
    """The case's lower bound in ms from datasheet peaks (see the module's docstring)."""
    if spec is None:
        return None
    bandwidth, flops, _ = spec
    g, d = GATES[case.cell], case.directions
    per_step = max(d * g * case.H * case.H * 4 / bandwidth,
                   d * 2 * case.B * g * case.H * case.H / flops)
    input_flops = sum(2 * case.T * case.B * (case.I if k == 0 else d * case.H) * g * case.H * d
                      for k in range(case.layers))
    recurrent, inputs = (2, 3) if mode == "training" else (1, 1)
    return 1e3 * (recurrent * case.T * case.layers * per_step + inputs * input_flops / flops)


# ------------------------------------------------------------------- the two sides
class _Side:
    """One implementation's layer and input; the loss is output.sum()."""

    def inference(self):
        with self.no_grad():
            return self.layer(self.x)

    def clear(self):
        self.x.grad = None
        self.layer.zero_grad()  # PyTorch's default, too: set_to_none=True

    def training(self):
        self.clear()
        output, finals = self.layer(self.x)
        output.sum().backward()
        return output, finals

    def results(self, mode):
        """Output and final states, and in training the gradients of the input and of
        every parameter."""
        output, finals = getattr(self, mode)()
        finals = finals if isinstance(finals, tuple) else (finals,)
        values = dict(zip(("output", "h_n", "c_n"), (output, *finals)))
        if mode == "training":
            values["input"] = self.x.grad
            values.update((n, p.grad) for n, p in self.layer.named_parameters())
        return values


class Ours(_Side):
    no_grad = nr.no_grad

    def __init__(self, case, rng, dtype="float32"):
        self.layer = LAYERS[case.cell](case.I, case.H, num_layers=case.layers,
                                       bidirectional=case.directions == 2, dtype=dtype)
        self.x_host = rng.standard_normal((case.T, case.B, case.I)).astype(dtype)
        self.x = nr.tensor(self.x_host, requires_grad=True)


class Theirs(_Side):
    """The same layer in PyTorch, on the GPU (cuDNN) or, in the simulator, on the CPU;
    with ``bridge``, numba_rnn.torch's module of the same name instead (PyTorch's
    autograd around numba_rnn's kernels)."""

    def __init__(self, torch, ours, case, bridge=False):
        self.no_grad = torch.no_grad
        device = "cuda" if ON_GPU else "cpu"
        if bridge:
            import numba_rnn.torch as library
        else:
            library = torch.nn
        cls = {"lstm": library.LSTM, "gru": library.GRU}[case.cell]
        self.layer = cls(case.I, case.H, num_layers=case.layers,
                         bidirectional=case.directions == 2).to(device)
        self.layer.to(getattr(torch, str(ours.layer.dtype)))
        self.layer.load_state_dict({k: torch.from_numpy(v)
                                    for k, v in ours.layer.state_dict().items()})
        self.x = torch.tensor(ours.x_host, device=device, requires_grad=True)


def compare(ours, expected):
    """(worst relative error, max absolute error) over every tensor of ``ours``."""
    worst, max_abs = 0.0, 0.0
    for name, value in ours.items():
        a = np.asarray(nr.testing.to_numpy(value), dtype=np.float64)
        b = np.asarray(nr.testing.to_numpy(expected[name]), dtype=np.float64)
        worst = max(worst, relative_error(a, b))
        max_abs = max(max_abs, float(np.max(np.abs(a - b))))
    return worst, max_abs


def reference_of(ours):
    """The NumPy reference's values for our layer's problem (loss = output.sum())."""
    layer = ours.layer
    num = 2 if layer.mode == "lstm" else 1
    dirs = 2 if layer.bidirectional else 1
    out_shape = ours.x_host.shape[:2] + (dirs * layer.hidden_size,)
    state_shape = (layer.num_layers * dirs, ours.x_host.shape[1], layer.hidden_size)
    upstream = [np.ones(out_shape)] + [np.zeros(state_shape)] * num
    expected = reference_results(layer, ours.x_host, None, upstream)
    result = {"output": expected["output"], "h_n": expected["h_0 final"],
              "input": expected["input"]}
    if num == 2:
        result["c_n"] = expected["c_0 final"]
    result.update((n, expected[n]) for n, _ in layer.named_parameters())
    return result


def predicted_ms(case, mode, path):
    """The performance model's time (benchmarks/model.py, a prediction) of the recurrent
    part of a persistent-path run, or None for the other paths and where the model has
    none (a size the H100's plan does not fit): T steps per layer and direction, forward
    (and backward in training)."""
    if path != "persistent":
        return None
    directions = ("forward", "backward") if mode == "training" else ("forward",)
    predictions = [predicted_us_per_step(case.cell, case.H, case.B, d) for d in directions]
    if None in predictions:
        return None
    per_step = sum(new for _, new in predictions)
    return per_step * case.T * case.layers * case.directions / 1e3


def results_or_refusal(ours, mode):
    """``ours.results(mode)``, or the reason why a forced path (--path) cannot run this
    case (W_hh does not fit on chip, say): such a case is recorded as not runnable and
    the run goes on."""
    try:
        return ours.results(mode)
    except ValueError as exc:
        if recurrent.forced_path() is None or not str(exc).startswith("path:"):
            raise
        return f"not runnable on the {recurrent.forced_path()} path: {exc}"


def progress(items, disable):
    try:
        from tqdm import tqdm
    except ImportError:
        return items
    return tqdm(items, desc="cases", disable=disable, leave=False)


def record(case, mode, implementation, **fields):
    base = {"set": case.set, "cell": case.cell, "T": case.T, "B": case.B, "I": case.I,
            "H": case.H, "layers": case.layers, "directions": case.directions,
            "dtype": fields.pop("dtype", "float32"), "mode": mode,
            "implementation": implementation,
            "median_ms": None, "p10_ms": None, "p90_ms": None, "repeats": 0,
            "peak_bytes": None, "max_abs_err": None}
    base.update(fields)
    return base


# ----------------------------------------------------------------------- runs
def run_gpu(args, cases, torch, env):
    spec = datasheet(env["device"])
    env["datasheet"] = None if spec is None else {
        "entry": spec[2], "hbm_bytes_per_s": spec[0], "fp32_flops": spec[1]}
    memory = DeviceMemory()
    records = Records(args)
    rng = np.random.default_rng(0)
    for case in each_case(args, cases, records):
        nr.manual_seed(0)
        ours = Ours(case, rng)
        theirs = Theirs(torch, ours, case)
        rtol = TOLERANCES[np.dtype("float32")][0]
        for mode in args.modes:
            floor = floor_ms(case, mode, spec)
            values = results_or_refusal(ours, mode)
            if isinstance(values, str):
                records.append(record(case, mode, "numba_rnn", not_runnable=values,
                                      floor_ms=floor))
                continue
            worst, max_abs = compare(values, theirs.results(mode))
            if worst > rtol:
                records.append(record(case, mode, "numba_rnn", max_abs_err=max_abs,
                                      error=f"relative error {worst:.2e} > {rtol:.0e}: not timed",
                                      floor_ms=floor))
                continue
            ours_peak = theirs_peak = None
            if mode == "training":  # from no gradients held to all of them computed
                ours.clear()
                ours_peak = memory.peak_of(ours.training)
                theirs.clear()
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                before = torch.cuda.memory_allocated()
                theirs.training()
                torch.cuda.synchronize()
                theirs_peak = int(torch.cuda.max_memory_allocated() - before)
            fn = getattr(ours, mode)
            path = ours.layer.last_paths[0][0]
            records.append(record(case, mode, "numba_rnn", max_abs_err=max_abs,
                                  peak_bytes=ours_peak, floor_ms=floor, path=path,
                                  handoff=args.handoff if path == "persistent" else None,
                                  predicted_ms=predicted_ms(case, mode, path),
                                  **percentiles(time_cuda(fn, args.repeats, args.warmup))))
            if args.no_cudnn_timing:
                continue
            fn = getattr(theirs, mode)
            records.append(record(case, mode, "cudnn", peak_bytes=theirs_peak, floor_ms=floor,
                                  **percentiles(time_cuda(fn, args.repeats, args.warmup, "torch"))))
            torch.backends.cudnn.allow_tf32 = True  # PyTorch's default
            records.append(record(case, mode, "cudnn_tf32_default", floor_ms=floor,
                                  **percentiles(time_cuda(fn, args.repeats, args.warmup, "torch"))))
            torch.backends.cudnn.allow_tf32 = False
            if args.bridge:
                bridge = Theirs(torch, ours, case, bridge=True)
                worst_bridge, _ = compare(bridge.results(mode), theirs.results(mode))
                fn = getattr(bridge, mode)
                records.append(record(case, mode, "numba_rnn.torch", floor_ms=floor,
                                      bridge_relative_error=worst_bridge,
                                      **percentiles(time_cuda(fn, args.repeats, args.warmup,
                                                              "torch"))))
        del ours, theirs
    return records


def time_wall(fn, repeats, warmup):
    """Per-call wall-clock times in ms of ``fn`` (synchronous on the CPU), after warm-up."""
    import time

    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return times


def time_interleaved(fns, repeats, warmup):
    """Per-call wall-clock times in ms of each of ``fns``, taken in turns (the CPU
    protocol, benchmarks/README.md): each round calls every function twice and times
    the second call, so that a side never starts right after the other one (whose
    thread pools may still be spinning or asleep) and slow drifts of the machine hit
    every side alike."""
    import time

    for _ in range(warmup):
        for fn in fns:
            fn()
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, kept in zip(fns, times):
            fn()  # untimed: the other side's pools settle, this side's wake up
            start = time.perf_counter()
            fn()
            kept.append((time.perf_counter() - start) * 1e3)
    return times


def cpu_path(case, dtype):
    """The path numba_rnn's automatic choice runs the case's layers on, on the CPU."""
    from numba_rnn.kernels import CELLS

    return recurrent.choose_path(CELLS[case.cell], case.B, case.H, dtype, False)


def run_cpu(args, cases, torch, env):
    """numba_rnn's CPU path against PyTorch's CPU layers, same threads, each dtype."""
    import numba

    from numba_rnn.kernels import targets

    targets.start_threads()  # as a kernel would start them (OMP_WAIT_POLICY), first
    threads = numba.get_num_threads()
    torch.set_num_threads(threads)
    env.update(threads=threads, torch_threads=torch.get_num_threads(),
               openblas_thread_timeout=os.environ.get("OPENBLAS_THREAD_TIMEOUT"),
               torch_mkldnn=bool(torch.backends.mkldnn.is_available()),
               numba_threading_layer=None)
    records = Records(args)
    rng = np.random.default_rng(0)
    for case in each_case(args, cases, records):
        for dtype in args.dtypes:
            nr.manual_seed(0)
            ours = Ours(case, rng, dtype)
            theirs = Theirs(torch, ours, case)
            # --bridge: numba_rnn.torch's module on CPU tensors, timed in the same turns
            bridge = Theirs(torch, ours, case, bridge=True) if args.bridge else None
            rtol = TOLERANCES[np.dtype(dtype)][0]
            for mode in args.modes:
                expected = theirs.results(mode)
                worst, max_abs = compare(ours.results(mode), expected)
                worst_bridge = (0.0 if bridge is None
                                else compare(bridge.results(mode), expected)[0])
                if max(worst, worst_bridge) > rtol:
                    records.append(record(case, mode, "numba_rnn", dtype=dtype,
                                          max_abs_err=max_abs,
                                          error=f"relative error {max(worst, worst_bridge):.2e}"
                                                f" > {rtol:.0e}: not timed"))
                    continue
                sides = [getattr(ours, mode), getattr(theirs, mode)]
                if bridge is not None:
                    sides.append(getattr(bridge, mode))
                timed = time_interleaved(sides, args.repeats, args.warmup)
                records.append(record(case, mode, "numba_rnn", dtype=dtype, max_abs_err=max_abs,
                                      relative_error=worst,
                                      path=recurrent.forced_path() or cpu_path(case, dtype),
                                      **percentiles(timed[0])))
                records.append(record(case, mode, "torch_cpu", dtype=dtype,
                                      **percentiles(timed[1])))
                if bridge is not None:
                    records.append(record(case, mode, "numba_rnn.torch", dtype=dtype,
                                          bridge_relative_error=worst_bridge,
                                          **percentiles(timed[2])))
            del ours, theirs, bridge
    try:
        env["numba_threading_layer"] = numba.threading_layer()
    except ValueError:
        pass
    return records


def cpu_table(records, env):
    by_key = _by_case(records)
    bridged = any(r.get("implementation") == "numba_rnn.torch" for r in records)
    columns, rule, empty = ((" numba_rnn.torch ms | its ratio |", "---|---|", " | |") if bridged
                            else ("", "", ""))
    lines = [f"**CPU figures** (numba_rnn's CPU path against PyTorch on the CPU; nothing here "
             f"was run on a GPU). {env['device']}; {env['threads']} threads for both "
             f"(Numba's layer: {env.get('numba_threading_layer')}); numba {env['numba']}, "
             f"NumPy {env['numpy']}, PyTorch {env.get('torch')} (oneDNN: "
             f"{env.get('torch_mkldnn')}); {env['date']}. Wall-clock medians of "
             f"{max((r['repeats'] for r in records), default=0)} calls after warm-up, the "
             "sides in turns, each timed call after an untimed one (benchmarks/README.md, "
             "CPU protocol); numba_rnn's path: "
             f"{', '.join(sorted({r.get('path') or '?' for r in records if r.get('implementation') == 'numba_rnn'}))}; "
             "ratio = numba_rnn / PyTorch (below 1: numba_rnn faster).", "",
             "| set | cell | T | B | I=H | L×D | dtype | mode | numba_rnn ms (p10–p90) | "
             "PyTorch ms (p10–p90) | ratio |" + columns,
             "|---|---|---|---|---|---|---|---|---|---|---|" + rule]
    for key, impls in by_key.items():
        s, cell, t, b, h, layers, dirs, dtype, mode = key
        ours, theirs = impls.get("numba_rnn"), impls.get("torch_cpu")
        bridge = impls.get("numba_rnn.torch")
        head = f"| {s} | {cell} | {t} | {b} | {h} | {layers}×{dirs} | {dtype} | {mode} | "
        if ours.get("median_ms") is None:
            lines.append(head + f"{ours.get('error', 'not timed')} | | |" + empty)
            continue
        row = (head + f"{ours['median_ms']:.2f} ({ours['p10_ms']:.2f}–{ours['p90_ms']:.2f})"
               f" | {theirs['median_ms']:.2f} ({theirs['p10_ms']:.2f}–"
               f"{theirs['p90_ms']:.2f}) | **{ours['median_ms'] / theirs['median_ms']:.2f}** |")
        if bridged:
            row += (empty if bridge is None else
                    f" {bridge['median_ms']:.2f} | {bridge['median_ms'] / theirs['median_ms']:.2f} |")
        lines.append(row)
    return "\n".join(lines) + "\n"


def run_simulator(args, cases, torch, env):
    records = Records(args)
    rng = np.random.default_rng(0)
    size = SIMULATOR_SIZE
    for case in each_case(args, cases, records):
        small = case._replace(T=size["T"], B=size["B"], I=size["I"], H=size["H"])
        nr.manual_seed(0)
        ours = Ours(small, rng)
        theirs = None if torch is None else Theirs(torch, ours, small)
        expected = reference_of(ours)
        rtol = TOLERANCES[np.dtype("float32")][0]
        for mode in args.modes:
            values = results_or_refusal(ours, mode)
            if isinstance(values, str):
                records.append(record(small, mode, "numba_rnn", not_runnable=values,
                                      scaled_from=dict(T=case.T, B=case.B, I=case.I, H=case.H)))
                continue
            worst, max_abs = compare(values, expected)
            fields = {"reference_relative_error": worst, "max_abs_err": max_abs,
                      "scaled_from": dict(T=case.T, B=case.B, I=case.I, H=case.H)}
            if theirs is not None:
                fields["torch_cpu_relative_error"] = compare(values, theirs.results(mode))[0]
                if args.bridge:
                    fields["bridge_relative_error"] = compare(
                        Theirs(torch, ours, small, bridge=True).results(mode), expected)[0]
            passed = max(worst, fields.get("torch_cpu_relative_error", 0.0),
                         fields.get("bridge_relative_error", 0.0)) <= rtol
            records.append(record(small, mode, "numba_rnn", passed=passed,
                                  path=ours.layer.last_paths[0][0], **fields))
    return records


def soak(args, case, memory):
    """Repeat one training step; device memory in use at the start and the end."""
    if not ON_GPU:
        case = case._replace(**SIMULATOR_SIZE)
    nr.manual_seed(0)
    ours = Ours(case, np.random.default_rng(0))
    ours.training()  # gradients exist from here on, as in a training loop
    start = memory.used()
    samples = []
    for k in range(args.soak):
        ours.training()
        if (k + 1) % max(1, args.soak // 10) == 0:
            samples.append(memory.used())
    end = memory.used()
    return {"case": case._asdict(), "steps": args.soak, "start_bytes": start, "end_bytes": end,
            "growth_bytes": end - start, "samples_bytes": samples,
            "memory": "CuPy pool used_bytes" if ON_GPU else "Python heap (tracemalloc)",
            "allowed_growth_bytes": SOAK_ALLOWANCE,
            "passed": end - start <= SOAK_ALLOWANCE}


# -------------------------------------------------------------------- reports
def ratio_table(records, env):
    by_key = _by_case(records)
    lines = [f"GPU: {env['device']}; numba {env['numba']}, numba-cuda {env['numba-cuda']}, "
             f"CuPy {env.get('cupy')}, PyTorch {env.get('torch')}, cuDNN {env.get('cudnn')}, "
             f"driver {env.get('cuda_driver')}, runtime {env.get('cuda_runtime')}; {env['date']}",
             "",
             "| set | cell | T | B | I=H | L×D | mode | path | numba_rnn ms (p10–p90) | "
             "model ms | via numba_rnn.torch ms | cuDNN ms | ratio | cuDNN TF32 ms | floor ms | "
             "peak MiB ours / cuDNN |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for key, impls in by_key.items():
        s, cell, t, b, h, layers, dirs, _, mode = key
        ours, cudnn, tf32 = impls.get("numba_rnn"), impls.get("cudnn"), impls.get("cudnn_tf32_default")
        bridge = impls.get("numba_rnn.torch")
        floor = ours.get("floor_ms")
        floor_text = "n/a" if floor is None else f"{floor:.3f}"
        if ours.get("median_ms") is None:
            why = ours.get("error") or ours.get("not_runnable") or "not timed"
            lines.append(f"| {s} | {cell} | {t} | {b} | {h} | {layers}×{dirs} | {mode} | | "
                         f"{why} | | | | | | {floor_text} | |")
            continue
        if cudnn is None:  # --no-cudnn-timing: another run timed cuDNN
            cudnn_text, ratio_text, tf32_text = "not timed here", "", ""
        else:
            cudnn_text = f"{cudnn['median_ms']:.3f}"
            ratio_text = f"**{ours['median_ms'] / cudnn['median_ms']:.2f}**"
            tf32_text = f"{tf32['median_ms']:.3f}"
        peak = ""
        if ours.get("peak_bytes") is not None:
            theirs_peak = None if cudnn is None else cudnn.get("peak_bytes")
            peak = (f"{ours['peak_bytes'] / 2**20:.1f} / "
                    + ("–" if theirs_peak is None else f"{theirs_peak / 2**20:.1f}"))
        lines.append(
            f"| {s} | {cell} | {t} | {b} | {h} | {layers}×{dirs} | {mode} | {ours.get('path')} | "
            f"{ours['median_ms']:.3f} ({ours['p10_ms']:.3f}–{ours['p90_ms']:.3f}) | "
            f"{'' if ours.get('predicted_ms') is None else format(ours['predicted_ms'], '.3f')} | "
            f"{'' if bridge is None else format(bridge['median_ms'], '.3f')} | "
            f"{cudnn_text} | {ratio_text} | {tf32_text} | "
            f"{floor_text} | {peak} |")
    return "\n".join(lines) + "\n"


def simulator_table(records, env):
    lines = ["**Correctness run in Numba's CUDA simulator: no timings, no speed claims.** "
             f"Each case scaled down to T={SIMULATOR_SIZE['T']}, B={SIMULATOR_SIZE['B']}, "
             f"I=H={SIMULATOR_SIZE['H']}; errors are max|ours - oracle| / max|oracle| over "
             "the output, final states and every gradient.", "",
             "| set | cell | scaled from T, B, I=H | L×D | mode | path | vs NumPy reference | "
             "vs PyTorch (CPU) | passed |", "|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        s = r["scaled_from"]
        if r.get("not_runnable"):
            lines.append(f"| {r['set']} | {r['cell']} | {s['T']}, {s['B']}, {s['H']} | "
                         f"{r['layers']}×{r['directions']} | {r['mode']} | | "
                         f"{r['not_runnable']} | | not runnable |")
            continue
        torch_err = r.get("torch_cpu_relative_error")
        lines.append(f"| {r['set']} | {r['cell']} | {s['T']}, {s['B']}, {s['H']} | "
                     f"{r['layers']}×{r['directions']} | {r['mode']} | {r['path']} | "
                     f"{r['reference_relative_error']:.1e} | "
                     f"{'not installed' if torch_err is None else f'{torch_err:.1e}'} | "
                     f"{'yes' if r['passed'] else 'NO'} |")
    return "\n".join(lines) + "\n"


def _key(r):
    """A case's and mode's key (one per row of a table), whatever the implementation."""
    return (r["set"], r["cell"], r["T"], r["B"], r["H"], r["layers"], r["directions"],
            r["dtype"], r["mode"])


def _by_case(records):
    """{case and mode key: {implementation: record}}, in the records' order."""
    by_key = {}
    for r in records:
        by_key.setdefault(_key(r), {})[r["implementation"]] = r
    return by_key


def plot_ratios(records, path, against="cudnn",
                ylabel="numba_rnn time / cuDNN time (below 1: faster)", title=None):
    """numba_rnn's median over ``against``'s per case, against batch size, as a PNG."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    lines = {}
    theirs = {_key(r): r for r in records if r["implementation"] == against}
    for r in records:
        if r["implementation"] != "numba_rnn" or r["median_ms"] is None or _key(r) not in theirs:
            continue
        label = (f"{r['cell']} H={r['H']} T={r['T']} L×D={r['layers']}×{r['directions']} "
                 f"{r['dtype']} {r['mode']}")
        lines.setdefault(label, []).append((r["B"], r["median_ms"] / theirs[_key(r)]["median_ms"]))
    if not lines:
        return None
    fig, ax = plt.subplots(figsize=(9, 5))
    for label, points in sorted(lines.items()):
        points.sort()
        ax.plot([p[0] for p in points], [p[1] for p in points], "o-", label=label)
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch size")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def running(args):
    """Where the run's numba_rnn work happens, as one context for the timed cases and the
    soak alike: the backend of --device (cuda: the process's own), the kernel path
    (--path; on the CPU "plain" or "persistent", the region) and, off the CPU, the
    persistent handoff (--handoff) asked for."""
    stack = contextlib.ExitStack()
    if args.device != "cuda":
        stack.enter_context(nr.backend.use_backend(args.device))
    stack.enter_context(recurrent.force_path(None if args.path == "auto" else args.path))
    if args.device != "cpu":
        stack.enter_context(recurrent.use_handoff(args.handoff))
    return stack


def main(argv=None):
    args = parse(argv)
    cases = select_cases(args)
    torch = import_torch()
    env = environment()
    os.makedirs(args.out, exist_ok=True)
    plot = None
    if args.device == "cuda":
        if torch is None or not torch.cuda.is_available():
            raise SystemExit("bench_rnn: on a GPU the comparison needs PyTorch with CUDA")
        print(f"timing {len(cases)} cases × {len(args.modes)} modes on {env['device']}")
        run, table_of, kind = run_gpu, ratio_table, "gpu benchmark"
    elif args.device == "cpu":
        if torch is None:
            raise SystemExit("bench_rnn: the CPU comparison needs PyTorch (pip install torch)")
        if args.path == "fused":
            raise SystemExit("bench_rnn: --path fused: the CPU has 'plain' and 'persistent' "
                             "(its region) only")
        print(f"timing {len(cases)} cases × {len(args.dtypes)} dtypes × {len(args.modes)} "
              f"modes on the CPU ({env['device']}): CPU figures, no GPU involved")
        run, table_of, kind = run_cpu, cpu_table, "cpu benchmark"
    else:
        print("bench_rnn: no GPU, so this is a CORRECTNESS RUN in Numba's CUDA simulator "
              "against the NumPy reference" + (" and PyTorch on the CPU" if torch else "")
              + ": no timings, no speed claims.")
        run, table_of, kind = (run_simulator, simulator_table,
                               "simulator correctness run (no timings)")
    with running(args):
        records = run(args, cases, torch, env)
        result = {"kind": kind, "path": args.path, "handoff": args.handoff, "environment": env,
                  "records": list(records)}
        if args.soak:
            if args.case_timeout:  # the soak is one more case for the watchdog
                faulthandler.dump_traceback_later(args.case_timeout, exit=True)
            result["soak"] = soak(args, cases[0], DeviceMemory())
            if args.case_timeout:
                faulthandler.cancel_dump_traceback_later()
            Records(args).write(event="soak", **result["soak"])
    table = table_of(records, env)
    if args.soak:
        s = result["soak"]
        print(f"soak: {s['steps']} training steps, {s['memory']}: {s['start_bytes']} bytes at "
              f"the start, {s['end_bytes']} at the end (growth {s['growth_bytes']}, allowed "
              f"{s['allowed_growth_bytes']}): {'no growth' if s['passed'] else 'GREW'}")
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(result, f, indent=1)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(table)
    print(table)
    if args.device == "cuda":
        plot = plot_ratios(records, os.path.join(args.out, "ratio.png"))
    elif args.device == "cpu":
        plot = plot_ratios(records, os.path.join(args.out, "ratio.png"), "torch_cpu",
                           "numba_rnn CPU time / PyTorch CPU time (below 1: faster)",
                           "CPU figures (no GPU involved)")
    print(f"wrote {args.out}/results.json, results.md"
          + (", ratio.png" if plot else " (no ratio.png: " +
             ("no timings in the simulator" if args.device == "simulator"
              else "matplotlib not installed") + ")"))
    failed = [r for r in records if r.get("error") or r.get("passed") is False]
    if args.soak and not result["soak"]["passed"]:
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
