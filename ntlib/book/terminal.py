"""Progress of long runs: in the terminal, and in the running cell in JupyterLab; never in the page.

Paper-scale runs take minutes. :func:`progress` returns a callable ``f(step)`` that any
training loop with a per-step hook can call (``Callable[[int], None]``), and :func:`track`
wraps an iterable. Both write to the kernel process's *original* standard error:

- in a Jupyter kernel, ``sys.stderr`` and even file descriptor 2 are captured and sent to
  the notebook (ipykernel forwards fd-level output too), so the display writes to the
  descriptor ipykernel saved before capturing (``sys.stderr._original_stdstream_copy``):
  the terminal of ``jupyter lab`` (``make lab``), of ``jupyter-book build``, or of ``make
  test`` (the book's ``conftest.py`` gives nbval's kernels the real terminal);
- in a plain Python process, ``sys.__stderr__``.

In an interactive session, a kernel started by a Jupyter server (JupyterLab, ``make lab``,
or Notebook 7: the server sets ``JPY_SESSION_NAME`` in the kernel's environment, see
:func:`interactive_kernel`), the same line also shows in the running cell's output, as one
text line redrawn in place (a display with an id, at most every 0.5 s) that ends on the
last line (``train: 1000/1000 (100%) 3m12s``). The book build (myst-nb) and nbval start
their kernels without a server, so nothing reaches a built page's cells; ``make`` unexports
``JPY_SESSION_NAME`` so that a build started from a Lab terminal or a cell stays so.

When it shows: ``NTLIB_PROGRESS=1`` always, ``NTLIB_PROGRESS=0`` never; unset (or
``auto``) only at paper scale (``NTLIB_SCALE=paper``), so ci-scale runs stay silent.
On a terminal the line is redrawn in place (at most every 0.5 s); otherwise (a log
file) one line is written at most every 15 s, and a last line when the run ends.
"""

from __future__ import annotations

import io
import os
import sys
import time
from typing import Iterable, Iterator, TextIO, TypeVar

T = TypeVar("T")

#: The environment variable that shows (``1``) or hides (``0``) progress; ``auto`` (default) shows it at paper scale.
ENV = "NTLIB_PROGRESS"
#: Set by a Jupyter server in the environment of the kernels it starts (the notebook's path).
SERVER_ENV = "JPY_SESSION_NAME"
#: Seconds between redraws of the line in a cell.
CELL_INTERVAL = 0.5

_TERMINAL: TextIO | None = None


def enabled_by_default() -> bool:
    """Whether progress shows when not asked explicitly (``NTLIB_PROGRESS``, scale).

    Example
    -------
    >>> import os; os.environ["NTLIB_PROGRESS"] = "0"
    >>> enabled_by_default()
    False
    >>> del os.environ["NTLIB_PROGRESS"]
    """
    raw = os.environ.get(ENV, "auto").strip().lower() or "auto"
    if raw in ("1", "on", "true", "yes"):
        return True
    if raw in ("0", "off", "false", "no"):
        return False
    if raw != "auto":
        raise ValueError(f"{ENV} must be 1, 0 or auto, got {raw!r}")
    from ..config import get_config

    return get_config().paper


def terminal_stream() -> TextIO | None:
    """The kernel's original standard error (see the module notes), or ``None``.

    Example
    -------
    >>> terminal_stream() is None or hasattr(terminal_stream(), "write")
    True
    """
    global _TERMINAL
    if _TERMINAL is not None and not _TERMINAL.closed:
        return _TERMINAL
    fd = getattr(sys.stderr, "_original_stdstream_copy", None)  # ipykernel >= 6
    if isinstance(fd, int):
        try:
            _TERMINAL = os.fdopen(os.dup(fd), "w", buffering=1, encoding="utf-8", errors="replace")
        except OSError:
            _TERMINAL = None
    else:
        _TERMINAL = sys.__stderr__
    return _TERMINAL


def interactive_kernel() -> bool:
    """Whether this process is a kernel that a Jupyter server started: a person watches its cells.

    True in a kernel of JupyterLab or Notebook 7 (``JPY_SESSION_NAME`` set, an IPython kernel
    running); false in a plain Python process, and in the kernels of the book build and
    nbval, which no server starts.

    Example
    -------
    >>> interactive_kernel()   # a doctest runs in no kernel
    False
    """
    if not os.environ.get(SERVER_ENV, "").strip():
        return False
    return _kernel_shell() is not None


def _kernel_shell():
    """The running IPython kernel's shell, or ``None`` (not in a kernel)."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return None
    try:
        shell = ipython.get_ipython()
    except Exception:  # pragma: no cover - a broken IPython: no kernel to draw in
        return None
    return shell if getattr(shell, "kernel", None) is not None else None


class CellLine:
    """One text line in the running cell's output, redrawn in place (a display with an id)."""

    def __init__(self):
        self.handle = None
        self.dead = False

    def draw(self, text: str) -> None:
        """Show ``text``: a new display the first time, an update of it afterwards."""
        if self.dead:
            return
        if _kernel_shell() is None:  # outside a kernel IPython would print the bundle
            self.dead = True
            return
        try:
            from IPython.display import display

            bundle = {"text/plain": text}
            if self.handle is None:
                self.handle = display(bundle, raw=True, display_id=True)
            else:
                self.handle.update(bundle, raw=True)
        except Exception:  # no kernel to draw in any more: the terminal still has the line
            self.dead = True


