"""Small dense linear-algebra helpers for symmetric matrices (float64)."""

from __future__ import annotations

import torch

from . import _checks


def sym_pow(m: torch.Tensor, power: float, *, name: str = "m") -> torch.Tensor:
    """``m ** power`` for a symmetric positive-(semi)definite matrix, via ``eigh``.

    Negative powers require ``m`` positive definite. Eigenvalues within round-off
    of zero are clipped to zero for non-negative powers.

    Example
    -------
    >>> import torch
    >>> m = sym_pow(torch.diag(torch.tensor([4.0, 9.0], dtype=torch.float64)), -0.5)
    >>> [round(v, 4) for v in m.diagonal().tolist()], float(m[0, 1])
    ([0.5, 0.3333], 0.0)
    """
    _checks.square(name, m)
    power = _checks.real("power", power)
    scale = float(m.abs().max()) if m.numel() else 0.0
    if not torch.allclose(m, m.T, atol=1e-8 * scale, rtol=0):
        raise ValueError(f"{name} must be symmetric")
    m = 0.5 * (m + m.T)
    w, v = torch.linalg.eigh(m)
    tol = 1e-12 * w.abs().max().clamp_min(1e-300)
    if power < 0:
        if w.min() <= tol:
            raise ValueError(f"{name} must be positive definite for power {power}, smallest eigenvalue {float(w.min()):.3g}")
    elif w.min() < -1e3 * tol:
        raise ValueError(f"{name} must be positive semi-definite, smallest eigenvalue {float(w.min()):.3g}")
    w = torch.where(w.abs() <= tol, torch.zeros_like(w), w).clamp_min(0.0)
    return (v * w.pow(power)) @ v.T


def sqrtm_psd(m: torch.Tensor, *, name: str = "m") -> torch.Tensor:
    """Principal square root of a symmetric positive semi-definite matrix.

    Example
    -------
    >>> import torch
    >>> r = sqrtm_psd(torch.tensor([[2.0, 2.0], [2.0, 2.0]], dtype=torch.float64))  # rank 1: m / sqrt(2)
    >>> [[round(v, 12) for v in row] for row in r.tolist()]
    [[1.0, 1.0], [1.0, 1.0]]
    """
    return sym_pow(m, 0.5, name=name)


def random_orthogonal(n: int, generator: torch.Generator, *, runs: int | None = None) -> torch.Tensor:
    """Haar-distributed orthogonal ``n x n`` matrices (QR of a Gaussian, signs fixed).

    Shape (n, n), or (runs, n, n) when ``runs`` is given.

    Example
    -------
    >>> import torch
    >>> q = random_orthogonal(3, torch.Generator().manual_seed(0), runs=2)
    >>> bool(torch.allclose(q @ q.transpose(-1, -2), torch.eye(3, dtype=q.dtype).expand(2, 3, 3), atol=1e-6))  # any dtype
    True
    """
    _checks.positive_int("n", n)
    shape = (n, n) if runs is None else (_checks.positive_int("runs", runs), n, n)
    q, r = torch.linalg.qr(torch.randn(*shape, generator=generator, dtype=torch.get_default_dtype()))
    return q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)


def random_matrix(rows: int, cols: int, generator: torch.Generator, *, lo: float = 1.0, hi: float = 1.0,
                  runs: int | None = None) -> torch.Tensor:
    """Random ``rows x cols`` matrices with singular values log-spaced from ``lo`` to ``hi``.

    ``U diag(s) V^T`` with Haar-random orthogonal ``U``, ``V``: the condition
    number is exactly ``hi / lo`` (the well-conditioned frozen embeddings and
    views of Chapter 3). Shape (rows, cols), or (runs, rows, cols).

    Example
    -------
    >>> import torch
    >>> m = random_matrix(3, 3, torch.Generator().manual_seed(0), lo=0.5, hi=2.0)
    >>> [round(float(s), 6) for s in torch.linalg.svdvals(m)]
    [2.0, 1.0, 0.5]
    """
    lo, hi = _checks.positive("lo", lo), _checks.positive("hi", hi)
    if hi < lo:
        raise ValueError(f"hi must be >= lo, got lo={lo}, hi={hi}")
    k = min(_checks.positive_int("rows", rows), _checks.positive_int("cols", cols))
    s = torch.logspace(torch.log10(torch.tensor(lo)), torch.log10(torch.tensor(hi)), k,
                       dtype=torch.get_default_dtype())
    u = random_orthogonal(rows, generator, runs=runs)[..., :k]
    v = random_orthogonal(cols, generator, runs=runs)[..., :k]
    return (u * s) @ v.transpose(-1, -2)


def random_spd(n: int, generator: torch.Generator, *, lo: float = 1.0, hi: float = 1.0) -> torch.Tensor:
    """A random symmetric positive-definite ``n x n`` matrix with eigenvalues log-spaced from ``lo`` to ``hi``.

    Example
    -------
    >>> import torch
    >>> s = random_spd(3, torch.Generator().manual_seed(0), lo=0.25, hi=4.0)
    >>> [round(float(e), 6) for e in torch.linalg.eigvalsh(s)]
    [0.25, 1.0, 4.0]
    """
    lo, hi = _checks.positive("lo", lo), _checks.positive("hi", hi)
    if hi < lo:
        raise ValueError(f"hi must be >= lo, got lo={lo}, hi={hi}")
    q = random_orthogonal(n, generator)
    s = torch.logspace(torch.log10(torch.tensor(lo)), torch.log10(torch.tensor(hi)), n,
                       dtype=torch.get_default_dtype())
    return (q * s) @ q.T


def relative_error(a: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """``|a - ref|_F / |ref|_F`` over the last two dimensions (one value per leading index).

    Example
    -------
    >>> import torch
    >>> float(relative_error(1.5 * torch.eye(2), torch.eye(2)))
    0.5
    """
    _checks.tensor("a", a)
    _checks.tensor("ref", ref)
    try:
        torch.broadcast_shapes(a.shape, ref.shape)
    except RuntimeError:
        raise ValueError(f"a {tuple(a.shape)} and ref {tuple(ref.shape)} do not broadcast") from None
    return torch.linalg.matrix_norm(a - ref) / torch.linalg.matrix_norm(ref)
