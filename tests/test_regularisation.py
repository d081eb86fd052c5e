"""ntlib.regularisation: the normalised linear predictor, its gradient, and SGD with weight decay on it."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, strategies as st

from ntlib import regularisation, theory
from ntlib.errors import DivergenceError

from helpers import examples, gen, randn, seeds


@given(seed=seeds, runs=st.integers(1, 3), batch=st.integers(1, 5), d=st.integers(2, 5))
@examples(15)
def test_gradient_matches_autograd_and_is_orthogonal_to_theta(seed, runs, batch, d):
    theta = randn(seed, runs, d).requires_grad_(True)
    v = torch.nn.functional.normalize(randn(seed + 1, d), dim=0)
    x, y = randn(seed + 2, runs, batch, d), randn(seed + 3, runs, batch)
    loss, g = regularisation.loss_and_grad(theta.detach(), v, x, y)
    u = theta / theta.norm(dim=-1, keepdim=True)
    ref = (((x @ u.unsqueeze(-1)).squeeze(-1) - y) ** 2).mean(1).sum()
    (g_ref,) = torch.autograd.grad(ref, theta)
    assert torch.allclose(loss, ref.detach()) and torch.allclose(g, g_ref, atol=1e-12)
    assert (g * theta.detach()).sum(-1).abs().max() < 1e-10 * (1 + float(g.abs().max()))
    # scale invariance: the gradient at c theta is the gradient at theta over c
    _, g2 = regularisation.loss_and_grad(3.0 * theta.detach(), v, x, y)
    assert torch.allclose(g2, g / 3.0, atol=1e-12)


def test_noise_power_is_the_mean_squared_scaled_gradient_at_the_minimum():
    """Monte Carlo of |theta|^2 |g_B|^2 at u = v against 4 sigma^2 (d - 1) / B."""
    d, sigma, batch, n = 4, 0.7, 3, 20000
    g = gen(1)
    v = torch.zeros(d, dtype=torch.float64); v[0] = 1
    theta = 2.5 * v.expand(n, d)
    x = torch.randn(n, batch, d, generator=g, dtype=torch.float64)
    y = x @ v + sigma * torch.randn(n, batch, generator=g, dtype=torch.float64)
    _, grad = regularisation.loss_and_grad(theta, v, x, y)
    mc = (2.5 ** 2 * (grad ** 2).sum(-1))
    want = regularisation.noise_power(d, sigma, batch)
    assert abs(float(mc.mean()) - want) < 4 * float(mc.std()) / math.sqrt(n)
    with pytest.raises(ValueError):
        regularisation.noise_power(1, 1.0)


def test_train_equilibrates_at_the_predicted_norm_and_grows_without_decay():
    d = 3
    v = torch.zeros(d, dtype=torch.float64); v[0] = 1
    runs = 6
    lr = torch.tensor([0.05] * 3 + [0.05] * 3, dtype=torch.float64)
    wd = torch.tensor([0.02] * 3 + [0.0] * 3, dtype=torch.float64)
    th0 = torch.ones(runs, d, dtype=torch.float64)
    run = regularisation.train(th0, v, lr=lr, weight_decay=wd, steps=6000, generator=gen(2), record_every=10,
                               recorder=lambda k, ps: ps[0].norm(dim=-1) ** 2 if k >= 2000 else None)
    n = run.stacked().mean(0)
    want = theory.equilibrium_norm(0.05, 0.02, regularisation.noise_power(d, 1.0, 1))
    assert ((n[:3] / want - 1).abs() < 0.1).all()
    free = run.params[0][3:].norm(dim=-1) ** 2
    grow = math.sqrt(9.0 + 2 * 0.05 ** 2 * regularisation.noise_power(d, 1.0, 1) * 6000)
    assert ((free / grow - 1).abs() < 0.15).all()
    assert torch.equal(th0, torch.ones(runs, d, dtype=torch.float64))  # input untouched


def test_train_validates_and_detects_divergence():
    v = torch.tensor([1.0, 0.0], dtype=torch.float64)
    th = torch.ones(2, 2, dtype=torch.float64)
    kw = dict(lr=0.1, weight_decay=0.0, steps=1, generator=gen(0))
    with pytest.raises(ValueError, match="unit norm"):
        regularisation.train(th, 2 * v, **kw)
    with pytest.raises(ValueError, match="non-zero"):
        regularisation.train(torch.zeros(2, 2, dtype=torch.float64), v, **kw)
    with pytest.raises(ValueError, match="weight_decay"):
        regularisation.train(th, v, lr=0.1, weight_decay=[0.1, -1.0], steps=1, generator=gen(0))
    with pytest.raises(ValueError, match="shape"):
        regularisation.train(th, torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64), **kw)
    with pytest.raises(DivergenceError):
        regularisation.train(th, v, lr=1e200, weight_decay=1e200, steps=5, generator=gen(0))
