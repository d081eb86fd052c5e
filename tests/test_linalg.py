"""ntlib.linalg: matrix powers of SPD matrices, random matrices with exact spectra, the relative error."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, strategies as st

from ntlib import linalg
from ntlib.config import generator

from helpers import D, close, gen, rand_spd, randn, seeds


@given(seed=seeds, n=st.integers(1, 6), cond=st.floats(1.0, 100.0), a=st.floats(-2, 2), b=st.floats(-2, 2))
def test_sym_pow_is_a_group(seed, n, cond, a, b):
    """S^a S^b = S^(a+b), (S^(1/2))^2 = S and S^(-1/2) S S^(-1/2) = I for SPD S."""
    s = rand_spd(n, seed, cond)
    lhs = linalg.sym_pow(s, a) @ linalg.sym_pow(s, b)
    rhs = linalg.sym_pow(s, a + b)
    assert torch.allclose(lhs, rhs, atol=1e-9 * float(rhs.abs().max()) * cond ** 2)
    r = linalg.sqrtm_psd(s)
    assert torch.allclose(r @ r, s, atol=1e-10 * cond)
    m = linalg.sym_pow(s, -0.5)
    assert torch.allclose(m @ s @ m, torch.eye(n), atol=1e-12 * cond)


def test_sqrtm_of_a_rank_deficient_psd_matrix():
    v = torch.tensor([[1.0], [2.0], [2.0]])
    s = v @ v.T  # rank 1, eigenvalue 9: the root is s / 3
    assert close(linalg.sqrtm_psd(s), s / 3, 1e-14)
    assert close(linalg.sym_pow(s, 1.5), s @ s / 3, 1e-13)  # s^{3/2} = s^2 / 3 on the range


@given(seed=seeds, n=st.integers(1, 6), m=st.integers(1, 6), runs=st.one_of(st.none(), st.integers(1, 3)),
       lo=st.floats(0.01, 10.0), ratio=st.floats(1.0, 100.0))
def test_random_matrices_have_their_spectra(seed, n, m, runs, lo, ratio):
    """random_orthogonal is orthogonal; random_matrix has singular values logspace(lo, hi); random_spd is
    symmetric with eigenvalues logspace(lo, hi)."""
    g = gen(seed)
    hi = lo * ratio
    q = linalg.random_orthogonal(n, g, runs=runs)
    eye = torch.eye(n, dtype=D)
    assert close(q @ q.transpose(-1, -2), eye.expand_as(q), 1e-13)
    assert close(q.transpose(-1, -2) @ q, eye.expand_as(q), 1e-13)
    mat = linalg.random_matrix(n, m, g, lo=lo, hi=hi, runs=runs)
    assert mat.shape == ((n, m) if runs is None else (runs, n, m))
    k = min(n, m)
    target = torch.logspace(math.log10(lo), math.log10(hi), k, dtype=D).flip(0)
    assert close(torch.linalg.svdvals(mat), target.expand(*mat.shape[:-2], k), 1e-12, hi)
    s = linalg.random_spd(n, g, lo=lo, hi=hi)
    assert torch.equal(s, s.T) or close(s, s.T, 1e-14, hi)
    assert close(torch.linalg.eigvalsh(s), torch.logspace(math.log10(lo), math.log10(hi), n, dtype=D), 1e-12, hi)


def test_random_runs_differ_and_follow_the_generator():
    m = linalg.random_matrix(3, 3, generator(1), lo=0.7, hi=1.4, runs=2)
    assert not torch.allclose(m[0], m[1])
    assert torch.equal(m, linalg.random_matrix(3, 3, generator(1), lo=0.7, hi=1.4, runs=2))


@given(seed=seeds, runs=st.integers(1, 3), m=st.integers(1, 4), c=st.floats(-5.0, 5.0), s=st.floats(0.01, 100.0))
def test_relative_error_properties(seed, runs, m, c, s):
    """relative_error(c ref, ref) = |c - 1|; invariant under a common scale; zero on ref itself; a triangle bound."""
    g = gen(seed)
    a, ref = randn(g, runs, m, m + 1), randn(g, runs, m, m + 1)
    assert float(linalg.relative_error(ref, ref).abs().max()) == 0.0
    assert close(linalg.relative_error(c * ref, ref), torch.full((runs,), abs(c - 1)), 1e-13)
    assert close(linalg.relative_error(s * a, s * ref), linalg.relative_error(a, ref), 1e-12)
    b = randn(g, runs, m, m + 1)
    nr = torch.linalg.matrix_norm(ref)
    lhs = linalg.relative_error(a, ref)
    rhs = linalg.relative_error(b, ref) + torch.linalg.matrix_norm(a - b) / nr
    assert bool((lhs <= rhs + 1e-12).all())


@pytest.mark.parametrize("call,exc,msg", [
    (lambda: linalg.sym_pow(torch.tensor([[1.0, 0.5], [0.0, 1.0]]), 0.5), ValueError, "m must be symmetric"),
    (lambda: linalg.sym_pow(torch.eye(2), float("nan")), ValueError, "power must be finite"),
    (lambda: linalg.sym_pow(torch.diag(torch.tensor([1.0, 0.0])), -1), ValueError,
     "m must be positive definite for power -1"),
    (lambda: linalg.sym_pow(torch.diag(torch.tensor([1.0, -1.0])), 0.5, name="cov"), ValueError,
     "cov must be positive semi-definite"),
    (lambda: linalg.sqrtm_psd(torch.ones(2, 3), name="cov"), ValueError, "cov must be a square matrix"),
    (lambda: linalg.random_orthogonal(0, generator(0)), ValueError, "n must be >= 1"),
    (lambda: linalg.random_spd(3, generator(0), lo=2.0, hi=1.0), ValueError, "hi must be >= lo"),
    (lambda: linalg.random_matrix(3, 3, generator(0), lo=0.0), ValueError, "lo must be > 0"),
    (lambda: linalg.random_matrix(3, 3, generator(0), runs=0), ValueError, "runs must be >= 1"),
    (lambda: linalg.relative_error(torch.eye(2), torch.eye(3)), ValueError, "do not broadcast"),
    (lambda: linalg.relative_error([1.0], torch.eye(3)), TypeError, "a must be a torch.Tensor"),
])
def test_bad_input_names_the_argument(call, exc, msg):
    with pytest.raises(exc, match=msg):
        call()
