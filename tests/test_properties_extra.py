"""More property-based tests (hypothesis) of ntlib: symmetries, sharpness, entropic terms, helpers.

Each property is an exact identity, invariance, closed form or bound of the public API,
checked on random inputs drawn by hypothesis (derandomized: the same examples every run).
Float64 throughout; tolerances are a small multiple of float64 round-off on the scale of the
quantities involved, except the one Monte Carlo check (stated there).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from ntlib import align, dynamics, ensemble, entropic, hessian, linalg, linear, mlp, sharpness, stats, symmetry, theory
from ntlib._params import flatten

D = torch.float64
PROPS = settings(max_examples=20, deadline=None, derandomize=True)
FEW = settings(max_examples=8, deadline=None, derandomize=True)
seeds = st.integers(0, 2**31 - 1)


@pytest.fixture(autouse=True)
def float64_one_thread():
    """Tiny tensors: one torch thread is faster; float64 default for library-made tensors."""
    old_threads, old_dtype = torch.get_num_threads(), torch.get_default_dtype()
    torch.set_num_threads(1)
    torch.set_default_dtype(D)
    yield
    torch.set_num_threads(old_threads)
    torch.set_default_dtype(old_dtype)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randn(g: torch.Generator, *shape) -> torch.Tensor:
    return torch.randn(*shape, generator=g, dtype=D)


def close(a, b, rel=1e-10, scale=None) -> bool:
    a, b = torch.as_tensor(a, dtype=D), torch.as_tensor(b, dtype=D)
    s = float(scale) if scale is not None else 1.0 + float(b.abs().max())
    return bool(((a - b).abs() <= rel * s).all())


def relu_params(g, runs, h, d, o):
    return [randn(g, runs, h, d), randn(g, runs, o, h)]


# ---- symmetry: orbits, charges, the exact per-step identity -------------------------------


def around_pair(ws, i, d, o):
    """Q = W_i-1 ... W_1 (before the pair) and P = W_D ... W_i+2 (after it), identities when empty."""
    q = torch.eye(d, dtype=D)
    for w in ws[:i]:
        q = w @ q
    p = torch.eye(o, dtype=D)
    for w in reversed(ws[i + 2:]):
        p = p @ w
    return q, p

@PROPS
@given(seed=seeds, runs=st.integers(1, 3), h=st.integers(1, 5), d=st.integers(1, 4), o=st.integers(1, 3),
       n=st.integers(1, 6), lr=st.floats(1e-3, 0.5))
def test_relu_net_charge_step_identity_and_orbit(seed, runs, h, d, o, n, lr):
    """U relu(W x) has a rescaling symmetry per neuron: the loss is constant on the orbit, and one
    GD step changes each neuron's charge |w_i|^2 - |u_i|^2 by exactly lr^2 (|g_wi|^2 - |g_ui|^2)."""
    g = gen(seed)
    w, u = relu_params(g, runs, h, d, o)
    x, y = randn(g, runs, n, d), randn(g, runs, n, o)
    loss, (gw, gu) = symmetry.relu_net_loss_and_grads([w, u], x, y)
    theta, grads = (w, u), (gw, gu)
    nxt = (w - lr * gw, u - lr * gu)
    for i in range(h):
        e = torch.zeros(h, dtype=D)
        e[i] = 1.0
        a = (e[:, None], -e[None, :])  # +1 on row i of W, -1 on column i of U
        q = symmetry.charge(theta, a)
        scale = 1 + float((w * w).sum() + (u * u).sum()) + lr ** 2 * float((gw * gw).sum() + (gu * gu).sum())
        assert float(symmetry.charge_step_residual(theta, nxt, grads, lr, a)) <= 1e-12 * scale
        lam = float(torch.rand((), generator=g, dtype=D)) * 2 - 1
        w2, u2 = symmetry.orbit(theta, a, lam)
        loss2, _ = symmetry.relu_net_loss_and_grads([w2, u2], x, y)
        assert close(loss2, loss, 1e-11)
        # the charge along the orbit is e^{2 lam} |w_i|^2 - e^{-2 lam} |u_i|^2
        inc, out = symmetry.neuron_split(w, None, u)
        assert close(q, (inc - out)[..., i].sum(), 1e-12)
        assert close(symmetry.charge((w2, u2), a),
                     math.exp(2 * lam) * inc[..., i].sum() - math.exp(-2 * lam) * out[..., i].sum(), 1e-11)


