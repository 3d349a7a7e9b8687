#!/usr/bin/env bash
# shellcheck disable=SC2329  # the stages are called as "stage_$stage"
# The first GPU run of numba_rnn, in ONE device call of at most 8 minutes (issue 25): run
# it with the device tool's timeout_s=540, from the repository root or anywhere, with
# PYTHONPATH=. and nothing installed (the GPU image has numba, numba-cuda, CuPy, PyTorch).
#
#   benchmarks/gpu_check.sh               the first run: env smoke parity timing launch
#   benchmarks/gpu_check.sh --dry-run     the same without a GPU (CI): the GPU stages run in
#                                         the simulator at tiny sizes, or are skipped
#                                         saying why; under a minute
#   benchmarks/gpu_check.sh --plan        print the stages' time limits and their sum
#   benchmarks/gpu_check.sh STAGE ...     some stages of the first run (env smoke parity
#                                         timing launch), or the older, longer ones for a
#                                         session with more time, each about a call:
#                                         tests bench paths extras cpu
#
# Each stage is one or more processes, each under its own `timeout` (below; the stage's
# limit bounds its processes' together), and each check in them under a watchdog
# (faulthandler, benchmarks/gpu_checks.py): one hung persistent kernel or one
# synchronize() that never returns ends its process, not the call. Every check appends
# a line to OUT/results.jsonl as it starts and as it ends; OUT/summary.md is written
# from whatever finished after every stage, and last. Everything goes under OUT (the
# device tool's folder; default benchmarks/results/DATE-GPUNAME-first-run, a temporary
# folder in a dry run), in at most 8 files: summary.md, results.jsonl, env.txt,
# log.txt, kernel_resources.md, launch_overhead.json.
#
#   env     nvidia-smi, every version, numba.cuda.detect(), the backend numba_rnn picked;
#           stops the run, saying why, if the backend is not cuda or NVVM, nvJitLink,
#           libcudadevrt, cuBLAS or cuRAND cannot be loaded
#   smoke   a numba kernel on CuPy arrays, a CuPy GEMM, DLPack both ways with PyTorch, a
#           cooperative grid-sync kernel on every SM; then the first-call latency
#           (benchmarks/first_call.py, nr.LSTM(128, 128) T=50 B=16 forward+backward) twice,
#           cold (an empty NUMBA_RNN_CACHE_DIR: every kernel compiled) and warm (the same
#           folder: loaded from numba-cuda's disk cache), each in its own process; if
#           either fails, the later stages run with the disk cache off; then each
#           persistent handoff once on a real layer, each in its own process: a handoff
#           that hangs is skipped by every later stage, not retried
#   parity  LSTM, GRU and RNN (tanh), float32 and float64, one process each, in parallel:
#           forward and backward on every path (plain, fused, persistent-grid,
#           persistent-flags last) against torch.nn on cuDNN and the NumPy reference, at
#           H=256, a 2-layer bidirectional stack with unsorted lengths, and a size whose
#           plan asks more than 48 KiB of shared memory; then the driver's registers,
#           shared and local memory of each kernel against the offline report. Beside
#           them, the bridge: numba_rnn.torch on CUDA tensors, default and side stream,
#           forced persistent paths, gradcheck in float64
#   timing  alone on the GPU: LSTM T=100 at H=512 with B=1, 8, 32 and H=1024 with B=8,
#           inference and training, each path in its own process (bench_rnn.py) against
#           cuDNN (TF32 off, and on as a second column), each with a 200-step soak
#   launch  launch_overhead.py, if time is left
#
# The exit status counts the processes that failed (0: all passed).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}

# ---- time limits in seconds: one call; their sum is the call's longest run (< 9 min)
LIMIT_ENV=30          # nvidia-smi 10, then the Python report
LIMIT_SMOKE=155       # the basic checks 40, first call cold 15 and warm 10, each handoff 45
LIMIT_SMOKE_BASIC=40
LIMIT_FIRST_COLD=15
LIMIT_FIRST_WARM=10
LIMIT_HANDOFF=45
LIMIT_PARITY=125      # its processes in parallel, each within it (150 before the
                      # first-call runs took 25 s; the kernel disk cache now gives
                      # lstm-float32 the kernels the smoke stage compiled)
