"""ntlib.symmetry: orbits and charges, the exact per-step identities, neuron and matrix balance.

Hand-computed cases, exact identities on random networks (hypothesis) and the one-call
helpers against the definitions they wrap.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, strategies as st

from ntlib import entropic, linalg, linear, mlp, symmetry as sym
from ntlib.config import generator
from ntlib.grads import per_sample_grads

from helpers import close, gen, random_teacher, randn, seeds


# ---- orbit, charge and the exact step identity -----------------------------------------------------

def test_orbit_and_charge_hand_computed():
    w, u = torch.tensor([3.0, 4.0]), torch.tensor([2.0])
    assert float(sym.charge((w, u), (1, -1))) == 25.0 - 4.0
    w2, u2 = sym.orbit((w, u), (1, -1), math.log(2.0))
    assert torch.allclose(w2, 2 * w) and torch.allclose(u2, u / 2)
    assert float(sym.charge(torch.tensor([1.0, 2.0]), (3.0,))) == 15.0
    assert float(sym.charge(torch.tensor([1.0, 2.0]), (torch.tensor([1.0, -1.0]),))) == -3.0  # per-entry diagonal
    assert isinstance(sym.orbit(torch.ones(2), 1.0, 0.5), torch.Tensor)


def _relu_loss(params, x, y):
    w, b, u = params
    return ((torch.relu(x @ w.T + b) @ u.T - y) ** 2).sum(-1).mean()


def _relu_params(g, h=4, d=3, o=2):
    return (torch.randn(h, d, generator=g), torch.randn(h, generator=g), torch.randn(o, h, generator=g))


def test_with_biases_the_orbit_keeps_the_loss_and_only_a_symmetry_gives_the_step_identity():
    g = generator(1)
    p = _relu_params(g)
    x, y = torch.randn(5, 3, generator=g), torch.randn(5, 2, generator=g)
    a_in = torch.zeros(4, 1)
    a_in[2] = 1
    a = (a_in, a_in[:, 0], -a_in[:, 0])  # neuron 2 only: incoming (w, b) * e^lam, outgoing * e^-lam
    q = sym.orbit(p, a, 0.7)
    assert torch.allclose(_relu_loss(p, x, y), _relu_loss(q, x, y), atol=1e-12)
    pr = tuple(t.clone().requires_grad_(True) for t in p)
    gr = torch.autograd.grad(_relu_loss(pr, x, y), pr)
    lr = 0.3
    nxt = tuple(t - lr * gt for t, gt in zip(p, gr))
    assert float(sym.charge_step_residual(p, nxt, gr, lr, a)) < 1e-12
    bad = (torch.ones(4, 1), torch.ones(4), torch.ones(1, 4))  # not a symmetry of the loss
    assert float(sym.charge_step_residual(p, nxt, gr, lr, bad)) > 1e-3


@given(seed=seeds, runs=st.integers(1, 3), h=st.integers(1, 5), d=st.integers(1, 4), o=st.integers(1, 3),
       n=st.integers(1, 6), lr=st.floats(1e-3, 0.5))
def test_relu_net_charge_step_identity_and_orbit(seed, runs, h, d, o, n, lr):
    """U relu(W x) has a rescaling symmetry per neuron: the loss is constant on the orbit, and one GD step
    changes each neuron's charge |w_i|^2 - |u_i|^2 by exactly lr^2 (|g_wi|^2 - |g_ui|^2)."""
    g = gen(seed)
    w, u = randn(g, runs, h, d), randn(g, runs, o, h)
    x, y = randn(g, runs, n, d), randn(g, runs, n, o)
    loss, (gw, gu) = mlp.relu_loss_and_grads([w, u], x, y)
    theta, grads = (w, u), (gw, gu)
    nxt = (w - lr * gw, u - lr * gu)
    inc, out = sym.neuron_split(w, None, u)
    for i in range(h):
        e = torch.zeros(h)
        e[i] = 1.0
        a = (e[:, None], -e[None, :])  # +1 on row i of W, -1 on column i of U
        scale = 1 + float((w * w).sum() + (u * u).sum()) + lr ** 2 * float((gw * gw).sum() + (gu * gu).sum())
        assert float(sym.charge_step_residual(theta, nxt, grads, lr, a)) <= 1e-12 * scale
        lam = float(torch.rand((), generator=g)) * 2 - 1
        w2, u2 = sym.orbit(theta, a, lam)
        loss2, _ = mlp.relu_loss_and_grads([w2, u2], x, y)
        assert close(loss2, loss, 1e-11)
        # the charge along the orbit is e^{2 lam} |w_i|^2 - e^{-2 lam} |u_i|^2
        assert close(sym.charge(theta, a), (inc - out)[..., i].sum(), 1e-12)
        assert close(sym.charge((w2, u2), a),
                     math.exp(2 * lam) * inc[..., i].sum() - math.exp(-2 * lam) * out[..., i].sum(), 1e-11)


