"""Weight decay against the entropic force on a scale-invariant model (Chapter 3, ``sec-regularisation``).

The *normalised linear predictor* ``f(x) = theta^T x / |theta|`` is invariant under
``theta -> c theta`` (``c > 0``), like a layer followed by batch normalisation. Its
per-sample loss ``l = (f(x) - y)^2`` on a teacher ``y = v^T x + eps`` (``|v| = 1``,
``x ~ N(0, I_d)``, ``eps ~ N(0, sigma^2)``) has the gradient

    ``grad l = 2 r (I - u u^T) x / |theta|``, ``u = theta / |theta|``, ``r = u^T x - y``,

orthogonal to ``theta``. SGD without weight decay therefore grows the norm at
every step (``|theta'|^2 = |theta|^2 + lr^2 |g|^2``, Chapter 2); with weight decay the
norm equilibrates at :func:`ntlib.theory.equilibrium_norm`. :func:`noise_power`
gives ``E[|theta|^2 |g_B|^2]`` at the minimum ``u = v``, and :func:`train` runs an
ensemble with one learning rate and one weight decay per run.
"""

from __future__ import annotations

import torch

from . import _checks, ensemble
from .run import Progress, Recorder, Run

__all__ = ["noise_power", "loss_and_grad", "train"]


def noise_power(d: int, noise: float, batch_size: int = 1) -> float:
    """``E[|theta|^2 |g_B|^2] = 4 sigma^2 (d - 1) / B`` at the minimum of the normalised predictor.

    At ``u = v`` the residual is ``r = -eps``, independent of ``x``, so a minibatch
    gradient of ``B`` samples has ``|theta|^2 E|g_B|^2 = 4 sigma^2 E|(I - v v^T) x|^2 / B``
    with ``E|(I - v v^T) x|^2 = d - 1``. Scale-free: the same at every norm.

    Example
    -------
    >>> noise_power(4, 1.0, 1)
    12.0
    """
    d = _checks.positive_int("d", d, minimum=2)
    sigma = _checks.positive("noise", noise)
    b = _checks.positive_int("batch_size", batch_size)
    return 4.0 * sigma ** 2 * (d - 1) / b


def loss_and_grad(theta: torch.Tensor, v: torch.Tensor, x: torch.Tensor,
                  y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed minibatch loss ``sum_runs mean_batch (u^T x - y)^2`` and its gradient in ``theta``.

    ``theta`` is (runs, d), ``x`` (runs, B, d), ``y`` (runs, B); ``v`` is not used
    beyond its shape check (the labels carry it). Equal to autograd's (tested).

    Example
    -------
    >>> import torch
    >>> th = torch.tensor([[2.0, 0.0]], dtype=torch.float64)
    >>> loss, g = loss_and_grad(th, th[0] / 2, torch.tensor([[[1.0, 1.0]]], dtype=torch.float64),
    ...                         torch.tensor([[0.0]], dtype=torch.float64))
    >>> float(loss), g.tolist()  # r = 1, (I - u u^T) x = (0, 1), |theta| = 2
    (1.0, [[0.0, 1.0]])
    """
    _checks.tensor("theta", theta, ndim=2)
    _checks.tensor("x", x, ndim=3)
    _checks.tensor("y", y, ndim=2)
    if v.shape != theta.shape[1:] or x.shape[0] != theta.shape[0] or x.shape[2] != theta.shape[1] \
            or y.shape != x.shape[:2]:
        raise ValueError(f"shapes do not fit: theta {tuple(theta.shape)}, v {tuple(v.shape)}, x {tuple(x.shape)}, "
                         f"y {tuple(y.shape)}")
    return _loss_and_grad(theta, x, y)


def _loss_and_grad(theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`loss_and_grad` without the input checks (the training loop's path)."""
    norm = theta.norm(dim=-1, keepdim=True)
    u = theta / norm
    r = (x @ u.unsqueeze(-1)).squeeze(-1) - y                       # (runs, B)
    rx = (r.unsqueeze(-1) * x).mean(1)                              # mean of r x over the batch
    proj = rx - (rx * u).sum(-1, keepdim=True) * u
    return (r * r).mean(1).sum(), 2 * proj / norm


def train(theta0: torch.Tensor, v: torch.Tensor, *, lr, weight_decay, steps: int,
          generator: torch.Generator, noise: float = 1.0, batch_size: int = 1, record_every: int = 0,
          recorder: Recorder | None = None, progress: Progress | None = None) -> Run:
    """Online SGD with weight decay on the normalised linear predictor, one (lr, gamma) per run.

    Parameters
    ----------
    theta0
        Initial parameters, (runs, d), not all-zero rows (not modified).
    v
        Unit-norm teacher direction, (d,).
    lr, weight_decay
        A float or one value per run (weight decay ``>= 0``): the update is
        ``theta' = theta - lr (g_B + 2 gamma theta)``, i.e. the loss ``l + gamma |theta|^2``.
    steps, generator, noise, batch_size
        Number of updates, the random stream of the data, label-noise standard
        deviation ``sigma``, samples per minibatch (fresh every step).
    record_every, recorder, progress
        As for :func:`ntlib.ensemble.train` (``recorder(step, [theta])``).

    Returns
    -------
    Run
        ``params`` is ``[theta]`` at the end.

    Raises
    ------
    DivergenceError
        When the loss or the parameters become non-finite.

    Example
    -------
    >>> import torch
    >>> v = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    >>> th0 = torch.ones(2, 3, dtype=torch.float64)
    >>> run = train(th0, v, lr=0.05, weight_decay=[0.0, 0.05], steps=2000,
    ...             generator=torch.Generator().manual_seed(0))
    >>> n = run.params[0].norm(dim=-1) ** 2
    >>> bool(n[0] > 3.0 and n[1] < 3.0)  # growth without weight decay, shrinkage towards equilibrium with it
    True
    """
    _checks.tensor("theta0", theta0, ndim=2)
    _checks.tensor("v", v, ndim=1)
    _checks.generator("generator", generator)
    runs, d = theta0.shape
    if v.shape != (d,):
        raise ValueError(f"v must have shape ({d},), got {tuple(v.shape)}")
    if abs(float(v.norm()) - 1) > 1e-8:
        raise ValueError(f"v must have unit norm, got |v| = {float(v.norm())}")
    if bool((theta0.norm(dim=-1) == 0).any()):
        raise ValueError("every row of theta0 must be non-zero (the predictor divides by |theta|)")
    sigma = _checks.positive("noise", noise, strict=False)
    b = _checks.positive_int("batch_size", batch_size)
    gam = torch.as_tensor(weight_decay, dtype=theta0.dtype, device=theta0.device)
    if gam.ndim == 0:
        gam = gam.expand(runs)
    if gam.shape != (runs,) or not bool(torch.isfinite(gam).all()) or bool((gam < 0).any()):
        raise ValueError(f"weight_decay must be a float >= 0 or one value >= 0 per run ({runs}), got {weight_decay!r}")

    def step(k: int, ps: list):
        x = torch.randn(runs, b, d, generator=generator, dtype=theta0.dtype, device=theta0.device)
        eps = torch.randn(runs, b, generator=generator, dtype=theta0.dtype, device=theta0.device)
        theta = ps[0]
        loss, g = _loss_and_grad(theta, x, x @ v + sigma * eps)
        return loss + (gam * (theta * theta).sum(-1)).sum(), [g + 2 * gam[:, None] * theta]

    return ensemble.train(step, [theta0], lr=lr, steps=steps, record_every=record_every, recorder=recorder,
                          progress=progress)
