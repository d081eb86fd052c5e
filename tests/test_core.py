"""ntlib core against closed forms and finite differences (float64)."""

from __future__ import annotations

import math

import pytest
import torch

import ntlib
from ntlib import dynamics, entropic, grads
from ntlib._params import flatten, unflatten

torch.set_default_dtype(torch.float64)


def quad(A, b):
    return lambda t: 0.5 * t @ A @ t - b @ t


def spd_matrix(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(n, n, generator=g)
    return q @ q.T / n + torch.eye(n)


def tanh_net(p):
    W1, b1, w2 = p
    x = torch.linspace(-1, 1, 7).unsqueeze(1)
    y = torch.sin(3 * x).squeeze(1)
    return ((torch.tanh(x @ W1.T + b1) @ w2 - y) ** 2).mean()


def tanh_params(seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(4, 1, generator=g), torch.randn(4, generator=g), torch.randn(4, generator=g))


# ---- grads -----------------------------------------------------------------

def test_grad_quadratic_closed_form():
    A, b = spd_matrix(4), torch.arange(4.0)
    t = torch.randn(4)
    assert torch.allclose(grads.grad(quad(A, b), t), A @ t - b, atol=1e-12)


def test_grad_tuple_matches_finite_differences():
    p = tanh_params()
    g = flatten(grads.grad(tanh_net, p))
    v = flatten(p)
    h = 1e-6
    fd = torch.stack([(tanh_net(unflatten(v + h * e, p)) - tanh_net(unflatten(v - h * e, p))) / (2 * h) for e in torch.eye(v.numel())])
    assert torch.allclose(g, fd, atol=1e-8)


def test_grad_leaves_caller_state_alone():
    t = torch.randn(3, requires_grad=True)
    t.grad = torch.ones(3)
    grads.grad(lambda x: (x ** 2).sum(), t)
    assert torch.equal(t.grad, torch.ones(3))


def test_grad_rejects_non_scalar_and_nan():
    with pytest.raises(ValueError, match="scalar"):
        grads.grad(lambda x: x * 2, torch.ones(3))
    with pytest.raises(ValueError, match="params contains NaN"):
        grads.grad(lambda x: x.sum(), torch.tensor([1.0, float("nan")]))
    with pytest.raises(TypeError, match="params"):
        grads.grad(lambda x: x.sum(), [1.0, 2.0])


def test_per_sample_grads_linear_regression():
    g = torch.Generator().manual_seed(1)
    X, y, w = torch.randn(10, 3, generator=g), torch.randn(10, generator=g), torch.randn(3, generator=g)
    ps = grads.per_sample_grads(lambda w, x, yy: (x @ w - yy) ** 2, w, X, y)
    assert ps.shape == (10, 3)
    assert torch.allclose(ps, 2 * (X @ w - y).unsqueeze(1) * X, atol=1e-12)
    assert torch.allclose(ps.mean(0), grads.grad(lambda w: ((X @ w - y) ** 2).mean(), w), atol=1e-12)


def test_per_sample_grads_checks_sample_counts():
    with pytest.raises(ValueError, match=r"data\[1\] has 4 samples"):
        grads.per_sample_grads(lambda w, x, y: (x @ w - y) ** 2, torch.ones(2), torch.ones(5, 2), torch.ones(4))


# ---- entropic loss ---------------------------------------------------------

def test_entropic_loss_quadratic_closed_form():
    A, b = spd_matrix(3), torch.tensor([1.0, -1.0, 0.5])
    L = quad(A, b)
    t = torch.randn(3)
    F = entropic.entropic_loss(L, lr=0.3)
    r = A @ t - b
    assert math.isclose(F(t).item(), (L(t) + 0.3 / 4 * r @ r).item(), rel_tol=1e-12)
    # its gradient (double backprop) is (I + lr/2 A)(A t - b)
    gF = grads.grad(F, t)
    assert torch.allclose(gF, r + 0.3 / 2 * A @ r, atol=1e-12)


def test_entropic_loss_on_tuples_and_coef():
    p = tanh_params(2)
    g = flatten(grads.grad(tanh_net, p))
    for coef in (0.25, 0.5):
        F = entropic.entropic_loss(tanh_net, 0.1, coef=coef)
        assert math.isclose(F(p).item(), (tanh_net(p) + coef * 0.1 * g @ g).item(), rel_tol=1e-12)


def test_entropic_loss_validates():
    with pytest.raises(ValueError, match="lr"):
        entropic.entropic_loss(lambda t: t.sum(), lr=float("nan"))
    with pytest.raises(TypeError, match="loss_fn"):
        entropic.entropic_loss(3.0, lr=0.1)


def test_sgd_entropic_terms_match_enumeration():
    """E_B|grad l_B|^2 over all batches drawn with replacement equals |grad L|^2 + Tr Sigma / B."""
    import itertools
    g = torch.Generator().manual_seed(3)
    G = torch.randn(5, 3, generator=g)
    losses = torch.rand(5, generator=g)
    for B in (1, 2, 3):
        brute = torch.stack([G[list(idx)].mean(0).pow(2).sum() for idx in itertools.product(range(5), repeat=B)]).mean()
        t = entropic.sgd_entropic_terms(G, losses, B)
        assert math.isclose(t.expected_batch_grad_sq.item(), brute.item(), rel_tol=1e-12)
        brute_wo = torch.stack([G[list(idx)].mean(0).pow(2).sum() for idx in itertools.combinations(range(5), B)]).mean()
        t_wo = entropic.sgd_entropic_terms(G, losses, B, replacement=False)
        assert math.isclose(t_wo.expected_batch_grad_sq.item(), brute_wo.item(), rel_tol=1e-12)
    assert math.isclose(t.free_energy(0.2).item(), (losses.mean() + 0.05 * t.expected_batch_grad_sq).item())


def test_sgd_entropic_terms_validate():
    with pytest.raises(ValueError, match="losses has 3 entries"):
        entropic.sgd_entropic_terms(torch.ones(4, 2), torch.ones(3), 2)
    with pytest.raises(ValueError, match="batch_size"):
        entropic.sgd_entropic_terms(torch.ones(4, 2), torch.ones(4), 0)


# ---- dynamics --------------------------------------------------------------

def test_gd_harmonic_closed_form():
    tr = dynamics.gd(lambda t: 0.5 * (t ** 2).sum(), torch.tensor([2.0]), lr=0.1, steps=10, record_every=5)
    assert torch.allclose(tr.final, torch.tensor([2.0 * 0.9 ** 10]), atol=1e-14)
    assert tr.steps.tolist() == [0, 5, 10]
    assert math.isclose(tr.losses[-1].item(), 0.5 * (2 * 0.9 ** 10) ** 2, rel_tol=1e-12)


def test_gd_does_not_modify_input_and_handles_tuples():
    p = tanh_params()
    before = [t.clone() for t in p]
    tr = dynamics.gd(tanh_net, p, lr=0.05, steps=20)
    assert all(torch.equal(a, b) for a, b in zip(p, before))
    assert isinstance(tr.final, tuple) and tr.losses[-1] < tr.losses[0]


def test_gd_divergence_names_step_and_lr():
    with pytest.raises(dynamics.DivergenceError, match="learning rate 3") as e:
        dynamics.gd(lambda t: 0.5 * (t ** 2).sum(), torch.tensor([1.0]), lr=3.0, steps=5000)
    assert e.value.step > 0 and e.value.lr == 3.0 and e.value.last_finite_loss is not None


def test_sgd_uses_one_batch_per_step():
    data = [torch.tensor([1.0]), torch.tensor([3.0])] * 3
    tr = dynamics.sgd(lambda t, x: 0.5 * ((t - x) ** 2).sum(), torch.tensor([0.0]), 0.5, iter(data), steps=6)
    t = 0.0
    for x in data:
        t = t - 0.5 * (t - x.item())
    assert math.isclose(tr.final.item(), t, rel_tol=1e-12)
    with pytest.raises(ValueError, match="ran out"):
        dynamics.sgd(lambda t, x: ((t - x) ** 2).sum(), torch.tensor([0.0]), 0.1, iter(data), steps=7)


def test_gradient_flow_quadratic_matches_matrix_exponential():
    A, b = spd_matrix(4, 5), torch.tensor([1.0, 0.0, -1.0, 2.0])
    t0 = torch.randn(4)
    star = torch.linalg.solve(A, b)
    exact = star + torch.linalg.matrix_exp(-1.7 * A) @ (t0 - star)
    assert torch.allclose(dynamics.gradient_flow(quad(A, b), t0, 1.7), exact, atol=1e-11)
    path = dynamics.gradient_flow(quad(A, b), t0, 1.7, t_eval=[0.0, 1.7])
    assert torch.allclose(path[0], t0) and torch.allclose(path[1], exact, atol=1e-11)


def test_public_api():
    for name in ntlib.__all__:
        assert getattr(ntlib, name).__doc__, f"ntlib.{name} has no docstring"


# ---- irreversibility and the entropic force ----------------------------------

def test_forward_backward_harmonic_exact_and_quadratic_expansion():
    t = torch.tensor([1.5, -0.5])
    for eta in (0.3, 0.01):
        assert torch.allclose(dynamics.forward_backward(lambda p: 0.5 * (p ** 2).sum(), t, eta), -eta ** 2 * t, atol=1e-15)
    # on a quadratic both steps are linear: theta_2 - theta_0 = -eta^2 A (A t - b) exactly
    A, b = spd_matrix(2, 3), torch.tensor([0.3, -0.2])
    eta = 0.05
    assert torch.allclose(dynamics.forward_backward(quad(A, b), t, eta), -eta ** 2 * A @ (A @ t - b), atol=1e-14)


def test_hessian_gradient_product_and_force_on_quadratic():
    A, b = spd_matrix(3, 4), torch.tensor([1.0, 2.0, -1.0])
    t = torch.randn(3)
    r = A @ t - b
    assert torch.allclose(entropic.hessian_gradient_product(quad(A, b), t), A @ r, atol=1e-12)
    assert torch.allclose(entropic.entropic_force(quad(A, b), t, 0.2), -0.1 * A @ r, atol=1e-12)
    # the force is -(grad F - grad L)
    gF = grads.grad(entropic.entropic_loss(quad(A, b), 0.2), t)
    assert torch.allclose(entropic.entropic_force(quad(A, b), t, 0.2), -(gF - r), atol=1e-12)
    tup = entropic.entropic_force(tanh_net, tanh_params(), 0.1)
    assert isinstance(tup, tuple) and len(tup) == 3


def test_loglog_slope():
    from ntlib.stats import loglog_slope
    assert math.isclose(loglog_slope([1, 10, 100], [5, 0.5, 0.05]), -1.0)
    with pytest.raises(ValueError, match="> 0"):
        loglog_slope([1, 2], [0, 1])
    with pytest.raises(ValueError, match="equal length"):
        loglog_slope([1, 2, 3], [1, 2])
