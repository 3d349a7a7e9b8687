"""Every kernel compiled for real GPUs, on a machine without one, and the result checked.

Numba is either the CUDA simulator or the real CUDA target in one process (it reads
``NUMBA_ENABLE_CUDASIM`` at import), so the work is split:

1. In the simulator (the test suite's process, or a subprocess of the report), every
   launch is recorded through the single launch path (``registry.record_launches``):
   which kernel, with which argument types (dtype, rank, layout), as the call sites
   really launch it. ``exercise()`` drives every cell, path, dtype and option, the
   optimizers and the embedding, so that the record is complete even alone.
2. A subprocess with ``NUMBA_RNN_COMPILE_ONLY=1`` (no device, real target) rebuilds each
   kernel from its Recipe, compiles it to PTX with NVVM for each target, and links it
   with nvJitLink (and libcudadevrt for kernels that synchronize the grid), as Numba
   does before a launch on a GPU; ptxas' verbose output gives registers, spills,
   stack, shared and local memory.
3. ``problems()`` applies the checks: compile or link failure, spills or local memory
   in a step kernel, float64 instructions in a float32 kernel, and a persistent kernel
   that could not keep one block per SM resident with its registers and the most
   shared memory its plan may ask.

``python -m numba_rnn.kernels.report`` writes the table; tests/test_compile.py runs the
checks on every CI run. Needs libNVVM, nvJitLink and libcudadevrt, which the ``compile``
extra brings as wheels (``numba-cuda[cu12]``).
"""
import json
import math
import os
import re
import subprocess
import sys
import time
from collections import namedtuple

from .. import backend

#: The targets every kernel is compiled for: A100 (sm_80) and H100/H200 (sm_90).
TARGETS = {"sm_80": (8, 0), "sm_90": (9, 0)}

# Per-SM limits of the targets (CUDA C++ Programming Guide, "Technical Specifications
# per Compute Capability"): registers, threads and resident blocks per SM, shared memory
# per SM and the most one block may opt in to, and the 1 KiB the system reserves per
# block; registers are allocated per warp in units of 256.
Limits = namedtuple("Limits", ["registers", "threads", "blocks", "shared_per_sm",
                               "shared_per_block", "reserved_per_block"])
LIMITS = {
    "sm_80": Limits(65536, 2048, 32, 164 * 1024, 163 * 1024, 1024),
    "sm_90": Limits(65536, 2048, 32, 228 * 1024, 227 * 1024, 1024),
}
REGISTER_UNIT = 256

#: Threads per block of every launch on a GPU (the backend's threads and
#: steps.BLOCK_THREADS there).
GPU_THREADS = 256

_COMPILE_ONLY = "NUMBA_RNN_COMPILE_ONLY"


class CompilerUnavailable(RuntimeError):
    """libNVVM, nvJitLink or libcudadevrt cannot be found: the compile extra is missing."""


# ------------------------------------------------------------------- recording
def exercise():
    """``_exercise()`` on the CUDA kernels: in the simulator where the process runs on the
    CPU path (whose kernels are not CUDA's), else where it runs."""
    import contextlib

    from .. import backend

    with (backend.use_backend("simulator") if backend.backend_name() == "cpu"
          else contextlib.nullcontext()):
        _exercise()


