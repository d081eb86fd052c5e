"""ntlib.toys: the scale-invariant regression and the rescaling toy of Chapter 2, each with its trainer."""

from __future__ import annotations

import math

import pytest
import torch

from ntlib import toys
from ntlib.config import generator
from ntlib.errors import DivergenceError
from ntlib.run import Run


def test_scale_invariant_grad_matches_autograd_and_is_orthogonal():
    g = generator(10)
    theta = torch.randn(3, 2, generator=g)
    x, y = torch.randn(3, 5, 2, generator=g), torch.randn(3, 5, generator=g)
    loss, grad = toys.scale_invariant_grad(theta, x, y)
    tr = theta.clone().requires_grad_(True)
    ref = torch.autograd.grad(toys.scale_invariant_grad(tr, x, y)[0].sum(), tr)[0]
    assert torch.allclose(grad, ref, atol=1e-12)
    n = theta / theta.norm(dim=-1, keepdim=True)
    assert torch.allclose(loss, (((x @ n.unsqueeze(-1)).squeeze(-1) - y) ** 2).mean(-1), atol=1e-14)
    assert float((grad * theta).sum(-1).abs().max()) < 1e-12
    assert torch.allclose(toys.scale_invariant_grad(5 * theta, x, y)[0], loss)
    assert torch.allclose(toys.scale_invariant_grad(5 * theta, x, y)[1], grad / 5, atol=1e-14)  # g ~ 1/|theta|


def test_scale_invariant_train_identity_and_gd():
    g = generator(11)
    th = torch.randn(4, 2, generator=g)
    v = torch.tensor([1.0, 0.0])
    run = toys.scale_invariant_train(th, v, lr=0.1, steps=50, batch_size=2, noise=0.5, generator=g, record_every=10)
    assert isinstance(run, Run) and run.info["identity_residual"] < 1e-12
    sq = run.stacked()
    assert sq.shape == (6, 4) and run.steps == [0, 10, 20, 30, 40, 50]
    assert torch.allclose(sq[0], (th * th).sum(-1), atol=0) and torch.allclose(sq[-1], (run.params ** 2).sum(-1))
    assert bool((sq.diff(dim=0) >= 0).all())                      # the norm never shrinks
    gd = toys.scale_invariant_train(th, v, lr=0.1, steps=2000, batch_size=1, noise=0.0, generator=g, method="gd")
    n = gd.params / gd.params.norm(dim=-1, keepdim=True)
    assert torch.allclose(n, v.expand(4, 2), atol=1e-6)           # GD aligns with the teacher
    assert gd.steps == list(range(2001)) and gd.info["identity_residual"] < 1e-12
    assert torch.equal(th, torch.randn(4, 2, generator=generator(11)))  # input untouched


def test_rescaling_toy_sgd_balances_and_gd_conserves():
    g = generator(12)
    rho0 = torch.linspace(-1.0, 1.0, 5)
    u0, w0 = torch.exp(rho0 / 2), torch.exp(-rho0 / 2)
    assert torch.allclose(toys.orbit_log_ratio(u0, w0), rho0)
    run = toys.rescaling_toy_train(u0, w0, target=1.0, noise=1.0, lr=0.05, steps=3000, generator=g)
    u, w = run.params
    assert isinstance(run, Run) and run.records == []
    assert float(toys.orbit_log_ratio(u, w).abs().max()) < 0.1
    u, w = toys.rescaling_toy_train(u0, w0, target=1.0, noise=1.0, lr=0.05, steps=500, generator=g,
                                    method="gd").params
    assert torch.allclose(u * u - w * w, u0 * u0 - w0 * w0, atol=1e-3)


def test_rescaling_toy_train_records_u_w():
    u0, w0 = torch.tensor([2.0, 1.0]), torch.tensor([0.5, 1.0])
    run = toys.rescaling_toy_train(u0, w0, target=1.0, noise=1.0, lr=0.05, steps=10, generator=generator(3),
                                   record_every=4)
    assert run.steps == [0, 4, 8, 10]
    assert torch.equal(run.records[0][0], u0) and torch.equal(run.records[-1][1], run.params[1])


def test_sgd_diffusion_contracts_the_charge_path_by_path():
    """prop-gibbs-orbit, part 3: C_t = C_0 exp(-4 lr noise^2 t / B) for every path (Ito), up to the scheme's error."""
    g = generator(21)
    rho0 = torch.linspace(-1.5, 1.5, 64)
    u0, w0 = torch.exp(rho0 / 2), torch.exp(-rho0 / 2)
    lr, noise, bsz, steps, sub = 0.02, 1.5, 2, 600, 10
    run = toys.rescaling_toy_diffusion(u0, w0, target=1.0, noise=noise, lr=lr, steps=steps, generator=g,
                                       batch_size=bsz, substeps=sub, record_every=300)
    assert run.steps == [0, 300, 600]
    u, w = run.params
    ratio = torch.log((u * u - w * w) / (u0 * u0 - w0 * w0)) / (-4 * lr ** 2 * noise ** 2 * steps / bsz)
    # Euler-Maruyama: the factor 1 - s^2 per step, per-run spread sqrt(2 h / t) = sqrt(2 * 0.002 / 12) ~ 0.018
    assert float((ratio - 1).abs().max()) < 0.1 and abs(float(ratio.mean()) - 1) < 0.02