@PROPS
@given(seed=seeds, runs=st.integers(1, 3), h=st.integers(1, 4), d=st.integers(1, 4), o=st.integers(1, 3),
       n=st.integers(1, 5))
def test_relu_net_loss_and_grads_match_autograd(seed, runs, h, d, o, n):
    """The explicit backprop equals autograd on ntlib.mlp.mse(..., bias=False).sum()."""
    g = gen(seed)
    w, u = relu_params(g, runs, h, d, o)
    x, y = randn(g, runs, n, d), randn(g, runs, n, o)
    loss, (gw, gu) = symmetry.relu_net_loss_and_grads([w, u], x, y)
    wl, ul = w.clone().requires_grad_(True), u.clone().requires_grad_(True)
    ref = mlp.mse([wl, ul], x, y, bias=False).sum()
    rw, ru = torch.autograd.grad(ref, [wl, ul])
    assert close(loss, ref.detach(), 1e-12)
    assert close(gw, rw, 1e-12) and close(gu, ru, 1e-12)


@PROPS
@given(seed=seeds, runs=st.integers(1, 3), h=st.integers(1, 5), d=st.integers(1, 4), o=st.integers(1, 3),
       bias=st.booleans())
def test_neuron_split_sums_and_squared_mode(seed, runs, h, d, o, bias):
    """Per-neuron squared norms sum to the totals; squared=True on the squares gives the same."""
    g = gen(seed)
    w, u = randn(g, runs, h, d), randn(g, runs, o, h)
    b = randn(g, runs, h) if bias else None
    inc, out = symmetry.neuron_split(w, b, u)
    assert inc.shape == out.shape == (runs, h)
    tot = (w * w).sum((-1, -2)) + ((b * b).sum(-1) if bias else 0)
    assert close(inc.sum(-1), tot, 1e-13) and close(out.sum(-1), (u * u).sum((-1, -2)), 1e-13)
    inc2, out2 = symmetry.neuron_split(w * w, None if b is None else b * b, u * u, squared=True)
    assert close(inc2, inc, 1e-14) and close(out2, out, 1e-14)


@PROPS
@given(seed=seeds, t=st.integers(1, 5), h=st.integers(1, 5), j=st.integers(0, 4), c=st.floats(0.01, 100.0))
def test_balance_log_ratio_rescaling(seed, t, h, j, c):
    """Scaling one neuron's incoming series by c shifts its log ratio by log c only; a common
    scale leaves all ratios unchanged; swapping the arguments flips the sign."""
    j = j % h
    g = gen(seed)
    inc, out = randn(g, t, h).abs() + 0.1, randn(g, t, h).abs() + 0.1
    r = symmetry.balance_log_ratio(inc, out, time_dim=0)
    assert close(r, torch.log(inc.mean(0) / out.mean(0)), 1e-13)
    inc2 = inc.clone()
    inc2[:, j] *= c
    shift = torch.zeros(h, dtype=D)
    shift[j] = math.log(c)
    assert close(symmetry.balance_log_ratio(inc2, out, time_dim=0), r + shift, 1e-12)
    assert close(symmetry.balance_log_ratio(c * inc, c * out, time_dim=0), r, 1e-12)
    assert close(symmetry.balance_log_ratio(out, inc, time_dim=0), -r, 1e-14)
    lay = symmetry.balance_log_ratio(inc, out, time_dim=0, layer=True)
    assert close(lay, torch.log(inc.sum() / out.sum()), 1e-12)


@PROPS
@given(seed=seeds, runs=st.integers(1, 3), h=st.integers(1, 5), c=st.floats(0.01, 100.0))
def test_matrix_balance_error_invariances_and_bounds(seed, runs, h, c):
    """In [0, 2], symmetric, zero at equality, invariant under a common rotation and a common scale."""
    g = gen(seed)
    lhs, rhs = randn(g, runs, h, h), randn(g, runs, h, h)
    lhs, rhs = lhs @ lhs.transpose(-1, -2), rhs @ rhs.transpose(-1, -2)
    e = symmetry.matrix_balance_error(lhs, rhs)
    assert e.shape == (runs,)
    assert bool((e >= 0).all()) and bool((e <= 2 + 1e-14).all())
    assert close(symmetry.matrix_balance_error(rhs, lhs), e, 1e-14)
    assert float(symmetry.matrix_balance_error(lhs, lhs).abs().max()) == 0.0
    r = linalg.random_orthogonal(h, g, runs=runs)
    rot = lambda m: r @ m @ r.transpose(-1, -2)
    assert close(symmetry.matrix_balance_error(rot(lhs), rot(rhs)), e, 1e-12)
    assert close(symmetry.matrix_balance_error(c * lhs, c * rhs), e, 1e-12)
    # opposite sides reach the bound 2
    assert close(symmetry.matrix_balance_error(lhs, -lhs), torch.full((runs,), 2.0), 1e-14)


