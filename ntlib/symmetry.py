"""Parameter symmetries, their conserved quantities, and the balance that SGD restores.

Implements Chapter 2 of the book ("Entropic forces break continuous symmetries"):

* Exponential symmetries ``l(exp(lambda A) theta) = l(theta)`` with ``A``
  symmetric and block-diagonal over the parameter tensors (:func:`orbit`):
  the *charge* ``theta^T A theta`` (:func:`charge`) is conserved by gradient
  flow and obeys, for every GD/SGD step, the exact identity
  ``Delta(theta^T A theta) = lr^2 g^T A g`` (``eq-charge-step``,
  :func:`charge_step_residual`).
* Neuron balance of a layer ``u sigma(w x + b)`` with a rescaling symmetry per
  unit (``thm-neuron-balance``): per neuron,
  ``E_B|grad_in l_B|^2 = E_B|grad_out l_B|^2`` at stationarity
  (:func:`neuron_split`, :func:`neuron_balance_sides`, :func:`balance_log_ratio`).
* Matrix balance of a linear pair ``f = ... U W ...`` (``thm-matrix-balance``):
  ``W E[G^T G] W^T = U^T E[G G^T] U`` with ``G = dl/d(UW)``
  (:func:`matrix_charge`, :func:`matrix_step_residual`, :func:`matrix_balance_sides`,
  :func:`layer_pair_balance` for deep linear nets, :func:`matrix_balance_error`).

The toy models of the chapter are in :mod:`ntlib.toys`.

Shapes: every function accepts leading "runs" dimensions (``...``) and
broadcasts over them.
"""

from __future__ import annotations

from typing import Sequence

import torch

from . import _checks
from .entropic import expected_batch_sq
from .linear.model import Teacher
from .linear.moments import pair_moments
from .params import Params, as_tuple

# --------------------------------------------------------------------------
# exponential symmetries: orbit, charge and the exact per-step identity
# --------------------------------------------------------------------------


def _diag_blocks(theta: Params, a: Sequence) -> tuple[tuple[torch.Tensor, ...], list]:
    items = _checks.params("theta", theta)
    a = list(a) if isinstance(a, (tuple, list)) else [a]
    if len(a) != len(items):
        raise ValueError(f"a must give one diagonal block per parameter tensor: {len(items)} tensors, "
                         f"{len(a)} blocks")
    out = []
    for i, (t, ai) in enumerate(zip(items, a)):
        ai = torch.as_tensor(ai, dtype=t.dtype, device=t.device)
        try:
            torch.broadcast_shapes(ai.shape, t.shape)
        except RuntimeError:
            raise ValueError(f"a[{i}] of shape {tuple(ai.shape)} does not broadcast to theta[{i}] "
                             f"of shape {tuple(t.shape)}") from None
        out.append(ai)
    return items, out


def orbit(theta: Params, a: Sequence, lam: float) -> Params:
    """The point ``exp(lam A) theta`` of the symmetry orbit through ``theta`` (Chapter 2, ``def-exp-symmetry``).

    ``A`` is diagonal: ``a[i]`` (a number or a tensor broadcastable to
    ``theta[i]``) is its diagonal on the i-th parameter tensor. ``a = (1,)``
    is the scaling symmetry, ``a = (1, -1)`` on ``(w, u)`` the rescaling
    symmetry ``(e^lam w, e^-lam u)``. Returns the same container form as ``theta``.

    Example
    -------
    >>> import math, torch
    >>> w, u = orbit((torch.tensor([1.0]), torch.tensor([4.0])), (1, -1), math.log(2.0))
    >>> float(w), float(u)
    (2.0, 2.0)
    """
    items, a = _diag_blocks(theta, a)
    out = [t * torch.exp(lam * ai) for t, ai in zip(items, a)]
    return out[0] if isinstance(theta, torch.Tensor) else tuple(out)


def charge(theta: Params, a: Sequence) -> torch.Tensor:
    """``theta^T A theta`` for diagonal ``A`` given per tensor as in :func:`orbit` (Chapter 2, ``eq-charge-step``).

    Conserved by gradient flow on any loss with the A-symmetry. Sums over
    all entries: pass per-run tensors one run at a time, or use
    :func:`neuron_split` / :func:`matrix_charge` for per-unit charges.

    Example
    -------
    >>> import torch
    >>> float(charge((torch.tensor([3.0]), torch.tensor([1.0, 1.0])), (1, -1)))
    7.0
    """
    items, a = _diag_blocks(theta, a)
    return sum((ai * t * t).sum() for t, ai in zip(items, a))


