"""ntlib.align: closed forms, invariances (property tests) and input checks."""

import math

import pytest
import torch
from hypothesis import given, strategies as st

from ntlib import align

from helpers import close, examples, gen, randn


def rand(seed, *shape):
    return randn(seed, *shape)


def orth(seed, n):
    return torch.linalg.qr(rand(seed, n, n))[0]


def hsic(k, l):
    n = k.shape[0]
    h = torch.eye(n) - torch.ones(n, n) / n
    return torch.trace(k @ h @ l @ h) / (n - 1) ** 2


seeds = st.integers(0, 10_000)
sizes = st.integers(3, 40)
feats = st.integers(1, 7)


@examples(40)
@given(seeds, sizes, feats, feats)
def test_cka_matches_hsic_formula_and_is_symmetric(seed, n, p, q):
    x, y = rand(seed, n, p), rand(seed + 1, n, q)
    k, l = x @ x.T, y @ y.T
    ref = hsic(k, l) / torch.sqrt(hsic(k, k) * hsic(l, l))
    c = align.linear_cka(x, y)
    assert torch.allclose(c, ref, atol=1e-10)
    assert torch.allclose(c, align.linear_cka(y, x), atol=1e-12)
    assert -1e-12 <= float(c) <= 1 + 1e-12


@examples(40)
@given(seeds, sizes, feats, feats, st.floats(1e-3, 1e3))
def test_cka_invariant_under_orthogonal_maps_and_isotropic_scaling(seed, n, p, q, s):
    x, y = rand(seed, n, p), rand(seed + 1, n, q)
    c = align.linear_cka(x, y)
    assert torch.allclose(align.linear_cka(s * x @ orth(seed + 2, p), y @ orth(seed + 3, q)), c, atol=1e-10)
    assert torch.allclose(align.linear_cka(x, x), torch.tensor(1.0), atol=1e-12)
    # a translation of the features does not matter either (the kernel is centred)
    assert torch.allclose(align.linear_cka(x + rand(seed + 4, p), y), c, atol=1e-10)


@examples(30)
@given(seeds, st.integers(4, 30), feats, feats, st.floats(1e-2, 1e2))
def test_perfectly_aligned_inputs_read_ideal_values(seed, n, p, q, c0):
    """K_y = c0 K_x (y = sqrt(c0) x Q with Q a partial isometry into more features)."""
    x = rand(seed, n, p)
    qmat = torch.linalg.qr(rand(seed + 1, p + q, p))[0].T  # p x (p + q), orthonormal rows
    y = math.sqrt(c0) * x @ qmat
    assert torch.allclose(y @ y.T, c0 * x @ x.T, atol=1e-8)
    assert float(align.linear_cka(x, y)) == pytest.approx(1.0, abs=1e-10)
    assert float(align.gram_distance(x, y)) < 1e-6
    if p >= 2:  # with one feature all cosine similarities are +-1: neighbourhoods are ties
        assert float(align.mutual_knn(x, y, k=min(3, n - 1))) == 1.0


def test_gram_distance_closed_form_and_range():
    x, y = rand(0, 30, 4), rand(1, 30, 2)
    k, l = x @ x.T, y @ y.T
    cos = (k * l).sum() / (k.norm() * l.norm())
    assert torch.allclose(align.gram_distance(x, y), torch.sqrt(2 - 2 * cos), atol=1e-12)
    assert torch.allclose(align.gram_distance(x, y), align.gram_distance(y, x))
    # orthogonal kernels: the largest possible distance
    e = torch.eye(4)
    assert float(align.gram_distance(e[:, :2].clone(), e[:, 2:].clone())) == pytest.approx(math.sqrt(2))


def test_mutual_knn_on_hand_built_neighbourhoods():
    # 4 points on the circle: in x the neighbourhoods are {0,1} and {2,3}; y keeps them; z swaps partners
    a = torch.tensor([0.0, 0.1, 1.5, 1.6])
    x = torch.stack([a.cos(), a.sin()], -1)
    assert float(align.mutual_knn(x, 3.0 * x, k=1)) == 1.0
    b = torch.tensor([0.0, 1.5, 0.1, 1.6])  # 0 <-> 2 and 1 <-> 3 are now the close pairs
    z = torch.stack([b.cos(), b.sin()], -1)
    assert float(align.mutual_knn(x, z, k=1)) == 0.0
    # k = 2 of 3 others: x's sets {1,2},{0,2},{3,1},{2,1}; z's sets {2,1},{3,2},{0,1},{1,2}
    # overlaps 2,1,1,2 -> mean 6/8
    assert float(align.mutual_knn(x, z, k=2)) == pytest.approx(0.75)
    # scale of a row does not matter (rows are L2-normalised), self never counts
    assert float(align.mutual_knn(x, x * torch.tensor([[1.0], [5.0], [0.2], [2.0]]), k=1)) == 1.0
    assert float(align.mutual_knn(x, z, k=3)) == 1.0  # every other point is a neighbour


