"""ntlib.linear.stability: SGD's second-moment edge against Monte Carlo per-sample curvatures and its limits."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given

from ntlib import linear
from ntlib.linear.stability import SGDEdge, sgd_edge

from helpers import chain, examples, gen, random_teacher, randn, seeds


def at_minimum(g, widths, t):
    """Random weights with W_D ... W_1 = V*: random W_1..W_{D-1}, the last layer solved (square widths)."""
    ws = [randn(g, b, a) + 2 * torch.eye(b, a) for a, b in zip(widths[:-2], widths[1:-1])]
    below = chain(ws) if ws else torch.eye(widths[0])
    ws.append(t.v_star @ torch.linalg.inv(below))
    return [w.unsqueeze(0) for w in ws]


def per_sample_curvature(ws, v, x, y):
    """v^T (Hessian of |W_D...W_1 x - y|^2) v by autograd."""
    shapes = [w.shape[1:] for w in ws]
    sizes = [s[0] * s[1] for s in shapes]

    def loss(flat):
        k = chain([p.view(s) for p, s in zip(torch.split(flat, sizes), shapes)])
        return ((k @ x - y) ** 2).sum()

    flat = torch.cat([w[0].reshape(-1) for w in ws])
    return v @ torch.autograd.functional.hvp(loss, flat, v)[1]


@pytest.mark.parametrize("widths", [[2, 2, 2], [2, 2, 2, 2]])
def test_variance_matches_monte_carlo(widths):
    """Var(c_1) of eq-sgd-edge against the sample variance of autograd curvatures (4 standard errors)."""
    g = gen(3)
    t = random_teacher(g, widths[0], widths[-1])
    ws = at_minimum(g, widths, t)
    e = sgd_edge(ws, t, 1)
    v = torch.linalg.eigh(linear.population_hessian(ws, t)[0]).eigenvectors[:, -1]
    n = 3000
    x, y = linear.sample(t, (n,), g)
    c = torch.stack([per_sample_curvature(ws, v, xi, yi) for xi, yi in zip(x, y)])
    se_mean = c.std() / math.sqrt(n)
    se_var = math.sqrt((((c - c.mean()) ** 4).mean() - c.var() ** 2).item() / n)
    assert abs(c.mean() - e.sharpness[0]) < 4 * se_mean
    assert abs(c.var() - e.variance[0]) < 4 * se_var


@examples(10)
@given(seed=seeds)
def test_edge_formula_and_limits(seed):
    """eta_c = 2a / (a^2 + Var/B), below GD's 2/a; B -> infinity gives 2/a; label noise only adds variance."""
    g = gen(seed)
    t = random_teacher(g, 2, 2)
    ws = at_minimum(g, [2, 2, 2], t)
    e = sgd_edge(ws, t, 4)
    a, var = e.sharpness, e.variance
    assert torch.allclose(e.lr, 2 * a / (a * a + var / 4), rtol=1e-12)
    assert bool((e.lr < 2 / a).all())
    assert torch.allclose(sgd_edge(ws, t, 10**12).lr, 2 / a, rtol=1e-9)
    assert bool((sgd_edge(ws, t, 4, label_noise=False).variance <= var + 1e-12).all())
    assert torch.allclose(a, linear.population_sharpness(ws, t), rtol=1e-10)


def test_one_layer_closed_form():
    """One layer, 1-d: c_1 = 2 x^2, a = 2 sx, Var = 8 sx^2, no label-noise term."""
    sx = torch.tensor([[1.7]])
    t = linear.teacher(torch.eye(1), sx, torch.tensor([[5.0]]))
    e = sgd_edge([torch.eye(1).expand(1, 1, 1)], t, 2)
    assert isinstance(e, SGDEdge) and e.lr.shape == (1,)
    assert math.isclose(e.sharpness.item(), 3.4, rel_tol=1e-12)
    assert math.isclose(e.variance.item(), 8 * 1.7 ** 2, rel_tol=1e-12)
    assert math.isclose(e.lr.item(), 2 * 3.4 / (3.4 ** 2 + 8 * 1.7 ** 2 / 2), rel_tol=1e-12)


def test_bad_input():
    t = linear.teacher(torch.eye(2))
    ws = [torch.eye(2).expand(1, 2, 2)] * 2
    with pytest.raises(ValueError, match="batch_size"):
        sgd_edge(ws, t, 0)
    with pytest.raises(TypeError, match="t must be a Teacher"):
        sgd_edge(ws, None, 4)
    with pytest.raises(TypeError, match="weights"):
        sgd_edge(torch.eye(2), t, 4)