# ---- neuron balance ------------------------------------------------------------------------------------

@given(seed=seeds, runs=st.integers(1, 3), h=st.integers(1, 5), d=st.integers(1, 4), o=st.integers(1, 3),
       bias=st.booleans())
def test_neuron_split_sums_and_squared_mode(seed, runs, h, d, o, bias):
    """Per-neuron squared norms sum to the totals; squared=True on the squares gives the same."""
    g = gen(seed)
    w, u = randn(g, runs, h, d), randn(g, runs, o, h)
    b = randn(g, runs, h) if bias else None
    inc, out = sym.neuron_split(w, b, u)
    assert inc.shape == out.shape == (runs, h)
    assert close(inc, (w * w).sum(-1) + (b * b if bias else 0), 1e-13) and close(out, (u * u).sum(-2), 1e-13)
    inc2, out2 = sym.neuron_split(w * w, None if b is None else b * b, u * u, squared=True)
    assert close(inc2, inc, 1e-14) and close(out2, out, 1e-14)


@given(seed=seeds, n=st.integers(1, 4), h=st.integers(1, 3), d=st.integers(1, 3), o=st.integers(1, 2),
       b=st.integers(1, 3), bias=st.booleans(), replacement=st.booleans())
def test_neuron_balance_sides_match_enumeration_of_batches(seed, n, h, d, o, b, bias, replacement):
    """(E_B|grad_in l_B|^2, E_B|grad_out l_B|^2) per neuron, averaged over every minibatch of the N samples."""
    if not replacement and b > n:
        b = n
    g = gen(seed)
    gw, gu = randn(g, n, h, d), randn(g, n, o, h)
    gb = randn(g, n, h) if bias else None
    inc, out = sym.neuron_balance_sides(gw, gb, gu, b, replacement=replacement)
    assert inc.shape == out.shape == (h,)
    batches = itertools.product(range(n), repeat=b) if replacement else itertools.combinations(range(n), b)
    sides = [sym.neuron_split(gw[list(i)].mean(0), None if gb is None else gb[list(i)].mean(0), gu[list(i)].mean(0))
             for i in batches]
    assert close(inc, torch.stack([s[0] for s in sides]).mean(0), 1e-12)
    assert close(out, torch.stack([s[1] for s in sides]).mean(0), 1e-12)
    sq = lambda t: None if t is None else entropic.expected_batch_sq(t, b, replacement=replacement)
    ref = sym.neuron_split(sq(gw), sq(gb), sq(gu), squared=True)
    assert torch.equal(inc, ref[0]) and torch.equal(out, ref[1])


