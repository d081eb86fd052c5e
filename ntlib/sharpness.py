"""Sharpness of deep linear networks: closed forms for Chapter 4 ("Sharpening and flattening").

The loss is the population loss of :mod:`ntlib.linear`,
``L = E|W_D ... W_1 x - y|^2``; the *sharpness* is the top eigenvalue of its
Hessian in the weights. Everything is batched over the leading runs dimension
of the weights.

* :func:`gauss_newton_sharpness`: the top eigenvalue of the Gauss-Newton part
  ``2 J^T (Sigma_x (x) I) J`` in closed form (Chapter 4, ``eq-gn-sharpness``); at a
  global minimum it is the sharpness.
* :func:`population_sharpness`: the top eigenvalue of the exact Hessian of the
  population loss, every run at once (a batched dense Hessian; for the small
  networks of Chapter 4, checked there against :func:`ntlib.hessian.top_eigenvalues`).
* :func:`entropic_sharpness`: the sharpness of the entropic minimum of a two-layer
  network (Chapter 4, ``thm-entropic-sharpness``); for ``V* = I``, ``Sigma_x = I``,
  ``Sigma_eps = diag(1, r)`` it is ``S(r)`` of :func:`ntlib.theory.diagonal_noise_sharpness`.
* :func:`edge_balance`: the noise balance r at which S(r) = 2 / eta (the theory
  curve of the phase diagram, Chapter 4, ``eq-edge-curve``).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from . import _checks
from .linalg import sqrtm_psd
from .theory import two_layer_entropic_solution


def _check_weights(weights: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    if not isinstance(weights, (list, tuple)) or len(weights) < 1:
        raise TypeError("weights must be a non-empty list of (runs, out, in) tensors")
    for i, w in enumerate(weights):
        _checks.tensor(f"weights[{i}]", w, ndim=3)
    for i, (a, b) in enumerate(zip(weights[:-1], weights[1:])):
        if a.shape[-2] != b.shape[-1] or a.shape[0] != b.shape[0]:
            raise ValueError(f"weights[{i}] {tuple(a.shape)} and weights[{i + 1}] {tuple(b.shape)} do not chain")
    return list(weights)


def _chain(ws: Sequence[torch.Tensor], runs: int, n: int, like: torch.Tensor) -> torch.Tensor:
    """Product ``ws[-1] @ ... @ ws[0]`` (identity of size n when empty)."""
    k = torch.eye(n, dtype=like.dtype, device=like.device).expand(runs, n, n)
    for w in ws:
        k = w @ k
    return k


def gauss_newton_matrix(weights: Sequence[torch.Tensor], sigma_x: torch.Tensor | None = None) -> torch.Tensor:
    """The Gauss-Newton matrix of ``L = E|W_D...W_1 x - y|^2`` in function space, shape (runs, o*d, o*d).

    With ``dK = sum_i A_i dW_i B_i`` (``A_i = W_D...W_{i+1}``, ``B_i = W_{i-1}...W_1``),
    the nonzero spectrum of ``2 J^T (Sigma_x (x) I) J`` is that of::

        2 sum_i (A_i A_i^T) (x) (Sigma_x^{1/2} B_i^T B_i Sigma_x^{1/2})

    acting on row-major vec of an (o x d) matrix (Chapter 4, ``eq-gn-sharpness``).
    """
    ws = _check_weights(weights)
    runs, d, o = ws[0].shape[0], ws[0].shape[-1], ws[-1].shape[-2]
    sx_h = None
    if sigma_x is not None:
        _checks.spd("sigma_x", sigma_x)
        if sigma_x.shape[0] != d:
            raise ValueError(f"sigma_x must be {d}x{d} for input dimension {d}, got {tuple(sigma_x.shape)}")
        sx_h = sqrtm_psd(sigma_x)
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


def gauss_newton_sharpness(weights: Sequence[torch.Tensor], sigma_x: torch.Tensor | None = None) -> torch.Tensor:
    """Top eigenvalue of the Gauss-Newton matrix, per run, shape (runs,) (Chapter 4, ``eq-gn-sharpness``).

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
    ws = _check_weights(weights)
    if len(ws) == 2 and sigma_x is None:
        w, u = ws
        return 2 * (torch.linalg.eigvalsh(u @ u.transpose(-1, -2))[..., -1]
                    + torch.linalg.eigvalsh(w.transpose(-1, -2) @ w)[..., -1])
    return torch.linalg.eigvalsh(gauss_newton_matrix(ws, sigma_x))[..., -1]


