"""Parameter symmetries, their conserved quantities, and the balance that SGD restores.

Implements Chapter 2 of the book ("Entropic forces break continuous symmetries"):

* Exponential symmetries ``l(exp(lambda A) theta) = l(theta)`` with ``A``
  symmetric and block-diagonal over the parameter tensors (:func:`orbit`):
  the *charge* ``theta^T A theta`` (:func:`charge`) is conserved by gradient
  flow and obeys, for every GD/SGD step, the exact identity
  ``Delta(theta^T A theta) = lr^2 g^T A g`` (``eq-charge-step``,
  :func:`charge_step_residual`).
* Neuron balance of a two-layer ReLU network (``thm-neuron-balance``): per
  neuron, ``E_B|grad_in l_B|^2 = E_B|grad_out l_B|^2`` at stationarity
  (:func:`neuron_split`, :func:`expected_batch_sq`, :func:`balance_log_ratio`).
* Matrix balance of a linear pair ``f = ... U W ...`` (``thm-matrix-balance``):
  ``W E[G^T G] W^T = U^T E[G G^T] U`` with ``G = dl/d(UW)``
  (:func:`matrix_charge`, :func:`matrix_step_residual`,
  :func:`linear_pair_moments`, :func:`matrix_balance_error`).
* Two toy models: the 2-d scale-invariant regression ``l = (x . theta/|theta| - y)^2``
  (``thm-scale-invariance``) and the rescaling toy ``l = (u w - y)^2``, trained
  by SGD or by Langevin dynamics at a matched temperature (``prop-gibbs-orbit``).

Shapes: every function accepts leading "runs" dimensions (``...``) and
broadcasts over them.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from . import _checks
from ._params import Params, as_tuple
from .dynamics import DivergenceError

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
    :func:`expected_batch_sq`) and are only summed.

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


def expected_batch_sq(sample_grads: torch.Tensor, batch_size: int, *, replacement: bool = True) -> torch.Tensor:
    """Entry-wise ``E_B[(grad l_B)^2]`` over minibatches, from per-sample gradients (``eq-neuron-balance``).

    ``sample_grads`` is (N, ...) (e.g. one tensor of
    :func:`ntlib.grads.per_sample_grads`). With mean ``m`` and population
    variance ``v`` (1/N) of each entry, ``E_B[g_B^2] = m^2 + v c / B`` with
    ``c = 1`` for i.i.d. draws and ``c = (N - B)/(N - 1)`` without replacement.
    Summed over all entries this is ``EntropicTerms.expected_batch_grad_sq``
    of :func:`ntlib.entropic.sgd_entropic_terms`.

    Example
    -------
    >>> import torch
    >>> expected_batch_sq(torch.tensor([[1.0], [3.0]]), 1).tolist()  # (1 + 9) / 2
    [5.0]
    """
    _checks.tensor("sample_grads", sample_grads)
    if sample_grads.ndim < 1 or sample_grads.shape[0] < 1:
        raise ValueError("sample_grads must have a leading samples dimension")
    n = sample_grads.shape[0]
    bsz = _checks.positive_int("batch_size", batch_size)
    if not replacement and bsz > n:
        raise ValueError(f"batch_size={bsz} exceeds the {n} samples available without replacement")
    m = sample_grads.mean(0)
    v = ((sample_grads - m) ** 2).mean(0)
    c = 1.0 if replacement else ((n - bsz) / (n - 1) if n > 1 else 0.0)
    return m * m + v * c / bsz


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


def linear_pair_moments(weights: Sequence[torch.Tensor], i: int, v_star: torch.Tensor, sigma_x: torch.Tensor,
                        sigma_eps: torch.Tensor | None, *, batch_size: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """``(E[G_B^T G_B], E[G_B G_B^T])`` for the pair ``K = W_{i+1} W_i`` of a deep linear net (``thm-matrix-balance``).

    Loss ``l = |W_D ... W_1 x - y|^2`` averaged over a batch of ``batch_size``
    i.i.d. samples ``x ~ N(0, sigma_x)``, ``y = v_star x + eps``,
    ``eps ~ N(0, sigma_eps)`` (``None``: no label noise). ``G_B`` is the
    gradient with respect to ``K``. Exact Gaussian moments: with
    ``P = W_D..W_{i+2}``, ``Q = W_{i-1}..W_1``, ``D = W_D..W_1 - v_star``,
    ``E[x x^T (r^T M r)] = Tr(D^T M D Sx) Sx + 2 Sx D^T M D Sx + Tr(M Se) Sx``
    for ``r = D x - eps``. Shapes (..., h_{i-1}, h_{i-1}) and (..., h_{i+1}, h_{i+1}).

    Example
    -------
    At a global minimum ``E[G^T G] = 4 Tr(Se) Sx``:

    >>> import torch
    >>> I = torch.eye(2, dtype=torch.float64)
    >>> gtg, ggt = linear_pair_moments([I, I], 0, I, I, I)
    >>> gtg.tolist()
    [[8.0, 0.0], [0.0, 8.0]]
    """
    ws = list(weights)
    if not 0 <= i < len(ws) - 1:
        raise ValueError(f"i must index an adjacent pair (0 <= i < {len(ws) - 1}), got {i}")
    for j in range(len(ws) - 1):
        _pair(ws[j], ws[j + 1])
    bsz = _checks.positive_int("batch_size", batch_size)
    _checks.spd("sigma_x", sigma_x)
    _checks.tensor("v_star", v_star, ndim=2)
    d, o = ws[0].shape[-1], ws[-1].shape[-2]
    if v_star.shape != (o, d) or sigma_x.shape[0] != d:
        raise ValueError(f"the network maps {d} -> {o}: v_star must be ({o}, {d}) and sigma_x {d}x{d}, "
                         f"got {tuple(v_star.shape)} and {tuple(sigma_x.shape)}")
    if sigma_eps is not None:
        _checks.spd("sigma_eps", sigma_eps)
        if sigma_eps.shape[0] != o:
            raise ValueError(f"sigma_eps must be {o}x{o}, got {tuple(sigma_eps.shape)}")

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


# --------------------------------------------------------------------------
# toy 1: scale invariance, l = (x . theta/|theta| - y)^2
# --------------------------------------------------------------------------


def scale_invariant_grad(theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss and gradient of the batch-mean ``l = (x . theta/|theta| - y)^2`` (``thm-scale-invariance``).

    ``theta`` (..., d), ``x`` (..., B, d), ``y`` (..., B). The loss is
    invariant under ``theta -> c theta``, so the gradient
    ``2 mean[(x.n - y)(I - n n^T) x] / |theta|`` (``n = theta/|theta|``) is
    orthogonal to ``theta``. Returns ``(loss (...), grad (..., d))``.

    Example
    -------
    >>> import torch
    >>> theta = torch.tensor([3.0, 4.0])
    >>> loss, g = scale_invariant_grad(theta, torch.tensor([[1.0, 0.0]]), torch.tensor([0.0]))
    >>> round(float(loss), 6), abs(float(g @ theta)) < 1e-6
    (0.36, True)
    """
    _checks.tensor("theta", theta)
    if x.shape[:-2] != theta.shape[:-1] or x.shape[-1] != theta.shape[-1] or y.shape != x.shape[:-1]:
        raise ValueError(f"x must be (..., B, {theta.shape[-1]}) and y (..., B) for theta {tuple(theta.shape)}, "
                         f"got {tuple(x.shape)} and {tuple(y.shape)}")
    norm = theta.norm(dim=-1, keepdim=True)
    n = theta / norm
    r = (x @ n.unsqueeze(-1)).squeeze(-1) - y                      # (..., B)
    gx = (r.unsqueeze(-1) * x).mean(-2)                            # (..., d)
    g = 2 * (gx - (gx * n).sum(-1, keepdim=True) * n) / norm
    return (r * r).mean(-1), g


