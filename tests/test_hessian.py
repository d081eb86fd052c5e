"""ntlib.hessian: certified top eigenvalues, Hessian-vector products and the tracker.

Against dense eigendecompositions, known spectra (random rotations of chosen
eigenvalues, also as hypothesis properties).
For ``torch.nn.Module`` models see tests/test_modules.py.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, strategies as st

from ntlib import hessian as hs
from ntlib.errors import ConvergenceError
from ntlib.params import flatten

from helpers import D, close, examples, gen, quadratic as random_quadratic, randn, seeds


def orthogonal(n: int, seed: int) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(n, n, generator=gen(seed), dtype=D))
    return q * torch.sign(torch.diagonal(r))


def quadratic(spectrum, seed: int = 0):
    """0.5 w^T A w with A = U diag(spectrum) U^T, U a random rotation."""
    lam = torch.as_tensor(spectrum, dtype=D)
    u = orthogonal(lam.numel(), seed)
    a = (u * lam) @ u.T
    a = 0.5 * (a + a.T)
    return (lambda w: 0.5 * w @ a @ w), torch.zeros(lam.numel(), dtype=D), a


def mlp(seed: int, sizes=(3, 6, 5, 2), n_data: int = 20, mse: str = "functional"):
    """A random tanh MLP with MSE on random data; params as a tuple of tensors."""
    g = gen(seed)
    params = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        params += [torch.randn(b, a, generator=g, dtype=D) / math.sqrt(a), 0.1 * torch.randn(b, generator=g, dtype=D)]
    x = torch.randn(n_data, sizes[0], generator=g, dtype=D)
    y = torch.randn(n_data, sizes[-1], generator=g, dtype=D)

    def loss_fn(p):
        h = x
        for i in range(0, len(p), 2):
            h = h @ p[i].T + p[i + 1]
            if i + 2 < len(p):
                h = torch.tanh(h)
        return F.mse_loss(h, y) if mse == "functional" else ((h - y) ** 2).mean()

    return loss_fn, tuple(params)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a - b).abs() / b.abs()).max())


# --- against dense ground truth ---------------------------------------------------------------

@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("mse", ["functional", "manual"])
def test_top_eigenvalues_match_dense_eigvalsh_on_random_networks(seed, mse):
    loss_fn, params = mlp(seed, mse=mse)
    H = hs.dense_hessian(loss_fn, params)
    exact = torch.linalg.eigvalsh(H).flip(0)
    res = hs.top_eigenvalues(loss_fn, params, k=3, tol=1e-10, generator=gen(seed))
    assert res.converged
    assert rel(res.values, exact[:3]) < 1e-6
    # eigenvectors: H y = lambda y, and the stated residuals are the true ones
    true_res = (H @ res.vectors - res.vectors * res.values).norm(dim=0)
    assert torch.allclose(true_res, res.residuals, atol=1e-9 * float(exact.abs().max()))
    assert torch.allclose(res.vectors.T @ res.vectors, torch.eye(3, dtype=D), atol=1e-10)


def test_dense_hessian_matches_autograd_functional_hessian():
    loss_fn, params = mlp(0)
    flat = flatten(params)
    shapes = [p.shape for p in params]

    def f(v):
        out, i = [], 0
        for s in shapes:
            out.append(v[i:i + s.numel()].reshape(s))
            i += s.numel()
        return loss_fn(tuple(out))

    ref = torch.autograd.functional.hessian(f, flat)
    assert torch.allclose(hs.dense_hessian(loss_fn, params), ref, atol=1e-12)


def test_mse_loss_mean_hvp_matches_manual_mse():
    """F.mse_loss(reduction='mean') has had broken second derivatives in some torch versions."""
    f1, p = mlp(1, mse="functional")
    f2, _ = mlp(1, mse="manual")
    v = torch.randn(sum(t.numel() for t in p), generator=gen(5), dtype=D)
    h1, _ = hs.hvp_operator(f1, p)
    h2, _ = hs.hvp_operator(f2, p)
    assert torch.allclose(h1(v), h2(v), atol=1e-12)


# --- quadratics with known spectra ------------------------------------------------------------

def test_largest_algebraic_not_largest_magnitude():
    loss_fn, w, _ = quadratic([-100.0, 5.0, 1.0, 0.5, -3.0, 2.0])
    res = hs.top_eigenvalues(loss_fn, w, k=2, tol=1e-10, generator=gen(0))
    assert torch.allclose(res.values, torch.tensor([5.0, 2.0], dtype=D), rtol=1e-9)


def test_near_degenerate_top_eigenvalues_are_resolved():
    spectrum = [10.0, 10.0 - 1e-6, 9.0] + torch.linspace(-1, 5, 40).tolist()
    loss_fn, w, _ = quadratic(spectrum, seed=3)
    res = hs.top_eigenvalues(loss_fn, w, k=3, tol=1e-11, generator=gen(1))
    assert torch.allclose(res.values, torch.tensor([10.0, 10.0 - 1e-6, 9.0], dtype=D), rtol=0, atol=1e-9)


def test_exact_multiplicity_needs_a_block():
    spectrum = [4.0, 4.0, 3.0] + torch.linspace(-1, 2, 30).tolist()
    loss_fn, w, _ = quadratic(spectrum, seed=4)
    res = hs.top_eigenvalues(loss_fn, w, k=3, block=3, tol=1e-10, generator=gen(2))
    assert torch.allclose(res.values, torch.tensor([4.0, 4.0, 3.0], dtype=D), atol=1e-9)


def test_tuple_params_and_eigenvector_container():
    loss_fn, w, a = quadratic([3.0, 1.0, 2.0, -1.0, 0.5])
    split = (w[:2].reshape(2, 1), w[2:])
    res = hs.top_eigenvalues(lambda p: loss_fn(torch.cat([p[0].reshape(-1), p[1]])), split, k=2, tol=1e-10)
    assert torch.allclose(res.values, torch.tensor([3.0, 2.0], dtype=D), rtol=1e-9)
    v = res.vector(0, split)
    assert isinstance(v, tuple) and v[0].shape == (2, 1) and v[1].shape == (3,)


def test_small_problem_uses_the_whole_space():
    loss_fn, w, _ = quadratic([2.0, 1.0, 1.0])
    res = hs.top_eigenvalues(loss_fn, w, k=3, tol=1e-12, generator=gen(0))
    assert res.converged and res.hvps <= 3
    assert torch.allclose(res.values, torch.tensor([2.0, 1.0, 1.0], dtype=D), atol=1e-12)


def test_warm_start_uses_fewer_hvps():
    spectrum = [10.0, 9.0, 8.5] + torch.linspace(-2, 8, 200).tolist()
    loss_fn, w, a = quadratic(spectrum, seed=5)
    cold = hs.top_eigenvalues(loss_fn, w, tol=1e-6, generator=gen(0))
    # a slightly perturbed problem, started from the previous top eigenvector
    b = a + 1e-3 * torch.diag(torch.linspace(0, 1, a.shape[0], dtype=D))
    warm = hs.top_eigenvalues(lambda v: 0.5 * v @ b @ v, w, tol=1e-6, v0=cold.vectors[:, 0], generator=gen(1))
    cold2 = hs.top_eigenvalues(lambda v: 0.5 * v @ b @ v, w, tol=1e-6, generator=gen(1))
    assert abs(float(warm.values[0] - cold2.values[0])) < 1e-5 * 10
    assert warm.hvps < cold2.hvps / 2, (warm.hvps, cold2.hvps)


# --- never silently unconverged ---------------------------------------------------------------

def test_unconverged_raises_and_non_strict_warns():
    spectrum = torch.linspace(0, 1, 500).tolist()  # no gap: slow convergence
    loss_fn, w, _ = quadratic(spectrum, seed=6)
    with pytest.raises(ConvergenceError, match="not certified") as info:
        hs.top_eigenvalues(loss_fn, w, tol=1e-12, max_hvps=10)
    assert info.value.result.converged is False and info.value.result.hvps <= 10
    with pytest.warns(RuntimeWarning, match="not certified"):
        res = hs.top_eigenvalues(loss_fn, w, tol=1e-12, max_hvps=10, strict=False)
    assert res.converged is False


# --- bad arguments ----------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, err, match", [
    ({"k": 0}, ValueError, "k must be >= 1"),
    ({"k": 9}, ValueError, "k must be <= the number of parameters"),
    ({"k": 1.5}, TypeError, "k must be an int"),
    ({"tol": 0.0}, ValueError, "tol must be > 0"),
    ({"tol": -1e-3}, ValueError, "tol must be > 0"),
    ({"max_hvps": 0}, ValueError, "max_hvps must be >= 1"),
    ({"v0": torch.ones(3, dtype=D)}, ValueError, "v0 must have 4 entries"),
    ({"v0": torch.zeros(4, dtype=D)}, ValueError, "v0 must be non-zero"),
])
def test_bad_arguments(kwargs, err, match):
    loss_fn, w, _ = quadratic([1.0, 2.0, 3.0, 4.0])
    with pytest.raises(err, match=match):
        hs.top_eigenvalues(loss_fn, w, **kwargs)


def test_non_scalar_loss_and_nan_params():
    with pytest.raises(ValueError, match="scalar"):
        hs.top_eigenvalues(lambda w: w * w, torch.ones(3, dtype=D))
    with pytest.raises(ValueError, match="NaN"):
        hs.top_eigenvalues(lambda w: (w * w).sum(), torch.tensor([1.0, float("nan")], dtype=D))
    with pytest.raises(ValueError, match="not finite"):
        hs.top_eigenvalues(lambda w: (w * w).sum() / 0.0, torch.ones(2, dtype=D))
    with pytest.raises(TypeError, match="loss_fn must be callable"):
        hs.top_eigenvalues(3, torch.ones(2, dtype=D))


# --- tracker ----------------------------------------------------------------------------------

def test_tracker_follows_a_changing_quadratic_with_few_hvps():
    spectrum = torch.tensor([10.0, 9.0, 8.0] + torch.linspace(-2, 7, 300).tolist(), dtype=D)
    u = orthogonal(spectrum.numel(), 7)
    tracker = hs.SharpnessTracker(tol=1e-3, generator=gen(0))
    w = torch.zeros(spectrum.numel(), dtype=D)
    for step in range(10):
        lam = spectrum * (1 + 0.01 * step)
        a = (u * lam) @ u.T
        s = tracker.update(lambda v: 0.5 * v @ a @ v, w, step=step)
        assert abs(s - float(lam[0])) <= 1e-3 * float(lam[0])
    hvps = [h["hvps"] for h in tracker.history]
    assert max(hvps[1:]) < hvps[0], hvps


# --- property tests: random symmetric matrices with known spectra as "models" ----------------

@examples(40)
@given(
    spectrum=st.lists(st.floats(-10, 10, allow_nan=False), min_size=2, max_size=25),
    k=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)
def test_property_top_k_of_known_spectrum(spectrum, k, seed):
    lam = torch.tensor(spectrum, dtype=D)
    k = min(k, lam.numel())
    loss_fn, w, _ = quadratic(spectrum, seed)
    top = lam.sort(descending=True).values[:k]
    scale = float(lam.abs().max()) + 1.0
    res = hs.top_eigenvalues(loss_fn, w, k=k, block=k, tol=1e-9, atol=1e-9 * scale, generator=gen(seed))
    assert res.converged
    assert bool((res.values[:-1] >= res.values[1:]).all())
    # Bauer-Fike: each value lies within its residual of an eigenvalue; here the top ones
    assert torch.allclose(res.values, top, rtol=0, atol=1e-7 * scale), (res.values, top)
    assert bool((res.residuals <= torch.clamp(1e-9 * res.values.abs(), min=1e-9 * scale) + 1e-15).all())


@pytest.mark.parametrize("block", [1, 2])
def test_thick_restart_converges_to_the_same_values(block):
    spectrum = [5.0, 4.9, 4.8] + torch.linspace(-4, 4.5, 300).tolist()
    loss_fn, w, _ = quadratic(spectrum, seed=8)
    res = hs.top_eigenvalues(loss_fn, w, k=3, block=block, tol=1e-9, max_basis=12, max_hvps=3000,
                             generator=gen(3))
    assert res.converged and res.hvps > 12  # restarted at least once
    assert torch.allclose(res.values, torch.tensor([5.0, 4.9, 4.8], dtype=D), atol=1e-8)


def test_tracker_rejects_managed_or_unknown_options():
    with pytest.raises(TypeError, match="v0"):
        hs.SharpnessTracker(v0=torch.ones(3, dtype=D))
    with pytest.raises(TypeError, match="max_hvp"):
        hs.SharpnessTracker(max_hvp=10)
    with pytest.raises(ValueError, match="mix"):
        hs.SharpnessTracker(mix=-1.0)
    tracker = hs.SharpnessTracker(k=2, max_hvps=50, block=2)
    loss_fn, w, _ = quadratic([3.0, 2.0, 1.0, 0.0])
    assert tracker.update(loss_fn, w) == pytest.approx(3.0, rel=1e-3)
    assert tracker.history[0]["step"] == 0 and len(tracker.history[0]["values"]) == 2


@given(seed=seeds, n=st.integers(1, 6), split=st.integers(0, 5), p=st.integers(1, 3))
def test_hvp_operator_on_quadratics(seed, n, split, p):
    """hvp(v) = A v for the quadratic t^T A t / 2 - b^T t at any point; blocks give A V."""
    g = gen(seed)
    a, b, t0, loss, params = random_quadratic(g, n, split)
    hvp, size = hs.hvp_operator(loss, params)
    assert size == n
    v = randn(g, n, p)
    big = 1 + float(a.abs().max()) * float(v.abs().max()) * n
    assert close(hvp(v), a @ v, 1e-12, big)
    assert close(hvp(v[:, 0]), a @ v[:, 0], 1e-12, big)


@given(seed=seeds, h=st.integers(1, 3), d=st.integers(1, 3))
def test_hvp_operator_matches_dense_hessian_off_quadratics(seed, h, d):
    """On a non-quadratic loss of two tensors, hvp(v) = H v with H from dense_hessian (symmetrised)."""
    g = gen(seed)
    w, u, x = randn(g, h, d), randn(g, 1, h), randn(g, 5, d)
    loss = lambda ps: (torch.tanh(x @ ps[0].T) @ ps[1].T).pow(2).sum()
    hvp, n = hs.hvp_operator(loss, (w, u))
    hd = hs.dense_hessian(loss, (w, u))
    v = randn(g, n)
    assert close(hvp(v), hd @ v, 1e-11, 1 + float(hd.abs().max()) * n)


def test_a_parameter_the_loss_ignores_has_zero_hessian_rows():
    a, b = torch.tensor([1.0, 2.0], dtype=D), torch.tensor([3.0], dtype=D)
    h = hs.dense_hessian(lambda p: (p[0] ** 3).sum() + 2.0 * p[1].sum(), (a, b))
    assert h.tolist() == [[6.0, 0.0, 0.0], [0.0, 12.0, 0.0], [0.0, 0.0, 0.0]]


@examples(8)
@given(seed=seeds, n=st.integers(2, 8), steps=st.integers(1, 3))
def test_sharpness_tracker_tracks_the_top_eigenvalue(seed, n, steps):
    """On the quadratics t^T A_k t / 2 with random symmetric A_k, each tracked value is lambda_max(A_k)."""
    g = gen(seed)
    tracker = hs.SharpnessTracker(tol=1e-10, generator=gen(seed + 1))
    t = randn(g, n)
    for k in range(steps):
        m = randn(g, n, n)
        a = (m + m.T) / 2
        s = tracker.update(lambda p, a=a: 0.5 * p @ a @ p, t, step=k)
        top = float(torch.linalg.eigvalsh(a)[-1])
        scale = 1 + float(torch.linalg.eigvalsh(a).abs().max())
        assert abs(s - top) <= 1e-8 * scale
        assert tracker.history[-1]["step"] == k and math.isclose(tracker.history[-1]["values"][0], s)
        assert tracker.last is not None and math.isclose(float(tracker.last.values[0]), s)
    assert len(tracker.history) == steps
