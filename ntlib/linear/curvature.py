"""Curvature of deep linear networks: Gauss-Newton and exact population Hessians (Chapter 4).

The loss is the population loss of :mod:`ntlib.linear.model`,
``L = E|W_D ... W_1 x - y|^2``; its *sharpness* is the top eigenvalue of its
Hessian in the weights. Everything is batched over the leading runs dimension
of the weights. (For any other model, :func:`ntlib.hessian.top_eigenvalues`
computes the sharpness from Hessian-vector products; the closed forms of the
entropic minimum are in :mod:`ntlib.theory`.)

* :func:`gauss_newton_sharpness`: the top eigenvalue of the Gauss-Newton part
  ``2 J^T (Sigma_x (x) I) J`` in closed form (Chapter 4, ``eq-gn-sharpness``); at a
  global minimum it is the sharpness.
* :func:`population_sharpness`: the top eigenvalue of the exact Hessian of the
  population loss, every run at once (a batched dense Hessian; for the small
  networks of Chapter 4, checked there against :func:`ntlib.hessian.top_eigenvalues`).
* :func:`gauss_newton_trace` and :func:`label_noise_gradient_norm`: the trace of the
  Hessian at a global minimum and the entropic term ``E|grad l|^2`` there, which is a
  noise-weighted trace of the curvature (Chapter 4, ``prop-noise-trace``).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from .. import _checks
from .model import Teacher

__all__ = ["gauss_newton_matrix", "gauss_newton_sharpness", "population_hessian", "population_sharpness",
           "gauss_newton_trace", "label_noise_gradient_norm"]


def _chain(ws: Sequence[torch.Tensor], runs: int, n: int, like: torch.Tensor) -> torch.Tensor:
    """Product ``ws[-1] @ ... @ ws[0]`` (identity of size n when empty)."""
    k = torch.eye(n, dtype=like.dtype, device=like.device).expand(runs, n, n)
    for w in ws:
        k = w @ k
    return k


def gauss_newton_matrix(weights: Sequence[torch.Tensor], t: Teacher | None = None) -> torch.Tensor:
    """The Gauss-Newton matrix of ``L = E|W_D...W_1 x - y|^2`` in function space, shape (runs, o*d, o*d).

    With ``dK = sum_i A_i dW_i B_i`` (``A_i = W_D...W_{i+1}``, ``B_i = W_{i-1}...W_1``),
    the nonzero spectrum of ``2 J^T (Sigma_x (x) I) J`` is that of::

        2 sum_i (A_i A_i^T) (x) (Sigma_x^{1/2} B_i^T B_i Sigma_x^{1/2})

    acting on row-major vec of an (o x d) matrix (Chapter 4, ``eq-gn-sharpness``).
    ``Sigma_x`` is the teacher's input covariance (the identity when ``t`` is ``None``).

    Example
    -------
    >>> import torch
    >>> I = torch.eye(2, dtype=torch.float64).expand(1, 2, 2)
    >>> gauss_newton_matrix([I, I]).shape
    torch.Size([1, 4, 4])
    """
    ws = _checks.weight_chain("weights", weights)
    runs, d, o = ws[0].shape[0], ws[0].shape[-1], ws[-1].shape[-2]
    sx_h = None
    if t is not None:
        _checks.teacher("t", t)
        if t.d_in != d or t.d_out != o:
            raise ValueError(f"weights map {d} -> {o} but the teacher maps {t.d_in} -> {t.d_out}")
        sx_h = t.sqrt_x
    g = 0
    for i in range(len(ws)):
        a = _chain(ws[i + 1:], runs, ws[i].shape[-2], ws[0])  # (runs, o, w_{i+1})
        b = _chain(ws[:i], runs, d, ws[0])  # (runs, w_i, d)
        p = a @ a.transpose(-1, -2)
        q = b.transpose(-1, -2) @ b
        if sx_h is not None:
            q = sx_h @ q @ sx_h
        g = g + torch.einsum("rij,rkl->rikjl", p, q).reshape(runs, o * d, o * d)
    return 2 * g


def gauss_newton_sharpness(weights: Sequence[torch.Tensor], t: Teacher | None = None) -> torch.Tensor:
    """Top eigenvalue of the Gauss-Newton matrix, per run, shape (runs,) (Chapter 4, ``eq-gn-sharpness``).

    ``Sigma_x`` is the teacher's (the identity when ``t`` is ``None``).
    For two layers ``f = U W x`` and ``Sigma_x = I`` it is ``2 (lambda_max(U U^T) + lambda_max(W^T W))``.
    At a global minimum (``W_D...W_1 = V*``) it equals the top eigenvalue of the
    full Hessian of the population loss; away from it the Hessian has an extra
    term proportional to the residual ``K - V*``.

    Example
    -------
    >>> import torch
    >>> I = torch.eye(2, dtype=torch.float64).expand(1, 2, 2)
    >>> float(gauss_newton_sharpness([I, I])[0])
    4.0
    """
    ws = _checks.weight_chain("weights", weights)
    if len(ws) == 2 and t is None:
        w, u = ws
        return 2 * (torch.linalg.eigvalsh(u @ u.transpose(-1, -2))[..., -1]
                    + torch.linalg.eigvalsh(w.transpose(-1, -2) @ w)[..., -1])
    return torch.linalg.eigvalsh(gauss_newton_matrix(ws, t))[..., -1]


def population_hessian(weights: Sequence[torch.Tensor], t: Teacher) -> torch.Tensor:
    """Dense Hessian of :func:`ntlib.linear.model.population_loss` for every run, shape (runs, n, n).

    ``t`` is a :class:`~ntlib.linear.model.Teacher`; the parameters are flattened in the
    order ``W_1, ..., W_D`` (row-major), as in :func:`ntlib.params.flatten`.
    Computed with ``torch.func.vmap(torch.func.hessian(...))`` over the runs.

    Example
    -------
    >>> import torch
    >>> from ntlib.linear.model import teacher
    >>> I = torch.eye(2, dtype=torch.float64)
    >>> population_hessian([I.expand(3, 2, 2)], teacher(I)).shape  # one layer: H = 2 I (x) Sigma_x
    torch.Size([3, 4, 4])
    """
    ws = _checks.weight_chain("weights", weights)
    _checks.teacher("t", t)
    shapes = [w.shape[1:] for w in ws]
    sizes = [math.prod(s) for s in shapes]
    if shapes[0][-1] != t.d_in or shapes[-1][0] != t.d_out:
        raise ValueError(f"weights map {shapes[0][-1]} -> {shapes[-1][0]} but the teacher maps {t.d_in} -> {t.d_out}")

    def loss(flat: torch.Tensor) -> torch.Tensor:
        k = None
        for p, s in zip(torch.split(flat, sizes), shapes):
            p = p.reshape(s)
            k = p if k is None else p @ k
        r = k - t.v_star
        return (r @ t.sigma_x * r).sum()

    flat = torch.cat([w.reshape(w.shape[0], -1) for w in ws], dim=1)
    return torch.func.vmap(torch.func.hessian(loss))(flat)


def population_sharpness(weights: Sequence[torch.Tensor], t) -> torch.Tensor:
    """Sharpness (top Hessian eigenvalue) of the population loss for every run, shape (runs,).

    Exact anywhere, not only at a minimum (compare :func:`gauss_newton_sharpness`).

    Example
    -------
    >>> import torch
    >>> from ntlib.linear.model import teacher
    >>> I = torch.eye(2, dtype=torch.float64)
    >>> population_sharpness([I.expand(1, 2, 2), I.expand(1, 2, 2)], teacher(I)).tolist()  # at a minimum: GN value 4
    [4.0...]
    """
    return torch.linalg.eigvalsh(population_hessian(weights, t))[..., -1]


def _trace_terms(weights: Sequence[torch.Tensor], t: Teacher) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per layer i: ``(A_i A_i^T, Tr(B_i Sigma_x B_i^T))`` with ``A_i = W_D...W_{i+1}``, ``B_i = W_{i-1}...W_1``."""
    ws = _checks.weight_chain("weights", weights)
    _checks.teacher("t", t)
    runs, d, o = ws[0].shape[0], ws[0].shape[-1], ws[-1].shape[-2]
    if t.d_in != d or t.d_out != o:
        raise ValueError(f"weights map {d} -> {o} but the teacher maps {t.d_in} -> {t.d_out}")
    out = []
    for i in range(len(ws)):
        a = _chain(ws[i + 1:], runs, ws[i].shape[-2], ws[0])
        b = _chain(ws[:i], runs, d, ws[0])
        out.append((a @ a.transpose(-1, -2), (b @ t.sigma_x * b).sum((-2, -1))))
    return out


