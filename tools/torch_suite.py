"""PyTorch's own recurrent tests, run against torch.nn and against numba_rnn.torch.

    python tools/torch_suite.py PATH/TO/pytorch/test [--out results.md] [--timeout 1800]

PATH is a checkout of PyTorch's ``test/`` folder (``test_nn.py`` and ``test_modules.py``
at least); its files run where they are, nothing of them is copied here. The selection
is the tests of ``test_nn.py`` whose names mention RNN, LSTM, GRU or Cell (pytest's
``-k`` is case-insensitive, so rnn/lstm/gru/cell too) and ``test_modules.py``'s tests of
the module_db entries of the six recurrent classes (their names carry ``nn_LSTM``,
``nn_GRUCell``, ...), on the CPU. It runs twice, each time in a fresh pytest process:

* ``torch``: as the files are, on torch.nn's classes;
* ``numba_rnn``: with numba_rnn.torch's ``LSTM``, ``GRU``, ``RNN``, ``LSTMCell``,
  ``GRUCell`` and ``RNNCell`` in place of torch.nn's everywhere a test can reach them:
  ``torch.nn.X``, ``torch.nn.modules.X``, ``torch.nn.modules.rnn.X`` (so ``nn.LSTM(...)``,
  ``from torch.nn import LSTM`` and ``getattr(nn, mode)`` all construct ours) and the
  ``module_cls`` of the six module_db entries (test_modules.py builds
  ``module_info.module_cls(...)``; the entries keep their names, ``nn_LSTM`` etc.).

It prints, and writes to ``--out`` (Markdown), the counts of each run and every test
that passes with torch.nn and does not with numba_rnn.torch, with the first line of
its failure. For each test of the second run it also counts the calls answered by
numba_rnn's kernels (numba_rnn.torch's ``_VF``), so that a pass that never reached them
shows as such (column "ran ours").

The same file is the pytest plugin of both runs (``-p torch_suite``, with
TORCH_SUITE_MODE set): it installs the classes before the test files are imported, and
fills in names that an older or newer checkout imports from
``torch.testing._internal`` but the installed wheel spells differently (listed in
``_COMPAT``; each is set only where the wheel lacks it), so that a checkout a few
releases from the wheel still imports. PyTorch's test utilities need ``expecttest``
(``pip install expecttest``) and ``hypothesis``. Both runs inherit the environment, so
``PYTEST_ADDOPTS`` (e.g. ``-p some_plugin`` that breaks numba_rnn.torch on purpose) and
``NUMBA_RNN_BACKEND`` reach them.
"""
import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CLASSES = ("LSTM", "GRU", "RNN", "LSTMCell", "GRUCell", "RNNCell")
FILES = ("test_nn.py", "test_modules.py")
#: test_nn.py: names that mention a recurrent module; test_modules.py: the six entries
#: (nn_RNN, nn_GRU, nn_LSTM and their Cells) match it too. CPU only.
SELECTION = "(rnn or lstm or gru or cell) and not cuda and not mps and not xpu and not meta"
MODE_VARIABLE = "TORCH_SUITE_MODE"


# ------------------------------------------------------------------ the plugin
def _compat():
    """Names some checkouts import from torch.testing._internal under another name
    than the installed wheel gives them (set only where missing)."""
    import torch
    from torch.testing._internal import common_cuda, common_mkldnn, common_nn, common_utils

    def fill(module, name, make):
        if not hasattr(module, name):
            setattr(module, name, make())

    fill(common_utils, "skipIfMps", lambda: common_utils.skipIfMPS)
    fill(common_utils, "skipIfMPS", lambda: common_utils.skipIfMps)
    fill(common_cuda, "tf32_is_not_fp32",
         lambda: (lambda: torch.cuda.is_available() and torch.cuda.is_tf32_supported()))
    fill(common_nn, "new_module_tests", lambda: common_nn.get_new_module_tests())
    fill(common_mkldnn, "bf32_on_and_off", lambda: common_mkldnn.reduced_f32_on_and_off)
    fill(common_mkldnn, "reduced_f32_on_and_off", lambda: common_mkldnn.bf32_on_and_off)


_CALLS = [0]


