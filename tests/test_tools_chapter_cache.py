"""The execution cache shared by the chapter tests and the book build (tools/chapter_cache.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools import chapter_cache as cc
from tools import chapters as ch


def test_fingerprint_covers_settings_and_sources(tmp_path):
    base = cc.fingerprint(environ={})
    assert base == cc.fingerprint(environ={"NTLIB_SEED": "0", "NTLIB_SCALE": "ci"})  # the defaults
    for env in ({"NTLIB_SEED": "1"}, {"NTLIB_SCALE": "paper"}, {"NTLIB_DEVICE": "cpu"}, {"NTLIB_THREADS": "2"},
                {"OMP_NUM_THREADS": "1"}):
        assert cc.fingerprint(environ=env) != base, env
    # a copy of the repository's inputs, then one edit to a source file, the lock, pyproject
    for name in ("ntlib", "requirements-lock.txt", "pyproject.toml"):
        src = cc.ROOT / name
        if src.is_dir():
            (tmp_path / name).mkdir()
            for f in src.rglob("*.py"):
                (tmp_path / name / f.relative_to(src)).parent.mkdir(parents=True, exist_ok=True)
                (tmp_path / name / f.relative_to(src)).write_bytes(f.read_bytes())
        else:
            (tmp_path / name).write_bytes(src.read_bytes())
    copy = cc.fingerprint(tmp_path, environ={})
    assert copy == cc.fingerprint(environ={})
    for edit in (tmp_path / "ntlib" / "stats.py", tmp_path / "ntlib" / "book" / "claims.py",
                 tmp_path / "requirements-lock.txt", tmp_path / "pyproject.toml"):
        old = edit.read_bytes()
        edit.write_bytes(old + b"\n# edit\n")
        assert cc.fingerprint(tmp_path, environ={}) != copy, edit.name
        edit.write_bytes(old)
    assert cc.cache_dir(tmp_path, environ={}).parts[-3:] == ("_build", ".jupyter_cache", copy)


@pytest.mark.parametrize("path", ch.chapters(), ids=lambda p: p.stem)
def test_tests_and_book_read_the_same_code_cells(path):
    """nbval reads the chapters with jupytext, the book with myst-nb: the cache matches only
    if both give the same code cells (else the book silently executes again)."""
    import jupytext
    from jupyter_cache.cache.main import JupyterCacheBase

    hasher = JupyterCacheBase.create_hashed_notebook
    assert hasher(None, jupytext.read(path))[1] == hasher(None, cc.read(path))[1]


def test_store_and_match(tmp_path, monkeypatch):
    nb = cc.read(Path(__file__).parent / "sweep" / "01_tiny.md")
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
    monkeypatch.setattr(cc, "cache_dir", lambda root=None, environ=None: tmp_path / "cache")
    pk = cc.store(Path(__file__).parent / "sweep" / "01_tiny.md", nb, 12.5)
    from jupyter_cache import get_cache

    record = get_cache(str(tmp_path / "cache")).match_cache_notebook(cc.read(Path(__file__).parent / "sweep" / "01_tiny.md"))
    assert record.pk == pk and record.data["execution_seconds"] == 12.5
    assert cc.cached(Path(__file__).parent / "sweep" / "01_tiny.md")
