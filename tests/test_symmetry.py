"""ntlib.symmetry against hand-computed cases, autograd and Monte Carlo."""

import math

import pytest
import torch

from ntlib import linear, symmetry as sym
from ntlib.config import generator
from ntlib.dynamics import DivergenceError
from ntlib.grads import per_sample_grads

torch.set_default_dtype(torch.float64)


# ---------------------------------------------------------------- orbit, charge, step identity

def test_orbit_and_charge_hand_computed():
    w, u = torch.tensor([3.0, 4.0]), torch.tensor([2.0])
    assert float(sym.charge((w, u), (1, -1))) == 25.0 - 4.0
    w2, u2 = sym.orbit((w, u), (1, -1), math.log(2.0))
    assert torch.allclose(w2, 2 * w) and torch.allclose(u2, u / 2)
    assert float(sym.charge(torch.tensor([1.0, 2.0]), (3.0,))) == 15.0
    # per-entry diagonal
    assert float(sym.charge(torch.tensor([1.0, 2.0]), (torch.tensor([1.0, -1.0]),))) == -3.0


def _relu_loss(params, x, y):
    w, b, u = params
    return ((torch.relu(x @ w.T + b) @ u.T - y) ** 2).sum(-1).mean()


def _relu_params(g, h=4, d=3, o=2):
    return (torch.randn(h, d, generator=g), torch.randn(h, generator=g), torch.randn(o, h, generator=g))


def test_relu_loss_is_invariant_on_the_orbit_and_the_step_identity_is_exact():
    g = generator(1)
    p = _relu_params(g)
    x, y = torch.randn(5, 3, generator=g), torch.randn(5, 2, generator=g)
    # rescale neuron 2 only: incoming * e^lam, outgoing * e^-lam
    a_in = torch.zeros(4, 1); a_in[2] = 1
    a = (a_in, a_in[:, 0], -a_in[:, 0])
    q = sym.orbit(p, a, 0.7)
    assert torch.allclose(_relu_loss(p, x, y), _relu_loss(q, x, y), atol=1e-12)
    pr = tuple(t.clone().requires_grad_(True) for t in p)
    gr = torch.autograd.grad(_relu_loss(pr, x, y), pr)
    lr = 0.3
    nxt = tuple(t - lr * gt for t, gt in zip(p, gr))
    assert float(sym.charge_step_residual(p, nxt, gr, lr, a)) < 1e-12
    # a non-symmetric A breaks it
    bad = (torch.ones(4, 1), torch.ones(4), torch.ones(1, 4))
    assert float(sym.charge_step_residual(p, nxt, gr, lr, bad)) > 1e-3


def test_charge_errors_name_the_argument():
    with pytest.raises(ValueError, match="one diagonal block per parameter"):
        sym.charge((torch.ones(2), torch.ones(3)), (1,))
    with pytest.raises(ValueError, match=r"a\[0\]"):
        sym.charge((torch.ones(2, 3),), (torch.ones(4),))
    with pytest.raises(ValueError, match="theta_next"):
        sym.charge_step_residual(torch.ones(2), torch.ones(3), torch.ones(2), 0.1, (1,))


# ---------------------------------------------------------------- neuron balance

def test_neuron_split_hand_computed_and_squared_mode():
    w = torch.tensor([[1.0, 2.0], [0.0, 3.0]])
    b = torch.tensor([2.0, 0.0])
    u = torch.tensor([[1.0, 2.0], [1.0, 0.0]])
    inc, out = sym.neuron_split(w, b, u)
    assert inc.tolist() == [9.0, 9.0] and out.tolist() == [2.0, 4.0]
    inc2, out2 = sym.neuron_split(w * w, b * b, u * u, squared=True)
    assert torch.equal(inc, inc2) and torch.equal(out, out2)
    inc3, _ = sym.neuron_split(w, None, u)
    assert inc3.tolist() == [5.0, 9.0]


