"""Named random streams: one generator per experiment, derived from ``NTLIB_SEED`` and a name.

A chapter asks for ``stream("digits-init")`` instead of ``generator(cfg.seed + 7)``:
the name says what the randomness is for, two experiments never share a stream by
accident (``seed + 1`` of one seed is ``seed + 0`` of the next), and adding an
experiment does not shift the others.

The seed of a stream is the first 63 bits of ``sha256(b"ntlib-stream:<seed>:<name>")``
(little-endian): stable across Python versions, processes and machines (Python's own
``hash`` of a string is salted per process and is never used).
"""

from __future__ import annotations

import hashlib
import re

import numpy as np
import torch

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]*")


def seed_of(name: str, seed: int | None = None) -> int:
    """The integer seed of the stream ``name`` for the run seed ``seed``.

    Parameters
    ----------
    name
        What the stream is for, e.g. ``"digits-init"`` (letters, digits, ``-._/``).
    seed
        The run seed; default ``NTLIB_SEED`` (:func:`ntlib.config.get_config`).

    Returns
    -------
    int
        In ``[0, 2**63)``, a valid seed for torch and numpy.

    Example
    -------
    >>> seed_of("digits-init", 0) == seed_of("digits-init", 0) != seed_of("digits-init", 1)
    True
    >>> seed_of("digits-init", 0)
    2220338556748935540
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"name must be a non-empty word of letters, digits and -._/ , got {name!r}")
    if seed is None:
        from ..config import get_config

        seed = get_config().seed
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    digest = hashlib.sha256(f"ntlib-stream:{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def stream(name: str, *, seed: int | None = None, device: torch.device | str = "cpu") -> torch.Generator:
    """A fresh torch generator for the named stream (see :func:`seed_of`).

    Calling it twice with the same name gives two generators in the same state: ask
    once per experiment and pass the generator on.

    Example
    -------
    >>> a = torch.randn(3, generator=stream("noise", seed=0))
    >>> torch.equal(a, torch.randn(3, generator=stream("noise", seed=0)))
    True
    >>> torch.equal(a, torch.randn(3, generator=stream("init", seed=0)))
    False
    """
    g = torch.Generator(device=device)
    g.manual_seed(seed_of(name, seed))
    return g


def rng(name: str, *, seed: int | None = None) -> np.random.Generator:
    """A NumPy generator for the named stream (same seed as :func:`stream`).

    Example
    -------
    >>> float(rng("jitter", seed=0).random()) == float(rng("jitter", seed=0).random())
    True
    """
    return np.random.default_rng(seed_of(name, seed))