def test_balance_ratio_under_the_symmetry():
    """Rescaling one neuron by e^lam scales its balance sides by (e^-2lam, e^2lam): the log ratio shifts by
    exactly -4 lam for that neuron only; permuting neurons permutes it."""
    g = generator(3)
    p = _relu_params(g, h=4)
    x, y = torch.randn(40, 3, generator=g), torch.randn(40, 2, generator=g)
    sample = lambda params, xi, yi: _relu_loss(params, xi[None], yi[None])

    def ratios(params):
        return sym.balance_log_ratio(*sym.neuron_balance_sides(*per_sample_grads(sample, params, x, y), 4))

    r0 = ratios(p)
    a_in = torch.zeros(4, 1)
    a_in[1] = 1
    lam = 0.4
    r1 = ratios(sym.orbit(p, (a_in, a_in[:, 0], -a_in[:, 0]), lam))
    shift = torch.zeros(4)
    shift[1] = -4 * lam
    assert torch.allclose(r1, r0 + shift, atol=1e-10)
    perm = torch.tensor([2, 0, 3, 1])
    w, b, u = p
    assert torch.allclose(ratios((w[perm], b[perm], u[:, perm])), r0[perm], atol=1e-12)


@given(seed=seeds, t=st.integers(1, 5), h=st.integers(1, 5), j=st.integers(0, 4), c=st.floats(0.01, 100.0))
def test_balance_log_ratio_rescaling(seed, t, h, j, c):
    """The ratio of time averages; scaling one neuron's incoming series by c shifts its log ratio by log c only;
    a common scale changes nothing; swapping the arguments flips the sign; layer=True sums over neurons."""
    j = j % h
    g = gen(seed)
    inc, out = randn(g, t, h).abs() + 0.1, randn(g, t, h).abs() + 0.1
    r = sym.balance_log_ratio(inc, out, time_dim=0)
    assert close(r, torch.log(inc.mean(0) / out.mean(0)), 1e-13)
    inc2 = inc.clone()
    inc2[:, j] *= c
    shift = torch.zeros(h)
    shift[j] = math.log(c)
    assert close(sym.balance_log_ratio(inc2, out, time_dim=0), r + shift, 1e-12)
    assert close(sym.balance_log_ratio(c * inc, c * out, time_dim=0), r, 1e-12)
    assert close(sym.balance_log_ratio(out, inc, time_dim=0), -r, 1e-14)
    assert close(sym.balance_log_ratio(inc, out, time_dim=0, layer=True), torch.log(inc.sum() / out.sum()), 1e-12)
    assert close(sym.balance_log_ratio(inc, out), torch.log(inc / out), 1e-14)


# ---- matrix balance -----------------------------------------------------------------------------------

@given(seed=seeds, runs=st.integers(1, 3), h=st.integers(1, 4), d=st.integers(1, 4), o=st.integers(1, 3),
       n=st.integers(1, 6), lr=st.floats(1e-3, 0.5))
def test_matrix_step_residual_vanishes_for_losses_of_uw(seed, runs, h, d, o, n, lr):
    """For any loss of K = U W (here a nonlinear one of a random batch) one GD step changes U^T U - W W^T by
    exactly lr^2 (gu^T gu - gw gw^T); matrix_charge is that charge and rotates covariantly."""
    g = gen(seed)
    w, u = randn(g, runs, h, d), randn(g, runs, o, h)
    x, y = randn(g, runs, n, d), randn(g, runs, n, o)
    wl, ul = w.clone().requires_grad_(True), u.clone().requires_grad_(True)
    loss = (torch.tanh(x @ (ul @ wl).transpose(-1, -2) - y) ** 2).sum()
    gw, gu = torch.autograd.grad(loss, [wl, ul])
    res = sym.matrix_step_residual(w, u, w - lr * gw, u - lr * gu, gw, gu, lr)
    scale = (1 + float(w.abs().max() ** 2 + u.abs().max() ** 2)
             + lr ** 2 * float(gw.abs().max() ** 2 + gu.abs().max() ** 2))
    assert res.shape == (runs,)
    assert float(res.max()) <= 1e-12 * scale * max(d, o, h)
    q = sym.matrix_charge(w, u)
    assert close(q, u.transpose(-1, -2) @ u - w @ w.transpose(-1, -2), 1e-14)
    r = linalg.random_orthogonal(h, g)
    assert close(sym.matrix_charge(r @ w, u @ r.T), r @ q @ r.T, 1e-12, 1 + float(q.abs().max()))


