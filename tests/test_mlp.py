"""ntlib.mlp: stacked ensembles of small networks, and the hand-written ReLU backward pass."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, strategies as st

from ntlib import grads, mlp
from ntlib.config import generator
from ntlib.errors import DivergenceError
from ntlib.run import Run

from helpers import close, gen, randn, seeds


def test_init_draws_scaled_gaussians_in_layer_order():
    """W_i = scale / sqrt(fan_in) * N(0, 1), drawn in layer order from the generator; biases zero."""
    p = mlp.init([3, 5, 2], 4, generator(0), scale=2.0)
    g = generator(0)
    w1 = torch.randn(4, 5, 3, generator=g) * (2.0 / math.sqrt(3))
    w2 = torch.randn(4, 2, 5, generator=g) * (2.0 / math.sqrt(5))
    assert torch.equal(p[0], w1) and torch.equal(p[2], w2)
    assert torch.equal(p[1], torch.zeros(4, 5)) and torch.equal(p[3], torch.zeros(4, 2))
    q = mlp.init([3, 5, 2], 4, generator(0), bias=False, dtype=torch.float32)
    assert len(q) == 2 and q[0].dtype == torch.float32


@given(seed=seeds, widths=st.lists(st.integers(1, 4), min_size=2, max_size=4), runs=st.integers(1, 4),
       n=st.integers(1, 5), bias=st.booleans(), act=st.sampled_from(["relu", "tanh", "linear"]))
def test_batched_runs_equal_single_runs(seed, widths, runs, n, bias, act):
    """mse of the batch of runs equals, run by run, mse of run_params(params, r) and the explicit forward pass."""
    g = gen(seed)
    params = mlp.init(widths, runs, g, bias=bias)
    if bias:  # non-zero biases so they matter
        params = [p + 0.3 * randn(g, *p.shape) if p.ndim == 2 else p for p in params]
    x, y = randn(g, runs, n, widths[0]), randn(g, runs, n, widths[-1])
    batched = mlp.mse(params, x, y, activation=act, bias=bias)
    assert batched.shape == (runs,)
    act_fn = mlp.ACTIVATIONS[act]
    for r in range(runs):
        one = mlp.run_params(params, r)
        assert all(q.shape[0] == 1 for q in one)
        single = mlp.mse(one, x[r:r + 1], y[r:r + 1], activation=act, bias=bias)
        assert close(single[0], batched[r], 1e-13)
        f = mlp.forward(one, x[r], activation=act, bias=bias)
        assert close(((f[0] - y[r]) ** 2).sum(-1).mean(), batched[r], 1e-13)
        h = x[r]  # the explicit network: act(h W^T + b) per layer, no activation after the last
        layers = list(zip(one[0::2], one[1::2])) if bias else [(w, None) for w in one]
        for i, (w, b) in enumerate(layers):
            h = h @ w[0].T + (0 if b is None else b[0])
            h = act_fn(h) if i < len(layers) - 1 else h
        assert close(f[0], h, 1e-13)


def test_forward_returns_the_hidden_representations():
    p = mlp.init([3, 4, 6, 2], 2, generator(0))
    f, hs = mlp.forward(p, torch.randn(5, 3), activation="relu", return_hidden=True)
    assert f.shape == (2, 5, 2) and [h.shape for h in hs] == [(2, 5, 4), (2, 5, 6)]
    assert all(bool((h >= 0).all()) for h in hs)


def test_train_returns_a_run_and_takes_any_per_run_loss():
    x = torch.linspace(-1, 1, 16).unsqueeze(1)
    p0 = mlp.init([1, 8, 1], 3, generator(0))
    run = mlp.train(p0, lambda k: (x, x ** 2), lr=0.1, steps=30, activation="tanh", record_every=10,
                    recorder=lambda k, ps: mlp.mse(ps, x, x ** 2, activation="tanh"))
    assert isinstance(run, Run) and run.steps == [0, 10, 20, 30] and run.stacked().shape == (4, 3)
    assert bool((run.stacked()[-1] < run.stacked()[0]).all())
    twice = mlp.train(p0, lambda k: (x, x ** 2), lr=0.05, steps=30, activation="tanh",
                      loss=lambda p, xb, yb: 2 * mlp.mse(p, xb, yb, activation="tanh"))
    for a, b in zip(twice.params, run.params):  # lr (2 L) = (2 lr) L for plain SGD
        assert torch.allclose(a, b, rtol=0, atol=1e-13)


def test_train_divergence_is_reported():
    x = torch.randn(32, 3, generator=generator(0))
    p = mlp.init([3, 4, 1], 2, generator(4), bias=False)
    with pytest.raises(DivergenceError, match="learning rate"):
        mlp.train(p, lambda k: (x, 100 * x[:, :1]), lr=10.0, steps=200, activation="linear", bias=False)


def test_mse_works_under_vmap():
    """Per-sample gradients (torch.func.vmap) through mlp.mse, as Chapter 1 uses them: they average to the gradient."""
    p = tuple(mlp.init([1, 5, 1], 1, generator(0)))
    x, y = torch.randn(6, 1), torch.randn(6, 1)
    f = lambda q, xi, yi: mlp.mse(q, xi.unsqueeze(0), yi.unsqueeze(0), activation="tanh").sum()
    ps = grads.per_sample_grads(f, p, x, y)
    full = grads.grad(lambda q: mlp.mse(q, x, y, activation="tanh").sum(), p)
    assert len(ps) == len(full) == 4
    for a, b in zip(ps, full):
        assert a.shape == (6, *b.shape) and close(a.mean(0), b, 1e-14)


@given(seed=seeds, runs=st.integers(1, 3), h=st.integers(1, 4), d=st.integers(1, 4), o=st.integers(1, 3),
       n=st.integers(1, 5))
def test_relu_loss_and_grads_match_autograd(seed, runs, h, d, o, n):
    """The explicit backprop equals autograd on ntlib.mlp.mse(..., bias=False).sum()."""
    g = gen(seed)
    w, u = randn(g, runs, h, d), randn(g, runs, o, h)
    x, y = randn(g, runs, n, d), randn(g, runs, n, o)
    loss, (gw, gu) = mlp.relu_loss_and_grads([w, u], x, y)
    wl, ul = w.clone().requires_grad_(True), u.clone().requires_grad_(True)
    ref = mlp.mse([wl, ul], x, y, bias=False).sum()
    rw, ru = torch.autograd.grad(ref, [wl, ul])
    assert close(loss, ref.detach(), 1e-12)
    assert close(gw, rw, 1e-12) and close(gu, ru, 1e-12)


@pytest.mark.parametrize("call,exc,msg", [
    (lambda p: mlp.init([3], 2, generator(0)), ValueError, "widths must list at least 2"),
    (lambda p: mlp.init([3, 0], 2, generator(0)), ValueError, "widths must list at least 2 positive"),
    (lambda p: mlp.init([3, 2], 2, 0), TypeError, "generator must be a torch.Generator"),
    (lambda p: mlp.init([3, 2], 0, generator(0)), ValueError, "runs must be >= 1"),
    (lambda p: mlp.init([3, 2], 1, generator(0), scale=-1.0), ValueError, "scale must be >= 0"),
    (lambda p: mlp.forward(p, torch.randn(5, 4)), ValueError, "x has 4 features, the first layer expects 3"),
    (lambda p: mlp.forward(p, torch.randn(5, 3), activation="gelu"), ValueError, "activation must be one of"),
    (lambda p: mlp.forward(p[:3], torch.randn(5, 3)), ValueError, "must alternate W, b"),
    (lambda p: mlp.run_params(p, 2), ValueError, r"run must be an int in \[0, 2\)"),
    (lambda p: mlp.run_params(p, True), ValueError, "run must be an int"),
    (lambda p: mlp.run_params(p, 0.5), ValueError, "run must be an int"),
    (lambda p: mlp.mse(p, torch.randn(5, 3), torch.randn(5, 1)), ValueError, "y must have shape"),
    (lambda p: mlp.mse(p, torch.randn(5, 3), [1.0]), TypeError, "y must be a torch.Tensor"),
    (lambda p: mlp.train(p, None, lr=0.1, steps=1), TypeError, "batches must be callable"),
    (lambda p: mlp.relu_loss_and_grads(p, torch.ones(2, 5, 3), torch.ones(2, 5, 2)), ValueError,
     r"params must be \[W, U\]"),
    (lambda p: mlp.relu_loss_and_grads([p[0], p[0]], torch.ones(2, 5, 3), torch.ones(2, 5, 2)), ValueError,
     r"params must be \[W \(runs, h, d\), U \(runs, o, h\)\]"),
    (lambda p: mlp.relu_loss_and_grads([p[0], p[2]], torch.ones(2, 5, 3), torch.ones(2, 5, 1)), ValueError,
     r"x must be \(runs, n, 3\) and y \(runs, n, 2\)"),
])
def test_bad_input_names_the_argument(call, exc, msg):
    p = mlp.init([3, 4, 2], 2, generator(0))
    with pytest.raises(exc, match=msg):
        call(p)
