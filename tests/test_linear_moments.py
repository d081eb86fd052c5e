"""ntlib.linear.moments: the exact Gaussian gradient moments of a layer pair.

Ground truth: Gauss-Hermite quadrature. The per-sample gradient G = dl/dK of the pair
K = W_{i+1} W_i is G = 2 P^T r (Q x)^T with r = (W_D...W_1 - V*) x - eps, so the entries
of G^T G and G G^T are polynomials of degree 4 in the standard normal variables behind
x and eps; the 3-point Gauss-Hermite rule is exact up to degree 5 in each variable, so
its tensor product over the d + o variables gives E[G^T G], E[G G^T] and E[G] exactly
(to round-off). This replaces the Monte Carlo checks (4e5 samples, 3-6 % tolerances).
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, strategies as st

from ntlib import linear

from helpers import D, around_pair, chain, close, examples, gen, random_teacher, randn, seeds

#: Probabilists' 3-point Gauss-Hermite rule: E f(z) = sum w_j f(z_j) for polynomials of degree <= 5, z ~ N(0, 1).
NODES = torch.tensor([-math.sqrt(3.0), 0.0, math.sqrt(3.0)], dtype=D)
WEIGHTS = torch.tensor([1 / 6, 2 / 3, 1 / 6], dtype=D)


def gaussian_grid(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes (3^n, n) and weights (3^n,) of the tensor-product rule for N(0, I_n)."""
    idx = torch.tensor(list(itertools.product(range(3), repeat=n)), dtype=torch.long).reshape(-1, n)
    return NODES[idx], WEIGHTS[idx].prod(-1)


def quadrature_moments(ws, i, t, label_noise):
    """(E[G], E[G^T G], E[G G^T]) of the per-sample gradient of the pair (W_i, W_{i+1}), by exact quadrature."""
    d, o = t.d_in, t.d_out
    nodes, wts = gaussian_grid(d + o)
    x = nodes[:, :d] @ t.sqrt_x
    eps = nodes[:, d:] @ t.sqrt_eps if label_noise else torch.zeros(len(nodes), o, dtype=D)
    r = x @ (chain(ws) - t.v_star).T - eps
    q, p = around_pair(ws, i, d, o)
    a, b = 2 * r @ p, x @ q.T                                           # G_n = a_n b_n^T
    mean = torch.einsum("n,ni,nj->ij", wts, a, b)
    gtg = torch.einsum("n,n,ni,nj->ij", wts, (a * a).sum(1), b, b)
    ggt = torch.einsum("n,n,ni,nj->ij", wts, (b * b).sum(1), a, a)
    return mean, gtg, ggt


@examples(12)
@given(seed=seeds, widths=st.lists(st.integers(1, 3), min_size=3, max_size=4), i=st.integers(0, 2),
       noise=st.booleans(), bsz=st.integers(1, 5))
def test_pair_moments_are_the_gaussian_moments(seed, widths, i, noise, bsz):
    """E[G_B^T G_B], E[G_B G_B^T] for batches of bsz i.i.d. samples: E[G]^T E[G] + (E[G^T G] - E[G]^T E[G]) / B."""
    i = i % (len(widths) - 2)
    g = gen(seed)
    ws = [randn(g, b, a) / math.sqrt(a) for a, b in zip(widths[:-1], widths[1:])]
    t = random_teacher(g, widths[0], widths[-1])
    mean, gtg1, ggt1 = quadrature_moments(ws, i, t, noise)
    gtg, ggt = linear.pair_moments(ws, i, t, batch_size=bsz, label_noise=noise)
    mtm, mmt = mean.T @ mean, mean @ mean.T
    ref_gtg, ref_ggt = mtm + (gtg1 - mtm) / bsz, mmt + (ggt1 - mmt) / bsz
    assert gtg.shape == ref_gtg.shape == (widths[i],) * 2 and ggt.shape == ref_ggt.shape == (widths[i + 2],) * 2
    assert close(gtg, ref_gtg, 1e-11) and close(ggt, ref_ggt, 1e-11)


