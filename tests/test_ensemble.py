"""ntlib.ensemble: many runs trained at once equal separate runs; schedules, Adam, weight decay, records.

Closed forms on L = |p|^2 / 2 (per-run and decayed learning rates, weight decay), Adam
against torch.optim.Adam, and the recording and divergence contract of the trainers.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, strategies as st

from ntlib import ensemble, mlp
from ntlib.config import generator
from ntlib.errors import DivergenceError

from helpers import D, gen, seeds


def half_sq(k, ps):
    """L = sum over runs of |p|^2 / 2: the gradient is p itself."""
    return 0.5 * sum((p * p).sum() for p in ps), [p.clone() for p in ps]


def data(seed=0):
    g = generator(seed)
    x = torch.randn(32, 3, generator=g)
    return x, torch.sin(x @ torch.tensor([[1.0], [-2.0], [0.5]]))


@given(lr=st.floats(1e-6, 10.0), runs=st.integers(1, 6), seed=seeds)
def test_learning_rates(lr, runs, seed):
    """A float is broadcast to every run; a per-run tensor is returned as an independent copy."""
    t = ensemble.learning_rates(lr, runs)
    assert t.shape == (runs,) and t.dtype == D and bool((t == lr).all())
    per = torch.rand(runs, generator=gen(seed), dtype=D) + 0.01
    u = ensemble.learning_rates(per, runs)
    assert torch.equal(u, per) and u.data_ptr() != per.data_ptr()
    with pytest.raises(ValueError, match="finite and > 0 for every run"):
        ensemble.learning_rates(-lr, runs)


def test_per_run_and_decayed_learning_rates_closed_form():
    """On |p|^2/2 each step multiplies p by (1 - eta_k), eta_k = lr (lr_end/lr)^(k/(steps-1)) per run."""
    p0 = [torch.tensor([[1.0, -2.0], [3.0, 0.5], [0.25, 4.0]])]
    lr, lr_end, steps = torch.tensor([0.1, 0.2, 0.05]), torch.tensor([0.01, 0.2, 0.001]), 7
    run = ensemble.train(half_sq, p0, lr=lr, lr_end=lr_end, steps=steps)
    factor = torch.ones(3)
    for k in range(steps):
        factor = factor * (1 - lr * (lr_end / lr) ** (k / (steps - 1)))
    assert torch.allclose(run.params[0], p0[0] * factor[:, None], rtol=1e-14, atol=0)
    assert torch.equal(p0[0], torch.tensor([[1.0, -2.0], [3.0, 0.5], [0.25, 4.0]]))  # input untouched


def test_weight_decay_closed_form():
    """With a zero loss, weight decay alone multiplies p by (1 - 2 wd lr) per step."""
    zero = lambda k, ps: (torch.zeros(()), [torch.zeros_like(p) for p in ps])
    p0 = [torch.ones(2, 3), 2 * torch.ones(2, 1)]
    run = ensemble.train(zero, p0, lr=0.1, steps=5, weight_decay=0.3)
    for p, q in zip(run.params, p0):
        assert torch.allclose(p, q * (1 - 2 * 0.3 * 0.1) ** 5, rtol=1e-14, atol=0)


@pytest.mark.parametrize("activation", ["relu", "tanh", "linear"])
def test_batched_runs_equal_separate_runs(activation):
    x, y = data()
    p = mlp.init([3, 8, 1], 3, generator(1))
    lrs = torch.tensor([0.01, 0.05, 0.1])
    out = mlp.train(p, lambda k: (x, y), lr=lrs, steps=25, activation=activation).params
    for r in range(3):
        single = mlp.train(list(mlp.run_params(p, r)), lambda k: (x, y), lr=float(lrs[r]), steps=25,
                           activation=activation).params
        for a, b in zip(out, single):
            assert torch.allclose(a[r], b[0], atol=1e-12)


def test_adam_matches_torch_optim():
    x, y = data()
    p = mlp.init([3, 5, 1], 1, generator(2), scale=1.5)
    out = mlp.train(p, lambda k: (x, y), lr=5e-3, steps=30, activation="tanh", optimizer="adam",
                    adam={"betas": (0.9, 0.995), "eps": 1e-7}).params
    ref = [q.clone().requires_grad_(True) for q in p]
    opt = torch.optim.Adam(ref, lr=5e-3, betas=(0.9, 0.995), eps=1e-7)
    for _ in range(30):
        opt.zero_grad()
        mlp.mse(ref, x, y, activation="tanh").sum().backward()
        opt.step()
    for a, b in zip(out, ref):
        assert torch.allclose(a, b.detach(), atol=1e-12)


def test_records_before_each_update_none_records_nothing_and_progress():
    """``recorder(step, params)`` every ``record_every`` steps (before the update) and after the last step."""
    p0 = [torch.tensor([[1.0], [2.0]])]
    run = ensemble.train(half_sq, p0, lr=0.5, steps=10, record_every=5, recorder=lambda k, ps: ps[0].clone())
    assert run.steps == [0, 5, 10]
    assert torch.equal(run.stacked(), torch.stack([p0[0] * 0.5 ** k for k in (0, 5, 10)]))
    seen = []
    odd = ensemble.train(half_sq, p0, lr=0.5, steps=6, record_every=1,
                         recorder=lambda k, ps: k if k % 2 else None, progress=seen.append)
    assert odd.steps == odd.records == [1, 3, 5] and seen == list(range(6))
    assert ensemble.train(half_sq, p0, lr=0.5, steps=3, recorder=lambda k, ps: k).records == []  # record_every=0


def test_divergence_is_reported_with_the_step_and_the_largest_learning_rate():
    nan_at = lambda j: (lambda k, ps: (torch.tensor(float("nan") if k == j else 1.0), [torch.zeros_like(ps[0])]))
    with pytest.raises(DivergenceError, match="step 2 with learning rate 0.4") as e:
        ensemble.train(nan_at(2), [torch.ones(2, 1)], lr=[0.1, 0.4], steps=5)
    assert e.value.last_finite_loss == 1.0
    grow = lambda k, ps: (torch.zeros(()), [-1e300 * torch.ones_like(ps[0])])  # finite loss, parameters overflow
    with pytest.raises(DivergenceError) as e:
        ensemble.train(grow, [torch.ones(2, 1)], lr=1e10, steps=3)
    assert e.value.step == 3


@pytest.mark.parametrize("call,exc,msg", [
    (lambda: ensemble.learning_rates([0.1, 0.2, 0.3], 2), ValueError, "one value per run"),
    (lambda: ensemble.learning_rates(float("inf"), 2), ValueError, "finite and > 0"),
    (lambda: ensemble.train(None, [torch.zeros(2, 1)], lr=0.1, steps=1), TypeError, "loss_and_grads must be callable"),
    (lambda: ensemble.train(half_sq, [], lr=0.1, steps=1), TypeError, "non-empty list"),
    (lambda: ensemble.train(half_sq, torch.zeros(2, 1), lr=0.1, steps=1), TypeError, "non-empty list"),
    (lambda: ensemble.train(half_sq, [torch.zeros(2, 1), torch.zeros(3, 1)], lr=0.1, steps=1), ValueError,
     "same leading runs dimension"),
    (lambda: ensemble.train(half_sq, [torch.zeros(2, 1)], lr=0.1, steps=1, optimizer="lbfgs"), ValueError,
     "optimizer must be 'sgd' or 'adam'"),
    (lambda: ensemble.train(half_sq, [torch.zeros(2, 1)], lr=0.1, steps=1.0), TypeError, "steps must be an int"),
    (lambda: ensemble.train(half_sq, [torch.zeros(2, 1)], lr=0.1, steps=1, weight_decay=-1.0), ValueError,
     "weight_decay must be >= 0"),
    (lambda: ensemble.train(half_sq, [torch.zeros(2, 1)], lr=0.1, steps=1, recorder=3), TypeError,
     "recorder must be callable"),
    (lambda: ensemble.train(half_sq, [torch.zeros(2, 1)], lr=0.1, steps=1, progress="bar"), TypeError,
     "progress must be callable"),
    (lambda: ensemble.train(half_sq, [torch.full((2, 1), float("nan"))], lr=0.1, steps=1), ValueError,
     r"params\[0\] contains NaN"),
    (lambda: ensemble.train(half_sq, [torch.zeros(2, 1)], lr=[0.1, 0.2], lr_end=[0.1], steps=1), ValueError,
     "one value per run"),
    (lambda: ensemble.autograd_loss_and_grads(None, lambda k: None), TypeError, "per_run_loss must be callable"),
    (lambda: ensemble.autograd_loss_and_grads(lambda p, b: p, 3), TypeError, "batches must be callable"),
])
def test_bad_input_names_the_argument(call, exc, msg):
    with pytest.raises(exc, match=msg):
        call()
