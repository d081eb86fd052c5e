"""ntlib.linear.model: the teacher, sampling, initialisation, the forward maps and the population loss."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, strategies as st

from ntlib import linalg, linear
from ntlib.config import generator

from helpers import close, gen, random_teacher, randn, seeds


def setup(seed=0, runs=3):
    """A 3 -> 2 teacher and a [4, 5, 4] net behind a (4 x 3) input embedding, a per-run view and a (2 x 4) output map."""
    g = generator(seed)
    v = torch.randn(2, 3, generator=g)
    t = linear.teacher(v, torch.diag(torch.tensor([1.0, 2.0, 0.5])), torch.diag(torch.tensor([1.0, 0.3])))
    ws = linear.init_weights([4, 5, 4], runs, g)
    m_in, m_out = torch.randn(4, 3, generator=g), torch.randn(2, 4, generator=g)
    z = torch.randn(runs, 3, 3, generator=g) + 3 * torch.eye(3)
    return g, t, ws, dict(m_in=m_in, m_out=m_out, z=z)


def test_teacher_holds_the_covariances_and_their_roots():
    g = gen(1)
    t = random_teacher(g, 3, 2)
    assert isinstance(t, linear.Teacher) and (t.d_in, t.d_out) == (3, 2)
    assert close(t.sqrt_x @ t.sqrt_x, t.sigma_x, 1e-14) and close(t.sqrt_eps @ t.sqrt_eps, t.sigma_eps, 1e-14)
    i = linear.teacher(torch.ones(2, 3))
    assert torch.equal(i.sigma_x, torch.eye(3)) and torch.equal(i.sigma_eps, torch.eye(2))


def test_sample_moments_and_population_loss():
    """Monte Carlo over 2e5 samples: E[x x^T] = Sigma_x, E[eps eps^T] = Sigma_eps, E|f(x) - y|^2 = population_loss."""
    g, t, ws, emb = setup()
    x, y = linear.sample(t, (200_000,), g)
    assert torch.allclose(x.T @ x / len(x), t.sigma_x, atol=0.03)
    eps = y - x @ t.v_star.T
    assert torch.allclose(eps.T @ eps / len(x), t.sigma_eps, atol=0.03)
    mc = ((linear.forward(ws, x, **emb) - y) ** 2).sum(-1).mean(-1)
    assert torch.allclose(mc, linear.population_loss(ws, t, **emb), rtol=0.03)


@given(seed=seeds, widths=st.lists(st.integers(1, 4), min_size=2, max_size=4), runs=st.integers(1, 3),
       noise=st.booleans())
def test_population_loss_is_the_sum_over_the_columns_of_sigma_x_root(seed, widths, runs, noise):
    """Tr((K - V*) Sx (K - V*)^T) = sum_j |(K - V*) s_j|^2 over the columns s_j of Sx^{1/2}; plus Tr Se with noise."""
    g = gen(seed)
    t = random_teacher(g, widths[0], widths[-1])
    ws = linear.init_weights(widths, runs, g)
    r = linear.end_to_end(ws) - t.v_star
    ref = ((r @ t.sqrt_x) ** 2).sum((-1, -2)) + (torch.trace(t.sigma_eps) if noise else 0.0)
    assert close(linear.population_loss(ws, t, label_noise=noise), ref, 1e-12)


def test_sample_pairs_noise_draws_across_covariances_and_roots():
    t = linear.teacher(torch.eye(2))
    se = torch.stack([torch.eye(2), torch.diag(torch.tensor([1.0, 0.01]))])
    x1, y1 = linear.sample(t, (2, 5), generator(1), sigma_eps=se)
    x2, y2 = linear.sample(t, (2, 5), generator(1))
    assert torch.equal(x1, x2) and torch.allclose(y1[0], y2[0]) and torch.allclose(y1[1, :, 0], y2[1, :, 0])
    x3, y3 = linear.sample(t, (2, 5), generator(1), root=linear.noise_root(t, se))
    assert torch.equal(x3, x1) and torch.equal(y3, y1)
    x4, y4 = linear.sample(t, (2, 5), generator(1), label_noise=False)
    assert torch.equal(x4, x1) and torch.equal(y4, x4 @ t.v_star.T)


def test_noise_root_closed_form_per_run_and_validation():
    t = random_teacher(gen(2), 3, 2)
    assert torch.equal(linear.noise_root(t), t.sqrt_eps)
    se = torch.stack([linalg.random_spd(2, gen(3), lo=0.1, hi=3.0), torch.diag(torch.tensor([4.0, 9.0]))])
    roots = linear.noise_root(t, se)
    assert roots.shape == (2, 2, 2) and close(roots @ roots, se, 1e-13)
    assert close(roots[1], torch.diag(torch.tensor([2.0, 3.0])), 1e-15)
    with pytest.raises(ValueError, match=r"sigma_eps must be \(2, 2\) or \(runs, 2, 2\) for this teacher"):
        linear.noise_root(t, torch.eye(3))
    with pytest.raises(ValueError, match=r"sigma_eps\[1\] must be positive definite"):
        linear.sample(t, (2, 3), gen(0), sigma_eps=torch.stack([torch.eye(2), torch.zeros(2, 2)]))
    with pytest.raises(ValueError, match="sigma_eps must be symmetric"):
        linear.noise_root(t, torch.tensor([[1.0, 0.5], [0.0, 1.0]]))


def test_init_weights_draws_scaled_gaussians_in_layer_order():
    ws = linear.init_weights([3, 5, 2], 4, generator(0), scale=0.5)
    g = generator(0)
    assert torch.equal(ws[0], torch.randn(4, 5, 3, generator=g) * (0.5 / math.sqrt(3)))
    assert torch.equal(ws[1], torch.randn(4, 2, 5, generator=g) * (0.5 / math.sqrt(5)))
    assert linear.init_weights([3, 2], 1, generator(0), dtype=torch.float32)[0].dtype == torch.float32


def test_apply_map_shared_per_run_and_identity():
    g = gen(4)
    h, m, ms = randn(g, 3, 5, 2), randn(g, 4, 2), randn(g, 3, 4, 2)
    assert close(linear.apply_map(m, h), torch.einsum("ab,rnb->rna", m, h), 1e-14)
    assert close(linear.apply_map(ms, h), torch.einsum("rab,rnb->rna", ms, h), 1e-14)
    assert linear.apply_map(None, h) is h


@given(seed=seeds, widths=st.lists(st.integers(1, 4), min_size=2, max_size=5), runs=st.integers(1, 3),
       n=st.integers(1, 5), d=st.integers(1, 4), o=st.integers(1, 4), maps=st.booleans(), per_run=st.booleans())
def test_forward_is_x_times_the_end_to_end_map(seed, widths, runs, n, d, o, maps, per_run):
    """forward(x) = x K^T with K = end_to_end; hidden[0] = M_I Z x; hidden[i] = hidden[i-1] W_i^T.

    With ``maps`` the raw input has d features and the output o (non-square embeddings M_I, M_O, a view Z,
    shared or one per run); without, the net maps widths[0] -> widths[-1] directly.
    """
    g = gen(seed)
    ws = linear.init_weights(widths, runs, g)
    if maps:
        zr = (runs,) if per_run else ()
        z = linalg.random_matrix(d, d, g, lo=0.5, hi=2.0, runs=runs if per_run else None)
        m_in = linalg.random_matrix(widths[0], d, g, lo=0.5, hi=2.0)
        m_out = linalg.random_matrix(o, widths[-1], g, lo=0.5, hi=2.0)
        assert z.shape == (*zr, d, d)
    else:
        z = m_in = m_out = None
        d, o = widths[0], widths[-1]
    x = randn(g, runs, n, d) if per_run else randn(g, n, d)
    k = linear.end_to_end(ws, m_in=m_in, m_out=m_out, z=z)
    assert k.shape == (runs, o, d)
    f = linear.forward(ws, x, m_in=m_in, m_out=m_out, z=z)
    assert close(f, x @ k.transpose(-1, -2), 1e-12, 1 + float(f.abs().max()))
    hs = linear.hidden(ws, x, m_in=m_in, z=z)
    assert [h.shape for h in hs] == [(runs, n, w) for w in widths]
    emb = x if not maps else x @ z.transpose(-1, -2) @ m_in.T
    assert close(hs[0], emb.expand(runs, n, widths[0]), 1e-12)
    for h0, h1, w in zip(hs[:-1], hs[1:], ws):
        assert close(h1, h0 @ w.transpose(-1, -2), 1e-14)


@pytest.mark.parametrize("call,exc,msg", [
    (lambda g, t, ws: linear.teacher(torch.eye(2), torch.zeros(2, 2)), ValueError,
     "sigma_x must be positive definite"),
    (lambda g, t, ws: linear.teacher(torch.ones(2, 3), torch.eye(2)), ValueError, "sigma_x must be 3x3"),
    (lambda g, t, ws: linear.teacher(torch.ones(3)), ValueError, "v_star must have 2 dimension"),
    (lambda g, t, ws: linear.teacher(torch.eye(2), None, torch.tensor([[1.0, 0.5], [0.0, 1.0]])), ValueError,
     "sigma_eps must be symmetric"),
    (lambda g, t, ws: linear.sample("t", (2,), g), TypeError, "t must be a Teacher"),
    (lambda g, t, ws: linear.sample(t, (2,), 0), TypeError, "generator must be a torch.Generator"),
    (lambda g, t, ws: linear.init_weights([3], 1, g), ValueError, "widths must list at least 2"),
    (lambda g, t, ws: linear.init_weights([2, 2.5], 1, g), ValueError, "positive integer sizes"),
    (lambda g, t, ws: linear.init_weights([2, 2], 0, g), ValueError, "runs must be >= 1"),
    (lambda g, t, ws: linear.check_maps(m_out=torch.zeros(2, 2)), ValueError, "m_out must have full rank"),
    (lambda g, t, ws: linear.check_maps(z=torch.ones(3)), ValueError, r"z must be a matrix \(a, b\) or a stack"),
    (lambda g, t, ws: linear.hidden(ws, torch.ones(2, 3), m_in=torch.zeros(4, 3)), ValueError,
     "m_in must have full rank"),
    (lambda g, t, ws: linear.hidden(ws, [[1.0]]), TypeError, "x must be a torch.Tensor"),
    (lambda g, t, ws: linear.end_to_end([ws[0], ws[0]]), ValueError, r"weights\[0\].*do not chain"),
    (lambda g, t, ws: linear.end_to_end([ws[0][0]]), ValueError, r"weights\[0\] must have 3 dimension"),
    (lambda g, t, ws: linear.end_to_end([]), TypeError, "weights must be a non-empty list"),
    (lambda g, t, ws: linear.forward(ws, torch.ones(2, 3), m_out=torch.zeros(2, 4)), ValueError,
     "m_out must have full rank"),
    (lambda g, t, ws: linear.population_loss(ws, "teacher"), TypeError, "t must be a Teacher"),
])
def test_bad_input_names_the_argument(call, exc, msg):
    g, t, ws, _ = setup()
    with pytest.raises(exc, match=msg):
        call(g, t, ws)