def test_neuron_split_shape_errors():
    with pytest.raises(ValueError, match="u must have h = 2"):
        sym.neuron_split(torch.ones(2, 3), None, torch.ones(1, 3))
    with pytest.raises(ValueError, match="b must have shape"):
        sym.neuron_split(torch.ones(2, 3), torch.ones(3), torch.ones(1, 2))


def test_expected_batch_sq_matches_enumeration():
    g = generator(2)
    s = torch.randn(6, 3, generator=g) + 0.5
    # without replacement: all C(6,2) batches
    import itertools
    bs = [s[list(c)].mean(0) ** 2 for c in itertools.combinations(range(6), 2)]
    ref = torch.stack(bs).mean(0)
    assert torch.allclose(sym.expected_batch_sq(s, 2, replacement=False), ref, atol=1e-12)
    # with replacement: all ordered pairs
    bs = [((s[i] + s[j]) / 2) ** 2 for i in range(6) for j in range(6)]
    assert torch.allclose(sym.expected_batch_sq(s, 2), torch.stack(bs).mean(0), atol=1e-12)
    with pytest.raises(ValueError, match="batch_size=7"):
        sym.expected_batch_sq(s, 7, replacement=False)


def test_balance_metric_under_the_symmetry():
    """Rescaling one neuron by e^lam scales its gradient split by (e^-2lam, e^2lam): the
    log ratio shifts by exactly -4 lam for that neuron only; permuting neurons permutes it."""
    g = generator(3)
    p = _relu_params(g, h=4)
    x, y = torch.randn(40, 3, generator=g), torch.randn(40, 2, generator=g)
    sample = lambda params, xi, yi: _relu_loss(params, xi[None], yi[None])

    def ratios(params):
        gw, gb, gu = (sym.expected_batch_sq(t, 4) for t in per_sample_grads(sample, params, x, y))
        return sym.balance_log_ratio(*sym.neuron_split(gw, gb, gu, squared=True))

    r0 = ratios(p)
    a_in = torch.zeros(4, 1); a_in[1] = 1
    lam = 0.4
    r1 = ratios(sym.orbit(p, (a_in, a_in[:, 0], -a_in[:, 0]), lam))
    shift = torch.zeros(4); shift[1] = -4 * lam
    assert torch.allclose(r1, r0 + shift, atol=1e-10)
    perm = torch.tensor([2, 0, 3, 1])
    w, b, u = p
    assert torch.allclose(ratios((w[perm], b[perm], u[:, perm])), r0[perm], atol=1e-12)


def test_balance_log_ratio_time_average_and_layer():
    inc = torch.tensor([[1.0, 4.0], [3.0, 4.0]])   # (time, neuron)
    out = torch.tensor([[2.0, 1.0], [2.0, 1.0]])
    r = sym.balance_log_ratio(inc, out, time_dim=0)
    assert torch.allclose(r, torch.log(torch.tensor([1.0, 4.0])))
    r_layer = sym.balance_log_ratio(inc, out, time_dim=0, layer=True)
    assert math.isclose(float(r_layer), math.log(6.0 / 3.0))
    with pytest.raises(ValueError, match="same shape"):
        sym.balance_log_ratio(inc, out[:, :1])
    with pytest.raises(ValueError, match="non-negative"):
        sym.balance_log_ratio(-inc, out)
    with pytest.raises(ValueError, match="time_dim"):
        sym.balance_log_ratio(inc, out, time_dim=3)
    with pytest.raises(ValueError, match="undefined"):
        sym.balance_log_ratio(torch.zeros(2), torch.ones(2))


# ---------------------------------------------------------------- matrix balance

def _teacher(g, d=3, o=2):
    v = torch.randn(o, d, generator=g)
    sx = torch.diag(torch.tensor([1.0, 2.0, 0.5]))
    se = torch.diag(torch.tensor([0.7, 0.3]))
    return v, sx, se


