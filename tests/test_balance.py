"""ntlib.balance: per-sample gradients of a module against loops, batch moments against closed forms,
the exact step identities of the rescaling and double-rotation symmetries, and input checks."""

import pytest
import torch
from hypothesis import given, strategies as st

from ntlib import balance, symmetry
from ntlib.entropic import expected_batch_sq
from ntlib.transformer import TinyTransformer, lm_loss

from helpers import examples, randn

mse = torch.nn.functional.mse_loss


def mlp(seed, d=3, h=4, o=2):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(d, h), torch.nn.ReLU(), torch.nn.Linear(h, o)).double()


def test_sample_grads_match_a_loop_and_leave_the_model_alone():
    net, x, y = mlp(0), randn(1, 7, 3), randn(2, 7, 2)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    g = balance.sample_grads(net, mse, x, y, chunk=3)
    for i in range(7):
        ref = torch.autograd.grad(mse(net(x[i:i + 1]), y[i:i + 1]), list(net.parameters()))
        for (name, _), r in zip(net.named_parameters(), ref):
            assert torch.allclose(g[name][i], r, atol=1e-12)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert all(p.grad is None for p in net.parameters())


@examples(20)
@given(st.integers(0, 10_000), st.integers(2, 9), st.integers(1, 12))
def test_expected_batch_gram_closed_form_and_diagonal(seed, n, b):
    g = randn(seed, n, 3, 2)
    e = balance.expected_batch_gram(g, b)
    # i.i.d. batches: E[g_B g_B^T] = M M^T + (S - M M^T) / B, by enumeration for B = 1 and by the diagonal
    m = g.mean(0)
    s = sum(gi @ gi.T for gi in g) / n
    assert torch.allclose(e, m @ m.T + (s - m @ m.T) / b, atol=1e-12)
    assert torch.allclose(e.diagonal(), expected_batch_sq(g, b).sum(-1), atol=1e-12)
    if b <= n:   # without replacement, by enumerating every batch of size 2 when b == 2
        ew = balance.expected_batch_gram(g, b, replacement=False)
        if b == 2:
            pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
            ref = sum(((g[i] + g[j]) / 2) @ ((g[i] + g[j]) / 2).T for i, j in pairs) / len(pairs)
            assert torch.allclose(ew, ref, atol=1e-12)


def test_neuron_balance_matches_symmetry_module_and_layer_sum():
    net, x, y = mlp(1), randn(3, 9, 3), randn(4, 9, 2)
    g = balance.sample_grads(net, mse, x, y)
    inc, out = balance.neuron_balance(g, "0", "2", batch_size=3)
    ref = symmetry.neuron_balance_sides(g["0.weight"], g["0.bias"], g["2.weight"], 3)
    assert torch.allclose(inc, ref[0]) and torch.allclose(out, ref[1])
    assert balance.relu_pairs(net) == [("0", "2")]


def test_neuron_step_identity_on_a_module():
    # one SGD step: Delta(|w_i|^2 + b_i^2 - |u_i|^2) = lr^2 (|g_in,i|^2 - |g_out,i|^2), exactly
    net, x, y, lr = mlp(2), randn(5, 6, 3), randn(6, 6, 2), 0.1
    charge = lambda: (net[0].weight ** 2).sum(1) + net[0].bias ** 2 - (net[2].weight ** 2).sum(0)
    c0 = charge().detach()
    gs = torch.autograd.grad(mse(net(x), y), list(net.parameters()))
    with torch.no_grad():
        for p, q in zip(net.parameters(), gs):
            p.sub_(lr * q)
    gin = (gs[0] ** 2).sum(1) + gs[1] ** 2
    gout = (gs[2] ** 2).sum(0)
    assert torch.allclose(charge().detach() - c0, lr ** 2 * (gin - gout), atol=1e-12)


