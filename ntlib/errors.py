"""The errors ntlib raises besides ``TypeError``/``ValueError`` for bad arguments.

* :class:`DivergenceError`: a training loop met a non-finite loss or parameter;
  it names the step and the learning rate, never returns NaN silently.
* :class:`ConvergenceError`: an iterative solver (``ntlib.hessian``) spent its
  budget without certifying its answer; the partial result is attached.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DivergenceError", "ConvergenceError"]


class DivergenceError(RuntimeError):
    """Training produced a non-finite loss or parameters.

    Attributes: ``step`` (0-based step at which it was detected), ``lr`` (the
    learning rate then, the largest one for an ensemble), and
    ``last_finite_loss`` (the last finite loss seen, or ``None``).

    Example
    -------
    >>> import torch
    >>> from ntlib.dynamics import gd
    >>> try:
    ...     gd(lambda t: (t ** 2).sum(), torch.ones(1, dtype=torch.float64), lr=5.0, steps=10_000)
    ... except DivergenceError as e:
    ...     print(e.lr, e.step > 0)
    5.0 True
    """

    def __init__(self, step: int, lr: float, last_finite_loss: float | None):
        self.step, self.lr, self.last_finite_loss = step, lr, last_finite_loss
        last = "none" if last_finite_loss is None else f"{last_finite_loss:.6g}"
        super().__init__(
            f"training diverged at step {step} with learning rate {lr:g} (last finite loss: {last}); "
            "lower the learning rate or check the initialisation"
        )


class ConvergenceError(RuntimeError):
    """An iterative solver did not certify its result within its budget.

    The partial (uncertified) result is kept in the attribute ``result``
    (for :func:`ntlib.hessian.top_eigenvalues`, an :class:`ntlib.hessian.Eigen`).

    Example
    -------
    >>> e = ConvergenceError("2 pairs not certified", result=None)
    >>> str(e), e.result is None
    ('2 pairs not certified', True)
    """

    def __init__(self, message: str, result: Any):
        super().__init__(message)
        self.result = result