@pytest.mark.parametrize("i", [0, 1])
def test_linear_pair_moments_match_monte_carlo(i):
    g = generator(4)
    v, sx, se = _teacher(g)
    ws = [torch.randn(4, 3, generator=g) / 2, torch.randn(3, 4, generator=g) / 2, torch.randn(2, 3, generator=g) / 2]
    n = 400_000
    x = torch.randn(n, 3, generator=g) @ torch.sqrt(sx)
    y = x @ v.T + torch.randn(n, 2, generator=g) @ torch.sqrt(se)
    # G = dl/dK for K = W_{i+1} W_i: P^T 2r (Q x)^T
    p = ws[2] if i == 0 else torch.eye(2)
    q = torch.eye(3) if i == 0 else ws[0]
    r = 2 * (x @ (ws[2] @ ws[1] @ ws[0]).T - y)
    a, bq = r @ p, x @ q.T                     # G = a bq^T per sample
    gtg_mc = (bq.T * (a * a).sum(1)) @ bq / n
    ggt_mc = (a.T * (bq * bq).sum(1)) @ a / n
    gtg, ggt = sym.linear_pair_moments(ws, i, v, sx, se)
    assert torch.allclose(gtg, gtg_mc, rtol=0.03, atol=0.03 * float(gtg.abs().max()))
    assert torch.allclose(ggt, ggt_mc, rtol=0.03, atol=0.03 * float(ggt.abs().max()))


def test_linear_pair_moments_batch_and_closed_form_at_the_minimum():
    # at K = V*: E[G^T G] = 4 Tr(Se) Sx and E[G G^T] = 4 Tr(Sx) Se for every batch size
    g = generator(5)
    v, sx, se = _teacher(g)
    w = torch.randn(3, 3, generator=g) + 2 * torch.eye(3)
    u = v @ torch.linalg.inv(w)
    for bsz in (1, 4):
        gtg, ggt = sym.linear_pair_moments([w, u], 0, v, sx, se, batch_size=bsz)
        assert torch.allclose(gtg, 4 * torch.trace(se) * sx / bsz, atol=1e-10)
        assert torch.allclose(ggt, 4 * torch.trace(sx) * se / bsz, atol=1e-10)
    # batched over runs, and the minibatch formula E[G]^T E[G] + Cov/B checked by Monte Carlo
    ws = [torch.randn(2, 3, 3, generator=g), torch.randn(2, 2, 3, generator=g)]
    gtg, ggt = sym.linear_pair_moments(ws, 0, v, sx, None, batch_size=3)
    assert gtg.shape == (2, 3, 3) and ggt.shape == (2, 2, 2)
    n = 200_000
    x = torch.randn(n, 3, 3, generator=g) @ torch.sqrt(sx)
    k = ws[1][0] @ ws[0][0]
    gb = (2 * ((x @ (k - v).T).unsqueeze(-1) * x.unsqueeze(-2))).mean(1)    # (n, 2, 3)
    assert torch.allclose(gtg[0], (gb.transpose(1, 2) @ gb).mean(0), rtol=0.03, atol=0.03 * float(gtg[0].abs().max()))


def test_linear_pair_moments_errors():
    g = generator(6)
    v, sx, se = _teacher(g)
    ws = [torch.randn(4, 3), torch.randn(2, 4)]
    with pytest.raises(ValueError, match="adjacent pair"):
        sym.linear_pair_moments(ws, 1, v, sx, se)
    with pytest.raises(ValueError, match="v_star must be"):
        sym.linear_pair_moments(ws, 0, v.T, sx, se)
    with pytest.raises(ValueError, match="positive definite"):
        sym.linear_pair_moments(ws, 0, v, sx, torch.diag(torch.tensor([1.0, -1.0])))
    with pytest.raises(ValueError, match="u W must be defined"):
        sym.linear_pair_moments([torch.randn(4, 3), torch.randn(2, 5)], 0, v, sx, se)


def test_matrix_step_identity_is_exact_for_a_linear_sgd_step():
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
    # and the right side is lr^2 (W G^T G W^T - U^T G G^T U) with G = dl/dK
    gk = torch.linalg.lstsq(ws[1].transpose(1, 2), gw).solution  # U^T G = gw (U^T has full column rank)
    lhs, rhs = sym.matrix_balance_sides(ws[0], ws[1], gk.transpose(1, 2) @ gk, gk @ gk.transpose(1, 2))
    assert torch.allclose(gu.transpose(1, 2) @ gu - gw @ gw.transpose(1, 2), lhs - rhs, atol=1e-10)
    with pytest.raises(ValueError, match="gu must have shape"):
        sym.matrix_step_residual(ws[0], ws[1], ws[0], ws[1], gw, gw, lr)


