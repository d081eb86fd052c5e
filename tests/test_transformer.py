"""ntlib.transformer: causality, names used by the diagnostics, the training loop and its errors."""

import pytest
import torch

from ntlib import transformer as tfm
from ntlib.errors import DivergenceError


def net(seed=0, **kw):
    torch.manual_seed(seed)
    args = dict(vocab=5, d_model=8, heads=2, layers=2, context=6) | kw
    return tfm.TinyTransformer(**args).double()


def test_causal_future_tokens_do_not_change_past_logits():
    m = net()
    x = torch.randint(0, 5, (3, 6), generator=torch.Generator().manual_seed(1))
    y = x.clone()
    y[:, 4:] = (y[:, 4:] + 1) % 5
    assert torch.allclose(m(x)[:, :4], m(y)[:, :4], atol=1e-12)
    assert not torch.allclose(m(x)[:, 4:], m(y)[:, 4:])


def test_batch_windows_and_errors():
    t = torch.arange(20)
    x, y = tfm.batch_windows(t, torch.tensor([0, 3]), 4)
    assert torch.equal(y, x + 1)
    with pytest.raises(ValueError, match="start"):
        tfm.batch_windows(t, torch.tensor([16]), 4)
    with pytest.raises(ValueError, match="context"):
        net()(torch.zeros(1, 7, dtype=torch.long))
    with pytest.raises(ValueError, match="divisible"):
        tfm.CausalSelfAttention(6, 4)


def test_full_batch_windows_is_deterministic_gradient_descent():
    toks = torch.arange(200) % 5
    w = torch.arange(0, 100, 10)
    runs = [tfm.train_lm(net(3), toks, steps=20, lr=0.1, batch_size=w.numel(), windows=w,
                         generator=torch.Generator().manual_seed(s)) for s in (0, 1)]
    assert runs[0].info["loss"] == runs[1].info["loss"]          # no randomness used
    a, b = (dict(r.params.named_parameters()) for r in runs)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_weight_decay_shrinks_and_divergence_is_detected():
    toks = torch.arange(200) % 5
    m = net(4)
    n0 = sum(float((p.detach() ** 2).sum()) for p in m.parameters())
    tfm.train_lm(m, toks, steps=30, lr=0.1, batch_size=4, weight_decay=5.0, generator=torch.Generator().manual_seed(0))
    assert sum(float((p.detach() ** 2).sum()) for p in m.parameters()) < n0
    with pytest.raises(DivergenceError):
        tfm.train_lm(net(5), toks, steps=200, lr=1e6, batch_size=4, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="windows"):
        tfm.train_lm(net(5), toks, steps=2, lr=0.1, batch_size=4, windows=torch.tensor([0, 1]),
                     generator=torch.Generator().manual_seed(0))


def test_recorder_sees_the_model():
    toks = torch.arange(100) % 5
    run = tfm.train_lm(net(6), toks, steps=10, lr=0.1, batch_size=2, generator=torch.Generator().manual_seed(0),
                       record_every=5, recorder=lambda k, m: k)
    assert run.steps == [0, 5, 10] and run.records == [0, 5, 10] and len(run.info["loss"]) == 10


def test_block_is_pre_layer_norm_with_relu_mlp():
    torch.manual_seed(7)
    block = tfm.Block(8, 2).double()
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    h = x + block.attn(block.ln1(x))
    assert torch.allclose(block(x), h + block.mlp(block.ln2(h)), atol=1e-12)
    assert isinstance(block.attn, tfm.CausalSelfAttention) and isinstance(block.mlp[1], torch.nn.ReLU)
