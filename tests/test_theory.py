"""Closed forms of ntlib.theory satisfy their defining equations."""

import math

import pytest
import torch

from ntlib import theory
from ntlib.linalg import sqrtm_psd, sym_pow

torch.set_default_dtype(torch.float64)


def rand_spd(n, seed, cond=4.0):
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g))
    return q @ torch.diag(torch.logspace(0, math.log10(cond), n)) @ q.T


@pytest.mark.parametrize("seed", range(4))
def test_two_layer_solution_is_balanced_global_minimum(seed):
    d, o = 4, 3
    g = torch.Generator().manual_seed(seed)
    Sx, Se, V = rand_spd(d, seed), rand_spd(o, seed + 10), torch.randn(o, d, generator=g)
    wtw, uut = theory.two_layer_entropic_solution(Sx, Se, V)
    # realise a factorisation with a hidden width of d and check its defining equations
    W = sqrtm_psd(wtw)  # any W with W^T W = wtw; hidden width h = d
    U = V @ torch.linalg.pinv(W)
    assert torch.allclose(U @ W, V, atol=1e-10)              # global minimum of L
    assert torch.allclose(U @ U.T, uut, atol=1e-10)           # the stated U U^T
    lhs = torch.trace(Se) * W @ Sx @ W.T                      # balance condition
    rhs = torch.trace(Sx) * U.T @ Se @ U
    assert torch.allclose(lhs, rhs, atol=1e-10)


def test_universal_kernel_isotropic_and_scale():
    Sx, V = rand_spd(3, 1), torch.randn(2, 3, generator=torch.Generator().manual_seed(0))
    K = theory.universal_kernel(Sx, torch.eye(2), V)
    # K Sx K = V^T V (defining equation of the square root)
    assert torch.allclose(K @ Sx @ K, V.T @ V, atol=1e-10)
    # only the noise shape matters, up to sqrt of its scale
    assert torch.allclose(theory.universal_kernel(Sx, 4 * torch.eye(2), V), 2 * K, atol=1e-10)


def test_diagonal_noise_sharpness_values():
    assert math.isclose(theory.diagonal_noise_sharpness(1.0), 4.0)
    assert theory.diagonal_noise_sharpness(0.1) > theory.diagonal_noise_sharpness(0.5) > 4.0
    with pytest.raises(ValueError, match="r must be > 0"):
        theory.diagonal_noise_sharpness(0.0)


def test_diagonal_noise_sharpness_matches_dense_hessian():
    V = torch.eye(2)
    for r in (1.0, 0.5, 0.1, 10.0):
        wtw, _ = theory.two_layer_entropic_solution(torch.eye(2), torch.diag(torch.tensor([1.0, r])), V)
        W = sqrtm_psd(wtw)
        U = V @ torch.linalg.inv(W)
        f = lambda p: ((p[:4].view(2, 2) @ p[4:].view(2, 2) - V) ** 2).sum()
        H = torch.autograd.functional.hessian(f, torch.cat([U.reshape(-1), W.reshape(-1)]))
        assert math.isclose(torch.linalg.eigvalsh(H).max().item(), theory.diagonal_noise_sharpness(r), rel_tol=1e-10)


def test_errors_name_the_argument():
    I2, I3 = torch.eye(2), torch.eye(3)
    with pytest.raises(ValueError, match="sigma_x must be positive definite"):
        theory.universal_kernel(torch.zeros(3, 3), I2, torch.ones(2, 3))
    with pytest.raises(ValueError, match="v_star must have shape"):
        theory.two_layer_entropic_solution(I3, I2, torch.ones(3, 2))
    with pytest.raises(ValueError, match="sigma_eps must be symmetric"):
        theory.universal_kernel(I3, torch.tensor([[1.0, 0.5], [0.0, 1.0]]), torch.ones(2, 3))


def test_sym_pow():
    S = rand_spd(4, 2)
    assert torch.allclose(sqrtm_psd(S) @ sqrtm_psd(S), S, atol=1e-12)
    assert torch.allclose(sym_pow(S, -0.5) @ S @ sym_pow(S, -0.5), torch.eye(4), atol=1e-12)
    with pytest.raises(ValueError, match="positive definite"):
        sym_pow(torch.diag(torch.tensor([1.0, 0.0])), -1)
