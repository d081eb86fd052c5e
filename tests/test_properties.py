"""Property-based tests (hypothesis) of ntlib's core: identities that must hold for every input.

Each property is a defining equation or an exact identity (closed forms, enumeration,
round trips, finite differences), checked on random inputs drawn by hypothesis from
seeds, sizes and scales. Float64 throughout.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings, strategies as st

from ntlib import config, dynamics, entropic, grads, linalg, theory
from ntlib._params import flatten, sq_norm, unflatten

torch.set_default_dtype(torch.float64)

PROPS = settings(max_examples=25, deadline=None, derandomize=True)
seeds = st.integers(0, 2**31 - 1)


def rand_spd(n: int, seed: int, cond: float) -> torch.Tensor:
    """Random SPD matrix with eigenvalues log-spaced in [1, cond] and a random basis."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g))
    return q @ torch.diag(torch.logspace(0, math.log10(cond), n)) @ q.T


def randn(seed: int, *shape) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# ---- theory: closed forms satisfy their defining equations ------------------

@PROPS
@given(seed=seeds, d=st.integers(1, 5), o=st.integers(1, 4), cond_x=st.floats(1.0, 20.0),
       cond_e=st.floats(1.0, 10.0), scale=st.floats(0.1, 10.0))
def test_universal_kernel_solves_its_equation(seed, d, o, cond_x, cond_e, scale):
    """K* is the symmetric PSD solution of K Sx K = V*^T Se V*, and scales like sqrt(|Se|)."""
    sx, se = rand_spd(d, seed, cond_x), scale * rand_spd(o, seed + 1, cond_e)
    v = randn(seed + 2, o, d)
    k = theory.universal_kernel(sx, se, v)
    tol = 1e-8 * (1 + (v.T @ se @ v).abs().max())
    assert torch.allclose(k, k.T, atol=1e-10 * (1 + k.abs().max()))
    assert torch.linalg.eigvalsh(k).min() > -1e-8 * (1 + k.abs().max())
    assert torch.allclose(k @ sx @ k, v.T @ se @ v, atol=float(tol))
    assert torch.allclose(theory.universal_kernel(sx, 4.0 * se, v), 2.0 * k, atol=1e-8 * (1 + float(k.abs().max())))


@PROPS
@given(seed=seeds, d=st.integers(1, 5), o=st.integers(1, 4), cond_x=st.floats(1.0, 20.0),
       cond_e=st.floats(1.0, 10.0), scale_e=st.floats(0.1, 10.0))
def test_two_layer_solution_is_a_balanced_global_minimum(seed, d, o, cond_x, cond_e, scale_e):
    """Any factorisation with W^T W, U U^T as returned has U W = V* and satisfies the balance condition."""
    sx, se = rand_spd(d, seed, cond_x), scale_e * rand_spd(o, seed + 1, cond_e)
    v = randn(seed + 2, o, d)
    wtw, uut = theory.two_layer_entropic_solution(sx, se, v)
    w = linalg.sqrtm_psd(wtw)
    u = v @ torch.linalg.pinv(w, rtol=1e-8)
    big = 1 + float(v.abs().max())
    assert torch.allclose(u @ w, v, atol=1e-7 * big)
    assert torch.allclose(u @ u.T, uut, atol=1e-7 * (1 + float(uut.abs().max())))
    lhs = torch.trace(se) * w @ sx @ w.T
    rhs = torch.trace(sx) * u.T @ se @ u
    assert torch.allclose(lhs, rhs, atol=1e-7 * (1 + float(lhs.abs().max())))
    # only the shape of the noise matters
    wtw2, uut2 = theory.two_layer_entropic_solution(sx, 3.0 * se, v)
    assert torch.allclose(wtw2, wtw, atol=1e-8 * (1 + float(wtw.abs().max())))


@PROPS
@given(r=st.floats(1e-3, 1e3))
def test_diagonal_noise_sharpness_is_the_top_eigenvalue(r):
    """S(r) is the largest Hessian eigenvalue of |U W - I|_F^2 at the entropic minimum; S >= S(1) = 4.

    r > 1 included: there the closed form written for r <= 1 is wrong (it gave S(4) = 2.85 < 4
    while the dense Hessian gives 5.69 = S(1/4)), which this property caught.
    """
    i2 = torch.eye(2)
    wtw, _ = theory.two_layer_entropic_solution(i2, torch.diag(torch.tensor([1.0, r])), i2)
    w = linalg.sqrtm_psd(wtw)
    u = torch.linalg.inv(w)
    f = lambda p: ((p[:4].view(2, 2) @ p[4:].view(2, 2) - i2) ** 2).sum()
    h = torch.autograd.functional.hessian(f, torch.cat([u.reshape(-1), w.reshape(-1)]))
    s = theory.diagonal_noise_sharpness(r)
    assert math.isclose(float(torch.linalg.eigvalsh(h).max()), s, rel_tol=1e-9)
    assert s >= 4.0 - 1e-12