def _exercise():
    """Run every kernel the package has, forward and backward, in this process (the
    simulator), at tiny sizes: every cell × path (and handoff) × dtype with lengths,
    two directions, two layers, batch-first, unbatched input and a projection; zoneout
    and DropConnect; the layer-normalized layers; the cells; the optimizers with each of their variants; the embedding with strided
    indices."""
    import numpy as np

    import numba_rnn as nr
    from numba_rnn import recurrent

    rng = np.random.default_rng(0)
    layers = {"lstm": nr.LSTM, "gru": nr.GRU, "rnn_tanh": nr.RNN, "rnn_relu": nr.RNN}
    for dtype in ("float32", "float64"):
        for mode, layer_class in layers.items():
            extra = {"nonlinearity": mode[4:]} if mode.startswith("rnn_") else {}
            variants = [(path, "grid") for path in recurrent.PATHS] + [("persistent", "flags")]
            for path, handoff in variants:
                options = [dict(bidirectional=True, num_layers=2), dict(batch_first=True)]
                if mode == "lstm" and path == "plain":
                    options.append(dict(proj_size=2))
                for option in options:
                    layer = layer_class(3, 4, dtype=dtype, **extra, **option)
                    x = rng.standard_normal((3, 3, 3)).astype(dtype)  # T = B = 3
                    with recurrent.force_path(path), recurrent.use_handoff(handoff):
                        out, _ = layer(nr.tensor(x, requires_grad=True), lengths=[3, 1, 2])
                        out.sum().backward()
                        out, _ = layer(x[:, 0])  # unbatched
                        out.sum().backward()
            # zoneout and DropConnect, training and eval (the plain path's variant)
            layer = layer_class(3, 4, dtype=dtype, zoneout=0.3, weight_dropout=0.2, **extra)
            for training in (True, False):
                layer.train(training)
                out, _ = layer(nr.tensor(x, requires_grad=True), lengths=[3, 1, 2])
                out.sum().backward()
            cell_class = {"lstm": nr.LSTMCell, "gru": nr.GRUCell}.get(mode, nr.RNNCell)
            cell = cell_class(3, 4, dtype=dtype, **extra)
            result = cell(rng.standard_normal((2, 3)).astype(dtype))
            (result[0] if isinstance(result, tuple) else result).sum().backward()
        for layer_class, cell_class in ((nr.LayerNormLSTM, nr.LayerNormLSTMCell),
                                        (nr.LayerNormGRU, nr.LayerNormGRUCell)):
            for option in (dict(bidirectional=True, num_layers=2, zoneout=0.3,
                                weight_dropout=0.2), dict(batch_first=True)):
                layer = layer_class(3, 4, dtype=dtype, **option)
                x = rng.standard_normal((3, 3, 3)).astype(dtype)
                out, _ = layer(nr.tensor(x, requires_grad=True), lengths=[3, 1, 2])
                out.sum().backward()
            result = cell_class(3, 4, dtype=dtype)(rng.standard_normal((2, 3)).astype(dtype))
            (result[0] if isinstance(result, tuple) else result).sum().backward()
        params = [nr.nn.Parameter(rng.standard_normal(5).astype(dtype)) for _ in range(10)]
        optimizers = [nr.optim.SGD(params[:1], lr=0.1),
                      nr.optim.SGD(params[1:2], lr=0.1, momentum=0.9, nesterov=True),
                      nr.optim.Adam(params[2:3]), nr.optim.Adam(params[3:4], amsgrad=True),
                      nr.optim.AdamW(params[4:5]), nr.optim.AdamW(params[5:6], amsgrad=True),
                      nr.optim.RMSprop(params[6:7]),
                      nr.optim.RMSprop(params[7:8], momentum=0.9, centered=True),
                      nr.optim.Adagrad(params[8:9]), nr.optim.Adadelta(params[9:])]
        for p in params:
            p.grad = nr.tensor(rng.standard_normal(5).astype(dtype))
        for optimizer in optimizers:
            optimizer.step()
        embedding = nr.nn.Embedding(5, 3, dtype=dtype)
        ids = rng.integers(0, 5, (4, 2))
        embedding(ids[:, 1]).sum().backward()


def jobs(record):
    """The record as JSON-able jobs: one per kernel, with every distinct signature."""
    return [{"recipe": list(recipe), "signatures": [list(s) for s in signatures]}
            for recipe, signatures in record.signatures.items()]


