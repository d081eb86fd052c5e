"""ntlib.diffusion: the Euler-Maruyama integrator and SGD's noise factor, against closed forms."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from ntlib import diffusion
from ntlib.config import generator
from ntlib.errors import DivergenceError
from ntlib.run import Run


def test_no_noise_is_the_explicit_euler_method():
    """With b = 0 the scheme is Euler's: x_n = (1 - h a)^n x_0 for dx = -a x dt."""
    x0 = torch.tensor([[1.0, -2.0], [0.5, 3.0]])
    run = diffusion.euler_maruyama(x0, lambda x: -0.7 * x, lambda x, dw: 0 * x, noise_dim=2, dt=0.1, steps=25,
                                   generator=generator(0))
    assert isinstance(run, Run) and run.records == []
    assert torch.allclose(run.params, (1 - 0.07) ** 25 * x0, rtol=1e-13, atol=0)


def test_ornstein_uhlenbeck_stationary_variance():
    """x' = (1 - h) x + sqrt(2 T h) z has the stationary variance 2 T / (2 - h) exactly (T as h -> 0)."""
    n, T, h = 20000, 0.3, 0.05
    run = diffusion.euler_maruyama(torch.zeros(n, 1), lambda x: -x, lambda x, dw: math.sqrt(2 * T) * dw,
                                   noise_dim=1, dt=h, steps=400, generator=generator(1))
    var = float(run.params.var())
    exact = 2 * T / (2 - h) * (1 - (1 - h) ** 800)
    assert abs(var / exact - 1) < 4 * math.sqrt(2 / n)                  # 4 standard errors of a variance
    assert abs(float(run.params.mean())) < 4 * math.sqrt(exact / n)


def test_rank_one_noise_has_the_factor_covariance():
    """One step from theta with b = F (d x m): the increments have covariance dt F F^T."""
    F = torch.tensor([[1.0], [2.0]])
    n, dt = 40000, 0.01
    x0 = torch.zeros(n, 2)
    run = diffusion.euler_maruyama(x0, lambda x: 0 * x, lambda x, dw: dw @ F.T, noise_dim=1, dt=dt, steps=1,
                                   generator=generator(2))
    cov = torch.cov(run.params.T) / dt
    assert torch.allclose(cov, F @ F.T, atol=4 * 4 * math.sqrt(2 / n))  # entries up to 4, relative SE sqrt(2/n)


def test_records_follow_the_run_convention():
    run = diffusion.euler_maruyama(torch.zeros(3, 1), lambda x: 0 * x, lambda x, dw: dw, noise_dim=1, dt=0.1,
                                   steps=10, generator=generator(3), record_every=4,
                                   recorder=lambda k, x: None if k == 4 else x.clone())
    assert run.steps == [0, 8, 10]
    assert torch.equal(run.records[-1], run.params) and torch.equal(run.records[0], torch.zeros(3, 1))


def test_same_generator_same_path_and_input_untouched():
    x0 = torch.ones(4, 2)
    kw = dict(noise_dim=2, dt=0.01, steps=50)
    a = diffusion.euler_maruyama(x0, lambda x: -x, lambda x, dw: dw, generator=generator(5), **kw).params
    b = diffusion.euler_maruyama(x0, lambda x: -x, lambda x, dw: dw, generator=generator(5), **kw).params
    assert torch.equal(a, b) and torch.equal(x0, torch.ones(4, 2))


def test_divergence_raises():
    with pytest.raises(DivergenceError):
        diffusion.euler_maruyama(torch.ones(2, 1), lambda x: x ** 3, lambda x, dw: 0 * x, noise_dim=1, dt=1.0,
                                 steps=50, generator=generator(0), check_every=5)


@pytest.mark.parametrize("n,bsz", [(3, 1), (4, 2), (3, 3)])
def test_minibatch_noise_factor_matches_batch_enumeration(n, bsz):
    """F F^T equals the covariance of the batch-mean gradient over all N^B ordered batches (with replacement)."""
    g = torch.randn(n, 2, generator=generator(n + bsz))
    F = diffusion.minibatch_noise_factor(g, bsz)
    means = torch.stack([g[list(idx)].mean(0) for idx in itertools.product(range(n), repeat=bsz)])
    centred = means - means.mean(0)
    assert F.shape == (2, n)
    assert torch.allclose(F @ F.T, centred.T @ centred / len(means), atol=1e-14)


@pytest.mark.parametrize("call,exc,msg", [
    (lambda: diffusion.euler_maruyama(torch.ones(2), lambda x: x, lambda x, dw: dw, noise_dim=1, dt=0.1, steps=1,
                                      generator=generator(0)), ValueError, "theta0 must have 2 dimension"),
    (lambda: diffusion.euler_maruyama(torch.ones(2, 1), lambda x: x[:, :0], lambda x, dw: dw, noise_dim=1, dt=0.1,
                                      steps=1, generator=generator(0)), ValueError, r"drift\(theta\) must return"),
    (lambda: diffusion.euler_maruyama(torch.ones(2, 2), lambda x: x, lambda x, dw: dw, noise_dim=1, dt=0.1, steps=1,
                                      generator=generator(0)), ValueError, r"diffusion\(theta, dW\) must return"),
    (lambda: diffusion.euler_maruyama(torch.ones(2, 1), lambda x: x, lambda x, dw: dw, noise_dim=1, dt=0.0, steps=1,
                                      generator=generator(0)), ValueError, "dt must be > 0"),
    (lambda: diffusion.euler_maruyama(torch.ones(2, 1), lambda x: x, lambda x, dw: dw, noise_dim=1, dt=0.1, steps=1,
                                      generator=generator(0), record_every=1), ValueError, "needs a recorder"),
    (lambda: diffusion.euler_maruyama(torch.ones(2, 1), lambda x: x, lambda x, dw: dw, noise_dim=1, dt=0.1, steps=1,
                                      generator=0), TypeError, "generator must be a torch.Generator"),
    (lambda: diffusion.minibatch_noise_factor(torch.ones(3), 1), ValueError, "sample_grads must have 2 dimension"),
    (lambda: diffusion.minibatch_noise_factor(torch.ones(3, 2), 0), ValueError, "batch_size must be >= 1"),
])
def test_bad_input_names_the_argument(call, exc, msg):
    with pytest.raises(exc, match=msg):
        call()
