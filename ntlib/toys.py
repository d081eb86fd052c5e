"""The toy models of Chapter 2, each with its own small training loop.

* The scale-invariant regression ``l = (x . theta/|theta| - y)^2``
  (``thm-scale-invariance``): gradient flow keeps ``|theta|``, every GD/SGD step
  adds exactly ``lr^2 |g|^2`` to ``|theta|^2``.
* The rescaling toy ``l = (u w - y)^2`` (``prop-gibbs-orbit``): SGD moves along
  the orbit ``u w = const`` to the balanced point, and so does the SDE with SGD's
  own gradient covariance, while Langevin dynamics at a matched temperature (a
  Gibbs distribution) spreads along it.

The trainers return a :class:`ntlib.run.Run` and raise
:class:`ntlib.errors.DivergenceError` on non-finite parameters.
"""

from __future__ import annotations

import math

import torch

from . import _checks, diffusion
from .errors import DivergenceError
from .run import Run

__all__ = ["scale_invariant_grad", "scale_invariant_train", "orbit_log_ratio", "matched_temperature",
           "rescaling_toy_train", "rescaling_toy_diffusion"]


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
                          record_every: int = 1) -> Run:
    """Train the scale-invariant toy ``y = v.x + noise eps``, ``x ~ N(0, I)`` (``thm-scale-invariance``).

    ``theta0`` is (runs, d). ``method="sgd"``: fresh batches; ``"gd"``: the
    exact population gradient ``-2 (I - n n^T) v / |theta|`` (population loss
    ``|n - v|^2 + noise^2``). Returns a :class:`~ntlib.run.Run` with the final
    ``theta`` as ``params``, ``|theta|^2`` per run (shape (runs,)) recorded every
    ``record_every`` steps and after the last, and in ``info["identity_residual"]``
    the largest per-step residual of ``|theta'|^2 = |theta|^2 + lr^2 |g|^2``.

    Example
    -------
    >>> import torch
    >>> from ntlib.config import generator
    >>> run = scale_invariant_train(torch.tensor([[0.0, 1.0]], dtype=torch.float64),
    ...                             torch.tensor([1.0, 0.0], dtype=torch.float64), lr=0.1, steps=20,
    ...                             batch_size=1, noise=1.0, generator=generator(0))
    >>> bool(run.stacked()[-1, 0] > 1.0), run.info["identity_residual"] < 1e-12
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
    return Run(theta, rec_k, rec, {"identity_residual": resid})


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
                        record_every: int = 0) -> Run:
    """Run ``l = (u w - y)^2``, ``y = target + noise eps`` by SGD or GD (``prop-gibbs-orbit``).

    ``u0, w0`` are (runs,). ``method="sgd"``: the minibatch gradient of a fresh
    batch of ``batch_size`` labels; ``"gd"``: the exact gradient of
    ``L = (u w - target)^2 + noise^2``. Returns a :class:`~ntlib.run.Run` whose
    ``params`` are the final ``(u, w)``; with ``record_every > 0`` it records ``(u, w)``
    every ``record_every`` steps and after the last. The continuous-time arms of the
    comparison (SGD's diffusion approximation, Langevin dynamics) are
    :func:`rescaling_toy_diffusion`.

    Example
    -------
    SGD moves an imbalanced start on the orbit ``u w = 1`` to the balanced point:

    >>> import torch
    >>> from ntlib.config import generator
    >>> run = rescaling_toy_train(torch.tensor([2.0], dtype=torch.float64), torch.tensor([0.5], dtype=torch.float64),
    ...                           target=1.0, noise=1.0, lr=0.05, steps=3000, generator=generator(0))
    >>> u, w = run.params
    >>> abs(float(orbit_log_ratio(u, w))) < 0.1
    True
    """
    if method not in ("sgd", "gd"):
        raise ValueError(f"method must be 'sgd' or 'gd', got {method!r}")
    u, w = _toy_state(u0, w0)
    lr = _checks.positive("lr", lr)
    _checks.positive_int("steps", steps, minimum=0)
    bsz = _checks.positive_int("batch_size", batch_size)
    _checks.positive("noise", noise, strict=False)
    every = _checks.positive_int("record_every", record_every, minimum=0)
    rec_k, rec = [], []
    for k in range(steps + 1):
        if every and (k % every == 0 or k == steps):
            rec_k.append(k)
            rec.append((u, w))
        if k == steps:
            break
        if method == "sgd":
            y = target + noise * torch.randn(bsz, u.shape[0], generator=generator, dtype=u.dtype).mean(0)
        else:
            y = target
        r = 2 * (u * w - y)
        u, w = u - lr * r * w, w - lr * r * u
        if k % 100 == 0 and not (bool(torch.isfinite(u).all()) and bool(torch.isfinite(w).all())):
            raise DivergenceError(k, lr, None)
    if not (bool(torch.isfinite(u).all()) and bool(torch.isfinite(w).all())):
        raise DivergenceError(steps, lr, None)
    return Run((u, w), rec_k, rec)


def rescaling_toy_diffusion(u0: torch.Tensor, w0: torch.Tensor, *, target: float, noise: float, lr: float,
                            steps: int, generator: torch.Generator, covariance: str = "sgd", batch_size: int = 1,
                            temperature: float = 0.0, substeps: int = 20, record_every: int = 0) -> Run:
    """The rescaling toy ``l = (u w - y)^2`` in continuous time: SGD's SDE or Langevin dynamics (``prop-gibbs-orbit``).

    Integrates ``d theta = -grad L dt + b(theta) dW``, ``theta = (u, w)``,
    ``L = (u w - target)^2 + noise^2``, for the time ``lr * steps`` (the time of ``steps`` SGD
    steps) with :func:`ntlib.diffusion.euler_maruyama` at the step ``dt = lr / substeps``.

    * ``covariance="sgd"``: SGD's own noise. The minibatch gradient is
      ``2 (u w - y_B) (w, u)``, so its noise ``-2 (y_B - target) (w, u)`` has the covariance
      ``(4 noise^2 / B) (w, u)(w, u)^T``: rank one, state dependent, normal to the orbit
      ``u w = const``. ``b = sqrt(lr) (2 noise / sqrt(B)) (w, u)^T``. By Itô's formula the charge
      ``C = u^2 - w^2`` then obeys ``dC = -(4 lr noise^2 / B) C dt`` exactly, path by path.
    * ``covariance="isotropic"``: Langevin dynamics at ``temperature`` T, ``b = sqrt(2 T) I``;
      its stationary density is the Gibbs density ``exp(-L / T)`` and ``C`` is a martingale.

    Parameters
    ----------
    u0, w0
        (runs,) initial states.
    target, noise, lr, batch_size
        The toy's label mean and noise, and the SGD learning rate and batch size whose
        diffusion approximation this is (``lr`` sets the time and, for ``"sgd"``, the noise).
    steps
        Length in SGD steps (time ``lr * steps``).
    temperature
        T > 0 for ``"isotropic"``; ignored for ``"sgd"``.
    substeps
        Euler-Maruyama steps per SGD step.
    record_every
        Record ``(u, w)`` every this many SGD steps (and after the last); 0: none.

    Returns
    -------
    ntlib.run.Run
        ``params`` the final ``(u, w)``; ``steps`` of the records in SGD steps.

    Example
    -------
    >>> import math, torch
    >>> from ntlib.config import generator
    >>> u0, w0 = torch.tensor([2.0], dtype=torch.float64), torch.tensor([0.5], dtype=torch.float64)
    >>> u, w = rescaling_toy_diffusion(u0, w0, target=1.0, noise=1.0, lr=0.05, steps=200,
    ...                                generator=generator(0)).params
    >>> ratio = float((u * u - w * w) / (u0 * u0 - w0 * w0))
    >>> abs(math.log(ratio) / (-4 * 0.05 ** 2 * 200) - 1) < 0.05   # C decays as exp(-4 lr^2 noise^2 steps / B)
    True
    """
    if covariance not in ("sgd", "isotropic"):
        raise ValueError(f"covariance must be 'sgd' or 'isotropic', got {covariance!r}")
    u, w = _toy_state(u0, w0)
    lr = _checks.positive("lr", lr)
    _checks.positive_int("steps", steps, minimum=0)
    bsz = _checks.positive_int("batch_size", batch_size)
    noise = _checks.positive("noise", noise, strict=False)
    temp = _checks.positive("temperature", temperature, strict=False)
    sub = _checks.positive_int("substeps", substeps)
    every = _checks.positive_int("record_every", record_every, minimum=0)
    if covariance == "isotropic" and temp == 0:
        raise ValueError("covariance='isotropic' needs temperature > 0")

    def drift(th: torch.Tensor) -> torch.Tensor:
        r = 2 * (th[:, 0] * th[:, 1] - target)
        return -torch.stack([r * th[:, 1], r * th[:, 0]], 1)

    if covariance == "sgd":
        amp = math.sqrt(lr) * 2 * noise / math.sqrt(bsz)
        diff = lambda th, dw: (amp * dw) * th.flip(1)                         # b = amp (w, u)^T, rank one
        dim = 1
    else:
        amp = math.sqrt(2 * temp)
        diff = lambda th, dw: amp * dw                                         # b = sqrt(2 T) I
        dim = 2
    recorder = (lambda k, th: (th[:, 0].clone(), th[:, 1].clone())) if every else None
    run = diffusion.euler_maruyama(torch.stack([u, w], 1), drift, diff, noise_dim=dim, dt=lr / sub, steps=steps * sub,
                                   generator=generator, record_every=every * sub, recorder=recorder)
    return Run((run.params[:, 0], run.params[:, 1]), [k // sub for k in run.steps], run.records)


def _toy_state(u0: torch.Tensor, w0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    _checks.tensor("u0", u0, ndim=1)
    _checks.tensor("w0", w0, ndim=1)
    if u0.shape != w0.shape:
        raise ValueError(f"u0 {tuple(u0.shape)} and w0 {tuple(w0.shape)} must have the same shape")
    return u0.detach().clone(), w0.detach().clone()
