"""Training trajectories: gradient descent, SGD and accurate gradient flow.

These are the three dynamics compared throughout the book (Chapter 1):

* :func:`gd`: :math:`\\theta_{t+1} = \\theta_t - \\eta\\nabla L(\\theta_t)`
  (Eq. ``eq-gd``),
* :func:`sgd`: the same with a fresh minibatch loss each step,
* :func:`gradient_flow`: :math:`\\dot\\theta = -\\nabla F(\\theta)` integrated by
  an adaptive 8th-order Runge-Kutta method (DOP853) in float64 to a tolerance far
  below the :math:`O(\\eta^2)` effects being measured.

The discrete helpers return a :class:`ntlib.run.Run` whose records are dicts
``{"params", "loss"}`` (every ``record_every`` steps and after the last step),
and raise :class:`ntlib.errors.DivergenceError` (with the step, learning rate
and last finite loss) instead of returning NaN.
"""

from __future__ import annotations

from typing import Callable, Iterable

import numpy as np
import torch
from scipy.integrate import solve_ivp

from . import _checks
from .errors import DivergenceError
from .grads import grad, value_and_grad
from .params import Params, as_tuple, flatten, like, unflatten
from .run import Progress, Run


def _run(step_loss: Callable[[int, Params], torch.Tensor], params: Params, lr: float, steps: int,
         record_every: int, final_loss: Callable[[Params], torch.Tensor], progress: Progress | None) -> Run:
    items = _checks.params("params", params)
    lr = _checks.positive("lr", lr)
    _checks.positive_int("steps", steps, minimum=0)
    _checks.positive_int("record_every", record_every)
    if progress is not None:
        _checks.function("progress", progress)
    theta = [t.detach().clone() for t in items]
    rec_s, rec = [], []
    last = None
    for k in range(steps):
        cur = like(params, theta)
        value, g = value_and_grad(lambda p: step_loss(k, p), cur)
        lv = float(value)
        if not np.isfinite(lv):
            raise DivergenceError(k, lr, last)
        last = lv
        if k % record_every == 0:
            rec_s.append(k)
            rec.append({"params": like(params, [t.clone() for t in theta]), "loss": lv})
        theta = [t - lr * gi for t, gi in zip(theta, as_tuple(g))]
        if not all(bool(torch.isfinite(t).all()) for t in theta):
            raise DivergenceError(k + 1, lr, last)
        if progress is not None:
            progress(k)
    final = like(params, theta)
    lv = float(final_loss(final).detach())
    if not np.isfinite(lv):
        raise DivergenceError(steps, lr, last)
    rec_s.append(steps)
    rec.append({"params": like(params, [t.clone() for t in theta]), "loss": lv})
    return Run(final, rec_s, rec)


def gd(loss_fn: Callable[[Params], torch.Tensor], params: Params, lr: float, steps: int, *,
       record_every: int = 1, progress: Progress | None = None) -> Run:
    """Full-batch gradient descent (Eq. ``eq-gd``): ``steps`` updates of size ``lr``.

    ``loss_fn(params)`` returns a scalar; ``params`` is a tensor or a tuple of
    tensors and is not modified. Every ``record_every`` steps and after the last
    one, the :class:`~ntlib.run.Run` records ``{"params", "loss"}``;
    ``progress(step)`` is called after each update. Raises
    :class:`~ntlib.errors.DivergenceError` on a non-finite loss or iterate.

    Example
    -------
    >>> import torch
    >>> run = gd(lambda t: 0.5 * (t ** 2).sum(), torch.tensor([1.0], dtype=torch.float64), lr=0.1, steps=2)
    >>> float(run.params)  # (1 - 0.1)^2
    0.81
    >>> run.steps, [round(v, 12) for v in run.stacked("loss").tolist()]  # before each update, and after the last
    ([0, 1, 2], [0.5, 0.405, 0.32805])
    """
    _checks.function("loss_fn", loss_fn)
    return _run(lambda k, p: loss_fn(p), params, lr, steps, record_every, loss_fn, progress)


def forward_backward(loss_fn: Callable[[Params], torch.Tensor], params: Params, lr: float) -> Params:
    """One gradient step forward, then one "backward in time" (Chapter 1, ``thm-irreversibility``).

    Returns ``theta_2 - theta_0`` where ``theta_1 = theta_0 - lr grad L(theta_0)``
    and ``theta_2 = theta_1 + lr grad L(theta_1)``. For gradient flow this would be
    zero; for a finite step it is ``-lr^2 H grad L + O(lr^3)``, exactly
    ``-lr^2 theta_0`` on ``L = theta^2 / 2``.

    Example
    -------
    >>> import torch
    >>> float(forward_backward(lambda t: 0.5 * (t ** 2).sum(), torch.tensor([1.0], dtype=torch.float64), 0.1))
    -0.01...
    """
    lr = _checks.positive("lr", lr)
    items = _checks.params("params", params)
    g0 = as_tuple(grad(loss_fn, params))
    theta1 = like(params, [t.detach() - lr * g for t, g in zip(items, g0)])
    g1 = as_tuple(grad(loss_fn, theta1))
    return like(params, [t1 + lr * g - t.detach() for t, t1, g in zip(items, as_tuple(theta1), g1)])


