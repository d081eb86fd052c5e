"""Closed forms of the book, each implementing a numbered result, each written once.

All take the linear problem as one :class:`~ntlib.linear.model.Teacher`
(``y = V* x + eps`` with ``x ~ N(0, Sigma_x)``, ``eps ~ N(0, Sigma_eps)``).

* :func:`universal_kernel`: the kernel K* that every hidden layer of an embedded
  deep linear network learns (Chapter 3, ``thm-perfect-prh``).
* :func:`two_layer_entropic_solution`: the global minimum of the entropic loss
  of a two-layer linear network (Chapter 2, ``thm-two-layer-solution``; derived
  in this book from the paper's balance condition).
* :func:`entropic_sharpness`: the sharpness of that minimum (Chapter 4,
  ``thm-entropic-sharpness``), and :func:`diagonal_noise_sharpness`, its value
  S(r) for V* = I, Sigma_x = I, Sigma_eps = diag(1, r) (derived here).
* :func:`edge_balance`: the noise balance at which S(r) reaches the stability
  limit 2 / eta (Chapter 4, ``fig-phase-diagram``).
* :func:`regularised_balance`, :func:`orbit_imbalance`: the two-layer solution when
  weight decay and the entropic force pull along the same rescaling orbit, from
  noise balance (small weight decay) to weight balance (large); and
  :func:`equilibrium_norm`, the norm at which weight decay stops the entropic growth
  of a scale-invariant model (Chapter 3, ``sec-regularisation``).
"""

from __future__ import annotations

import math

import torch

from . import _checks
from .linalg import sqrtm_psd, sym_pow
from .linear.model import Teacher

__all__ = ["universal_kernel", "two_layer_entropic_solution", "entropic_sharpness", "diagonal_noise_sharpness",
           "edge_balance", "orbit_coupling", "regularised_balance", "orbit_imbalance", "equilibrium_norm"]


def universal_kernel(t: Teacher) -> torch.Tensor:
    """The universal kernel K* (Chapter 3, ``eq-universal-kernel``)::

        K* = Sx^{-1/2} (Sx^{1/2} V*^T Se V* Sx^{1/2})^{1/2} Sx^{-1/2}

    Every hidden layer h of an embedded deep linear network at the global
    minimum of the entropic loss has h(x1)^T h(x2) proportional to x1^T K* x2
    (x in raw input coordinates). The teacher's covariances are symmetric
    positive definite (checked when it was built).

    Example
    -------
    >>> import torch
    >>> from ntlib.linear import teacher
    >>> K = universal_kernel(teacher(torch.diag(torch.tensor([4.0, 1.0], dtype=torch.float64))))
    >>> [[round(v, 12) for v in row] for row in K.tolist()]  # (V^T V)^{1/2}
    [[4.0, 0.0], [0.0, 1.0]]
    """
    _checks.teacher("t", t)
    sx_h, sx_mh = t.sqrt_x, sym_pow(t.sigma_x, -0.5, name="sigma_x")
    inner = sqrtm_psd(sx_h @ t.v_star.T @ t.sigma_eps @ t.v_star @ sx_h)
    return sx_mh @ inner @ sx_mh


def two_layer_entropic_solution(t: Teacher) -> tuple[torch.Tensor, torch.Tensor]:
    """``(W^T W, U U^T)`` at the entropic global minimum of ``f(x) = U W x`` (Chapter 2, ``eq-two-layer-solution``).

    With c = Tr Sigma_x / Tr Sigma_eps, the balance condition
    ``Tr(Se) W Sx W^T = Tr(Sx) U^T Se U`` together with ``U W = V*`` gives::

        W^T W = sqrt(c) K*
        U U^T = c^{-1/2} Se^{-1/2} (Se^{1/2} V* Sx V*^T Se^{1/2})^{1/2} Se^{-1/2}

    Unique up to a rotation of the hidden layer; independent of the learning
    rate, the batch size and the noise scale (only its shape matters). Holds to
    leading order in the learning rate.

    Example
    -------
    >>> import torch
    >>> from ntlib.linear import teacher
    >>> I = torch.eye(2, dtype=torch.float64)
    >>> wtw, uut = two_layer_entropic_solution(teacher(I))
    >>> bool(torch.allclose(wtw, I) and torch.allclose(uut, I))
    True
    """
    _checks.teacher("t", t)
    c = float(torch.trace(t.sigma_x) / torch.trace(t.sigma_eps))
    wtw = math.sqrt(c) * universal_kernel(t)
    se_h, se_mh = t.sqrt_eps, sym_pow(t.sigma_eps, -0.5, name="sigma_eps")
    uut = se_mh @ sqrtm_psd(se_h @ t.v_star @ t.sigma_x @ t.v_star.T @ se_h) @ se_mh / math.sqrt(c)
    return wtw, uut


