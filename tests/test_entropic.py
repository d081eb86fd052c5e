"""ntlib.entropic: the modified loss, the SGD entropic terms, H grad L and the entropic force.

Closed forms on quadratics, enumeration of every minibatch, and exact identities on
tuple-parameter networks, on random inputs (hypothesis).
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, strategies as st

from ntlib import entropic, grads
from ntlib.params import sq_norm

from helpers import close, flat, gen, quadratic, rand_spd, randn, seeds, tanh_net


@given(seed=seeds, n=st.integers(1, 6), lr=st.floats(0.0, 1.0), coef=st.floats(0.0, 1.0))
def test_entropic_loss_of_a_quadratic(seed, n, lr, coef):
    """For L = t^T A t / 2 - b^T t: F = L + coef lr |A t - b|^2 and grad F = (I + 2 coef lr A)(A t - b)."""
    a, b, t = rand_spd(n, seed, 10.0), randn(seed + 1, n), randn(seed + 2, n)
    loss = lambda x: 0.5 * x @ a @ x - b @ x
    F = entropic.entropic_loss(loss, lr, coef=coef)
    r = a @ t - b
    assert math.isclose(float(F(t).detach()), float(loss(t) + coef * lr * r @ r), rel_tol=1e-12, abs_tol=1e-12)
    assert close(grads.grad(F, t), r + 2 * coef * lr * a @ r, 1e-12, 1 + 10 * float(r.abs().max()))


@given(seed=seeds, lr=st.floats(0.0, 1.0), coef=st.floats(0.0, 1.0))
def test_entropic_loss_on_a_network_is_affine_in_lr(seed, lr, coef):
    """Tuple parameters: F = L + coef lr |grad L|^2, and F_lr - L = lr (F_1 - L) = (lr/4) |grad L|^2 at coef 1/4."""
    p, loss, *_ = tanh_net(gen(seed), width=3, d=2, n=5)
    g2 = float(sq_norm(grads.grad(loss, p)))
    value = float(entropic.entropic_loss(loss, lr, coef=coef)(p).detach())
    assert math.isclose(value, float(loss(p)) + coef * lr * g2, rel_tol=1e-12, abs_tol=1e-14)
    gap = float((entropic.entropic_loss(loss, lr)(p) - loss(p)).detach())
    gap1 = float((entropic.entropic_loss(loss, 1.0)(p) - loss(p)).detach())
    assert math.isclose(gap, lr * gap1, rel_tol=1e-10, abs_tol=1e-14)
    assert math.isclose(gap1, 0.25 * g2, rel_tol=1e-10, abs_tol=1e-14)


def _all_batches(n: int, b: int, replacement: bool):
    return itertools.product(range(n), repeat=b) if replacement else itertools.combinations(range(n), b)


@given(seed=seeds, n=st.integers(1, 5), p=st.integers(1, 3), b=st.integers(1, 3), lr=st.floats(0.0, 1.0))
def test_sgd_entropic_terms_match_enumeration(seed, n, p, b, lr):
    """E_B|grad l_B|^2 equals the average over every batch, with and without replacement; the parts add up."""
    gs, losses = randn(seed, n, p), randn(seed + 1, n).abs()
    t = entropic.sgd_entropic_terms(gs, losses, b)
    assert isinstance(t, entropic.EntropicTerms)
    brute = torch.stack([gs[list(i)].mean(0).pow(2).sum() for i in _all_batches(n, b, True)]).mean()
    assert math.isclose(float(t.expected_batch_grad_sq), float(brute), rel_tol=1e-12, abs_tol=1e-12)
    assert math.isclose(float(t.expected_batch_grad_sq), float(t.grad_sq + t.noise), rel_tol=1e-12, abs_tol=1e-14)
    assert math.isclose(float(t.grad_sq), float(gs.mean(0) @ gs.mean(0)), rel_tol=1e-12, abs_tol=1e-14)
    assert math.isclose(float(t.noise), float(t.trace_cov) / b, rel_tol=1e-12, abs_tol=1e-14)
    assert float(t.trace_cov) >= 0 and math.isclose(float(t.loss), float(losses.mean()), rel_tol=1e-12)
    assert math.isclose(float(t.free_energy(lr)), float(t.loss + 0.25 * lr * t.expected_batch_grad_sq), rel_tol=1e-14)
    if b <= n:
        t_wo = entropic.sgd_entropic_terms(gs, losses, b, replacement=False)
        brute_wo = torch.stack([gs[list(i)].mean(0).pow(2).sum() for i in _all_batches(n, b, False)]).mean()
        assert math.isclose(float(t_wo.expected_batch_grad_sq), float(brute_wo), rel_tol=1e-12, abs_tol=1e-12)


@given(seed=seeds, n=st.integers(1, 5), shape=st.lists(st.integers(1, 3), max_size=2), b=st.integers(1, 3),
       replacement=st.booleans())
def test_expected_batch_sq_matches_enumeration_entrywise(seed, n, shape, b, replacement):
    """Entry-wise E_B[g_B^2] over every batch; summed over the entries it is sgd_entropic_terms' E_B|grad l_B|^2."""
    if not replacement and b > n:
        b = n
    gs = randn(seed, n, *shape) + 0.5
    out = entropic.expected_batch_sq(gs, b, replacement=replacement)
    assert out.shape == tuple(shape)
    brute = torch.stack([gs[list(i)].mean(0) ** 2 for i in _all_batches(n, b, replacement)]).mean(0)
    assert close(out, brute, 1e-12)
    terms = entropic.sgd_entropic_terms(gs.reshape(n, -1), torch.zeros(n), b, replacement=replacement)
    assert math.isclose(float(out.sum()), float(terms.expected_batch_grad_sq), rel_tol=1e-12, abs_tol=1e-14)