def test_mutual_knn_random_baseline():
    x, y = rand(0, 400, 5), rand(1, 400, 5)
    assert abs(float(align.mutual_knn(x, y, k=10)) - 10 / 399) < 0.02


def test_batched_shapes_and_alignment_matrix():
    x = rand(0, 3, 20, 4)  # 3 runs
    y = rand(1, 20, 6)     # shared across runs
    c = align.linear_cka(x, y)
    assert c.shape == (3,)
    assert torch.allclose(c[1], align.linear_cka(x[1], y))
    assert align.mutual_knn(x, y, k=4).shape == (3,)
    m = align.alignment_matrix([x, y, x[..., :2]], [y, x], metric="cka")
    assert m.shape == (3, 3, 2)
    assert torch.allclose(m[:, 0, 0], c) and torch.allclose(m[:, 0, 1], torch.ones(3))
    g = align.alignment_matrix([x], [x], metric="gram")
    assert torch.allclose(g, torch.zeros(3, 1, 1), atol=1e-7)
    kn = align.alignment_matrix([x], [y], metric="knn", k=3)
    assert torch.allclose(kn[:, 0, 0], align.mutual_knn(x, y, k=3))
    own = align.alignment_matrix([x], [y], metric=lambda a, b: align.linear_cka(a, b) ** 2)
    assert torch.allclose(own[:, 0, 0], c ** 2)


def test_clear_errors():
    x = rand(0, 10, 3)
    with pytest.raises(ValueError, match="same number of samples"):
        align.linear_cka(x, rand(1, 9, 3))
    with pytest.raises(ValueError, match="same number of samples"):
        align.mutual_knn(x, rand(1, 9, 3))
    with pytest.raises(ValueError, match="k must be smaller"):
        align.mutual_knn(x, x, k=10)
    with pytest.raises(ValueError, match="k must be >= 1"):
        align.mutual_knn(x, x, k=0)
    bad = x.clone()
    bad[2, 1] = float("nan")
    for fn in (align.linear_cka, align.gram_distance, align.mutual_knn):
        with pytest.raises(ValueError, match="NaN"):
            fn(x, bad)
    with pytest.raises(ValueError, match="shape"):
        align.linear_cka(torch.randn(10), x)
    with pytest.raises(ValueError, match="constant"):
        align.linear_cka(torch.ones(10, 2), x)
    with pytest.raises(ValueError, match="do not broadcast"):
        align.linear_cka(rand(0, 2, 10, 3), rand(1, 3, 10, 3))
    with pytest.raises(ValueError, match="metric must be one of"):
        align.alignment_matrix([x], [x], metric="svcca")
    with pytest.raises(TypeError, match="reps_a"):
        align.alignment_matrix(x, [x])
    with pytest.raises(TypeError, match="floating"):
        align.linear_cka(torch.ones(10, 2, dtype=torch.long), x)


@given(seed=st.integers(0, 2**31 - 1), runs=st.integers(1, 2), n=st.integers(4, 12),
       pa=st.lists(st.integers(1, 4), min_size=1, max_size=3), pb=st.lists(st.integers(1, 4), min_size=1, max_size=3))
def test_alignment_matrix_entries_are_pairwise_cka(seed, runs, n, pa, pb):
    """out[..., i, j] = linear_cka(a_i, b_j); with equal lists the matrix is symmetric with unit diagonal."""
    g = gen(seed)
    ra = [randn(g, runs, n, p) for p in pa]
    rb = [randn(g, runs, n, p) for p in pb]
    m = align.alignment_matrix(ra, rb)
    assert m.shape == (runs, len(ra), len(rb))
    for i, a in enumerate(ra):
        for j, b in enumerate(rb):
            assert close(m[..., i, j], align.linear_cka(a, b), 1e-14)
    s = align.alignment_matrix(ra, ra)
    assert close(s, s.transpose(-1, -2), 1e-13)
    assert close(s.diagonal(dim1=-2, dim2=-1), torch.ones(runs, len(ra)), 1e-12)
    assert bool((m >= -1e-12).all()) and bool((m <= 1 + 1e-12).all())


# ---- Chapter 5: unbiased HSIC, debiased CKA, collect, model_alignment ----

def hsic_unbiased_loops(k, l):
    """Song et al. (2012) eq. (5) term by term, by explicit sums (independent of ntlib)."""
    n = k.shape[0]
    kt, lt = k.clone(), l.clone()
    kt.fill_diagonal_(0)
    lt.fill_diagonal_(0)
    one = torch.ones(n, dtype=k.dtype)
    t1 = torch.trace(kt @ lt)
    t2 = (one @ kt @ one) * (one @ lt @ one) / ((n - 1) * (n - 2))
    t3 = 2.0 / (n - 2) * (one @ kt @ lt @ one)
    return (t1 + t2 - t3) / (n * (n - 3))