class Progress:
    """A progress line for a loop of ``total`` steps; call it with the steps done so far.

    Made by :func:`progress`, which documents the parameters.
    """

    def __init__(self, total: int, desc: str, *, enabled: bool, out: TextIO | None,
                 interval: float | None, cell: bool = False):
        self.total, self.desc = total, desc
        self.out = out if enabled else None
        self.cell = CellLine() if enabled and cell else None
        tty = bool(self.out is not None and _isatty(self.out))
        self.tty = tty
        self.interval = interval if interval is not None else (0.5 if tty else 15.0)
        self.cell_interval = interval if interval is not None else CELL_INTERVAL
        self.start = time.monotonic()
        self.last = self.cell_last = -float("inf")
        self.done = 0
        self.closed = False

    def __call__(self, step: int) -> None:
        """Record that ``step`` steps are done (a per-step hook: ``Callable[[int], None]``)."""
        if isinstance(step, bool):
            raise TypeError("step must be an int, got a bool")
        try:
            step = int(step)
        except (TypeError, ValueError):
            raise TypeError(f"step must be an int, got {type(step).__name__}") from None
        self.done = max(self.done, step)
        if (self.out is None and self.cell is None) or self.closed:
            return
        if self.done >= self.total:
            self.close()  # the last line, once
            return
        now = time.monotonic()
        if self.out is not None and now - self.last >= self.interval:
            self.last = now
            self._draw(final=False)
        if self.cell is not None and now - self.cell_last >= self.cell_interval:
            self.cell_last = now
            self.cell.draw(self.line())

    def close(self) -> None:
        """Write the last line (once) and end it with a newline."""
        if self.closed:
            return
        self.closed = True
        if self.out is not None:
            self._draw(final=True)
        if self.cell is not None:
            self.cell.draw(self.line())

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def line(self) -> str:
        """The text of the progress line now, e.g. ``'train: 500/1000 (50%) 3s, ~3s left'``."""
        elapsed = time.monotonic() - self.start
        pct = 100.0 * self.done / self.total
        text = f"{self.desc}: {self.done}/{self.total} ({pct:.0f}%) {_duration(elapsed)}"
        if 0 < self.done < self.total:
            text += f", ~{_duration(elapsed * (self.total - self.done) / self.done)} left"
        return text

    def _draw(self, final: bool) -> None:
        try:
            if self.tty:
                self.out.write("\r" + self.line().ljust(70) + ("\n" if final else ""))
            else:
                self.out.write(self.line() + "\n")
            self.out.flush()
        except (OSError, ValueError):  # terminal gone: stay silent
            self.out = None


def progress(total: int, desc: str = "run", *, enabled: bool | None = None,
             out: TextIO | None = None, interval: float | None = None,
             cell: bool | None = None) -> Progress:
    """A per-step progress hook for a run of ``total`` steps, shown in the terminal (and in Lab).

    Parameters
    ----------
    total
        Number of steps of the run (>= 1).
    desc
        What runs, printed at the start of the line.
    enabled
        ``True``/``False`` to force; default :func:`enabled_by_default` (paper scale, or
        ``NTLIB_PROGRESS``).
    out
        Where to write; default :func:`terminal_stream` (never a cell's output).
    interval
        Seconds between redraws; default 0.5 on a terminal and in a cell, 15 otherwise.
    cell
        Also show the line in the running cell's output (when shown at all); default
        :func:`interactive_kernel` (JupyterLab, Notebook 7; never the book build or nbval).

    Returns
    -------
    Progress
        Callable as ``f(step)`` with the number of steps done (any hook of type
        ``Callable[[int], None]``); ``close()`` (or a ``with`` block) ends the line.
        Reaching ``total`` closes it.

    Example
    -------
    >>> buf = io.StringIO()
    >>> f = progress(4, "train", enabled=True, out=buf, interval=0)
    >>> for step in range(1, 5):
    ...     f(step)
    >>> buf.getvalue().splitlines()[-1].startswith("train: 4/4 (100%)")
    True
    >>> silent = progress(4, "train", enabled=False); silent(1)   # writes nothing
    """
    if isinstance(total, bool) or not isinstance(total, int) or total < 1:
        raise ValueError(f"total must be a positive int, got {total!r}")
    if not isinstance(desc, str):
        raise TypeError(f"desc must be a string, got {type(desc).__name__}")
    if interval is not None and not interval >= 0:
        raise ValueError(f"interval must be >= 0 seconds, got {interval!r}")
    show = enabled_by_default() if enabled is None else bool(enabled)
    in_cell = show and (interactive_kernel() if cell is None else bool(cell))
    return Progress(total, desc, enabled=show, out=out if out is not None else (terminal_stream() if show else None),
                    interval=interval, cell=in_cell)


def track(iterable: Iterable[T], desc: str = "run", *, total: int | None = None,
          enabled: bool | None = None, out: TextIO | None = None,
          cell: bool | None = None) -> Iterator[T]:
    """Iterate over ``iterable`` with a :func:`progress` line (``total`` from ``len`` if absent).

    Example
    -------
    >>> buf = io.StringIO()
    >>> sum(track(range(3), "sum", enabled=True, out=buf))
    3
    >>> "sum: 3/3" in buf.getvalue()
    True
    """
    if total is None:
        try:
            total = len(iterable)  # type: ignore[arg-type]
        except TypeError:
            raise TypeError("total is required for an iterable without len()") from None
    bar = progress(total, desc, enabled=enabled, out=out, cell=cell)
    with bar:
        for i, item in enumerate(iterable, 1):
            yield item
            bar(i)


def _isatty(out: TextIO) -> bool:
    try:
        return out.isatty()
    except (AttributeError, ValueError, io.UnsupportedOperation):
        return False


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
