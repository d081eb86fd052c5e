"""Packaging guards: ntlib's numerical core stands alone.

* Without ipywidgets, scikit-learn and matplotlib (the chapter kit's extras) ``import
  ntlib`` and every numerical module work (a fresh interpreter in which importing them
  raises ImportError), each imported first, with no other ntlib module loaded.
* No import cycle among the modules' import-time imports (a static graph of every
  module-level import; imports inside functions run later and are not edges).
* No module is longer than about 450 lines.
* No test module sets torch's default dtype at import time (``tests/conftest.py``
  does it per test and restores it).

The chapter kit (``ntlib.book``, ``ntlib.explore``) may use the extras and is left out.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "ntlib"
EXTRAS = ("ipywidgets", "sklearn", "matplotlib")
NOT_HERE = ("ntlib.book", "ntlib.explore")

#: Longest module allowed, and modules known to be longer with their current length (may only shrink).
MAX_LINES = 450
KNOWN_LONG: dict[str, int] = {}


def module_files() -> dict[str, Path]:
    """Dotted name -> file of every numerical module of ntlib (packages as their __init__)."""
    out = {}
    for f in sorted(PKG.rglob("*.py")):
        rel = f.relative_to(ROOT).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        name = ".".join(parts)
        if not name.startswith(NOT_HERE):
            out[name] = f
    return out


MODULES = module_files()

SCRIPT = textwrap.dedent("""
    import importlib, importlib.abc, json, sys
    BLOCKED = {blocked!r}

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{{name}} is blocked: ntlib's numerical core must not need it")
            return None

    sys.meta_path.insert(0, Block())
    failures = {{}}
    for name in {modules!r}:
        for loaded in [m for m in sys.modules if m == "ntlib" or m.startswith("ntlib.")]:
            del sys.modules[loaded]
        try:
            importlib.import_module(name)
        except Exception as e:
            failures[name] = f"{{type(e).__name__}}: {{e}}"
    leaked = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    blocking = []
    for extra in BLOCKED:  # the blocker works: each extra is unimportable here
        try:
            importlib.import_module(extra)
        except ImportError:
            blocking.append(extra)
    print(json.dumps({{"failures": failures, "leaked": leaked, "blocking": blocking}}))
""")


def test_every_numerical_module_imports_alone_without_the_book_extras():
    names = sorted(MODULES)
    assert {"ntlib", "ntlib.hessian", "ntlib.align", "ntlib.linear.model"} <= set(names)
    code = SCRIPT.format(blocked=EXTRAS, modules=names)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["failures"] == {}, report["failures"]
    assert report["leaked"] == [] and sorted(report["blocking"]) == sorted(EXTRAS)


def _target(importer: str, node: ast.ImportFrom | ast.Import) -> list[str]:
    """The ntlib modules an import statement of ``importer`` loads (its named submodules included)."""
    is_pkg = MODULES[importer].name == "__init__.py"
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == "ntlib"]
    if node.level:
        base = importer.split(".") if is_pkg else importer.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        mod = ".".join(base + ([node.module] if node.module else []))
    else:
        mod = node.module or ""
    if mod.split(".")[0] != "ntlib":
        return []
    return [mod] + [f"{mod}.{a.name}" for a in node.names if f"{mod}.{a.name}" in MODULES]


def import_graph() -> dict[str, set[str]]:
    """Module -> ntlib modules it imports at import time (module-level statements, also under if/try)."""
    graph = {}
    for name, path in MODULES.items():
        edges = set()
        todo = list(ast.parse(path.read_text()).body)
        while todo:
            node = todo.pop()
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in _target(name, node):
                    # importing a.b.c runs the packages a.b first, unless the importer is inside them
                    parts = target.split(".")
                    for i in range(2, len(parts) + 1):
                        dep = ".".join(parts[:i])
                        if dep in MODULES and dep != name and not name.startswith(dep + "."):
                            edges.add(dep)
            elif isinstance(node, (ast.If, ast.Try)) and not (
                    isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)):
                todo += node.body + node.orelse + getattr(node, "finalbody", []) + [
                    s for h in getattr(node, "handlers", []) for s in h.body]
        graph[name] = edges - {"ntlib"}  # the root package is always partly initialised first
    return graph


def test_no_import_cycle():
    graph = import_graph()
    assert "ntlib.linalg" in graph["ntlib.linear.model"] and "ntlib.linear" in graph["ntlib.symmetry"]
    state, cycles = {}, []

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == [], "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_no_module_is_too_long():
    lengths = {str(p.relative_to(ROOT)): len(p.read_text().splitlines()) for p in MODULES.values()}
    too_long = {f: n for f, n in lengths.items() if n > MAX_LINES and n > KNOWN_LONG.get(f, 0)}
    assert too_long == {}, f"modules over {MAX_LINES} lines: {too_long}"
    stale = {f for f in KNOWN_LONG if lengths.get(f, 0) <= MAX_LINES}
    assert not stale, f"KNOWN_LONG entries now within {MAX_LINES} lines (remove them): {sorted(stale)}"


def test_no_test_module_sets_the_default_dtype_at_import_time():
    offenders = []
    for f in sorted((ROOT / "tests").glob("*.py")):
        for node in ast.parse(f.read_text()).body:
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) \
                    and "set_default_dtype" in ast.unparse(node):
                offenders.append(f"{f.name}:{node.lineno}")
    assert offenders == [], f"set the dtype per test (tests/conftest.py), not at import: {offenders}"
