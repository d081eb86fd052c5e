"""ntlib.sharpness_theory: isotropic-noise closed forms against ntlib.theory and Gauss-Newton sharpness."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, strategies as st

from ntlib import linalg, linear, sharpness_theory, theory

from helpers import gen, randn, seeds


@given(seed=seeds, d=st.integers(1, 4), o=st.integers(1, 4), s2=st.floats(0.1, 5.0))
def test_isotropic_entropic_sharpness_matches_general_form(seed, d, o, s2):
    v = randn(gen(seed), o, d)
    t = linear.teacher(v, sigma_eps=s2 * torch.eye(o))
    got = sharpness_theory.isotropic_entropic_sharpness(v)
    assert math.isclose(got, theory.entropic_sharpness(t), rel_tol=1e-9)
    assert got >= sharpness_theory.flattest_sharpness(v) * (1 - 1e-12)
    if d == o:
        assert math.isclose(got, sharpness_theory.flattest_sharpness(v), rel_tol=1e-12)


@given(seed=seeds, d=st.integers(1, 3), o=st.integers(1, 3))
def test_flattest_is_attained_at_the_balanced_point_and_a_lower_bound(seed, d, o):
    """GN sharpness at the balanced minimum is 4 s_1; any other minimum U = V* A^{-1}, W = A is not flatter."""
    g = gen(seed)
    h = max(d, o)
    v = randn(g, o, d)
    # balanced point from the SVD: W = S^{1/2} V^T, U = P S^{1/2} (h = rank-padded width)
    p, s, qt = torch.linalg.svd(v, full_matrices=False)
    k = s.numel()
    w = torch.zeros(h, d)
    u = torch.zeros(o, h)
    w[:k] = s.sqrt()[:, None] * qt
    u[:, :k] = p * s.sqrt()[None]
    ws = [w[None], u[None]]
    assert torch.allclose(u @ w, v, atol=1e-12)
    flat = sharpness_theory.flattest_sharpness(v)
    assert math.isclose(linear.gauss_newton_sharpness(ws).item(), flat, rel_tol=1e-10)
    a = linalg.random_spd(h, g, lo=0.3, hi=3.0)
    other = [(a @ w)[None], (u @ torch.linalg.inv(a))[None]]
    assert linear.gauss_newton_sharpness(other).item() >= flat * (1 - 1e-10)


def test_bad_input():
    with pytest.raises(ValueError, match="nonzero"):
        sharpness_theory.flattest_sharpness(torch.zeros(2, 2))
    with pytest.raises(ValueError, match="v_star"):
        sharpness_theory.isotropic_entropic_sharpness(torch.ones(3))