# -------------------------------------------------------------------- compiling
def compile_jobs(job_list, targets=tuple(TARGETS), warm_up=False):
    """Compile and link every job for every target (in a NUMBA_RNN_COMPILE_ONLY=1
    process). One result per (kernel, signature, target), with the seconds of NVVM
    (``ptx_seconds``: ``compile_ptx``, Numba's typing and lowering included) and of
    nvJitLink (``link_seconds``). With ``warm_up``, a trivial kernel is compiled first
    and reported as the first result (kernel "(start-up)"): what the first compilation
    of a process pays once (loading NVVM, Numba's typing context), so that the others'
    seconds are their own."""
    from numba import cuda
    import numba.cuda.dispatcher

    from . import registry

    _check_toolchain()
    results = []
    if warm_up:
        results.append(_warm_up(targets[0]))
    for job in job_list:
        recipe = registry.recipe_from_json(job["recipe"])
        kernel = registry.build(recipe)
        for signature in job["signatures"]:
            types = tuple(registry.numba_type(d) for d in signature)
            for target in targets:
                result = {"recipe": list(recipe), "signature": signature, "target": target}
                result.update(_describe_kernel(recipe, recipe.field or kernel.py_func.__name__,
                                               signature))
                try:
                    # Kernels calling device functions ask for the current device's
                    # compute capability in some numba-cuda versions: report the target's.
                    cc = TARGETS[target]
                    numba.cuda.dispatcher.get_current_device = lambda: _Device(cc)
                    started = time.perf_counter()
                    ptx, _ = cuda.compile_ptx(kernel.py_func, types, cc=cc)
                    compiled = time.perf_counter()
                    result.update(_link(ptx, target))
                    result["ptx_seconds"] = round(compiled - started, 4)
                    result["link_seconds"] = round(time.perf_counter() - compiled, 4)
                    result["float64_instructions"] = _float64_instructions(ptx)
                    result["spins"], result["stale_spins"] = _spins(ptx)
                except Exception as exc:  # reported, and failed by problems()
                    result["error"] = f"{type(exc).__name__}: {exc}"
                results.append(result)
    return results


class _Device:
    def __init__(self, cc):
        self.compute_capability = cc


def _warm_up(target):
    """A trivial kernel compiled and linked for ``target``: the process's start-up."""
    from numba import cuda
    import numba.cuda.dispatcher

    def warm_up(out):
        out[0] = 1.0

    cc = TARGETS[target]
    numba.cuda.dispatcher.get_current_device = lambda: _Device(cc)
    started = time.perf_counter()
    ptx, _ = cuda.compile_ptx(warm_up, (numba.float32[::1],), cc=cc)
    compiled = time.perf_counter()
    _link(ptx, target)
    return {"kernel": "(start-up)", "target": target, "recipe": None, "signature": None,
            "ptx_seconds": round(compiled - started, 4),
            "link_seconds": round(time.perf_counter() - compiled, 4)}


def _check_toolchain():
    try:
        from numba.cuda.cudadrv import nvvm
        nvvm.NVVM()
        _cudadevrt()
        from cuda.core import Linker  # noqa: F401  (nvJitLink through cuda.core)
    except Exception as exc:
        raise CompilerUnavailable(f"{type(exc).__name__}: {exc}") from None


def _cudadevrt():
    import cuda.pathfinder
    return cuda.pathfinder.find_static_lib("cudadevrt")


_SPILLS = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")


def _figure(line, pattern):
    found = re.search(pattern, line)
    if found is None:
        raise ValueError(f"no {pattern!r} in the linker's report: {line!r}")
    return int(found.group(1))


