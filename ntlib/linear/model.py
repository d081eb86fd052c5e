"""Deep linear networks and their Gaussian teacher (the model of Chapters 2-4).

The model of Chapters 2-4 (the embedded deep linear network, EDLN, of the talk)::

    f(x) = M_O W_D ... W_1 M_I Z x

``W_1..W_D`` are trained; ``M_I``, ``M_O`` (frozen embeddings) and ``Z`` (the
"view" of the data a network is given) are fixed invertible matrices, identity
when omitted. Data come from a teacher ``y = V* x + eps`` with
``x ~ N(0, Sigma_x)`` and ``eps ~ N(0, Sigma_eps)``; the per-sample loss is
``l = |f(x) - y|^2``.

Every weight tensor carries a leading *runs* dimension, so that many
independent runs (seeds, learning rates, noise shapes) train in one batched
computation: ``weights[i]`` has shape ``(runs, width[i+1], width[i])``.

The :class:`Teacher` is the one carrier of a linear problem's data distribution
(``V*``, ``Sigma_x``, ``Sigma_eps``) across ntlib: training
(:mod:`ntlib.linear.training`), gradient moments (:mod:`ntlib.linear.moments`),
curvature (:mod:`ntlib.linear.curvature`) and the closed forms of
:mod:`ntlib.theory` all take one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from .. import _checks
from ..linalg import sqrtm_psd

Weights = list  # list[torch.Tensor], each (runs, out, in)


@dataclass(frozen=True)
class Teacher:
    """A Gaussian linear teacher ``y = V* x + eps`` (use :func:`teacher` to build one)."""

    v_star: torch.Tensor
    sigma_x: torch.Tensor
    sigma_eps: torch.Tensor
    sqrt_x: torch.Tensor
    sqrt_eps: torch.Tensor

    @property
    def d_in(self) -> int:
        return self.v_star.shape[1]

    @property
    def d_out(self) -> int:
        return self.v_star.shape[0]


def teacher(v_star: torch.Tensor, sigma_x: torch.Tensor | None = None,
            sigma_eps: torch.Tensor | None = None) -> Teacher:
    """Build a :class:`Teacher`; covariances default to the identity.

    ``v_star`` is (out, in); ``sigma_x`` (in x in) must be positive definite and
    ``sigma_eps`` (out x out) positive definite (label noise is switched off per
    run in :func:`~ntlib.linear.training.train`, not by a singular covariance).

    Example
    -------
    >>> import torch
    >>> t = teacher(torch.eye(2, dtype=torch.float64))
    >>> t.d_in, t.d_out, float(torch.trace(t.sigma_eps))
    (2, 2, 2.0)
    """
    _checks.tensor("v_star", v_star, ndim=2)
    o, d = v_star.shape
    sx = torch.eye(d, dtype=v_star.dtype, device=v_star.device) if sigma_x is None else sigma_x
    se = torch.eye(o, dtype=v_star.dtype, device=v_star.device) if sigma_eps is None else sigma_eps
    _checks.spd("sigma_x", sx)
    _checks.spd("sigma_eps", se)
    if sx.shape[0] != d or se.shape[0] != o:
        raise ValueError(f"sigma_x must be {d}x{d} and sigma_eps {o}x{o} for v_star of shape {tuple(v_star.shape)}")
    return Teacher(v_star, sx, se, sqrtm_psd(sx), sqrtm_psd(se))


def sample(t: Teacher, shape: Sequence[int], generator: torch.Generator, *, label_noise: bool = True,
           sigma_eps: torch.Tensor | None = None, root: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``x`` of shape ``(*shape, in)`` and ``y = V* x + eps`` of shape ``(*shape, out)``.

    ``sigma_eps`` may override the teacher's noise covariance, also per run
    (shape ``(runs, out, out)`` with ``shape = (runs, batch)``). The noise draws
    do not depend on the covariance, so two calls with equally seeded
    generators give paired samples that differ only in the noise shape.
    ``root`` (from :func:`noise_root`) replaces ``sigma_eps`` when sampling many
    batches with the same covariance.

    Example
    -------
    >>> import torch
    >>> from ntlib.config import generator
    >>> t = teacher(torch.eye(3, dtype=torch.float64))
    >>> x, y = sample(t, (4, 8), generator(0))
    >>> tuple(x.shape), tuple(y.shape)
    ((4, 8, 3), (4, 8, 3))
    """
    _checks.generator("generator", generator)
    _checks.teacher("t", t)
    if root is None and label_noise:
        root = noise_root(t, sigma_eps)
    shape = tuple(shape)
    z = torch.randn(*shape, t.d_in, generator=generator, dtype=t.v_star.dtype, device=t.v_star.device)
    e = torch.randn(*shape, t.d_out, generator=generator, dtype=t.v_star.dtype, device=t.v_star.device)
    x = z @ t.sqrt_x
    y = x @ t.v_star.T
    if root is not None:
        y = y + e @ root  # root is symmetric; (runs, B, o) @ (runs, o, o) pairs noise per run
    return x, y


