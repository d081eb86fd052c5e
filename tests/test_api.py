"""Every public function of ntlib is documented with an example and exercised by a test.

Public names: for each module ``ntlib.<name>`` (not ``_private``), the functions
and classes it defines whose names do not start with ``_``. Checks:

* a docstring (the API reference page is generated from them);
* functions: an example (a ``>>>`` doctest, run by ``pytest --doctest-modules``);
* every public name appears in a test file or a chapter that uses its module
  (a grep-based coverage check).

``WITHOUT_EXAMPLE`` lists the functions that still lack an example; it may only
shrink (a listed name that gains an example, or disappears, must be removed).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import pytest

import ntlib

ROOT = Path(__file__).resolve().parents[1]

#: Functions without a doctest example yet (modules added after the example pass; see issue 6).
WITHOUT_EXAMPLE = {
    "ntlib.sharpness.gauss_newton_matrix", "ntlib.sharpness.population_hessian",
    "ntlib.sharpness.population_sharpness", "ntlib.sharpness.edge_balance",
}


def public_modules() -> list:
    return [importlib.import_module(f"ntlib.{m.name}") for m in pkgutil.iter_modules(ntlib.__path__)
            if not m.name.startswith("_")]


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


def test_the_walk_finds_the_core():
    names = {q for q, _ in OBJECTS}
    assert {"ntlib.entropic.entropic_loss", "ntlib.dynamics.gd", "ntlib.theory.universal_kernel"} <= names


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
    return [f.read_text() for f in files if f.name != "test_api.py"]


SOURCES = _sources()


@pytest.mark.parametrize("qualname,obj", OBJECTS, ids=[q for q, _ in OBJECTS])
def test_public_object_is_exercised_by_a_test(qualname, obj):
    module, name = qualname.rsplit(".", 1)
    short = module.split(".")[-1]
    used = [s for s in SOURCES if re.search(rf"\b{short}\b", s) and re.search(rf"\b{re.escape(name)}\b", s)]
    assert used, f"{qualname} is not used in any test or chapter"


def test_readme_example_runs(capsys):
    """The README's "Use ntlib on your own model" example runs as printed."""
    pytest.importorskip("ntlib.hessian")
    pytest.importorskip("ntlib.align")
    text = (ROOT / "README.md").read_text()
    code = re.search(r"## Use ntlib on your own model.*?```python\n(.*?)```", text, re.S).group(1)
    dtype = __import__("torch").get_default_dtype()
    try:
        exec(compile(code, "README.md", "exec"), {})
    finally:
        __import__("torch").set_default_dtype(dtype)
    out = capsys.readouterr().out
    assert "top eigenvalues" in out and "linear CKA" in out


def test_api_page_documents_every_module():
    """book/api.md has an automodule block for every public ntlib module (add one when adding a module)."""
    page = (ROOT / "book" / "api.md").read_text()
    documented = set(re.findall(r"^\.\. automodule:: (ntlib\.\w+)\s*$", page, re.M))
    modules = {m.__name__ for m in public_modules()}
    assert modules <= documented, f"book/api.md misses {sorted(modules - documented)}: add an automodule block"
    assert documented <= modules, f"book/api.md documents missing modules {sorted(documented - modules)}"
