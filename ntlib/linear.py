"""Deep linear networks on a Gaussian teacher, trained as an ensemble of runs.

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

Training (:func:`train`) is online SGD (a fresh batch every step), or exact
gradient descent on the population loss (``method="gd"``: no sampling noise at
all, the control that removes the entropic force's noise term).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from . import _checks
from . import ensemble
from .ensemble import History
from .linalg import sqrtm_psd

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
    run in :func:`train`, not by a singular covariance).

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


def sample(t: Teacher, shape: Sequence[int], generator: torch.Generator, *,
           label_noise: bool = True, sigma_eps: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``x`` of shape ``(*shape, in)`` and ``y = V* x + eps`` of shape ``(*shape, out)``.

    ``sigma_eps`` may override the teacher's noise covariance, also per run
    (shape ``(runs, out, out)`` with ``shape = (runs, batch)``). The noise draws
    do not depend on the covariance, so two calls with equally seeded
    generators give paired samples that differ only in the noise shape.

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
    root = None
    if label_noise:
        root = t.sqrt_eps if sigma_eps is None else _batched_sqrt(sigma_eps)
    return _sample(t, tuple(shape), generator, root)


def _sample(t: Teacher, shape: tuple, generator: torch.Generator, root: torch.Tensor | None):
    """Draw (x, y); ``root`` is the (possibly per-run) square root of the noise covariance, None for no noise."""
    z = torch.randn(*shape, t.d_in, generator=generator, dtype=t.v_star.dtype, device=t.v_star.device)
    e = torch.randn(*shape, t.d_out, generator=generator, dtype=t.v_star.dtype, device=t.v_star.device)
    x = z @ t.sqrt_x
    y = x @ t.v_star.T
    if root is not None:
        y = y + e @ root  # root is symmetric; (runs, B, o) @ (runs, o, o) pairs noise per run
    return x, y


def _batched_sqrt(s: torch.Tensor) -> torch.Tensor:
    """Square root of a noise covariance (o, o) or of one per run (runs, o, o), each checked positive definite."""
    _checks.tensor("sigma_eps", s)
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


def _check_weights(weights: Weights) -> None:
    """Weights must be (runs, out, in) tensors that chain: weights[i+1] takes what weights[i] gives."""
    if not isinstance(weights, (list, tuple)) or not weights:
        raise TypeError(f"weights must be a non-empty list of (runs, out, in) tensors, got {type(weights).__name__}")
    for i, w in enumerate(weights):
        _checks.tensor(f"weights[{i}]", w, ndim=3)
    for i, (a, b) in enumerate(zip(weights[:-1], weights[1:])):
        if a.shape[-2] != b.shape[-1] or a.shape[0] != b.shape[0]:
            raise ValueError(f"weights[{i}] {tuple(a.shape)} and weights[{i + 1}] {tuple(b.shape)} do not chain")


def _check_maps(**maps) -> None:
    for name, m in maps.items():
        if m is not None:
            _checks.invertible(name, m)


def _apply(m: torch.Tensor | None, h: torch.Tensor) -> torch.Tensor:
    """Apply a matrix (out, in) or a batch of matrices (runs, out, in) to rows of h (runs, n, in)."""
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
    >>> ws = init_weights([3, 4, 4, 2], 2, generator(0))
    >>> [tuple(h.shape) for h in hidden(ws, torch.ones(5, 3, dtype=torch.float64))]
    [(2, 5, 3), (2, 5, 4), (2, 5, 4), (2, 5, 2)]
    """
    _check_weights(weights)
    _check_maps(m_in=m_in, z=z)
    _checks.tensor("x", x)
    h = x if x.ndim == 3 else x.unsqueeze(0).expand(weights[0].shape[0], -1, -1)
    h = _apply(m_in, _apply(z, h))
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
    _check_maps(m_out=m_out)
    return _apply(m_out, hidden(weights, x, m_in=m_in, z=z)[-1])


def end_to_end(weights: Weights, *, m_in=None, m_out=None, z=None) -> torch.Tensor:
    """The end-to-end map ``M_O W_D ... W_1 M_I Z`` in raw input coordinates, shape (runs, out, in).

    Example
    -------
    >>> import torch
    >>> ws = [2 * torch.eye(2, dtype=torch.float64).expand(1, 2, 2), 3 * torch.eye(2, dtype=torch.float64).expand(1, 2, 2)]
    >>> end_to_end(ws)[0].diagonal().tolist()
    [6.0, 6.0]
    """
    _check_weights(weights)
    _check_maps(m_in=m_in, m_out=m_out, z=z)
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
    if not isinstance(t, Teacher):
        raise TypeError(f"t must be a Teacher (see ntlib.linear.teacher), got {type(t).__name__}")
    r = end_to_end(weights, m_in=m_in, m_out=m_out, z=z) - t.v_star
    loss = torch.einsum("rij,jk,rik->r", r, t.sigma_x, r)
    return loss + torch.trace(t.sigma_eps) if label_noise else loss