@PROPS
@given(seed=seeds, runs=st.integers(1, 3), h=st.integers(1, 4), d=st.integers(1, 4), o=st.integers(1, 3),
       n=st.integers(1, 6), lr=st.floats(1e-3, 0.5))
def test_matrix_step_residual_vanishes_for_losses_of_uw(seed, runs, h, d, o, n, lr):
    """For any loss of K = U W (here a nonlinear one of a random batch) one GD step changes
    U^T U - W W^T by exactly lr^2 (gu^T gu - gw gw^T); matrix_charge is that charge."""
    g = gen(seed)
    w, u = randn(g, runs, h, d), randn(g, runs, o, h)
    x, y = randn(g, runs, n, d), randn(g, runs, n, o)
    wl, ul = w.clone().requires_grad_(True), u.clone().requires_grad_(True)
    f = x @ (ul @ wl).transpose(-1, -2)
    loss = (torch.tanh(f - y) ** 2).sum()
    gw, gu = torch.autograd.grad(loss, [wl, ul])
    res = symmetry.matrix_step_residual(w, u, w - lr * gw, u - lr * gu, gw, gu, lr)
    scale = 1 + float(w.abs().max() ** 2 + u.abs().max() ** 2) + lr ** 2 * float(gw.abs().max() ** 2 + gu.abs().max() ** 2)
    assert res.shape == (runs,)
    assert float(res.max()) <= 1e-12 * scale * max(d, o, h)
    assert close(symmetry.matrix_charge(w, u), u.transpose(-1, -2) @ u - w @ w.transpose(-1, -2), 1e-14)


@PROPS
@given(seed=seeds, runs=st.integers(1, 3), m=st.integers(1, 4), c=st.floats(-5.0, 5.0), s=st.floats(0.01, 100.0))
def test_relative_error_properties(seed, runs, m, c, s):
    """relative_error(c ref, ref) = |c - 1|; invariant under a common scale; zero on ref itself."""
    g = gen(seed)
    a, ref = randn(g, runs, m, m + 1), randn(g, runs, m, m + 1)
    assert float(symmetry.relative_error(ref, ref).abs().max()) == 0.0
    assert close(symmetry.relative_error(c * ref, ref), torch.full((runs,), abs(c - 1)), 1e-13)
    assert close(symmetry.relative_error(s * a, s * ref), symmetry.relative_error(a, ref), 1e-12)
    # triangle inequality through a third point
    b = randn(g, runs, m, m + 1)
    nr = torch.linalg.matrix_norm(ref)
    lhs = symmetry.relative_error(a, ref)
    rhs = symmetry.relative_error(b, ref) + torch.linalg.matrix_norm(a - b) / nr
    assert bool((lhs <= rhs + 1e-12).all())


@FEW
@given(seed=seeds, widths=st.lists(st.integers(1, 3), min_size=3, max_size=4), i=st.integers(0, 2),
       noise=st.booleans())
