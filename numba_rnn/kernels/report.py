"""The resource report of every kernel compiled for sm_80 and sm_90: registers, spills,
stack, local and shared memory, and how many blocks an SM holds at once.

    python -m numba_rnn.kernels.report [--out benchmarks/results/kernels]

writes ``kernels.md`` and ``kernels.json`` there. It launches every kernel once in this
process (the simulator without a GPU) to record the argument types, then compiles and
links each one in subprocesses for the real targets (numba_rnn.kernels.compile). Needs
the ``compile`` extra; no GPU.
"""
import argparse
import datetime
import json
import os
import platform
import sys

from . import compile as kernels_compile
from . import registry


def environment():
    from importlib import metadata

    versions = {}
    for package in ("numba", "numba-cuda", "numpy", "cuda-core", "cuda-bindings",
                    "nvidia-cuda-nvcc-cu12", "nvidia-nvjitlink-cu12"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {"date": datetime.date.today().isoformat(), "python": platform.python_version(),
            "machine": platform.machine(), "packages": versions,
            "targets": list(kernels_compile.TARGETS)}


def rows(results):
    """The results with the figures the report derives from them."""
    table = []
    for r in results:
        row = {k: v for k, v in r.items() if not k.endswith("_seconds")}  # not resources
        if "error" not in r:
            row["dynamic_shared"] = kernels_compile.max_dynamic_shared(r)
            row["blocks_per_sm"] = kernels_compile.occupancy(r)
        table.append(row)
    order = {"plain": 0, "fused": 1, "persistent": 2, "-": 3}
    return sorted(table, key=lambda r: (order[r["path"]], r["cell"], r["kernel"], r["dtype"],
                                        r["target"]))


def markdown(table, env, problems):
    lines = [
        "# Kernel resources, compiled for sm_80 and sm_90 without a GPU",
        "",
        f"Written by `python -m numba_rnn.kernels.report` on {env['date']} "
        f"({', '.join(f'{k} {v}' for k, v in env['packages'].items() if v)}). Each kernel "
        "is compiled with NVVM to PTX for each target, with the argument types its call "
        "sites launch it with, and linked with nvJitLink (persistent kernels with "
        "libcudadevrt, for the grid barrier), as Numba does before a launch. Figures are "
        "nvJitLink's for the linked kernel; spills are ptxas'. **Compiled, not run: no "
        "figure here is a measurement on a GPU.**",
        "",
        f"Blocks/SM: how many blocks of {kernels_compile.GPU_THREADS} threads (the GPU "
        "block size) one SM holds at once by registers, threads and shared memory, with "
        "the most dynamic shared memory the kernel's launch may ask (a persistent kernel's "
        "plan may use all a block can opt in to: 163 KiB on sm_80, 227 KiB on sm_90, less "
        "its static part); a persistent kernel needs 1. Stack in persistent kernels is the "
        "frame of the call into libcudadevrt for the grid barrier.",
        "",
        "| kernel | cell | path | dtype | target | registers | spills st/ld B | stack B | "
        "local B | static smem B | dynamic smem B (max) | blocks/SM |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in table:
        head = f"| {r['kernel']} | {r['cell']} | {r['path']} | {r['dtype']} | {r['target']} |"
        if "error" in r:
            lines.append(f"{head} {r['error']} | | | | | | |")
            continue
        lines.append(f"{head} {r['registers']} | {r['spill_stores']}/{r['spill_loads']} | "
                     f"{r['stack']} | {r['local']} | {r['static_shared']} | "
                     f"{r['dynamic_shared']} | {r['blocks_per_sm']} |")
    lines += ["", "## Checks", ""]
    lines += [f"- FAILED: {p}" for p in problems] or [
        "All pass: every kernel compiles and links for both targets; no spills and no "
        "local memory; no float64 instruction in a float32 kernel; every persistent "
        "kernel keeps one block per SM."]
    lines += ["", "## Closest to a limit", ""] + closest(table)
    return "\n".join(lines) + "\n"


def closest(table):
    """The kernels nearest each limit, in words."""
    ok = [r for r in table if "error" not in r]
    if not ok:
        return ["(nothing compiled)"]
    lines = []
    most = max(ok, key=lambda r: r["registers"])
    lines.append(f"- Registers: {most['kernel']} ({most['cell']}, {most['dtype']}, "
                 f"{most['target']}) uses {most['registers']} of 255 per thread; at "
                 f"{kernels_compile.GPU_THREADS} threads a block that allows "
                 f"{kernels_compile.blocks_per_sm(most['target'], most['registers'], kernels_compile.GPU_THREADS, 0)}"
                 " blocks per SM by registers alone.")
    persistent = [r for r in ok if r["path"] == "persistent"]
    if persistent:
        biggest = max(persistent, key=lambda r: r["static_shared"])
        lines.append(f"- Shared memory: the persistent kernels' plans may fill a block's "
                     f"opt-in shared memory by design (one block per SM); their static part is "
                     f"at most {biggest['static_shared']} bytes ({biggest['target']}), so the "
                     "weights get the rest.")
    busiest = min(ok, key=lambda r: r["blocks_per_sm"] if r["path"] != "persistent" else 99)
    lines.append(f"- Occupancy of the step kernels: lowest is {busiest['kernel']} "
                 f"({busiest['cell']}, {busiest['path']}, {busiest['dtype']}, "
                 f"{busiest['target']}) with {busiest['blocks_per_sm']} blocks of "
                 f"{kernels_compile.GPU_THREADS} threads per SM.")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join("benchmarks", "results", "kernels"),
                        help="folder for kernels.md and kernels.json")
    args = parser.parse_args(argv)
    record = registry.record_launches()
    kernels_compile.exercise()
    registry.stop_recording()
    results = kernels_compile.run_compiler(kernels_compile.jobs(record))
    table = rows(results)
    problems = kernels_compile.problems(results)
    env = environment()
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "kernels.json"), "w") as f:
        json.dump({"environment": env, "problems": problems, "rows": table}, f, indent=1)
    with open(os.path.join(args.out, "kernels.md"), "w") as f:
        f.write(markdown(table, env, problems))
    print(f"wrote {args.out}/kernels.md and kernels.json: {len(table)} kernel builds, "
          f"{len(problems)} problems")
    for problem in problems:
        print("FAILED:", problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
