"""Bad input gets a clear error that names the argument (issue 6 audit of the core modules)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest
import torch

from ntlib import config, dynamics, entropic, grads, linalg, theory
from ntlib.book import explore

torch.set_default_dtype(torch.float64)
sq = lambda t: (t ** 2).sum()
ONE = torch.ones(2)


@pytest.mark.parametrize("call,exc,msg", [
    (lambda: grads.grad(3.0, ONE), TypeError, "loss_fn must be callable"),
    (lambda: grads.value_and_grad(sq, torch.ones(2, dtype=torch.int64)), TypeError, "params must have a floating"),
    (lambda: grads.per_sample_grads(None, ONE, torch.ones(3, 2)), TypeError, "sample_loss must be callable"),
    (lambda: grads.per_sample_grads(lambda w, x: x @ w, ONE, [1.0, 2.0]), TypeError, r"data\[0\] must be a torch.Tensor"),
    (lambda: grads.per_sample_grads(lambda w, x: x @ w, ONE, torch.tensor(1.0)), TypeError, r"data\[0\]"),
    (lambda: entropic.entropic_loss(sq, 0.1, coef=float("inf")), ValueError, "coef must be finite"),
    (lambda: entropic.entropic_loss(sq, -0.1), ValueError, "lr must be >= 0"),
    (lambda: entropic.sgd_entropic_terms(torch.ones(0, 2), torch.ones(0), 1), ValueError, "at least one sample"),
    (lambda: entropic.sgd_entropic_terms(torch.ones(3, 2), torch.ones(3), 4, replacement=False), ValueError, "batch_size=4"),
    (lambda: entropic.entropic_force(sq, ONE, 0.1, coef=float("nan")), ValueError, "coef must be finite"),
    (lambda: dynamics.gd("loss", ONE, 0.1, 3), TypeError, "loss_fn must be callable"),
    (lambda: dynamics.gd(sq, ONE, 0.0, 3), ValueError, "lr must be > 0"),
    (lambda: dynamics.gd(sq, ONE, 0.1, 2.5), TypeError, "steps must be an int"),
    (lambda: dynamics.sgd(None, ONE, 0.1, [], 1), TypeError, "batch_loss_fn must be callable"),
    (lambda: dynamics.sgd(lambda p, b: sq(p), ONE, 0.1, 5, 1), TypeError, "batches must be an iterable"),
    (lambda: dynamics.sgd(lambda p, b: sq(p), ONE, 0.1, [1], 1, full_loss_fn=2), TypeError, "full_loss_fn must be callable"),
    (lambda: dynamics.gradient_flow(sq, ONE, 1.0, rtol=0.0), ValueError, "rtol must be > 0"),
    (lambda: dynamics.gradient_flow(sq, ONE, 1.0, t_eval=[0.5, 2.0]), ValueError, "t_eval must be increasing"),
    (lambda: dynamics.gradient_flow(sq, ONE, 1.0, t_eval=[0.5, 0.1]), ValueError, "t_eval must be increasing"),
    (lambda: dynamics.forward_backward(sq, ONE, float("nan")), ValueError, "lr must be > 0"),
    (lambda: linalg.sym_pow(torch.tensor([[1.0, 0.5], [0.0, 1.0]]), 0.5), ValueError, "m must be symmetric"),
    (lambda: linalg.sym_pow(torch.eye(2), float("nan")), ValueError, "power must be finite"),
    (lambda: linalg.sqrtm_psd(torch.ones(2, 3), name="cov"), ValueError, "cov must be a square matrix"),
    (lambda: theory.universal_kernel(torch.eye(2), torch.eye(2), torch.ones(2, 2) * float("nan")), ValueError, "v_star contains NaN"),
    (lambda: theory.diagonal_noise_sharpness(float("inf")), ValueError, "r must be > 0"),
    (lambda: config.setup(seed_offset=1.5), TypeError, "seed_offset must be an int"),
    (lambda: config.seed_everything("1"), TypeError, "seed must be an int"),
    (lambda: config.generator(True), TypeError, "seed must be an int"),
    (lambda: explore.png_bytes("figure"), TypeError, "fig must be a Matplotlib figure"),
    (lambda: explore.figure_slider(None, [1, 2], description="a"), TypeError, "make_figure must be callable"),
])
def test_bad_input_names_the_argument(call, exc, msg):
    with pytest.raises(exc, match=msg):
        call()


def test_png_bytes_checks_dpi_and_closes_the_figure():
    fig, _ = plt.subplots(figsize=(1, 1))
    with pytest.raises(ValueError, match="dpi must be a positive int"):
        explore.png_bytes(fig, dpi=0)
    assert explore.png_bytes(fig, dpi=20)[:4] == b"\x89PNG"
    assert plt.get_fignums() == []


def test_divergence_error_instead_of_nan():
    with pytest.raises(dynamics.DivergenceError) as e:
        dynamics.sgd(lambda p, b: b * sq(p), ONE, 1.0, [1.0] * 10 + [float("nan")], 11)
    assert e.value.step == 10 and e.value.last_finite_loss is not None


def test_results_carry_their_documented_types():
    cfg = config.get_config()
    assert isinstance(cfg, config.Config) and cfg.pick(1, 2) in (1, 2)
    config.seed_everything(5)
    a = torch.rand(3)
    config.seed_everything(5)
    assert torch.equal(a, torch.rand(3))
    tr = dynamics.gd(sq, ONE, 0.1, 3)
    assert isinstance(tr, dynamics.Trajectory) and torch.equal(tr.final, tr.params[-1])
    terms = entropic.sgd_entropic_terms(torch.randn(4, 2), torch.rand(4), 2)
    assert isinstance(terms, entropic.EntropicTerms)