LIMIT_TIMING=140      # each path's process 35
LIMIT_TIMING_PATH=35
LIMIT_LAUNCH=20
LIMIT_SUMMARY=10
TOTAL=$((LIMIT_ENV + LIMIT_SMOKE + LIMIT_PARITY + LIMIT_TIMING + LIMIT_LAUNCH + LIMIT_SUMMARY))
PLAN="env $LIMIT_ENV + smoke $LIMIT_SMOKE + parity $LIMIT_PARITY + timing $LIMIT_TIMING"
PLAN="$PLAN + launch $LIMIT_LAUNCH + summary $LIMIT_SUMMARY = $TOTAL s"
# Watchdogs inside the processes, shorter than their process's limit so that the
# traceback of a hang is printed before the process is killed.
CHECK_TIMEOUT_SMOKE=25
CHECK_TIMEOUT_HANDOFF=20
CHECK_TIMEOUT_PARITY=60
CASE_TIMEOUT_TIMING=30
VARIANTS=(plain fused persistent-grid persistent-flags)
TIMING_CASES=(--case lstm:100:1:512 --case lstm:100:8:512 --case lstm:100:32:512
              --case lstm:100:8:1024)

gpu_name() {
    local name
    name=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
    name=${name:-no-gpu}
    echo "${name// /-}" | tr -cd 'A-Za-z0-9_.-'
}

DRY_RUN=${DRY_RUN:-}
ARGS=()
for arg in "$@"; do
    case $arg in
        --dry-run) DRY_RUN=1 ;;
        --plan) echo "gpu_check plan (time limits, s): $PLAN"; exit 0 ;;
        -h|--help) sed -n '3,51p' "$0"; exit 0 ;;
        *) ARGS+=("$arg") ;;
    esac
done
[ "$TOTAL" -lt 540 ] || { echo "gpu_check: the limits add up to $TOTAL s, over 9 minutes" >&2; exit 1; }

if [ -n "$DRY_RUN" ]; then
    OUT=${OUT:-$(mktemp -d)}
else
    OUT=${OUT:-benchmarks/results/$(date +%F)-$(gpu_name)-first-run}
fi
mkdir -p "$OUT"
RESULTS_FILE="$OUT/results.jsonl"
LOG="$OUT/log.txt"
SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT
FAILED=0
STOPPED=""
HUNG=""
SIM=()   # the workers' environment: in a dry run, the CUDA kernels in the simulator
[ -z "$DRY_RUN" ] || SIM=(NUMBA_RNN_BACKEND=simulator)
DEADLINE=$((TOTAL - LIMIT_SUMMARY))   # no stage runs past it: the summary's time is kept