def scale_invariant_train(theta0: torch.Tensor, v: torch.Tensor, *, lr: float, steps: int, batch_size: int,
                          noise: float, generator: torch.Generator, method: str = "sgd",
                          record_every: int = 1) -> dict:
    """Train the scale-invariant toy ``y = v.x + noise eps``, ``x ~ N(0, I)`` (``thm-scale-invariance``).

    ``theta0`` is (runs, d). ``method="sgd"``: fresh batches; ``"gd"``: the
    exact population gradient ``-2 (I - n n^T) v / |theta|`` (population loss
    ``|n - v|^2 + noise^2``). Returns a dict of recorded ``steps`` (k,),
    ``sq_norm`` (k, runs) of ``|theta|^2`` and the maximum per-step residual
    ``identity_residual`` of ``|theta'|^2 = |theta|^2 + lr^2 |g|^2``, plus ``theta``.

    Example
    -------
    >>> import torch
    >>> from ntlib.config import generator
    >>> out = scale_invariant_train(torch.tensor([[0.0, 1.0]], dtype=torch.float64),
    ...                             torch.tensor([1.0, 0.0], dtype=torch.float64), lr=0.1, steps=20,
    ...                             batch_size=1, noise=1.0, generator=generator(0))
    >>> bool(out["sq_norm"][-1, 0] > 1.0), out["identity_residual"] < 1e-12
    (True, True)
    """
    if method not in ("sgd", "gd"):
        raise ValueError(f"method must be 'sgd' or 'gd', got {method!r}")
    _checks.tensor("theta0", theta0, ndim=2)
    _checks.tensor("v", v, ndim=1)
    if v.shape[0] != theta0.shape[1]:
        raise ValueError(f"v must have {theta0.shape[1]} entries, got {v.shape[0]}")
    lr = _checks.positive("lr", lr)
    _checks.positive_int("steps", steps, minimum=0)
    bsz = _checks.positive_int("batch_size", batch_size)
    _checks.positive("noise", noise, strict=False)
    every = _checks.positive_int("record_every", record_every)
    theta = theta0.detach().clone()
    runs, d = theta.shape
    rec_k, rec = [], []
    resid = 0.0
    for k in range(steps + 1):
        if k % every == 0 or k == steps:
            rec_k.append(k)
            rec.append((theta * theta).sum(-1))
        if k == steps:
            break
        if method == "gd":
            norm = theta.norm(dim=-1, keepdim=True)
            n = theta / norm
            g = -2 * (v - (v * n).sum(-1, keepdim=True) * n) / norm
        else:
            x = torch.randn(runs, bsz, d, generator=generator, dtype=theta.dtype)
            y = x @ v + noise * torch.randn(runs, bsz, generator=generator, dtype=theta.dtype)
            _, g = scale_invariant_grad(theta, x, y)
        new = theta - lr * g
        if not bool(torch.isfinite(new).all()):
            raise DivergenceError(k, lr, None)
        lhs = (new * new).sum(-1) - (theta * theta).sum(-1)
        resid = max(resid, float((lhs - lr ** 2 * (g * g).sum(-1)).abs().max()))
        theta = new
    return {"steps": torch.tensor(rec_k), "sq_norm": torch.stack(rec), "identity_residual": resid, "theta": theta}


