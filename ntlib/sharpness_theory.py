"""Closed forms for the sharpness of two-layer linear networks at their global minima (Chapter 4).

The model is ``f(x) = U W x`` on a teacher ``y = V* x + eps`` with white inputs
(``Sigma_x = I``) and isotropic label noise (``Sigma_eps = s^2 I``); ``s_1`` is the
largest singular value of ``V*`` (o x d).

* :func:`flattest_sharpness`: the smallest sharpness over all global minima,
  ``4 s_1`` (Chapter 4, ``prop-balanced-flattest``).
* :func:`isotropic_entropic_sharpness`: the sharpness of the entropic minimum,
  ``2 s_1 (sqrt(d/o) + sqrt(o/d))``; it equals the flattest value iff ``d = o``.

The general case (any ``Sigma_x``, ``Sigma_eps``) is :func:`ntlib.theory.entropic_sharpness`.
"""

from __future__ import annotations

import math

import torch

from . import _checks

__all__ = ["flattest_sharpness", "isotropic_entropic_sharpness"]


def _top_singular(v_star: torch.Tensor) -> float:
    _checks.tensor("v_star", v_star, ndim=2)
    s1 = float(torch.linalg.matrix_norm(v_star, ord=2))
    if s1 == 0:
        raise ValueError("v_star must be nonzero")
    return s1


def flattest_sharpness(v_star: torch.Tensor) -> float:
    """Smallest sharpness of ``E|U W x - y|^2`` over its global minima ``U W = V*``, ``Sigma_x = I``.

    The sharpness at a minimum is ``2 (lambda_max(U U^T) + lambda_max(W^T W))``
    (Chapter 4, ``lem-gn-sharpness``) ``>= 4 sqrt(|U|_2^2 |W|_2^2) >= 4 s_1``, with
    equality at the balanced point ``U U^T = (V* V*^T)^{1/2}``, ``W^T W = (V*^T V*)^{1/2}``
    (Chapter 4, ``prop-balanced-flattest``).

    Example
    -------
    >>> import torch
    >>> flattest_sharpness(torch.eye(3, dtype=torch.float64))
    4.0
    """
    return 4.0 * _top_singular(v_star)


def isotropic_entropic_sharpness(v_star: torch.Tensor) -> float:
    """Sharpness of the entropic minimum for ``Sigma_x = I``, ``Sigma_eps = s^2 I``: ``2 s_1 (sqrt(d/o) + sqrt(o/d))``.

    From :func:`ntlib.theory.two_layer_entropic_solution` with ``c = d / (o s^2)``:
    ``W^T W = sqrt(d/o) (V*^T V*)^{1/2}`` and ``U U^T = sqrt(o/d) (V* V*^T)^{1/2}``
    (Chapter 4, ``prop-balanced-flattest``). Independent of ``s``; equal to
    :func:`flattest_sharpness` iff ``d = o``, larger by the factor
    ``(sqrt(d/o) + sqrt(o/d)) / 2`` otherwise.

    Example
    -------
    >>> import torch
    >>> isotropic_entropic_sharpness(torch.ones(4, 1, dtype=torch.float64) / 2)  # d = 1, o = 4, s_1 = 1
    5.0
    """
    s1 = _top_singular(v_star)
    o, d = v_star.shape
    return 2.0 * s1 * (math.sqrt(d / o) + math.sqrt(o / d))
