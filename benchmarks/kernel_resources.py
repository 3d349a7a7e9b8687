"""Each kernel's registers, shared and local memory as the driver reports them on this
GPU, next to the offline compile report (benchmarks/results/kernels/kernels.json) for
the same kernel, dtype and target (GPU only).

    python benchmarks/kernel_resources.py [--out DIR]

Runs every kernel once at tiny sizes (``numba_rnn.kernels.compile.exercise``, as the
compile check does), recording the argument types of each launch, then reads the
compiled variants' figures from Numba's dispatchers (the driver's
``CU_FUNC_ATTRIBUTE_NUM_REGS``, static shared and local memory) and matches each to the
report's row for this device's compute capability (sm_80 or sm_90; other devices get no
offline row). Writes DIR/kernel_resources.json and .md and prints the table; exits 1 if
a figure differs from the report's (registers, static shared memory, local memory), so
that a GPU run shows where the offline check and the device disagree. Without a GPU it
says so and exits 0.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

REPORT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "kernels",
                      "kernels.json")
#: The figures compared: the driver's name for each, and the report's.
FIGURES = (("registers", "registers"), ("static_shared", "static_shared"),
           ("local", "local"))


def key(row):
    """What identifies a kernel build across the two tables."""
    return (row["kernel"], row["cell"], row["path"], row["dtype"],
            json.dumps(row["signature"]))


def compare(measured, report_rows, target):
    """Rows of (kernel, cell, path, dtype, figures on the device, figures offline,
    differences) for each measured build, matched to the offline report's rows of
    ``target`` (None where the report has no such row)."""
    offline = {key(r): r for r in report_rows if r["target"] == target}
    rows = []
    for m in measured:
        o = offline.get(key(m))
        differs = [] if o is None else [name for name, _ in FIGURES if m[name] != o[name]]
        rows.append(dict(kernel=m["kernel"], cell=m["cell"], path=m["path"],
                         dtype=m["dtype"], device={n: m[n] for n, _ in FIGURES},
                         offline=None if o is None else {n: o[n] for _, n in FIGURES},
                         differs=differs))
    return rows


def markdown(rows, env):
    lines = [f"# Kernel resources on {env['device']} (driver) against the offline report "
             f"({env['target']})", "",
             f"{env['versions']}", "",
             "| kernel | cell | path | dtype | registers (device / offline) | static smem B | "
             "local B | differs |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        off = r["offline"] or {}
        cells = [f"{r['device'][n]} / {off.get(n, '–')}" for n, _ in FIGURES]
        lines.append(f"| {r['kernel']} | {r['cell']} | {r['path']} | {r['dtype']} | "
                     + " | ".join(cells) + f" | {', '.join(r['differs']) or '-'} |")
    return "\n".join(lines) + "\n"


def measure(record=None):
    """Every launched kernel build's figures from the driver: a list of dicts with
    kernel, cell, path, dtype, signature and the FIGURES. ``record``: the launches of
    work already done (a ``registry.LaunchRecord``); by default every kernel runs once at
    tiny sizes first (``compile.exercise``: all of them compiled, minutes on a GPU)."""
    from numba_rnn.kernels import compile as kernels_compile
    from numba_rnn.kernels import registry

    if record is None:
        record = registry.record_launches()
        try:
            kernels_compile.exercise()
        finally:
            registry.stop_recording()
    measured = []
    for recipe, signatures in list(record.signatures.items()):
        kernel = registry.build(recipe)
        by_description = {tuple(registry.describe_type(t) for t in args): overload
                          for args, overload in kernel.overloads.items()}
        for signature in list(signatures):
            overload = by_description.get(signature)
            if overload is None:
                continue
            name = recipe.field or kernel.py_func.__name__
            row = kernels_compile._describe_kernel(recipe, name, signature)
            row.update(signature=[list(d) for d in signature],
                       registers=overload.regs_per_thread,
                       static_shared=overload.shared_mem_per_block,
                       local=overload.local_mem_per_thread)
            measured.append(row)
    return measured


def _runtime_version():
    from numba import cuda
    try:
        return ".".join(map(str, cuda.runtime.get_version()))
    except Exception as exc:  # a report, not a failure
        return f"unknown ({type(exc).__name__})"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="benchmarks/results/latest")
    args = p.parse_args(argv)
    import numba_rnn as nr
    if nr.backend_name() != "cuda":
        print("kernel_resources: no GPU here (backend "
              f"{nr.backend_name()!r}); the offline figures are in {REPORT}")
        return 0
    from numba import cuda
    import numba
    device = cuda.get_current_device()
    cc = device.compute_capability
    env = {"device": device.name.decode() if isinstance(device.name, bytes) else device.name,
           "target": f"sm_{cc[0]}{cc[1]}",
           "versions": f"numba {numba.__version__}, CUDA runtime {_runtime_version()}"}
    with open(REPORT) as f:
        report = json.load(f)
    rows = compare(measure(), report["rows"], env["target"])
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "kernel_resources.json"), "w") as f:
        json.dump({"environment": env, "rows": rows}, f, indent=1)
    table = markdown(rows, env)
    with open(os.path.join(args.out, "kernel_resources.md"), "w") as f:
        f.write(table)
    print(table)
    differing = [r for r in rows if r["differs"]]
    unmatched = [r for r in rows if r["offline"] is None]
    print(f"{len(rows)} kernel builds; {len(differing)} differ from the offline report; "
          f"{len(unmatched)} have no offline row for {env['target']}")
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
