"""Run one chapter in a fresh kernel at a given seed and scale: the unit of work of the
seed sweep (``make seeds``) and of the paper-scale timings (``make paper``).

A run executes the chapter's MyST notebook with nbclient (as the book build does, in
the chapter's folder), with ``NTLIB_SEED``, ``NTLIB_SCALE``, one CPU thread and its own
claims ledger folder, and returns a plain dict (picklable, JSON-ready): whether every
cell ran, the first failing cell (numbered as nbval does: code cells from 0) with its
error line, the run time, and the chapter's ledger (:mod:`ntlib.book.ledger`).
"""

from __future__ import annotations

import datetime
import os
import platform
import re
import subprocess
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
_FILE = re.compile(r"(\d+)_[A-Za-z0-9_-]+\.md")


def chapters(root: Path = ROOT) -> list[Path]:
    """The chapter notebooks, ``notebooks/NN_name.md``, in order.

    Example
    -------
    >>> [p.name for p in chapters()][:1]
    ['01_entropic_loss.md']
    """
    return sorted(p for p in (root / "notebooks").glob("*.md") if _FILE.fullmatch(p.name))


def chapter_id(path: str | os.PathLike) -> str:
    """The ledger name of a chapter file: ``notebooks/01_entropic_loss.md`` -> ``"ch1"``.

    Example
    -------
    >>> chapter_id("notebooks/04_sharpening.md")
    'ch4'
    """
    m = _FILE.fullmatch(Path(path).name)
    if m is None:
        raise ValueError(f"not a chapter file (NN_name.md): {path}")
    return f"ch{int(m.group(1))}"


def select(spec: str | None, paths: list[Path] | None = None) -> list[Path]:
    """The chapters named by ``spec``: empty or ``all`` for every chapter, else a list
    separated by commas or spaces of numbers (``01``, ``1``), ids (``ch1``) or file stems.

    Example
    -------
    >>> [p.name for p in select("1", chapters())]
    ['01_entropic_loss.md']
    """
    paths = chapters() if paths is None else paths
    if spec is None or spec.strip().lower() in ("", "all"):
        return list(paths)
    out = []
    for word in re.split(r"[,\s]+", spec.strip()):
        hits = [p for p in paths if word in (p.stem, p.name, chapter_id(p))
                or (word.isdigit() and chapter_id(p) == f"ch{int(word)}")]
        if not hits:
            raise ValueError(f"CHAPTERS: no chapter matches {word!r} (have {', '.join(p.stem for p in paths)})")
        out += [p for p in hits if p not in out]
    return out


def parse_seeds(spec: str) -> list[int]:
    """Seeds from ``"0-19"``, ``"3,5,7"`` or a mix such as ``"0-4,9"``.

    Example
    -------
    >>> parse_seeds("0-3,7")
    [0, 1, 2, 3, 7]
    """
    seeds: list[int] = []
    for part in re.split(r"[,\s]+", str(spec).strip()):
        if not part:
            continue
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if m is None:
            raise ValueError(f"SEEDS must look like 0-19 or 3,5,7; got {spec!r}")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi < lo:
            raise ValueError(f"SEEDS: empty range {part!r}")
        seeds += [s for s in range(lo, hi + 1) if s not in seeds]
    if not seeds:
        raise ValueError(f"SEEDS names no seed: {spec!r}")
    return seeds


def run_chapter(notebook: str, seed: int, scale: str, ledger_dir: str, timeout: int = 3600,
                progress: bool = False, save: str | None = None) -> dict[str, Any]:
    """Execute one chapter in a fresh kernel; never raises for a failing chapter.

    Parameters
    ----------
    notebook
        Path of the chapter's ``.md``.
    seed, scale
        ``NTLIB_SEED`` and ``NTLIB_SCALE`` of the run.
    ledger_dir
        ``NTLIB_CLAIMS_DIR`` of the run (its own folder).
    timeout
        Seconds per cell.
    progress
        Show long loops' progress in this terminal (``NTLIB_PROGRESS``).
    save
        Also write the executed notebook there (``.ipynb``).

    Returns
    -------
    dict
        ``notebook, chapter, seed, scale, ok, cell, error, seconds, ledger, host``.
    """
    import jupytext
    import nbclient
    import nbformat
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    path = Path(notebook).resolve()
    nb = jupytext.read(path)
    env = dict(os.environ)
    env.update(NTLIB_SEED=str(seed), NTLIB_SCALE=scale, NTLIB_CLAIMS_DIR=str(ledger_dir),
               NTLIB_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               NTLIB_PROGRESS="1" if progress else "0", PYTHONHASHSEED="0")
    Path(ledger_dir).mkdir(parents=True, exist_ok=True)
    client = nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=False,
                                     resources={"metadata": {"path": str(path.parent)}},
                                     extra_arguments=["--IPKernelApp.log_level=ERROR"])
    error = cell = None
    start = time.perf_counter()
    try:
        client.execute(env=env)
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as exc:
        cell, error = _failure(nb, exc)
    except Exception as exc:  # kernel could not start, etc.
        error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    seconds = time.perf_counter() - start
    if save:
        Path(save).parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, save)
    ledger = None
    chapter = chapter_id(path)
    file = Path(ledger_dir) / f"{chapter}.json"
    if file.is_file():
        from ntlib.book.ledger import read_ledger

        ledger = read_ledger(file)
    return {"notebook": _rel(path), "chapter": chapter, "seed": seed, "scale": scale,
            "ok": error is None, "cell": cell, "error": error, "seconds": round(seconds, 2),
            "ledger": ledger, "host": platform.node()}


def _failure(nb, exc: Exception) -> tuple[int | None, str]:
    """The failing code cell (nbval numbering: code cells from 0) and a one-line error."""
    index = -1
    for c in nb.cells:
        if c.cell_type != "code":
            continue
        index += 1
        for out in c.get("outputs", []):
            if out.get("output_type") == "error":
                return index, f"{out.get('ename')}: {_first_line(out.get('evalue', ''))}"
    ename = getattr(exc, "ename", type(exc).__name__)
    evalue = getattr(exc, "evalue", str(exc))
    return None, f"{ename}: {_first_line(evalue)}"


def _first_line(text: str, limit: int = 400) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(text)).strip()
    line = text.splitlines()[0] if text else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _rel(path: Path) -> str:
    try:
        return path.relative_to(ROOT).as_posix()
    except ValueError:
        return str(path)


def machine() -> dict[str, Any]:
    """CPU model, logical cores, OS and Python of this machine.

    Example
    -------
    >>> sorted(machine())
    ['cores', 'cpu', 'platform', 'python']
    """
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version()}


def git_commit(root: Path = ROOT) -> str:
    """The short commit hash of ``root``, with ``+dirty`` when tracked files differ.

    Example
    -------
    >>> isinstance(git_commit(), str)
    True
    """
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def now() -> str:
    """The time now, UTC, ISO 8601 to the second."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
