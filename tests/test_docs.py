"""Documentation guards: every public function of ntlib is documented with an example and used by a test.

Public names: for each numerical module ``ntlib.<name>`` or ``ntlib.<pkg>.<name>``
(no ``_private`` part; the chapter kit ``ntlib.book`` and ``ntlib.explore`` are
left to their own tests), the functions and classes it defines whose names do
not start with ``_``. Checks:

* a docstring (the API reference page is generated from them);
* functions: an example (a ``>>>`` doctest, run by ``pytest --doctest-modules``);
* every public name appears in a test file or a chapter that names its module
  (or the package that re-exports it): a grep-based coverage check;
* the API page has a block for every top-level module, and a package re-exports
  every public name of its submodules (its block documents them);
* the README's example runs.

``WITHOUT_EXAMPLE`` lists the functions that still lack an example; it may only
shrink (a listed name that gains an example, or disappears, must be removed).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import pkgutil
import re
from pathlib import Path

import pytest
import torch

import ntlib

ROOT = Path(__file__).resolve().parents[1]

#: Functions without a doctest example yet (empty since the re-cut: every public function has one).
WITHOUT_EXAMPLE: set[str] = set()

#: Left to the chapter kit's own tests (tests/test_book_*, tests/test_explore.py).
NOT_HERE = ("ntlib.book", "ntlib.explore")


def _numerical(name: str) -> bool:
    parts = name.split(".")
    return not any(p.startswith("_") for p in parts[1:]) and not name.startswith(NOT_HERE)


def public_modules() -> list:
    """Every numerical module of ntlib, subpackages and their modules included."""
    names = [m.name for m in pkgutil.walk_packages(ntlib.__path__, "ntlib.") if _numerical(m.name)]
    return [importlib.import_module(n) for n in names]


def top_level_modules() -> list[str]:
    return [f"ntlib.{m.name}" for m in pkgutil.iter_modules(ntlib.__path__) if _numerical(f"ntlib.{m.name}")]


def public_objects() -> list[tuple[str, object]]:
    out = []
    for mod in public_modules():
        for name, obj in vars(mod).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != mod.__name__:
                continue
            if inspect.isfunction(obj) or inspect.isclass(obj):
                out.append((f"{mod.__name__}.{name}", obj))
    return out


OBJECTS = public_objects()
FUNCTIONS = [(q, o) for q, o in OBJECTS if inspect.isfunction(o)]


def test_the_walk_finds_the_core_and_the_subpackages():
    names = {q for q, _ in OBJECTS}
    assert {"ntlib.entropic.entropic_loss", "ntlib.dynamics.gd", "ntlib.theory.universal_kernel",
            "ntlib.linear.model.teacher", "ntlib.linear.moments.pair_moments", "ntlib.run.Run"} <= names
    assert not any(q.startswith(NOT_HERE) for q in names)


def test_every_exported_name_of_ntlib_is_documented():
    for name in ntlib.__all__:
        assert getattr(ntlib, name).__doc__, f"ntlib.{name} has no docstring"


@pytest.mark.parametrize("qualname,obj", OBJECTS, ids=[q for q, _ in OBJECTS])
def test_public_object_has_a_docstring(qualname, obj):
    doc = inspect.getdoc(obj) or ""
    assert len(doc.strip()) > 10, f"{qualname} has no docstring"


@pytest.mark.parametrize("qualname,obj", FUNCTIONS, ids=[q for q, _ in FUNCTIONS])
def test_public_function_has_an_example(qualname, obj):
    has = ">>>" in (obj.__doc__ or "")
    if qualname in WITHOUT_EXAMPLE:
        assert not has, f"{qualname} now has an example: remove it from WITHOUT_EXAMPLE"
        pytest.xfail(f"{qualname}: no example yet")
    assert has, f"{qualname} has no '>>>' example in its docstring (add one, or list it in WITHOUT_EXAMPLE)"


def test_without_example_list_is_current():
    names = {q for q, _ in FUNCTIONS}
    assert WITHOUT_EXAMPLE <= names, f"stale entries: {sorted(WITHOUT_EXAMPLE - names)}"


def _sources() -> list[str]:
    files = sorted((ROOT / "tests").glob("*.py")) + sorted((ROOT / "notebooks").glob("*.md"))
    return [f.read_text() for f in files if f.name != Path(__file__).name]


SOURCES = _sources()


def _module_names(module: str, name: str) -> set[str]:
    """How a source may name the module of ``module.name``: its short name, or a package that re-exports it."""
    parts = module.split(".")
    names = {parts[-1]}
    for i in range(2, len(parts)):
        pkg = importlib.import_module(".".join(parts[:i]))
        if name in getattr(pkg, "__all__", ()):
            names.add(parts[i - 1])
    return names


@pytest.mark.parametrize("qualname,obj", OBJECTS, ids=[q for q, _ in OBJECTS])
def test_public_object_is_exercised_by_a_test(qualname, obj):
    module, name = qualname.rsplit(".", 1)
    shorts = _module_names(module, name)
    used = [s for s in SOURCES
            if any(re.search(rf"\b{m}\b", s) for m in shorts) and re.search(rf"\b{re.escape(name)}\b", s)]
    assert used, f"{qualname} is not used in any test or chapter"


def test_packages_re_export_every_public_name_of_their_modules():
    """The API page documents a package (``ntlib.linear``) through its ``__all__``: nothing may be missing."""
    for mod in public_modules():
        if not hasattr(mod, "__path__"):
            continue
        exported = set(getattr(mod, "__all__", ()))
        own = {q.rsplit(".", 1)[1] for q, _ in OBJECTS if q.startswith(mod.__name__ + ".")}
        assert own <= exported, f"{mod.__name__}.__all__ misses {sorted(own - exported)}"


def test_api_page_documents_every_module():
    """book/api.md has an automodule block for every top-level numerical module (add one when adding a module)."""
    page = (ROOT / "book" / "api.md").read_text()
    documented = set(re.findall(r"^\.\. automodule:: (ntlib(?:\.\w+)*)\s*$", page, re.M)) - {"ntlib"}
    documented = {d for d in documented if not d.startswith(NOT_HERE)}
    modules = set(top_level_modules())
    assert modules <= documented, f"book/api.md misses {sorted(modules - documented)}: add an automodule block"
    stale = {d for d in documented if importlib.util.find_spec(d) is None}
    assert not stale, f"book/api.md documents missing modules {sorted(stale)}"


def test_readme_example_runs(capsys):
    """The README's "Use ntlib on your own model" example runs as printed."""
    text = (ROOT / "README.md").read_text()
    section = re.search(r"## Use ntlib on your own model(.*?)\n## ", text, re.S).group(1)
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) >= 2
    torch.set_default_dtype(torch.float32)  # a new user's session; the autouse fixture restores float64 after
    for code in blocks:
        exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "top eigenvalues" in out and "linear CKA" in out
    assert "debiased CKA" in out and "median |log ratio|" in out
