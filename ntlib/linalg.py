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
