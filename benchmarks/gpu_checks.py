"""The checks of a first GPU run (benchmarks/gpu_check.sh), one command per process, each
check written to a JSON-lines file as it starts and as it ends, under a watchdog.

    python benchmarks/gpu_checks.py env      --results FILE [--dry-run]
    python benchmarks/gpu_checks.py smoke    --results FILE
    python benchmarks/gpu_checks.py handoff  --results FILE --handoff grid|flags [--tiny]
    python benchmarks/gpu_checks.py parity   --results FILE --cell lstm --dtype float32
                                             [--variants plain,fused,persistent-grid,...]
                                             [--tiny] [--check-timeout S]
    python benchmarks/gpu_checks.py bridge   --results FILE [--skip VARIANT ...]
    python benchmarks/gpu_checks.py hung     --results FILE   # variants that hung so far
    python benchmarks/gpu_checks.py summary  --results FILE --out DIR

Every check writes a "start" line before it runs and a "done" line (status ok, fail,
error or skipped, with its figures) after; a check with a start and no done line hung
or crashed its process: its watchdog (``faulthandler.dump_traceback_later(...,
exit=True)``: a C thread, which fires even while the main thread waits inside a CUDA
call) printed where it was and ended the process, or the stage's ``timeout`` did.
``hung`` prints the kernel variants (persistent-grid, persistent-flags, ...) that a
check left so, for later stages to skip. Lines are appended and flushed one at a time,
so that whatever finished survives a kill. ``summary`` turns the file into summary.md
(and kernel_resources.md) without importing numba_rnn, so that it runs whatever broke.

env, smoke and bridge need a GPU; handoff and parity run in the simulator with
``--tiny`` (the dry run, benchmarks/gpu_check.sh --dry-run), at sizes it runs in seconds.
"""
import argparse
import contextlib
import datetime
import faulthandler
import io
import json
import os
import signal
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

#: The kernel variants in the order every stage runs them: the arrival-counter handoff
#: last, where a hang (a spin that never sees the counter) would cost the least.
VARIANTS = ("plain", "fused", "persistent-grid", "persistent-flags")
#: Each variant as (recurrent path, persistent handoff).
PATH_OF = {"plain": ("plain", "grid"), "fused": ("fused", "grid"),
           "persistent-grid": ("persistent", "grid"), "persistent-flags": ("persistent", "flags")}
#: Dynamic shared memory a block has without the opt-in.
NO_OPT_IN_BYTES = 48 * 1024


# ------------------------------------------------------------------ the results file
class Results:
    """Appends one JSON object per line to ``path``, flushed and synced at once."""

    def __init__(self, path, stage, tag=None):
        self.path, self.stage, self.tag = path, stage, tag
        self.failures = 0

    def progress(self, name, timeout=None, **fields):
        """A progress line of check ``name`` (its phase), and its watchdog started again
        for ``timeout`` seconds from here."""
        self.write(event="progress", check=name, **fields)
        if timeout:
            faulthandler.dump_traceback_later(timeout, exit=True)

    def write(self, **fields):
        line = {"stage": self.stage, "tag": self.tag, "time": round(time.time(), 3)}
        line.update(fields)
        append_line(self.path, json.dumps(line, default=_jsonable))

    @contextlib.contextmanager
    def check(self, name, timeout=None, **fields):
        """A check: a start line, the body under a watchdog of ``timeout`` seconds (the
        process ends, with every thread's traceback on stderr, if it overruns), then a
        done line with the body's ``outcome`` (status "ok" unless it says otherwise, or
        "error" with the exception, which does not propagate)."""
        self.write(event="start", check=name, **fields)
        print(f"--- {self.stage} {name}: start", flush=True)
        if timeout:
            faulthandler.dump_traceback_later(timeout, exit=True)
        outcome = {"status": "ok"}
        started = time.perf_counter()
        try:
            yield outcome
        except Exception as exc:  # recorded; the next check runs
            outcome.update(status="error", error=f"{type(exc).__name__}: {exc}",
                           traceback=traceback.format_exc(limit=6)[-3000:])
        finally:
            if timeout:
                faulthandler.cancel_dump_traceback_later()
        outcome["seconds"] = round(time.perf_counter() - started, 2)
        if outcome["status"] not in ("ok", "skipped"):
            self.failures += 1
        self.write(event="done", check=name, **fields, **outcome)
        print(f"--- {self.stage} {name}: {outcome['status']} after {outcome['seconds']} s"
              + (f" ({outcome['error']})" if "error" in outcome else ""), flush=True)


