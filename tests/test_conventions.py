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


def test_chapters_take_config_from_ntlib():
    """Every chapter takes its seed, scale and device from ntlib.setup()."""
    for nb in CHAPTERS:
        text = nb.read_text()
        assert "ntlib.setup(" in text, f"{nb.name} does not call ntlib.setup()"
        assert not re.search(r"torch\.manual_seed\(\s*\d", text), f"{nb.name} hard-codes a seed"
