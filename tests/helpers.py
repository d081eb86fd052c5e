"""Builders and comparisons shared by several test modules.

Imported as ``from helpers import ...`` (pytest puts ``tests/`` on ``sys.path``).
Every tensor built here is float64 whatever the default dtype; the ntlib
functions called here (``linalg.random_spd``, ``linear.teacher``) follow the
float64 default that ``conftest.float64_one_thread`` gives every test.
"""

from __future__ import annotations

import math

import torch
from hypothesis import settings, strategies as st

from ntlib import linalg, linear

D = torch.float64

#: Seeds drawn by the property tests.
seeds = st.integers(0, 2**31 - 1)


def examples(n: int) -> settings:
    """Settings for a property that runs ``n`` examples under the ``ci`` profile (25 by default), scaled with
    the loaded profile (``dev`` runs a fifth, ``thorough`` eight times as many); at least 2."""
    return settings(max_examples=max(2, round(settings.default.max_examples * n / 25)))


def gen(seed: int) -> torch.Generator:
    """A fresh CPU generator seeded with ``seed``."""
    return torch.Generator().manual_seed(seed)


def randn(g, *shape) -> torch.Tensor:
    """Standard normal float64 tensor from a generator (or a seed)."""
    if isinstance(g, int):
        g = gen(g)
    return torch.randn(*shape, generator=g, dtype=D)


def close(a, b, rel: float = 1e-10, scale=None) -> bool:
    """``|a - b| <= rel * scale`` entry-wise (no hidden relative slack), ``scale = 1 + max|b|`` by default."""
    a, b = torch.as_tensor(a, dtype=D), torch.as_tensor(b, dtype=D)
    s = float(scale) if scale is not None else 1.0 + float(b.abs().max())
    return bool(((a - b).abs() <= rel * s).all())


def rand_spd(n: int, seed: int, cond: float = 4.0) -> torch.Tensor:
    """Random SPD matrix with eigenvalues log-spaced in [1, cond] and a random basis (independent of ntlib)."""
    q, _ = torch.linalg.qr(randn(seed, n, n))
    return q @ torch.diag(torch.logspace(0, math.log10(cond), n, dtype=D)) @ q.T


def random_teacher(g: torch.Generator, d: int, o: int, *, noise: bool = True) -> linear.Teacher:
    """A teacher with random V* (o x d), Sigma_x with eigenvalues in [0.5, 2], Sigma_eps in [0.3, 1.5] (or I)."""
    v = randn(g, o, d)
    sx = linalg.random_spd(d, g, lo=0.5, hi=2.0)
    se = linalg.random_spd(o, g, lo=0.3, hi=1.5) if noise else None
    return linear.teacher(v, sx, se)


def chain(ws) -> torch.Tensor:
    """The product ``W_D ... W_1`` of a list of weights (any common leading dimensions)."""
    k = ws[0]
    for w in ws[1:]:
        k = w @ k
    return k


def around_pair(ws, i: int, d: int, o: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Q = W_{i-1} ... W_1 (before the pair) and P = W_D ... W_{i+2} (after it), identities when empty."""
    q = torch.eye(d, dtype=D)
    for w in ws[:i]:
        q = w @ q
    p = torch.eye(o, dtype=D)
    for w in reversed(ws[i + 2:]):
        p = p @ w
    return q, p


def quadratic(g: torch.Generator, n: int, split: int = 0):
    """``L = t^T A t / 2 - b^T t`` with random symmetric A (any signs), b and a point t0.

    Returns ``(a, b, t0, loss, params)``; ``params`` is ``t0`` as one tensor, or as a
    tuple (a vector and a 1-row matrix) when ``0 < split < n``; ``loss`` takes either.
    """
    m = randn(g, n, n)
    a = (m + m.T) / 2
    b = randn(g, n)
    t0 = randn(g, n)

    def loss(p):
        t = torch.cat([q.reshape(-1) for q in p]) if isinstance(p, tuple) else p
        return 0.5 * t @ a @ t - b @ t

    params = (t0[:split].clone(), t0[split:].reshape(1, -1).clone()) if 0 < split < n else t0.clone()
    return a, b, t0, loss, params


def flat(p) -> torch.Tensor:
    """A tensor or a tuple of tensors as one vector."""
    return torch.cat([t.reshape(-1) for t in p]) if isinstance(p, tuple) else p


def tanh_net(g: torch.Generator, width: int = 4, d: int = 2, n: int = 8):
    """A one-hidden-layer tanh network with tuple parameters ``(W, b, u)`` on random data.

    Returns ``(params, loss, batch_loss, x, y)``: ``loss(p)`` is the full-batch mean
    squared error, ``batch_loss(p, idx)`` the one of the samples ``idx``.
    """
    params = (randn(g, width, d), randn(g, width), randn(g, width) / math.sqrt(width))
    x, y = randn(g, n, d), randn(g, n)

    def batch_loss(p, idx):
        return ((torch.tanh(x[idx] @ p[0].T + p[1]) @ p[2] - y[idx]) ** 2).mean()

    return params, (lambda p: batch_loss(p, slice(None))), batch_loss, x, y
