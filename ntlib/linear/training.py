"""Training deep linear networks on a teacher: online SGD, or exact gradient descent.

:func:`train` runs an ensemble (leading *runs* dimension) by online SGD (a
fresh batch every step), or by exact gradient descent on the population loss
(``method="gd"``: no sampling noise at all, the control that removes the
entropic force's noise term). Gradients come from an explicit backward pass
(:func:`batch_loss_and_grads`), checked against autograd in the tests.
"""

from __future__ import annotations

import torch

from .. import _checks, ensemble
from ..run import Progress, Recorder, Run
from .model import Teacher, Weights, apply_map, check_maps, noise_root, sample

__all__ = ["train", "batch_loss_and_grads"]


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
    r = apply_map(m_out, h) - y
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


def batch_loss_and_grads(weights: Weights, x: torch.Tensor, y: torch.Tensor, *, m_in=None, m_out=None,
                         z=None) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Minibatch loss and its gradients by explicit backprop (the update of :func:`train`).

    Returns ``sum_runs mean_batch |f(x) - y|^2`` for ``x`` (n, in) shared or
    (runs, n, in) and ``y`` (runs, n, out), with ``f`` as in
    :func:`ntlib.linear.model.forward`, and the gradients with respect to each
    ``weights[i]`` (same shapes), equal to autograd's.

    Example
    -------
    >>> import torch
    >>> ws = [torch.eye(2, dtype=torch.float64).expand(1, 2, 2)]
    >>> x, y = torch.ones(1, 2, dtype=torch.float64), torch.zeros(1, 1, 2, dtype=torch.float64)
    >>> loss, (g,) = batch_loss_and_grads(ws, x, y)  # l = |x|^2, dl/dW = 2 (W x - y) x^T
    >>> float(loss), g[0].tolist()
    (2.0, [[2.0, 2.0], [2.0, 2.0]])
    """
    _checks.weight_chain("weights", weights)
    check_maps(m_in=m_in, m_out=m_out, z=z)
    _checks.tensor("x", x)
    _checks.tensor("y", y)
    runs = weights[0].shape[0]
    pre = _input_map(m_in, z, x.shape[-1], runs, weights[0])
    if pre.shape[-1] != weights[0].shape[-1]:
        raise ValueError(f"the embedded input has {pre.shape[-1]} features, weights[0] expects {weights[0].shape[-1]}")
    return _loss_and_grads(list(weights), x, y, pre, m_out, 1.0 / x.shape[-2])


def _input_map(m_in, z, d_in: int, runs: int, like: torch.Tensor) -> torch.Tensor:
    """Rows of the identity mapped by the frozen input maps: ``(M_I Z)^T``, shape (runs, in, w_0)."""
    eye = torch.eye(d_in, dtype=like.dtype, device=like.device).expand(runs, -1, -1)
    return apply_map(m_in, apply_map(z, eye))


def train(weights: Weights, t: Teacher, *, lr, steps: int, generator: torch.Generator,
          batch_size: int = 4, method: str = "sgd", lr_end: float | None = None, label_noise=True,
          sigma_eps: torch.Tensor | None = None, shared_data: bool = False, weight_decay=0.0,
          optimizer: str = "sgd", adam: dict | None = None, m_in=None, m_out=None, z=None,
          record_every: int = 0, recorder: Recorder | None = None, progress: Progress | None = None) -> Run:
    """Train an ensemble of deep linear networks; returns a :class:`~ntlib.run.Run` (final weights, records).

    Parameters
    ----------
    weights
        Initial weights from :func:`~ntlib.linear.model.init_weights` (not modified).
    t
        The teacher.
    lr, lr_end
        Learning rate (a float or one per run), decayed geometrically to ``lr_end``
        over the run when given (annealing makes the leading-order closed forms
        exact in the limit).
    method
        ``"sgd"``: online minibatches of ``batch_size`` fresh samples;
        ``"gd"``: exact gradient of :func:`~ntlib.linear.model.population_loss` (no noise at all).
    label_noise
        ``False`` trains on ``y = V* x`` (sampling noise only); one bool per run
        (a sequence or tensor of shape (runs,)) switches it off for some runs only
        (needs ``shared_data=False``).
    sigma_eps
        Optional noise covariance overriding the teacher's, shared (o, o) or per
        run (runs, o, o); the draws are paired across runs and calls.
    shared_data
        Every run sees the same samples (paired comparisons) instead of independent ones.
    weight_decay
        Adds ``weight_decay * sum |W_i|^2`` to the loss: a float, or one value
        ``>= 0`` per run (a sequence or tensor of shape (runs,)), e.g. to sweep the
        ratio of weight decay to learning rate in one call (Chapter 3,
        ``sec-regularisation``).
    optimizer
        ``"sgd"`` or ``"adam"`` (``adam`` may hold ``betas`` and ``eps``, e.g.
        ``{"betas": (0.9, 0.995), "eps": 1e-7}``; see :func:`ntlib.ensemble.train`).
    m_in, m_out, z
        Frozen embeddings and view (shared (a, b) or per run (runs, a, b)).
    record_every, recorder, progress
        Every ``record_every`` steps (and at the end), ``recorder(step, weights)``
        is stored in the run's records (unless it returns ``None``);
        ``progress(step)`` is called after every update.

    Raises
    ------
    DivergenceError
        When the loss or the weights become non-finite (names the step and learning rate).

    Example
    -------
    >>> import torch
    >>> from ntlib.config import generator
    >>> from ntlib.linear import end_to_end, init_weights, teacher
    >>> t = teacher(torch.eye(2, dtype=torch.float64))
    >>> w0 = init_weights([2, 3, 2], 4, generator(0), dtype=torch.float64)
    >>> run = train(w0, t, lr=0.05, steps=2000, generator=generator(1), method="gd")
    >>> bool(torch.allclose(end_to_end(run.params), torch.eye(2, dtype=torch.float64), atol=1e-6))
    True
    """
    if method not in ("sgd", "gd"):
        raise ValueError(f"method must be 'sgd' or 'gd', got {method!r}")
    _checks.teacher("t", t)
    _checks.weight_chain("weights", weights)
    check_maps(m_in=m_in, m_out=m_out, z=z)
    _checks.generator("generator", generator)
    _checks.positive_int("batch_size", batch_size)
    runs = weights[0].shape[0]
    if sigma_eps is not None and sigma_eps.ndim == 3 and (shared_data or sigma_eps.shape[0] != runs):
        raise ValueError(f"per-run sigma_eps must have shape ({runs}, o, o) and needs shared_data=False, "
                         f"got {tuple(sigma_eps.shape)}")
    noisy = _per_run_flags(label_noise, runs, shared_data)
    root = noise_root(t, sigma_eps) if noisy is not False else None
    if isinstance(noisy, torch.Tensor):  # zero noise for the runs without label noise
        root = root.expand(runs, -1, -1) * noisy.to(root.dtype)[:, None, None]
        noisy = True
    ws = [w.detach() for w in weights]
    decay = _per_run_decay(weight_decay, runs, ws[0])
    pre = _input_map(m_in, z, t.d_in, runs, ws[0])
    out_dim = ws[-1].shape[-2] if m_out is None else m_out.shape[-2]
    if pre.shape[-1] != ws[0].shape[-1] or out_dim != t.d_out:
        raise ValueError(f"weights map {ws[0].shape[-1]} -> {ws[-1].shape[-2]} but the embedded input has "
                         f"{pre.shape[-1]} features and the teacher {t.d_out} outputs (check widths, m_in, m_out)")

    def data_loss_and_grads(k: int, ps: list):
        if method == "gd":
            # E_x of the per-sample gradient: a "batch" of the d columns of Sigma_x^{1/2}, summed
            x = t.sqrt_x.expand(runs, -1, -1)
            return _loss_and_grads(ps, x, x @ t.v_star.T, pre, m_out, 1.0)
        x, y = sample(t, (batch_size,) if shared_data else (runs, batch_size), generator, root=root,
                      label_noise=noisy)
        return _loss_and_grads(ps, x, y, pre, m_out, 1.0 / batch_size)

    loss_and_grads, shared_decay = data_loss_and_grads, decay
    if not isinstance(decay, float):  # one weight decay per run: added here (ensemble.train takes one float)
        gam = decay[:, None, None]
        shared_decay = 0.0

        def loss_and_grads(k: int, ps: list):
            loss, grads = data_loss_and_grads(k, ps)
            return (loss + sum((gam * p * p).sum() for p in ps),
                    [g + 2 * gam * p for g, p in zip(grads, ps)])

    return ensemble.train(loss_and_grads, ws, lr=lr, lr_end=lr_end, steps=steps, optimizer=optimizer, adam=adam,
                          weight_decay=shared_decay, record_every=record_every, recorder=recorder,
                          progress=progress)


def _per_run_flags(label_noise, runs: int, shared_data: bool):
    """``label_noise`` as a bool, or as a bool tensor of shape (runs,) when given per run."""
    if isinstance(label_noise, bool):
        return label_noise
    flags = torch.as_tensor(label_noise)
    if flags.dtype != torch.bool or flags.shape != (runs,):
        raise ValueError(f"label_noise must be a bool or one bool per run ({runs}), got {label_noise!r}")
    if shared_data:
        raise ValueError("per-run label_noise needs shared_data=False")
    return flags


def _per_run_decay(weight_decay, runs: int, like: torch.Tensor):
    """``weight_decay`` as a float, or as a validated tensor of shape (runs,) when given per run."""
    if isinstance(weight_decay, (int, float)) and not isinstance(weight_decay, bool):
        return _checks.positive("weight_decay", float(weight_decay), strict=False)
    t = torch.as_tensor(weight_decay, dtype=like.dtype, device=like.device)
    if t.ndim == 0:
        return _checks.positive("weight_decay", float(t), strict=False)
    if t.shape != (runs,):
        raise ValueError(f"weight_decay must be a float or have one value per run ({runs}), got shape {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()) or bool((t < 0).any()):
        raise ValueError("weight_decay must be finite and >= 0 for every run")
    return t