def test_matrix_balance_is_chapter_2s_sides_for_a_linear_pair():
    torch.manual_seed(3)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4, bias=False), torch.nn.Linear(4, 2, bias=False)).double()
    x, y = randn(7, 20, 3), randn(8, 20, 2)
    lhs, rhs = balance.matrix_balance(balance.sample_grads(net, mse, x, y), "0", "1", batch_size=1)
    w, u = net[0].weight.detach(), net[1].weight.detach()
    # per sample G = dl/dK = 2 (K x - y) x^T / o; W E[G^T G] W^T and U^T E[G G^T] U
    r = (x @ (u @ w).T - y) * 2 / 2
    G = r[:, :, None] * x[:, None, :]
    gtg, ggt = (G.transpose(1, 2) @ G).mean(0), (G @ G.transpose(1, 2)).mean(0)
    ref = symmetry.matrix_balance_sides(w, u, gtg, ggt)
    # lhs = E[g_W g_W^T] = U^T E[G G^T] U, rhs = E[g_U^T g_U] = W E[G^T G] W^T
    assert torch.allclose(lhs, ref[1], atol=1e-12) and torch.allclose(rhs, ref[0], atol=1e-12)


def test_attention_double_rotation_symmetry_and_step_identity():
    torch.manual_seed(4)
    net = TinyTransformer(vocab=6, d_model=8, heads=2, layers=1, context=5).double()
    x = torch.randint(0, 6, (4, 5), generator=torch.Generator().manual_seed(0))
    att = net.blocks[0].attn
    loss = lambda: lm_loss(net(x), x)
    l0 = loss().detach()
    # (W_Q, W_K) -> (A W_Q, A^{-T} W_K) per head leaves the loss unchanged
    a = [randn(10 + h, 4, 4) + 2 * torch.eye(4, dtype=torch.float64) for h in range(2)]
    with torch.no_grad():
        wq, wk = att.query.weight.clone(), att.key.weight.clone()
        for h in range(2):
            rows = slice(4 * h, 4 * h + 4)
            att.query.weight[rows] = a[h] @ wq[rows]
            att.key.weight[rows] = torch.linalg.inv(a[h]).T @ wk[rows]
    assert torch.allclose(loss().detach(), l0, atol=1e-12)
    # one GD step changes W_K W_K^T - W_Q W_Q^T per head by lr^2 (g_K g_K^T - g_Q g_Q^T), exactly
    lr = 0.05
    heads = lambda m: m.detach().reshape(2, 4, 8)
    charge = lambda: heads(att.key.weight) @ heads(att.key.weight).transpose(1, 2) \
        - heads(att.query.weight) @ heads(att.query.weight).transpose(1, 2)
    c0 = charge()
    gq, gk = torch.autograd.grad(loss(), [att.query.weight, att.key.weight])
    with torch.no_grad():
        att.query.weight.sub_(lr * gq)
        att.key.weight.sub_(lr * gk)
    pred = lr ** 2 * (heads(gk) @ heads(gk).transpose(1, 2) - heads(gq) @ heads(gq).transpose(1, 2))
    assert torch.allclose(charge() - c0, pred, atol=1e-12)
    # and attention_balance returns the per-head batch expectations of exactly those products
    g = balance.sample_grads(net, lm_loss, x, x, ["blocks.0.attn.query.weight", "blocks.0.attn.key.weight"])
    q, k = balance.attention_balance(g, "blocks.0.attn.query", "blocks.0.attn.key", heads=2, batch_size=4,
                                     replacement=False)
    gq, gk = torch.autograd.grad(loss(), [att.query.weight, att.key.weight])
    assert torch.allclose(q, heads(gq) @ heads(gq).transpose(1, 2), atol=1e-12)
    assert torch.allclose(k, heads(gk) @ heads(gk).transpose(1, 2), atol=1e-12)


def test_errors_name_the_argument():
    net, x, y = mlp(0), randn(1, 5, 3), randn(2, 5, 2)
    with pytest.raises(ValueError, match="no trainable parameter"):
        balance.sample_grads(net, mse, x, y, ["nope"])
    with pytest.raises(ValueError, match="samples"):
        balance.sample_grads(net, mse, x, y[:3])
    with pytest.raises(TypeError, match="Module"):
        balance.sample_grads(lambda t: t, mse, x, y)
    g = balance.sample_grads(net, mse, x, y)
    with pytest.raises(ValueError, match="incoming"):
        balance.neuron_balance(g, "9", "2", batch_size=1)
    with pytest.raises(ValueError, match="not a pair"):
        balance.neuron_balance(g, "2", "0", batch_size=1)
    with pytest.raises(ValueError, match="divisible"):
        balance.attention_balance(g, "0", "0", heads=3, batch_size=1)
    with pytest.raises(ValueError, match="batch_size"):
        balance.expected_batch_gram(randn(0, 3, 2, 2), 5, replacement=False)