def test_linear_pair_moments_match_monte_carlo(seed, widths, i, noise):
    """E[G^T G], E[G G^T] against a Monte Carlo average of G = 2 P^T r (Q x)^T over 4e5 samples
    (G = dl/dK for K = W_{i+1} W_i). MC tolerance: 6% relative Frobenius error (the estimator's
    relative standard error is about 1-2% at this sample size for these dimensions)."""
    ws_sizes = widths
    i = i % (len(ws_sizes) - 2)
    g = gen(seed)
    ws = [randn(g, b, a) / math.sqrt(a) for a, b in zip(ws_sizes[:-1], ws_sizes[1:])]
    d, o = ws_sizes[0], ws_sizes[-1]
    v = randn(g, o, d)
    sx = linalg.random_spd(d, g, lo=0.5, hi=2.0)
    se = linalg.random_spd(o, g, lo=0.3, hi=1.5) if noise else None
    gtg, ggt = symmetry.linear_pair_moments(ws, i, v, sx, se)
    n = 400_000
    x = randn(g, n, d) @ linalg.sqrtm_psd(sx)
    k = ws[0]
    for w in ws[1:]:
        k = w @ k
    r = x @ (k - v).T
    if se is not None:
        r = r - randn(g, n, o) @ linalg.sqrtm_psd(se)
    q, p = around_pair(ws, i, d, o)
    a, b = r @ p, x @ q.T  # G_n = 2 a_n b_n^T (a: P^T r, b: Q x)
    mc_gtg = 4 * torch.einsum("n,ni,nj->ij", (a * a).sum(1), b, b) / n
    mc_ggt = 4 * torch.einsum("n,ni,nj->ij", (b * b).sum(1), a, a) / n
    assert float(symmetry.relative_error(mc_gtg, gtg)) < 0.06
    assert float(symmetry.relative_error(mc_ggt, ggt)) < 0.06
    # and the balance sides are PSD and of the documented shape
    lhs, rhs = symmetry.matrix_balance_sides(ws[i], ws[i + 1], gtg, ggt)
    assert lhs.shape == rhs.shape == (ws[i].shape[0],) * 2


@PROPS
@given(seed=seeds, widths=st.lists(st.integers(1, 3), min_size=3, max_size=4), i=st.integers(0, 2),
       bsz=st.integers(2, 8))
def test_linear_pair_moments_at_a_global_minimum(seed, widths, i, bsz):
    """At K = V*: E[G_B^T G_B] = 4 Tr(P P^T Se) Q Sx Q^T / B and E[G_B G_B^T] = 4 Tr(Q^T Q Sx) P^T Se P / B."""
    i = i % (len(widths) - 2)
    g = gen(seed)
    ws = [randn(g, b, a) for a, b in zip(widths[:-1], widths[1:])]
    d, o = widths[0], widths[-1]
    k = ws[0]
    for w in ws[1:]:
        k = w @ k
    sx, se = linalg.random_spd(d, g, lo=0.5, hi=2.0), linalg.random_spd(o, g, lo=0.3, hi=1.5)
    gtg, ggt = symmetry.linear_pair_moments(ws, i, k, sx, se, batch_size=bsz)
    q, p = around_pair(ws, i, d, o)
    ref_gtg = 4 * torch.trace(p @ p.T @ se) * q @ sx @ q.T / bsz
    ref_ggt = 4 * torch.trace(q.T @ q @ sx) * p.T @ se @ p / bsz
    assert close(gtg, ref_gtg, 1e-10) and close(ggt, ref_ggt, 1e-10)


# ---- sharpness --------------------------------------------------------------------------

def _pop_loss(v, sx):
    def loss(params):
        k = params[0]
        for w in params[1:]:
            k = w @ k
        r = k - v
        return (r @ sx * r).sum()
    return loss


@PROPS
@given(seed=seeds, widths=st.lists(st.integers(1, 3), min_size=3, max_size=4), use_sx=st.booleans())
def test_gauss_newton_matches_dense_hessian_at_a_global_minimum(seed, widths, use_sx):
    """At W_D...W_1 = V*, the population Hessian has the GN matrix's nonzero spectrum: the same
    top eigenvalue and the same trace (tr J^T M J = tr M J J^T)."""
    g = gen(seed)
    ws = [randn(g, b, a) for a, b in zip(widths[:-1], widths[1:])]
    d = widths[0]
    sx = linalg.random_spd(d, g, lo=0.3, hi=3.0) if use_sx else None
    k = ws[0]
    for w in ws[1:]:
        k = w @ k
    h = hessian.dense_hessian(_pop_loss(k, torch.eye(d, dtype=D) if sx is None else sx), tuple(ws))
    ev = torch.linalg.eigvalsh(h)
    batched = [w.unsqueeze(0) for w in ws]
    gn = sharpness.gauss_newton_matrix(batched, sx)[0]
    s = sharpness.gauss_newton_sharpness(batched, sx)
    big = 1 + float(ev.abs().max())
    assert close(s[0], ev[-1], 1e-10, big)
    assert close(torch.trace(gn), ev.sum(), 1e-10, big * len(ev))
    assert close(gn, gn.T, 1e-12, big)
    assert float(torch.linalg.eigvalsh(gn)[0]) >= -1e-10 * big
    # the two-layer closed form (Sigma_x = I) agrees with the matrix path
    if len(ws) == 2 and sx is None:
        assert close(s[0], torch.linalg.eigvalsh(gn)[-1], 1e-11, big)