def noise_root(t: Teacher, sigma_eps: torch.Tensor | None = None) -> torch.Tensor:
    """Square root of the label-noise covariance: the teacher's, or ``sigma_eps`` (o, o) or one per run (runs, o, o).

    Each covariance is checked symmetric positive definite. Compute it once and
    pass it to :func:`sample` as ``root`` when sampling many batches.

    Example
    -------
    >>> import torch
    >>> t = teacher(torch.eye(2, dtype=torch.float64))
    >>> noise_root(t, torch.diag(torch.tensor([4.0, 9.0], dtype=torch.float64))).diagonal().tolist()
    [2.0, 3.0]
    """
    _checks.teacher("t", t)
    if sigma_eps is None:
        return t.sqrt_eps
    s = sigma_eps
    _checks.tensor("sigma_eps", s)
    if s.shape[-2:] != (t.d_out, t.d_out):
        raise ValueError(f"sigma_eps must be ({t.d_out}, {t.d_out}) or (runs, {t.d_out}, {t.d_out}) for this teacher, "
                         f"got {tuple(s.shape)}")
    if s.ndim == 2:
        return sqrtm_psd(_checks.spd("sigma_eps", s), name="sigma_eps")
    if s.ndim != 3:
        raise ValueError(f"sigma_eps must be (out, out) or (runs, out, out), got shape {tuple(s.shape)}")
    return torch.stack([sqrtm_psd(_checks.spd(f"sigma_eps[{i}]", m), name="sigma_eps") for i, m in enumerate(s)])