def append_line(path, text):
    """``text`` and a newline appended to ``path`` in one write (O_APPEND: the parallel
    processes of a stage share the file, and a line never interleaves with another's),
    then synced."""
    data = (text + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        while data:
            data = data[os.write(fd, data):]
        os.fsync(fd)
    finally:
        os.close(fd)


def _jsonable(value):
    if hasattr(value, "_asdict"):
        return value._asdict()
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def read_results(path):
    """The JSON lines of ``path`` (a line cut short by a kill is skipped)."""
    lines = []
    if not os.path.exists(path):
        return lines
    with open(path) as f:
        for text in f:
            try:
                lines.append(json.loads(text))
            except ValueError:
                continue
    return lines


def unfinished(lines):
    """The start lines of checks that never wrote their done line, in order, each with
    the phase its last progress line named ("phase", None where none came)."""
    open_checks = {}
    for line in lines:
        key = (line.get("stage"), line.get("tag"), line.get("check"))
        if line.get("event") == "start":
            open_checks[key] = dict(line, phase=None)
        elif line.get("event") == "progress" and key in open_checks:
            open_checks[key]["phase"] = line.get("phase")
        elif line.get("event") == "done":
            open_checks.pop(key, None)
    return list(open_checks.values())


def counts_as_hang(entry):
    """Whether an unfinished check (``unfinished``) hung a kernel variant: any check of
    one, except a layer check (``phased``) that never got past its plan, whose kernels
    were still compiling (slow, not hung)."""
    return bool(entry.get("variant")) and (not entry.get("phased")
                                           or entry.get("phase") is not None)


def hung_variants(lines):
    """The kernel variants that a check left unfinished, hung or crashed, once running."""
    return sorted({e["variant"] for e in unfinished(lines) if counts_as_hang(e)},
                  key=VARIANTS.index)


def _watch_sigterm():
    """Print every thread's traceback when ``timeout`` stops the process (SIGTERM), then
    die of the signal as before."""
    with contextlib.suppress(AttributeError, ValueError, RuntimeError):
        faulthandler.register(signal.SIGTERM, all_threads=True, chain=True)


# ----------------------------------------------------------------------- env
def _version(name):
    import importlib.metadata
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def environment_report(dry_run):
    """Versions, numba_rnn's backend, numba.cuda.detect(), the device's figures and the
    CUDA libraries the kernels need; ``stop``: why the GPU stages cannot run (None: they
    can)."""
    import platform
    import warnings

    report = {"python": platform.python_version(), "platform": platform.platform(),
              "versions": {n: _version(n) for n in (
                  "numpy", "numba", "numba-cuda", "llvmlite", "cupy-cuda13x", "cupy-cuda12x",
                  "torch", "cuda-bindings", "cuda-core", "cuda-pathfinder",
                  "nvidia-nvjitlink", "nvidia-cuda-nvcc", "numba_rnn")}}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import numba_rnn as nr
        from numba_rnn import backend
    report["import_warnings"] = [str(w.message) for w in caught]
    report["backend"] = nr.backend_name()
    report["available_backends"] = list(backend.available_backends())
    report["device"] = backend.device_description()
    from numba import cuda
    detected = io.StringIO()
    try:
        with contextlib.redirect_stdout(detected):
            cuda.detect()
    except Exception as exc:
        detected.write(f"numba.cuda.detect() failed: {type(exc).__name__}: {exc}\n")
    report["numba_cuda_detect"] = detected.getvalue()
    libraries = {}
    report["libraries"] = libraries
    on_gpu = report["backend"] == "cuda"

    def library(name, probe):
        try:
            libraries[name] = {"ok": True, "found": str(probe())}
        except Exception as exc:
            libraries[name] = {"ok": False, "found": f"{type(exc).__name__}: {exc}"}

    if backend.CUDA_SIMULATED:
        libraries["NVVM"] = {"ok": None, "found": "not checked: numba.cuda is the simulator"}
    else:
        library("NVVM", _nvvm)
    library("nvJitLink", _nvjitlink)
    library("libcudadevrt", _cudadevrt)
    if on_gpu:
        import cupy
        report["versions"]["cupy"] = cupy.__version__
        report["cuda_driver"] = cupy.cuda.runtime.driverGetVersion()
        report["cuda_runtime"] = cupy.cuda.runtime.runtimeGetVersion()
        library("cuBLAS", _cublas)
        library("cuRAND", _curand)
        report["gpu"] = gpu = {}
        device = cuda.get_current_device()
        for key, read in (("name", lambda: _text(device.name)),
                          ("compute_capability", lambda: list(device.compute_capability)),
                          ("multiprocessors", lambda: device.MULTIPROCESSOR_COUNT),
                          ("shared_per_block_optin",
                           lambda: device.MAX_SHARED_MEMORY_PER_BLOCK_OPTIN),
                          ("cooperative_launch", lambda: bool(device.COOPERATIVE_LAUNCH))):
            try:
                gpu[key] = read()
            except Exception as exc:  # a report, not a reason to stop
                gpu[key] = f"unknown ({type(exc).__name__}: {exc})"
    else:
        for name in ("cuBLAS", "cuRAND"):
            libraries[name] = {"ok": None, "found": "not checked: no GPU storage (CuPy) here"}
    try:
        import torch
        report["torch"] = {"version": torch.__version__, "cuda": torch.version.cuda,
                           "cuda_available": torch.cuda.is_available(),
                           "cudnn": torch.backends.cudnn.version()
                           if torch.cuda.is_available() else None}
    except ImportError:
        report["torch"] = None
    missing = [n for n, r in libraries.items() if r["ok"] is False]
    stop = None
    if not on_gpu:
        stop = (f"numba_rnn's backend is {report['backend']!r}, not 'cuda' "
                f"({report['device']})")
    elif missing:
        stop = "cannot load " + ", ".join(f"{n} ({libraries[n]['found']})" for n in missing)
    elif not (report["torch"] or {}).get("cuda_available"):
        stop = "PyTorch cannot see the GPU (the comparisons need torch.nn on cuDNN)"
    report["stop"] = stop
    report["dry_run"] = dry_run
    return report


def _text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def _nvvm():
    from numba.cuda.cudadrv import nvvm
    return "NVVM " + ".".join(map(str, nvvm.NVVM().get_version()))


def _nvjitlink():
    try:
        from cuda.bindings import nvjitlink
        return "nvJitLink " + ".".join(map(str, nvjitlink.version()))
    except ImportError:
        import cuda.pathfinder
        return cuda.pathfinder.load_nvidia_dynamic_lib("nvJitLink").abs_path


def _cudadevrt():
    try:
        from numba.cuda.cudadrv import libs
        path = libs.get_cudalib("cudadevrt", static=True)
        if os.path.isfile(path):
            return path
    except Exception:
        pass
    import cuda.pathfinder
    found = cuda.pathfinder.find_static_lib("cudadevrt")
    if not found or not os.path.isfile(str(found)):
        raise FileNotFoundError("libcudadevrt.a not found")
    return found


def _cublas():
    import cupy
    import numpy as np
    cupy.cuda.device.get_cublas_handle()
    a = cupy.arange(16, dtype=np.float32).reshape(4, 4)
    return f"a 4×4 GEMM: {float((a @ a).sum())}"


def _curand():
    import cupy
    from cupy.cuda import curand
    values = cupy.random.RandomState(0, method=curand.CURAND_RNG_PSEUDO_PHILOX4_32_10).uniform(
        size=4)
    return f"4 uniforms, sum {float(values.sum()):.3f}"


def command_env(args):
    results = Results(args.results, "env")
    with results.check("environment") as outcome:
        report = environment_report(args.dry_run)
        outcome.update(report=report)
        if report["stop"]:
            outcome["status"] = "skipped" if args.dry_run else "fail"
    print(json.dumps(report, indent=1, default=_jsonable))
    report = outcome.get("report")
    if report is None:
        print("gpu_checks env: STOP: the environment could not be read (see above)")
        return 3
    if report["stop"] and not args.dry_run:
        print(f"gpu_checks env: STOP: {report['stop']}; no GPU stage runs")
        return 3
    if report["stop"]:
        print(f"gpu_checks env: DRY RUN: {report['stop']}: the GPU stages run in the "
              "simulator at tiny sizes, or are skipped saying why")
    else:
        print(f"gpu_checks env: backend cuda on {report['device']}; libraries: "
              + ", ".join(f"{n} {'ok' if r['ok'] else 'MISSING'}"
                          for n, r in report["libraries"].items()))
    return 0


# --------------------------------------------------------------------- smoke
def command_smoke(args):
    """A numba kernel on CuPy arrays, a CuPy GEMM, DLPack both ways with PyTorch, and a
    cooperative grid-sync kernel on every SM (each under its own watchdog)."""
    import numpy as np
    from numba_rnn import backend   # first: it chooses the storage (CuPy on a GPU)
    import cupy
    import torch
    from numba import cuda

    results = Results(args.results, "smoke")
    if backend.backend_name() != "cuda":
        results.write(event="done", check="basic", status="skipped",
                      reason=f"backend {backend.backend_name()!r}: these checks need a GPU")
        return 0
    rng = np.random.default_rng(0)
    timeout = args.check_timeout

    with results.check("numba-kernel-on-cupy", timeout) as outcome:
        @cuda.jit
        def axpy(out, a, x, y):
            i = cuda.grid(1)
            if i < out.shape[0]:
                out[i] = a * x[i] + y[i]

        n = 100_003
        x = cupy.asarray(rng.standard_normal(n).astype(np.float32))
        y = cupy.asarray(rng.standard_normal(n).astype(np.float32))
        out = cupy.full(n, np.nan, dtype=np.float32)       # poisoned: every element written
        axpy[(n + 255) // 256, 256](out, np.float32(2.0), x, y)
        cuda.synchronize()
        expected = 2.0 * cupy.asnumpy(x).astype(np.float64) + cupy.asnumpy(y)
        error = float(np.max(np.abs(cupy.asnumpy(out) - expected)))
        outcome.update(max_abs_error=error)
        if not error < 1e-5:
            outcome["status"] = "fail"

    with results.check("cupy-gemm", timeout) as outcome:
        a = rng.standard_normal((1024, 768)).astype(np.float32)
        b = rng.standard_normal((768, 512)).astype(np.float32)
        c = cupy.asnumpy(cupy.asarray(a) @ cupy.asarray(b))
        exact = a.astype(np.float64) @ b
        error = float(np.linalg.norm(c - exact) / np.linalg.norm(exact))
        outcome.update(relative_error=error)
        if not error < 1e-5:                                # TF32 would land near 3e-4
            outcome["status"] = "fail"

    with results.check("dlpack-torch-to-cupy", timeout) as outcome:
        t = torch.arange(10, dtype=torch.float32, device="cuda")
        view = cupy.from_dlpack(t)
        view[3] = 42.0
        torch.cuda.synchronize()
        outcome.update(shared=bool(t[3].item() == 42.0), same_pointer=int(view.data.ptr)
                       == t.data_ptr())
        if not (outcome["shared"] and outcome["same_pointer"]):
            outcome["status"] = "fail"

    with results.check("dlpack-cupy-to-torch", timeout) as outcome:
        c = cupy.arange(12, dtype=cupy.float64).reshape(3, 4)
        t = torch.from_dlpack(c)
        cupy.cuda.get_current_stream().synchronize()
        outcome.update(same_pointer=t.data_ptr() == int(c.data.ptr),
                       values=bool(torch.equal(t.cpu(), torch.arange(12.0,
                                                                     dtype=torch.float64).reshape(3, 4))))
        if not (outcome["same_pointer"] and outcome["values"]):
            outcome["status"] = "fail"

    with results.check("grid-sync-all-sms", timeout) as outcome:
        @cuda.jit
        def ring(values, out, rounds):
            grid = cuda.cg.this_grid()
            block, blocks = cuda.blockIdx.x, cuda.gridDim.x
            for r in range(rounds):
                if cuda.threadIdx.x == 0:
                    values[(r % 2) * blocks + block] = block + r
                grid.sync()
                if cuda.threadIdx.x == 0:
                    got = values[(r % 2) * blocks + (block + 1) % blocks]
                    if got != (block + 1) % blocks + r:
                        out[block] += 1                     # a wrong neighbour: counted
                grid.sync()

        device = cuda.get_current_device()
        sms = device.MULTIPROCESSOR_COUNT
        values = cuda.to_device(np.zeros(2 * sms, dtype=np.int32))
        errors = cuda.to_device(np.zeros(sms, dtype=np.int32))
        ring[sms, 256](values, errors, 1)                   # compiles, launches cooperatively
        cuda.synchronize()
        overload = next(iter(ring.overloads.values()))
        resident = overload.max_cooperative_grid_blocks(256)
        rounds = 2000
        start, end = cuda.event(), cuda.event()
        start.record()
        ring[sms, 256](values, errors, rounds)
        end.record()
        end.synchronize()
        ms = start.elapsed_time(end)
        wrong = int(errors.copy_to_host().sum())
        outcome.update(blocks=sms, threads=256, co_resident_blocks=int(resident),
                       wrong_neighbours=wrong,
                       us_per_grid_sync=round(1e3 * ms / (2 * rounds), 3))
        if wrong or resident < sms:
            outcome["status"] = "fail"
    return 1 if results.failures else 0


# -------------------------------------------------------------- layer problems
def make_problem(rng, mode, steps, batch, inputs, hidden, num_layers, dtype,
                 bidirectional=False, lengths=None):
    """A numba_rnn layer, its input and initial states (requires-grad tensors), random
    upstream weights that make the output and final states one scalar loss, and
    lengths; the host copies of the data, for the other implementations."""
    import numba_rnn as nr

    options = {"nonlinearity": mode[4:]} if mode.startswith("rnn_") else {}
    layer = {"lstm": nr.LSTM, "gru": nr.GRU}.get(mode, nr.RNN)(
        inputs, hidden, num_layers=num_layers, bidirectional=bidirectional, dtype=dtype,
        **options)
    dirs = 2 if bidirectional else 1
    num_states = 2 if mode == "lstm" else 1
    host = {"x": rng.standard_normal((steps, batch, inputs)).astype(dtype),
            "states": [rng.standard_normal((num_layers * dirs, batch, hidden)).astype(dtype)
                       for _ in range(num_states)],
            "upstream": [rng.standard_normal((steps, batch, dirs * hidden)).astype(dtype)]
            + [rng.standard_normal((num_layers * dirs, batch, hidden)).astype(dtype)
               for _ in range(num_states)]}
    x = nr.tensor(host["x"], requires_grad=True)
    states = [nr.tensor(s, requires_grad=True) for s in host["states"]]
    return layer, x, states, host, lengths


def run_ours(layer, x, states, host, lengths):
    """Output, final states and every gradient of our layer, as host float64 arrays."""
    from numba_rnn.testing import to_numpy

    hx = tuple(states) if len(states) > 1 else states[0]
    output, finals = layer(x, hx, lengths=lengths)
    finals = list(finals) if isinstance(finals, tuple) else [finals]
    loss = (output * host["upstream"][0]).sum()
    for final, weight in zip(finals, host["upstream"][1:]):
        loss = loss + (final * weight).sum()
    loss.backward()
    values = {"output": to_numpy(output), "input": to_numpy(x.grad)}
    for name, final, state in zip(("h_0", "c_0"), finals, states):
        values[name + " final"] = to_numpy(final)
        values[name] = to_numpy(state.grad)
    values.update((name, to_numpy(p.grad)) for name, p in layer.named_parameters())
    return values


def run_torch(torch, layer, host, lengths, device):
    """The same problem on torch.nn (cuDNN on a GPU; TF32 off), as host arrays."""
    dtype = getattr(torch, str(layer.dtype))
    cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}.get(layer.mode, torch.nn.RNN)
    options = {"nonlinearity": layer.nonlinearity} if layer.mode.startswith("rnn_") else {}
    module = cls(layer.input_size, layer.hidden_size, num_layers=layer.num_layers,
                 bidirectional=layer.bidirectional, **options).to(device=device, dtype=dtype)
    module.load_state_dict({k: torch.from_numpy(v) for k, v in layer.state_dict().items()})
    x = torch.tensor(host["x"], device=device, requires_grad=True)
    states = [torch.tensor(s, device=device, requires_grad=True) for s in host["states"]]
    hx = tuple(states) if len(states) > 1 else states[0]
    if lengths is None:
        output, finals = module(x, hx)
    else:
        packed = torch.nn.utils.rnn.pack_padded_sequence(x, torch.tensor(lengths),
                                                         enforce_sorted=False)
        output, finals = module(packed, hx)
        output, _ = torch.nn.utils.rnn.pad_packed_sequence(output, total_length=x.shape[0])
    finals = list(finals) if isinstance(finals, tuple) else [finals]
    upstream = [torch.tensor(u, device=device) for u in host["upstream"]]
    loss = (output * upstream[0]).sum()
    for final, weight in zip(finals, upstream[1:]):
        loss = loss + (final * weight).sum()
    loss.backward()
    values = {"output": output.detach().cpu().numpy(), "input": x.grad.cpu().numpy()}
    for name, final, state in zip(("h_0", "c_0"), finals, states):
        values[name + " final"] = final.detach().cpu().numpy()
        values[name] = state.grad.cpu().numpy()
    values.update((n, p.grad.cpu().numpy()) for n, p in module.named_parameters())
    return values


def compare(ours, expected):
    """(worst relative error, the tensor where it is, every tensor's error)."""
    from numba_rnn.testing import relative_error

    errors = {name: relative_error(value, expected[name]) for name, value in ours.items()}
    worst = max(errors, key=errors.get)
    return errors[worst], worst, errors


def plan_of(cell, hidden, dtype, batch, path):
    from numba_rnn import recurrent

    if path == "plain":
        return None
    plan = (recurrent.persistent_plan if path == "persistent" else recurrent.fused_plan)(
        cell, hidden, dtype, batch)
    return None if plan is None else plan._asdict()


def check_layer(results, name, problem_args, variant, torch, device, timeout, rtol,
                **fields):
    """One problem on one variant: forward and backward against the NumPy reference and
    (where importable) torch.nn, the paths taken, the plan."""
    import numpy as np
    from numba_rnn import recurrent
    from numba_rnn.kernels import CELLS
    from numba_rnn.testing import reference_results

    path, handoff = PATH_OF[variant]
    rng, mode, steps, batch, inputs, hidden, layers, dtype = problem_args[:8]
    options = problem_args[8] if len(problem_args) > 8 else {}
    shape = dict(T=steps, B=batch, I=inputs, H=hidden, layers=layers,
                 directions=2 if options.get("bidirectional") else 1,
                 lengths=options.get("lengths"))
    with results.check(name, timeout, variant=variant, path=path, handoff=handoff,
                       cell=mode, dtype=dtype, shape=shape, phased=True, **fields) as outcome:
        with recurrent.force_path(path), recurrent.use_handoff(handoff):
            # the plan compiles the fused or persistent kernels (their figures size it);
            # then the watchdog starts again for the run, where a handoff could hang
            outcome["plan"] = plan_of(CELLS[mode], hidden, np.dtype(dtype), batch, path)
            results.progress(name, timeout, phase="planned", variant=variant)
            layer, x, states, host, lengths = make_problem(
                rng, mode, steps, batch, inputs, hidden, layers, dtype, **options)
            ours = run_ours(layer, x, states, host, lengths)
        paths = sorted({p for directions in layer.last_paths for p in directions})
        expected = reference_results(layer, host["x"], host["states"], host["upstream"],
                                     lengths)
        worst, where, _ = compare(ours, expected)
        outcome.update(paths_taken=paths, reference_error=worst, reference_worst=where)
        if torch is not None:
            worst_torch, where_torch, _ = compare(ours, run_torch(torch, layer, host, lengths,
                                                                  device))
            outcome.update(torch_error=worst_torch, torch_worst=where_torch,
                           torch_device=device)
        bad = [worst > rtol, outcome.get("torch_error", 0.0) > rtol, paths != [path],
               not all(np.isfinite(v).all() for v in ours.values())]
        if any(bad):
            outcome["status"] = "fail"


# ------------------------------------------------------------------- handoff
def command_handoff(args):
    """One persistent-path LSTM forward and backward with the handoff asked for, in a
    process of its own: a handoff that hangs ends this process only."""
    import numpy as np
    import numba_rnn as nr
    from numba_rnn.testing import TOLERANCES

    results = Results(args.results, "smoke")
    variant = f"persistent-{args.handoff}"
    size = (3, 2, 3, 4) if args.tiny else (8, 4, 256, 256)   # T, B, I, H
    nr.manual_seed(0)
    rng = np.random.default_rng(1)
    check_layer(results, f"handoff-{args.handoff}",
                (rng, "lstm", *size, 1, "float32"), variant, None, None,
                args.check_timeout, TOLERANCES[np.dtype("float32")][0],
                backend=nr.backend_name())
    return 1 if results.failures else 0


# -------------------------------------------------------------------- parity
def parity_problems(cell, dtype, tiny, on_gpu):
    """(name, (T, B, I, H, layers, options)) of the parity stage: H=256 one layer; a
    2-layer bidirectional stack with unsorted lengths (two cooperative grids at once, one
    per direction); a size whose persistent plan asks more than 48 KiB of shared memory
    a block (found from this device's plan; GPU only)."""
    if tiny:
        return [("h256", (3, 2, 3, 5, 1, {})),
                ("stack", (3, 3, 2, 4, 2, {"bidirectional": True, "lengths": [2, 3, 1]}))]
    problems = [("h256", (16, 8, 256, 256, 1, {})),
                ("stack", (10, 6, 64, 128, 2, {"bidirectional": True,
                                               "lengths": [7, 10, 3, 10, 1, 6]}))]
    if on_gpu:
        try:
            hidden = large_shared_size(cell, dtype)
        except Exception as exc:  # the plan's compile failed: the checks will say more
            print(f"gpu_checks parity: no size above 48 KiB ({type(exc).__name__}: {exc})")
            hidden = None
        if hidden:
            problems.append(("above-48k", (5, 2, 64, hidden, 1, {})))
    return problems


def large_shared_size(cell, dtype, batch=2):
    """The smallest hidden size tried whose persistent plan on this device needs the
    opt-in (more than 48 KiB of dynamic shared memory in the forward or the backward
    kernel), or None."""
    from numba_rnn import recurrent
    from numba_rnn.kernels import CELLS

    for hidden in (384, 512, 640, 768, 896, 1024, 1280, 1536, 2048):
        plan = recurrent.persistent_plan(CELLS[cell], hidden, dtype, batch)
        if plan is None:
            break
        if max(plan.forward_shared, plan.backward_shared) > NO_OPT_IN_BYTES:
            return hidden
    return None


def command_parity(args):
    import numpy as np
    import numba_rnn as nr
    from numba_rnn.kernels import registry
    from numba_rnn.testing import TOLERANCES

    results = Results(args.results, "parity", tag=f"{args.cell}-{args.dtype}")
    on_gpu = nr.backend_name() == "cuda"
    from common import import_torch
    torch = import_torch()
    device = "cuda" if on_gpu else "cpu"
    if torch is not None and on_gpu and not torch.cuda.is_available():
        torch = None
    rtol = TOLERANCES[np.dtype(args.dtype)][0]
    record = registry.record_launches() if on_gpu else None
    problems = parity_problems(args.cell, args.dtype, args.tiny, on_gpu)
    for variant in args.variants:
        for name, (steps, batch, inputs, hidden, layers, options) in problems:
            nr.manual_seed(0)
            rng = np.random.default_rng(len(name) + 31 * VARIANTS.index(variant))
            check_layer(results, f"{args.cell}-{args.dtype}-{variant}-{name}",
                        (rng, args.cell, steps, batch, inputs, hidden, layers, args.dtype,
                         options),
                        variant, torch, device, args.check_timeout, rtol, problem=name)
        if record is not None:
            write_resources(results, record, variant)
    if not on_gpu:
        results.write(event="note", check="resources",
                      note="kernel figures from the driver need a GPU: not read here")
    return 1 if results.failures else 0


def write_resources(results, record, variant):
    """The driver's registers, static shared and local memory of every kernel build
    launched so far, next to the offline report's row (benchmarks/kernel_resources.py)."""
    import kernel_resources
    from numba import cuda

    with results.check(f"resources-after-{variant}", 60) as outcome:
        cc = cuda.get_current_device().compute_capability
        target = f"sm_{cc[0]}{cc[1]}"
        with open(kernel_resources.REPORT) as f:
            report = json.load(f)
        rows = kernel_resources.compare(kernel_resources.measure(record), report["rows"],
                                        target)
        outcome.update(target=target, rows=rows,
                       differing=sum(1 for r in rows if r["differs"]),
                       unmatched=sum(1 for r in rows if r["offline"] is None))
        if outcome["differing"]:
            outcome["status"] = "fail"


# -------------------------------------------------------------------- bridge
def command_bridge(args):
    """numba_rnn.torch with CUDA tensors: against torch.nn on cuDNN on the default
    stream, the same on a side stream, each forced persistent path, and gradcheck in
    float64. ``--device cpu --tiny`` (the dry run, in the simulator) runs the same code
    on CPU tensors at tiny sizes, without the side stream."""
    from common import import_torch
    from numba_rnn.testing import relative_error

    results = Results(args.results, "parity", tag="bridge")
    torch = import_torch()
    if torch is None:
        results.write(event="done", check="bridge", status="skipped",
                      reason="PyTorch is not installed: numba_rnn.torch needs it")
        return 0
    import numba_rnn.torch as nrt
    from numba_rnn import recurrent
    timeout = args.check_timeout
    device = args.device
    steps, batch, inputs, hidden = (3, 2, 3, 4) if args.tiny else (7, 5, 32, 64)
    layers, directions = 2, 2

    torch.manual_seed(0)
    ours = nrt.LSTM(inputs, hidden, num_layers=layers, bidirectional=True).to(device)
    theirs = torch.nn.LSTM(inputs, hidden, num_layers=layers, bidirectional=True).to(device)
    theirs.load_state_dict(ours.state_dict())
    gen = torch.Generator(device=device).manual_seed(1)

    def randn(*shape):
        return torch.randn(*shape, device=device, generator=gen)

    x = randn(steps, batch, inputs)
    hx = tuple(randn(layers * directions, batch, hidden) for _ in range(2))
    upstream = [randn(steps, batch, directions * hidden)] + [
        randn(layers * directions, batch, hidden) for _ in range(2)]

    def values(module):
        """Output, final states and every gradient of the loss, as float64 NumPy."""
        xs = x.detach().clone().requires_grad_()
        states = tuple(h.detach().clone().requires_grad_() for h in hx)
        output, finals = module(xs, states)
        loss = (output * upstream[0]).sum()
        for final, weight in zip(finals, upstream[1:]):
            loss = loss + (final * weight).sum()
        loss.backward()
        out = {"output": output, "input": xs.grad, "h_n": finals[0], "c_n": finals[1],
               "h_0": states[0].grad, "c_0": states[1].grad}
        out.update((n, p.grad) for n, p in module.named_parameters())
        module.zero_grad()
        return {k: v.detach().double().cpu().numpy() for k, v in out.items()}

    def worst(a, b):
        errors = {k: relative_error(a[k], b[k]) for k in a}
        key = max(errors, key=errors.get)
        return errors[key], key

    expected = values(theirs)
    default = None
    with results.check("bridge-default-stream", timeout, device=device) as outcome:
        default = values(ours)
        error, where = worst(default, expected)
        outcome.update(torch_error=error, worst=where)
        if not error < 1e-4:
            outcome["status"] = "fail"
    if device == "cuda":
        with results.check("bridge-side-stream", timeout, device=device) as outcome:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                on_side = values(ours)
            torch.cuda.synchronize()
            error, where = worst(on_side, expected)
            outcome.update(torch_error=error, worst=where)
            if default is not None:
                outcome["default_stream_difference"] = worst(on_side, default)[0]
            if not error < 1e-4:
                outcome["status"] = "fail"
    else:
        results.write(event="done", check="bridge-side-stream", status="skipped",
                      reason="CPU tensors: no CUDA stream")
    for variant in ("persistent-grid", "persistent-flags"):
        name = f"bridge-forced-{variant}"
        if variant in args.skip:
            results.write(event="done", check=name, status="skipped", variant=variant,
                          reason=f"{variant} hung in an earlier stage")
            continue
        with results.check(name, timeout, variant=variant, device=device) as outcome:
            path, handoff = PATH_OF[variant]
            with recurrent.force_path(path), recurrent.use_handoff(handoff):
                forced = values(ours)
            error, where = worst(forced, expected)
            outcome.update(torch_error=error, worst=where)
            if not error < 1e-4:
                outcome["status"] = "fail"
    with results.check("bridge-gradcheck-float64", timeout, device=device) as outcome:
        for cls in ("GRU",) if args.tiny else ("GRU", "LSTM"):  # tiny: the simulator's
            torch.manual_seed(0)
            module = getattr(nrt, cls)(3, 4).double().to(device)
            tensors = [torch.randn(3, 2, 3, dtype=torch.float64, device=device,
                                   requires_grad=True)]
            tensors += [torch.randn(1, 2, 4, dtype=torch.float64, device=device,
                                    requires_grad=True) for _ in range(2 if cls == "LSTM" else 1)]

            def fn(x, *states, module=module):
                output, finals = module(x, states if len(states) > 1 else states[0])
                return (output, *finals) if isinstance(finals, tuple) else (output, finals)

            outcome[cls] = bool(torch.autograd.gradcheck(fn, tuple(tensors), eps=1e-6,
                                                         raise_exception=False))
        if not all(outcome.get(cls, True) for cls in ("GRU", "LSTM")):
            outcome["status"] = "fail"
    return 1 if results.failures else 0


# ------------------------------------------------------------------- summary
def command_hung(args):
    print(" ".join(hung_variants(read_results(args.results))))
    return 0


def _fmt(value, digits=3):
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}e}" if (value and abs(value) < 1e-2) else f"{value:.{digits}f}"
    return str(value)


