"""The chapter kit (ntlib.book): set-up cell, named streams, data, progress, layering."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ntlib import book
from ntlib.book import data, ledger, streams, terminal

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def ledger_env(tmp_path, monkeypatch):
    monkeypatch.setenv("NTLIB_CLAIMS_DIR", str(tmp_path))
    yield tmp_path
    ledger.close()


def test_setup_configures_styles_opens_the_ledger_and_prints_one_line(ledger_env, monkeypatch, capsys):
    import matplotlib.pyplot as plt

    monkeypatch.setenv("NTLIB_SEED", "3")
    cfg = book.setup("ch7")
    assert capsys.readouterr().out == f"ch7: seed 3, scale {cfg.scale}, device {cfg.device}\n"
    assert cfg.seed == 3 and torch.get_default_dtype() == torch.float64
    assert plt.rcParams["lines.linewidth"] == 2 and plt.rcParams["axes.grid"]
    doc = ledger.read_ledger(ledger_env / "ch7.json")
    assert (doc["chapter"], doc["seed"], doc["claims"]) == ("ch7", 3, [])
    book.claim("ch7.x", 1.0, lo=0, why="w", statement="s")
    assert ledger.read_ledger(ledger_env / "ch7.json")["claims"][0]["seed"] == 3


def test_setup_checks_the_chapter_name(ledger_env):
    with pytest.raises(ValueError, match="chapter must look like 'ch1'"):
        book.setup("chapter1", quiet=True)
    with pytest.raises(TypeError, match="chapter must be a string"):
        book.setup(1, quiet=True)


def test_streams_are_stable_named_and_seeded(monkeypatch):
    a = torch.randn(4, generator=book.stream("init", seed=0))
    assert torch.equal(a, torch.randn(4, generator=book.stream("init", seed=0)))
    assert not torch.equal(a, torch.randn(4, generator=book.stream("init", seed=1)))
    assert not torch.equal(a, torch.randn(4, generator=book.stream("data", seed=0)))
    # a stable hash (not Python's salted hash): the same number in every process
    assert book.seed_of("digits-init", 0) == 2220338556748935540
    code = "from ntlib.book import seed_of; print(seed_of('digits-init', 0))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONHASHSEED": "123"}, check=True).stdout
    assert out.strip() == "2220338556748935540"
    monkeypatch.setenv("NTLIB_SEED", "5")
    assert book.seed_of("x") == book.seed_of("x", 5)
    assert 0 <= book.seed_of("x") < 2 ** 63
    assert book.rng("x", seed=1).random() == np.random.default_rng(book.seed_of("x", 1)).random()


@pytest.mark.parametrize("name,exc", [("", ValueError), ("two words", ValueError), (3, ValueError)])
def test_stream_names_are_checked(name, exc):
    with pytest.raises(exc, match="name must be"):
        book.stream(name, seed=0)


def test_stream_seed_is_checked():
    with pytest.raises(TypeError, match="seed must be an int"):
        book.seed_of("x", 1.5)


def test_digits_match_scikit_learn():
    from sklearn.datasets import load_digits

    d = data.digits(dtype=torch.float64)
    pixels, labels = load_digits(return_X_y=True)
    assert torch.equal(d.x, torch.tensor(pixels) / 16.0)
    assert torch.equal(d.labels, torch.tensor(labels)) and d.labels.dtype == torch.int64
    assert data.digits(dtype=torch.float32).x.dtype == torch.float32
    with pytest.raises(TypeError, match="dtype must be a floating torch dtype"):
        data.digits(dtype=torch.int64)


def test_progress_writes_to_the_given_stream_only_when_enabled(monkeypatch):
    buf = io.StringIO()
    bar = book.progress(10, "train", enabled=True, out=buf, interval=0)
    for step in range(1, 11):
        bar(step)
    lines = buf.getvalue().splitlines()
    assert lines[0].startswith("train: 1/10 (10%)") and lines[-1].startswith("train: 10/10 (100%)")
    assert len(lines) == 10  # one line per step (interval 0), the last one once
    assert bar.closed
    quiet = io.StringIO()
    book.progress(10, "train", enabled=False, out=quiet)(5)
    assert quiet.getvalue() == ""
    monkeypatch.setenv("NTLIB_PROGRESS", "0")
    assert not terminal.enabled_by_default()
    monkeypatch.setenv("NTLIB_PROGRESS", "1")
    assert terminal.enabled_by_default()
    monkeypatch.setenv("NTLIB_PROGRESS", "auto")
    monkeypatch.setenv("NTLIB_SCALE", "paper")
    assert terminal.enabled_by_default()
    monkeypatch.setenv("NTLIB_SCALE", "ci")
    assert not terminal.enabled_by_default()
    monkeypatch.setenv("NTLIB_PROGRESS", "maybe")
    with pytest.raises(ValueError, match="NTLIB_PROGRESS"):
        terminal.enabled_by_default()


def test_progress_is_a_plain_step_hook_and_a_context():
    buf = io.StringIO()
    hook = book.progress(100, "run", enabled=True, out=buf, interval=3600)
    hook(0)
    hook(40)  # throttled: nothing new before the interval
    with hook:
        pass
    assert buf.getvalue().splitlines()[-1].startswith("run: 40/100 (40%)")
    with pytest.raises(ValueError, match="total must be a positive int"):
        book.progress(0)
    with pytest.raises(TypeError, match="step must be an int"):
        hook("x")


def test_track_wraps_an_iterable():
    buf = io.StringIO()
    assert list(book.track(iter([1, 2, 3]), "it", total=3, enabled=True, out=buf)) == [1, 2, 3]
    assert "it: 3/3" in buf.getvalue()
    with pytest.raises(TypeError, match="total is required"):
        list(book.track(iter([1]), enabled=False))


def test_progress_never_reaches_a_notebook_cell(tmp_path):
    """In a Jupyter kernel the line goes to the kernel's original stderr, not to the cell."""
    import nbclient
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "from ntlib import book\nf = book.progress(3, 'kernel-run', enabled=True)\n"
        "for i in range(1, 4):\n    f(i)\nprint('done')")]
    log = tmp_path / "kernel-stderr.txt"
    with open(log, "w") as err:
        client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=120)
        fd = os.dup(2)
        os.dup2(err.fileno(), 2)  # the kernel inherits this as its terminal
        try:
            client.execute()
        finally:
            os.dup2(fd, 2)
            os.close(fd)
    assert [o.get("text") for o in nb.cells[0].outputs] == ["done\n"]
    assert "kernel-run: 3/3 (100%)" in log.read_text()


def test_explorers_load_lazily():
    assert book.figure_slider is book.explore.figure_slider
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        book.nope  # noqa: B018


def test_the_numerical_core_never_imports_the_kit():
    for path in sorted((ROOT / "ntlib").glob("*.py")):
        text = path.read_text()
        assert not re.search(r"^\s*(from\s+(ntlib\.book|\.book|\.)\s+import\s+book|from\s+(ntlib)?\.book\b|import\s+ntlib\.book)",
                             text, re.M), f"{path.name} imports ntlib.book"