# ---- linalg ----------------------------------------------------------------

@PROPS
@given(seed=seeds, n=st.integers(1, 6), cond=st.floats(1.0, 100.0), a=st.floats(-2, 2), b=st.floats(-2, 2))
def test_sym_pow_is_a_group(seed, n, cond, a, b):
    """S^a S^b = S^(a+b) and (S^(1/2))^2 = S for SPD S."""
    s = rand_spd(n, seed, cond)
    lhs = linalg.sym_pow(s, a) @ linalg.sym_pow(s, b)
    rhs = linalg.sym_pow(s, a + b)
    assert torch.allclose(lhs, rhs, atol=1e-9 * float(rhs.abs().max()) * cond ** 2)
    r = linalg.sqrtm_psd(s)
    assert torch.allclose(r @ r, s, atol=1e-10 * cond)


# ---- entropic loss identities ----------------------------------------------

@PROPS
@given(seed=seeds, n=st.integers(1, 6), lr=st.floats(0.0, 1.0), coef=st.floats(0.0, 1.0))
def test_entropic_loss_of_a_quadratic(seed, n, lr, coef):
    """For L = t^T A t / 2 - b^T t: F = L + coef lr |A t - b|^2 and grad F = (I + 2 coef lr A)(A t - b)."""
    a, b, t = rand_spd(n, seed, 10.0), randn(seed + 1, n), randn(seed + 2, n)
    loss = lambda x: 0.5 * x @ a @ x - b @ x
    F = entropic.entropic_loss(loss, lr, coef=coef)
    r = a @ t - b
    assert math.isclose(float(F(t).detach()), float(loss(t) + coef * lr * r @ r), rel_tol=1e-12, abs_tol=1e-12)
    assert torch.allclose(grads.grad(F, t), r + 2 * coef * lr * a @ r, atol=1e-10 * (1 + float(r.abs().max())))


@PROPS
@given(seed=seeds, lr=st.floats(0.0, 1.0))
def test_entropic_loss_is_affine_in_lr_on_networks(seed, lr):
    """F_lr - L = lr (F_1 - L) = (lr/4) |grad L|^2 on a tuple-parameter tanh network."""
    g = torch.Generator().manual_seed(seed)
    p = (torch.randn(3, 2, generator=g), torch.randn(3, generator=g), torch.randn(3, generator=g))
    x, y = torch.randn(5, 2, generator=g), torch.randn(5, generator=g)
    loss = lambda q: ((torch.tanh(x @ q[0].T + q[1]) @ q[2] - y) ** 2).mean()
    gap = float((entropic.entropic_loss(loss, lr)(p) - loss(p)).detach())
    gap1 = float((entropic.entropic_loss(loss, 1.0)(p) - loss(p)).detach())
    assert math.isclose(gap, lr * gap1, rel_tol=1e-10, abs_tol=1e-14)
    assert math.isclose(gap1, 0.25 * float(sq_norm(grads.grad(loss, p))), rel_tol=1e-10, abs_tol=1e-14)


@PROPS
@given(seed=seeds, n=st.integers(1, 5), p=st.integers(1, 3), b=st.integers(1, 3))
def test_sgd_entropic_terms_match_enumeration(seed, n, p, b):
    """E_B|grad l_B|^2 equals the average over every batch, with and without replacement."""
    gs, losses = randn(seed, n, p), randn(seed + 1, n).abs()
    t = entropic.sgd_entropic_terms(gs, losses, b)
    brute = torch.stack([gs[list(i)].mean(0).pow(2).sum() for i in itertools.product(range(n), repeat=b)]).mean()
    assert math.isclose(float(t.expected_batch_grad_sq), float(brute), rel_tol=1e-10, abs_tol=1e-12)
    assert math.isclose(float(t.expected_batch_grad_sq), float(t.grad_sq + t.noise), rel_tol=1e-12, abs_tol=1e-14)
    assert float(t.trace_cov) >= 0 and math.isclose(float(t.loss), float(losses.mean()), rel_tol=1e-12)
    if b <= n:
        t_wo = entropic.sgd_entropic_terms(gs, losses, b, replacement=False)
        brute_wo = torch.stack([gs[list(i)].mean(0).pow(2).sum() for i in itertools.combinations(range(n), b)]).mean()
        assert math.isclose(float(t_wo.expected_batch_grad_sq), float(brute_wo), rel_tol=1e-10, abs_tol=1e-12)


