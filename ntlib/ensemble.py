"""Train many independent runs at once: parameters stacked along a leading *runs* dimension.

The chapters compare seeds, learning rates, noise shapes and initialisations
side by side. Instead of a Python loop over runs, every parameter tensor has a
leading dimension of size ``runs`` and one step updates all runs together.
Because the runs share no parameters, the gradient of the *summed* loss is the
stack of the per-run gradients.

:func:`train` is the loop shared by :func:`ntlib.linear.training.train` and
:func:`ntlib.mlp.train`: learning-rate schedule (possibly one learning rate
per run), plain SGD or Adam updates, divergence detection and recording.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from . import _checks
from .errors import DivergenceError
from .run import Progress, Recorder, Run

#: ``(step, params) -> (summed loss, gradients)`` for all runs at once.
LossAndGrads = Callable[[int, list], tuple[torch.Tensor, list[torch.Tensor]]]


def learning_rates(lr, runs: int, dtype=None, device=None) -> torch.Tensor:
    """``lr`` (a float or one value per run) as a validated tensor of shape (runs,).

    Example
    -------
    >>> import torch
    >>> learning_rates(0.1, 3, dtype=torch.float64).tolist()
    [0.1, 0.1, 0.1]
    """
    t = torch.as_tensor(lr, dtype=dtype or torch.get_default_dtype(), device=device)
    if t.ndim == 0:
        t = t.expand(runs)
    if t.shape != (runs,):
        raise ValueError(f"lr must be a float or have one value per run ({runs}), got shape {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()) or bool((t <= 0).any()):
        raise ValueError("lr must be finite and > 0 for every run")
    return t.clone()


def train(loss_and_grads: LossAndGrads, params: Sequence[torch.Tensor], *, lr, steps: int,
          lr_end=None, optimizer: str = "sgd", adam: dict | None = None, weight_decay: float = 0.0,
          record_every: int = 0, recorder: Recorder | None = None, progress: Progress | None = None) -> Run:
    """Run ``steps`` updates of all runs; returns a :class:`~ntlib.run.Run` (final parameters and records).

    Parameters
    ----------
    loss_and_grads
        ``(step, params) -> (summed loss, gradients)``; the loss is the sum over runs.
    params
        Tensors with a leading runs dimension (not modified).
    lr, lr_end
        Learning rate(s): a float or one value per run; decayed geometrically to
        ``lr_end`` (same form) over the run when given.
    optimizer, adam
        ``"sgd"`` or ``"adam"``; ``adam`` may set ``betas`` (default (0.9, 0.999))
        and ``eps`` (default 1e-8). Adam uses bias correction.
    weight_decay
        Adds ``weight_decay * |params|^2`` to the loss of every run.
    record_every, recorder
        Every ``record_every`` steps (before that step's update) and after the last
        step, store ``recorder(step, params)`` unless it returns ``None``.
    progress
        Called as ``progress(step)`` after every update (e.g. ``ntlib.book.progress``).

    Raises
    ------
    DivergenceError
        At the first non-finite loss or parameter, with the step and the learning rate.

    Example
    -------
    >>> import torch
    >>> p0 = [torch.tensor([[1.0], [2.0]], dtype=torch.float64)]  # two runs of L = p^2 / 2
    >>> run = train(lambda k, ps: (0.5 * (ps[0] ** 2).sum(), [ps[0]]), p0, lr=[0.5, 0.25], steps=1)
    >>> run.params[0].flatten().tolist()
    [0.5, 1.5]
    """
    _checks.function("loss_and_grads", loss_and_grads)
    if recorder is not None:
        _checks.function("recorder", recorder)
    if progress is not None:
        _checks.function("progress", progress)
    if not isinstance(params, (list, tuple)) or not params:
        raise TypeError("params must be a non-empty list of tensors with a leading runs dimension")
    for i, p in enumerate(params):
        _checks.tensor(f"params[{i}]", p)
    if optimizer not in ("sgd", "adam"):
        raise ValueError(f"optimizer must be 'sgd' or 'adam', got {optimizer!r}")
    _checks.positive_int("steps", steps, minimum=0)
    _checks.positive("weight_decay", weight_decay, strict=False)
    ps = [p.detach().clone() for p in params]
    runs = ps[0].shape[0]
    if any(p.shape[0] != runs for p in ps):
        raise ValueError(f"every parameter needs the same leading runs dimension ({runs}), got "
                         f"{[tuple(p.shape) for p in ps]}")
    lr0 = learning_rates(lr, runs, ps[0].dtype, ps[0].device)
    lr1 = lr0 if lr_end is None else learning_rates(lr_end, runs, ps[0].dtype, ps[0].device)
    opts = {"betas": (0.9, 0.999), "eps": 1e-8, **(adam or {})}
    b1, b2 = opts["betas"]
    m = [torch.zeros_like(p) for p in ps] if optimizer == "adam" else None
    v = [torch.zeros_like(p) for p in ps] if optimizer == "adam" else None
    rec_steps, records, last = [], [], None

    def record(k: int) -> None:
        r = recorder(k, ps)
        if r is not None:
            rec_steps.append(k)
            records.append(r)

    for k in range(steps):
        eta = lr0 * (lr1 / lr0) ** (k / max(steps - 1, 1))
        if record_every and recorder is not None and k % record_every == 0:
            record(k)
        loss, grads = loss_and_grads(k, ps)
        if weight_decay:
            loss = loss + weight_decay * sum((p * p).sum() for p in ps)
            grads = [g + 2 * weight_decay * p for g, p in zip(grads, ps)]
        lv = float(loss)
        if lv != lv or abs(lv) == float("inf"):
            raise DivergenceError(k, float(eta.max()), last)
        last = lv
        for i, (p, g) in enumerate(zip(ps, grads)):
            step_size = eta.view(-1, *([1] * (p.ndim - 1)))
            if m is None:
                p -= step_size * g
            else:
                m[i].mul_(b1).add_(g, alpha=1 - b1)
                v[i].mul_(b2).addcmul_(g, g, value=1 - b2)
                mhat = m[i] / (1 - b1 ** (k + 1))
                vhat = v[i] / (1 - b2 ** (k + 1))
                p -= step_size * mhat / (vhat.sqrt() + opts["eps"])
        if progress is not None:
            progress(k)
    if not all(bool(torch.isfinite(p).all()) for p in ps):
        raise DivergenceError(steps, float(lr1.max()), last)
    if record_every and recorder is not None:
        record(steps)
    return Run(ps, rec_steps, records)


def autograd_loss_and_grads(per_run_loss: Callable[[list, object], torch.Tensor],
                            batches: Callable[[int], object]) -> LossAndGrads:
    """Build a ``loss_and_grads`` for :func:`train` from a per-run loss and a batch source.

    ``per_run_loss(params, batch)`` returns a tensor of shape (runs,);
    ``batches(step)`` returns the batch of that step (a fresh sample, or always
    the same full batch for gradient descent).

    Example
    -------
    >>> import torch
    >>> step = autograd_loss_and_grads(lambda ps, b: (ps[0] * b).sum(-1), lambda k: 2.0)
    >>> loss, grads = step(0, [torch.ones(3, 1, dtype=torch.float64)])
    >>> float(loss), grads[0].flatten().tolist()
    (6.0, [2.0, 2.0, 2.0])
    """
    _checks.function("per_run_loss", per_run_loss)
    _checks.function("batches", batches)

    def loss_and_grads(k: int, ps: list):
        leaves = [p.detach().requires_grad_(True) for p in ps]
        loss = per_run_loss(leaves, batches(k)).sum()
        return loss.detach(), [g.detach() for g in torch.autograd.grad(loss, leaves)]

    return loss_and_grads
