"""Small dense linear-algebra helpers for symmetric matrices (float64)."""

from __future__ import annotations

import torch

from . import _checks


def sym_pow(m: torch.Tensor, power: float, *, name: str = "m") -> torch.Tensor:
    """``m ** power`` for a symmetric positive-(semi)definite matrix, via ``eigh``.

    Negative powers require ``m`` positive definite. Eigenvalues within round-off
    of zero are clipped to zero for non-negative powers.
    """
    _checks.square(name, m)
    m = 0.5 * (m + m.T)
    w, v = torch.linalg.eigh(m)
    tol = 1e-12 * w.abs().max().clamp_min(1e-300)
    if power < 0:
        if w.min() <= tol:
            raise ValueError(f"{name} must be positive definite for power {power}, smallest eigenvalue {float(w.min()):.3g}")
    elif w.min() < -1e3 * tol:
        raise ValueError(f"{name} must be positive semi-definite, smallest eigenvalue {float(w.min()):.3g}")
    w = w.clamp_min(0.0)
    return (v * w.pow(power)) @ v.T


def sqrtm_psd(m: torch.Tensor, *, name: str = "m") -> torch.Tensor:
    """Principal square root of a symmetric positive semi-definite matrix."""
    return sym_pow(m, 0.5, name=name)