def _link(ptx, target):
    """Link ``ptx`` (with libcudadevrt when it calls the device runtime, as a grid sync
    does) into a cubin for ``target`` with nvJitLink; the figures of its entry."""
    from cuda.core import Linker, LinkerOptions, ObjectCode

    entry = re.search(r"\.visible \.entry (\S+)\(", ptx).group(1)
    objects = [ObjectCode.from_ptx(ptx.encode(), name="kernel.ptx")]
    cooperative = ".extern .func" in ptx and "cudaCG" in ptx
    if cooperative:
        with open(_cudadevrt(), "rb") as library:
            objects.append(ObjectCode.from_library(library.read(), name="libcudadevrt.a"))
    linker = Linker(*objects, options=LinkerOptions(arch=target, verbose=True,
                                                     ptxas_options=["-v"]))
    linker.link("cubin")
    log = linker.get_info_log()
    # nvJitLink's summary of the linked entry: "used R registers, ..., S stack,
    # M bytes smem, ... L bytes lmem"; ptxas' own lines give the spills
    linked = log[log.index(f"Function properties for '{entry}'"):].splitlines()[1]
    compiled = log[log.index(f"Function properties for {entry}"):]
    _, spill_stores, spill_loads = map(int, _SPILLS.search(compiled).groups())
    return {"registers": _figure(linked, r"used (\d+) registers"),
            "stack": _figure(linked, r"(\d+) stack"),
            "static_shared": _figure(linked, r"(\d+) bytes smem"),
            "local": _figure(linked, r"(\d+) bytes lmem"),
            "spill_stores": spill_stores, "spill_loads": spill_loads,
            "cooperative": cooperative}


_FLOAT64 = re.compile(r"^\s*[a-z][\w.]*\.f64\b", re.MULTILINE)


def _float64_instructions(ptx):
    """How many PTX instructions compute in, load, store or convert to float64."""
    return len(_FLOAT64.findall(ptx))


_LABEL = re.compile(r"^(\$\w+):", re.MULTILINE)
_BRANCH = re.compile(r"\bbra(?:\.uni)?\s+(\$\w+);")
#: What re-reads memory that other blocks write: an atomic, or an acquire, volatile or
#: relaxed load.
_FRESH_LOAD = re.compile(r"\b(?:atom\.|ld\.(?:acquire|volatile|relaxed)\.)")


def _spins(ptx):
    """(spins, stale spins): the loops that wait with ``nanosleep`` (the flag handoff's
    spin), and those of them whose turn does not load the counter again (an atomic, or
    an acquire, volatile or relaxed load between the loop's label and its branch back),
    which wait forever once the compiler has hoisted the load."""
    labels = {m.group(1): m.start() for m in _LABEL.finditer(ptx)}
    spins = stale = 0
    for sleep in re.finditer(r"\bnanosleep\b", ptx):
        for branch in _BRANCH.finditer(ptx, sleep.end()):
            head = labels.get(branch.group(1), len(ptx))
            if head <= sleep.start():  # the branch back to the loop's head
                spins += 1
                stale += not _FRESH_LOAD.search(ptx, head, branch.start())
                break
    return spins, stale


def _describe_kernel(recipe, name, signature):
    """name, cell, path and dtype of a kernel, for the report."""
    args = dict(recipe.args or ())
    if recipe.field is None:
        path = "-"
    else:
        path = {"fused": "fused", "persistent": "persistent"}.get(name.split("_")[0], "plain")
    floats = {d[1] for d in signature if d[0] == "array" and d[1].startswith("float")}
    dtype = args.get("dtype") or (floats.pop() if len(floats) == 1 else "/".join(sorted(floats)))
    return {"kernel": name, "cell": args.get("cell", "-"), "path": path, "dtype": dtype}


# --------------------------------------------------------------------- checking
def blocks_per_sm(target, registers, threads, shared_bytes):
    """How many blocks of ``threads`` threads, ``registers`` registers each and
    ``shared_bytes`` of shared memory (static and dynamic) one SM holds at once."""
    limits = LIMITS[target]
    warps = math.ceil(threads / 32)
    per_warp = math.ceil(max(registers, 1) * 32 / REGISTER_UNIT) * REGISTER_UNIT
    by_registers = limits.registers // (per_warp * warps)
    by_threads = limits.threads // (warps * 32)
    by_shared = limits.shared_per_sm // (shared_bytes + limits.reserved_per_block)
    return min(by_registers, by_threads, by_shared, limits.blocks)


def max_dynamic_shared(result):
    """The most dynamic shared memory a launch of this kernel may ask for on its target:
    a persistent kernel's plan may use all a block can opt in to, less its static part;
    the row kernels of the layer norms (kernels/norm.py) their tree's buffer; the other
    kernels count none."""
    if (result.get("recipe") or [None])[0] == "numba_rnn.kernels.norm":
        import numpy as np
        return 2 * GPU_THREADS * np.dtype(result["dtype"]).itemsize  # row_shared_bytes
    if result["path"] != "persistent":
        return 0
    return max(0, LIMITS[result["target"]].shared_per_block - result["static_shared"])