def _install_numba_rnn():
    """numba_rnn.torch's classes in place of torch.nn's, everywhere a test reaches them;
    each call answered by numba_rnn's kernels counted."""
    import torch
    import numba_rnn.torch as nrt
    from torch.testing._internal import common_modules

    originals = {name: getattr(torch.nn, name) for name in CLASSES}
    ours = {name: getattr(nrt, name) for name in CLASSES}
    for name in CLASSES:
        for namespace in (torch.nn, torch.nn.modules, torch.nn.modules.rnn):
            setattr(namespace, name, ours[name])
    by_original = {originals[name]: ours[name] for name in CLASSES}
    for info in common_modules.module_db:
        if info.module_cls in by_original:
            common_name = common_modules.get_module_common_name(info.module_cls)
            info.module_cls = by_original[info.module_cls]
            common_modules.MODULE_CLASS_NAMES[info.module_cls] = common_name  # nn.LSTM
    for kernel, function in list(vars(nrt._VF).items()):
        def counted(*args, _function=function, **kwargs):
            _CALLS[0] += 1
            return _function(*args, **kwargs)
        setattr(nrt._VF, kernel, counted)


def _plugin_setup():
    mode = os.environ.get(MODE_VARIABLE)
    if mode is None:
        return
    _compat()
    if mode == "numba_rnn":
        _install_numba_rnn()


if os.environ.get(MODE_VARIABLE) and __name__ != "__main__":
    import pytest

    _plugin_setup()

    _STARTS = {}

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(item):
        _STARTS[item.nodeid] = _CALLS[0]

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(item, call):
        if call.when == "teardown":
            # before the teardown report is made: junit takes the properties from it
            calls = _CALLS[0] - _STARTS.pop(item.nodeid, _CALLS[0])
            item.user_properties.append(("numba_rnn_calls", calls))
        yield


# ------------------------------------------------------------------ the runner
Result = collections.namedtuple("Result", "outcome message calls")


def _first_line(text):
    text = (text or "").strip()
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:300]
    return ""


def _reason(element):
    """Exception type and message of a failed or errored junit test case, one line."""
    message = element.get("message") or ""
    kind = element.get("type") or ""
    text = element.text or ""
    # the last "E   SomeError: ..." line of the traceback names the exception
    errors = [line[1:].strip() for line in text.splitlines() if line.startswith("E ")]
    head = [e for e in errors if re.match(r"^[\w.]+(Error|Exception|Failure|Warning|"
                                          r"Exit|Interrupt)\b", e)]
    if head:
        return head[0][:300]
    first = _first_line(message) or _first_line(text)
    return f"{kind}: {first}" if kind and kind not in first else first


def parse(junit):
    results = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = f"{Path(case.get('file') or case.get('classname').split('.')[0]).stem}::" \
               f"{case.get('classname').split('.')[-1]}::{case.get('name')}"
        calls = 0
        for prop in case.iter("property"):
            if prop.get("name") == "numba_rnn_calls":
                calls = int(prop.get("value"))
        failure = case.find("failure")
        error = case.find("error")
        skipped = case.find("skipped")
        if failure is not None:
            results[name] = Result("failed", _reason(failure), calls)
        elif error is not None:
            results[name] = Result("error", _reason(error), calls)
        elif skipped is not None:
            kind = "xfailed" if skipped.get("type") == "pytest.xfail" else "skipped"
            results[name] = Result(kind, _first_line(skipped.get("message")), calls)
        else:
            results[name] = Result("passed", "", calls)
    return results


def run_mode(mode, test_dir, workdir, timeout, select):
    junit = workdir / f"{mode}.xml"
    ini = workdir / "pytest.ini"
    ini.write_text("[pytest]\n")
    env = dict(os.environ, **{MODE_VARIABLE: mode})
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(REPO), env.get("PYTHONPATH", "")])
    command = [sys.executable, "-m", "pytest", *[str(test_dir / f) for f in FILES],
               "-c", str(ini), "--rootdir", str(test_dir), "-p", "torch_suite",
               "-p", "no:cacheprovider", "-q", "-rN", "--tb=short", "-k", select,
               f"--junitxml={junit}", "-o", "junit_family=xunit1"]
    print(f"[{time.strftime('%H:%M:%S')}] {mode}: {' '.join(command)}", flush=True)
    start = time.monotonic()
    try:
        completed = subprocess.run(command, cwd=test_dir, env=env, timeout=timeout,
                                   capture_output=True, text=True)
    except subprocess.TimeoutExpired:
        sys.exit(f"torch_suite: the {mode} run took more than {timeout} s")
    seconds = time.monotonic() - start
    tail = (completed.stdout or "").strip().splitlines()[-1:] or [""]
    print(f"[{time.strftime('%H:%M:%S')}] {mode}: {tail[0]} ({seconds:.0f} s)", flush=True)
    if not junit.exists():
        sys.exit(f"torch_suite: the {mode} run wrote no report:\n{completed.stdout[-3000:]}"
                 f"\n{completed.stderr[-3000:]}")
    (workdir / f"{mode}.log").write_text(completed.stdout + completed.stderr)
    return parse(junit), seconds