@given(seed=seeds, widths=st.lists(st.integers(1, 3), min_size=3, max_size=4), i=st.integers(0, 2),
       bsz=st.integers(1, 8), runs=st.integers(1, 3))
def test_pair_moments_at_a_global_minimum(seed, widths, i, bsz, runs):
    """At K = V*: E[G_B^T G_B] = 4 Tr(P P^T Se) Q Sx Q^T / B and E[G_B G_B^T] = 4 Tr(Q^T Q Sx) P^T Se P / B,
    for every run of a batch of runs."""
    i = i % (len(widths) - 2)
    g = gen(seed)
    ws = [randn(g, runs, b, a) for a, b in zip(widths[:-1], widths[1:])]
    d, o = widths[0], widths[-1]
    for r in range(runs):
        one = [w[r] for w in ws]
        t = random_teacher(g, d, o)
        t = linear.teacher(chain(one), t.sigma_x, t.sigma_eps)
        gtg, ggt = linear.pair_moments(one, i, t, batch_size=bsz)
        q, p = around_pair(one, i, d, o)
        assert close(gtg, 4 * torch.trace(p @ p.T @ t.sigma_eps) * q @ t.sigma_x @ q.T / bsz, 1e-10)
        assert close(ggt, 4 * torch.trace(q.T @ q @ t.sigma_x) * p.T @ t.sigma_eps @ p / bsz, 1e-10)
    t = random_teacher(g, d, o)
    gtg, ggt = linear.pair_moments(ws, i, t, batch_size=bsz)
    assert gtg.shape == (runs, widths[i], widths[i]) and ggt.shape == (runs, widths[i + 2], widths[i + 2])
    for r in range(runs):
        one = linear.pair_moments([w[r] for w in ws], i, t, batch_size=bsz)
        assert close(gtg[r], one[0], 1e-13) and close(ggt[r], one[1], 1e-13)


@given(seed=seeds, h=st.integers(1, 4))
def test_pair_moments_are_invariant_under_a_hidden_rotation(seed, h):
    """W -> R W, U -> U R^T keeps K = U W, hence the loss and both moments of G = dl/dK."""
    g = gen(seed)
    t = random_teacher(g, 3, 2)
    w, u = randn(g, h, 3), randn(g, 2, h)
    r, _ = torch.linalg.qr(randn(g, h, h))
    gtg, ggt = linear.pair_moments([w, u], 0, t)
    gtg2, ggt2 = linear.pair_moments([r @ w, u @ r.T], 0, t)
    assert close(gtg2, gtg, 1e-12) and close(ggt2, ggt, 1e-12)


@pytest.mark.parametrize("call,exc,msg", [
    (lambda ws, t: linear.pair_moments(ws, 1, t), ValueError, "adjacent pair"),
    (lambda ws, t: linear.pair_moments(ws, -1, t), ValueError, "adjacent pair"),
    (lambda ws, t: linear.pair_moments([torch.ones(4, 3), torch.ones(2, 5)], 0, t), ValueError, "do not chain"),
    (lambda ws, t: linear.pair_moments([w.T for w in ws[::-1]], 0, t), ValueError,
     "the network maps 2 -> 3 but the teacher maps 3 -> 2"),
    (lambda ws, t: linear.pair_moments(ws, 0, (t.v_star, t.sigma_x, t.sigma_eps)), TypeError, "t must be a Teacher"),
    (lambda ws, t: linear.pair_moments(ws, 0, t, batch_size=0), ValueError, "batch_size must be >= 1"),
    (lambda ws, t: linear.pair_moments([ws[0], ws[1] * float("nan")], 0, t), ValueError,
     r"weights\[1\] contains NaN"),
])
def test_bad_input_names_the_argument(call, exc, msg):
    t = random_teacher(gen(0), 3, 2)
    ws = [randn(1, 4, 3), randn(2, 2, 4)]
    with pytest.raises(exc, match=msg):
        call(ws, t)