def test_matrix_balance_error_hand_computed_and_rotation_invariant():
    a, b = torch.diag(torch.tensor([3.0, 0.0])), torch.diag(torch.tensor([0.0, 4.0]))
    assert math.isclose(float(sym.matrix_balance_error(a, b)), 2 * 5 / 7)
    assert float(sym.matrix_balance_error(a, a)) == 0.0
    g = generator(8)
    v, sx, se = _teacher(g)
    w, u = torch.randn(4, 3, generator=g), torch.randn(2, 4, generator=g)
    gtg, ggt = sym.linear_pair_moments([w, u], 0, v, sx, se)
    e0 = sym.matrix_balance_error(*sym.matrix_balance_sides(w, u, gtg, ggt))
    # hidden rotation W -> R W, U -> U R^T keeps the loss, the moments and the error
    r, _ = torch.linalg.qr(torch.randn(4, 4, generator=g))
    gtg2, ggt2 = sym.linear_pair_moments([r @ w, u @ r.T], 0, v, sx, se)
    assert torch.allclose(gtg2, gtg) and torch.allclose(ggt2, ggt)
    e1 = sym.matrix_balance_error(*sym.matrix_balance_sides(r @ w, u @ r.T, gtg2, ggt2))
    assert math.isclose(float(e0), float(e1), rel_tol=1e-10)
    # the charge rotates covariantly
    assert torch.allclose(sym.matrix_charge(r @ w, u @ r.T), r @ sym.matrix_charge(w, u) @ r.T)
    with pytest.raises(ValueError, match="same shape"):
        sym.matrix_balance_error(a, torch.eye(3))
    with pytest.raises(ValueError, match="gtg must be"):
        sym.matrix_balance_sides(w, u, ggt, gtg)


def test_balanced_two_layer_solution_satisfies_matrix_balance():
    """theory.two_layer_entropic_solution is a point where the matrix-balance error vanishes."""
    from ntlib import theory
    from ntlib.linalg import sqrtm_psd
    g = generator(9)
    sx = torch.diag(torch.tensor([1.0, 2.0, 0.5]))
    se = torch.diag(torch.tensor([0.7, 0.3, 1.2]))
    v = torch.randn(3, 3, generator=g) + 2 * torch.eye(3)
    wtw, uut = theory.two_layer_entropic_solution(sx, se, v)
    w = sqrtm_psd(wtw)                            # a W (3 x 3) with W^T W = wtw
    u = v @ torch.linalg.inv(w)
    assert torch.allclose(u @ u.T, uut, atol=1e-10)
    gtg, ggt = sym.linear_pair_moments([w, u], 0, v, sx, se)
    assert float(sym.matrix_balance_error(*sym.matrix_balance_sides(w, u, gtg, ggt))) < 1e-10


def test_relative_error():
    assert math.isclose(float(sym.relative_error(torch.eye(2) * 2, torch.eye(2))), 1.0)
    with pytest.raises(ValueError, match="do not broadcast"):
        sym.relative_error(torch.eye(2), torch.eye(3))


# ---------------------------------------------------------------- toy models

def test_scale_invariant_grad_matches_autograd_and_is_orthogonal():
    g = generator(10)
    theta = torch.randn(3, 2, generator=g)
    x, y = torch.randn(3, 5, 2, generator=g), torch.randn(3, 5, generator=g)
    loss, grad = sym.scale_invariant_grad(theta, x, y)
    tr = theta.clone().requires_grad_(True)
    ref = torch.autograd.grad(sym.scale_invariant_grad(tr, x, y)[0].sum(), tr)[0]
    assert torch.allclose(grad, ref, atol=1e-12)
    assert float((grad * theta).sum(-1).abs().max()) < 1e-12
    assert torch.allclose(sym.scale_invariant_grad(5 * theta, x, y)[0], loss)
    with pytest.raises(ValueError, match="x must be"):
        sym.scale_invariant_grad(theta, x[..., :1], y)


