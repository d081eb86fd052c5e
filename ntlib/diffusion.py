"""The diffusion approximation of SGD: an Itô SDE with SGD's own gradient covariance.

One SGD step ``theta' = theta - lr g_B`` has mean ``-lr grad L(theta)`` and covariance
``lr^2 Sigma_B(theta)``, with ``Sigma_B`` the covariance of the minibatch gradient
(``Sigma / B`` for ``B`` samples drawn with replacement, ``Sigma`` the per-sample gradient
covariance). The Itô SDE

    d theta = -grad L(theta) dt + sqrt(lr) F(theta) dW_t,     F F^T = Sigma_B,

run for the time ``t = lr * steps``, has the same drift and the same covariance per unit of
time ``lr`` (the stochastic modified equation of Li, Tai and E 2017): it keeps the *geometry* of SGD's noise (its shape and
its dependence on the state) and drops the discreteness of the step. Langevin dynamics
at temperature ``T`` is the same equation with the isotropic, state-independent factor
``sqrt(lr) F = sqrt(2 T) I``; its stationary law is the Gibbs density ``exp(-L / T)``.
Chapter 2 (``prop-gibbs-orbit``) compares the three on a symmetry orbit.

* :func:`euler_maruyama`: integrate ``d theta = a(theta) dt + b(theta) dW`` for an ensemble.
* :func:`minibatch_noise_factor`: a factor ``F`` with ``F F^T = Sigma_B`` from per-sample
  gradients, without a matrix square root.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from . import _checks
from .errors import DivergenceError
from .run import Recorder, Run

__all__ = ["euler_maruyama", "minibatch_noise_factor"]

#: ``theta (runs, d) -> drift (runs, d)``.
Drift = Callable[[torch.Tensor], torch.Tensor]
#: ``(theta (runs, d), dW (runs, m)) -> b(theta) dW (runs, d)``: the noise increment.
Diffusion = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def euler_maruyama(theta0: torch.Tensor, drift: Drift, diffusion: Diffusion, *, noise_dim: int, dt: float,
                   steps: int, generator: torch.Generator, record_every: int = 0, recorder: Recorder | None = None,
                   check_every: int = 100) -> Run:
    """Integrate the Itô SDE ``d theta = a(theta) dt + b(theta) dW`` by the Euler-Maruyama scheme.

    ``theta' = theta + dt a(theta) + b(theta) dW`` with ``dW = sqrt(dt) zeta``,
    ``zeta ~ N(0, I_m)`` independent per run and step. The scheme converges weakly with order 1 in ``dt``;
    used with ``a = -grad L`` and ``b = sqrt(lr) F`` (``F F^T = Sigma_B``) it integrates
    the diffusion approximation of SGD of this module's docstring, with ``b = sqrt(2 T) I``
    Langevin dynamics.

    Parameters
    ----------
    theta0
        (runs, d) initial states (not modified).
    drift
        ``theta (runs, d) -> a (runs, d)``.
    diffusion
        ``(theta (runs, d), dW (runs, m)) -> b(theta) dW (runs, d)``: the product of the
        (runs, d, m) factor ``b`` with the increment, computed as the caller likes (a
        rank-one or isotropic ``b`` needs no matrix product).
    noise_dim
        ``m``, the number of independent Brownian motions (may differ from ``d``).
    dt
        Time step, > 0.
    steps
        Number of steps, >= 0 (total time ``steps * dt``).
    generator
        Source of the Gaussian increments.
    record_every, recorder
        ``recorder(step, theta)`` is called every ``record_every`` steps and after the last
        (:class:`~ntlib.run.Run` convention); ``None`` records nothing.
    check_every
        Check for non-finite states every this many steps (and at the end).

    Returns
    -------
    ntlib.run.Run
        ``params`` the final states (runs, d), and the records.

    Raises
    ------
    DivergenceError
        A state became NaN or infinite (``lr`` in the error is ``dt``).

    Example
    -------
    The Ornstein-Uhlenbeck process ``d x = -x dt + sqrt(2 T) dW`` has the stationary variance ``T``:

    >>> import torch
    >>> from ntlib.config import generator
    >>> run = euler_maruyama(torch.zeros(4000, 1, dtype=torch.float64), lambda x: -x,
    ...                      lambda x, dw: 0.5 ** 0.5 * dw, noise_dim=1, dt=0.01, steps=1000,
    ...                      generator=generator(0))
    >>> abs(float(run.params.var()) - 0.25) < 0.02
    True
    """
    _checks.tensor("theta0", theta0, ndim=2)
    _checks.function("drift", drift)
    _checks.function("diffusion", diffusion)
    dt = _checks.positive("dt", dt)
    _checks.positive_int("steps", steps, minimum=0)
    _checks.generator("generator", generator)
    m = _checks.positive_int("noise_dim", noise_dim)
    every = _checks.positive_int("record_every", record_every, minimum=0)
    check = _checks.positive_int("check_every", check_every)
    if every and recorder is None:
        raise ValueError("record_every > 0 needs a recorder")
    theta = theta0.detach().clone()
    runs, d = theta.shape
    for name, out in (("drift(theta)", drift(theta)),
                      ("diffusion(theta, dW)", diffusion(theta, torch.zeros(runs, m, dtype=theta.dtype)))):
        if not isinstance(out, torch.Tensor) or out.shape != theta.shape:
            raise ValueError(f"{name} must return a tensor of shape {tuple(theta.shape)}, "
                             f"got {tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__}")
    sq = math.sqrt(dt)
    rec_k, rec = [], []
    for k in range(steps + 1):
        if recorder is not None and every and (k % every == 0 or k == steps):
            r = recorder(k, theta)
            if r is not None:
                rec_k.append(k)
                rec.append(r)
        if (k % check == 0 or k == steps) and not bool(torch.isfinite(theta).all()):
            raise DivergenceError(k, dt, None)
        if k == steps:
            break
        if k % check == 0:  # draw the increments of the next check_every steps at once (fewer small ops)
            block = sq * torch.randn(min(check, steps - k), runs, m, generator=generator, dtype=theta.dtype,
                                     device=theta.device)
        theta = theta + dt * drift(theta) + diffusion(theta, block[k % check])
    return Run(theta, rec_k, rec)


def minibatch_noise_factor(sample_grads: torch.Tensor, batch_size: int) -> torch.Tensor:
    """A factor ``F`` (d, N) with ``F F^T`` the covariance of a minibatch gradient.

    For per-sample gradients ``g_1 .. g_N`` (rows of ``sample_grads``) and a batch of
    ``batch_size`` samples drawn with replacement, the batch-mean gradient has covariance
    ``Sigma / B`` with ``Sigma = (1/N) sum_i (g_i - gbar)(g_i - gbar)^T``. The factor is
    ``F = (g_i - gbar)^T / sqrt(N B)``: ``F zeta`` with ``zeta ~ N(0, I_N)`` is a Gaussian with
    exactly SGD's noise covariance, without a matrix square root (the noise of the SDE of
    this module's docstring).

    Parameters
    ----------
    sample_grads
        (N, d) per-sample gradients, N >= 1.
    batch_size
        B >= 1.

    Returns
    -------
    torch.Tensor
        (d, N).

    Example
    -------
    >>> import torch
    >>> g = torch.tensor([[1.0, 0.0], [-1.0, 0.0]], dtype=torch.float64)
    >>> F = minibatch_noise_factor(g, 2)
    >>> (F @ F.T).tolist()  # Sigma = diag(1, 0), divided by B = 2
    [[0.5, 0.0], [0.0, 0.0]]
    """
    _checks.tensor("sample_grads", sample_grads, ndim=2)
    bsz = _checks.positive_int("batch_size", batch_size)
    n = sample_grads.shape[0]
    if n < 1:
        raise ValueError("sample_grads must hold at least one per-sample gradient (row)")
    centred = sample_grads - sample_grads.mean(0, keepdim=True)
    return centred.T / math.sqrt(n * bsz)
