"""ntlib.stats: the power-law exponent of the checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

from ntlib import stats


@given(p=st.floats(-3.0, 3.0), c=st.floats(1e-3, 1e3),
       xs=st.lists(st.floats(0.01, 100.0), min_size=2, max_size=8, unique=True))
def test_loglog_slope_is_exact_on_power_laws(p, c, xs):
    """y = c x^p gives slope p (least squares on exact data), whatever c."""
    x = np.array(xs)
    if np.ptp(np.log(x)) < 1e-3:
        return
    assert math.isclose(stats.loglog_slope(x, c * x ** p), p, rel_tol=0, abs_tol=1e-8)


def test_loglog_slope_hand_computed():
    assert math.isclose(stats.loglog_slope([1, 10, 100], [5, 0.5, 0.05]), -1.0)


@pytest.mark.parametrize("x,y,msg", [
    ([1, 2], [0, 1], "finite and > 0"),
    ([1, 2], [1, float("nan")], "finite and > 0"),
    ([-1, 2], [1, 1], "finite and > 0"),
    ([1, 2, 3], [1, 2], "equal length >= 2"),
    ([1], [1], "equal length >= 2"),
    ([[1, 2]], [[1, 2]], "1-d arrays"),
])
def test_bad_input(x, y, msg):
    with pytest.raises(ValueError, match=msg):
        stats.loglog_slope(x, y)