def sgd(batch_loss_fn: Callable[[Params, object], torch.Tensor], params: Params, lr: float,
        batches: Iterable, steps: int, *, record_every: int = 1,
        full_loss_fn: Callable[[Params], torch.Tensor] | None = None, progress: Progress | None = None) -> Run:
    """Stochastic gradient descent: step k uses ``batch_loss_fn(params, batch_k)``.

    ``batches`` yields one batch per step (any object ``batch_loss_fn`` accepts).
    Recorded losses are minibatch losses unless ``full_loss_fn`` is given, in
    which case it supplies the final recorded loss. Records, ``progress`` and
    :class:`~ntlib.errors.DivergenceError` as in :func:`gd`.

    Example
    -------
    >>> import torch
    >>> data = [torch.tensor([1.0], dtype=torch.float64), torch.tensor([3.0], dtype=torch.float64)]
    >>> run = sgd(lambda t, x: 0.5 * ((t - x) ** 2).sum(), torch.zeros(1, dtype=torch.float64), 0.5, data, steps=2)
    >>> float(run.params)  # 0 -> 0.5 -> 1.75
    1.75
    """
    _checks.function("batch_loss_fn", batch_loss_fn)
    if full_loss_fn is not None:
        _checks.function("full_loss_fn", full_loss_fn)
    try:
        it = iter(batches)
    except TypeError:
        raise TypeError(f"batches must be an iterable of batches, got {type(batches).__name__}") from None
    cache: dict[int, object] = {}

    def step_loss(k: int, p: Params) -> torch.Tensor:
        if k not in cache:
            cache.clear()
            try:
                cache[k] = next(it)
            except StopIteration:
                raise ValueError(f"batches ran out after {k} batches; steps={steps}") from None
        return batch_loss_fn(p, cache[k])

    final = full_loss_fn if full_loss_fn is not None else (lambda p: step_loss(max(steps - 1, 0), p))
    return _run(step_loss, params, lr, steps, record_every, final, progress)


def gradient_flow(loss_fn: Callable[[Params], torch.Tensor], params: Params, t: float, *,
                  rtol: float = 1e-12, atol: float = 1e-14, t_eval: Iterable[float] | None = None) -> Params | list:
    """Integrate the gradient flow ``d theta/dt = -grad loss_fn(theta)`` up to time ``t``.

    Uses SciPy's DOP853 (explicit Runge-Kutta of order 8) in float64 with the
    given tolerances, so the integration error is far below the O(eta^2) gaps the
    book measures. Gradient descent with learning rate eta for N steps is
    compared with the flow at time ``t = N * eta``.

    Returns the parameters at time ``t`` (same form as ``params``), or a list of
    them at the times ``t_eval`` when given. Raises ``RuntimeError`` when the
    integrator fails (e.g. the flow blows up).

    Example
    -------
    >>> import math, torch
    >>> out = gradient_flow(lambda t: 0.5 * (t ** 2).sum(), torch.ones(1, dtype=torch.float64), t=1.0)
    >>> abs(float(out) - math.exp(-1.0)) < 1e-12
    True
    """
    _checks.function("loss_fn", loss_fn)
    items = _checks.params("params", params)
    t = _checks.positive("t", t, strict=False)
    rtol, atol = _checks.positive("rtol", rtol), _checks.positive("atol", atol)
    dtype, device = items[0].dtype, items[0].device
    template = like(params, [x.detach().to(torch.float64) for x in items])

    def rhs(_s: float, y: np.ndarray) -> np.ndarray:
        theta = unflatten(torch.from_numpy(y).to(device), template)
        return -flatten(grad(loss_fn, theta)).detach().cpu().numpy()

    y0 = flatten(template).cpu().numpy()
    times = None if t_eval is None else np.asarray(list(t_eval), dtype=float)
    if times is not None and (times.ndim != 1 or not np.all(np.isfinite(times))
                              or np.any(times < 0) or np.any(times > t) or np.any(np.diff(times) < 0)):
        raise ValueError(f"t_eval must be increasing finite times in [0, t={t:g}], got {times}")

    def back(y: np.ndarray) -> Params:
        out = unflatten(torch.from_numpy(np.array(y)).to(device), template)
        return like(params, [x.to(dtype) for x in as_tuple(out)])

    if t == 0:  # solve_ivp returns no point at all for an empty interval with t_eval
        return back(y0) if times is None else [back(y0) for _ in times]
    sol = solve_ivp(rhs, (0.0, t), y0, method="DOP853", rtol=rtol, atol=atol, t_eval=times)
    if not sol.success:
        raise RuntimeError(f"gradient_flow: integrator failed: {sol.message}")
    if times is None:
        return back(sol.y[:, -1])
    return [back(sol.y[:, i]) for i in range(sol.y.shape[1])]
