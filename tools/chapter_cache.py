"""Hand the chapters executed by the tests (nbval) to the book build: each chapter runs once.

``make test`` executes every chapter under nbval; ``make book`` renders them with myst-nb
in ``execute_notebooks: cache`` mode. The root ``conftest.py`` stores each chapter that
nbval ran without a failure (outputs, widget state, run time) into a jupyter-cache
folder, and the book build (``book/_ext/chapter_cache.py``) reads from the same folder.

A stale cache can never be used:

- the folder is ``_build/.jupyter_cache/<fingerprint>``, where the fingerprint hashes
  every file of ``ntlib/``, ``requirements-lock.txt``, ``pyproject.toml``, the versions of
  Python and of the numerical packages installed, and the resolved ``NTLIB_SEED``,
  ``NTLIB_SCALE``, ``NTLIB_DEVICE``, ``NTLIB_THREADS`` and BLAS thread counts: change
  any and the build looks in an empty folder, so it executes;
- inside it, jupyter-cache matches a chapter only if every code cell (source and
  metadata) is the same as the run that was stored;
- only complete runs are stored (every cell passed).

On a fresh clone nothing is cached: ``make book`` alone executes every chapter.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]

#: Inputs of a chapter run besides its code cells.
SOURCES = ("ntlib",)
FILES = ("requirements-lock.txt", "pyproject.toml")
DISTRIBUTIONS = ("torch", "numpy", "scipy", "matplotlib", "ipywidgets", "scikit-learn", "ipykernel")
#: Environment variables that change what a chapter computes (with their defaults); thread
#: counts change sums at round-off level only, but a cached run must be the run one would get.
ENV_DEFAULTS = {"NTLIB_SEED": "0", "NTLIB_SCALE": "ci", "NTLIB_DEVICE": "auto", "NTLIB_THREADS": "1",
                "OMP_NUM_THREADS": "", "OPENBLAS_NUM_THREADS": "", "MKL_NUM_THREADS": ""}


def fingerprint(root: Path = ROOT, environ: dict | None = None) -> str:
    """A hash of everything besides the code cells that a chapter's outputs depend on.

    Example
    -------
    >>> a = fingerprint(environ={"NTLIB_SEED": "0"})
    >>> a == fingerprint(environ={}) != fingerprint(environ={"NTLIB_SEED": "1"})
    True
    """
    environ = os.environ if environ is None else environ
    h = hashlib.sha256()

    def add(label: str, data: bytes) -> None:
        h.update(label.encode() + b"\0" + hashlib.sha256(data).digest())

    for folder in SOURCES:
        for path in sorted((root / folder).rglob("*.py")):
            add(path.relative_to(root).as_posix(), path.read_bytes())
    for name in FILES:
        path = root / name
        add(name, path.read_bytes() if path.is_file() else b"<missing>")
    add("python", platform.python_version().encode())
    for dist in DISTRIBUTIONS:
        try:
            version = metadata.version(dist)
        except metadata.PackageNotFoundError:
            version = "<none>"
        add(f"dist:{dist}", version.encode())
    for name, default in sorted(ENV_DEFAULTS.items()):
        value = (environ.get(name, "") or default).strip().lower()
        add(f"env:{name}", value.encode())
    return h.hexdigest()[:16]


def cache_dir(root: Path = ROOT, environ: dict | None = None) -> Path:
    """The jupyter-cache folder for the current inputs: ``_build/.jupyter_cache/<fingerprint>``.

    Example
    -------
    >>> cache_dir().parent.name
    '.jupyter_cache'
    """
    return root / "_build" / ".jupyter_cache" / fingerprint(root, environ)


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """An exclusive lock on ``folder`` (parallel test workers write the same cache)."""
    import fcntl

    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def store(path: Path, notebook, seconds: float, root: Path = ROOT) -> int | None:
    """Store an executed chapter in the cache; return the record's id (None without jupyter-cache).

    ``notebook`` must be the chapter as myst-nb reads it, with the outputs of one complete
    run; ``seconds`` its run time (shown in the book's execution table).
    """
    try:
        from jupyter_cache import get_cache
        from jupyter_cache.base import CacheBundleIn
    except ImportError:  # the book extra is not installed: nothing reads the cache
        return None
    folder = cache_dir(root)
    with _locked(folder):
        cache = get_cache(str(folder))
        record = cache.cache_notebook_bundle(
            CacheBundleIn(notebook, str(Path(path).resolve()), data={"execution_seconds": float(seconds)}),
            check_validity=False, overwrite=True)
    return record.pk


def cached(path: Path, root: Path = ROOT) -> bool:
    """Whether the current cache holds a run of the chapter at ``path`` as it is now."""
    try:
        from jupyter_cache import get_cache
    except ImportError:
        return False
    folder = cache_dir(root)
    if not (folder / "global.db").is_file():
        return False
    with _locked(folder):
        try:
            get_cache(str(folder)).match_cache_notebook(read(path))
        except KeyError:
            return False
    return True


def read(path: Path):
    """Read a chapter the way the book build (myst-nb) reads it."""
    from myst_nb.core.read import read_myst_markdown_notebook
    from myst_parser.config.main import MdParserConfig

    text = Path(path).read_text(encoding="utf-8")
    return read_myst_markdown_notebook(text, MdParserConfig(), add_source_map=True, path=str(path))
