"""Linear stability of SGD at a global minimum of a deep linear network (Chapter 4).

Gradient descent is stable at a minimum with sharpness ``a`` iff ``eta <= 2 / a``
(Chapter 4, ``prop-two-over-eta``). SGD with minibatches of ``B`` fresh samples
multiplies the deviation along the top Hessian eigenvector ``v`` by
``1 - eta c_B`` per step, with ``c_B = v^T H_B v`` the minibatch curvature along
``v``: its *mean* is ``a`` but it fluctuates. The second moment of the deviation
along ``v`` then evolves by the factor::

    E[(1 - eta c_B)^2] = (1 - eta a)^2 + eta^2 Var(c_1) / B,

and stays bounded iff ``eta <= eta_c = 2 a / (a^2 + Var(c_1) / B)``
(Chapter 4, ``eq-sgd-edge``; the one-direction second-moment criterion of
Wu, Ma and E 2018 and Ma and Ying 2021, restricted to the top direction and
neglecting the coupling to the others). For ``f = W_D ... W_1 x`` with Gaussian
``x ~ N(0, Sigma_x)`` and label noise ``eps ~ N(0, Sigma_eps)`` independent of
``x``, at a global minimum the per-sample curvature along ``v`` is::

    c_1 = 2 |dK x|^2 - 2 eps^T Q x,    dK = D K[v],  Q = D^2 K[v, v],

whose variance is ``8 Tr((dK Sigma_x dK^T)^2) + 4 Tr(Sigma_eps Q Sigma_x Q^T)``
(the first term is input non-uniformity, the second the label noise acting
through the curvature of the network). :func:`sgd_edge` computes ``eta_c``.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import torch

from .. import _checks
from .curvature import population_hessian
from .model import Teacher

__all__ = ["SGDEdge", "sgd_edge"]


class SGDEdge(NamedTuple):
    """Result of :func:`sgd_edge`, each of shape (runs,).

    Attributes
    ----------
    lr : torch.Tensor
        The largest stable learning rate ``eta_c = 2 a / (a^2 + var / B)``.
    sharpness : torch.Tensor
        ``a``, the top eigenvalue of the population Hessian (GD's edge is ``2 / a``).
    variance : torch.Tensor
        ``Var(c_1)``, the variance of the single-sample curvature along the top eigenvector.
    """

    lr: torch.Tensor
    sharpness: torch.Tensor
    variance: torch.Tensor


def _prod(ws: Sequence[torch.Tensor], n: int, like: torch.Tensor) -> torch.Tensor:
    """``ws[-1] @ ... @ ws[0]``, the identity of size ``n`` when ``ws`` is empty."""
    k = torch.eye(n, dtype=like.dtype, device=like.device).expand(like.shape[0], n, n)
    for w in ws:
        k = w @ k
    return k


def sgd_edge(weights: Sequence[torch.Tensor], t: Teacher, batch_size: int, *,
             label_noise: bool = True) -> SGDEdge:
    """SGD's second-moment stability edge along the top Hessian direction (Chapter 4, ``eq-sgd-edge``).

    Parameters
    ----------
    weights
        ``[W_1, ..., W_D]``, each (runs, out, in), at (or near) a global minimum
        ``W_D ... W_1 = V*`` of the population loss ``E|W_D...W_1 x - y|^2``.
    t
        The teacher (``Sigma_x``, ``Sigma_eps``).
    batch_size
        ``B``, fresh samples per step.
    label_noise
        ``False`` drops the label-noise term of the variance (training on ``y = V* x``).

    Returns
    -------
    SGDEdge
        ``lr`` (``eta_c``), ``sharpness`` (``a``) and ``variance`` (``Var(c_1)``), per run.

    Example
    -------
    >>> import torch
    >>> from ntlib.linear.model import teacher
    >>> I = torch.eye(1, dtype=torch.float64)
    >>> e = sgd_edge([I.expand(1, 1, 1)], teacher(I), 1)  # one layer: c_1 = 2 x^2, a = 2, Var = 8
    >>> [round(float(v[0]), 12) for v in e]  # 2 a / (a^2 + 8) = 1/3
    [0.333333333333, 2.0, 8.0]
    """
    ws = _checks.weight_chain("weights", weights)
    _checks.teacher("t", t)
    _checks.positive_int("batch_size", batch_size)
    h = population_hessian(ws, t)
    evals, evecs = torch.linalg.eigh(h)
    a, v = evals[:, -1], evecs[:, :, -1]
    runs, d = ws[0].shape[0], t.d_in
    dws, at = [], 0
    for w in ws:
        n = w.shape[1] * w.shape[2]
        dws.append(v[:, at:at + n].reshape(w.shape))
        at += n
    widths = [d] + [w.shape[1] for w in ws]
    dk = 0
    q = 0
    for i in range(len(ws)):
        below = _prod(ws[:i], d, ws[0])  # W_{i-1} ... W_1, (runs, w_i, d)
        dk = dk + _prod(ws[i + 1:], widths[i + 1], ws[0]) @ dws[i] @ below
        for j in range(i + 1, len(ws)):  # D^2 K[v, v] = 2 sum_{i<j} ... dW_j ... dW_i ...
            mid = _prod(ws[i + 1:j], widths[i + 1], ws[0])
            q = q + 2 * _prod(ws[j + 1:], widths[j + 1], ws[0]) @ dws[j] @ mid @ dws[i] @ below
    m = dk @ t.sigma_x @ dk.transpose(-1, -2)
    var = 8 * (m @ m).diagonal(dim1=-2, dim2=-1).sum(-1)
    if label_noise and len(ws) > 1:
        var = var + 4 * (t.sigma_eps @ q @ t.sigma_x @ q.transpose(-1, -2)).diagonal(dim1=-2, dim2=-1).sum(-1)
    lr = 2 * a / (a * a + var / batch_size)
    return SGDEdge(lr, a, var)