def charge_step_residual(theta: Params, theta_next: Params, g: Params, lr: float, a: Sequence) -> torch.Tensor:
    """``|Delta(theta^T A theta) - lr^2 g^T A g|`` for one step ``theta_next = theta - lr g`` (``eq-charge-step``).

    For a loss with the A-symmetry, ``theta^T A g = 0`` for every minibatch
    gradient ``g``, so the identity is exact (zero up to round-off) for every
    GD or SGD step. A non-zero value means either the loss lacks the
    symmetry or ``theta_next`` is not the plain step.

    Example
    -------
    >>> import torch
    >>> theta, g = torch.tensor([3.0, 4.0]), torch.tensor([4.0, -3.0])  # g orthogonal to theta (A = I)
    >>> float(charge_step_residual(theta, theta - 0.1 * g, g, 0.1, (1,))) < 1e-12
    True
    """
    lr = _checks.positive("lr", lr, strict=False)
    for name, p in (("theta_next", theta_next), ("g", g)):
        if len(as_tuple(p)) != len(as_tuple(theta)) or any(
                s.shape != t.shape for s, t in zip(as_tuple(p), as_tuple(theta))):
            raise ValueError(f"{name} must have the shapes of theta")
    return (charge(theta_next, a) - charge(theta, a) - lr ** 2 * charge(g, a)).abs()


# --------------------------------------------------------------------------
# neuron and layer balance
# --------------------------------------------------------------------------


