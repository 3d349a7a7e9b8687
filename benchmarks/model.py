"""A performance model of the persistent kernels: predicted microseconds per time step,
old design against new, from the kernels' structure and stated hardware constants.

    python benchmarks/model.py            # the table kept in benchmarks/NOTES.md

**Predictions, not measurements.** Every constant below is an assumption (datasheet or
public figures, named); the GPU run replaces them with measurements, and bench_rnn.py
prints the prediction next to each measured persistent case.

New design (kernels/steps.py), per step and SM (one block of 256 threads per SM):
  handoff                grid.sync() or the arrival counter: HANDOFF cycles
  staging                each SM reads all B·K inputs from L2: L2 latency per chunk of
                         k, plus 132·B·K·s bytes at the L2 bandwidth
  products               shared-memory loads: per (group of 4 rows, 32 values of k) and
                         register tile of 4 batch rows, 4 loads of W and one of x per
                         batch row, each x feeding 4 rows: R·K/32·(⌈B/4⌉ + B/4) warp
                         loads of s bytes at 128 B/clock; or the FMAs (R·K·B per SM at
                         128 (fp32) or 64 (fp64) per clock) when they take longer
  reductions             one reduce-scatter of 16 shuffles per (group of 4 rows, slice,
                         register tile of 4 batch rows), 4 schedulers issuing
  gate math              ⌈B·U/256⌉ rounds of GATE cycles (the first one's gx prefetched)
  barriers               3 block barriers per staging
Old design (one thread per (row, unit), a serial dot product of K values per gate):
  ⌈B·U/256⌉ rounds of K·OLD_ITERATION cycles, plus the handoff.
"""
import math
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from numba_rnn import backend, recurrent  # noqa: E402
from numba_rnn.kernels.steps import GPU_SHAPE, GROUP, TILE, layout  # noqa: E402

#: Assumed H100 SXM figures: clock (boost, datasheet 1.98 GHz), SMs, shared-memory
#: bandwidth per SM (128 B/clock), fp32/fp64 FMA per SM per clock (128/64, datasheet
#: rates ÷ SMs ÷ clock), L2 bandwidth (about 5.5 TB/s, public microbenchmarks), L2
#: latency (PERF.md: 200–400 cycles), one grid-wide handoff (PERF.md: ~750 cycles), a
#: block barrier, the gate math of one round, and the old design's cycles per
#: iteration of its serial dot product (12 instructions with dependent shared and L1
#: loads, nothing to hide their latency: PERF.md); the opt-in shared memory of a block
#: less the kernels' 1 KiB static section (kernels.md); the block's shape is the
#: kernels' (steps.GPU_SHAPE).
H100 = {"clock_hz": 1.98e9, "sms": 132, "shared_bytes_per_clock": 128,
        "fma_per_clock": {4: 128, 8: 64}, "l2_bytes_per_s": 5.5e12, "l2_latency": 300,
        "handoff": 750, "barrier": 30, "gate": 300, "old_iteration": 16,
        "max_shared": 227 * 1024 - 1024, **GPU_SHAPE}

GATES = {"lstm": 4, "gru": 3, "rnn": 1}


def plan(cell, hidden, batch, itemsize=4, hw=H100):
    """The persistent kernels' plan on this hardware (recurrent.fit_plan: units per
    block, batch rows staged at once), or None where the weights do not fit on chip."""
    limits = backend.CooperativeLimits(
        hw["sms"], hw["max_shared"], lambda shared: hw["sms"] if shared <= hw["max_shared"] else 0)
    return recurrent.fit_plan(GATES[cell], hidden, itemsize, batch, [limits, limits], True,
                              shape=hw)


def largest_hidden(cell, itemsize=4, hw=H100):
    """The largest H whose weights the persistent kernels keep on chip (at B = 1)."""
    low, high = 1, 1 << 14   # plan(low) fits, plan(high) does not (sizes fit up to a bound)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if plan(cell, middle, 1, itemsize, hw) else (low, middle)
    return low