def summary_markdown(lines, plan_text=""):
    """summary.md from the results' lines (whatever finished)."""
    out = []
    env = next((line.get("report") for line in lines
                if line.get("stage") == "env" and line.get("event") == "done"), None)
    stages = [line for line in lines if line.get("event") == "stage"]
    dry = any(line.get("dry_run") for line in stages) or bool(env and env.get("dry_run"))
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    out.append("# First GPU run: summary" + (" (DRY RUN: no GPU; nothing here was measured "
                                              "on a GPU)" if dry else ""))
    out.append("")
    out.append(f"Written {now} from {len(lines)} result lines.")
    if env:
        gpu = env.get("gpu") or {}
        versions = env.get("versions", {})
        out.append(f"Device: {env.get('device')}; backend {env.get('backend')!r}; python "
                   f"{env.get('python')}; " + ", ".join(f"{k} {v}" for k, v in versions.items()
                                                        if v) +
                   (f"; driver {env.get('cuda_driver')}, runtime {env.get('cuda_runtime')}"
                    if env.get("cuda_driver") else "") +
                   (f"; {gpu.get('multiprocessors')} SMs, cc {gpu.get('compute_capability')}, "
                    f"{gpu.get('shared_per_block_optin')} B opt-in shared per block"
                    if gpu else ""))
        libs = env.get("libraries", {})
        out.append("Libraries: " + ", ".join(
            f"{n} {'ok' if r.get('ok') else 'not checked' if r.get('ok') is None else 'MISSING'}"
            for n, r in libs.items()))
        if env.get("import_warnings"):
            out.append("Warnings at import: " + " | ".join(env["import_warnings"]))
        if env.get("stop"):
            out.append(f"**Stop: {env['stop']}**" + (" (dry run: the GPU stages ran in the "
                                                      "simulator at tiny sizes or were skipped)"
                                                      if dry else ""))
    out.append("")
    out.append("## Stages")
    out.append("")
    if plan_text:
        out.append(f"Plan (time limits, s): {plan_text}")
        out.append("")
    out.append("| stage | part | limit s | took s | exit | note |")
    out.append("|---|---|---|---|---|---|")
    for s in stages:
        out.append(f"| {s.get('name')} | {s.get('part', '')} | {s.get('budget_s', '')} | "
                   f"{s.get('elapsed_s', '')} | {s.get('rc', '')} | {s.get('note', '')} |")
    hung = unfinished(lines)
    out.append("")
    out.append("## Checks that did not finish (hung, or crashed their process)")
    out.append("")
    if hung:
        for line in hung:
            skipped = counts_as_hang(line)
            out.append(f"- {line.get('stage')} {line.get('tag') or ''} {line.get('check')}"
                       + (f" (variant {line['variant']}: skipped by every later stage)"
                          if skipped else " (before its plan: still compiling, not counted "
                          "as a hang)" if line.get("variant") else ""))
    else:
        out.append("none")
    done = [line for line in lines if line.get("event") == "done"]
    for stage, title in (("smoke", "Smoke"), ("parity", "Parity")):
        rows = [d for d in done if d.get("stage") == stage and not
                str(d.get("check", "")).startswith("resources")]
        tags = list(dict.fromkeys(str(d.get("tag") or "") for d in rows))
        rows.sort(key=lambda d: tags.index(str(d.get("tag") or "")))  # by process, in order
        out.append("")
        out.append(f"## {title}")
        out.append("")
        if not rows:
            out.append("nothing finished")
            continue
        out.append("| check | status | s | vs reference | vs torch.nn | paths | details |")
        out.append("|---|---|---|---|---|---|---|")
        for d in rows:
            details = {k: d[k] for k in ("max_abs_error", "relative_error", "us_per_grid_sync",
                                         "co_resident_blocks", "wrong_neighbours",
                                         "worst", "default_stream_difference", "GRU",
                                         "LSTM", "error", "reason")
                       if k in d}
            plan = d.get("plan")
            if plan:
                details["plan"] = (f"units {plan['units']}, blocks {plan['blocks']}, staged "
                                   f"{plan['staged']}, shared {plan['forward_shared']}/"
                                   f"{plan['backward_shared']} B")
            where = f" ({d['reference_worst']})" if d.get("reference_worst") else ""
            out.append(f"| {d.get('check')} | {'ok' if d.get('status') == 'ok' else '**' + str(d.get('status')) + '**'} "
                       f"| {d.get('seconds', '')} | {_fmt(d.get('reference_error'))}{where} | "
                       f"{_fmt(d.get('torch_error'))} {d.get('torch_device', '')} | "
                       f"{','.join(d.get('paths_taken', []))} | "
                       f"{'; '.join(f'{k}: {v}' for k, v in details.items())} |")
    out.append("")
    out.append("## First call (benchmarks/first_call.py: cold, an empty kernel cache; warm, "
               "the same cache)")
    out.append("")
    out += first_call_table(lines)
    notes = [line for line in lines if line.get("event") == "note"]
    resources = [d for d in done if str(d.get("check", "")).startswith("resources")]
    out.append("")
    out.append("## Kernel resources: driver against the offline report")
    out.append("")
    if resources:
        rows = {}
        for d in resources:
            for r in d.get("rows", []):
                rows[(r["kernel"], r["cell"], r["path"], r["dtype"])] = r
        differing = [r for r in rows.values() if r["differs"]]
        unmatched = [r for r in rows.values() if r["offline"] is None]
        out.append(f"{len(rows)} kernel builds read; {len(differing)} differ from the offline "
                   f"report; {len(unmatched)} without an offline row (kernel_resources.md).")
    else:
        out.append("; ".join(n.get("note", "") for n in notes if n.get("check") == "resources")
                   or "not read")
    out.append("")
    out.append("## Timing (CUDA events, medians; ratio = numba_rnn / cuDNN with TF32 off)")
    out.append("")
    out += timing_table(lines)
    soaks = [line for line in lines if line.get("event") == "soak"]
    if soaks:
        out.append("")
        for s in soaks:
            out.append(f"- soak {s.get('tag')}: {s.get('steps')} training steps, growth "
                       f"{s.get('growth_bytes')} B ({'ok' if s.get('passed') else 'GREW'}; "
                       f"{s.get('memory')})")
    return "\n".join(out) + "\n"