@given(seed=seeds, n=st.integers(1, 6), split=st.integers(0, 5), lr=st.floats(1e-3, 1.0), coef=st.floats(-1.0, 1.0))
def test_hessian_gradient_product_and_entropic_force_on_quadratics(seed, n, split, lr, coef):
    """On L = t^T A t / 2 - b^T t: H grad L = A (A t - b); the force is -2 coef lr A (A t - b) = -(grad F - grad L)."""
    a, b, t0, loss, params = quadratic(gen(seed), n, split)
    ref = a @ (a @ t0 - b)
    big = 1 + float(a.abs().max()) ** 2 * (1 + float(t0.abs().max()) + float(b.abs().max())) * n
    hg = entropic.hessian_gradient_product(loss, params)
    assert type(hg) is type(params)
    assert close(flat(hg), ref, 1e-12, big)
    f = entropic.entropic_force(loss, params, lr, coef=coef)
    assert type(f) is type(params)
    assert close(flat(f), -2 * coef * lr * ref, 1e-12, big)
    gap = flat(grads.grad(entropic.entropic_loss(loss, lr, coef=coef), params)) - flat(grads.grad(loss, params))
    assert close(flat(f), -gap, 1e-12, big)


def test_the_default_coefficient_is_one_quarter():
    loss = lambda t: 0.5 * (t ** 2).sum()
    t = torch.tensor([2.0, -1.0])
    assert float(entropic.entropic_loss(loss, 0.4)(t).detach()) == pytest.approx(2.5 + 0.1 * 5.0, rel=1e-15)
    assert torch.equal(entropic.entropic_force(loss, t, 0.4), -0.2 * t)


@pytest.mark.parametrize("call,exc,msg", [
    (lambda: entropic.entropic_loss(lambda t: t.sum(), lr=float("nan")), ValueError, "lr must be >= 0"),
    (lambda: entropic.entropic_loss(lambda t: t.sum(), -0.1), ValueError, "lr must be >= 0"),
    (lambda: entropic.entropic_loss(3.0, lr=0.1), TypeError, "loss_fn must be callable"),
    (lambda: entropic.entropic_loss(lambda t: t.sum(), 0.1, coef=float("inf")), ValueError, "coef must be finite"),
    (lambda: entropic.entropic_force(lambda t: t.sum(), torch.ones(2), 0.1, coef=float("nan")), ValueError,
     "coef must be finite"),
    (lambda: entropic.entropic_force(lambda t: t.sum(), torch.ones(2), -1.0), ValueError, "lr must be >= 0"),
    (lambda: entropic.sgd_entropic_terms(torch.ones(4, 2), torch.ones(3), 2), ValueError, "losses has 3 entries"),
    (lambda: entropic.sgd_entropic_terms(torch.ones(4, 2), torch.ones(4), 0), ValueError, "batch_size must be >= 1"),
    (lambda: entropic.sgd_entropic_terms(torch.ones(4), torch.ones(4), 1), ValueError, "sample_grads must have 2"),
    (lambda: entropic.sgd_entropic_terms(torch.ones(0, 2), torch.ones(0), 1), ValueError,
     "leading samples dimension of size >= 1"),
    (lambda: entropic.sgd_entropic_terms(torch.ones(3, 2), torch.ones(3), 4, replacement=False), ValueError,
     "batch_size=4 exceeds the 3 samples"),
    (lambda: entropic.expected_batch_sq(torch.ones(6, 3), 7, replacement=False), ValueError, "batch_size=7"),
    (lambda: entropic.expected_batch_sq(torch.ones(6, 3), 1.5), TypeError, "batch_size must be an int"),
    (lambda: entropic.expected_batch_sq(torch.tensor(1.0), 1), ValueError, "leading samples dimension"),
])
def test_bad_input_names_the_argument(call, exc, msg):
    with pytest.raises(exc, match=msg):
        call()
