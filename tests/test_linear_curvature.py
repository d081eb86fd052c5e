"""ntlib.linear.curvature: Gauss-Newton and population Hessians of deep linear nets against dense ground truth."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, strategies as st

from ntlib import hessian, linalg, linear
from ntlib.config import generator
from ntlib.linalg import sqrtm_psd

from helpers import chain, close, examples, gen, rand_spd, randn, seeds


def dense_top(ws, t, gauss_newton=False):
    """Top eigenvalue of the dense Hessian (or of 2 J^T J) of E|W_D..W_1 x - y|^2 for run 0 of ws (torch.autograd)."""
    shapes = [w.shape[1:] for w in ws]
    sizes = [math.prod(s) for s in shapes]

    def k_of(flat):
        return chain([p.view(s) for p, s in zip(torch.split(flat, sizes), shapes)])

    flat = torch.cat([w[0].reshape(-1) for w in ws])
    if gauss_newton:
        j = torch.autograd.functional.jacobian(lambda f: (k_of(f) @ sqrtm_psd(t.sigma_x)).reshape(-1), flat)
        h = 2 * j.T @ j
    else:
        h = torch.autograd.functional.hessian(
            lambda f: torch.trace((k_of(f) - t.v_star) @ t.sigma_x @ (k_of(f) - t.v_star).T), flat)
    return torch.linalg.eigvalsh(h)[-1].item()


@pytest.mark.parametrize("widths", [[3, 4, 2], [3, 2, 4, 2], [2, 3, 3, 3, 2]])
def test_gauss_newton_sharpness_matches_dense(widths):
    g = generator(1)
    ws = linear.init_weights(widths, 3, g)
    a = torch.randn(widths[0], widths[0], generator=g)
    t = linear.teacher(torch.zeros(widths[-1], widths[0]), a @ a.T + 0.5 * torch.eye(widths[0]))
    for teach in (None, t):
        got = linear.gauss_newton_sharpness(ws, teach)
        ref_t = linear.teacher(torch.zeros(widths[-1], widths[0])) if teach is None else teach
        for run in range(3):
            ref = dense_top([w[run:run + 1] for w in ws], ref_t, gauss_newton=True)
            assert math.isclose(got[run].item(), ref, rel_tol=1e-10)
    if len(widths) == 3:  # the general Kronecker route agrees with the two-layer shortcut
        full = torch.linalg.eigvalsh(linear.gauss_newton_matrix(ws))[..., -1]
        assert torch.allclose(full, linear.gauss_newton_sharpness(ws), rtol=1e-12)


@given(seed=seeds, widths=st.lists(st.integers(1, 3), min_size=3, max_size=4), use_sx=st.booleans())
def test_gauss_newton_is_the_hessian_at_a_global_minimum(seed, widths, use_sx):
    """At W_D...W_1 = V*, the population Hessian has the GN matrix's nonzero spectrum: the same top eigenvalue
    and the same trace (tr J^T M J = tr M J J^T)."""
    g = gen(seed)
    ws = [randn(g, b, a) for a, b in zip(widths[:-1], widths[1:])]
    d = widths[0]
    sx = linalg.random_spd(d, g, lo=0.3, hi=3.0) if use_sx else torch.eye(d)
    t = linear.teacher(chain(ws), sx)
    loss = lambda p: linear.population_loss([q.unsqueeze(0) for q in p], t, label_noise=False).sum()
    ev = torch.linalg.eigvalsh(hessian.dense_hessian(loss, tuple(ws)))
    batched = [w.unsqueeze(0) for w in ws]
    gn = linear.gauss_newton_matrix(batched, t if use_sx else None)[0]
    s = linear.gauss_newton_sharpness(batched, t if use_sx else None)
    big = 1 + float(ev.abs().max())
    assert close(s[0], ev[-1], 1e-10, big)
    assert close(torch.trace(gn), ev.sum(), 1e-10, big * len(ev))
    assert close(gn, gn.T, 1e-12, big)
    assert float(torch.linalg.eigvalsh(gn)[0]) >= -1e-10 * big
    if len(ws) == 2 and not use_sx:  # the two-layer closed form agrees with the matrix path
        assert close(s[0], torch.linalg.eigvalsh(gn)[-1], 1e-11, big)
    assert close(linear.population_sharpness(batched, t), s, 1e-10, big)


def test_gauss_newton_differs_from_the_hessian_away_from_a_minimum():
    g = generator(2)
    v = torch.randn(2, 3, generator=g)
    t = linear.teacher(v, torch.diag(torch.tensor([1.0, 2.0, 0.5])))
    w = torch.randn(1, 4, 3, generator=g) + 0.3
    u = (v @ torch.linalg.pinv(w[0] - 0.3)).unsqueeze(0)  # U (W - 0.3) = V: W itself is 0.3 off the minimum
    gn, exact = linear.gauss_newton_sharpness([w, u], t).item(), linear.population_sharpness([w, u], t).item()
    assert math.isclose(exact, dense_top([w, u], t), rel_tol=1e-10)
    assert not math.isclose(gn, exact, rel_tol=1e-3)


@examples(8)
@given(seed=seeds, widths=st.lists(st.integers(1, 3), min_size=2, max_size=4), runs=st.integers(1, 3))
def test_population_hessian_matches_dense_hessian_and_lanczos(seed, widths, runs):
    """population_hessian = hessian.dense_hessian of linear.population_loss; Lanczos finds its top eigenvalue."""
    t = linear.teacher(randn(seed, widths[-1], widths[0]), sigma_x=rand_spd(widths[0], seed + 1, 3.0))
    ws = linear.init_weights(widths, runs, generator(seed + 2))
    h = linear.population_hessian(ws, t)
    top = linear.population_sharpness(ws, t)
    n = sum(w[0].numel() for w in ws)
    assert h.shape == (runs, n, n) and top.shape == (runs,)
    for r in range(runs):
        loss = lambda p: linear.population_loss(list(p), t, label_noise=False).sum()
        params = tuple(w[r:r + 1] for w in ws)
        dense = hessian.dense_hessian(loss, params)
        assert torch.allclose(h[r], dense, atol=1e-10 * (1 + float(dense.abs().max())))
        res = hessian.top_eigenvalues(loss, params, k=1, tol=1e-10, atol=1e-12, generator=generator(seed))
        assert isinstance(res, hessian.Eigen) and res.converged
        lam = float(torch.linalg.eigvalsh(dense).max())
        assert math.isclose(float(res.values[0]), lam, rel_tol=1e-8, abs_tol=1e-10)
        assert math.isclose(float(top[r]), lam, rel_tol=1e-8, abs_tol=1e-10)


def test_population_sharpness_is_gauss_newton_at_a_minimum():
    g = generator(4)
    v = torch.randn(2, 3, generator=g)
    t = linear.teacher(v, torch.diag(torch.tensor([1.0, 2.0, 0.5])))
    w = linear.init_weights([3, 4, 2], 3, g)[0]
    u = v @ torch.linalg.pinv(w)  # a global minimum per run
    assert torch.allclose(linear.population_sharpness([w, u], t), linear.gauss_newton_sharpness([w, u], t),
                          rtol=1e-10)


@pytest.mark.parametrize("call,exc,msg", [
    (lambda t: linear.gauss_newton_sharpness([torch.zeros(1, 3, 2), torch.zeros(1, 2, 2)]), ValueError,
     "do not chain"),
    (lambda t: linear.gauss_newton_sharpness([torch.ones(1, 3, 2), torch.ones(1, 2, 3)], t), ValueError,
     "weights map 2 -> 2 but the teacher maps 3 -> 2"),
    (lambda t: linear.gauss_newton_matrix([torch.ones(1, 3, 2)], "t"), TypeError, "t must be a Teacher"),
    (lambda t: linear.gauss_newton_sharpness(torch.zeros(1, 2, 2)), TypeError, "weights must be a non-empty list"),
    (lambda t: linear.population_sharpness([torch.ones(2, 4, 3)], t), ValueError,
     "weights map 3 -> 4 but the teacher maps 3 -> 2"),
    (lambda t: linear.population_hessian([torch.ones(2, 3, 3)], t), ValueError,
     "weights map 3 -> 3 but the teacher maps 3 -> 2"),
    (lambda t: linear.population_hessian([torch.ones(2, 2, 3)], None), TypeError, "t must be a Teacher"),
])
def test_bad_input_names_the_argument(call, exc, msg):
    t = linear.teacher(torch.ones(2, 3))
    with pytest.raises(exc, match=msg):
        call(t)


def _jacobian_outer(ws, t):
    """E[J J^T] = sum_ab Sigma_x[a, b] J(e_a) J(e_b)^T with J(x) = d(W_D...W_1 x)/d(weights), by autograd."""
    shapes = [w.shape[1:] for w in ws]
    sizes = [math.prod(s) for s in shapes]
    flat = torch.cat([w[0].reshape(-1) for w in ws])
    d = t.d_in
    js = [torch.autograd.functional.jacobian(
        lambda f, a=a: chain([p.view(s) for p, s in zip(torch.split(f, sizes), shapes)]) @ torch.eye(d)[a], flat)
        for a in range(d)]
    return sum(t.sigma_x[a, b] * js[a] @ js[b].T for a in range(d) for b in range(d))


@given(seed=seeds, widths=st.lists(st.integers(1, 3), min_size=3, max_size=4))
def test_trace_and_label_noise_gradient_norm_match_autograd(seed, widths):
    """gauss_newton_trace = Tr(2 E[J^T J]) and label_noise_gradient_norm = 4 Tr(Sigma_eps E[J J^T])
    (Chapter 4, prop-noise-trace), against dense autograd Jacobians; isotropic noise gives 2 s^2 Tr H."""
    g = gen(seed)
    d, o = widths[0], widths[-1]
    ws = [randn(g, b, a).unsqueeze(0) for a, b in zip(widths[:-1], widths[1:])]
    t = linear.teacher(randn(g, o, d), linalg.random_spd(d, g, lo=0.3, hi=3.0), linalg.random_spd(o, g, lo=0.3, hi=2.0))
    jj = _jacobian_outer(ws, t)
    assert close(linear.gauss_newton_trace(ws, t)[0], 2 * torch.trace(jj))
    assert close(linear.label_noise_gradient_norm(ws, t)[0], 4 * torch.trace(t.sigma_eps @ jj))
    t_iso = linear.teacher(chain([w[0] for w in ws]), t.sigma_x, 0.7 * torch.eye(o))  # ws is a global minimum
    h = linear.population_hessian(ws, t_iso)[0]
    assert close(linear.label_noise_gradient_norm(ws, t_iso)[0], 2 * 0.7 * torch.trace(h))