def new_step_cycles(cell, hidden, batch, direction, itemsize=4, hw=H100):
    """Predicted cycles of one step of the new persistent kernel, with its breakdown, or
    None where the plan does not fit."""
    g = GATES[cell]
    chosen = plan(cell, hidden, batch, itemsize, hw)
    if chosen is None:
        return None
    units, staged = chosen.units, chosen.staged
    rows, width = (g * units, hidden) if direction == "forward" else (units, g * hidden)
    warps = hw["threads"] // hw["lanes"]
    slices, _, held, kept, *_ = layout(rows, width, warps, True, staged,
                                       hw["registers"][itemsize], hw["chunk"], hw["lanes"])
    stagings = -(-batch // staged)
    chunks = -(-width // hw["chunk"])
    tiles = stagings * math.ceil(staged / TILE)
    parts = {
        "handoff": hw["handoff"],
        "staging": stagings * chunks * hw["l2_latency"]
        + hw["sms"] * batch * width * itemsize / hw["l2_bytes_per_s"] * hw["clock_hz"],
        # weights from shared memory (the register rows' first `kept` values excepted)
        "products": max((rows * width - held * kept) / 32 * (tiles + batch / GROUP)
                        * itemsize / 4,
                        rows * width * batch / hw["fma_per_clock"][itemsize]),
        # a reduce-scatter per item and tile, and one per warp and tile for the register rows
        "reductions": (-(-rows // GROUP) * slices + warps) * tiles * 16 / 4,
        "gate math": math.ceil(batch * units / hw["threads"]) * hw["gate"],
        "barriers": 3 * stagings * chunks * hw["barrier"],
    }
    return sum(parts.values()), parts, {"units": units, "staged": staged}


def old_step_cycles(cell, hidden, batch, direction, hw=H100):
    """Predicted cycles of one step of the old persistent kernel (before issue 11)."""
    g = GATES[cell]
    units = -(-hidden // hw["sms"])
    width = hidden if direction == "forward" else g * hidden
    rounds = math.ceil(batch * units / hw["threads"])
    return rounds * width * hw["old_iteration"] + hw["handoff"]


def predicted_us_per_step(cell, hidden, batch, direction, itemsize=4, hw=H100):
    """(old, new) predicted µs per step, or None for a cell this model does not know or
    a size the persistent plan does not fit."""
    if cell not in GATES or plan(cell, hidden, batch, itemsize, hw) is None:
        return None
    new = new_step_cycles(cell, hidden, batch, direction, itemsize, hw)[0]
    old = old_step_cycles(cell, hidden, batch, direction, hw)
    return old / hw["clock_hz"] * 1e6, new / hw["clock_hz"] * 1e6


def table(cases=(("lstm", 256), ("lstm", 512), ("lstm", 1024), ("gru", 512)),
          batches=(1, 8, 32)):
    lines = ["| cell | H | B | direction | old µs/step | new µs/step | new: largest parts |",
             "|---|---|---|---|---|---|---|"]
    for cell, hidden in cases:
        for batch in batches:
            for direction in ("forward", "backward"):
                old, new = predicted_us_per_step(cell, hidden, batch, direction)
                _, parts, chosen = new_step_cycles(cell, hidden, batch, direction)
                top = sorted(parts.items(), key=lambda kv: -kv[1])[:3]
                lines.append(f"| {cell} | {hidden} | {batch} | {direction} | {old:.1f} | "
                             f"{new:.2f} | " + ", ".join(f"{k} {v / H100['clock_hz'] * 1e6:.2f}"
                                                         for k, v in top)
                             + f" (U={chosen['units']}, staged {chosen['staged']}) |")
    return "\n".join(lines)


def coverage():
    """The largest H on the persistent path per cell and dtype, as a Markdown table."""
    lines = ["| cell | float32 | float64 |", "|---|---|---|"]
    for cell in GATES:
        lines.append(f"| {cell} | {largest_hidden(cell, 4)} | {largest_hidden(cell, 8)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print("Predicted µs per step on an H100 SXM, float32 (a model, not a measurement):\n")
    print(table())
    print("\nThe largest H the persistent plan keeps on chip on an H100 SXM (132 SMs, "
          "227 KiB a block; arithmetic from the layout, not a measurement):\n")
    print(coverage())
