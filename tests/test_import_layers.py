"""The package's imports form no circle (issue 27 point 2): every ``import`` and ``from
... import`` of a numba_rnn module inside the package, at module level or inside a
function (a lazy import is how a circle hides), is an edge of a graph that must have no
cycle; and ``import numba_rnn`` works in a fresh process."""
import ast
import pathlib
import subprocess
import sys

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "numba_rnn"


def module_name(path):
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules():
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports_of(name, path, known):
    """The numba_rnn modules that ``path`` imports (``from . import x`` names module x
    where x is one; a name imported from a package is an edge to the package)."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "numba_rnn")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source.split(".")[0] != "numba_rnn":
                continue
            found.add(source)
            for alias in node.names:
                if f"{source}.{alias.name}" in known:
                    found.add(f"{source}.{alias.name}")
    edges = set()
    for target in found:
        while target not in known and "." in target:  # numba_rnn.x.y where y is a name
            target = target.rsplit(".", 1)[0]
        if target in known and target != name:
            edges.add(target)
    return edges


def import_graph():
    known = modules()
    return {name: imports_of(name, path, known) for name, path in known.items()}


def find_cycle(graph):
    """One cycle of ``graph`` as a list of modules, or None."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def parents(name):
    parts = name.split(".")
    return {".".join(parts[:k]) for k in range(1, len(parts))}


def test_the_package_imports_form_no_cycle():
    graph = import_graph()
    # importing a submodule runs its package's __init__ first, but that is no edge of
    # the submodule's: a package that imports its own submodules is the usual layout
    cycle = find_cycle({m: {t for t in ts if t not in parents(m)} for m, ts in graph.items()})
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_checker_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_lower_layers_import_nothing_above_them():
    """_core imports only the backend; autograd only _core and the backend; ops only
    those and themselves: the engine and the ops never reach the Tensor, nn or the
    recurrent layers."""
    graph = import_graph()
    allowed = {"numba_rnn._core": {"numba_rnn._core", "numba_rnn.backend"},
               "numba_rnn.autograd": {"numba_rnn._core", "numba_rnn.backend",
                                      "numba_rnn.autograd"},
               "numba_rnn.ops": {"numba_rnn._core", "numba_rnn.backend", "numba_rnn.autograd",
                                 "numba_rnn.ops"}}
    for layer, ok in allowed.items():
        for name, targets in graph.items():
            if name == layer or name.startswith(layer + "."):
                bad = {t for t in targets
                       if not any(t == a or t.startswith(a + ".") for a in ok)
                       and t != "numba_rnn"}
                assert not bad, f"{name} imports {sorted(bad)}, above its layer {layer}"


def test_import_numba_rnn_in_a_fresh_process():
    result = subprocess.run([sys.executable, "-c", "import numba_rnn, numba_rnn.ops, "
                             "numba_rnn.autograd.engine, numba_rnn._core.checks"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
