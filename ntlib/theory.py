"""Closed forms of the book, each implementing a numbered result.

* :func:`two_layer_entropic_solution`: the global minimum of the entropic loss
  of a two-layer linear network (Chapter 2, ``thm-two-layer-solution``; derived
  in this book from the paper's balance condition).
* :func:`universal_kernel`: the kernel K* that every hidden layer of an embedded
  deep linear network learns (Chapter 3, ``thm-perfect-prh``).
* :func:`diagonal_noise_sharpness`: the sharpness S(r) of the entropic minimum for
  V* = I, Sigma_x = I, Sigma_eps = diag(1, r) (Chapter 4; derived here).
"""

from __future__ import annotations

import math

import torch

from . import _checks
from .linalg import sqrtm_psd, sym_pow


def _check_problem(sigma_x: torch.Tensor, sigma_eps: torch.Tensor, v_star: torch.Tensor) -> None:
    _checks.spd("sigma_x", sigma_x)
    _checks.spd("sigma_eps", sigma_eps)
    _checks.tensor("v_star", v_star, ndim=2)
    if v_star.shape != (sigma_eps.shape[0], sigma_x.shape[0]):
        raise ValueError(
            f"v_star must have shape (out, in) = ({sigma_eps.shape[0]}, {sigma_x.shape[0]}) to match "
            f"sigma_eps {tuple(sigma_eps.shape)} and sigma_x {tuple(sigma_x.shape)}, got {tuple(v_star.shape)}"
        )


def universal_kernel(sigma_x: torch.Tensor, sigma_eps: torch.Tensor, v_star: torch.Tensor) -> torch.Tensor:
    """The universal kernel K* (Chapter 3, ``eq-universal-kernel``)::

        K* = Sx^{-1/2} (Sx^{1/2} V*^T Se V* Sx^{1/2})^{1/2} Sx^{-1/2}

    Every hidden layer h of an embedded deep linear network at the global
    minimum of the entropic loss has h(x1)^T h(x2) proportional to x1^T K* x2
    (x in raw input coordinates). ``sigma_x`` (d x d) and ``sigma_eps`` (o x o)
    must be symmetric positive definite; ``v_star`` is (o x d).

    Example
    -------
    >>> import torch
    >>> I = torch.eye(2, dtype=torch.float64)
    >>> K = universal_kernel(I, I, torch.diag(torch.tensor([4.0, 1.0], dtype=torch.float64)))
    >>> [[round(v, 12) for v in row] for row in K.tolist()]  # (V^T V)^{1/2}
    [[4.0, 0.0], [0.0, 1.0]]
    """
    _check_problem(sigma_x, sigma_eps, v_star)
    sx_h, sx_mh = sqrtm_psd(sigma_x), sym_pow(sigma_x, -0.5, name="sigma_x")
    inner = sqrtm_psd(sx_h @ v_star.T @ sigma_eps @ v_star @ sx_h)
    return sx_mh @ inner @ sx_mh


def two_layer_entropic_solution(sigma_x: torch.Tensor, sigma_eps: torch.Tensor,
                                v_star: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(W^T W, U U^T)`` at the entropic global minimum of ``f(x) = U W x`` (Chapter 2, ``eq-two-layer-solution``).

    With y = V* x + eps, c = Tr Sigma_x / Tr Sigma_eps, the balance condition
    ``Tr(Se) W Sx W^T = Tr(Sx) U^T Se U`` together with ``U W = V*`` gives::

        W^T W = sqrt(c) K*
        U U^T = c^{-1/2} Se^{-1/2} (Se^{1/2} V* Sx V*^T Se^{1/2})^{1/2} Se^{-1/2}

    Unique up to a rotation of the hidden layer; independent of the learning
    rate, the batch size and the noise scale (only its shape matters). Holds to
    leading order in the learning rate.

    Example
    -------
    >>> import torch
    >>> I = torch.eye(2, dtype=torch.float64)
    >>> wtw, uut = two_layer_entropic_solution(I, I, I)
    >>> bool(torch.allclose(wtw, I) and torch.allclose(uut, I))
    True
    """
    _check_problem(sigma_x, sigma_eps, v_star)
    c = float(torch.trace(sigma_x) / torch.trace(sigma_eps))
    wtw = math.sqrt(c) * universal_kernel(sigma_x, sigma_eps, v_star)
    se_h, se_mh = sqrtm_psd(sigma_eps), sym_pow(sigma_eps, -0.5, name="sigma_eps")
    uut = se_mh @ sqrtm_psd(se_h @ v_star @ sigma_x @ v_star.T @ se_h) @ se_mh / math.sqrt(c)
    return wtw, uut


def diagonal_noise_sharpness(r: float) -> float:
    """S(r) = 2 (sqrt(2/(1+r)) + sqrt((1+r)/2) / sqrt(r)) (Chapter 4, ``eq-sharpness-r``).

    The top Hessian eigenvalue of L = E|U W x - y|^2 at the entropic minimum
    for V* = I_2, Sigma_x = I_2, Sigma_eps proportional to diag(1, r), r > 0.
    S(1) = 4 is the flattest value; S grows like r^{-1/2} as r -> 0. The
    formula is written for r <= 1; swapping the two outputs shows S(r) = S(1/r),
    which is used for r > 1.

    Example
    -------
    >>> diagonal_noise_sharpness(1.0)
    4.0
    >>> diagonal_noise_sharpness(4.0) == diagonal_noise_sharpness(0.25)
    True
    """
    r = _checks.positive("r", r)
    r = min(r, 1.0 / r)
    return 2.0 * (math.sqrt(2.0 / (1.0 + r)) + math.sqrt((1.0 + r) / 2.0) / math.sqrt(r))