def first_call_table(lines):
    """The first-call runs: the first and second forward+backward, what compiled and what
    the disk cache gave, per run."""
    runs = [line for line in lines if line.get("event") == "first_call"]
    if not runs:
        return ["nothing measured"]
    out = ["| run | backend | size | import s | first fwd+bwd s | second ms | compiled s "
           "(kernels) | loaded from the disk cache s (kernels) |", "|---|---|---|---|---|---|---|---|"]
    for r in runs:
        kernels = r.get("kernels", [])
        compiled = sum(1 for k in kernels if not k.get("loaded"))
        loaded = len(kernels) - compiled
        out.append(f"| {r.get('tag')} | {r.get('backend')} | LSTM T={r.get('T')} B={r.get('B')} "
                   f"I={r.get('I')} H={r.get('H')} {r.get('dtype')} | {_fmt(r.get('import_s'))} | "
                   f"{_fmt(r.get('first_s'))} | {_fmt(r.get('second_ms'))} | "
                   f"{_fmt(r.get('compiled_s'))} ({compiled}) | "
                   + (f"{_fmt(r.get('loaded_s'))} ({loaded}) |" if r.get("backend") == "cuda"
                      else "not counted (a CPU load sends no event) |"))
    return out


def timing_table(lines):
    records = [line for line in lines if line.get("event") == "record"]
    if not records:
        return ["nothing timed"]
    tags = []
    by_case = {}
    for r in records:
        key = (r["cell"], r["T"], r["B"], r["H"], r["layers"], r["directions"], r["mode"])
        entry = by_case.setdefault(key, {})
        implementation = r.get("implementation")
        if implementation == "numba_rnn":
            tag = str(r.get("tag") or "numba_rnn").replace("timing-", "")
            if tag not in tags:
                tags.append(tag)
            entry[tag] = r
        else:
            entry.setdefault(implementation, r)
    head = ["case", "mode", "cuDNN ms", "cuDNN TF32 ms"] + [f"{t} ms (ratio)" for t in tags]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, entry in by_case.items():
        cell, T, B, H, layers, dirs, mode = key
        cudnn = (entry.get("cudnn") or {}).get("median_ms")
        tf32 = (entry.get("cudnn_tf32_default") or {}).get("median_ms")
        cells = [f"{cell} T={T} B={B} H={H} {layers}×{dirs}", mode, _fmt(cudnn), _fmt(tf32)]
        for tag in tags:
            r = entry.get(tag)
            if r is None:
                cells.append("")
            elif r.get("median_ms") is None:
                cells.append(str(r.get("error") or r.get("not_runnable") or
                                 ("checked, not timed (simulator)" if r.get("passed")
                                  else "not timed")))
            else:
                ratio = f" ({r['median_ms'] / cudnn:.2f})" if cudnn else ""
                cells.append(f"{r['median_ms']:.3f}{ratio}")
        out.append("| " + " | ".join(cells) + " |")
    return out