def _backend():
    """The backend numba_rnn.torch's CPU tensors ran on in the second run (its default in
    a fresh process; NUMBA_RNN_BACKEND overrides it in both)."""
    command = [sys.executable, "-c", "from numba_rnn import backend; print(backend.backend_name())"]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=300)
    return done.stdout.strip() or "unknown"


def table(theirs, ours, seconds, test_dir, select=SELECTION):
    def counts(results):
        return collections.Counter(r.outcome for r in results.values())

    lines = [f"# PyTorch's recurrent tests: torch.nn against numba_rnn.torch",
             "", f"{time.strftime('%Y-%m-%d %H:%M:%S')}; tests from {test_dir}; "
             f"selection -k {select!r}; numba_rnn backend {_backend()!r}", "",
             "| run | tests | passed | failed | error | skipped | xfailed | seconds |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for label, results, key in (("torch.nn", theirs, "torch"),
                                ("numba_rnn.torch", ours, "numba_rnn")):
        c = counts(results)
        lines.append(f"| {label} | {len(results)} | {c['passed']} | {c['failed']} | "
                     f"{c['error']} | {c['skipped']} | {c['xfailed']} | {seconds[key]:.0f} |")
    passed_ours = [n for n, r in ours.items() if r.outcome == "passed"]
    reached = sum(ours[n].calls > 0 for n in passed_ours)
    lines += ["", f"Of the {len(passed_ours)} that pass with numba_rnn.torch, {reached} "
              "called numba_rnn's kernels (the others construct, inspect or refuse before "
              "any recurrent call)."]
    regressions = sorted(n for n, r in theirs.items()
                         if r.outcome == "passed" and ours.get(n, Result("missing", "", 0))
                         .outcome != "passed")
    lines += ["", f"## Pass with torch.nn, not with numba_rnn.torch: {len(regressions)}", ""]
    if regressions:
        lines += ["| test | outcome | reason |", "| --- | --- | --- |"]
        for name in regressions:
            r = ours.get(name, Result("missing", "not run", 0))
            reason = r.message.replace("|", "\\|")
            lines.append(f"| {name} | {r.outcome} | {reason} |")
    gained = sorted(n for n, r in ours.items()
                    if r.outcome == "passed" and theirs.get(n) and theirs[n].outcome != "passed")
    if gained:
        lines += ["", f"## Pass with numba_rnn.torch, not with torch.nn: {len(gained)}", ""]
        lines += [f"- {n}: {theirs[n].outcome}: {theirs[n].message}" for n in gained]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("test_dir", type=Path, help="a checkout of PyTorch's test/ folder")
    parser.add_argument("--out", type=Path, help="write the table here (Markdown) too")
    parser.add_argument("--timeout", type=float, default=1800,
                        help="seconds allowed to each of the two runs (default 1800)")
    parser.add_argument("-k", dest="extra", default=None,
                        help="narrow the selection further (a pytest -k expression)")
    parser.add_argument("--keep", type=Path, default=None,
                        help="keep the junit reports and logs in this folder")
    args = parser.parse_args(argv)
    test_dir = args.test_dir.resolve()
    missing = [f for f in FILES if not (test_dir / f).is_file()]
    if missing:
        parser.error(f"{test_dir} lacks {', '.join(missing)}")
    select = SELECTION if args.extra is None else f"({SELECTION}) and ({args.extra})"
    with tempfile.TemporaryDirectory(prefix="torch_suite.") as scratch:
        workdir = args.keep or Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        theirs, t_torch = run_mode("torch", test_dir, workdir, args.timeout, select)
        ours, t_ours = run_mode("numba_rnn", test_dir, workdir, args.timeout, select)
    text = table(theirs, ours, {"torch": t_torch, "numba_rnn": t_ours}, test_dir, select)
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