def neuron_split(w: torch.Tensor, b: torch.Tensor | None, u: torch.Tensor, *,
                 squared: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-neuron incoming and outgoing squared norms of a layer ``u sigma(w x + b)`` (``thm-neuron-balance``).

    ``w`` is (..., h, d) (incoming weights of the h hidden units), ``b`` (..., h)
    or ``None``, ``u`` (..., o, h) (outgoing weights). Returns
    ``(|w_i|^2 + b_i^2, |u_{:,i}|^2)``, each (..., h).

    Applied to the parameters it gives the two parts of the conserved charge
    (``in - out``); applied to gradients, the two sides of neuron balance.
    With ``squared=True`` the inputs are already entry-wise squares (e.g.
    :func:`ntlib.entropic.expected_batch_sq`) and are only summed.

    Example
    -------
    >>> import torch
    >>> inc, out = neuron_split(torch.tensor([[3.0, 4.0]]), None, torch.tensor([[2.0]]))
    >>> inc.tolist(), out.tolist()
    ([25.0], [4.0])
    """
    _checks.tensor("w", w)
    _checks.tensor("u", u)
    if w.ndim < 2 or u.ndim < 2:
        raise ValueError(f"w must be (..., h, d) and u (..., o, h), got {tuple(w.shape)} and {tuple(u.shape)}")
    h = w.shape[-2]
    if u.shape[-1] != h:
        raise ValueError(f"u must have h = {h} columns (one per hidden unit of w {tuple(w.shape)}), "
                         f"got shape {tuple(u.shape)}")
    sq = (lambda t: t) if squared else (lambda t: t * t)
    inc = sq(w).sum(-1)
    if b is not None:
        _checks.tensor("b", b)
        if b.shape[-1] != h or b.shape[:-1] != w.shape[:-2]:
            raise ValueError(f"b must have shape {tuple(w.shape[:-1])} to match w {tuple(w.shape)}, got {tuple(b.shape)}")
        inc = inc + sq(b)
    return inc, sq(u).sum(-2)


def neuron_balance_sides(grad_w: torch.Tensor, grad_b: torch.Tensor | None, grad_u: torch.Tensor,
                         batch_size: int, *, replacement: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-neuron ``(E_B|grad_in l_B|^2, E_B|grad_out l_B|^2)`` from per-sample gradients (``thm-neuron-balance``).

    ``grad_w`` (N, ..., h, d), ``grad_b`` (N, ..., h) or ``None`` and ``grad_u``
    (N, ..., o, h) are per-sample gradients of a layer ``u sigma(w x + b)`` (for
    example from :func:`ntlib.grads.per_sample_grads`, or the rows of a batch
    computed by hand). The expectation over minibatches of ``batch_size`` is exact
    (:func:`ntlib.entropic.expected_batch_sq`); the result has shape (..., h) twice.
    The theorem says their ratio is one at stationarity of the entropic loss.

    Example
    -------
    >>> import torch
    >>> gw, gu = torch.tensor([[[1.0, 1.0]], [[1.0, -1.0]]]), torch.tensor([[[2.0]], [[0.0]]])
    >>> [t.tolist() for t in neuron_balance_sides(gw, None, gu, batch_size=1)]
    [[2.0], [2.0]]
    """
    sq = lambda name, g: None if g is None else expected_batch_sq(_checks.tensor(name, g), batch_size,
                                                                  replacement=replacement)
    return neuron_split(sq("grad_w", grad_w), sq("grad_b", grad_b), sq("grad_u", grad_u), squared=True)


def balance_log_ratio(incoming: torch.Tensor, outgoing: torch.Tensor, *, time_dim: int | None = None,
                      layer: bool = False) -> torch.Tensor:
    """``log(<in> / <out>)``: zero at balance (``thm-neuron-balance``, ``eq-balance-ratio``).

    ``incoming``/``outgoing`` are matching non-negative tensors, e.g. the two
    outputs of :func:`neuron_split` applied to squared gradients and stacked
    over training time. ``<.>`` is the mean over ``time_dim`` (the ratio of
    time averages, not the average of ratios: the balance is a statement about
    time averages, snapshots fluctuate by O(sqrt(lr))). ``layer=True`` first
    sums over the last (neuron) dimension: the layer balance.

    Example
    -------
    >>> import torch
    >>> r = balance_log_ratio(torch.tensor([[1.0], [3.0]]), torch.tensor([[2.0], [2.0]]), time_dim=0)
    >>> r.tolist()
    [0.0]
    """
    _checks.tensor("incoming", incoming)
    _checks.tensor("outgoing", outgoing)
    if incoming.shape != outgoing.shape:
        raise ValueError(f"incoming {tuple(incoming.shape)} and outgoing {tuple(outgoing.shape)} must have the same shape")
    if bool((incoming < 0).any()) or bool((outgoing < 0).any()):
        raise ValueError("incoming and outgoing must be non-negative (squared norms)")
    if time_dim is not None:
        if not -incoming.ndim <= time_dim < incoming.ndim:
            raise ValueError(f"time_dim={time_dim} is out of range for shape {tuple(incoming.shape)}")
        incoming, outgoing = incoming.mean(time_dim), outgoing.mean(time_dim)
    if layer:
        incoming, outgoing = incoming.sum(-1), outgoing.sum(-1)
    if bool((incoming == 0).any()) or bool((outgoing == 0).any()):
        raise ValueError("a (time-averaged) squared norm is zero: the balance ratio is undefined (dead unit?)")
    return torch.log(incoming / outgoing)


# --------------------------------------------------------------------------
# matrix balance of a linear pair K = U W
# --------------------------------------------------------------------------


def _pair(w: torch.Tensor, u: torch.Tensor) -> None:
    _checks.tensor("w", w)
    _checks.tensor("u", u)
    if w.ndim < 2 or u.ndim < 2 or u.shape[-1] != w.shape[-2]:
        raise ValueError(f"u W must be defined: w (..., h, d) and u (..., o, h), got {tuple(w.shape)} and {tuple(u.shape)}")


def matrix_charge(w: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """``U^T U - W W^T`` (h x h), conserved by gradient flow on any loss of ``U W`` (``eq-matrix-step``).

    Example
    -------
    >>> import torch
    >>> matrix_charge(2 * torch.eye(2), torch.eye(2)).tolist()
    [[-3.0, 0.0], [0.0, -3.0]]
    """
    _pair(w, u)
    return u.transpose(-1, -2) @ u - w @ w.transpose(-1, -2)


def matrix_step_residual(w: torch.Tensor, u: torch.Tensor, w_next: torch.Tensor, u_next: torch.Tensor,
                         gw: torch.Tensor, gu: torch.Tensor, lr: float) -> torch.Tensor:
    """Max-abs residual of ``Delta(U^T U - W W^T) = lr^2 (gu^T gu - gw gw^T)`` (``eq-matrix-step``).

    ``gw = U^T G`` and ``gu = G W^T`` are the minibatch gradients of the step
    (``G = dl/dK``), so the right side equals ``lr^2 (W G^T G W^T - U^T G G^T U)``.
    Exact (round-off) for every GD/SGD step of a loss that depends on
    ``U W`` only. Returns one value per leading index.

    Example
    -------
    >>> import torch
    >>> w, u, G = torch.eye(2), 2 * torch.eye(2), torch.tensor([[1.0, 0.0], [0.5, -1.0]])
    >>> gw, gu = u.T @ G, G @ w.T
    >>> float(matrix_step_residual(w, u, w - 0.1 * gw, u - 0.1 * gu, gw, gu, 0.1)) < 1e-6  # float32 round-off
    True
    """
    _pair(w, u)
    lr = _checks.positive("lr", lr, strict=False)
    for name, a, ref in (("w_next", w_next, w), ("u_next", u_next, u), ("gw", gw, w), ("gu", gu, u)):
        if a.shape != ref.shape:
            raise ValueError(f"{name} must have shape {tuple(ref.shape)}, got {tuple(a.shape)}")
    lhs = matrix_charge(w_next, u_next) - matrix_charge(w, u)
    rhs = lr ** 2 * (gu.transpose(-1, -2) @ gu - gw @ gw.transpose(-1, -2))
    return (lhs - rhs).abs().amax(dim=(-1, -2))


def matrix_balance_sides(w: torch.Tensor, u: torch.Tensor, gtg: torch.Tensor,
                         ggt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The two h x h sides ``(W E[G^T G] W^T, U^T E[G G^T] U)`` of matrix balance (``eq-matrix-balance``).

    Example
    -------
    >>> import torch
    >>> lhs, rhs = matrix_balance_sides(2 * torch.eye(2), torch.eye(2), torch.eye(2), torch.eye(2))
    >>> lhs.trace().item(), rhs.trace().item()
    (8.0, 2.0)
    """
    _pair(w, u)
    if gtg.shape[-2:] != (w.shape[-1],) * 2 or ggt.shape[-2:] != (u.shape[-2],) * 2:
        raise ValueError(f"gtg must be {w.shape[-1]}x{w.shape[-1]} and ggt {u.shape[-2]}x{u.shape[-2]} for "
                         f"w {tuple(w.shape)}, u {tuple(u.shape)}; got {tuple(gtg.shape)}, {tuple(ggt.shape)}")
    return w @ gtg @ w.transpose(-1, -2), u.transpose(-1, -2) @ ggt @ u


def layer_pair_balance(weights: Sequence[torch.Tensor], i: int, t: Teacher, *, batch_size: int = 1,
                       label_noise: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """The two sides of matrix balance for the pair ``(W_i, W_{i+1})`` of a deep linear net, in one call.

    ``(W_i E[G^T G] W_i^T, W_{i+1}^T E[G G^T] W_{i+1})`` with the exact Gaussian
    moments of :func:`ntlib.linear.moments.pair_moments` for minibatches of
    ``batch_size`` from the teacher ``t`` (``thm-matrix-balance``). Compare them
    with :func:`matrix_balance_error`.

    Example
    -------
    >>> import torch
    >>> from ntlib.linear import teacher
    >>> I = torch.eye(2, dtype=torch.float64)
    >>> lhs, rhs = layer_pair_balance([I.expand(1, 2, 2), I.expand(1, 2, 2)], 0, teacher(I))
    >>> float(matrix_balance_error(lhs, rhs))  # a balanced global minimum
    0.0
    """
    gtg, ggt = pair_moments(weights, i, t, batch_size=batch_size, label_noise=label_noise)
    return matrix_balance_sides(weights[i], weights[i + 1], gtg, ggt)


def matrix_balance_error(lhs: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """Relative balance error ``2 |lhs - rhs|_F / (|lhs|_F + |rhs|_F)`` in [0, 2] (``thm-matrix-balance``).

    Symmetric in its arguments, zero exactly at balance, and invariant under
    a common rotation ``R (.) R^T`` of both sides (the hidden-layer rotation
    symmetry that the entropic loss keeps). One value per leading index.

    Example
    -------
    >>> import torch
    >>> round(float(matrix_balance_error(3 * torch.eye(2), torch.eye(2))), 6)
    1.0
    """
    _checks.tensor("lhs", lhs)
    _checks.tensor("rhs", rhs)
    if lhs.shape != rhs.shape:
        raise ValueError(f"lhs {tuple(lhs.shape)} and rhs {tuple(rhs.shape)} must have the same shape")
    num = torch.linalg.matrix_norm(lhs - rhs)
    den = torch.linalg.matrix_norm(lhs) + torch.linalg.matrix_norm(rhs)
    if bool((den == 0).any()):
        raise ValueError("both sides are zero: the relative balance error is undefined")
    return 2 * num / den