def init_weights(widths: Sequence[int], runs: int, generator: torch.Generator, *, scale: float = 1.0,
                 dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> Weights:
    """Gaussian weights for a deep linear net with layer widths ``widths = [in, h_1, ..., out]``.

    Entries of ``W_i`` are ``N(0, scale^2 / fan_in)``; returns a list of
    ``len(widths) - 1`` tensors of shape ``(runs, widths[i+1], widths[i])``.

    Example
    -------
    >>> from ntlib.config import generator
    >>> [tuple(w.shape) for w in init_weights([3, 5, 2], 4, generator(0))]
    [(4, 5, 3), (4, 2, 5)]
    """
    widths = _checks.widths("widths", widths)
    _checks.generator("generator", generator)
    _checks.positive_int("runs", runs)
    _checks.positive("scale", scale, strict=False)
    dtype = dtype or torch.get_default_dtype()
    return [torch.randn(runs, b, a, generator=generator, dtype=dtype).to(device or "cpu") * (scale / a ** 0.5)
            for a, b in zip(widths[:-1], widths[1:])]


def check_maps(**maps) -> None:
    """Check frozen maps given by name (``m_in=...``): each ``None`` or a full-rank matrix (a, b) or stack (runs, a, b).

    Example
    -------
    >>> import torch
    >>> check_maps(m_in=torch.eye(2), z=None)
    >>> check_maps(m_out=torch.zeros(2, 2))
    Traceback (most recent call last):
    ...
    ValueError: m_out must have full rank (an invertible embedding), smallest singular value 0
    """
    for name, m in maps.items():
        if m is not None:
            _checks.invertible(name, m)


def apply_map(m: torch.Tensor | None, h: torch.Tensor) -> torch.Tensor:
    """Apply a matrix (out, in), or one per run (runs, out, in), to the rows of ``h`` (runs, n, in); ``None`` is the identity.

    Example
    -------
    >>> import torch
    >>> apply_map(2 * torch.eye(2), torch.ones(1, 3, 2)).shape, float(apply_map(None, torch.ones(1))[0])
    (torch.Size([1, 3, 2]), 1.0)
    """
    if m is None:
        return h
    return h @ (m.T if m.ndim == 2 else m.transpose(-1, -2))


def hidden(weights: Weights, x: torch.Tensor, *, m_in: torch.Tensor | None = None,
           z: torch.Tensor | None = None) -> list[torch.Tensor]:
    """Representations of ``x`` at every layer: ``[M_I Z x, h_1, ..., h_D]``.

    ``x`` is (n, in) or (runs, n, in); each entry is (runs, n, width). The
    *hidden* layers of the theorems are entries ``1 .. D-1``; entry 0 is the
    embedded input and entry D the output before ``M_O``.

    Example
    -------
    >>> import torch
    >>> from ntlib.config import generator
    >>> ws = init_weights([3, 4, 4, 2], 2, generator(0), dtype=torch.float64)
    >>> [tuple(h.shape) for h in hidden(ws, torch.ones(5, 3, dtype=torch.float64))]
    [(2, 5, 3), (2, 5, 4), (2, 5, 4), (2, 5, 2)]
    """
    _checks.weight_chain("weights", weights)
    check_maps(m_in=m_in, z=z)
    _checks.tensor("x", x)
    h = x if x.ndim == 3 else x.unsqueeze(0).expand(weights[0].shape[0], -1, -1)
    h = apply_map(m_in, apply_map(z, h))
    out = [h]
    for w in weights:
        h = h @ w.transpose(-1, -2)
        out.append(h)
    return out


def forward(weights: Weights, x: torch.Tensor, *, m_in=None, m_out=None, z=None) -> torch.Tensor:
    """Network output ``M_O W_D ... W_1 M_I Z x`` for ``x`` of shape (n, in) or (runs, n, in).

    Example
    -------
    >>> import torch
    >>> ws = [torch.eye(2, dtype=torch.float64).expand(1, 2, 2)]
    >>> forward(ws, torch.tensor([[1.0, 2.0]], dtype=torch.float64), m_out=2 * torch.eye(2, dtype=torch.float64)).tolist()
    [[[2.0, 4.0]]]
    """
    check_maps(m_out=m_out)
    return apply_map(m_out, hidden(weights, x, m_in=m_in, z=z)[-1])


def end_to_end(weights: Weights, *, m_in=None, m_out=None, z=None) -> torch.Tensor:
    """The end-to-end map ``M_O W_D ... W_1 M_I Z`` in raw input coordinates, shape (runs, out, in).

    Example
    -------
    >>> import torch
    >>> ws = [2 * torch.eye(2, dtype=torch.float64).expand(1, 2, 2), 3 * torch.eye(2, dtype=torch.float64).expand(1, 2, 2)]
    >>> end_to_end(ws)[0].diagonal().tolist()
    [6.0, 6.0]
    """
    _checks.weight_chain("weights", weights)
    check_maps(m_in=m_in, m_out=m_out, z=z)
    k = weights[0]
    for w in weights[1:]:
        k = w @ k
    for m in (m_in, z):
        if m is not None:
            k = k @ m
    if m_out is not None:
        k = m_out @ k
    return k


def population_loss(weights: Weights, t: Teacher, *, m_in=None, m_out=None, z=None,
                    label_noise: bool = True) -> torch.Tensor:
    """Exact expected loss ``E|f(x) - y|^2 = Tr((K - V*) Sx (K - V*)^T) + Tr Se`` per run, shape (runs,).

    Example
    -------
    >>> import torch
    >>> t = teacher(torch.eye(2, dtype=torch.float64))
    >>> population_loss([torch.eye(2, dtype=torch.float64).expand(1, 2, 2)], t).tolist()  # only the noise is left
    [2.0]
    """
    _checks.teacher("t", t)
    r = end_to_end(weights, m_in=m_in, m_out=m_out, z=z) - t.v_star
    loss = torch.einsum("rij,jk,rik->r", r, t.sigma_x, r)
    return loss + torch.trace(t.sigma_eps) if label_noise else loss