def gauss_newton_trace(weights: Sequence[torch.Tensor], t: Teacher) -> torch.Tensor:
    """Trace of the Gauss-Newton matrix ``2 E[J^T J]``, per run, shape (runs,) (Chapter 4, ``prop-noise-trace``).

    ``J`` is the Jacobian of ``f(x) = W_D...W_1 x`` in the weights; with
    ``J J^T = sum_i A_i A_i^T |B_i x|^2`` the trace is
    ``2 sum_i Tr(A_i A_i^T) Tr(B_i Sigma_x B_i^T)``. At a global minimum it is the
    trace of the Hessian of the population loss.

    Example
    -------
    >>> import torch
    >>> from ntlib.linear.model import teacher
    >>> I = torch.eye(2, dtype=torch.float64)
    >>> float(gauss_newton_trace([I.expand(1, 2, 2), I.expand(1, 2, 2)], teacher(I))[0])  # 2 (2*2 + 2*2)
    16.0
    """
    return 2 * sum(torch.diagonal(p, dim1=-2, dim2=-1).sum(-1) * q for p, q in _trace_terms(weights, t))


def label_noise_gradient_norm(weights: Sequence[torch.Tensor], t: Teacher) -> torch.Tensor:
    """``E|grad l|^2`` at a global minimum with label noise, per run, shape (runs,) (Chapter 4, ``eq-noise-trace``).

    At ``W_D...W_1 = V*`` the residual is ``-eps``, so ``grad l = -2 J^T eps`` and::

        E|grad l|^2 = 4 Tr(Sigma_eps E[J J^T]) = 4 sum_i Tr(Sigma_eps A_i A_i^T) Tr(B_i Sigma_x B_i^T),

    a trace of the curvature weighted by the label noise; for isotropic noise
    ``Sigma_eps = s^2 I`` it is ``2 s^2`` times :func:`gauss_newton_trace`.

    Example
    -------
    >>> import torch
    >>> from ntlib.linear.model import teacher
    >>> I = torch.eye(2, dtype=torch.float64)
    >>> ws = [I.expand(1, 2, 2), I.expand(1, 2, 2)]
    >>> float(label_noise_gradient_norm(ws, teacher(I, sigma_eps=3 * I))[0])  # 2 * 3 * 16
    96.0
    """
    return 4 * sum((t.sigma_eps * p).sum((-2, -1)) * q for p, q in _trace_terms(weights, t))