def entropic_sharpness(t: Teacher) -> float:
    """Sharpness of the entropic minimum of ``f = U W x`` (Chapter 4, ``thm-entropic-sharpness``).

    The top eigenvalue of ``2 (U U^T (x) Sigma_x + I (x) Sigma_x^{1/2} W^T W Sigma_x^{1/2})``
    (:func:`ntlib.linear.curvature.gauss_newton_matrix` for two layers), with
    ``W^T W`` and ``U U^T`` from :func:`two_layer_entropic_solution`; for
    ``Sigma_x = I`` it is ``2 (lambda_max(U U^T) + lambda_max(W^T W))``. Depends on
    the shape of the label noise only, not on its scale, the learning rate or the
    batch size.

    Example
    -------
    >>> import torch
    >>> from ntlib.linear import teacher
    >>> I = torch.eye(2, dtype=torch.float64)
    >>> round(entropic_sharpness(teacher(I, sigma_eps=torch.diag(torch.tensor([1.0, 0.1], dtype=torch.float64)))), 4)
    7.3872
    """
    wtw, uut = two_layer_entropic_solution(t)
    o = uut.shape[0]
    g = torch.kron(uut, t.sigma_x) + torch.kron(torch.eye(o, dtype=uut.dtype, device=uut.device),
                                                t.sqrt_x @ wtw @ t.sqrt_x)
    return float(2 * torch.linalg.eigvalsh(g)[-1])


def diagonal_noise_sharpness(r):
    """S(r) = 2 (sqrt(2/(1+r)) + sqrt((1+r)/2) / sqrt(r)) (Chapter 4, ``eq-sharpness-r``).

    :func:`entropic_sharpness` for V* = I_2, Sigma_x = I_2 and Sigma_eps
    proportional to diag(1, r), r > 0. S(1) = 4 is the flattest value; S grows
    like r^{-1/2} as r -> 0. The formula is written for r <= 1; swapping the two
    outputs shows S(r) = S(1/r), which is used for r > 1. ``r`` is a float
    (returns a float) or a tensor (returns a tensor of the same shape).

    Example
    -------
    >>> diagonal_noise_sharpness(1.0)
    4.0
    >>> diagonal_noise_sharpness(4.0) == diagonal_noise_sharpness(0.25)
    True
    """
    if isinstance(r, torch.Tensor):
        _checks.tensor("r", r)
        if bool((r <= 0).any()):
            raise ValueError("r must be > 0")
        r = torch.minimum(r, 1.0 / r)
        return 2 * (torch.sqrt(2 / (1 + r)) + torch.sqrt((1 + r) / 2) / torch.sqrt(r))
    r = _checks.positive("r", r)
    r = min(r, 1.0 / r)
    return 2.0 * (math.sqrt(2.0 / (1.0 + r)) + math.sqrt((1.0 + r) / 2.0) / math.sqrt(r))


def edge_balance(lr, *, iters: int = 200) -> torch.Tensor:
    """Noise balance ``r in (0, 1]`` at which ``S(r) = 2 / lr`` (Chapter 4, ``fig-phase-diagram``).

    ``S(r)`` (:func:`diagonal_noise_sharpness`) decreases from infinity
    at ``r -> 0`` to ``S(1) = 4``: runs with ``r`` below the returned value have an
    entropic minimum sharper than the stability limit ``2 / lr``. Returns ``nan``
    where ``2 / lr < 4`` (no r in (0, 1] is stable). Vectorised over ``lr``
    (a float or a tensor), by bisection in ``log r``.

    Example
    -------
    >>> round(float(edge_balance(0.5)), 9)  # 2 / 0.5 = 4 = S(1)
    1.0
    >>> bool(torch.isnan(edge_balance(0.6)))  # 2 / 0.6 < 4: no balance is stable
    True
    """
    # a tensor keeps its floating dtype, a Python float is a double
    lr_t = lr if isinstance(lr, torch.Tensor) and lr.is_floating_point() else torch.as_tensor(lr, dtype=torch.float64)
    if not bool(torch.isfinite(lr_t).all()) or bool((lr_t <= 0).any()):
        raise ValueError(f"lr must be > 0 and finite, got {lr!r}")
    target = 2 / lr_t
    lo = torch.full_like(target, -60.0)  # log r: S(e^-60) is huge
    hi = torch.zeros_like(target)
    for _ in range(iters):
        mid = (lo + hi) / 2
        too_sharp = diagonal_noise_sharpness(torch.exp(mid)) > target
        lo = torch.where(too_sharp, mid, lo)
        hi = torch.where(too_sharp, hi, mid)
    r = torch.exp((lo + hi) / 2)
    return torch.where(target < 4, torch.full_like(r, math.nan), r)


