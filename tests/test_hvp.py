"""Tests of ntlib.hvp: every product path against dense Hessians (closed forms, dense_hessian)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ntlib import hvp as hv
from ntlib.hessian import dense_hessian
from ntlib.modules import module_loss
from ntlib.params import flatten

D = torch.float64
PATHS = [("reverse", False), ("reverse", True), ("forward", False), ("forward", True)]


@pytest.fixture(autouse=True)
def one_thread_float64():
    old_threads, old_dtype = torch.get_num_threads(), torch.get_default_dtype()
    torch.set_num_threads(1)
    torch.set_default_dtype(D)
    yield
    torch.set_num_threads(old_threads)
    torch.set_default_dtype(old_dtype)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def quadratic(n: int, seed: int):
    """0.5 w^T A w - b^T w split into two tensors: H = A, gradient A w - b."""
    g = gen(seed)
    m = torch.randn(n, n, generator=g, dtype=D)
    a, b = (m + m.T) / 2, torch.randn(n, generator=g, dtype=D)
    w = torch.randn(n, generator=g, dtype=D)
    split = (w[:2].reshape(1, 2).clone(), w[2:].clone())

    def loss(p):
        v = torch.cat([p[0].reshape(-1), p[1]])
        return 0.5 * v @ a @ v - b @ v

    return loss, split, a, a @ w - b


def mlp(seed: int, loss: str = "ce", sizes=(3, 5, 4, 3), n_data: int = 12):
    g = gen(seed)
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(a, b).double())
        if i < len(sizes) - 2:
            layers.append(torch.nn.Tanh())
    net = torch.nn.Sequential(*layers)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=D) * 0.7)
    x = torch.randn(n_data, sizes[0], generator=g, dtype=D)
    if loss == "ce":
        y, crit = torch.randint(0, sizes[-1], (n_data,), generator=g), F.cross_entropy
    else:
        y = torch.randn(n_data, sizes[-1], generator=g, dtype=D)
        crit = (lambda out, t: F.mse_loss(out, t, reduction="none").mean()) if loss == "mse-none" else F.mse_loss
    return net, crit, x, y


@pytest.mark.parametrize("mode,batched", PATHS)
def test_every_path_is_the_closed_form_hessian_of_a_quadratic(mode, batched):
    loss, params, a, grad = quadratic(6, seed=1)
    op, n = hv.hvp_operator(loss, params, mode=mode, batched=batched)
    v = torch.randn(n, 3, generator=gen(2), dtype=D)
    assert n == 6 and op.n == 6 and op.mode == mode and op.batched is batched
    assert torch.allclose(op(v[:, 0]), a @ v[:, 0], atol=1e-12)
    assert torch.allclose(op(v), a @ v, atol=1e-12)  # a block, column by column or batched
    assert torch.allclose(op.gradient, grad, atol=1e-12)
    assert op.loss == pytest.approx(float(loss(params)), rel=1e-14)
    assert op.products == 4


@pytest.mark.parametrize("mode,batched", PATHS)
@pytest.mark.parametrize("loss", ["ce", "mse-none"])
def test_every_path_matches_dense_hessian_on_a_network(mode, batched, loss):
    net, crit, x, y = mlp(3, loss)
    loss_fn, params = module_loss(net, crit, x, y)
    H = dense_hessian(loss_fn, params)
    op, n = hv.hvp_operator(loss_fn, params, mode=mode, batched=batched)
    V = torch.randn(n, 4, generator=gen(4), dtype=D)
    scale = float(H.abs().max()) * math.sqrt(n)
    assert torch.allclose(op(V), H @ V, atol=1e-11 * scale)
    assert torch.allclose(op(V[:, 1]), H @ V[:, 1], atol=1e-11 * scale)


def test_reverse_mse_mean_matches_manual_mean():
    """F.mse_loss(reduction='mean') works on the reverse path (the default)."""
    net, crit, x, y = mlp(5, "mse")
    f1, p = module_loss(net, crit, x, y)
    f2, _ = module_loss(net, lambda o, t: ((o - t) ** 2).mean(), x, y)
    v = torch.randn(sum(t.numel() for t in p), generator=gen(6), dtype=D)
    assert torch.allclose(hv.hvp_operator(f1, p)[0](v), hv.hvp_operator(f2, p)[0](v), atol=1e-12)


def test_forward_path_names_the_mse_mean_failure():
    """torch 2.13: torch.func cannot differentiate F.mse_loss(mean) twice; the error says what to do."""
    net, crit, x, y = mlp(5, "mse")
    loss_fn, params = module_loss(net, crit, x, y)
    op, n = hv.hvp_operator(loss_fn, params, mode="forward")
    try:
        out = op(torch.ones(n, dtype=D))
    except ValueError as e:
        assert "mode='reverse'" in str(e) and "reduction='none'" in str(e)
    else:  # a torch version where it works: then it must be right
        ref = hv.hvp_operator(loss_fn, params)[0](torch.ones(n, dtype=D))
        assert torch.allclose(out, ref, atol=1e-12)


def test_unused_and_linear_parameters_have_zero_rows():
    w, u, c = torch.tensor([1.0, 2.0]), torch.tensor([3.0]), torch.tensor([0.5, -1.0])
    loss = lambda p: (p[0] ** 3).sum() + (p[2] * 2.0).sum()  # noqa: E731  p[1] unused, p[2] linear
    H = torch.zeros(5, 5, dtype=D)
    H[0, 0], H[1, 1] = 6.0 * 1.0, 6.0 * 2.0
    v = torch.arange(1.0, 6.0, dtype=D)
    for mode, batched in PATHS:
        op, n = hv.hvp_operator(loss, (w, u, c), mode=mode, batched=batched)
        assert torch.allclose(op(v), H @ v) and torch.allclose(op(torch.stack([v, v], 1)), (H @ v)[:, None].expand(5, 2))
        assert torch.allclose(op.gradient, torch.tensor([3.0, 12.0, 0.0, 2.0, 2.0], dtype=D))


def test_float32_products_match_float64():
    net, crit, x, y = mlp(7, "ce")
    f64, p64 = module_loss(net, crit, x, y)
    net32 = net.float()
    f32, p32 = module_loss(net32, crit, x.float(), y)
    v = torch.randn(sum(t.numel() for t in p32), generator=gen(8), dtype=D)
    ref = hv.hvp_operator(f64, tuple(t.double() for t in p32))[0](v)
    for mode in ("reverse", "forward"):
        out = hv.hvp_operator(f32, p32, mode=mode)[0](v.float())
        assert out.dtype == torch.float32
        assert torch.allclose(out.double(), ref, atol=1e-5 * float(ref.abs().max()))


def test_the_caller_state_is_untouched():
    net, crit, x, y = mlp(9, "ce")
    net.eval()
    for p in net.parameters():
        p.grad = torch.full_like(p, 3.0)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    loss_fn, params = module_loss(net, crit, x, y)
    for mode, batched in PATHS:
        op, n = hv.hvp_operator(loss_fn, params, mode=mode, batched=batched)
        op(torch.ones(n, 2, dtype=D))
    assert not net.training
    assert all(torch.equal(p.grad, torch.full_like(p, 3.0)) for p in net.parameters())
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())


def test_dense_hessian_is_the_closed_form():
    loss = lambda p: (p[0] ** 2 * p[1]).sum()  # noqa: E731
    H = dense_hessian(loss, (torch.tensor([1.5], dtype=D), torch.tensor([2.0], dtype=D)))
    assert torch.equal(H, torch.tensor([[4.0, 3.0], [3.0, 0.0]], dtype=D))


@pytest.mark.parametrize("kwargs, err, match", [
    ({"mode": "sideways"}, ValueError, "mode must be one of"),
    ({"batched": 1}, TypeError, "batched must be a bool"),
])
def test_bad_options(kwargs, err, match):
    loss, params, _, _ = quadratic(4, seed=0)
    with pytest.raises(err, match=match):
        hv.hvp_operator(loss, params, **kwargs)


def test_bad_losses_params_and_vectors():
    w = torch.ones(3, dtype=D)
    with pytest.raises(TypeError, match="loss_fn must be callable"):
        hv.hvp_operator(3, w)
    with pytest.raises(ValueError, match="scalar"):
        hv.hvp_operator(lambda p: p * p, w)
    with pytest.raises(ValueError, match="not finite"):
        hv.hvp_operator(lambda p: (p * p).sum() / 0.0, w)
    with pytest.raises(ValueError, match="NaN"):
        hv.hvp_operator(lambda p: (p * p).sum(), torch.tensor([1.0, float("nan")], dtype=D))
    with pytest.raises(TypeError, match="params"):
        hv.hvp_operator(lambda p: (p * p).sum(), "w")
    op, _ = hv.hvp_operator(lambda p: (p * p).sum(), w)
    for bad in (torch.ones(4, dtype=D), torch.ones(3, 2, 1, dtype=D), [1.0, 2.0, 3.0]):
        with pytest.raises(ValueError, match=r"v must be a tensor of shape \(3,\)"):
            op(bad)
    assert torch.equal(op(torch.ones(3, dtype=torch.float32)), torch.full((3,), 2.0, dtype=D))  # converted


def test_hvp_is_flat_in_params_order():
    loss, params, a, _ = quadratic(5, seed=3)
    op, n = hv.hvp_operator(loss, params)
    e = torch.zeros(n, dtype=D)
    e[3] = 1.0
    assert torch.allclose(op(e), a[:, 3], atol=1e-13)
    assert flatten(params).shape == (n,)
