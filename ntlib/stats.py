"""Small statistics used by the checks of the book."""

from __future__ import annotations

import numpy as np


def loglog_slope(x, y) -> float:
    """Least-squares slope of ``log y`` against ``log x``: the exponent p of ``y ~ x^p``.

    Example
    -------
    >>> round(loglog_slope([1, 2, 4], [3, 12, 48]), 12)
    2.0
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1 or x.size < 2:
        raise ValueError(f"x and y must be 1-d arrays of equal length >= 2, got shapes {x.shape} and {y.shape}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))) or np.any(x <= 0) or np.any(y <= 0):
        raise ValueError("x and y must be finite and > 0 to fit a power law")
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])