def orbit_coupling(lr: float, weight_decay: float, batch_size: int = 1) -> float:
    """kappa = lr / (B gamma (1 - lr gamma)): how strongly noise outweighs weight decay (Chapter 3, ``eq-wd-orbit``).

    SGD with learning rate ``lr`` on ``L + gamma (|W|^2 + |U|^2)`` changes the charge
    ``C = W W^T - U^T U`` of a layer pair exactly by ``C' = (1 - 2 lr gamma)^2 C + lr^2 (g_W g_W^T - g_U^T g_U)``;
    at stationarity ``E[C] = lr / (4 gamma (1 - lr gamma)) E[g_W g_W^T - g_U^T g_U]``, and at a
    global minimum of a two-layer linear net ``E[g_W g_W^T] = (4 / B) Tr(Sx) U^T Se U``,
    ``E[g_U^T g_U] = (4 / B) Tr(Se) W Sx W^T``, so the condition reads
    ``W W^T - U^T U = kappa (Tr(Sx) U^T Se U - Tr(Se) W Sx W^T)``. Returns ``inf`` for
    ``weight_decay = 0`` (pure noise balance).

    Example
    -------
    >>> orbit_coupling(0.01, 0.02)  # 0.01 / (0.02 * (1 - 0.0002))
    0.5001000200040008
    """
    lr = _checks.positive("lr", lr)
    gamma = _checks.positive("weight_decay", weight_decay, strict=False)
    b = _checks.positive_int("batch_size", batch_size)
    if lr * gamma >= 1:
        raise ValueError(f"lr * weight_decay must be < 1 (weights shrink by 1 - 2 lr gamma per step), got {lr * gamma}")
    return math.inf if gamma == 0 else lr / (b * gamma * (1 - lr * gamma))