def test_scale_invariant_train_identity_and_gd():
    g = generator(11)
    th = torch.randn(4, 2, generator=g)
    v = torch.tensor([1.0, 0.0])
    out = sym.scale_invariant_train(th, v, lr=0.1, steps=50, batch_size=2, noise=0.5, generator=g, record_every=10)
    assert out["identity_residual"] < 1e-12
    assert out["sq_norm"].shape == (6, 4) and out["steps"].tolist() == [0, 10, 20, 30, 40, 50]
    assert bool((out["sq_norm"].diff(dim=0) >= 0).all())          # the norm never shrinks
    gd = sym.scale_invariant_train(th, v, lr=0.1, steps=2000, batch_size=1, noise=0.0, generator=g, method="gd")
    n = gd["theta"] / gd["theta"].norm(dim=-1, keepdim=True)
    assert torch.allclose(n, v.expand(4, 2), atol=1e-6)           # GD aligns with the teacher


def test_rescaling_toy_sgd_balances_and_gd_conserves():
    g = generator(12)
    rho0 = torch.linspace(-1.0, 1.0, 5)
    u0, w0 = torch.exp(rho0 / 2), torch.exp(-rho0 / 2)
    assert torch.allclose(sym.orbit_log_ratio(u0, w0), rho0)
    u, w = sym.rescaling_toy_train(u0, w0, target=1.0, noise=1.0, lr=0.05, steps=3000, generator=g)
    assert float(sym.orbit_log_ratio(u, w).abs().max()) < 0.1
    u, w = sym.rescaling_toy_train(u0, w0, target=1.0, noise=1.0, lr=0.05, steps=500, generator=g, method="gd")
    assert torch.allclose(u * u - w * w, u0 * u0 - w0 * w0, atol=1e-3)
    assert math.isclose(sym.matched_temperature(0.1, 2.0, 4, 2.0), 0.1 * 4 * 2 / 4)
    with pytest.raises(ValueError, match="temperature > 0"):
        sym.rescaling_toy_train(u0, w0, target=1.0, noise=1.0, lr=0.05, steps=1, generator=g, method="langevin")


def test_rescaling_toy_divergence_raises():
    g = generator(13)
    with pytest.raises(DivergenceError):
        sym.rescaling_toy_train(torch.tensor([30.0]), torch.tensor([30.0]), target=1.0, noise=0.0, lr=1.0,
                                steps=200, generator=g, method="gd")


def test_relu_net_loss_and_grads_match_autograd():
    from ntlib import mlp
    g = generator(14)
    p = mlp.init([3, 5, 2], 4, g, bias=False)
    x, y = torch.randn(4, 7, 3, generator=g), torch.randn(4, 7, 2, generator=g)
    loss, grads = sym.relu_net_loss_and_grads(p, x, y)
    pr = [t.clone().requires_grad_(True) for t in p]
    ref = mlp.mse(pr, x, y, bias=False).sum()
    assert torch.allclose(loss, ref)
    for a, b in zip(grads, torch.autograd.grad(ref, pr)):
        assert torch.allclose(a, b, atol=1e-12)
    # the exact step identity of each neuron's charge |w_i|^2 - |u_i|^2
    lr = 0.1
    nxt = [t - lr * gt for t, gt in zip(p, grads)]
    c0 = torch.sub(*sym.neuron_split(p[0], None, p[1]))
    c1 = torch.sub(*sym.neuron_split(nxt[0], None, nxt[1]))
    dg = torch.sub(*sym.neuron_split(grads[0], None, grads[1]))
    assert float((c1 - c0 - lr ** 2 * dg).abs().max()) < 1e-12
    with pytest.raises(ValueError, match="y must be|x must be"):
        sym.relu_net_loss_and_grads(p, x, y[..., :1])