def resources_markdown(lines):
    rows = {}
    for d in lines:
        if d.get("event") == "done" and str(d.get("check", "")).startswith("resources"):
            for r in d.get("rows", []):
                rows[(r["kernel"], r["cell"], r["path"], r["dtype"])] = (d.get("target"), r)
    if not rows:
        return None
    out = ["# Kernel resources: the driver's figures against the offline report", "",
           "| kernel | cell | path | dtype | target | registers | static shared B | local B | "
           "differs |", "|---|---|---|---|---|---|---|---|---|"]
    for (kernel, cell, path, dtype), (target, r) in sorted(rows.items()):
        off = r.get("offline") or {}
        figures = [f"{r['device'][n]} / {off.get(n, '–')}"
                   for n in ("registers", "static_shared", "local")]
        out.append(f"| {kernel} | {cell} | {path} | {dtype} | {target} | " + " | ".join(figures)
                   + f" | {', '.join(r['differs']) or '-'} |")
    return "\n".join(out) + "\n"


def launch_markdown(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        data = json.load(f)
    out = ["", "## Launch overhead (launch_overhead.json)", "",
           "| variant | host µs | device span µs |", "|---|---|---|"]
    for name, cost in data.get("launch_costs", {}).items():
        out.append(f"| {name} | {cost['host_us']:.2f} | {cost['device_span_us']:.2f} |")
    step = data.get("lstm_forward_step", {})
    if step:
        out.append("")
        out.append("LSTM forward step (µs): " + ", ".join(
            f"{k} {v:.2f}" for k, v in step.items() if isinstance(v, float)))
    return out


def command_summary(args):
    lines = read_results(args.results)
    text = summary_markdown(lines, args.plan)
    text += "\n".join(launch_markdown(os.path.join(args.out, "launch_overhead.json")))
    with open(os.path.join(args.out, "summary.md"), "w") as f:
        f.write(text + ("\n" if not text.endswith("\n") else ""))
    resources = resources_markdown(lines)
    if resources:
        with open(os.path.join(args.out, "kernel_resources.md"), "w") as f:
            f.write(resources)
    if args.print:
        print(text)
    return 0


# ---------------------------------------------------------------------- main
def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    def command(name, timeout=60):
        c = sub.add_parser(name)
        c.add_argument("--results", required=True, help="the JSON-lines file to append to")
        c.add_argument("--check-timeout", type=float, default=timeout,
                       help="seconds a check may take before its watchdog ends the process")
        return c

    command("env").add_argument("--dry-run", action="store_true")
    command("smoke", 30)
    c = command("handoff", 30)
    c.add_argument("--handoff", required=True, choices=("grid", "flags"))
    c.add_argument("--tiny", action="store_true")
    c = command("parity", 60)
    c.add_argument("--cell", required=True, choices=("lstm", "gru", "rnn_tanh", "rnn_relu"))
    c.add_argument("--dtype", required=True, choices=("float32", "float64"))
    c.add_argument("--variants", default=",".join(VARIANTS))
    c.add_argument("--tiny", action="store_true")
    c = command("bridge", 60)
    c.add_argument("--skip", nargs="*", default=[], help="variants not to run (hung before)")
    c.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    c.add_argument("--tiny", action="store_true")
    command("hung")
    c = command("summary")
    c.add_argument("--out", required=True)
    c.add_argument("--plan", default="")
    c.add_argument("--print", action="store_true")
    args = p.parse_args(argv)
    if hasattr(args, "variants"):
        args.variants = [v for v in args.variants.split(",") if v]
        unknown = set(args.variants) - set(VARIANTS)
        if unknown:
            p.error(f"--variants: unknown {sorted(unknown)} (known: {', '.join(VARIANTS)})")
    return args


COMMANDS = {"env": command_env, "smoke": command_smoke, "handoff": command_handoff,
            "parity": command_parity, "bridge": command_bridge, "hung": command_hung,
            "summary": command_summary}


def main(argv=None):
    args = parse(argv)
    if args.command not in ("hung", "summary"):
        _watch_sigterm()
    return COMMANDS[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