@PROPS
@given(seed=seeds, r=st.floats(1e-3, 1e3), scale=st.floats(0.01, 100.0))
def test_entropic_sharpness_is_diagonal_noise_sharpness(seed, r, scale):
    """With V* = I_2, Sigma_x = I_2 and noise scale * R diag(1, r) R^T (any rotation R), the
    entropic sharpness is S(r): the loss is invariant under x -> Rx, y -> Ry."""
    rot = linalg.random_orthogonal(2, gen(seed))
    se = scale * rot @ torch.diag(torch.tensor([1.0, r], dtype=D)) @ rot.T
    se = (se + se.T) / 2
    eye = torch.eye(2, dtype=D)
    s = sharpness.entropic_sharpness(eye, se, eye)
    assert math.isclose(s, theory.diagonal_noise_sharpness(r), rel_tol=1e-8)


@PROPS
@given(lr=st.floats(1e-3, 0.499))
def test_edge_balance_solves_the_edge_equation(lr):
    """r = edge_balance(lr) lies in (0, 1] and S(r) = 2 / lr; above lr = 1/2 there is none (nan)."""
    r = float(sharpness.edge_balance(lr))
    assert 0 < r <= 1
    assert math.isclose(theory.diagonal_noise_sharpness(r), 2 / lr, rel_tol=1e-10)
    assert math.isnan(float(sharpness.edge_balance(lr + 0.5 + 1e-6)))
    both = sharpness.edge_balance(torch.tensor([lr, lr / 2], dtype=D))
    assert close(both[0], r, 1e-14) and float(both[1]) < r


# ---- entropic terms and forward-backward on random quadratics -----------------------------

def _quadratic(g, n, split):
    m = randn(g, n, n)
    a = (m + m.T) / 2
    b = randn(g, n)
    t0 = randn(g, n)

    def loss(p):
        t = torch.cat([q.reshape(-1) for q in p]) if isinstance(p, tuple) else p
        return 0.5 * t @ a @ t - b @ t

    params = (t0[:split].clone(), t0[split:].reshape(1, -1).clone()) if 0 < split < n else t0.clone()
    return a, b, t0, loss, params


def _flat(p):
    return flatten(p) if isinstance(p, tuple) else p


@PROPS
@given(seed=seeds, n=st.integers(1, 6), split=st.integers(0, 5), lr=st.floats(1e-3, 1.0), coef=st.floats(-1.0, 1.0))
def test_entropic_terms_on_quadratics(seed, n, split, lr, coef):
    """On L = t^T A t / 2 - b^T t: H grad L = A (A t - b), entropic force = -2 coef lr A (A t - b)."""
    a, b, t0, loss, params = _quadratic(gen(seed), n, split)
    ref = a @ (a @ t0 - b)
    big = 1 + float(a.abs().max()) ** 2 * (1 + float(t0.abs().max()) + float(b.abs().max())) * n
    hg = entropic.hessian_gradient_product(loss, params)
    assert type(hg) is type(params)
    assert close(_flat(hg), ref, 1e-12, big)
    f = entropic.entropic_force(loss, params, lr, coef=coef)
    assert close(_flat(f), -2 * coef * lr * ref, 1e-12, big)


@PROPS
@given(seed=seeds, n=st.integers(1, 6), split=st.integers(0, 5), lr=st.floats(1e-3, 1.0))
def test_forward_backward_on_quadratics(seed, n, split, lr):
    """On a quadratic the forward-backward displacement is exactly -lr^2 A (A t - b)."""
    a, b, t0, loss, params = _quadratic(gen(seed), n, split)
    out = dynamics.forward_backward(loss, params, lr)
    assert type(out) is type(params)
    big = 1 + float(a.abs().max()) ** 2 * (1 + float(t0.abs().max()) + float(b.abs().max())) * n * (1 + lr)
    assert close(_flat(out), -lr ** 2 * a @ (a @ t0 - b), 1e-12, big)


# ---- linear nets, MLPs, ensembles -------------------------------------------------------