# ---- params round trip, gradients -------------------------------------------

shapes = st.lists(st.lists(st.integers(1, 4), min_size=0, max_size=3), min_size=1, max_size=4)


@PROPS
@given(seed=seeds, shp=shapes, as_tensor=st.booleans())
def test_flatten_unflatten_round_trip(seed, shp, as_tensor):
    g = torch.Generator().manual_seed(seed)
    items = [torch.randn(tuple(s), generator=g) for s in shp]
    p = items[0] if as_tensor else tuple(items)
    v = flatten(p)
    assert v.numel() == sum(t.numel() for t in (items[:1] if as_tensor else items))
    back = unflatten(v, p)
    if as_tensor:
        assert torch.equal(back, p)
    else:
        assert isinstance(back, tuple) and all(torch.equal(a, b) for a, b in zip(back, p))
    assert torch.equal(flatten(back), v)
    with pytest.raises(ValueError, match="entries"):
        unflatten(torch.cat([v, v[:1]]), p)


@PROPS
@given(seed=seeds, width=st.integers(1, 4), n=st.integers(1, 6))
def test_grad_matches_central_differences(seed, width, n):
    g = torch.Generator().manual_seed(seed)
    p = (torch.randn(width, 2, generator=g), torch.randn(width, generator=g), torch.randn(width, generator=g))
    x, y = torch.randn(n, 2, generator=g), torch.randn(n, generator=g)
    loss = lambda q: ((torch.tanh(x @ q[0].T + q[1]) @ q[2] - y) ** 2).mean()
    value, gr = grads.value_and_grad(loss, p)
    assert float(value) == float(loss(p))
    v, h = flatten(p), 1e-6
    fd = torch.stack([(loss(unflatten(v + h * e, p)) - loss(unflatten(v - h * e, p))) / (2 * h)
                      for e in torch.eye(v.numel())])
    assert torch.allclose(flatten(gr), fd, atol=1e-7 * (1 + float(fd.abs().max())))


@settings(max_examples=10, deadline=None, derandomize=True)
@given(seed=seeds, n=st.integers(1, 8), d=st.integers(1, 4))
def test_per_sample_grads_average_to_the_full_gradient(seed, n, d):
    g = torch.Generator().manual_seed(seed)
    x, y, w = torch.randn(n, d, generator=g), torch.randn(n, generator=g), torch.randn(d, generator=g)
    ps = grads.per_sample_grads(lambda w_, xi, yi: torch.sin(xi @ w_ - yi) ** 2, w, x, y)
    full = grads.grad(lambda w_: (torch.sin(x @ w_ - y) ** 2).mean(), w)
    assert ps.shape == (n, d)
    assert torch.allclose(ps.mean(0), full, atol=1e-12)


# ---- dynamics --------------------------------------------------------------

@PROPS
@given(seed=seeds, n=st.integers(1, 5), frac=st.floats(0.05, 0.95), steps=st.integers(0, 30))
def test_gd_on_a_quadratic_is_a_matrix_power(seed, n, frac, steps):
    """GD on t^T A t / 2 with lr < 2/lambda_max gives (I - lr A)^k t0, and the loss record matches."""
    a, t0 = rand_spd(n, seed, 10.0), randn(seed + 1, n)
    lr = frac * 2.0 / float(torch.linalg.eigvalsh(a).max())
    tr = dynamics.gd(lambda t: 0.5 * t @ a @ t, t0, lr, steps)
    exact = torch.linalg.matrix_power(torch.eye(n) - lr * a, steps) @ t0
    assert torch.allclose(tr.final, exact, atol=1e-10)
    assert len(tr.params) == len(tr.losses) == steps + 1
    assert math.isclose(float(tr.losses[-1]), float(0.5 * exact @ a @ exact), rel_tol=1e-8, abs_tol=1e-14)


