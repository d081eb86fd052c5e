"""The ledger files behind the claims: where they live, how they are written and read.

:func:`ntlib.book.setup` opens the ledger of a chapter run (:func:`open_ledger`);
every :func:`ntlib.book.claims.claim` then rewrites the chapter's file atomically
(:func:`write_json`), so a failing claim is on disk before it raises, and a crash never
leaves a half-written file. The book's "Claims and checks" page and the seed sweep
(``tools/seeds.py``) read them back (:func:`read_ledger`).

Ledger file (``<ledger dir>/<chapter>.json``, one per chapter run, rewritten whole on
every claim)::

    {"format": "ntlib-claims/1", "chapter": "ch1", "seed": 0, "scale": "ci",
     "device": "cpu", "started": "...", "updated": "...",
     "claims": [{"id": "ch1.flow-slope", "chapter": "ch1", "kind": "value",
                 "statement": "...", "why": "...", "value": 1.99, "lo": 1.85,
                 "hi": 2.15, "n": null, "passed": true, "margin": 0.14,
                 "rel_margin": 0.07, "seed": 0, "scale": "ci"}, ...]}
"""

from __future__ import annotations

import datetime
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["FORMAT", "ENV", "Ledger", "ledger_dir", "open_ledger", "current", "close", "read_ledger", "write_json"]

#: Ledger file format written by this module.
FORMAT = "ntlib-claims/1"
#: Environment variable naming the ledger directory.
ENV = "NTLIB_CLAIMS_DIR"

_CHAPTER = re.compile(r"ch[0-9]+")


def ledger_dir() -> Path:
    """The directory the ledger files are written to.

    ``$NTLIB_CLAIMS_DIR`` when set; else ``_build/claims`` in the book's root (the
    nearest folder above the working directory that holds ``_toc.yml``: so ``make
    test``, ``make book`` and a Jupyter session opened on the repository agree); else
    ``$XDG_CACHE_HOME/ntlib/claims`` (``~/.cache/ntlib/claims``) for a chapter
    downloaded and run elsewhere.

    Example
    -------
    >>> isinstance(ledger_dir(), Path)
    True
    """
    env = os.environ.get(ENV, "").strip()
    if env:
        return Path(env).expanduser()
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "_toc.yml").is_file():
            return folder / "_build" / "claims"
    cache = os.environ.get("XDG_CACHE_HOME", "").strip() or Path.home() / ".cache"
    return Path(cache) / "ntlib" / "claims"


class Ledger:
    """The open ledger of one chapter run: its file, run metadata and the records so far.

    One is open at a time (module state), opened by :func:`open_ledger` and returned by
    :func:`current`; the claims of :mod:`ntlib.book.claims` append to it.
    """

    def __init__(self, chapter: str, path: Path, seed: int, scale: str, device: str):
        self.chapter, self.path, self.seed, self.scale, self.device = chapter, path, seed, scale, device
        self.started = _now()
        self.records: list[dict[str, Any]] = []
        self.sites: dict[str, tuple[object, object]] = {}

    def document(self) -> dict[str, Any]:
        return {"format": FORMAT, "chapter": self.chapter, "seed": self.seed, "scale": self.scale,
                "device": self.device, "started": self.started, "updated": _now(),
                "claims": self.records}

    def write(self) -> None:
        write_json(self.path, self.document())


_LEDGER: Ledger | None = None


def open_ledger(chapter: str, *, directory: str | os.PathLike | None = None,
                seed: int | None = None, scale: str | None = None, device: str | None = None) -> Path:
    """Start the ledger of a chapter run: an empty ``<directory>/<chapter>.json``.

    :func:`ntlib.book.setup` calls it; call it directly only outside a chapter (tests).
    Opening again (re-running a chapter's first cell) starts a new run.

    Parameters
    ----------
    chapter
        ``"ch1"``, ``"ch2"``, ...
    directory
        Where to write; default :func:`ledger_dir`.
    seed, scale, device
        Recorded with every claim; default: the current :func:`ntlib.config.get_config`.

    Returns
    -------
    pathlib.Path
        The ledger file.

    Example
    -------
    >>> import tempfile
    >>> path = open_ledger("ch0", directory=tempfile.mkdtemp())
    >>> path.name, read_ledger(path)["claims"]
    ('ch0.json', [])
    """
    global _LEDGER
    if not isinstance(chapter, str) or not _CHAPTER.fullmatch(chapter):
        raise ValueError(f"chapter must look like 'ch1', got {chapter!r}")
    if seed is None or scale is None or device is None:
        from ..config import get_config

        cfg = get_config()
        seed = cfg.seed if seed is None else seed
        scale = cfg.scale if scale is None else scale
        device = str(cfg.device) if device is None else device
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    folder = Path(directory).expanduser() if directory is not None else ledger_dir()
    _LEDGER = Ledger(chapter, folder / f"{chapter}.json", seed, str(scale), str(device))
    _LEDGER.write()
    return _LEDGER.path


def current() -> Ledger | None:
    """The open ledger (``None`` before :func:`open_ledger`, or after :func:`close`).

    Example
    -------
    >>> import tempfile
    >>> _ = open_ledger("ch0", directory=tempfile.mkdtemp(), seed=0, scale="ci", device="cpu")
    >>> current().chapter
    'ch0'
    """
    return _LEDGER


def close() -> None:
    """Forget the open ledger (its file stays); claims then fail until a ledger is opened.

    Example
    -------
    >>> close(); current() is None
    True
    """
    global _LEDGER
    _LEDGER = None


def read_ledger(path: str | os.PathLike) -> dict[str, Any]:
    """Read a ledger file (or ``<dir>/<chapter>.json`` given the directory and a chapter file).

    Example
    -------
    >>> import tempfile
    >>> path = open_ledger("ch0", directory=tempfile.mkdtemp(), seed=3, scale="ci", device="cpu")
    >>> read_ledger(path)["seed"]
    3
    """
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    if doc.get("format") != FORMAT:
        raise ValueError(f"{path}: not a claims ledger (format {doc.get('format')!r}, expected {FORMAT!r})")
    return doc


def write_json(path: str | os.PathLike, doc: Any) -> None:
    """Write ``doc`` as JSON atomically: a temporary file in the same folder, then a rename.

    A reader never sees a half-written file, and a crash leaves the previous version.

    Example
    -------
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "a" / "b.json"
    >>> write_json(p, {"x": 1}); json.loads(p.read_text())
    {'x': 1}
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1, allow_nan=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
