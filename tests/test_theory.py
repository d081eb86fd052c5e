"""ntlib.theory: each closed form satisfies its defining equation, or equals a dense Hessian's top eigenvalue."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, strategies as st

from ntlib import linalg, linear, symmetry, theory

from helpers import close, examples, gen, rand_spd, randn, seeds


@given(seed=seeds, d=st.integers(1, 5), o=st.integers(1, 4), cond_x=st.floats(1.0, 20.0),
       cond_e=st.floats(1.0, 10.0), scale=st.floats(0.1, 10.0))
def test_universal_kernel_solves_its_equation(seed, d, o, cond_x, cond_e, scale):
    """K* is the symmetric PSD solution of K Sx K = V*^T Se V*, and scales like sqrt(|Se|)."""
    sx, se = rand_spd(d, seed, cond_x), scale * rand_spd(o, seed + 1, cond_e)
    v = randn(seed + 2, o, d)
    k = theory.universal_kernel(linear.teacher(v, sx, se))
    tol = 1e-8 * (1 + (v.T @ se @ v).abs().max())
    assert torch.allclose(k, k.T, atol=1e-10 * (1 + k.abs().max()))
    assert torch.linalg.eigvalsh(k).min() > -1e-8 * (1 + k.abs().max())
    assert torch.allclose(k @ sx @ k, v.T @ se @ v, atol=float(tol))
    assert torch.allclose(theory.universal_kernel(linear.teacher(v, sx, 4.0 * se)), 2.0 * k,
                          atol=1e-8 * (1 + float(k.abs().max())))


@given(seed=seeds, d=st.integers(1, 5), o=st.integers(1, 4), cond_x=st.floats(1.0, 20.0),
       cond_e=st.floats(1.0, 10.0), scale_e=st.floats(0.1, 10.0))
def test_two_layer_solution_is_a_balanced_global_minimum(seed, d, o, cond_x, cond_e, scale_e):
    """Any factorisation with W^T W, U U^T as returned has U W = V*, satisfies the balance condition and has
    zero matrix-balance error under the exact gradient moments (ntlib.symmetry.layer_pair_balance)."""
    sx, se = rand_spd(d, seed, cond_x), scale_e * rand_spd(o, seed + 1, cond_e)
    v = randn(seed + 2, o, d)
    t = linear.teacher(v, sx, se)
    wtw, uut = theory.two_layer_entropic_solution(t)
    w = linalg.sqrtm_psd(wtw)
    u = v @ torch.linalg.pinv(w, rtol=1e-8)
    big = 1 + float(v.abs().max())
    assert torch.allclose(u @ w, v, atol=1e-7 * big)
    assert torch.allclose(u @ u.T, uut, atol=1e-7 * (1 + float(uut.abs().max())))
    lhs = torch.trace(se) * w @ sx @ w.T
    rhs = torch.trace(sx) * u.T @ se @ u
    assert torch.allclose(lhs, rhs, atol=1e-7 * (1 + float(lhs.abs().max())))
    lhs_b, rhs_b = symmetry.layer_pair_balance([w, u], 0, t)
    assert torch.allclose(lhs_b, rhs_b, atol=1e-7 * (1 + float(lhs_b.abs().max())))
    # only the shape of the noise matters
    wtw2, _ = theory.two_layer_entropic_solution(linear.teacher(v, sx, 3.0 * se))
    assert torch.allclose(wtw2, wtw, atol=1e-8 * (1 + float(wtw.abs().max())))


def test_two_layer_solution_has_zero_matrix_balance_error():
    """The fixed, well-conditioned case of the property above, to the tolerance 1e-10."""
    g = gen(9)
    t = linear.teacher(randn(g, 3, 3) + 2 * torch.eye(3), torch.diag(torch.tensor([1.0, 2.0, 0.5])),
                       torch.diag(torch.tensor([0.7, 0.3, 1.2])))
    wtw, uut = theory.two_layer_entropic_solution(t)
    w = linalg.sqrtm_psd(wtw)
    u = t.v_star @ torch.linalg.inv(w)
    assert torch.allclose(u @ u.T, uut, atol=1e-10)
    assert float(symmetry.matrix_balance_error(*symmetry.layer_pair_balance([w, u], 0, t))) < 1e-10


def _two_layer_dense_top(t: linear.Teacher, wtw: torch.Tensor) -> float:
    w = linalg.sqrtm_psd(wtw)  # a square root with W^T W = wtw; U = V W^{-1}
    u = t.v_star @ torch.linalg.inv(w)
    o, d = t.v_star.shape
    f = lambda p: torch.trace((p[:o * d].view(o, d) @ p[o * d:].view(d, d) - t.v_star) @ t.sigma_x
                              @ (p[:o * d].view(o, d) @ p[o * d:].view(d, d) - t.v_star).T)
    h = torch.autograd.functional.hessian(f, torch.cat([u.reshape(-1), w.reshape(-1)]))
    return float(torch.linalg.eigvalsh(h).max())


@given(r=st.floats(1e-3, 1e3))
def test_diagonal_noise_sharpness_is_the_top_eigenvalue(r):
    """S(r) is the largest Hessian eigenvalue of |U W - I|_F^2 at the entropic minimum; S >= S(1) = 4.

    r > 1 included: there the closed form written for r <= 1 is wrong (it gave S(4) = 2.85 < 4
    while the dense Hessian gives 5.69 = S(1/4)), which this property caught.
    """
    t = linear.teacher(torch.eye(2), None, torch.diag(torch.tensor([1.0, r])))
    wtw, _ = theory.two_layer_entropic_solution(t)
    s = theory.diagonal_noise_sharpness(r)
    assert math.isclose(_two_layer_dense_top(t, wtw), s, rel_tol=1e-9)
    assert s >= 4.0 - 1e-12


def test_diagonal_noise_sharpness_values_and_tensors():
    assert math.isclose(theory.diagonal_noise_sharpness(1.0), 4.0)
    assert theory.diagonal_noise_sharpness(0.1) > theory.diagonal_noise_sharpness(0.5) > 4.0
    r = torch.tensor([0.01, 0.5, 1.0, 4.0])
    s = theory.diagonal_noise_sharpness(r)
    assert s.shape == (4,) and s.dtype == r.dtype
    assert close(s, torch.tensor([theory.diagonal_noise_sharpness(float(x)) for x in r]), 1e-14)


@given(seed=seeds, r=st.floats(1e-3, 1e3), scale=st.floats(0.01, 100.0))
def test_entropic_sharpness_is_diagonal_noise_sharpness(seed, r, scale):
    """With V* = I_2, Sigma_x = I_2 and noise scale * R diag(1, r) R^T (any rotation R), the entropic
    sharpness is S(r): the loss is invariant under x -> Rx, y -> Ry."""
    rot = linalg.random_orthogonal(2, gen(seed))
    se = scale * rot @ torch.diag(torch.tensor([1.0, r])) @ rot.T
    s = theory.entropic_sharpness(linear.teacher(torch.eye(2), None, (se + se.T) / 2))
    assert math.isclose(s, theory.diagonal_noise_sharpness(r), rel_tol=1e-8)


@examples(8)
@given(seed=seeds, n=st.integers(1, 3), cond=st.floats(1.0, 5.0))
def test_entropic_sharpness_matches_the_dense_hessian(seed, n, cond):
    """General case: an invertible teacher, hidden width = rank; the top eigenvalue of the dense Hessian at the
    entropic minimum (built from two_layer_entropic_solution)."""
    t = linear.teacher(randn(seed, n, n) + 2 * torch.eye(n), rand_spd(n, seed + 1, cond), rand_spd(n, seed + 2, cond))
    wtw, _ = theory.two_layer_entropic_solution(t)
    assert math.isclose(theory.entropic_sharpness(t), _two_layer_dense_top(t, wtw), rel_tol=1e-9)


@given(lr=st.floats(1e-3, 0.499))
def test_edge_balance_solves_the_edge_equation(lr):
    """r = edge_balance(lr) lies in (0, 1] and S(r) = 2 / lr; above lr = 1/2 there is none (nan)."""
    r = float(theory.edge_balance(lr))
    assert 0 < r <= 1
    assert math.isclose(theory.diagonal_noise_sharpness(r), 2 / lr, rel_tol=1e-10)
    three = theory.edge_balance(torch.tensor([lr, lr / 2, lr + 0.5 + 1e-6]))  # vectorised, one nan
    assert close(three[0], r, 1e-14) and float(three[1]) < r and math.isnan(float(three[2]))


def test_edge_balance_keeps_the_dtype_of_a_tensor():
    """Regression: a float64 tensor was cast to the default dtype (float32: edge_balance(0.5) = 0.99999964)."""
    torch.set_default_dtype(torch.float32)  # the autouse fixture restores float64 after the test
    r = theory.edge_balance(torch.tensor([0.5, 0.25], dtype=torch.float64))
    assert r.dtype == torch.float64 and float(r[0]) == pytest.approx(1.0, abs=1e-12)
    assert theory.edge_balance(0.5).dtype == torch.float64
    assert theory.edge_balance(torch.tensor([0.5], dtype=torch.float32)).dtype == torch.float32


@pytest.mark.parametrize("call,exc,msg", [
    (lambda: theory.universal_kernel((torch.eye(2), torch.eye(2), torch.eye(2))), TypeError, "t must be a Teacher"),
    (lambda: theory.two_layer_entropic_solution(torch.eye(2)), TypeError, "t must be a Teacher"),
    (lambda: theory.entropic_sharpness(None), TypeError, "t must be a Teacher"),
    (lambda: theory.diagonal_noise_sharpness(0.0), ValueError, "r must be > 0"),
    (lambda: theory.diagonal_noise_sharpness(float("inf")), ValueError, "r must be > 0"),
    (lambda: theory.diagonal_noise_sharpness(torch.tensor([1.0, -1.0])), ValueError, "r must be > 0"),
    (lambda: theory.diagonal_noise_sharpness(torch.tensor([float("nan")])), ValueError, "r contains NaN"),
    (lambda: theory.edge_balance(torch.tensor([0.1, -1.0])), ValueError, "lr must be > 0"),
    (lambda: theory.edge_balance(float("nan")), ValueError, "lr must be > 0 and finite"),
])
def test_bad_input_names_the_argument(call, exc, msg):
    with pytest.raises(exc, match=msg):
        call()


@given(seed=seeds, d=st.integers(1, 4), o=st.integers(1, 4), lr=st.floats(1e-3, 0.1),
       gamma=st.floats(1e-4, 1.0), batch=st.integers(1, 8))
@examples(25)
def test_regularised_balance_solves_the_orbit_condition(seed, d, o, lr, gamma, batch):
    """W = O (W^T W)^{1/2}, U = V* W^+ satisfy W A W^T = U^T B U (eq-wd-orbit) with kappa of orbit_coupling."""
    sx, se = rand_spd(d, seed, 5.0), rand_spd(o, seed + 1, 5.0)
    v = randn(seed + 2, o, d)
    t = linear.teacher(v, sx, se)
    kappa = theory.orbit_coupling(lr, gamma, batch)
    assert math.isclose(kappa, lr / (batch * gamma * (1 - lr * gamma)))
    wtw, uut = theory.regularised_balance(t, lr=lr, weight_decay=gamma, batch_size=batch)
    a = torch.eye(d, dtype=sx.dtype) + kappa * torch.trace(se) * sx
    b = torch.eye(o, dtype=sx.dtype) + kappa * torch.trace(sx) * se
    scale = 1 + float((v.T @ b @ v).abs().max())
    assert torch.allclose(wtw @ a @ wtw, v.T @ b @ v, atol=1e-7 * scale)       # G A G = V^T B V
    assert torch.allclose(uut @ b @ uut, v @ a @ v.T, atol=1e-7 * (1 + float((v @ a @ v.T).abs().max())))


def test_regularised_balance_limits():
    """gamma -> 0: the entropic two-layer solution; gamma/lr -> inf: weight balance (V^T V)^{1/2}."""
    t = linear.teacher(randn(3, 2, 3), rand_spd(3, 4, 4.0), rand_spd(2, 5, 4.0))
    ent = theory.two_layer_entropic_solution(t)
    for got, want in zip(theory.regularised_balance(t, lr=0.01, weight_decay=0.0), ent):
        assert torch.equal(got, want)
    near = theory.regularised_balance(t, lr=0.01, weight_decay=1e-9)
    assert all(close(g, w, 1e-5) for g, w in zip(near, ent))
    far = theory.regularised_balance(t, lr=1e-9, weight_decay=1.0)
    assert close(far[0], linalg.sqrtm_psd(t.v_star.T @ t.v_star), 1e-6)
    with pytest.raises(ValueError, match="lr \\* weight_decay"):
        theory.orbit_coupling(2.0, 0.5)
    with pytest.raises(ValueError, match="weight_decay"):
        theory.orbit_coupling(0.1, -1.0)


def test_orbit_imbalance_diagonal_closed_form():
    """V* = I, Sx = I, Se = diag(e): rho_k^2 = (1 + kappa Tr(Sx) e_k) / (1 + kappa Tr(Se)), ascending."""
    e = torch.tensor([4.0, 0.25, 1.5], dtype=torch.float64)
    t = linear.teacher(torch.eye(3, dtype=torch.float64), sigma_eps=torch.diag(e))
    for gamma in (1e-3, 0.02, 0.5):
        kappa = theory.orbit_coupling(0.01, gamma, 2)
        want = ((1 + kappa * 3 * e) / (1 + kappa * e.sum())).sort().values
        assert close(theory.orbit_imbalance(t, lr=0.01, weight_decay=gamma, batch_size=2), want, 1e-9)
    with pytest.raises(ValueError, match="square"):
        theory.orbit_imbalance(linear.teacher(randn(0, 2, 3)), lr=0.01, weight_decay=0.1)


def test_equilibrium_norm_is_the_fixed_point_of_the_norm_map():
    """n = E|theta|^2 solves n = (1 - 2 lr gamma)^2 n + lr^2 P / n; exponents 1/2 and -1/2; validation."""
    for lr, gamma, p in ((0.04, 0.01, 12.0), (0.1, 0.3, 2.0)):
        n = theory.equilibrium_norm(lr, gamma, p)
        assert math.isclose(n, (1 - 2 * lr * gamma) ** 2 * n + lr ** 2 * p / n, rel_tol=1e-12)
    lrs = torch.tensor([1e-4, 1e-3, 1e-2])
    ns = theory.equilibrium_norm(lrs, 1e-4, 3.0)
    assert ns.shape == (3,) and abs(float(torch.log(ns[2] / ns[0]) / math.log(100)) - 0.5) < 1e-4
    for bad in ((0.0, 0.1, 1.0), (0.1, 0.0, 1.0), (0.1, 0.1, -1.0), (2.0, 0.6, 1.0)):
        with pytest.raises(ValueError):
            theory.equilibrium_norm(*bad)
