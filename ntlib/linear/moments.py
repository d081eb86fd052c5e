"""Exact gradient moments of a layer pair in a deep linear network (Chapter 2, ``thm-matrix-balance``).

Matrix balance of the pair ``K = W_{i+1} W_i`` compares
``W_i E[G^T G] W_i^T`` with ``W_{i+1}^T E[G G^T] W_{i+1}``, where ``G`` is the
minibatch gradient with respect to ``K``. For Gaussian data of a
:class:`~ntlib.linear.model.Teacher` both moments have closed forms (Gaussian
fourth moments), computed here for every run at once; the tests check them
against Monte Carlo. :func:`ntlib.symmetry.layer_pair_balance` turns them into
the two sides of the balance condition.
"""

from __future__ import annotations

from typing import Sequence

import torch

from .. import _checks
from .model import Teacher

__all__ = ["pair_moments"]


def pair_moments(weights: Sequence[torch.Tensor], i: int, t: Teacher, *, batch_size: int = 1,
                 label_noise: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """``(E[G_B^T G_B], E[G_B G_B^T])`` for the pair ``K = W_{i+1} W_i`` of a deep linear net (``thm-matrix-balance``).

    Loss ``l = |W_D ... W_1 x - y|^2`` averaged over a batch of ``batch_size``
    i.i.d. samples of the teacher ``t``: ``x ~ N(0, Sigma_x)``, ``y = V* x + eps``,
    ``eps ~ N(0, Sigma_eps)`` (no eps with ``label_noise=False``). ``G_B`` is the
    gradient with respect to ``K``. Exact Gaussian moments: with
    ``P = W_D..W_{i+2}``, ``Q = W_{i-1}..W_1``, ``D = W_D..W_1 - v_star``,
    ``E[x x^T (r^T M r)] = Tr(D^T M D Sx) Sx + 2 Sx D^T M D Sx + Tr(M Se) Sx``
    for ``r = D x - eps``. Shapes (..., h_{i-1}, h_{i-1}) and (..., h_{i+1}, h_{i+1}).

    Example
    -------
    At a global minimum ``E[G^T G] = 4 Tr(Se) Sx``:

    >>> import torch
    >>> from ntlib.linear.model import teacher
    >>> I = torch.eye(2, dtype=torch.float64)
    >>> gtg, ggt = pair_moments([I, I], 0, teacher(I))
    >>> gtg.tolist()
    [[8.0, 0.0], [0.0, 8.0]]
    """
    ws = list(weights)
    if not 0 <= i < len(ws) - 1:
        raise ValueError(f"i must index an adjacent pair (0 <= i < {len(ws) - 1}), got {i}")
    for j in range(len(ws) - 1):
        _checks.tensor(f"weights[{j}]", ws[j])
        _checks.tensor(f"weights[{j + 1}]", ws[j + 1])
        if ws[j].ndim < 2 or ws[j + 1].ndim < 2 or ws[j + 1].shape[-1] != ws[j].shape[-2]:
            raise ValueError(f"weights[{j}] {tuple(ws[j].shape)} and weights[{j + 1}] {tuple(ws[j + 1].shape)} do not chain")
    bsz = _checks.positive_int("batch_size", batch_size)
    _checks.teacher("t", t)
    d, o = ws[0].shape[-1], ws[-1].shape[-2]
    if (t.d_out, t.d_in) != (o, d):
        raise ValueError(f"the network maps {d} -> {o} but the teacher maps {t.d_in} -> {t.d_out}")
    v_star, sigma_x = t.v_star, t.sigma_x
    sigma_eps = t.sigma_eps if label_noise else None

    def prod(mats):
        k = mats[0]
        for m in mats[1:]:
            k = m @ k
        return k

    lead = ws[0].shape[:-2]
    eye = lambda n: torch.eye(n, dtype=ws[0].dtype, device=ws[0].device).expand(*lead, n, n)
    q = prod(ws[:i]) if i > 0 else eye(d)                               # (..., h_{i-1}, d)
    p = prod(ws[i + 2:]) if i + 2 < len(ws) else eye(o)                 # (..., o, h_{i+1})
    dd = prod(ws) - v_star                                              # (..., o, d)
    sx = sigma_x
    tr = lambda m: m.diagonal(dim1=-2, dim2=-1).sum(-1)[..., None, None]
    # E[G^T G] = 4 Q E[x x^T r^T (P P^T) r] Q^T
    m = p @ p.transpose(-1, -2)
    dmd = dd.transpose(-1, -2) @ m @ dd
    exx = tr(dmd @ sx) * sx + 2 * sx @ dmd @ sx
    if sigma_eps is not None:
        exx = exx + tr(m @ sigma_eps) * sx
    gtg = 4 * q @ exx @ q.transpose(-1, -2)
    # E[G G^T] = 4 P^T E[r r^T x^T (Q^T Q) x] P
    n = q.transpose(-1, -2) @ q
    trn = tr(n @ sx)
    err = dd @ (trn * sx + 2 * sx @ n @ sx) @ dd.transpose(-1, -2)
    if sigma_eps is not None:
        err = err + trn * sigma_eps
    ggt = 4 * p.transpose(-1, -2) @ err @ p
    if bsz > 1:  # E[G_B^T G_B] = E[G]^T E[G] + Cov / B
        mean = 2 * p.transpose(-1, -2) @ dd @ sx @ q.transpose(-1, -2)
        mtm, mmt = mean.transpose(-1, -2) @ mean, mean @ mean.transpose(-1, -2)
        gtg = mtm + (gtg - mtm) / bsz
        ggt = mmt + (ggt - mmt) / bsz
    return gtg, ggt