def population_hessian(weights: Sequence[torch.Tensor], t) -> torch.Tensor:
    """Dense Hessian of :func:`ntlib.linear.population_loss` for every run, shape (runs, n, n).

    ``t`` is a :class:`ntlib.linear.Teacher`; the parameters are flattened in the
    order ``W_1, ..., W_D`` (row-major), as in ``ntlib._params.flatten``.
    Computed with ``torch.func.vmap(torch.func.hessian(...))`` over the runs.
    """
    ws = _check_weights(weights)
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
    """
    return torch.linalg.eigvalsh(population_hessian(weights, t))[..., -1]


def entropic_sharpness(sigma_x: torch.Tensor, sigma_eps: torch.Tensor, v_star: torch.Tensor) -> float:
    """Sharpness of the entropic minimum of ``f = U W x`` (Chapter 4, ``thm-entropic-sharpness``).

    The top eigenvalue of ``2 (U U^T (x) Sigma_x + I (x) Sigma_x^{1/2} W^T W Sigma_x^{1/2})``
    (:func:`gauss_newton_matrix` for two layers), with ``W^T W`` and ``U U^T`` from
    :func:`ntlib.theory.two_layer_entropic_solution`; for ``Sigma_x = I`` it is
    ``2 (lambda_max(U U^T) + lambda_max(W^T W))``. Depends on the shape of the label
    noise only, not on its scale, the learning rate or the batch size.

    Example
    -------
    >>> import torch
    >>> I = torch.eye(2, dtype=torch.float64)
    >>> round(entropic_sharpness(I, torch.diag(torch.tensor([1.0, 0.1], dtype=torch.float64)), I), 4)  # = S(0.1)
    7.3872
    """
    wtw, uut = two_layer_entropic_solution(sigma_x, sigma_eps, v_star)
    sx_h = sqrtm_psd(sigma_x)
    o, d = uut.shape[0], wtw.shape[0]
    g = torch.kron(uut, sigma_x) + torch.kron(torch.eye(o, dtype=uut.dtype, device=uut.device), sx_h @ wtw @ sx_h)
    return float(2 * torch.linalg.eigvalsh(g)[-1])


def _s_of_r(r: torch.Tensor) -> torch.Tensor:
    return 2 * (torch.sqrt(2 / (1 + r)) + torch.sqrt((1 + r) / 2) / torch.sqrt(r))


def edge_balance(lr, *, iters: int = 200) -> torch.Tensor:
    """Noise balance ``r in (0, 1]`` at which ``S(r) = 2 / lr`` (Chapter 4, ``eq-edge-curve``).

    ``S(r)`` (:func:`ntlib.theory.diagonal_noise_sharpness`) decreases from infinity
    at ``r -> 0`` to ``S(1) = 4``: runs with ``r`` below the returned value have an
    entropic minimum sharper than the stability limit ``2 / lr``. Returns ``nan``
    where ``2 / lr < 4`` (no r in (0, 1] is stable). Vectorised over ``lr``
    (a float or a tensor), by bisection in ``log r``.
    """
    lr_t = torch.as_tensor(lr, dtype=torch.get_default_dtype())
    if not bool(torch.isfinite(lr_t).all()) or bool((lr_t <= 0).any()):
        raise ValueError(f"lr must be > 0 and finite, got {lr!r}")
    target = 2 / lr_t
    lo = torch.full_like(target, -60.0)  # log r: S(e^-60) is huge
    hi = torch.zeros_like(target)
    for _ in range(iters):
        mid = (lo + hi) / 2
        too_sharp = _s_of_r(torch.exp(mid)) > target
        lo = torch.where(too_sharp, mid, lo)
        hi = torch.where(too_sharp, hi, mid)
    r = torch.exp((lo + hi) / 2)
    return torch.where(target < 4, torch.full_like(r, math.nan), r)