@settings(max_examples=10, deadline=None, derandomize=True)
@given(seed=seeds, n=st.integers(1, 4), t=st.floats(0.0, 2.0))
def test_gradient_flow_on_a_quadratic_is_a_matrix_exponential(seed, n, t):
    a, t0 = rand_spd(n, seed, 5.0), randn(seed + 1, n)
    out = dynamics.gradient_flow(lambda x: 0.5 * x @ a @ x, t0, t)
    assert torch.allclose(out, torch.linalg.matrix_exp(-t * a) @ t0, atol=1e-10)


@settings(max_examples=10, deadline=None, derandomize=True)
@given(lr=st.floats(2.5, 10.0))
def test_gd_beyond_the_stability_edge_raises_divergence(lr):
    with pytest.raises(dynamics.DivergenceError) as e:
        dynamics.gd(lambda t: 0.5 * (t ** 2).sum(), torch.ones(2), lr, 5000)
    assert e.value.lr == lr and e.value.step > 0 and math.isfinite(e.value.last_finite_loss)


# ---- config ----------------------------------------------------------------

@PROPS
@given(seed=st.integers(0, 2**40))
def test_generator_is_a_function_of_the_seed(seed):
    a = torch.randn(4, generator=config.generator(seed))
    assert torch.equal(a, torch.randn(4, generator=config.generator(seed)))
    assert not torch.equal(a, torch.randn(4, generator=config.generator(seed + 1)))


# ---- batched deep linear networks: explicit backprop vs autograd -------------

@settings(max_examples=15, deadline=None, derandomize=True)
@given(seed=seeds, widths=st.lists(st.integers(1, 5), min_size=2, max_size=5), runs=st.integers(1, 4),
       batch=st.integers(1, 6))
def test_linear_explicit_backprop_matches_autograd(seed, widths, runs, batch):
    """One step of ntlib.linear.train equals one step of ensemble.train driven by autograd gradients."""
    from ntlib import ensemble, linear

    g = config.generator(seed)
    t = linear.teacher(randn(seed, widths[-1], widths[0]))
    assert isinstance(t, linear.Teacher)
    w0 = linear.init_weights(widths, runs, g)
    x, y = linear.sample(t, (runs, batch), config.generator(seed + 1))
    per_run = lambda ws, b: ((linear.forward(ws, b[0]) - b[1]) ** 2).sum((-1, -2)) / batch
    auto, hist = ensemble.train(ensemble.autograd_loss_and_grads(per_run, lambda k: (x, y)), w0, lr=0.01, steps=1)
    assert isinstance(hist, ensemble.History) and hist.steps == []
    explicit, _ = linear.train(w0, t, lr=0.01, steps=1, generator=config.generator(seed + 1), batch_size=batch)
    for a, b in zip(auto, explicit):
        assert torch.allclose(a, b, atol=1e-12)


# ---- sharpness of deep linear networks: three routes to the same Hessian -----

@settings(max_examples=8, deadline=None, derandomize=True)
@given(seed=seeds, widths=st.lists(st.integers(1, 3), min_size=2, max_size=4), runs=st.integers(1, 3))
def test_population_hessian_matches_dense_hessian_and_lanczos(seed, widths, runs):
    """sharpness.population_hessian = hessian.dense_hessian of linear.population_loss; Lanczos finds its top."""
    hessian = pytest.importorskip("ntlib.hessian")
    sharpness = pytest.importorskip("ntlib.sharpness")
    from ntlib import linear

    t = linear.teacher(randn(seed, widths[-1], widths[0]), sigma_x=rand_spd(widths[0], seed + 1, 3.0))
    ws = linear.init_weights(widths, runs, config.generator(seed + 2))
    h = sharpness.population_hessian(ws, t)
    top = sharpness.population_sharpness(ws, t)
    for r in range(runs):
        loss = lambda p: linear.population_loss(list(p), t, label_noise=False).sum()
        params = tuple(w[r:r + 1] for w in ws)
        dense = hessian.dense_hessian(loss, params)
        assert torch.allclose(h[r], dense, atol=1e-10 * (1 + float(dense.abs().max())))
        res = hessian.top_eigenvalues(loss, params, k=1, tol=1e-10, atol=1e-12, generator=config.generator(seed))
        assert isinstance(res, hessian.Eigen) and res.converged
        lam = float(torch.linalg.eigvalsh(dense).max())
        assert math.isclose(float(res.values[0]), lam, rel_tol=1e-8, abs_tol=1e-10)
        assert math.isclose(float(top[r]), lam, rel_tol=1e-8, abs_tol=1e-10)
