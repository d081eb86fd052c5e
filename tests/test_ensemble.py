"""ntlib.ensemble and ntlib.mlp: batched runs equal separate runs; Adam matches torch.optim."""

import pytest
import torch

from ntlib import ensemble, mlp
from ntlib.config import generator
from ntlib.dynamics import DivergenceError

torch.set_default_dtype(torch.float64)


def data(seed=0):
    g = generator(seed)
    x = torch.randn(32, 3, generator=g)
    return x, torch.sin(x @ torch.tensor([[1.0], [-2.0], [0.5]]))


@pytest.mark.parametrize("activation", ["relu", "tanh", "linear"])
def test_batched_runs_equal_separate_runs(activation):
    x, y = data()
    p = mlp.init([3, 8, 1], 3, generator(1))
    lrs = torch.tensor([0.01, 0.05, 0.1])
    out, _ = mlp.train(p, lambda k: (x, y), lr=lrs, steps=25, activation=activation)
    for r in range(3):
        single, _ = mlp.train(list(mlp.run_params(p, r)), lambda k: (x, y), lr=float(lrs[r]), steps=25,
                              activation=activation)
        for a, b in zip(out, single):
            assert torch.allclose(a[r], b[0], atol=1e-12)


def test_adam_matches_torch_optim():
    x, y = data()
    p = mlp.init([3, 5, 1], 1, generator(2), scale=1.5)
    out, _ = mlp.train(p, lambda k: (x, y), lr=5e-3, steps=30, activation="tanh", optimizer="adam",
                       adam={"betas": (0.9, 0.995), "eps": 1e-7})
    ref = [q.clone().requires_grad_(True) for q in p]
    opt = torch.optim.Adam(ref, lr=5e-3, betas=(0.9, 0.995), eps=1e-7)
    for _ in range(30):
        opt.zero_grad()
        mlp.mse(ref, x, y, activation="tanh").sum().backward()
        opt.step()
    for a, b in zip(out, ref):
        assert torch.allclose(a, b.detach(), atol=1e-12)


def test_lr_schedule_and_recording():
    x, y = data()
    p = mlp.init([3, 4, 1], 2, generator(3))
    seen = []
    _, h = mlp.train(p, lambda k: (x, y), lr=0.1, lr_end=0.01, steps=10, record_every=5,
                     recorder=lambda k, ps: seen.append(k) or k)
    assert h.steps == [0, 5, 10] and h.records == [0, 5, 10]


def test_forward_hidden_and_shapes():
    p = mlp.init([3, 4, 6, 2], 2, generator(0))
    f, hs = mlp.forward(p, torch.randn(5, 3), activation="relu", return_hidden=True)
    assert f.shape == (2, 5, 2) and [h.shape for h in hs] == [(2, 5, 4), (2, 5, 6)]
    assert all(bool((h >= 0).all()) for h in hs)
    with pytest.raises(ValueError, match="x has 4 features"):
        mlp.forward(p, torch.randn(5, 4))
    with pytest.raises(ValueError, match="activation"):
        mlp.forward(p, torch.randn(5, 3), activation="gelu")


def test_divergence_and_bad_lr():
    x, y = data()
    p = mlp.init([3, 4, 1], 2, generator(4), bias=False)
    with pytest.raises(DivergenceError, match="learning rate"):
        mlp.train(p, lambda k: (x, 100 * y), lr=10.0, steps=200, activation="linear", bias=False)
    with pytest.raises(ValueError, match="one value per run"):
        ensemble.learning_rates([0.1, 0.2, 0.3], 2)
    with pytest.raises(ValueError, match="> 0"):
        ensemble.learning_rates(-0.1, 2)
    with pytest.raises(ValueError, match="same leading runs"):
        ensemble.train(lambda k, p: (torch.zeros(()), p), [torch.zeros(2, 1), torch.zeros(3, 1)], lr=0.1, steps=1)


def test_mlp_validation():
    p = mlp.init([3, 4, 2], 2, generator(0))
    with pytest.raises(ValueError, match=r"run must be an int in \[0, 2\)"):
        mlp.run_params(p, 2)
    with pytest.raises(ValueError, match="y must have shape"):
        mlp.mse(p, torch.randn(5, 3), torch.randn(5, 1))
    with pytest.raises(TypeError, match="loss_and_grads must be callable"):
        ensemble.train(None, p, lr=0.1, steps=1)
    with pytest.raises(TypeError, match="non-empty list"):
        ensemble.train(lambda k, ps: None, [], lr=0.1, steps=1)


def test_mlp_mse_works_under_vmap():
    """Per-sample gradients (torch.func.vmap) through mlp.mse, as Chapter 1 uses them."""
    from ntlib import grads
    p = tuple(mlp.init([1, 5, 1], 1, generator(0)))
    x, y = torch.randn(6, 1), torch.randn(6, 1)
    f = lambda q, xi, yi: mlp.mse(q, xi.unsqueeze(0), yi.unsqueeze(0), activation="tanh").sum()
    ps = grads.per_sample_grads(f, p, x, y)
    assert torch.allclose(sum(g.mean(0) for g in ps[:1]), grads.grad(lambda q: mlp.mse(q, x, y, activation="tanh").sum(), p)[0])
