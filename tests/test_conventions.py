"""Guards for the book's conventions (see README and DEVELOPERS notes)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import yaml

import ntlib

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "notebooks").glob("*.md"))


def _toc_files() -> set[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files: set[str] = {toc["root"]}

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                files.add(node["file"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(toc)
    return files


def test_there_are_chapters():
    assert CHAPTERS, "notebooks/ holds no chapter"


def test_every_chapter_has_jupytext_front_matter():
    for nb in CHAPTERS:
        head = nb.read_text().split("\n---", 1)[0]
        assert nb.read_text().startswith("---\n") and "jupytext:" in head, f"{nb.name}: no jupytext front matter"
        assert "format_name: myst" in head, f"{nb.name}: not a MyST notebook"
        assert "kernelspec:" in head, f"{nb.name}: no kernelspec"


def test_every_chapter_is_in_the_toc():
    toc = _toc_files()
    for nb in CHAPTERS:
        assert f"notebooks/{nb.stem}" in toc, f"{nb.name} is not listed in _toc.yml"


def test_every_toc_entry_exists():
    for f in _toc_files():
        assert list(ROOT.glob(f + ".*")), f"_toc.yml lists {f}, which does not exist"


def test_no_ipynb_is_tracked():
    out = subprocess.run(["git", "ls-files", "*.ipynb"], cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:  # not a git checkout (e.g. an sdist): nothing can be tracked
        return
    assert out.stdout.strip() == "", f"tracked .ipynb files: {out.stdout.split()}"


def test_environment_yml_installs_the_lock_file():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps = env["dependencies"]
    pip = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
    assert "-r requirements-lock.txt" in pip and "-e ." in pip
    py = next(d for d in deps if isinstance(d, str) and d.startswith("python="))
    lock = (ROOT / "requirements-lock.txt").read_text()
    # the lock was resolved on this Python minor version
    assert py.split("=")[1] in {"3.11"}, py
    for name in ("torch==2.13.0", "jupyter-book==1.0.4.post1"):
        assert re.search(rf"^{re.escape(name)}$", lock, re.M), f"lock file must pin {name}"


def test_lock_satisfies_package_dependencies():
    """Every dependency of ntlib (and its book/test extras) is pinned in the lock."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lock = {re.split(r"==", l)[0].lower().replace("_", "-") for l in (ROOT / "requirements-lock.txt").read_text().splitlines() if "==" in l}
    reqs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        reqs += extra
    for r in reqs:
        name = re.split(r"[<>=!~\[ ]", r)[0].lower().replace("_", "-")
        assert name in lock, f"{name} (from pyproject) is missing from requirements-lock.txt"


def test_ci_runs_at_ci_scale():
    """CI must run the small experiments; a forgotten NTLIB_SCALE would blow its time budget."""
    if os.environ.get("CI"):
        assert ntlib.get_config().scale == "ci"
    assert "NTLIB_SCALE=ci" in (ROOT / ".ci" / "run").read_text()


#: Chapters that still state results with bare ``assert`` and hand-picked seed offsets
#: (``generator(cfg.seed + 7)``): they convert to ``claim(...)`` and named streams in their own
#: issues. This list may only shrink: remove a chapter once it is converted.
NOT_YET_CONVERTED: set[str] = set()


def _code_cells(nb: Path) -> list[str]:
    import jupytext

    return [c.source for c in jupytext.read(nb).cells if c.cell_type == "code"]


def _chapter_number(nb: Path) -> int:
    return int(re.match(r"(\d+)_", nb.name).group(1))


def test_every_chapter_starts_with_the_kit_set_up_cell():
    """The first code cell: imports, then ``cfg = book.setup("chN")`` with N the file number."""
    for nb in CHAPTERS:
        first = _code_cells(nb)[0]
        lines = [l for l in first.splitlines() if l.strip() and not l.lstrip().startswith("#")]
        setup = [l for l in lines if "setup(" in l]
        assert setup, f"{nb.name}: the first code cell does not call book.setup(...)"
        assert setup[0].strip() == f'cfg = book.setup("ch{_chapter_number(nb)}")', \
            f"{nb.name}: the set-up line must be cfg = book.setup(\"ch{_chapter_number(nb)}\"), got {setup[0]!r}"
        before = lines[:lines.index(setup[0])]
        assert all(re.match(r"(import|from) ", l) for l in before), \
            f"{nb.name}: only imports may come before book.setup(...) in the first cell"
        assert "from ntlib import" in first and "book" in first, f"{nb.name}: import the kit (from ntlib import book)"
        assert "ntlib.setup(" not in nb.read_text(), f"{nb.name}: calls ntlib.setup() (use book.setup)"


SEEDED = [
    (r"\bgenerator\(\s*\d", "generator(<int>)"),
    (r"manual_seed\(\s*\d", "manual_seed(<int>)"),
    (r"seed_everything\(\s*\d", "seed_everything(<int>)"),
    (r"default_rng\(\s*\d", "default_rng(<int>)"),
    (r"cfg\.seed\s*[+*-]", "cfg.seed + k (use book.stream(name))"),
]


def test_chapters_hard_code_no_seed():
    """Randomness comes from NTLIB_SEED through named streams (book.stream), never a literal."""
    for nb in CHAPTERS:
        code = "\n".join(_code_cells(nb))
        found = [what for pattern, what in SEEDED if re.search(pattern, code)]
        if nb.stem in NOT_YET_CONVERTED:
            continue
        assert not found, f"{nb.name} hard-codes seeds: {found}"


def test_chapters_state_results_through_claims():
    """Every result is a claim(...) (recorded with its bound and reason), not a bare assert."""
    for nb in CHAPTERS:
        code = "\n".join(_code_cells(nb))
        if nb.stem in NOT_YET_CONVERTED:
            continue
        assert re.search(r"\bclaim(_count)?\(", code), f"{nb.name} states no claim (book.claim(...))"
        ids = re.findall(r"claim(?:_count)?\(\s*[\"'](ch\d+)\.", code)
        assert set(ids) == {f"ch{_chapter_number(nb)}"}, f"{nb.name}: claim ids must start with ch{_chapter_number(nb)}."


def test_not_yet_converted_list_only_shrinks():
    stems = {nb.stem for nb in CHAPTERS}
    assert NOT_YET_CONVERTED <= stems, f"stale entries: {sorted(NOT_YET_CONVERTED - stems)}"
    for nb in CHAPTERS:
        if nb.stem not in NOT_YET_CONVERTED:
            continue
        code = "\n".join(_code_cells(nb))
        converted = re.search(r"\bclaim(_count)?\(", code) and not any(re.search(p, code) for p, _ in SEEDED)
        assert not converted, f"{nb.name} is converted: remove it from NOT_YET_CONVERTED"


def test_chapter_prose_quotes_no_hand_typed_seed_ranges():
    """Numbers over seeds come from the ledger and the sweep (claims page), not typed prose."""
    for nb in CHAPTERS:
        if nb.stem in NOT_YET_CONVERTED:
            continue
        text = nb.read_text()
        assert not re.search(r"(across|over) seeds \d", text), f"{nb.name} types a per-seed range by hand"
