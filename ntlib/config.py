"""Run-time configuration shared by every chapter and by the tests.

Everything a chapter needs to know about *where* and *how big* it runs comes
from environment variables read here, so that one switch changes the whole book:

``NTLIB_SEED``
    Integer seed (default ``0``). Every chapter's results must hold for any seed.
``NTLIB_SCALE``
    ``ci`` (default): each chapter runs on 2 CPU cores in about a minute.
    ``paper``: the larger experiments (longer runs, more seeds, wider nets).
``NTLIB_DEVICE``
    ``auto`` (default: CUDA when available, else CPU), ``cpu``, ``cuda``, ``cuda:1``...
``NTLIB_THREADS``
    Torch intra-op threads on CPU. Default ``1``: for the tiny tensors of the
    theory checks one thread was measured faster than two on a 2-core machine
    (see the Performance page); set it higher for large models.

Theory checks run in float64 (:data:`DTYPE`); the round-off of float32 hides the
:math:`\\eta^2` effects the book measures.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

import numpy as np
import torch

from . import _checks

SCALES = ("ci", "paper")

#: Default floating-point type for theory checks.
DTYPE = torch.float64


@dataclass(frozen=True)
class Config:
    """The resolved configuration: seed, scale, device, dtype and thread count.

    Example
    -------
    >>> cfg = Config(seed=0, scale="ci", device=torch.device("cpu"), dtype=DTYPE, threads=1)
    >>> cfg.pick(100, 10_000), cfg.paper
    (100, False)
    """

    seed: int
    scale: str
    device: torch.device
    dtype: torch.dtype
    threads: int

    @property
    def paper(self) -> bool:
        """True when running the larger, paper-scale experiments."""
        return self.scale == "paper"

    def pick(self, ci, paper):
        """Return ``ci`` at ci scale and ``paper`` at paper scale."""
        return paper if self.paper else ci


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an integer, got {raw!r}") from None


def get_config() -> Config:
    """Read ``NTLIB_*`` environment variables and return a :class:`Config`.

    Raises
    ------
    ValueError
        If a variable has a value outside its allowed set.

    Example
    -------
    >>> cfg = get_config()
    >>> cfg.scale in SCALES and cfg.dtype == torch.float64
    True
    """
    seed = _int_env("NTLIB_SEED", 0)
    scale = os.environ.get("NTLIB_SCALE", "ci").strip().lower() or "ci"
    if scale not in SCALES:
        raise ValueError(f"NTLIB_SCALE must be one of {SCALES}, got {scale!r}")
    dev = os.environ.get("NTLIB_DEVICE", "auto").strip().lower() or "auto"
    if dev == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            device = torch.device(dev)
        except RuntimeError:
            raise ValueError(f"NTLIB_DEVICE must be 'auto', 'cpu' or 'cuda[:i]', got {dev!r}") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("NTLIB_DEVICE asks for CUDA but torch.cuda.is_available() is False")
    threads = _int_env("NTLIB_THREADS", 1)
    if threads < 1:
        raise ValueError(f"NTLIB_THREADS must be >= 1, got {threads}")
    return Config(seed=seed, scale=scale, device=device, dtype=DTYPE, threads=threads)


def setup(seed_offset: int = 0) -> Config:
    """Apply the configuration: seed every generator, set dtype and threads.

    Call once at the top of a chapter::

        cfg = ntlib.setup()

    ``seed_offset`` derives an independent stream for a sub-experiment while
    keeping it a function of ``NTLIB_SEED``.

    Example
    -------
    >>> dtype, threads = torch.get_default_dtype(), torch.get_num_threads()
    >>> cfg = setup()
    >>> torch.get_default_dtype() == cfg.dtype
    True
    >>> torch.set_default_dtype(dtype); torch.set_num_threads(threads)  # a chapter keeps them; a doctest restores them
    """
    _checks.integer("seed_offset", seed_offset)
    cfg = get_config()
    seed_everything(cfg.seed + seed_offset)
    torch.set_default_dtype(cfg.dtype)
    if cfg.device.type == "cpu":
        torch.set_num_threads(cfg.threads)
    return cfg


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's generators.

    Example
    -------
    >>> seed_everything(3); a = torch.rand(2); seed_everything(3)
    >>> torch.equal(a, torch.rand(2))
    True
    """
    _checks.integer("seed", seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A fresh torch generator seeded with ``seed`` (for reproducible data streams).

    Example
    -------
    >>> a = torch.randn(3, generator=generator(5))
    >>> torch.equal(a, torch.randn(3, generator=generator(5)))
    True
    """
    _checks.integer("seed", seed)
    g = torch.Generator(device=device)
    g.manual_seed(seed)
    return g