note() {  # note NAME PART LIMIT ELAPSED RC TEXT: a stage line in the results
    local text=${6//\"/\'}
    printf '{"stage": "%s", "event": "stage", "name": "%s", "part": "%s", "budget_s": %s, "elapsed_s": %s, "rc": "%s", "note": "%s", "dry_run": %s, "time": %s}\n' \
        "$1" "$1" "$2" "$3" "$4" "$5" "$text" "$([ -n "$DRY_RUN" ] && echo true || echo false)" \
        "$(date +%s)" >> "$RESULTS_FILE"
}

left() {  # left STAGE_END: seconds left before the stage's end and the call's deadline
    local end=$1
    [ "$end" -le "$DEADLINE" ] || end=$DEADLINE
    echo $((end - SECONDS))
}

part() {  # part STAGE NAME LIMIT LOGFILE COMMAND...: one process under timeout, tagged log
    local stage=$1 name=$2 limit=$3 logfile=$4
    shift 4
    if [ "$limit" -lt 5 ]; then
        note "$stage" "$name" "$limit" 0 skipped "skipped: no time left in the stage"
        echo "=== $stage $name: skipped (no time left)"
        return 0
    fi
    echo "=== $stage $name (limit $limit s): $*"
    local start=$SECONDS
    timeout -k 5 "$limit" "$@" 2>&1 | sed -u "s/^/[$stage $name] /" | tee -a "$logfile"
    local rc=${PIPESTATUS[0]}
    local why="exit $rc"
    [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ] && why="killed at its limit ($limit s)"
    echo "=== $stage $name: $why after $((SECONDS - start)) s"
    note "$stage" "$name" "$limit" "$((SECONDS - start))" "$rc" "$why"
    [ "$rc" -eq 0 ] || FAILED=$((FAILED + 1))
    return "$rc"
}

skip() {  # skip STAGE NAME REASON
    echo "=== $1 $2: skipped: $3"
    note "$1" "$2" 0 0 skipped "skipped: $3"
}

summary() {
    timeout -k 2 "$LIMIT_SUMMARY" "$PY" benchmarks/gpu_checks.py summary \
        --results "$RESULTS_FILE" --out "$OUT" --plan "$PLAN" "$@" ||
        echo "gpu_check: the summary could not be written" >&2
}

refresh_hung() {
    HUNG=$("$PY" benchmarks/gpu_checks.py hung --results "$RESULTS_FILE" 2>/dev/null)
}

runnable_variants() {  # the variants no earlier stage saw hang
    local v out=()
    for v in "${VARIANTS[@]}"; do
        [[ " $HUNG " == *" $v "* ]] || out+=("$v")
    done
    echo "${out[*]}"
}

# ------------------------------------------------------------------ first-run stages
stage_env() {
    local end=$((SECONDS + LIMIT_ENV)) rc
    { echo "# nvidia-smi"; timeout 10 nvidia-smi 2>&1 || echo "nvidia-smi: not found or failed (no GPU driver here)";
      echo "# uname"; uname -a; echo "# $PY"; command -v "$PY"; "$PY" --version; } > "$OUT/env.txt" 2>&1
    part env report "$(left "$end")" "$OUT/env.txt" "$PY" benchmarks/gpu_checks.py env \
        --results "$RESULTS_FILE" ${DRY_RUN:+--dry-run}
    rc=$?
    if [ "$rc" -ne 0 ] && [ -z "$DRY_RUN" ]; then
        STOPPED="env stopped the run (exit $rc; the reason is in env.txt and summary.md)"
        echo "gpu_check: STOP: $STOPPED"
    fi
}

stage_smoke() {
    local end=$((SECONDS + LIMIT_SMOKE)) limit handoff
    if [ -n "$DRY_RUN" ]; then
        skip smoke basic "dry run: a numba kernel on CuPy arrays, a CuPy GEMM, DLPack and a grid sync need CuPy, PyTorch with CUDA and a GPU"
    else
        limit=$(left "$end"); [ "$limit" -le "$LIMIT_SMOKE_BASIC" ] || limit=$LIMIT_SMOKE_BASIC
        part smoke basic "$limit" "$LOG" "$PY" benchmarks/gpu_checks.py smoke \
            --results "$RESULTS_FILE" --check-timeout "$CHECK_TIMEOUT_SMOKE"
    fi
    stage_first_call "$end"
    for handoff in grid flags; do
        limit=$(left "$end"); [ "$limit" -le "$LIMIT_HANDOFF" ] || limit=$LIMIT_HANDOFF
        part smoke "handoff-$handoff" "$limit" "$LOG" env ${SIM[@]+"${SIM[@]}"} "$PY" benchmarks/gpu_checks.py handoff \
            --handoff "$handoff" --results "$RESULTS_FILE" \
            --check-timeout "$CHECK_TIMEOUT_HANDOFF" ${DRY_RUN:+--tiny}
    done
    refresh_hung
    [ -z "$HUNG" ] || echo "gpu_check: hung, skipped from here on: $HUNG"
}

stage_first_call() {  # stage_first_call END: cold, then warm, in a kernel cache of their own
    local end=$1 limit tag rc=0 folder="$SCRATCH/first-call-cache" where=()
    mkdir -p "$folder"
    # the dry run: the CPU path, whose kernels compile for real (the simulator's do not),
    # its plain path (the region's first compile, ~20 s, would not fit the 15 s limit)
    [ -z "$DRY_RUN" ] || where=(NUMBA_RNN_BACKEND=cpu)
    for tag in cold warm; do
        if [ "$tag" = cold ]; then limit=$LIMIT_FIRST_COLD; else limit=$LIMIT_FIRST_WARM; fi
        [ "$(left "$end")" -ge "$limit" ] || limit=$(left "$end")
        part smoke "first-call-$tag" "$limit" "$LOG" env ${where[@]+"${where[@]}"} \
            NUMBA_RNN_CACHE_DIR="$folder" "$PY" benchmarks/first_call.py \
            ${DRY_RUN:+--input 3 --hidden 4 --steps 2 --batch 2 --path plain} \
            --jsonl "$RESULTS_FILE" --tag "first-call-$tag" || rc=1
    done
    if [ "$rc" -ne 0 ]; then
        export NUMBA_RNN_CACHE_DIR=""
        echo "gpu_check: a first-call run failed: the later stages run with the kernel disk cache off"
    fi
}

stage_parity() {
    local end=$((SECONDS + LIMIT_PARITY)) limit cell dtype variants jobs=() job pids=() pid
    variants=$(runnable_variants)
    variants=${variants// /,}
    limit=$(left "$end")
    # several processes share the machine's cores: few threads each
    export OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 MKL_NUM_THREADS=2 NUMBA_NUM_THREADS=2
    if [ -n "$DRY_RUN" ]; then
        skip parity resources "dry run: the driver's kernel figures need a GPU"
        jobs=("lstm float64 --tiny --variants ${variants/fused,/}")
    else
        for cell in lstm gru rnn_tanh; do
            for dtype in float32 float64; do
                jobs+=("$cell $dtype --variants $variants")
            done
        done
    fi
    for job in "${jobs[@]}"; do
        # shellcheck disable=SC2086  # job: words
        set -- $job
        cell=$1 dtype=$2
        shift 2
        part parity "$cell-$dtype" "$limit" "$LOG" env ${SIM[@]+"${SIM[@]}"} "$PY" \
            benchmarks/gpu_checks.py parity --cell "$cell" --dtype "$dtype" "$@" \
            --results "$RESULTS_FILE" --check-timeout "$CHECK_TIMEOUT_PARITY" &
        pids+=($!)
    done
    # the bridge beside them (in a dry run: CPU tensors in the simulator, tiny sizes)
    # shellcheck disable=SC2086  # HUNG: words
    part parity bridge "$limit" "$LOG" env ${SIM[@]+"${SIM[@]}"} "$PY" \
        benchmarks/gpu_checks.py bridge ${DRY_RUN:+--device cpu --tiny} \
        --results "$RESULTS_FILE" --check-timeout "$CHECK_TIMEOUT_PARITY" --skip $HUNG &
    pids+=($!)
    for pid in "${pids[@]}"; do
        wait "$pid" || FAILED=$((FAILED + 1))
    done
    unset OMP_NUM_THREADS OPENBLAS_NUM_THREADS MKL_NUM_THREADS NUMBA_NUM_THREADS
    refresh_hung
    [ -z "$HUNG" ] || echo "gpu_check: hung, skipped from here on: $HUNG"
}

stage_timing() {
    local end=$((SECONDS + LIMIT_TIMING)) limit variant path handoff extra first=1
    if [ -n "$DRY_RUN" ]; then
        part timing simulator "$(left "$end")" "$LOG" "$PY" benchmarks/bench_rnn.py \
            --device simulator --case lstm:100:1:512 --modes training --soak 2 --no-progress \
            --jsonl "$RESULTS_FILE" --tag timing-simulator --case-timeout 60 \
            --out "$SCRATCH/bench-simulator"
        return
    fi
    for variant in $(runnable_variants); do
        path=${variant%%-*}
        handoff=grid
        [ "$variant" != persistent-flags ] || handoff=flags
        extra=()
        [ -n "$first" ] || extra=(--no-cudnn-timing)   # cuDNN is timed by the first path's run
        first=""
        limit=$(left "$end"); [ "$limit" -le "$LIMIT_TIMING_PATH" ] || limit=$LIMIT_TIMING_PATH
        part timing "$variant" "$limit" "$LOG" "$PY" benchmarks/bench_rnn.py "${TIMING_CASES[@]}" \
            --path "$path" --handoff "$handoff" --repeats 20 --warmup 3 --soak 200 \
            --no-progress "${extra[@]}" --jsonl "$RESULTS_FILE" --tag "timing-$variant" \
            --case-timeout "$CASE_TIMEOUT_TIMING" --out "$SCRATCH/bench-$variant"
    done
}

stage_launch() {
    local limit
    limit=$(left $((SECONDS + LIMIT_LAUNCH)))
    if [ "$limit" -lt 12 ]; then
        skip launch overhead "no time left ($limit s)"
        return
    fi
    part launch overhead "$limit" "$LOG" "$PY" benchmarks/launch_overhead.py --out "$OUT"
}

# ------------------------------------------------ older stages (a session with more time)
RESULTS=${RESULTS:-benchmarks/results/$(date +%F)-$(gpu_name)}
QUICK_ARGS=()
[ -z "${QUICK:-}" ] || QUICK_ARGS=(--quick)
LEGACY_LIMIT=590   # one device call each

step() {  # step NAME COMMAND...: run under the legacy limit, log to RESULTS/NAME.log
    local name=$1
    shift
    mkdir -p "$RESULTS"
    echo "=== $name: $*"
    local start=$SECONDS
    timeout -k 10 "$LEGACY_LIMIT" "$@" 2>&1 | tee "$RESULTS/$name.log"
    local status=${PIPESTATUS[0]}
    echo "=== $name: exit $status after $((SECONDS - start)) s"
    [ "$status" -eq 0 ] || FAILED=$((FAILED + 1))
}

pack() {  # pack STAGE: the stage's results into OUT
    tar czf "$OUT/gpu_check-$1.tar.gz" -C "$RESULTS" .
    find "$RESULTS" -maxdepth 2 -name '*.md' -newer "$RESULTS/.stage-$1" | sort |
        while read -r table; do echo "## ${table#"$RESULTS"/}"; echo; cat "$table"; echo; done \
        > "$OUT/gpu_check-$1.md"
}

legacy() {
    mkdir -p "$RESULTS"
    touch "$RESULTS/.stage-$1"
    case $1 in
        tests) step tests "$PY" -m pytest -q -p no:cacheprovider --durations=25 -r fEs ;;
        bench) step bench-auto "$PY" benchmarks/bench_rnn.py --soak 1000 --no-progress \
                   ${QUICK_ARGS[@]+"${QUICK_ARGS[@]}"} --out "$RESULTS/bench-auto" ;;
        paths)
            for path in plain fused persistent; do
                step "bench-$path" "$PY" benchmarks/bench_rnn.py --path "$path" --soak 200 \
                    --no-progress ${QUICK_ARGS[@]+"${QUICK_ARGS[@]}"} --out "$RESULTS/bench-$path"
            done
            step bench-persistent-flags "$PY" benchmarks/bench_rnn.py --path persistent \
                --handoff flags --soak 200 --no-progress ${QUICK_ARGS[@]+"${QUICK_ARGS[@]}"} \
                --out "$RESULTS/bench-persistent-flags" ;;
        extras)
            step launch-overhead "$PY" benchmarks/launch_overhead.py --out "$RESULTS/launch"
            step kernel-resources "$PY" benchmarks/kernel_resources.py --out "$RESULTS/resources"
            step adding-problem "$PY" examples/adding_problem.py --full --no-progress \
                --out "$RESULTS/adding" ;;
        cpu) step bench-cpu env NUMBA_RNN_BACKEND=cpu "$PY" benchmarks/bench_rnn.py \
                 --device cpu --no-progress ${QUICK_ARGS[@]+"${QUICK_ARGS[@]}"} --out "$RESULTS/bench-cpu" ;;
    esac
    pack "$1"
}