def occupancy(result):
    """Blocks per SM at the GPU's block size and the most dynamic shared memory."""
    return blocks_per_sm(result["target"], result["registers"], GPU_THREADS,
                         result["static_shared"] + max_dynamic_shared(result))


#: Bytes of stack of the call into libcudadevrt for a cooperative kernel's grid barrier.
GRID_SYNC_FRAME = 16


def problems(results):
    """What fails the compile check, one line per problem."""
    found = []
    for r in results:
        what = f"{r['kernel']} ({r['cell']}, {r['path']}, {r['dtype']}) for {r['target']}"
        if "error" in r:
            found.append(f"{what}: does not compile or link: {r['error']}")
            continue
        if r["spill_stores"] or r["spill_loads"] or r["local"]:
            found.append(f"{what}: spills {r['spill_stores']}/{r['spill_loads']} bytes "
                         f"(stores/loads), {r['local']} bytes of local memory")
        # The device runtime's grid sync is a real call: its ABI frame is the only
        # stack a kernel may have. More is a local array that the compiler did not keep
        # in registers (the persistent kernels' register rows, steps.REGISTERS).
        if r["stack"] > (GRID_SYNC_FRAME if r["cooperative"] else 0):
            found.append(f"{what}: {r['stack']} bytes of stack (local arrays in memory, "
                         "not registers)")
        if r["static_shared"] > backend.STATIC_SHARED_BYTES:
            found.append(f"{what}: {r['static_shared']} bytes of static shared memory, more "
                         f"than the {backend.STATIC_SHARED_BYTES} that backend's launches "
                         "assume")
        if r["dtype"] == "float32" and r["float64_instructions"]:
            found.append(f"{what}: {r['float64_instructions']} float64 instructions in a "
                         "float32 kernel")
        if r.get("stale_spins"):
            found.append(f"{what}: {r['stale_spins']} spin loop(s) that do not load the "
                         "counter again in each turn (a hoisted load waits forever)")
        if r["path"] == "persistent" and occupancy(r) < 1:
            found.append(f"{what}: {r['registers']} registers × {GPU_THREADS} threads and "
                         f"{r['static_shared'] + max_dynamic_shared(r)} bytes of shared "
                         "memory leave no room for one block per SM")
    return found


# -------------------------------------------------------------------- processes
def run_compiler(job_list, processes=2, timeout=1800, targets=tuple(TARGETS), warm_up=False):
    """Compile ``job_list`` in ``processes`` subprocesses with the real CUDA target (this
    process may be the simulator) for ``targets`` (``compile_jobs``; ``warm_up``: each
    process's start-up first); raises CompilerUnavailable without the toolchain."""
    env = dict(os.environ, **{_COMPILE_ONLY: "1"})
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    chunks = [job_list[k::processes] for k in range(processes)]
    children = [subprocess.Popen([sys.executable, "-m", "numba_rnn.kernels.compile"],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, env=env, text=True)
                for chunk in chunks if chunk]
    results = []
    for child, chunk in zip(children, chunks):
        request = {"jobs": chunk, "targets": list(targets), "warm_up": warm_up}
        out, err = child.communicate(json.dumps(request), timeout=timeout)
        if child.returncode == 3:
            raise CompilerUnavailable(err.strip().splitlines()[-1])
        if child.returncode != 0:
            raise RuntimeError(f"the compile process failed ({child.returncode}):\n{err}")
        results += json.loads(out)
    return results


def _main():
    request = json.load(sys.stdin)
    try:
        results = compile_jobs(request["jobs"], tuple(request["targets"]), request["warm_up"])
    except CompilerUnavailable as exc:
        print(f"compiler unavailable: {exc}", file=sys.stderr)
        sys.exit(3)
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    _main()