def _loss_and_grads(ws: Weights, x: torch.Tensor, y: torch.Tensor, pre: torch.Tensor,
                    m_out, scale: float) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Summed loss ``scale * sum_runs sum_batch |f - y|^2`` and its gradients by explicit backprop.

    ``pre`` is the transposed frozen input map ``(M_I Z)^T`` per run, shape (runs, in, w_0).
    """
    h = (x if x.ndim == 3 else x.unsqueeze(0).expand(ws[0].shape[0], -1, -1)) @ pre
    hs = [h]
    for w in ws:
        h = h @ w.transpose(-1, -2)
        hs.append(h)
    r = _apply(m_out, h) - y
    loss = scale * (r * r).sum()
    delta = 2 * scale * r
    if m_out is not None:
        delta = delta @ m_out
    grads = []
    for i in range(len(ws) - 1, -1, -1):
        grads.append(delta.transpose(-1, -2) @ hs[i])
        if i:
            delta = delta @ ws[i]
    return loss, grads[::-1]


def train(weights: Weights, t: Teacher, *, lr, steps: int, generator: torch.Generator,
          batch_size: int = 4, method: str = "sgd", lr_end: float | None = None, label_noise: bool = True,
          sigma_eps: torch.Tensor | None = None, shared_data: bool = False, weight_decay: float = 0.0,
          optimizer: str = "sgd", adam: dict | None = None, m_in=None, m_out=None, z=None,
          record_every: int = 0, recorder: Callable[[int, Weights], object] | None = None) -> tuple[Weights, History]:
    """Train an ensemble of deep linear networks; returns the final weights and a :class:`~ntlib.ensemble.History`.

    Parameters
    ----------
    weights
        Initial weights from :func:`init_weights` (not modified).
    t
        The teacher.
    lr, lr_end
        Learning rate (a float or one per run), decayed geometrically to ``lr_end``
        over the run when given (annealing makes the leading-order closed forms
        exact in the limit).
    method
        ``"sgd"``: online minibatches of ``batch_size`` fresh samples;
        ``"gd"``: exact gradient of :func:`population_loss` (no noise at all).
    label_noise
        ``False`` trains on ``y = V* x`` (sampling noise only).
    sigma_eps
        Optional noise covariance overriding the teacher's, shared (o, o) or per
        run (runs, o, o); the draws are paired across runs and calls.
    shared_data
        Every run sees the same samples (paired comparisons) instead of independent ones.
    weight_decay
        Adds ``weight_decay * sum |W_i|^2`` to the loss.
    optimizer
        ``"sgd"`` or ``"adam"`` (``adam`` may hold ``betas`` and ``eps``, e.g.
        ``{"betas": (0.9, 0.995), "eps": 1e-7}``; see :func:`ntlib.ensemble.train`).
    m_in, m_out, z
        Frozen embeddings and view (shared (a, b) or per run (runs, a, b)).
    record_every, recorder
        Every ``record_every`` steps (and at the end), ``recorder(step, weights)``
        is stored in the history.

    Raises
    ------
    DivergenceError
        When the loss or the weights become non-finite (names the step and learning rate).

    Example
    -------
    >>> import torch
    >>> from ntlib.config import generator
    >>> t = teacher(torch.eye(2, dtype=torch.float64))
    >>> w0 = init_weights([2, 3, 2], 4, generator(0))
    >>> w, _ = train(w0, t, lr=0.05, steps=2000, generator=generator(1), method="gd")
    >>> bool(torch.allclose(end_to_end(w), torch.eye(2, dtype=torch.float64), atol=1e-6))
    True
    """
    if method not in ("sgd", "gd"):
        raise ValueError(f"method must be 'sgd' or 'gd', got {method!r}")
    if not isinstance(t, Teacher):
        raise TypeError(f"t must be a Teacher (see ntlib.linear.teacher), got {type(t).__name__}")
    _check_weights(weights)
    _check_maps(m_in=m_in, m_out=m_out, z=z)
    _checks.generator("generator", generator)
    _checks.positive_int("batch_size", batch_size)
    runs = weights[0].shape[0]
    if sigma_eps is not None and sigma_eps.ndim == 3 and (shared_data or sigma_eps.shape[0] != runs):
        raise ValueError(f"per-run sigma_eps must have shape ({runs}, o, o) and needs shared_data=False, "
                         f"got {tuple(sigma_eps.shape)}")
    root = (t.sqrt_eps if sigma_eps is None else _batched_sqrt(sigma_eps)) if label_noise else None
    ws = [w.detach() for w in weights]
    # rows of the identity mapped by the frozen input maps: (M_I Z)^T, shape (runs, in, w_0)
    pre = _apply(m_in, _apply(z, torch.eye(t.d_in, dtype=ws[0].dtype, device=ws[0].device).expand(runs, -1, -1)))
    out_dim = ws[-1].shape[-2] if m_out is None else m_out.shape[-2]
    if pre.shape[-1] != ws[0].shape[-1] or out_dim != t.d_out:
        raise ValueError(f"weights map {ws[0].shape[-1]} -> {ws[-1].shape[-2]} but the embedded input has "
                         f"{pre.shape[-1]} features and the teacher {t.d_out} outputs (check widths, m_in, m_out)")

    def loss_and_grads(k: int, ps: list):
        if method == "gd":
            # E_x of the per-sample gradient: a "batch" of the d columns of Sigma_x^{1/2}, summed
            x = t.sqrt_x.expand(runs, -1, -1)
            return _loss_and_grads(ps, x, x @ t.v_star.T, pre, m_out, 1.0)
        x, y = _sample(t, (batch_size,) if shared_data else (runs, batch_size), generator, root)
        return _loss_and_grads(ps, x, y, pre, m_out, 1.0 / batch_size)

    return ensemble.train(loss_and_grads, ws, lr=lr, lr_end=lr_end, steps=steps, optimizer=optimizer, adam=adam,
                          weight_decay=weight_decay, record_every=record_every, recorder=recorder)

