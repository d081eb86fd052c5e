"""Collect the jupytext chapters (notebooks/*.md) as nbval notebooks.

nbval only collects ``.ipynb``; the chapters are MyST text notebooks. This
collector reads them through jupytext, so no ``.ipynb`` copy is written and the
kernel's working directory stays ``notebooks/``. Two additions to nbval:

- the kernel's standard error is the terminal (nbval sends it to ``/dev/null``), so that
  :func:`ntlib.book.progress` can show long paper-scale runs there (never in a cell);
- a chapter whose cells all passed is handed to the book build through the execution
  cache (outputs, widget state, run time; see ``tools/chapter_cache.py``), so that
  ``make test`` then ``make book`` executes each chapter once.
"""

from __future__ import annotations

import contextlib
import time
from queue import Empty

import jupytext
import nbval.kernel as nbval_kernel
import nbval.plugin as nbval_plugin
import pytest

#: Code run in the kernel after the last cell: the state of every live widget.
WIDGET_STATE = """\
def _ntlib_widget_state():
    try:
        import ipywidgets
    except ImportError:
        return None
    state = ipywidgets.Widget.get_manager_state(drop_defaults=False)
    return state if state.get("state") else None
__import__("IPython").display.display({"application/vnd.ntlib.widget-state+json": _ntlib_widget_state() or {}},
                                       raw=True)
del _ntlib_widget_state
"""


class _TerminalKernel(nbval_kernel.RunningKernel):
    """nbval's kernel, with the terminal as its standard error (nbval uses /dev/null)."""

    def __init__(self, kernel_name, cwd=None, startup_timeout=60):
        self.km, self.kc = nbval_kernel.start_new_kernel(
            startup_timeout=startup_timeout, kernel_name=kernel_name, cwd=cwd,
            extra_arguments=["--IPKernelApp.log_level=ERROR"])  # no "running over TCP" line
        self._ensure_iopub_up()


class JupytextNotebook(nbval_plugin.IPyNbFile):
    """An nbval notebook whose source is a jupytext MyST markdown file."""

    def collect(self):
        original = nbval_plugin.nbformat.read
        nbval_plugin.nbformat.read = lambda path, as_version=4: jupytext.read(path)
        try:
            items = list(super().collect())
        finally:
            nbval_plugin.nbformat.read = original
        self.cells = items
        self.passed: set[str] = set()
        return items

    def setup(self):
        capman = self.config.pluginmanager.getplugin("capturemanager")
        suspended = capman.global_and_fixture_disabled() if capman else contextlib.nullcontext()
        original = nbval_plugin.RunningKernel
        nbval_plugin.RunningKernel = _TerminalKernel
        try:
            with suspended:  # the kernel inherits the real stderr, not pytest's capture
                self.started = time.perf_counter()
                super().setup()
        finally:
            nbval_plugin.RunningKernel = original

    def teardown(self):
        try:
            if self.kernel is not None and self.kernel.is_alive() and self.cells \
                    and all(item.nodeid in self.passed for item in self.cells):
                self.hand_to_book(time.perf_counter() - self.started)
        finally:
            super().teardown()

    def hand_to_book(self, seconds: float) -> None:
        """Store this complete run in the book's execution cache."""
        try:
            from tools import chapter_cache
        except ImportError:  # not run from the repository
            return
        nb = chapter_cache.read(self.path)
        code = [c for c in nb.cells if c.cell_type == "code"]
        if len(code) != len(self.cells) or any(c.source != i.cell.source for c, i in zip(code, self.cells)):
            return  # jupytext and myst-nb disagree on the cells: let the book execute
        for count, (cell, item) in enumerate(zip(code, self.cells), 1):
            cell.execution_count = count
            cell.outputs = [_plain(o) for o in item.test_outputs or []]
        state = self._kernel_widget_state()
        if state:
            nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": state}
        info = self._kernel_language_info()
        if info:
            nb.metadata["language_info"] = info
        chapter_cache.store(self.path, nb, seconds)

    def _kernel_widget_state(self):
        kernel = self.kernel
        msg_id = kernel.execute_cell_input(WIDGET_STATE, allow_stdin=False)
        state = None
        while True:
            try:
                msg = kernel.get_message(stream="iopub", timeout=30)
            except Empty:
                return None
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "display_data":
                state = msg["content"]["data"].get("application/vnd.ntlib.widget-state+json")
            elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                return state or None

    def _kernel_language_info(self):
        kc = self.kernel.kc
        msg_id = kc.kernel_info()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                reply = kc.get_shell_msg(timeout=1)
            except Empty:
                continue
            if reply["parent_header"].get("msg_id") == msg_id:
                return reply["content"].get("language_info")
        return None


def _plain(output):
    """An nbval output (a NotebookNode) as a plain nbformat output."""
    from nbformat import from_dict

    out = dict(output)
    if out["output_type"] in ("display_data", "execute_result"):
        out.setdefault("metadata", {})
    return from_dict(out)


def pytest_collect_file(file_path, parent):
    if file_path.suffix == ".md" and file_path.parent.name == "notebooks":
        return JupytextNotebook.from_parent(parent, path=file_path)
    return None


def _expected_seconds() -> dict[str, float]:
    """Median run time of each chapter in the committed seed sweep (book/claims/sweep.json)."""
    import json
    from pathlib import Path

    sweep = Path(__file__).parent / "book" / "claims" / "sweep.json"
    try:
        chapters = json.loads(sweep.read_text(encoding="utf-8")).get("chapters", {})
    except (OSError, ValueError):
        return {}
    return {Path(c["notebook"]).name: c["seconds"]["median"] for c in chapters.values()
            if c.get("notebook") and c.get("seconds")}


def pytest_collection_modifyitems(session, config, items):
    """Chapters first, longest first: with pytest-xdist (--dist loadfile,
    --no-loadscope-reorder) the long chapters start at once on the workers and the
    unit-test files fill in around them. Chapter lengths come from the seed sweep;
    a chapter not swept yet counts as long. The order of cells in a chapter is kept."""
    expected = _expected_seconds()

    def key(item):
        parent = getattr(item, "parent", None)
        if not isinstance(parent, JupytextNotebook):
            return (1, 0.0)
        return (0, -expected.get(parent.path.name, float("inf")))

    items.sort(key=key)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Remember which chapter cells passed (a chapter is cached only if all did)."""
    outcome = yield
    report = outcome.get_result()
    parent = getattr(item, "parent", None)
    if isinstance(parent, JupytextNotebook) and report.when == "call" and report.passed:
        parent.passed.add(item.nodeid)