def test_matrix_balance_sides_are_the_two_halves_of_a_linear_sgd_step():
    """For a linear net the step of the charge is lr^2 (W G^T G W^T - U^T G G^T U) with G = dl/dK."""
    g = generator(7)
    t = linear.teacher(torch.randn(2, 3, generator=g))
    ws = linear.init_weights([3, 4, 2], 3, g)
    x, y = linear.sample(t, (3, 5), g)
    wr = [w.clone().requires_grad_(True) for w in ws]
    loss = ((linear.forward(wr, x) - y) ** 2).sum(-1).mean(-1).sum()
    gw, gu = torch.autograd.grad(loss, wr)
    lr = 0.2
    res = sym.matrix_step_residual(ws[0], ws[1], ws[0] - lr * gw, ws[1] - lr * gu, gw, gu, lr)
    assert res.shape == (3,) and float(res.max()) < 1e-12
    gk = torch.linalg.lstsq(ws[1].transpose(1, 2), gw).solution  # U^T G = gw (U^T has full column rank)
    lhs, rhs = sym.matrix_balance_sides(ws[0], ws[1], gk.transpose(1, 2) @ gk, gk @ gk.transpose(1, 2))
    assert torch.allclose(gu.transpose(1, 2) @ gu - gw @ gw.transpose(1, 2), lhs - rhs, atol=1e-10)


@given(seed=seeds, runs=st.integers(1, 3), h=st.integers(1, 5), c=st.floats(0.01, 100.0))
def test_matrix_balance_error_invariances_and_bounds(seed, runs, h, c):
    """In [0, 2], symmetric, zero at equality, invariant under a common rotation and a common scale."""
    g = gen(seed)
    lhs, rhs = randn(g, runs, h, h), randn(g, runs, h, h)
    lhs, rhs = lhs @ lhs.transpose(-1, -2), rhs @ rhs.transpose(-1, -2)
    e = sym.matrix_balance_error(lhs, rhs)
    assert e.shape == (runs,)
    assert bool((e >= 0).all()) and bool((e <= 2 + 1e-14).all())
    assert close(sym.matrix_balance_error(rhs, lhs), e, 1e-14)
    assert float(sym.matrix_balance_error(lhs, lhs).abs().max()) == 0.0
    r = linalg.random_orthogonal(h, g, runs=runs)
    rot = lambda m: r @ m @ r.transpose(-1, -2)
    assert close(sym.matrix_balance_error(rot(lhs), rot(rhs)), e, 1e-12)
    assert close(sym.matrix_balance_error(c * lhs, c * rhs), e, 1e-12)
    assert close(sym.matrix_balance_error(lhs, -lhs), torch.full((runs,), 2.0), 1e-14)  # opposite sides: the bound


def test_matrix_balance_error_hand_computed():
    a, b = torch.diag(torch.tensor([3.0, 0.0])), torch.diag(torch.tensor([0.0, 4.0]))
    assert math.isclose(float(sym.matrix_balance_error(a, b)), 2 * 5 / 7)


@given(seed=seeds, widths=st.lists(st.integers(1, 3), min_size=3, max_size=4), i=st.integers(0, 2),
       bsz=st.integers(1, 4), noise=st.booleans())
