"""ntlib.modules: a torch.nn.Module as ``(loss_fn, params)``, leaving the module exactly as it was."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ntlib import grads, hessian
from ntlib.modules import module_loss

D = torch.float64


def test_module_mode_grads_and_buffers_untouched():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Tanh(),
                              torch.nn.Linear(4, 2)).double()
    x, y = torch.randn(16, 3, dtype=D), torch.randn(16, 2, dtype=D)
    for p in net.parameters():
        p.grad = torch.full_like(p, 7.0)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    for mode in (True, False):
        net.train(mode)
        loss_fn, params = module_loss(net, F.mse_loss, x, y)
        res = hessian.top_eigenvalues(loss_fn, params, k=2, tol=1e-8)
        assert res.converged and net.training is mode
        assert all(m.training is mode for m in net.modules())
        for p in net.parameters():
            assert torch.equal(p.grad, torch.full_like(p, 7.0))
        for k, v in net.state_dict().items():
            assert torch.equal(v, before[k]), k


def test_module_loss_is_the_functional_loss_and_matches_dense_hessian():
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2)).double()
    x, y = torch.randn(30, 3, dtype=D), torch.randn(30, 2, dtype=D)
    loss_fn, params = module_loss(net, F.mse_loss, x, y)
    assert [p is q for p, q in zip(params, net.parameters())] == [True] * 4
    with torch.no_grad():
        assert float(loss_fn(params)) == float(F.mse_loss(net(x), y))
    shifted = tuple(p + 0.1 for p in params)  # the loss follows the params it is given, not the module's
    w1, b1, w2, b2 = shifted
    with torch.no_grad():
        assert math.isclose(float(loss_fn(shifted)), float(F.mse_loss(torch.tanh(x @ w1.T + b1) @ w2.T + b2, y)),
                            rel_tol=1e-14)
    g = grads.grad(loss_fn, params)
    net.zero_grad()
    F.mse_loss(net(x), y).backward()
    assert all(torch.allclose(a, p.grad, rtol=0, atol=1e-14) for a, p in zip(g, net.parameters()))
    exact = torch.linalg.eigvalsh(hessian.dense_hessian(loss_fn, params)).flip(0)
    res = hessian.top_eigenvalues(loss_fn, params, k=2, tol=1e-10)
    assert float(((res.values - exact[:2]).abs() / exact[:2].abs()).max()) < 1e-6


def test_frozen_parameters_and_several_inputs():
    class Two(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Linear(2, 1, bias=False).double()
            self.b = torch.nn.Linear(2, 1, bias=False).double()

        def forward(self, u, v):
            return self.a(u) + self.b(v)

    net = Two()
    net.b.weight.requires_grad_(False)
    u, v, y = torch.ones(4, 2, dtype=D), 2 * torch.ones(4, 2, dtype=D), torch.zeros(4, 1, dtype=D)
    loss_fn, params = module_loss(net, F.mse_loss, (u, v), y)
    assert len(params) == 1 and params[0] is net.a.weight
    with torch.no_grad():
        assert float(loss_fn(params)) == float(F.mse_loss(net(u, v), y))


@pytest.mark.parametrize("call,exc,msg", [
    (lambda: module_loss(lambda x: x, F.mse_loss, torch.ones(1), torch.ones(1)), TypeError,
     "model must be a torch.nn.Module"),
    (lambda: module_loss(torch.nn.Linear(1, 1), "mse", torch.ones(1), torch.ones(1)), TypeError,
     "criterion must be callable"),
    (lambda: module_loss(torch.nn.Tanh(), F.mse_loss, torch.ones(1), torch.ones(1)), ValueError,
     "model has no trainable parameters"),
])
def test_bad_input_names_the_argument(call, exc, msg):
    with pytest.raises(exc, match=msg):
        call()
