"""The chapter kit: what only the book's chapters need, outside the numerical core.

The numerical modules of :mod:`ntlib` never import this package; it may import them.
Every chapter starts with the same cell::

    from ntlib import book
    cfg = book.setup("ch1")

which seeds everything, sets float64 and the thread count (:func:`ntlib.config.setup`),
applies the plot style, opens the chapter's claims ledger and prints one line. Then:

- :func:`~ntlib.book.claims.claim`, :func:`~ntlib.book.claims.claim_count` state each result with its bound and reason
  (:mod:`ntlib.book.claims`; the files behind the "Claims and checks" page are :mod:`ntlib.book.ledger`),
  and :func:`~ntlib.book.claims.glue` glues any other number the prose quotes;
- :func:`~ntlib.book.streams.stream` (:func:`~ntlib.book.streams.rng`) give a named random stream instead of ``cfg.seed + 7``
  (:mod:`ntlib.book.streams`);
- :func:`~ntlib.book.explore.figure_slider`, :func:`~ntlib.book.explore.png_bytes` make kernel-free explorers
  (:mod:`ntlib.book.explore`, needs ``ipywidgets``);
- :mod:`ntlib.book.data` loads data offline (the 8x8 digits);
- :func:`~ntlib.book.terminal.progress`, :func:`~ntlib.book.terminal.track` show long paper-scale runs in the terminal
  (:mod:`ntlib.book.terminal`).

Matplotlib, ipywidgets and scikit-learn (the ``book`` extra) are imported only by the
functions that need them.
"""

from __future__ import annotations

import importlib
from typing import Any

from ..config import Config
from ..config import setup as _config_setup
from . import claims, data, ledger, streams, terminal
from .claims import claim, claim_count, glue
from .ledger import ledger_dir
from .terminal import progress, track
from .streams import rng, seed_of, stream

__all__ = ["setup", "claim", "claim_count", "glue", "ledger_dir", "stream", "rng", "seed_of",
           "progress", "track", "figure_slider", "png_bytes", "claims", "data", "ledger", "streams",
           "terminal"]


def setup(chapter: str, *, quiet: bool = False) -> Config:
    """Set up a chapter: configuration, plot style, claims ledger; print one line.

    Parameters
    ----------
    chapter
        The chapter's ledger name, ``"ch1"``, ``"ch2"``, ...; claim ids start with it.
    quiet
        Do not print the line ``ch1: seed 0, scale ci, device cpu``.

    Returns
    -------
    ntlib.config.Config
        Seed, scale, device, dtype and threads, from the ``NTLIB_*`` variables.

    Example
    -------
    >>> import tempfile, os
    >>> os.environ["NTLIB_CLAIMS_DIR"] = tempfile.mkdtemp()
    >>> cfg = setup("ch0")
    ch0: seed ..., scale ..., device ...
    >>> (ledger_dir() / "ch0.json").is_file()
    True
    >>> del os.environ["NTLIB_CLAIMS_DIR"]
    """
    if not isinstance(chapter, str):
        raise TypeError(f"chapter must be a string like 'ch1', got {type(chapter).__name__}")
    cfg = _config_setup()
    from .style import apply_style

    apply_style()
    ledger.open_ledger(chapter, seed=cfg.seed, scale=cfg.scale, device=str(cfg.device))
    if not quiet:
        print(f"{chapter}: seed {cfg.seed}, scale {cfg.scale}, device {cfg.device}")
    return cfg


def __getattr__(name: str) -> Any:
    """Import the explorers (ipywidgets, matplotlib) only when a chapter asks for them."""
    if name in ("figure_slider", "png_bytes", "explore"):
        explore = importlib.import_module(f"{__name__}.explore")
        return explore if name == "explore" else getattr(explore, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
