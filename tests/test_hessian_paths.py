"""New behaviour of ntlib.hessian (issue 14): the gradient start, product paths, the certificate.

To be folded into tests/test_hessian.py. Ground truth: dense Hessians (``dense_hessian`` +
``eigvalsh``) and closed forms; every returned pair is checked against the *true* residual
``|H y - theta y|`` computed with the dense Hessian.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ntlib import hessian as hs
from ntlib.errors import ConvergenceError
from ntlib.hvp import HVP, hvp_operator
from ntlib.modules import module_loss

D = torch.float64


@pytest.fixture(autouse=True)
def one_thread_float64():
    old_threads, old_dtype = torch.get_num_threads(), torch.get_default_dtype()
    torch.set_num_threads(1)
    torch.set_default_dtype(D)
    yield
    torch.set_num_threads(old_threads)
    torch.set_default_dtype(old_dtype)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def network(seed: int, act=torch.nn.Tanh, loss="ce", dtype=D, sizes=(4, 8, 6, 3), n_data=40):
    g = gen(seed)
    torch.manual_seed(seed)
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(act())
    net = torch.nn.Sequential(*layers).to(dtype)
    x = torch.randn(n_data, sizes[0], generator=g, dtype=D).to(dtype)
    if loss == "ce":
        y, crit = torch.randint(0, sizes[-1], (n_data,), generator=g), F.cross_entropy
    else:
        y, crit = torch.randn(n_data, sizes[-1], generator=g, dtype=D).to(dtype), F.mse_loss
    return module_loss(net, crit, x, y)


def dense_of(loss_fn, params):
    p64 = tuple(p.detach().double() for p in params)
    return hs.dense_hessian(lambda p: loss_fn(tuple(t.to(params[0].dtype) for t in p)).double(), p64)


def true_residuals(H, res):
    Y = res.vectors.double()
    return (H @ Y - Y * res.values.double()).norm(dim=0)


@pytest.mark.parametrize("start", ["gradient", "random"])
@pytest.mark.parametrize("seed,act,loss", [(0, torch.nn.Tanh, "ce"), (1, torch.nn.ReLU, "ce"), (2, torch.nn.Tanh, "mse")])
def test_both_starts_match_dense_eigvalsh(start, seed, act, loss):
    loss_fn, params = network(seed, act, loss)
    H = hs.dense_hessian(loss_fn, params)
    exact = torch.linalg.eigvalsh(H).flip(0)
    res = hs.top_eigenvalues(loss_fn, params, k=2, tol=1e-9, start=start, generator=gen(seed))
    assert res.converged
    assert torch.allclose(res.values, exact[:2], rtol=1e-7, atol=0)
    assert torch.allclose(true_residuals(H, res), res.residuals, atol=1e-10 * float(exact.abs().max()))


@pytest.mark.parametrize("dtype", [torch.float32, D])
@pytest.mark.parametrize("seed", range(4))
def test_every_returned_value_is_certified_at_tol(dtype, seed):
    """|H y - theta y| <= tol |theta| with the true (dense, float64) H, not only the solver's own residual."""
    tol = 1e-3
    loss_fn, params = network(10 + seed, torch.nn.ReLU if seed % 2 else torch.nn.Tanh, "ce" if seed < 2 else "mse",
                              dtype=dtype)
    H = dense_of(loss_fn, params)
    for k, block in ((1, 1), (3, 1), (2, 2)):
        res = hs.top_eigenvalues(loss_fn, params, k=k, block=block, tol=tol, generator=gen(seed))
        assert res.converged and res.values.dtype == dtype
        slack = 1e-5 if dtype == torch.float32 else 1e-12  # the product's own round-off
        bound = tol * res.values.double().abs() + slack * float(H.abs().max())
        assert bool((true_residuals(H, res) <= bound).all())
        exact = torch.linalg.eigvalsh(H).flip(0)
        # Bauer-Fike: each value is within its residual of an eigenvalue
        for v in res.values.double():
            assert float((exact - v).abs().min()) <= tol * abs(float(v)) + slack * float(H.abs().max())


def test_gradient_confined_to_a_symmetric_subspace_still_finds_the_top():
    """A gradient inside an invariant subspace that misses the top eigenvector: the random half finds it."""
    q, _ = torch.linalg.qr(torch.randn(30, 30, generator=gen(3), dtype=D))
    lam = torch.linspace(-1.0, 1.0, 30, dtype=D)
    lam[0] = 5.0  # top eigenvector q[:, 0]
    a = (q * lam) @ q.T
    b = q[:, 5] + 0.3 * q[:, 9]  # gradient at 0 is -b: no component along q[:, 0]
    loss = lambda w: 0.5 * w @ a @ w - b @ w  # noqa: E731
    w0 = torch.zeros(30, dtype=D)
    res = hs.top_eigenvalues(loss, w0, tol=1e-10, start="gradient", generator=gen(0))
    assert res.converged and float(res.values[0]) == pytest.approx(5.0, rel=1e-10)
    assert abs(float(res.vectors[:, 0] @ q[:, 0])) == pytest.approx(1.0, abs=1e-8)


