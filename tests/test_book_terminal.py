"""Progress in JupyterLab (ntlib.book.terminal): the line in the running cell, and when it shows.

The terminal side (stream, throttling, NTLIB_PROGRESS, a batch kernel's cells untouched) is
tested in ``test_book_kit.py``; here: the switch that also draws in the cell (a kernel that a
Jupyter server started), the line redrawn in place, and that ``make`` hides the switch from
the chapters it runs.
"""

from __future__ import annotations

import io
import os
import subprocess
from pathlib import Path

import pytest

from ntlib import book
from ntlib.book import terminal

ROOT = Path(__file__).resolve().parents[1]


class FakeHandle:
    def __init__(self, shown):
        self.shown = shown

    def update(self, bundle, raw=False):
        assert raw
        self.shown.append(("update", bundle["text/plain"]))


@pytest.fixture
def fake_kernel(monkeypatch):
    """A running 'kernel' whose displays are recorded: (kind, text) pairs."""
    shown = []

    def display(bundle, raw=False, display_id=None):
        assert raw and display_id is True
        shown.append(("display", bundle["text/plain"]))
        return FakeHandle(shown)

    import IPython.display
    monkeypatch.setattr(IPython.display, "display", display)
    monkeypatch.setattr(terminal, "_kernel_shell", lambda: object())
    return shown


def test_interactive_kernel_needs_a_server_session_and_a_kernel(monkeypatch):
    monkeypatch.delenv(terminal.SERVER_ENV, raising=False)
    assert not terminal.interactive_kernel()           # no server, no kernel
    monkeypatch.setenv(terminal.SERVER_ENV, "notebooks/01_entropic_loss.md")
    assert not terminal.interactive_kernel()           # a server's variable but no kernel (a subprocess)
    monkeypatch.setattr(terminal, "_kernel_shell", lambda: object())
    assert terminal.interactive_kernel()               # a kernel that a Jupyter server started
    monkeypatch.setenv(terminal.SERVER_ENV, " ")
    assert not terminal.interactive_kernel()           # blank: not set
    monkeypatch.delenv(terminal.SERVER_ENV)
    assert not terminal.interactive_kernel()           # nbval, the book build: a kernel, no server


def test_the_cell_line_follows_the_switch_and_the_scale(monkeypatch, fake_kernel):
    quiet = io.StringIO()
    monkeypatch.setenv(terminal.SERVER_ENV, "notebooks/01_entropic_loss.md")
    monkeypatch.setenv("NTLIB_PROGRESS", "auto")
    monkeypatch.setenv("NTLIB_SCALE", "ci")
    book.progress(2, "ci-run", out=quiet, interval=0)(1)
    assert fake_kernel == [] and quiet.getvalue() == ""   # ci scale: silent in Lab too
    monkeypatch.setenv("NTLIB_SCALE", "paper")
    book.progress(2, "paper-run", out=quiet, interval=0)(1)
    assert [(kind, text[:15]) for kind, text in fake_kernel] == [("display", "paper-run: 1/2 ")]
    assert quiet.getvalue().startswith("paper-run: 1/2")   # and the terminal, as before
    fake_kernel.clear()
    monkeypatch.delenv(terminal.SERVER_ENV)
    book.progress(2, "batch-run", out=io.StringIO(), interval=0)(1)
    assert fake_kernel == []                              # nbval / book build: terminal only
    book.progress(2, "forced", out=io.StringIO(), interval=0, cell=True)(1)
    assert [kind for kind, _ in fake_kernel] == ["display"]
    fake_kernel.clear()
    book.progress(2, "off", enabled=False, interval=0, cell=True)(1)
    assert fake_kernel == []                              # not shown at all: not in the cell either


def test_the_cell_line_is_redrawn_in_place_throttled_and_ends_on_the_last_line(fake_kernel):
    bar = book.progress(100, "train", enabled=True, out=io.StringIO(), cell=True)
    for step in range(1, 51):
        bar(step)       # 50 steps within far less than CELL_INTERVAL: one draw
    assert [(kind, text[:17]) for kind, text in fake_kernel] == [("display", "train: 1/100 (1%)")]
    bar(100)
    bar(100)
    kinds = [kind for kind, _ in fake_kernel]
    assert kinds == ["display", "update"]                 # one display, updated in place
    assert fake_kernel[-1][1].startswith("train: 100/100 (100%) ")
    assert list(book.track(range(3), "it", enabled=True, out=io.StringIO(), cell=True)) == [0, 1, 2]
    assert fake_kernel[-1][0] == "update" and fake_kernel[-1][1].startswith("it: 3/3 (100%) ")


def test_the_cell_line_stays_silent_outside_a_kernel(capsys):
    bar = book.progress(3, "plain", enabled=True, out=io.StringIO(), interval=0, cell=True)
    for step in range(1, 4):
        bar(step)
    assert capsys.readouterr().out == ""                  # IPython would print the bundle
    assert bar.cell.dead


def test_progress_shows_in_the_cell_of_a_server_kernel_and_in_its_terminal(tmp_path):
    """A kernel with the server's JPY_SESSION_NAME (as JupyterLab starts it): one output line,
    redrawn in place, ending on the last line; the terminal gets the line too."""
    import nbclient
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "from ntlib import book\nf = book.progress(3, 'lab-run', enabled=True, interval=0)\n"
        "for i in range(1, 4):\n    f(i)\nprint('done')")]
    log = tmp_path / "kernel-stderr.txt"
    env = {**os.environ, terminal.SERVER_ENV: "notebooks/scratch.ipynb"}
    with open(log, "w") as err:
        client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=120)
        fd = os.dup(2)
        os.dup2(err.fileno(), 2)  # the kernel inherits this as its terminal
        try:
            client.execute(env=env)
        finally:
            os.dup2(fd, 2)
            os.close(fd)
    outputs = nb.cells[0].outputs
    assert [o.output_type for o in outputs] == ["display_data", "stream"]
    assert outputs[0].data["text/plain"].startswith("lab-run: 3/3 (100%)")  # updated in place
    assert outputs[1].text == "done\n"
    assert "lab-run: 3/3 (100%)" in log.read_text()


def test_make_hides_the_server_session_from_the_chapters_it_runs():
    """make test/book/seeds started from a Lab terminal or a cell: no progress in their cells."""
    env = {**os.environ, terminal.SERVER_ENV: "notebooks/scratch.ipynb"}
    out = subprocess.run(["make", "-s", "-f", "Makefile", "--eval",
                          "show-session:\n\t@echo \"[$${JPY_SESSION_NAME-unset}]\"", "show-session"],
                         cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[unset]"