def test_layer_pair_balance_is_matrix_balance_of_the_pair_moments(seed, widths, i, bsz, noise):
    """The one-call helper equals matrix_balance_sides(W_i, W_{i+1}, *pair_moments(...)); a hidden rotation of the
    pair rotates both sides and keeps the balance error."""
    i = i % (len(widths) - 2)
    g = gen(seed)
    ws = [randn(g, 2, b, a) for a, b in zip(widths[:-1], widths[1:])]
    t = random_teacher(g, widths[0], widths[-1])
    lhs, rhs = sym.layer_pair_balance(ws, i, t, batch_size=bsz, label_noise=noise)
    ref = sym.matrix_balance_sides(ws[i], ws[i + 1], *linear.pair_moments(ws, i, t, batch_size=bsz,
                                                                          label_noise=noise))
    assert torch.equal(lhs, ref[0]) and torch.equal(rhs, ref[1])
    r = linalg.random_orthogonal(widths[i + 1], g)
    rotated = list(ws)
    rotated[i], rotated[i + 1] = r @ ws[i], ws[i + 1] @ r.T
    lhs2, rhs2 = sym.layer_pair_balance(rotated, i, t, batch_size=bsz, label_noise=noise)
    big = 1 + float(lhs.abs().max() + rhs.abs().max())
    assert close(lhs2, r @ lhs @ r.T, 1e-12, big) and close(rhs2, r @ rhs @ r.T, 1e-12, big)
    assert close(sym.matrix_balance_error(lhs2, rhs2), sym.matrix_balance_error(lhs, rhs), 1e-10)


@pytest.mark.parametrize("call,exc,msg", [
    (lambda: sym.charge((torch.ones(2), torch.ones(3)), (1,)), ValueError, "one diagonal block per parameter"),
    (lambda: sym.charge((torch.ones(2, 3),), (torch.ones(4),)), ValueError, r"a\[0\] of shape \(4,\)"),
    (lambda: sym.charge_step_residual(torch.ones(2), torch.ones(3), torch.ones(2), 0.1, (1,)), ValueError,
     "theta_next must have the shapes of theta"),
    (lambda: sym.charge_step_residual(torch.ones(2), torch.ones(2), torch.ones(2), -0.1, (1,)), ValueError,
     "lr must be >= 0"),
    (lambda: sym.neuron_split(torch.ones(2, 3), None, torch.ones(1, 3)), ValueError, "u must have h = 2"),
    (lambda: sym.neuron_split(torch.ones(2, 3), torch.ones(3), torch.ones(1, 2)), ValueError, "b must have shape"),
    (lambda: sym.neuron_split(torch.ones(3), None, torch.ones(1, 3)), ValueError, r"w must be \(..., h, d\)"),
    (lambda: sym.neuron_balance_sides(torch.ones(4, 2, 3), None, torch.ones(4, 1, 2), 0), ValueError,
     "batch_size must be >= 1"),
    (lambda: sym.neuron_balance_sides([1.0], None, torch.ones(4, 1, 2), 1), TypeError, "grad_w must be a torch.Tensor"),
    (lambda: sym.balance_log_ratio(torch.ones(2, 2), torch.ones(2, 1)), ValueError, "same shape"),
    (lambda: sym.balance_log_ratio(-torch.ones(2), torch.ones(2)), ValueError, "non-negative"),
    (lambda: sym.balance_log_ratio(torch.ones(2, 2), torch.ones(2, 2), time_dim=3), ValueError, "time_dim=3"),
    (lambda: sym.balance_log_ratio(torch.zeros(2), torch.ones(2)), ValueError, "undefined"),
    (lambda: sym.matrix_charge(torch.ones(2, 3), torch.ones(2, 3)), ValueError, "u W must be defined"),
    (lambda: sym.matrix_step_residual(torch.eye(2), torch.eye(2), torch.eye(2), torch.eye(2), torch.eye(2),
                                      torch.ones(2, 3), 0.1), ValueError, "gu must have shape"),
    (lambda: sym.matrix_balance_sides(torch.ones(4, 3), torch.ones(2, 4), torch.eye(2), torch.eye(3)), ValueError,
     "gtg must be 3x3 and ggt 2x2"),
    (lambda: sym.matrix_balance_error(torch.eye(2), torch.eye(3)), ValueError, "same shape"),
    (lambda: sym.matrix_balance_error(torch.zeros(2, 2), torch.zeros(2, 2)), ValueError, "both sides are zero"),
    (lambda: sym.layer_pair_balance([torch.ones(4, 3), torch.ones(2, 4)], 1, linear.teacher(torch.ones(2, 3))),
     ValueError, "adjacent pair"),
])
def test_bad_input_names_the_argument(call, exc, msg):
    with pytest.raises(exc, match=msg):
        call()