def test_isotropic_diffusion_keeps_the_mean_charge_and_spreads():
    """Langevin dynamics: C is a martingale (the Ito terms cancel); the spread along the orbit grows."""
    g = generator(22)
    n = 2000
    u0, w0 = torch.ones(n), torch.ones(n)
    run = toys.rescaling_toy_diffusion(u0, w0, target=1.0, noise=1.5, lr=0.02, steps=400, generator=g,
                                       covariance="isotropic", temperature=0.09, substeps=5)
    u, w = run.params
    c = u * u - w * w
    assert abs(float(c.mean())) < 4 * float(c.std()) / n ** 0.5          # E C_t = C_0 = 0
    assert float(c.std()) > 1.0 and float(toys.orbit_log_ratio(u, w).std()) > 0.4


def test_diffusion_is_reproducible_and_needs_a_temperature():
    u0, w0 = torch.ones(3), torch.ones(3)
    kw = dict(target=1.0, noise=1.0, lr=0.01, steps=20, covariance="isotropic", temperature=0.1)
    a = toys.rescaling_toy_diffusion(u0, w0, generator=generator(0), **kw).params
    b = toys.rescaling_toy_diffusion(u0, w0, generator=generator(0), **kw).params
    c = toys.rescaling_toy_diffusion(u0, w0, generator=generator(1), **kw).params
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and not torch.equal(a[0], c[0])
    with pytest.raises(ValueError, match="temperature > 0"):
        toys.rescaling_toy_diffusion(u0, w0, target=1.0, noise=1.0, lr=0.05, steps=1, generator=generator(0),
                                     covariance="isotropic")
    with pytest.raises(ValueError, match="covariance must be"):
        toys.rescaling_toy_diffusion(u0, w0, target=1.0, noise=1.0, lr=0.05, steps=1, generator=generator(0),
                                     covariance="gibbs")


def test_orbit_log_ratio_and_matched_temperature_closed_forms():
    assert math.isclose(float(toys.orbit_log_ratio(torch.tensor([-2.0]), torch.tensor([0.5]))), math.log(4.0),
                        rel_tol=1e-15)
    assert math.isclose(toys.matched_temperature(0.1, 2.0, 4, 2.0), 0.1 * 4 * 2 / 4)


def test_divergence_raises():
    with pytest.raises(DivergenceError):
        toys.rescaling_toy_train(torch.tensor([30.0]), torch.tensor([30.0]), target=1.0, noise=0.0, lr=1.0,
                                 steps=200, generator=generator(13), method="gd")


@pytest.mark.parametrize("call,exc,msg", [
    (lambda: toys.scale_invariant_grad(torch.ones(3, 2), torch.ones(3, 5, 1), torch.ones(3, 5)), ValueError,
     r"x must be \(..., B, 2\)"),
    (lambda: toys.scale_invariant_train(torch.ones(2, 2), torch.ones(3), lr=0.1, steps=1, batch_size=1, noise=0.0,
                                        generator=generator(0)), ValueError, "v must have 2 entries"),
    (lambda: toys.scale_invariant_train(torch.ones(2), torch.ones(2), lr=0.1, steps=1, batch_size=1, noise=0.0,
                                        generator=generator(0)), ValueError, "theta0 must have 2 dimension"),
    (lambda: toys.scale_invariant_train(torch.ones(2, 2), torch.ones(2), lr=0.1, steps=1, batch_size=1, noise=0.0,
                                        generator=generator(0), method="adam"), ValueError, "method must be"),
    (lambda: toys.scale_invariant_train(torch.ones(2, 2), torch.ones(2), lr=0.1, steps=1, batch_size=1, noise=0.0,
                                        generator=generator(0), record_every=0), ValueError,
     "record_every must be >= 1"),
    (lambda: toys.rescaling_toy_train(torch.ones(2), torch.ones(3), target=1.0, noise=1.0, lr=0.1, steps=1,
                                      generator=generator(0)), ValueError, "must have the same shape"),
    (lambda: toys.rescaling_toy_train(torch.ones(2), torch.ones(2), target=1.0, noise=1.0, lr=0.1, steps=1,
                                      generator=generator(0), method="adam"), ValueError, "method must be"),
    (lambda: toys.rescaling_toy_train(torch.ones(2), torch.ones(2), target=1.0, noise=-1.0, lr=0.1, steps=1,
                                      generator=generator(0)), ValueError, "noise must be >= 0"),
    (lambda: toys.matched_temperature(0.1, 1.0, 0, 2.0), ValueError, "batch_size must be >= 1"),
    (lambda: toys.matched_temperature(0.1, 1.0, 1, 0.0), ValueError, "balanced_sq_norm must be > 0"),
])
def test_bad_input_names_the_argument(call, exc, msg):
    with pytest.raises(exc, match=msg):
        call()
