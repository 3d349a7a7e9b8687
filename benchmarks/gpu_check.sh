#!/usr/bin/env bash
# One command for a session with a GPU (issue 12): versions, the whole test suite on the
# GPU, the benchmarks on every kernel path and handoff, the launch cost, each kernel's
# registers and shared memory from the driver next to the offline compile report, and
# the adding problem at full size. Run from anywhere; it works in the repository root
# with PYTHONPATH=. (the GPU image has numba, numba-cuda, CuPy and PyTorch: nothing is
# installed).
#
#   benchmarks/gpu_check.sh [STAGE ...]      stages: env tests bench paths extras cpu,
#                                            or all (the default: every stage but cpu)
#
# A device call runs at most 10 minutes, so a session runs the stages in a few calls,
# e.g. `env tests`, then `bench`, then `paths extras` (device time is 30 minutes a
# session: each call pays a start). Results go to RESULTS (default
# benchmarks/results/DATE-GPUNAME/), one folder or log per step; where OUT is set (the
# device tool's folder that comes back), each stage's results are also packed into
# OUT/gpu_check-STAGE.tar.gz, and its Markdown tables into OUT/gpu_check-STAGE.md.
# QUICK=1 passes --quick to the benchmarks (first and last case of each set). The exit
# status is the number of steps that failed (0: all passed).
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

gpu_name() {
    local name
    name=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
    name=${name:-no-gpu}
    echo "${name// /-}" | tr -cd 'A-Za-z0-9_.-'
}

RESULTS=${RESULTS:-benchmarks/results/$(date +%F)-$(gpu_name)}
QUICK_FLAG=${QUICK:+--quick}
mkdir -p "$RESULTS"
FAILED=0

step() {  # step NAME COMMAND...: run, log to RESULTS/NAME.log, count a failure
    local name=$1
    shift
    echo "=== $name: $*"
    local start=$SECONDS
    "$@" 2>&1 | tee "$RESULTS/$name.log"
    local status=${PIPESTATUS[0]}
    echo "=== $name: exit $status after $((SECONDS - start)) s"
    [ "$status" -eq 0 ] || FAILED=$((FAILED + 1))
}

pack() {  # pack STAGE: the stage's results into OUT, where the device tool reads them
    [ -n "${OUT:-}" ] || return 0
    tar czf "$OUT/gpu_check-$1.tar.gz" -C "$RESULTS" .
    # the stage's tables in one file (the tool brings back few files a call)
    find "$RESULTS" -maxdepth 2 -name '*.md' -newer "$RESULTS/.stage-$1" | sort |
        while read -r table; do echo "## ${table#"$RESULTS"/}"; echo; cat "$table"; echo; done \
        > "$OUT/gpu_check-$1.md"
}

versions() {
    nvidia-smi || echo "nvidia-smi: not found (no GPU driver here)"
    python3 - <<'EOF'
import importlib, platform
print("python", platform.python_version())
for name in ("numpy", "numba", "numba_cuda", "cupy", "torch"):
    try:
        module = importlib.import_module(name)
        print(name, getattr(module, "__version__", "?"))
    except Exception as exc:
        print(name, "not importable:", type(exc).__name__)
try:
    import torch
    print("torch cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version(),
          "gpu", torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)
except Exception as exc:
    print("torch cuda: not available:", type(exc).__name__)
try:
    import cupy
    print("cupy runtime", cupy.cuda.runtime.runtimeGetVersion(),
          "driver", cupy.cuda.runtime.driverGetVersion())
except Exception as exc:
    print("cupy cuda: not available:", type(exc).__name__)
import numba_rnn as nr
print("numba_rnn backend", nr.backend_name(), "available", nr.available_backends())
EOF
}

bench() {  # the automatic choice, every set, with the soak (no growth allowed on a GPU)
    step bench-auto python3 benchmarks/bench_rnn.py --soak 1000 --no-progress $QUICK_FLAG \
        --out "$RESULTS/bench-auto"
}

paths() {  # every path forced, both handoffs of the persistent kernels
    for path in plain fused persistent; do
        step "bench-$path" python3 benchmarks/bench_rnn.py --path "$path" --soak 200 \
            --no-progress $QUICK_FLAG --out "$RESULTS/bench-$path"
    done
    step bench-persistent-flags python3 benchmarks/bench_rnn.py --path persistent \
        --handoff flags --soak 200 --no-progress $QUICK_FLAG \
        --out "$RESULTS/bench-persistent-flags"
}

extras() {
    step launch-overhead python3 benchmarks/launch_overhead.py --out "$RESULTS/launch"
    step kernel-resources python3 benchmarks/kernel_resources.py --out "$RESULTS/resources"
    step adding-problem python3 examples/adding_problem.py --full --no-progress \
        --out "$RESULTS/adding"
}

cpu() {  # the CPU path against PyTorch on this machine's cores (CPU figures)
    step bench-cpu env NUMBA_RNN_BACKEND=cpu python3 benchmarks/bench_rnn.py --device cpu \
        --no-progress $QUICK_FLAG --out "$RESULTS/bench-cpu"
}

STAGES=("$@")
[ ${#STAGES[@]} -gt 0 ] || STAGES=(all)
[ "${STAGES[*]}" = all ] && STAGES=(env tests bench paths extras)
for stage in "${STAGES[@]}"; do
    touch "$RESULTS/.stage-$stage"
    case $stage in
        env) step versions versions ;;
        tests) step tests python3 -m pytest -q -p no:cacheprovider --durations=25 -r fEs ;;
        bench) bench ;;
        paths) paths ;;
        extras) extras ;;
        cpu) cpu ;;
        *) echo "gpu_check: unknown stage $stage (env tests bench paths extras cpu all)" >&2
           FAILED=$((FAILED + 1)); continue ;;
    esac
    pack "$stage"
done
echo "gpu_check: results in $RESULTS; $FAILED step(s) failed"
exit "$FAILED"