# --------------------------------------------------------------------------
# toy 2: rescaling orbit, l = (u w - y)^2; SGD versus Langevin (Gibbs)
# --------------------------------------------------------------------------


def orbit_log_ratio(u: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``rho = log(|u| / |w|)``, the position along the rescaling orbit ``u w = const`` (``prop-gibbs-orbit``).

    On ``u, w > 0`` the map ``(u, w) -> (p = u w, rho)`` has constant Jacobian
    (``du dw = dp drho / 2``), so a Gibbs density
    ``exp(-L(u w)/T)`` is uniform in ``rho``: it weighs every point of an orbit
    equally. ``rho = 0`` is the balanced point ``|u| = |w|``.

    Example
    -------
    >>> import math, torch
    >>> round(float(orbit_log_ratio(torch.tensor([-2.0]), torch.tensor([0.5]))) / math.log(4.0), 6)
    1.0
    """
    return torch.log(u.abs()) - torch.log(w.abs())


def matched_temperature(lr: float, noise: float, batch_size: int, balanced_sq_norm: float) -> float:
    """Langevin temperature whose per-step noise has the total variance of SGD's (``prop-gibbs-orbit``).

    For ``l = (u w - y)^2``, ``y = y* + noise eps``, at a minimum the minibatch
    gradient is ``-2 eps_B (w, u)`` with covariance trace
    ``4 noise^2 (u^2 + w^2) / B``; SGD's step noise has trace
    ``lr^2`` times that, Langevin's ``2 lr T`` per coordinate (2 coordinates).
    Equal traces at ``u^2 + w^2 = balanced_sq_norm``:
    ``T = lr noise^2 balanced_sq_norm / B``.

    Example
    -------
    >>> matched_temperature(0.1, 1.0, 1, 2.0)
    0.2
    """
    lr = _checks.positive("lr", lr)
    noise = _checks.positive("noise", noise)
    bsz = _checks.positive_int("batch_size", batch_size)
    return lr * noise ** 2 * _checks.positive("balanced_sq_norm", balanced_sq_norm) / bsz


def rescaling_toy_train(u0: torch.Tensor, w0: torch.Tensor, *, target: float, noise: float, lr: float, steps: int,
                        generator: torch.Generator, method: str = "sgd", batch_size: int = 1,
                        temperature: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``l = (u w - y)^2``, ``y = target + noise eps`` by SGD or Langevin dynamics (``prop-gibbs-orbit``).

    ``u0, w0`` are (runs,). ``method="sgd"``: the minibatch gradient of a fresh
    batch of ``batch_size`` labels. ``method="langevin"``: the exact gradient of
    ``L = (u w - target)^2 + noise^2`` plus isotropic Gaussian noise,
    ``theta' = theta - lr grad L + sqrt(2 lr T) xi``, whose stationary density
    is the Gibbs density ``exp(-L/T)`` (as ``lr -> 0``). ``"gd"``: no noise.
    Returns the final ``(u, w)``.

    Example
    -------
    SGD moves an imbalanced start on the orbit ``u w = 1`` to the balanced point:

    >>> import torch
    >>> from ntlib.config import generator
    >>> u, w = rescaling_toy_train(torch.tensor([2.0], dtype=torch.float64), torch.tensor([0.5], dtype=torch.float64),
    ...                            target=1.0, noise=1.0, lr=0.05, steps=3000, generator=generator(0))
    >>> abs(float(orbit_log_ratio(u, w))) < 0.1
    True
    """
    if method not in ("sgd", "langevin", "gd"):
        raise ValueError(f"method must be 'sgd', 'langevin' or 'gd', got {method!r}")
    _checks.tensor("u0", u0, ndim=1)
    _checks.tensor("w0", w0, ndim=1)
    if u0.shape != w0.shape:
        raise ValueError(f"u0 {tuple(u0.shape)} and w0 {tuple(w0.shape)} must have the same shape")
    lr = _checks.positive("lr", lr)
    _checks.positive_int("steps", steps, minimum=0)
    bsz = _checks.positive_int("batch_size", batch_size)
    _checks.positive("noise", noise, strict=False)
    temp = _checks.positive("temperature", temperature, strict=False)
    if method == "langevin" and temp == 0:
        raise ValueError("method='langevin' needs temperature > 0")
    u, w = u0.detach().clone(), w0.detach().clone()
    amp = math.sqrt(2 * lr * temp)
    for k in range(steps):
        if method == "sgd":
            y = target + noise * torch.randn(bsz, u.shape[0], generator=generator, dtype=u.dtype).mean(0)
        else:
            y = target
        r = 2 * (u * w - y)
        u, w = u - lr * r * w, w - lr * r * u
        if method == "langevin":
            xi = torch.randn(2, u.shape[0], generator=generator, dtype=u.dtype)
            u, w = u + amp * xi[0], w + amp * xi[1]
        if k % 100 == 0 and not (bool(torch.isfinite(u).all()) and bool(torch.isfinite(w).all())):
            raise DivergenceError(k, lr, None)
    if not (bool(torch.isfinite(u).all()) and bool(torch.isfinite(w).all())):
        raise DivergenceError(steps, lr, None)
    return u, w


# --------------------------------------------------------------------------
# a bias-free two-layer ReLU network with explicit backprop (fast path)
# --------------------------------------------------------------------------


def relu_net_loss_and_grads(params: Sequence[torch.Tensor], x: torch.Tensor,
                            y: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Loss and gradients of ``f(x) = U relu(W x)`` by explicit backprop (``thm-neuron-balance``).

    ``params = [W (runs, h, d), U (runs, o, h)]`` as in ``ntlib.mlp`` with
    ``bias=False``; ``x`` (runs, n, d), ``y`` (runs, n, o). Returns the loss
    summed over runs of ``mean_n |f(x_n) - y_n|^2`` and the per-run gradients,
    the same as autograd on ``ntlib.mlp.mse(params, x, y, bias=False).sum()``
    but several times faster for the tiny networks of Chapter 2 (use it as the
    ``loss_and_grads`` of :func:`ntlib.ensemble.train`). Each hidden unit has
    the rescaling symmetry ``(w_i, u_i) -> (e^lam w_i, e^-lam u_i)``.

    Example
    -------
    >>> import torch
    >>> w, u = torch.tensor([[[1.0, -1.0]]]), torch.tensor([[[2.0]]])
    >>> loss, (gw, gu) = relu_net_loss_and_grads([w, u], torch.tensor([[[1.0, 0.0]]]), torch.tensor([[[1.0]]]))
    >>> float(loss), gw.tolist(), gu.tolist()
    (1.0, [[[4.0, 0.0]]], [[[2.0]]])
    """
    if len(params) != 2:
        raise ValueError(f"params must be [W, U] (a bias-free two-layer net), got {len(params)} tensors")
    w, u = params
    _pair(w, u)
    if x.ndim != 3 or x.shape[-1] != w.shape[-1] or y.shape != (*x.shape[:-1], u.shape[-2]):
        raise ValueError(f"x must be (runs, n, {w.shape[-1]}) and y (runs, n, {u.shape[-2]}), "
                         f"got {tuple(x.shape)} and {tuple(y.shape)}")
    z = x @ w.transpose(-1, -2)
    a = torch.relu(z)
    r = a @ u.transpose(-1, -2) - y
    n = x.shape[-2]
    dr = (2.0 / n) * r
    gu = dr.transpose(-1, -2) @ a
    gw = ((dr @ u) * (z > 0)).transpose(-1, -2) @ x
    return (r * r).sum() / n, [gw, gu]
