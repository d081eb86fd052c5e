"""ntlib.sharpness against dense Hessians and the closed form S(r)."""

import math

import pytest
import torch

from ntlib import linear, sharpness, theory
from ntlib.config import generator
from ntlib.linalg import sqrtm_psd

torch.set_default_dtype(torch.float64)


def dense_hessian_top(ws, sigma_x, v_star, gauss_newton=False):
    """Top eigenvalue of the dense Hessian of E|W_D..W_1 x - y|^2 for run 0 of ws."""
    shapes = [w.shape[1:] for w in ws]
    sizes = [math.prod(s) for s in shapes]

    def loss(flat):
        parts = [p.view(s) for p, s in zip(torch.split(flat, sizes), shapes)]
        k = parts[0]
        for p in parts[1:]:
            k = p @ k
        r = k - v_star
        return torch.trace(r @ sigma_x @ r.T)

    flat = torch.cat([w[0].reshape(-1) for w in ws])
    if gauss_newton:
        def k_of(flat):
            parts = [p.view(s) for p, s in zip(torch.split(flat, sizes), shapes)]
            k = parts[0]
            for p in parts[1:]:
                k = p @ k
            return (k @ sqrtm_psd(sigma_x)).reshape(-1)
        j = torch.autograd.functional.jacobian(k_of, flat)
        h = 2 * j.T @ j
    else:
        h = torch.autograd.functional.hessian(loss, flat)
    return torch.linalg.eigvalsh(h)[-1].item()


@pytest.mark.parametrize("widths", [[3, 4, 2], [3, 2, 4, 2], [2, 3, 3, 3, 2]])
def test_gauss_newton_sharpness_matches_dense(widths):
    g = generator(1)
    ws = linear.init_weights(widths, 3, g)
    a = torch.randn(widths[0], widths[0], generator=g)
    sx = a @ a.T + 0.5 * torch.eye(widths[0])
    for sigma in (None, sx):
        got = sharpness.gauss_newton_sharpness(ws, sigma)
        for run in range(3):
            ref = dense_hessian_top([w[run:run + 1] for w in ws], torch.eye(widths[0]) if sigma is None else sigma,
                                    torch.zeros(widths[-1], widths[0]), gauss_newton=True)
            assert math.isclose(got[run].item(), ref, rel_tol=1e-10)
    # the general Kronecker route agrees with the two-layer shortcut
    if len(widths) == 3:
        full = torch.linalg.eigvalsh(sharpness.gauss_newton_matrix(ws))[..., -1]
        assert torch.allclose(full, sharpness.gauss_newton_sharpness(ws), rtol=1e-12)


def test_gauss_newton_is_hessian_at_a_global_minimum():
    g = generator(2)
    v = torch.randn(2, 3, generator=g)
    sx = torch.diag(torch.tensor([1.0, 2.0, 0.5]))
    w = torch.randn(1, 4, 3, generator=g)
    u = (v @ torch.linalg.pinv(w[0])).unsqueeze(0)  # U W = V
    assert torch.allclose(u[0] @ w[0], v, atol=1e-12)
    ref = dense_hessian_top([w, u], sx, v)
    assert math.isclose(sharpness.gauss_newton_sharpness([w, u], sx).item(), ref, rel_tol=1e-10)
    # away from the minimum the residual term makes them differ
    w2 = w + 0.3
    assert not math.isclose(sharpness.gauss_newton_sharpness([w2, u], sx).item(),
                            dense_hessian_top([w2, u], sx, v), rel_tol=1e-3)


@pytest.mark.parametrize("r", [1.0, 0.5, 0.1, 0.01])
def test_entropic_sharpness_is_s_of_r(r):
    eye = torch.eye(2)
    for scale in (1.0, 7.0):  # only the shape of the noise matters
        se = scale * torch.diag(torch.tensor([1.0, r]))
        assert math.isclose(sharpness.entropic_sharpness(eye, se, eye), theory.diagonal_noise_sharpness(r),
                            rel_tol=1e-12)


def test_entropic_sharpness_matches_dense_hessian_general():
    g = generator(3)
    v = torch.randn(3, 3, generator=g)  # invertible teacher, hidden width = rank
    a, b = torch.randn(3, 3, generator=g), torch.randn(3, 3, generator=g)
    sx, se = a @ a.T + 0.3 * torch.eye(3), b @ b.T + 0.3 * torch.eye(3)
    wtw, _ = theory.two_layer_entropic_solution(sx, se, v)
    w = sqrtm_psd(wtw)  # a square root with W^T W = wtw; U = V W^{-1}
    u = v @ torch.linalg.inv(w)
    ref = dense_hessian_top([w.unsqueeze(0), u.unsqueeze(0)], sx, v)
    assert math.isclose(sharpness.entropic_sharpness(sx, se, v), ref, rel_tol=1e-9)


def test_edge_balance_inverts_s_of_r():
    lrs = torch.tensor([0.05, 0.1, 0.2, 0.4])
    r = sharpness.edge_balance(lrs)
    for lr, rr in zip(lrs, r):
        assert 0 < rr <= 1
        assert math.isclose(theory.diagonal_noise_sharpness(rr.item()), 2 / lr.item(), rel_tol=1e-9)
    assert math.isnan(sharpness.edge_balance(0.6).item())  # 2/eta < 4 = S(1): nothing is stable
    assert math.isclose(sharpness.edge_balance(0.5).item(), 1.0, rel_tol=1e-9)


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="lr must be > 0"):
        sharpness.edge_balance(torch.tensor([0.1, -1.0]))
    with pytest.raises(ValueError, match="do not chain"):
        sharpness.gauss_newton_sharpness([torch.zeros(1, 3, 2), torch.zeros(1, 2, 2)])
    with pytest.raises(ValueError, match="sigma_x must be"):
        sharpness.gauss_newton_sharpness([torch.ones(1, 3, 2), torch.ones(1, 2, 3)], torch.eye(3))
    with pytest.raises(TypeError, match="weights"):
        sharpness.gauss_newton_sharpness(torch.zeros(1, 2, 2))


def test_population_sharpness_matches_dense_and_gauss_newton_at_minimum():
    g = generator(4)
    v = torch.randn(2, 3, generator=g)
    sx = torch.diag(torch.tensor([1.0, 2.0, 0.5]))
    t = linear.teacher(v, sx)
    ws = linear.init_weights([3, 4, 2], 3, g)
    got = sharpness.population_sharpness(ws, t)
    for run in range(3):
        ref = dense_hessian_top([w[run:run + 1] for w in ws], sx, v)
        assert math.isclose(got[run].item(), ref, rel_tol=1e-10)
    w = ws[0]
    u = v @ torch.linalg.pinv(w)  # a global minimum per run
    assert torch.allclose(sharpness.population_sharpness([w, u], t), sharpness.gauss_newton_sharpness([w, u], sx),
                          rtol=1e-10)
    with pytest.raises(ValueError, match="teacher maps"):
        sharpness.population_sharpness([w], t)


def test_population_sharpness_matches_lanczos():
    from ntlib import hessian
    g = generator(5)
    t = linear.teacher(torch.randn(3, 3, generator=g))
    ws = linear.init_weights([3, 4, 4, 3], 2, g)
    got = sharpness.population_sharpness(ws, t)
    for run in range(2):
        loss = lambda p: linear.population_loss([q.unsqueeze(0) for q in p], t, label_noise=False).sum()
        top = hessian.top_eigenvalues(loss, tuple(w[run] for w in ws), tol=1e-10, generator=generator(6))
        assert top.converged and math.isclose(top.values[0].item(), got[run].item(), rel_tol=1e-8)