# ------------------------------------------------------------------------- main
STAGES=("${ARGS[@]+"${ARGS[@]}"}")
[ ${#STAGES[@]} -gt 0 ] || STAGES=(env smoke parity timing launch)
for stage in "${STAGES[@]}"; do
    case $stage in
        env|smoke|parity|timing|launch|tests|bench|paths|extras|cpu) ;;
        *) echo "gpu_check: unknown stage $stage (env smoke parity timing launch; tests bench paths extras cpu)" >&2
           exit 1 ;;
    esac
done
echo "gpu_check: stages ${STAGES[*]}${DRY_RUN:+ (DRY RUN: no GPU)}; results in $OUT; plan: $PLAN"
FIRST_RUN=""
for stage in "${STAGES[@]}"; do
    case $stage in
        tests|bench|paths|extras|cpu) legacy "$stage"; continue ;;
    esac
    FIRST_RUN=1
    if [ -n "$STOPPED" ] && [ "$stage" != env ]; then
        skip "$stage" all "$STOPPED"
    elif [ "$SECONDS" -ge "$DEADLINE" ]; then
        skip "$stage" all "the call's deadline ($DEADLINE s) has passed"
    else
        "stage_$stage"
    fi
    summary   # after every stage: a kill later still leaves one
done
if [ -n "$FIRST_RUN" ]; then
    summary --print
    echo "gpu_check: results in $OUT ($(find "$OUT" -type f | wc -l) files); $FAILED process(es) failed; $SECONDS s"
else
    echo "gpu_check: results in $RESULTS; $FAILED step(s) failed"
fi
exit "$FAILED"
