"""ntlib.dynamics: gradient descent, SGD, gradient flow and the forward-backward step.

Closed forms on quadratics (matrix powers, matrix exponentials), divergence reported
instead of NaN, and bit-identical results for the same seed.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, strategies as st

from ntlib import config, dynamics
from ntlib.errors import DivergenceError
from ntlib.params import flatten
from ntlib.run import Run

from helpers import close, examples, flat, gen, quadratic, rand_spd, randn, seeds, tanh_net

sq = lambda t: (t ** 2).sum()


@given(seed=seeds, n=st.integers(1, 5), frac=st.floats(0.05, 0.95), steps=st.integers(0, 30),
       every=st.integers(1, 5))
def test_gd_on_a_quadratic_is_a_matrix_power(seed, n, frac, steps, every):
    """GD on t^T A t / 2 with lr < 2/lambda_max: the iterate after k steps is (I - lr A)^k t0, at every record."""
    a, t0 = rand_spd(n, seed, 10.0), randn(seed + 1, n)
    lr = frac * 2.0 / float(torch.linalg.eigvalsh(a).max())
    run = dynamics.gd(lambda t: 0.5 * t @ a @ t, t0, lr, steps, record_every=every)
    step = torch.eye(n) - lr * a
    exact = torch.linalg.matrix_power(step, steps) @ t0
    assert isinstance(run, Run) and torch.allclose(run.params, exact, atol=1e-10)
    assert run.steps == sorted(set(range(0, steps, every)) | {steps})
    for k, rec in zip(run.steps, run.records):
        tk = torch.linalg.matrix_power(step, k) @ t0
        assert torch.allclose(rec["params"], tk, atol=1e-10)
        assert math.isclose(rec["loss"], float(0.5 * tk @ a @ tk), rel_tol=1e-8, abs_tol=1e-14)
    assert run.stacked("loss").shape == (len(run.steps),)


def test_gd_on_tuples_leaves_the_input_alone_and_reports_progress():
    p, loss, *_ = tanh_net(gen(0))
    before = [t.clone() for t in p]
    seen = []
    run = dynamics.gd(loss, p, lr=0.05, steps=20, progress=seen.append)
    assert all(torch.equal(a, b) for a, b in zip(p, before))
    assert isinstance(run.params, tuple) and run.records[-1]["loss"] < run.records[0]["loss"]
    assert seen == list(range(20)) and isinstance(run.records[0]["params"], tuple)


@examples(10)
@given(lr=st.floats(2.5, 10.0))
def test_gd_beyond_the_stability_edge_raises_divergence(lr):
    with pytest.raises(DivergenceError, match=f"learning rate {lr:g}") as e:
        dynamics.gd(lambda t: 0.5 * (t ** 2).sum(), torch.ones(2), lr, 5000)
    assert e.value.lr == lr and e.value.step > 0 and math.isfinite(e.value.last_finite_loss)


def test_sgd_uses_one_batch_per_step():
    data = [torch.tensor([1.0]), torch.tensor([3.0])] * 3
    run = dynamics.sgd(lambda t, x: 0.5 * ((t - x) ** 2).sum(), torch.tensor([0.0]), 0.5, iter(data), steps=6)
    t = 0.0
    for x in data:
        t = t - 0.5 * (t - x.item())
    assert math.isclose(run.params.item(), t, rel_tol=1e-12)
    with pytest.raises(ValueError, match="batches ran out after 6 batches; steps=7"):
        dynamics.sgd(lambda t, x: ((t - x) ** 2).sum(), torch.tensor([0.0]), 0.1, iter(data), steps=7)


def test_sgd_records_minibatch_losses_unless_a_full_loss_is_given():
    data = [torch.tensor([1.0]), torch.tensor([3.0])]
    batch = lambda t, x: 0.5 * ((t - x) ** 2).sum()
    run = dynamics.sgd(batch, torch.tensor([0.0]), 0.5, data, steps=2)
    assert run.steps == [0, 1, 2] and run.stacked("loss").tolist() == [0.5, 0.5 * 2.5 ** 2, 0.5 * (1.75 - 3) ** 2]
    full = lambda t: 0.5 * ((t - 1) ** 2 + (t - 3) ** 2).sum()
    run = dynamics.sgd(batch, torch.tensor([0.0]), 0.5, data, steps=2, full_loss_fn=full)
    assert run.records[-1]["loss"] == float(full(torch.tensor([1.75])))


def test_sgd_divergence_error_instead_of_nan():
    with pytest.raises(DivergenceError) as e:
        dynamics.sgd(lambda p, b: b * sq(p), torch.ones(2), 1.0, [1.0] * 10 + [float("nan")], 11)
    assert e.value.step == 10 and e.value.last_finite_loss is not None


@examples(10)
@given(seed=seeds, n=st.integers(1, 4), t=st.floats(0.0, 2.0))
def test_gradient_flow_on_a_quadratic_is_a_matrix_exponential(seed, n, t):
    """theta(t) = theta* + exp(-t A)(theta0 - theta*) for L = t^T A t / 2 - b^T t, at the end and at t_eval."""
    a, b, t0 = rand_spd(n, seed, 5.0), randn(seed + 1, n), randn(seed + 2, n)
    loss = lambda x: 0.5 * x @ a @ x - b @ x
    star = torch.linalg.solve(a, b)
    exact = lambda s: star + torch.linalg.matrix_exp(-s * a) @ (t0 - star)
    path = dynamics.gradient_flow(loss, t0, t, t_eval=[0.0, t / 2, t])  # the end point: see the doctest too
    assert len(path) == 3 and torch.allclose(path[0], t0, atol=1e-14)
    assert all(torch.allclose(p, exact(s), atol=1e-11) for p, s in zip(path, (0.0, t / 2, t)))


def test_gradient_flow_keeps_the_container_and_dtype_and_reports_failure():
    p = (torch.ones(2, dtype=torch.float32), torch.ones(1, 1, dtype=torch.float32))
    out = dynamics.gradient_flow(lambda q: 0.5 * (sq(q[0]) + sq(q[1])), p, 1.0)
    assert isinstance(out, tuple) and out[1].shape == (1, 1) and out[0].dtype == torch.float32
    assert math.isclose(float(out[1]), math.exp(-1.0), rel_tol=1e-7)
    a = rand_spd(3, 7, 5.0)  # the end point without t_eval, float64: exp(-t A) t0 on a quadratic
    t0 = randn(8, 3)
    assert torch.allclose(dynamics.gradient_flow(lambda x: 0.5 * x @ a @ x, t0, 1.3),
                          torch.linalg.matrix_exp(-1.3 * a) @ t0, atol=1e-11)
    with pytest.raises(RuntimeError, match="integrator failed"):  # d theta/dt = theta^3 blows up at t = 1/2
        dynamics.gradient_flow(lambda t: -0.25 * (t ** 4).sum(), torch.ones(1), 1.0, rtol=1e-6, atol=1e-8)


@given(seed=seeds, n=st.integers(1, 6), split=st.integers(0, 5), lr=st.floats(1e-3, 1.0))
def test_forward_backward_on_quadratics(seed, n, split, lr):
    """On a quadratic the forward-backward displacement is exactly -lr^2 A (A t - b) (tensor or tuple params)."""
    a, b, t0, loss, params = quadratic(gen(seed), n, split)
    out = dynamics.forward_backward(loss, params, lr)
    assert type(out) is type(params)
    big = 1 + float(a.abs().max()) ** 2 * (1 + float(t0.abs().max()) + float(b.abs().max())) * n * (1 + lr)
    assert close(flat(out), -lr ** 2 * a @ (a @ t0 - b), 1e-12, big)


@pytest.mark.parametrize("call,exc,msg", [
    (lambda: dynamics.gd("loss", torch.ones(2), 0.1, 3), TypeError, "loss_fn must be callable"),
    (lambda: dynamics.gd(sq, torch.ones(2), 0.0, 3), ValueError, "lr must be > 0"),
    (lambda: dynamics.gd(sq, torch.ones(2), 0.1, 2.5), TypeError, "steps must be an int"),
    (lambda: dynamics.gd(sq, torch.ones(2), 0.1, -1), ValueError, "steps must be >= 0"),
    (lambda: dynamics.gd(sq, torch.ones(2), 0.1, 3, record_every=0), ValueError, "record_every must be >= 1"),
    (lambda: dynamics.gd(sq, torch.ones(2), 0.1, 3, progress=1), TypeError, "progress must be callable"),
    (lambda: dynamics.gd(sq, torch.tensor([float("nan")]), 0.1, 3), ValueError, "params contains NaN"),
    (lambda: dynamics.sgd(None, torch.ones(2), 0.1, [], 1), TypeError, "batch_loss_fn must be callable"),
    (lambda: dynamics.sgd(lambda p, b: sq(p), torch.ones(2), 0.1, 5, 1), TypeError, "batches must be an iterable"),
    (lambda: dynamics.sgd(lambda p, b: sq(p), torch.ones(2), 0.1, [1], 1, full_loss_fn=2), TypeError,
     "full_loss_fn must be callable"),
    (lambda: dynamics.gradient_flow(sq, torch.ones(2), 1.0, rtol=0.0), ValueError, "rtol must be > 0"),
    (lambda: dynamics.gradient_flow(sq, torch.ones(2), -1.0), ValueError, "t must be >= 0"),
    (lambda: dynamics.gradient_flow(sq, torch.ones(2), 1.0, t_eval=[0.5, 2.0]), ValueError,
     "t_eval must be increasing"),
    (lambda: dynamics.gradient_flow(sq, torch.ones(2), 1.0, t_eval=[0.5, 0.1]), ValueError,
     "t_eval must be increasing"),
    (lambda: dynamics.forward_backward(sq, torch.ones(2), float("nan")), ValueError, "lr must be > 0"),
])
def test_bad_input_names_the_argument(call, exc, msg):
    with pytest.raises(exc, match=msg):
        call()


# ---- same seed, same bits ------------------------------------------------------------------------

def _net_problem(seed: int):
    g = config.generator(seed)
    p, loss, batch_loss, *_ = tanh_net(g, width=6, d=3, n=40)

    def batches(seed_b: int, steps: int, b: int = 4):
        gb = config.generator(seed_b)
        return [torch.randint(0, 40, (b,), generator=gb) for _ in range(steps)]

    return p, loss, batch_loss, batches


def _run_all(seed: int) -> torch.Tensor:
    p, full, batch_loss, batches = _net_problem(seed)
    a = dynamics.gd(full, p, lr=0.05, steps=50).params
    b = dynamics.sgd(batch_loss, p, lr=0.05, batches=batches(seed + 1, 200), steps=200).params
    c = dynamics.gradient_flow(full, p, 0.2, rtol=1e-8, atol=1e-10)
    return torch.cat([flatten(a), flatten(b), flatten(c)])


def test_gd_sgd_gradient_flow_are_bit_identical_for_the_same_seed():
    r1, r2 = _run_all(3), _run_all(3)
    assert torch.equal(r1, r2)
    assert not torch.equal(r1, _run_all(4))


def test_records_are_bit_identical():
    p, _, batch_loss, batches = _net_problem(0)
    t1 = dynamics.sgd(batch_loss, p, 0.1, batches(9, 30), 30, record_every=3)
    t2 = dynamics.sgd(batch_loss, p, 0.1, batches(9, 30), 30, record_every=3)
    assert t1.steps == t2.steps == list(range(0, 30, 3)) + [30]
    assert torch.equal(t1.stacked("loss"), t2.stacked("loss"))
    assert all(torch.equal(flatten(a["params"]), flatten(b["params"])) for a, b in zip(t1.records, t2.records))