def regularised_balance(t: Teacher, *, lr: float, weight_decay: float,
                        batch_size: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """``(W^T W, U U^T)`` of ``f = U W x`` where weight decay and noise balance each other (Chapter 3, ``eq-wd-kernel``).

    The orbit condition of :func:`orbit_coupling` at ``U W = V*`` is
    ``W A W^T = U^T B U`` with ``A = I + kappa Tr(Se) Sx`` and ``B = I + kappa Tr(Sx) Se``: the
    noise balance of :func:`two_layer_entropic_solution` with the covariances shifted by
    the identity. Its solution is unique up to a hidden rotation (the proof of
    ``thm-perfect-prh`` with ``A``, ``B`` in place of ``Sx``, ``Se``)::

        W^T W = A^{-1/2} (A^{1/2} V*^T B V* A^{1/2})^{1/2} A^{-1/2}
        U U^T = B^{-1/2} (B^{1/2} V* A V*^T B^{1/2})^{1/2} B^{-1/2}

    kappa -> inf (``weight_decay -> 0``) gives the entropic solution, kappa -> 0 weight
    balance ``W^T W = (V*^T V*)^{1/2}``. Leading order in ``lr`` and in the bias that
    weight decay gives the minimum (``U W = V*`` is assumed).

    Example
    -------
    >>> import torch
    >>> from ntlib.linear import teacher
    >>> t = teacher(torch.eye(2, dtype=torch.float64), sigma_eps=torch.diag(torch.tensor([4.0, 0.25], dtype=torch.float64)))
    >>> wtw, uut = regularised_balance(t, lr=1e-6, weight_decay=10.0)  # kappa ~ 1e-7: weight balance: (V^T V)^{1/2} = I
    >>> [round(v, 4) for v in wtw.diagonal().tolist()]
    [1.0, 1.0]
    """
    _checks.teacher("t", t)
    kappa = orbit_coupling(lr, weight_decay, batch_size)
    if math.isinf(kappa):
        return two_layer_entropic_solution(t)
    eye = lambda n: torch.eye(n, dtype=t.v_star.dtype, device=t.v_star.device)
    a = eye(t.d_in) + kappa * torch.trace(t.sigma_eps) * t.sigma_x
    b = eye(t.d_out) + kappa * torch.trace(t.sigma_x) * t.sigma_eps
    sym = lambda m: (m + m.T) / 2
    return universal_kernel(Teacher(t.v_star, sym(a), sym(b), sqrtm_psd(a), sqrtm_psd(b))), \
        universal_kernel(Teacher(t.v_star.T, sym(b), sym(a), sqrtm_psd(b), sqrtm_psd(a)))


def orbit_imbalance(t: Teacher, *, lr: float, weight_decay: float, batch_size: int = 1) -> torch.Tensor:
    """Eigenvalues (ascending) of ``(U^T U)^{-1} W W^T`` at :func:`regularised_balance` (Chapter 3, ``eq-wd-imbalance``).

    A rotation-invariant measure of how the pair splits its norm: all 1 at weight
    balance. With ``W = O G^{1/2}`` and ``U = V* G^{-1/2} O^T`` (``G = W^T W``, square
    invertible ``V*``) the matrix is similar to ``(V*^T V*)^{-1} G^2``. For ``V* = I``,
    ``Sx = I`` and ``Se = diag(e_k)`` the eigenvalues are
    ``(1 + kappa Tr(Sx) e_k) / (1 + kappa Tr(Se))``.

    Example
    -------
    >>> import torch
    >>> from ntlib.linear import teacher
    >>> t = teacher(torch.eye(2, dtype=torch.float64), sigma_eps=torch.diag(torch.tensor([4.0, 0.25], dtype=torch.float64)))
    >>> [round(v, 6) for v in orbit_imbalance(t, lr=0.01, weight_decay=0.01).tolist()]  # kappa ~ 1
    [0.285701, 1.714299]
    """
    if t.d_in != t.d_out:
        raise ValueError(f"orbit_imbalance needs a square V* (got {t.d_out} x {t.d_in})")
    wtw, _ = regularised_balance(t, lr=lr, weight_decay=weight_decay, batch_size=batch_size)
    m = torch.linalg.solve(t.v_star.T @ t.v_star, wtw @ wtw)
    return torch.linalg.eigvals(m).real.sort().values


def equilibrium_norm(lr, weight_decay, noise_power):
    """Stationary ``E|theta|^2`` of SGD with weight decay on a scale-invariant loss (Chapter 3, ``eq-wd-norm``).

    For ``l(c theta) = l(theta)`` the gradient is orthogonal to ``theta`` and scales as
    ``1 / |theta|``, so a step with ``theta' = (1 - 2 lr gamma) theta - lr g`` gives exactly
    ``|theta'|^2 = (1 - 2 lr gamma)^2 |theta|^2 + lr^2 |g|^2``, and with
    ``noise_power = E[|theta|^2 |g|^2]`` (independent of the norm) stationarity gives::

        |theta|^4 = lr * noise_power / (4 gamma (1 - lr gamma))

    (neglecting the fluctuations of ``|theta|^2``, of relative size ``sqrt(lr gamma)``): the
    norm grows as ``(lr / gamma)^{1/4}``. Without weight decay it grows without bound.
    Floats or tensors (broadcast).

    Example
    -------
    >>> round(float(equilibrium_norm(0.04, 0.01, 12.0)), 6)  # sqrt(0.48 / (0.04 * 0.9996))
    3.464795
    """
    lr_t, gam_t, c_t = (torch.as_tensor(v, dtype=torch.float64) for v in (lr, weight_decay, noise_power))
    for name, v in (("lr", lr_t), ("weight_decay", gam_t), ("noise_power", c_t)):
        if not bool(torch.isfinite(v).all()) or bool((v <= 0).any()):
            raise ValueError(f"{name} must be finite and > 0, got {v}")
    if bool((lr_t * gam_t >= 1).any()):
        raise ValueError("lr * weight_decay must be < 1")
    out = torch.sqrt(lr_t * c_t / (4 * gam_t * (1 - lr_t * gam_t)))
    return float(out) if out.ndim == 0 else out