@PROPS
@given(seed=seeds, widths=st.lists(st.integers(1, 4), min_size=2, max_size=5), runs=st.integers(1, 3),
       n=st.integers(1, 5), maps=st.booleans(), per_run_x=st.booleans())
def test_linear_forward_is_end_to_end(seed, widths, runs, n, maps, per_run_x):
    """forward(x) = x K^T with K = end_to_end; hidden[0] = embedded x; hidden[i] = hidden[i-1] W_i^T."""
    g = gen(seed)
    ws = linear.init_weights(widths, runs, g)
    d, o = widths[0], widths[-1]
    m_in = linalg.random_matrix(d, d, g, lo=0.5, hi=2.0) if maps else None
    z = linalg.random_matrix(d, d, g, lo=0.5, hi=2.0) if maps else None
    m_out = linalg.random_matrix(o, o, g, lo=0.5, hi=2.0) if maps else None
    x = randn(g, runs, n, d) if per_run_x else randn(g, n, d)
    k = linear.end_to_end(ws, m_in=m_in, m_out=m_out, z=z)
    assert k.shape == (runs, o, d)
    f = linear.forward(ws, x, m_in=m_in, m_out=m_out, z=z)
    assert close(f, x @ k.transpose(-1, -2), 1e-12, 1 + float(f.abs().max()))
    hs = linear.hidden(ws, x, m_in=m_in, z=z)
    assert len(hs) == len(ws) + 1
    emb = x if z is None else x @ (m_in @ z).T
    assert close(hs[0], emb.expand(runs, n, d), 1e-12)
    for h0, h1, w in zip(hs[:-1], hs[1:], ws):
        assert close(h1, h0 @ w.transpose(-1, -2), 1e-14)


@PROPS
@given(seed=seeds, widths=st.lists(st.integers(1, 4), min_size=2, max_size=4), runs=st.integers(1, 4),
       n=st.integers(1, 5), bias=st.booleans(), act=st.sampled_from(["relu", "tanh", "linear"]))
def test_mlp_batched_runs_equal_single_runs(seed, widths, runs, n, bias, act):
    """mse of the batch of runs equals, run by run, mse of run_params(params, r)."""
    g = gen(seed)
    params = mlp.init(widths, runs, g, bias=bias)
    if bias:  # non-zero biases so they matter
        params = [p + 0.3 * randn(g, *p.shape) if p.ndim == 2 else p for p in params]
    x, y = randn(g, runs, n, widths[0]), randn(g, runs, n, widths[-1])
    batched = mlp.mse(params, x, y, activation=act, bias=bias)
    assert batched.shape == (runs,)
    for r in range(runs):
        one = mlp.run_params(params, r)
        assert all(q.shape[0] == 1 for q in one)
        single = mlp.mse(one, x[r:r + 1], y[r:r + 1], activation=act, bias=bias)
        assert close(single[0], batched[r], 1e-13)
        f = mlp.forward(one, x[r], activation=act, bias=bias)
        assert close(((f[0] - y[r]) ** 2).sum(-1).mean(), batched[r], 1e-13)


@PROPS
@given(lr=st.floats(1e-6, 10.0), runs=st.integers(1, 6), seed=seeds)
def test_ensemble_learning_rates(lr, runs, seed):
    """A float is broadcast to every run; a per-run tensor is returned as an independent copy."""
    t = ensemble.learning_rates(lr, runs)
    assert t.shape == (runs,) and t.dtype == D and bool((t == lr).all())
    per = torch.rand(runs, generator=gen(seed), dtype=D) + 0.01
    u = ensemble.learning_rates(per, runs)
    assert torch.equal(u, per) and u.data_ptr() != per.data_ptr()
    with pytest.raises(ValueError):
        ensemble.learning_rates(-lr, runs)


# ---- stats, linalg, align ---------------------------------------------------------------

@PROPS
@given(p=st.floats(-3.0, 3.0), c=st.floats(1e-3, 1e3), xs=st.lists(st.floats(0.01, 100.0), min_size=2, max_size=8,
       unique=True))
def test_loglog_slope_is_exact_on_power_laws(p, c, xs):
    """y = c x^p gives slope p (least squares on exact data), whatever c."""
    x = np.array(xs)
    if np.ptp(np.log(x)) < 1e-3:
        return
    assert math.isclose(stats.loglog_slope(x, c * x ** p), p, rel_tol=0, abs_tol=1e-8)


