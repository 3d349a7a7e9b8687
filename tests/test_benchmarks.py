"""The benchmark scripts: the simulator's correctness run end to end (fields of
BENCHMARKS.md, the soak, the exit status when a check fails), the case sets, the floors
and the ratio table. Timings themselves only come from a GPU run."""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from numba_rnn import backend

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
FIELDS = {"cell", "T", "B", "I", "H", "layers", "directions", "dtype", "mode",
          "implementation", "median_ms", "p10_ms", "p90_ms", "peak_bytes", "max_abs_err"}


def load(script):
    """A script of benchmarks/ as a module."""
    spec = importlib.util.spec_from_file_location(script[:-3], BENCHMARKS / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_bench():
    return load("bench_rnn.py")


def run(script, *args):
    done = subprocess.run([sys.executable, str(BENCHMARKS / script), *args],
                          capture_output=True, text=True, timeout=600,
                          cwd=BENCHMARKS.parent)
    return done.returncode, done.stdout


@pytest.mark.skipif(backend.backend_name() != "simulator", reason="the simulator's run")
def test_correctness_run_in_the_simulator(tmp_path):
    code, out = run("bench_rnn.py", "--device", "simulator", "--sets", "small,stack", "--quick", "--soak", "5",
                    "--no-progress", "--out", str(tmp_path))
    assert code == 0, out
    assert "CORRECTNESS RUN" in out and "no speed claims" in out
    result = json.loads((tmp_path / "results.json").read_text())
    assert result["kind"].startswith("simulator correctness run")
    records = result["records"]
    assert len(records) == (4 + 1) * 2  # small: 2 cells × first and last; stack; 2 modes
    for r in records:
        assert FIELDS <= set(r), FIELDS - set(r)
        assert r["median_ms"] is None and r["passed"] is True
        assert r["reference_relative_error"] < 1e-4 and r["path"] == "plain"
    assert {(r["layers"], r["directions"]) for r in records} == {(1, 1), (2, 2)}
    assert result["soak"]["passed"] and result["soak"]["steps"] == 5
    assert (tmp_path / "results.md").read_text().startswith("**Correctness run")
    for key in ("numba", "numba-cuda", "numpy", "device", "date"):
        assert result["environment"][key]


@pytest.mark.skipif(backend.backend_name() != "simulator", reason="the simulator's run")
def test_forced_path_in_the_correctness_run(tmp_path):
    code, out = run("bench_rnn.py", "--device", "simulator", "--sets", "deepbench", "--path", "persistent",
                    "--handoff", "flags", "--soak", "3", "--no-progress", "--out", str(tmp_path))
    assert code == 0, out
    result = json.loads((tmp_path / "results.json").read_text())
    assert result["path"] == "persistent" and result["handoff"] == "flags"
    assert result["soak"]["passed"]   # the soak runs where the cases ran, on that path
    assert all(r["path"] == "persistent" and r["passed"] for r in result["records"])


@pytest.mark.skipif(backend.backend_name() != "simulator", reason="the simulator's run")
def test_a_failed_check_fails_the_run(tmp_path, monkeypatch):
    bench = load_bench()
    real = bench.reference_of

    def wrong(ours):
        expected = real(ours)
        expected["output"] = expected["output"] + 1e-2
        return expected

    monkeypatch.setattr(bench, "reference_of", wrong)
    assert bench.main(["--sets", "stack", "--modes", "inference", "--no-progress",
                       "--out", str(tmp_path)]) == 1
    record, = json.loads((tmp_path / "results.json").read_text())["records"]
    assert record["passed"] is False


def test_case_sets_follow_benchmarks_md():
    bench = load_bench()
    args = bench.parse([])
    cases = bench.select_cases(args)
    assert len(cases) == 18 + 8 + 3 + 1
    assert {(c.T, c.B, c.H) for c in cases if c.set == "deepbench"} == {
        (25, 64, 512), (25, 64, 1024), (150, 16, 256)}
    small = [c for c in cases if c.set == "small"]
    assert {c.B for c in small} == {1, 8, 32} and {c.H for c in small} == {256, 512, 1024}
    assert all(c.I == c.H for c in cases)
    stack, = [c for c in cases if c.set == "stack"]
    assert (stack.layers, stack.directions, stack.B) == (2, 2, 64)
    quick = bench.select_cases(bench.parse(["--quick", "--cells", "gru"]))
    assert [(c.set, c.B, c.H) for c in quick] == [("small", 1, 256), ("small", 32, 1024),
                                                  ("large", 64, 512), ("large", 256, 1024)]
    assert bench.parse(["--quick"]).repeats == 20 and args.repeats == 50


@pytest.mark.parametrize("argv", [["--sets", "huge"], ["--cells", "lstm,rnn"], ["--repeats", "5"],
                                  ["--path", "fast"]])
def test_bad_options_are_refused(argv):
    bench = load_bench()
    with pytest.raises(SystemExit):
        bench.parse(argv)


def test_floor_by_hand():
    bench = load_bench()
    spec = (2e12, 50e12, "test GPU")  # 2 TB/s, 50 TFLOP/s
    case = bench.Case("small", "lstm", 100, 1, 256, 256, 1, 1)
    # B=1: reading W_hh (4·256·256·4 bytes = 1 MiB) takes 0.524 µs, more than its GEMM
    w_hh = 4 * 256 * 256 * 4 / 2e12
    inputs = 2 * 100 * 1 * 256 * 4 * 256 / 50e12
    assert bench.floor_ms(case, "inference", spec) == pytest.approx(1e3 * (100 * w_hh + inputs))
    assert bench.floor_ms(case, "training", spec) == pytest.approx(1e3 * (200 * w_hh + 3 * inputs))
    big = case._replace(B=256)  # B=256: the GEMM (2·256·4·256² FLOP) outlasts the read
    gemm = 2 * 256 * 4 * 256 * 256 / 50e12
    assert bench.floor_ms(big, "inference", spec) == pytest.approx(
        1e3 * (100 * gemm + 256 * inputs))
    assert bench.floor_ms(case, "training", None) is None


def test_ratio_table_divides_ours_by_cudnn():
    bench = load_bench()
    case = bench.Case("large", "gru", 100, 64, 512, 512, 1, 1)
    records = [bench.record(case, "training", "numba_rnn", median_ms=3.0, p10_ms=2.9,
                            p90_ms=3.2, peak_bytes=2 * 2**20, floor_ms=0.5, path="fused"),
               bench.record(case, "training", "cudnn", median_ms=2.0, p10_ms=1.9, p90_ms=2.1,
                            peak_bytes=2**20, floor_ms=0.5),
               bench.record(case, "training", "cudnn_tf32_default", median_ms=1.5,
                            p10_ms=1.4, p90_ms=1.6, floor_ms=0.5)]
    env = {"device": "test", "numba": "x", "numba-cuda": "y", "date": "today"}
    table = bench.ratio_table(records, env)
    row = table.strip().splitlines()[-1]
    assert "| large | gru | 100 | 64 | 512 | 1×1 | training | fused | 3.000 (2.900–3.200) |  |  | " \
           "2.000 | **1.50** | 1.500 | 0.500 | 2.0 / 1.0 |" == row


def test_the_model_prediction_sits_beside_persistent_runs():
    """bench_rnn.py prints benchmarks/model.py's prediction (T steps per layer and
    direction, forward and in training backward) next to a persistent measurement."""
    bench = load_bench()
    case = bench.Case("small", "lstm", 100, 8, 512, 512, 1, 1)
    forward = bench.predicted_us_per_step("lstm", 512, 8, "forward")[1]
    backward = bench.predicted_us_per_step("lstm", 512, 8, "backward")[1]
    assert bench.predicted_ms(case, "inference", "persistent") == pytest.approx(0.1 * forward)
    assert bench.predicted_ms(case, "training", "persistent") == pytest.approx(
        0.1 * (forward + backward))
    assert bench.predicted_ms(case, "training", "plain") is None
    old, new = bench.predicted_us_per_step("lstm", 512, 1, "forward")
    assert new < old   # the redesign is predicted to win at B=1 (a model, not a timing)


def test_launch_overhead_needs_a_gpu():
    code, out = run("launch_overhead.py")
    assert code == 0
    if backend.backend_name() == "simulator":
        assert "no GPU" in out and "nothing measured" in out


def test_percentiles():
    bench_common = importlib.util.spec_from_file_location("common", BENCHMARKS / "common.py")
    module = importlib.util.module_from_spec(bench_common)
    bench_common.loader.exec_module(module)
    summary = module.percentiles(np.arange(1, 22))
    assert summary == {"median_ms": 11.0, "p10_ms": 3.0, "p90_ms": 19.0, "repeats": 21}


@pytest.mark.skipif(backend.backend_name() != "simulator", reason="the simulator's run")
def test_a_case_the_forced_path_cannot_run_is_recorded_and_the_run_goes_on(tmp_path, monkeypatch):
    from numba_rnn.rnn import plan as planning  # where choose_path and the path read it
    bench = load_bench()
    real = planning.persistent_plan

    def plan(cell, hidden, dtype, batch=1, *rest):  # the GRU's weights do not fit; the LSTM's do
        return None if cell.name == "gru" else real(cell, hidden, dtype, batch, *rest)

    monkeypatch.setattr(planning, "persistent_plan", plan)
    assert bench.main(["--sets", "small", "--quick", "--path", "persistent", "--no-progress",
                       "--out", str(tmp_path)]) == 0
    records = json.loads((tmp_path / "results.json").read_text())["records"]
    refused = [r for r in records if r.get("not_runnable")]
    assert refused and all(r["cell"] == "gru" for r in refused)
    assert all("fit in the shared memory" in r["not_runnable"] for r in refused)
    ran = [r for r in records if not r.get("not_runnable")]
    assert ran and all(r["cell"] == "lstm" and r["passed"] for r in ran)
    assert "not runnable" in (tmp_path / "results.md").read_text()


@pytest.mark.skipif(backend.backend_name() != "simulator", reason="the simulator's run")
def test_the_bridge_is_checked_in_the_correctness_run(tmp_path):
    pytest.importorskip("torch")
    bench = load_bench()
    assert bench.main(["--sets", "stack", "--bridge", "--no-progress", "--out", str(tmp_path)]) == 0
    for r in json.loads((tmp_path / "results.json").read_text())["records"]:
        assert r["bridge_relative_error"] < 1e-4 and r["passed"]


def test_cpu_run_times_both_sides_after_checking_them(tmp_path):
    """--device cpu: the CPU path against PyTorch on the CPU, both dtypes, a record per
    side with wall-clock percentiles, the table saying these are CPU figures."""
    pytest.importorskip("torch")
    if "cpu" not in backend.available_backends():
        pytest.skip("no CPU path where storage is on a GPU")
    bench = load_bench()
    # one small case, so that the run is seconds (the cases: test_cpu_sets_scale_the_gpu_sets)
    bench.CPU_SETS = {"small": [bench.Case("small", "gru", 5, 2, 3, 4, 1, 1)]}
    assert bench.main(["--device", "cpu", "--sets", "small", "--cells", "gru",
                       "--repeats", "20", "--warmup", "1", "--no-progress",
                       "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "results.json").read_text())
    assert result["kind"] == "cpu benchmark"
    records = result["records"]
    assert {(r["implementation"], r["dtype"], r["mode"]) for r in records} == {
        (i, d, m) for i in ("numba_rnn", "torch_cpu") for d in ("float32", "float64")
        for m in ("inference", "training")}
    for r in records:
        assert FIELDS <= set(r) and r["median_ms"] > 0 and r["repeats"] == 20
        assert r["p10_ms"] <= r["median_ms"] <= r["p90_ms"]
    assert all(r["relative_error"] < 1e-4 for r in records if r["implementation"] == "numba_rnn")
    table = (tmp_path / "results.md").read_text()
    assert table.startswith("**CPU figures**") and "nothing here was run on a GPU" in table
    assert result["environment"]["threads"] == result["environment"]["torch_threads"]


def test_cpu_sets_scale_the_gpu_sets():
    """The CPU's sets are BENCHMARKS.md's with the same names, cells, lengths and stack
    shapes, only smaller widths and batches."""
    bench = load_bench()
    assert set(bench.CPU_SETS) == set(bench.SETS)
    for name, cases in bench.CPU_SETS.items():
        gpu = bench.SETS[name]
        assert {c.cell for c in cases} == {c.cell for c in gpu}
        assert {(c.T, c.layers, c.directions) for c in cases} <= \
            {(c.T, c.layers, c.directions) for c in gpu}
        assert max(c.H for c in cases) <= max(c.H for c in gpu)
        assert all(c.I == c.H for c in cases)


def test_kernel_resources_matches_the_offline_report():
    """kernel_resources.py (run on a GPU) matches each build the driver reports to the
    offline report's row for the device's target, and names the figures that differ."""
    resources = load("kernel_resources.py")
    report = json.loads((BENCHMARKS / "results" / "kernels" / "kernels.json").read_text())
    row = next(r for r in report["rows"]
               if r["kernel"] == "persistent_forward" and r["target"] == "sm_90")
    same = {k: row[k] for k in ("kernel", "cell", "path", "dtype", "signature", "registers",
                                "static_shared", "local")}
    more = dict(same, registers=row["registers"] + 8)
    rows = resources.compare([same, more], report["rows"], "sm_90")
    assert [r["differs"] for r in rows] == [[], ["registers"]]
    assert rows[0]["offline"]["registers"] == row["registers"]
    assert resources.compare([same], report["rows"], "sm_75")[0]["offline"] is None
    table = resources.markdown(rows, {"device": "test", "target": "sm_90", "versions": ""})
    assert f"{row['registers'] + 8} / {row['registers']}" in table and "| registers |" in table


@pytest.mark.skipif(backend.backend_name() == "cuda", reason="the run without a GPU")
def test_kernel_resources_without_a_gpu(tmp_path):
    code, out = run("kernel_resources.py", "--out", str(tmp_path))
    assert code == 0 and "no GPU here" in out, out


GPU_CHECK = BENCHMARKS / "gpu_check.sh"


def _gpu_check(*args, timeout=180, **env):
    environment = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    environment.update(PYTHON=sys.executable, **env)
    return subprocess.run(["bash", str(GPU_CHECK), *args], env=environment,
                          capture_output=True, text=True, timeout=timeout,
                          cwd=BENCHMARKS.parent)


def _limits():
    """The LIMIT_* assignments of gpu_check.sh."""
    import re
    return {name: int(value) for name, value in
            re.findall(r"^(LIMIT_\w+)=(\d+)", GPU_CHECK.read_text(), re.MULTILINE)}


def test_gpu_check_plan_fits_one_call():
    """The first run is one device call (timeout_s=540): every stage's limit is written
    in the script, each stage's parts fit its limit, and the sum is under 9 minutes."""
    limits = _limits()
    stages = ["LIMIT_ENV", "LIMIT_SMOKE", "LIMIT_PARITY", "LIMIT_TIMING", "LIMIT_LAUNCH",
              "LIMIT_SUMMARY"]
    total = sum(limits[s] for s in stages)
    assert total <= 480 < 540
    assert limits["LIMIT_SMOKE"] >= limits["LIMIT_SMOKE_BASIC"] + 2 * limits["LIMIT_HANDOFF"]
    assert limits["LIMIT_TIMING"] >= 4 * limits["LIMIT_TIMING_PATH"]   # one process a path
    done = _gpu_check("--plan", timeout=30)
    assert done.returncode == 0 and done.stdout.strip().endswith(f"= {total} s"), done.stdout
    bad = _gpu_check("nonsense", timeout=30)
    assert bad.returncode == 1 and "unknown stage nonsense" in bad.stderr


@pytest.mark.skipif(backend.backend_name() == "cuda", reason="a GPU runs the real thing")
def test_gpu_check_dry_run(tmp_path):
    """benchmarks/gpu_check.sh --dry-run, as CI runs it: every stage, the GPU-only parts
    skipped saying why, the handoffs, a parity worker, the bridge and bench_rnn.py in the
    simulator at tiny sizes, the results as JSON lines, summary.md last, at most 8 files
    in OUT (what the device tool brings back)."""
    gpu_checks = load("gpu_checks.py")
    out = tmp_path / "out"
    done = _gpu_check("--dry-run", OUT=str(out))
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    files = sorted(p.name for p in out.rglob("*") if p.is_file())
    assert len(files) <= 8 and {"summary.md", "results.jsonl", "env.txt", "log.txt"} <= set(files)
    lines = gpu_checks.read_results(str(out / "results.jsonl"))
    stages = [line for line in lines if line["event"] == "stage"]
    assert {s["name"] for s in stages} == {"env", "smoke", "parity", "timing", "launch"}
    for s in stages:
        assert s["rc"] in ("0", "skipped"), s
        assert s["rc"] == "0" or s["note"].startswith("skipped: dry run: "), s
    assert gpu_checks.unfinished(lines) == []
    checks = {line["check"]: line for line in lines if line["event"] == "done"}
    bridge = ("bridge-forced-persistent-flags", "bridge-gradcheck-float64")
    try:
        import torch  # noqa: F401
    except ImportError:  # the README's test command runs without PyTorch too
        assert checks["bridge"]["status"] == "skipped", checks["bridge"]
        bridge = ()
    for name in ("handoff-grid", "handoff-flags", "lstm-float64-persistent-flags-stack",
                 *bridge):
        assert checks[name]["status"] == "ok", checks[name]
    assert checks["environment"]["status"] == "skipped"       # no GPU: said, not stopped
    assert [line for line in lines if line["event"] == "record"]     # bench_rnn.py's
    summary = (out / "summary.md").read_text()
    assert summary.startswith("# First GPU run: summary (DRY RUN")
    assert "## Checks that did not finish" in summary and "## Timing" in summary
    assert "gpu_check: results in" in done.stdout and summary.splitlines()[0] in done.stdout


def test_a_hung_check_is_named_and_its_variant_skipped(tmp_path):
    """A check that overruns its watchdog ends its process (faulthandler, every thread's
    traceback on stderr); its start line without a done line names it, and its variant is
    skipped by later stages, unless it never got past its plan (still compiling)."""
    gpu_checks = load("gpu_checks.py")
    results = tmp_path / "results.jsonl"
    code = ("import sys, time\n"
            f"sys.path.insert(0, {str(BENCHMARKS)!r})\n"
            "import gpu_checks\n"
            f"r = gpu_checks.Results({str(results)!r}, 'parity', tag='lstm-float32')\n"
            "with r.check('slow-compile', 30, variant='fused', phased=True) as o:\n"
            "    pass\n"
            "with r.check('spin', 1, variant='persistent-flags', phased=True) as o:\n"
            "    r.progress('spin', 1, phase='planned')\n"
            "    time.sleep(30)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode != 0 and "Timeout" in done.stderr, done.stderr
    lines = gpu_checks.read_results(str(results))
    assert [e["check"] for e in gpu_checks.unfinished(lines)] == ["spin"]
    assert gpu_checks.hung_variants(lines) == ["persistent-flags"]
    compiling = dict(lines[-2], check="other", variant="fused", event="start")
    assert gpu_checks.hung_variants(lines + [compiling]) == ["persistent-flags"]
    summary = gpu_checks.summary_markdown(lines)
    assert "spin (variant persistent-flags: skipped by every later stage)" in summary


def test_the_summary_sets_each_path_beside_cudnn():
    gpu_checks = load("gpu_checks.py")
    bench = load_bench()
    case = bench.Case("case", "lstm", 100, 8, 512, 512, 1, 1)
    lines = [dict(bench.record(case, "training", "cudnn", median_ms=2.0), event="record",
                  tag="timing-plain"),
             dict(bench.record(case, "training", "cudnn_tf32_default", median_ms=1.5),
                  event="record", tag="timing-plain"),
             dict(bench.record(case, "training", "numba_rnn", median_ms=4.0), event="record",
                  tag="timing-plain"),
             dict(bench.record(case, "training", "numba_rnn", median_ms=1.0), event="record",
                  tag="timing-persistent-flags")]
    table = gpu_checks.timing_table(lines)
    assert table[0] == ("| case | mode | cuDNN ms | cuDNN TF32 ms | plain ms (ratio) | "
                        "persistent-flags ms (ratio) |")
    assert table[2] == ("| lstm T=100 B=8 H=512 1×1 | training | 2.000 | 1.500 | "
                        "4.000 (2.00) | 1.000 (0.50) |")


def test_cases_by_shape():
    bench = load_bench()
    one, = bench.select_cases(bench.parse(["--case", "gru:50:8:256:2x2"]))
    assert one == bench.Case("case", "gru", 50, 8, 256, 256, 2, 2)
    cases = bench.select_cases(bench.parse(["--cells", "lstm", "--sets", "small",
                                            "--H", "512", "--B", "1,32"]))
    assert [(c.B, c.H) for c in cases] == [(1, 512), (32, 512)]
    picked = bench.select_cases(bench.parse(["--case", "lstm:100:1:512", "--case",
                                             "lstm:100:8:1024", "--H", "1024"]))
    assert [(c.B, c.H) for c in picked] == [(8, 1024)]
    for bad in (["--case", "lstm:100:8"], ["--case", "rnn:1:1:1"], ["--case", "lstm:1:1:1:2x3"],
                ["--B", "eight"]):
        with pytest.raises(SystemExit):
            bench.parse(bad)
    with pytest.raises(SystemExit):
        bench.select_cases(bench.parse(["--case", "lstm:100:1:512", "--T", "25"]))


def test_records_go_to_the_jsonl_file_as_they_come(tmp_path):
    bench = load_bench()
    args = bench.parse(["--case", "lstm:3:2:4", "--jsonl", str(tmp_path / "r.jsonl"),
                        "--tag", "timing-x", "--case-timeout", "30", "--no-progress"])
    records = bench.Records(args)
    for case in bench.each_case(args, args.case, records):
        records.append(bench.record(case, "inference", "numba_rnn", median_ms=1.0))
        assert [json.loads(t)["event"] for t in (tmp_path / "r.jsonl").read_text().splitlines()
                ] == ["start", "record"]        # written before the case is over
    lines = [json.loads(t) for t in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert [line["event"] for line in lines] == ["start", "record", "done"]
    assert all(line["tag"] == "timing-x" for line in lines) and lines[1]["median_ms"] == 1.0


def test_ratio_table_without_cudnn_timings():
    """--no-cudnn-timing: another run timed cuDNN; the row says so."""
    bench = load_bench()
    case = bench.Case("case", "lstm", 100, 8, 512, 512, 1, 1)
    records = [bench.record(case, "inference", "numba_rnn", median_ms=3.0, p10_ms=2.9,
                            p90_ms=3.2, floor_ms=0.5, path="persistent")]
    row = bench.ratio_table(records, {"device": "test", "numba": "x", "numba-cuda": "y",
                                      "date": "today"}).strip().splitlines()[-1]
    assert "| not timed here |" in row and "3.000 (2.900–3.200)" in row