def test_gradient_start_at_a_critical_point_is_random():
    lam = torch.tensor([3.0, 1.0, -2.0, 0.5], dtype=D)
    loss = lambda w: 0.5 * (lam * w * w).sum()  # noqa: E731  gradient 0 at w = 0
    a = hs.top_eigenvalues(loss, torch.zeros(4, dtype=D), tol=1e-10, generator=gen(1))
    b = hs.top_eigenvalues(loss, torch.zeros(4, dtype=D), tol=1e-10, start="random", generator=gen(1))
    assert float(a.values[0]) == pytest.approx(3.0) and torch.equal(a.values, b.values) and a.hvps == b.hvps


def test_gradient_start_needs_no_more_products_on_average():
    """The measured saving of the default start, on a few random networks (not a timing)."""
    grad_hvps, rand_hvps = [], []
    for seed in range(6):
        loss_fn, params = network(20 + seed, torch.nn.Tanh, "mse", sizes=(5, 12, 10, 4), n_data=60)
        for s in range(3):
            grad_hvps.append(hs.top_eigenvalues(loss_fn, params, tol=1e-3, generator=gen(s)).hvps)
            rand_hvps.append(hs.top_eigenvalues(loss_fn, params, tol=1e-3, start="random", generator=gen(s)).hvps)
    assert sum(grad_hvps) <= sum(rand_hvps), (grad_hvps, rand_hvps)


@pytest.mark.parametrize("mode,batched", [("reverse", True), ("forward", False), ("forward", True)])
def test_a_precomputed_operator_of_any_path_gives_the_same_values(mode, batched):
    loss_fn, params = network(4, torch.nn.Tanh, "ce")
    op, _ = hvp_operator(loss_fn, params, mode=mode, batched=batched)
    ref = hs.top_eigenvalues(loss_fn, params, k=3, block=3, tol=1e-10, generator=gen(5))
    res = hs.top_eigenvalues(loss_fn, params, k=3, block=3, tol=1e-10, generator=gen(5), hvp=op)
    assert torch.allclose(res.values, ref.values, rtol=1e-9)
    assert op.products == res.hvps


def test_a_plain_callable_operator_uses_a_random_start():
    lam = torch.tensor([4.0, 2.0, 1.0, -3.0], dtype=D)
    calls = []

    def hvp(v):
        calls.append(v.shape)
        return lam * v if v.ndim == 1 else lam[:, None] * v

    res = hs.top_eigenvalues(lambda w: 0.5 * (lam * w * w).sum(), torch.ones(4, dtype=D), k=2, tol=1e-12,
                             hvp=hvp, generator=gen(0))
    assert torch.allclose(res.values, torch.tensor([4.0, 2.0], dtype=D)) and len(calls) == res.hvps


def test_operator_and_start_validation():
    loss = lambda w: (w * w).sum()  # noqa: E731
    w = torch.ones(3, dtype=D)
    with pytest.raises(ValueError, match="start must be one of"):
        hs.top_eigenvalues(loss, w, start="gradient-only")
    with pytest.raises(TypeError, match="hvp must be callable"):
        hs.top_eigenvalues(loss, w, hvp=3)
    other, _ = hvp_operator(loss, torch.ones(4, dtype=D))
    with pytest.raises(ValueError, match="hvp acts on 4 parameters, params have 3"):
        hs.top_eigenvalues(loss, w, hvp=other)
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        hs.top_eigenvalues(loss, w, generator=3)
    with pytest.raises(ValueError, match="not finite"):
        hs.top_eigenvalues(loss, w, hvp=lambda v: v * float("nan"))


def test_unconverged_result_is_never_silent():
    lam = torch.linspace(0.0, 1.0, 400, dtype=D)
    loss = lambda w: 0.5 * (lam * w * w).sum()  # noqa: E731
    with pytest.raises(ConvergenceError, match="not certified") as info:
        hs.top_eigenvalues(loss, torch.ones(400, dtype=D), tol=1e-12, max_hvps=8)
    assert info.value.result.converged is False and info.value.result.hvps <= 8
    r = info.value.result
    assert bool((r.residuals > 1e-12 * r.values.abs()).any())


def test_hvp_class_is_what_hvp_operator_returns():
    op, n = hvp_operator(lambda w: (w ** 4).sum(), torch.ones(2, dtype=D))
    assert isinstance(op, HVP) and n == 2 and torch.equal(op(torch.ones(2, dtype=D)), torch.full((2,), 12.0, dtype=D))


def test_tracker_passes_the_start_option_on():
    tracker = hs.SharpnessTracker(tol=1e-10, start="random", generator=gen(0))
    lam = torch.tensor([2.0, 1.0, 0.5], dtype=D)
    assert tracker.update(lambda w: 0.5 * (lam * w * w).sum(), torch.ones(3, dtype=D)) == pytest.approx(2.0)
    assert tracker.options["start"] == "random"