@examples(30)
@given(seeds, st.integers(4, 30), feats, feats)
def test_hsic_unbiased_matches_formula_and_dcka_invariances(seed, n, p, q):
    x, y = rand(seed, n, p), rand(seed + 1, n, q)
    k, l = x @ x.T, y @ y.T
    assert torch.allclose(align.hsic_unbiased(k, l), hsic_unbiased_loops(k, l), atol=1e-10)
    assert torch.allclose(align.hsic_unbiased(k, l), align.hsic_unbiased(l, k), atol=1e-12)
    c = align.debiased_cka(x, y)
    assert torch.allclose(c, align.debiased_cka(y, x), atol=1e-12)
    assert torch.allclose(align.debiased_cka(2.5 * x @ orth(seed + 2, p) + 3.0, y), c, atol=1e-8)
    assert torch.allclose(align.debiased_cka(x, x), torch.tensor(1.0, dtype=x.dtype), atol=1e-10)


def test_hsic_unbiased_is_unbiased_for_independent_data():
    # independent x, y: population HSIC = 0; the mean over many draws is 0 within its standard error,
    # while the biased estimator of linear CKA stays clearly positive
    g = gen(3)
    x = torch.randn(4000, 8, 5, generator=g, dtype=torch.float64)
    y = torch.randn(4000, 8, 20, generator=g, dtype=torch.float64)
    vals = align.debiased_cka(x, y)
    se = vals.std() / math.sqrt(vals.numel())
    assert abs(float(vals.mean())) < 4 * float(se)
    assert bool((vals < 0).any())                  # it can go negative
    assert float(align.linear_cka(x, y).mean()) > 0.3


def test_hsic_unbiased_expectation_matches_population_value():
    # x ~ N(0, I_p), y = x: population HSIC(K, K) for linear kernels is |Cov x|_F^2 = p
    g = gen(4)
    x = torch.randn(3000, 6, 3, generator=g, dtype=torch.float64)
    k = x @ x.transpose(-1, -2)
    vals = align.hsic_unbiased(k, k)
    assert abs(float(vals.mean()) - 3.0) < 4 * float(vals.std() / math.sqrt(vals.numel()))


def test_dcka_batched_and_errors():
    x = rand(1, 3, 10, 4)
    assert align.debiased_cka(x, x[..., :2]).shape == (3,)
    with pytest.raises(ValueError, match="4 samples"):
        align.debiased_cka(rand(1, 3, 2), rand(2, 3, 2))
    with pytest.raises(ValueError, match="self-HSIC"):
        align.debiased_cka(torch.ones(6, 2, dtype=torch.float64), rand(2, 6, 2))
    with pytest.raises(ValueError, match="square"):
        align.hsic_unbiased(rand(1, 5, 4), rand(1, 5, 5))
    assert align.alignment_matrix([x], [x], metric="dcka").shape == (3, 1, 1)


def _net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.ReLU(), torch.nn.Linear(5, 4)).double()


def test_collect_matches_manual_forward_and_removes_hooks():
    net, x = _net(), rand(5, 12, 3)
    reps = align.collect(net, x, ["0", "1", "2"], chunk=5)
    h = net[0](x)
    assert torch.allclose(reps["0"], h) and torch.allclose(reps["1"], h.relu()) and torch.allclose(reps["2"], net(x))
    assert all(not m._forward_hooks for m in net.modules())
    seq = rand(6, 4, 7, 3)                               # (n, T, d): a sequence model
    assert align.collect(net, seq, ["2"])["2"].shape == (4, 28)
    assert torch.allclose(align.collect(net, seq, ["2"], reduce="last")["2"], net(seq)[:, -1].detach())
    assert torch.allclose(align.collect(net, seq, ["2"], reduce="mean")["2"], net(seq).mean(1).detach())


def test_collect_errors():
    net, x = _net(), rand(5, 12, 3)
    with pytest.raises(ValueError, match="no submodule"):
        align.collect(net, x, ["7"])
    with pytest.raises(TypeError, match="non-empty list"):
        align.collect(net, x, "0")
    with pytest.raises(ValueError, match="distinct"):
        align.collect(net, x, ["0", "0"])
    with pytest.raises(ValueError, match="reduce"):
        align.collect(net, x, ["0"], reduce="max")
    with pytest.raises(TypeError, match="torch.nn.Module"):
        align.collect(lambda t: t, x, ["0"])


def test_model_alignment_within_and_across():
    net, x = _net(), rand(5, 40, 3)
    m = align.model_alignment(net, net, x, x, ["0", "2"], ["0", "2"], metric="cka")
    assert torch.allclose(m, m.T) and torch.allclose(m.diagonal(), torch.ones(2, dtype=torch.float64))
    # a second net that sees a fixed invertible view of the input and undoes it in its first layer
    a = rand(6, 3, 3) + 3 * torch.eye(3, dtype=torch.float64)
    twin = _net()
    with torch.no_grad():
        twin[0].weight.copy_(net[0].weight @ torch.linalg.inv(a))
    m2 = align.model_alignment(twin, net, x @ a.T, x, ["0", "2"], ["0", "2"])
    assert torch.allclose(m2.diagonal(), torch.ones(2, dtype=torch.float64), atol=1e-8)
