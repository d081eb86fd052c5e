"""ntlib.linear against autograd, Monte Carlo and closed forms."""

import pytest
import torch

from ntlib import linear, theory
from ntlib.config import generator
from ntlib.dynamics import DivergenceError

torch.set_default_dtype(torch.float64)


def setup(seed=0, runs=3):
    g = generator(seed)
    V = torch.randn(2, 3, generator=g)
    Sx = torch.diag(torch.tensor([1.0, 2.0, 0.5]))
    t = linear.teacher(V, Sx, torch.diag(torch.tensor([1.0, 0.3])))
    ws = linear.init_weights([4, 5, 4], runs, g)
    m_in, m_out = torch.randn(4, 3, generator=g), torch.randn(2, 4, generator=g)
    z = torch.randn(runs, 3, 3, generator=g) + 3 * torch.eye(3)
    return g, t, ws, dict(m_in=m_in, m_out=m_out, z=z)


def test_manual_gradients_match_autograd():
    g, t, ws, emb = setup()
    x, y = linear.sample(t, (3, 6), g)
    pre = linear._apply(emb["m_in"], linear._apply(emb["z"], torch.eye(3).expand(3, -1, -1)))
    loss, grads = linear._loss_and_grads(ws, x, y, pre, emb["m_out"], 1 / 6)
    wr = [w.clone().requires_grad_(True) for w in ws]
    ref = ((linear.forward(wr, x, **emb) - y) ** 2).sum(-1).mean(-1).sum()
    assert torch.allclose(loss, ref)
    for a, b in zip(grads, torch.autograd.grad(ref, wr)):
        assert torch.allclose(a, b, atol=1e-12)


def test_gd_gradient_is_population_gradient():
    g, t, ws, emb = setup()
    wr = [w.clone().requires_grad_(True) for w in ws]
    ref = torch.autograd.grad(linear.population_loss(wr, t, **emb).sum(), wr)
    pre = linear._apply(emb["m_in"], linear._apply(emb["z"], torch.eye(3).expand(3, -1, -1)))
    x = t.sqrt_x.expand(3, -1, -1)
    _, grads = linear._loss_and_grads(ws, x, x @ t.v_star.T, pre, emb["m_out"], 1.0)
    for a, b in zip(grads, ref):
        assert torch.allclose(a, b, atol=1e-12)


def test_sample_moments_and_population_loss():
    g, t, ws, emb = setup()
    x, y = linear.sample(t, (200_000,), g)
    assert torch.allclose(x.T @ x / len(x), t.sigma_x, atol=0.03)
    eps = y - x @ t.v_star.T
    assert torch.allclose(eps.T @ eps / len(x), t.sigma_eps, atol=0.03)
    mc = ((linear.forward(ws, x, **emb) - y) ** 2).sum(-1).mean(-1)
    assert torch.allclose(mc, linear.population_loss(ws, t, **emb), rtol=0.03)


def test_end_to_end_matches_forward():
    g, t, ws, emb = setup()
    x = torch.randn(7, 3, generator=g)
    k = linear.end_to_end(ws, **emb)
    assert torch.allclose(linear.forward(ws, x, **emb), x @ k.transpose(-1, -2), atol=1e-12)
    hs = linear.hidden(ws, x, m_in=emb["m_in"], z=emb["z"])
    assert [h.shape[-1] for h in hs] == [4, 5, 4]


def test_paired_noise_draws():
    t = linear.teacher(torch.eye(2))
    se = torch.stack([torch.eye(2), torch.diag(torch.tensor([1.0, 0.01]))])
    x1, y1 = linear.sample(t, (2, 5), generator(1), sigma_eps=se)
    x2, y2 = linear.sample(t, (2, 5), generator(1))
    assert torch.equal(x1, x2) and torch.allclose(y1[0], y2[0]) and torch.allclose(y1[1, :, 0], y2[1, :, 0])


def test_sgd_reaches_two_layer_entropic_solution_and_gd_does_not():
    """Short version of Chapter 2's check: SGD ends near W^T W of the closed form, GD stays away."""
    g = generator(0)
    V = torch.eye(2) + 0.3 * torch.randn(2, 2, generator=g)
    t = linear.teacher(V, None, torch.diag(torch.tensor([1.0, 0.5])))
    w0 = linear.init_weights([2, 2, 2], 3, g)
    w0 = [2.0 * w0[0], 0.5 * w0[1]]  # imbalanced: GD conserves W W^T - U^T U and cannot balance
    wtw, _ = theory.two_layer_entropic_solution(t.sigma_x, t.sigma_eps, V)
    w, _ = linear.train(w0, t, lr=0.05, lr_end=0.005, steps=6000, generator=g)
    err = lambda W: torch.linalg.norm(W.transpose(-1, -2) @ W - wtw, dim=(-2, -1)) / torch.linalg.norm(wtw)
    assert err(w[0]).max() < 0.2
    wg, _ = linear.train(w0, t, lr=0.05, steps=3000, generator=g, method="gd")
    assert torch.allclose(linear.end_to_end(wg), V.expand(3, -1, -1), atol=1e-6)
    assert err(wg[0]).min() > 0.2


def test_recorder_and_adam_and_weight_decay():
    g, t, ws, emb = setup()
    w, h = linear.train(ws, t, lr=0.01, steps=20, generator=g, record_every=10, optimizer="adam",
                        adam={"betas": (0.9, 0.995), "eps": 1e-7}, weight_decay=1e-3,
                        recorder=lambda k, w: float(w[0].norm()), **emb)
    assert h.steps == [0, 10, 20] and len(h.records) == 3
    assert torch.equal(ws[0], setup()[2][0])  # input untouched


def test_divergence_is_reported():
    g, t, ws, emb = setup()
    with pytest.raises(DivergenceError, match="learning rate"):
        linear.train(ws, t, lr=5.0, steps=500, generator=g, **emb)


def test_bad_arguments():
    g, t, ws, _ = setup()
    with pytest.raises(ValueError, match="method"):
        linear.train(ws, t, lr=0.1, steps=1, generator=g, method="langevin")
    with pytest.raises(ValueError, match="per-run sigma_eps"):
        linear.train(ws, t, lr=0.1, steps=1, generator=g, sigma_eps=torch.eye(2).expand(5, -1, -1))
    with pytest.raises(ValueError, match="sigma_x must be positive definite"):
        linear.teacher(torch.eye(2), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="embedded input has"):
        linear.train(ws, t, lr=0.1, steps=1, generator=g)
    with pytest.raises(ValueError, match="widths"):
        linear.init_weights([3], 1, g)


def test_validation_of_maps_weights_and_generator():
    g, t, ws, emb = setup()
    with pytest.raises(ValueError, match="m_in must have full rank"):
        linear.hidden(ws, torch.ones(2, 3), m_in=torch.zeros(4, 3))
    with pytest.raises(ValueError, match=r"weights\[0\].*do not chain"):
        linear.end_to_end([ws[0], ws[0]])
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        linear.train(ws, t, lr=0.1, steps=1, generator=0, **emb)
    with pytest.raises(ValueError, match=r"sigma_eps\[1\] must be positive definite"):
        linear.sample(t, (2, 3), g, sigma_eps=torch.stack([torch.eye(2), torch.zeros(2, 2)]))
    with pytest.raises(ValueError, match="positive integer sizes"):
        linear.init_weights([2, 2.5], 1, g)
    with pytest.raises(TypeError, match="Teacher"):
        linear.population_loss(ws, "teacher", **emb)