@PROPS
@given(seed=seeds, n=st.integers(1, 6), m=st.integers(1, 6), runs=st.one_of(st.none(), st.integers(1, 3)),
       lo=st.floats(0.01, 10.0), ratio=st.floats(1.0, 100.0))
def test_random_matrices_have_their_spectra(seed, n, m, runs, lo, ratio):
    """random_orthogonal is orthogonal; random_matrix has singular values logspace(lo, hi);
    random_spd is symmetric with eigenvalues logspace(lo, hi)."""
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


@PROPS
@given(seed=seeds, runs=st.integers(1, 2), n=st.integers(4, 12), pa=st.lists(st.integers(1, 4), min_size=1, max_size=3),
       pb=st.lists(st.integers(1, 4), min_size=1, max_size=3))
def test_alignment_matrix_entries_are_pairwise_cka(seed, runs, n, pa, pb):
    """out[..., i, j] = linear_cka(a_i, b_j); with equal lists the matrix is symmetric with unit diagonal."""
    g = gen(seed)
    ra = [randn(g, runs, n, p) for p in pa]
    rb = [randn(g, runs, n, p) for p in pb]
    m = align.alignment_matrix(ra, rb)
    assert m.shape == (runs, len(ra), len(rb))
    for i, a in enumerate(ra):
        for j, b in enumerate(rb):
            assert close(m[..., i, j], align.linear_cka(a, b), 1e-14)
    s = align.alignment_matrix(ra, ra)
    assert close(s, s.transpose(-1, -2), 1e-13)
    assert close(s.diagonal(dim1=-2, dim2=-1), torch.ones(runs, len(ra)), 1e-12)
    assert bool((m >= -1e-12).all()) and bool((m <= 1 + 1e-12).all())


# ---- hessian ----------------------------------------------------------------------------

@PROPS
@given(seed=seeds, n=st.integers(1, 6), split=st.integers(0, 5), p=st.integers(1, 3))
def test_hvp_operator_on_quadratics(seed, n, split, p):
    """hvp(v) = A v for the quadratic t^T A t / 2 - b^T t at any point; blocks give A V."""
    g = gen(seed)
    a, b, t0, loss, params = _quadratic(g, n, split)
    hvp, size = hessian.hvp_operator(loss, params)
    assert size == n
    v = randn(g, n, p)
    big = 1 + float(a.abs().max()) * float(v.abs().max()) * n
    assert close(hvp(v), a @ v, 1e-12, big)
    assert close(hvp(v[:, 0]), a @ v[:, 0], 1e-12, big)


@PROPS
@given(seed=seeds, h=st.integers(1, 3), d=st.integers(1, 3))
def test_hvp_operator_matches_dense_hessian_off_quadratics(seed, h, d):
    """On a non-quadratic loss of two tensors, hvp(v) = H v with H from dense_hessian (symmetrised)."""
    g = gen(seed)
    w, u, x = randn(g, h, d), randn(g, 1, h), randn(g, 5, d)
    loss = lambda ps: (torch.tanh(x @ ps[0].T) @ ps[1].T).pow(2).sum()
    hvp, n = hessian.hvp_operator(loss, (w, u))
    hd = hessian.dense_hessian(loss, (w, u))
    v = randn(g, n)
    assert close(hvp(v), hd @ v, 1e-11, 1 + float(hd.abs().max()) * n)


@FEW
@given(seed=seeds, n=st.integers(2, 8), steps=st.integers(1, 3))
def test_sharpness_tracker_tracks_the_top_eigenvalue(seed, n, steps):
    """On the quadratics t^T A_k t / 2 with random symmetric A_k, each tracked value is lambda_max(A_k)."""
    g = gen(seed)
    tracker = hessian.SharpnessTracker(tol=1e-10, generator=gen(seed + 1))
    t = randn(g, n)
    for k in range(steps):
        m = randn(g, n, n)
        a = (m + m.T) / 2
        s = tracker.update(lambda p, a=a: 0.5 * p @ a @ p, t, step=k)
        top = float(torch.linalg.eigvalsh(a)[-1])
        scale = 1 + float(torch.linalg.eigvalsh(a).abs().max())
        assert abs(s - top) <= 1e-8 * scale
        assert tracker.history[-1]["step"] == k and math.isclose(tracker.history[-1]["values"][0], s)
    assert len(tracker.history) == steps
