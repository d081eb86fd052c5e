"""Representation alignment metrics (Chapter 3, ``def-perfect-alignment``).

Two representations of the same ``n`` inputs are tensors ``X`` (n, p) and
``Y`` (n, q), rows indexed by the input, possibly with different feature
counts. Chapter 3 calls them *perfectly aligned* when their kernels agree up
to a positive scalar, ``X X^T = c0 Y Y^T``. Each metric here reads its ideal
value on perfectly aligned inputs:

* :func:`linear_cka` (Kornblith et al. 2019): 1;
* :func:`mutual_knn` (Huh et al. 2024): 1;
* :func:`gram_distance`, the distance between Frobenius-normalised Gram
  matrices: 0.

Every function accepts leading batch dimensions (e.g. a *runs* dimension,
``X`` of shape (runs, n, p)); they broadcast and the result has the batch
shape. :func:`alignment_matrix` compares every layer of one list of
representations with every layer of another.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from . import _checks

__all__ = ["linear_cka", "mutual_knn", "gram_distance", "alignment_matrix", "METRICS"]


def _pair(x: torch.Tensor, y: torch.Tensor, *, min_samples: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate two representations of the same samples: (..., n, p) and (..., n, q), finite."""
    for name, t in (("x", x), ("y", y)):
        _checks.tensor(name, t)
        if t.ndim < 2:
            raise ValueError(f"{name} must have shape (..., n_samples, features), got shape {tuple(t.shape)}")
    if x.shape[-2] != y.shape[-2]:
        raise ValueError(f"x and y must hold the same number of samples (dim -2), got {x.shape[-2]} and {y.shape[-2]}")
    if x.shape[-2] < min_samples:
        raise ValueError(f"need at least {min_samples} samples, got {x.shape[-2]}")
    try:
        torch.broadcast_shapes(x.shape[:-2], y.shape[:-2])
    except RuntimeError:
        raise ValueError(f"batch dimensions of x {tuple(x.shape[:-2])} and y {tuple(y.shape[:-2])} "
                         "do not broadcast") from None
    return x, y


def _nonzero(name: str, norm: torch.Tensor) -> None:
    if bool((norm == 0).any()):
        raise ValueError(f"{name} is constant across samples (zero kernel): alignment is undefined")


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Linear centered kernel alignment (Kornblith et al. 2019, Chapter 3, ``eq-cka``).

    With column-centred ``Xc``, ``Yc``::

        CKA(X, Y) = |Yc^T Xc|_F^2 / (|Xc^T Xc|_F |Yc^T Yc|_F)
                  = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)),   K = X X^T, L = Y Y^T.

    It lies in [0, 1], is symmetric, invariant under orthogonal maps and
    isotropic scaling of either argument's features, and equals 1 when the
    centred kernels agree up to a positive scalar.

    Parameters
    ----------
    x, y
        Representations of shapes (..., n, p) and (..., n, q); the batch
        dimensions broadcast.

    Returns
    -------
    torch.Tensor
        CKA values of the broadcast batch shape (a 0-dim tensor for 2-d inputs).

    Examples
    --------
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.randn(50, 3, generator=g, dtype=torch.float64)
    >>> q = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=torch.float64))[0]
    >>> round(float(linear_cka(x, 2.0 * x @ q)), 10)  # orthogonal map and scaling: still 1
    1.0
    """
    x, y = _pair(x, y)
    xc = x - x.mean(-2, keepdim=True)
    yc = y - y.mean(-2, keepdim=True)
    nx = torch.linalg.matrix_norm(xc.transpose(-1, -2) @ xc)
    ny = torch.linalg.matrix_norm(yc.transpose(-1, -2) @ yc)
    _nonzero("x", nx)
    _nonzero("y", ny)
    cross = torch.linalg.matrix_norm(yc.transpose(-1, -2) @ xc) ** 2
    return cross / (nx * ny)


def gram_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Normalised Gram distance (Chapter 3, ``eq-gram-distance``).

    ``| K/|K|_F - L/|L|_F |_F`` for the (uncentred) kernels ``K = X X^T`` and
    ``L = Y Y^T`` of the same samples. It is 0 exactly for perfectly aligned
    representations (``K = c0 L``, ``c0 > 0``) and at most ``sqrt(2)``. For a
    small angle ``theta`` between the kernels it is ``2 sin(theta / 2)``, so a
    value of 0.15 means kernels about 8.6 degrees apart.

    Parameters
    ----------
    x, y
        Representations of shapes (..., n, p) and (..., n, q).

    Returns
    -------
    torch.Tensor
        Distances of the broadcast batch shape.

    Examples
    --------
    >>> import torch
    >>> x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    >>> float(gram_distance(x, 3.0 * x))          # same kernel up to a scale
    0.0
    >>> e = torch.eye(2, dtype=torch.float64)
    >>> round(float(gram_distance(e[:, :1], e[:, 1:])), 4)   # orthogonal kernels: sqrt(2)
    1.4142
    """
    x, y = _pair(x, y, min_samples=1)
    k = x @ x.transpose(-1, -2)
    l = y @ y.transpose(-1, -2)
    nk, nl = torch.linalg.matrix_norm(k), torch.linalg.matrix_norm(l)
    _nonzero("x", nk)
    _nonzero("y", nl)
    return torch.linalg.matrix_norm(k / nk[..., None, None] - l / nl[..., None, None])


def _knn_mask(z: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean (..., n, n) mask of each row's k nearest neighbours by cosine similarity, self excluded."""
    z = z / z.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    sim = z @ z.transpose(-1, -2)
    n = z.shape[-2]
    eye = torch.eye(n, dtype=torch.bool, device=z.device)
    sim = sim.masked_fill(eye, float("-inf"))
    idx = sim.topk(k, dim=-1).indices
    return torch.zeros(sim.shape, dtype=torch.bool, device=z.device).scatter_(-1, idx, True)


def mutual_knn(x: torch.Tensor, y: torch.Tensor, k: int = 10) -> torch.Tensor:
    """Mutual k-nearest-neighbour alignment of Huh et al. (2024) (Chapter 3, ``eq-mutual-knn``).

    Rows of ``x`` and ``y`` are L2-normalised; for each sample ``i`` let
    ``N_x(i)`` be the ``k`` samples with the largest cosine similarity to it in
    ``x`` (itself excluded), likewise ``N_y(i)``. The score is the mean over
    ``i`` of ``|N_x(i) & N_y(i)| / k``: 1 when every neighbourhood agrees (as
    for perfectly aligned representations, whose cosine similarities are
    equal), about ``k / (n - 1)`` for unrelated ones. Ties are broken by
    ``torch.topk``.

    Parameters
    ----------
    x, y
        Representations of shapes (..., n, p) and (..., n, q).
    k
        Neighbourhood size, ``1 <= k < n``.

    Returns
    -------
    torch.Tensor
        Scores in [0, 1] of the broadcast batch shape.

    Examples
    --------
    >>> import torch
    >>> a = torch.tensor([0.0, 0.1, 1.5, 1.6], dtype=torch.float64)
    >>> x = torch.stack([a.cos(), a.sin()], -1)          # two pairs of close points
    >>> float(mutual_knn(x, 2.0 * x, k=1))
    1.0
    >>> float(mutual_knn(x, x[[0, 2, 1, 3]], k=1))       # partners swapped
    0.0
    """
    x, y = _pair(x, y)
    k = _checks.positive_int("k", k)
    n = x.shape[-2]
    if k >= n:
        raise ValueError(f"k must be smaller than the number of samples n = {n} (self is excluded), got k = {k}")
    both = _knn_mask(x, k) & _knn_mask(y, k)
    return both.sum(-1).to(x.dtype).mean(-1) / k


#: Metrics accepted by name in :func:`alignment_matrix`.
METRICS: dict[str, Callable[..., torch.Tensor]] = {
    "cka": linear_cka,
    "knn": mutual_knn,
    "gram": gram_distance,
}


def alignment_matrix(reps_a: Sequence[torch.Tensor], reps_b: Sequence[torch.Tensor], *,
                     metric: str | Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = "cka",
                     **kwargs) -> torch.Tensor:
    """Alignment of every representation in ``reps_a`` with every one in ``reps_b``.

    Chapter 3's layer-by-layer heatmap: ``out[..., i, j] = metric(reps_a[i], reps_b[j])``.

    Parameters
    ----------
    reps_a, reps_b
        Non-empty sequences of representations of the same ``n`` samples, each
        (..., n, p_i) with its own feature count (e.g. the output of
        :func:`ntlib.linear.model.hidden`, each (runs, n, width)).
    metric
        ``"cka"`` (:func:`linear_cka`), ``"knn"`` (:func:`mutual_knn`),
        ``"gram"`` (:func:`gram_distance`), ``"dcka"`` (:func:`debiased_cka`) or a callable
        of two representations.
    **kwargs
        Passed to the metric (e.g. ``k`` for ``"knn"``).

    Returns
    -------
    torch.Tensor
        Shape ``(*batch, len(reps_a), len(reps_b))``.

    Examples
    --------
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.randn(3, 40, 4, generator=g, dtype=torch.float64)   # 3 runs, 40 samples
    >>> alignment_matrix([x, 2.0 * x], [x, x[..., :2]]).shape
    torch.Size([3, 2, 2])
    >>> bool(torch.allclose(alignment_matrix([x], [2.0 * x]), torch.ones(3, 1, 1, dtype=torch.float64)))
    True
    """
    if isinstance(metric, str):
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {sorted(METRICS)} or a callable, got {metric!r}")
        fn = METRICS[metric]
    elif callable(metric):
        fn = metric
    else:
        raise TypeError(f"metric must be a name or a callable, got {type(metric).__name__}")
    for name, reps in (("reps_a", reps_a), ("reps_b", reps_b)):
        if isinstance(reps, torch.Tensor) or not isinstance(reps, (list, tuple)) or not reps:
            raise TypeError(f"{name} must be a non-empty list or tuple of (..., n, features) tensors")
    rows = [torch.stack(torch.broadcast_tensors(*[fn(a, b, **kwargs) for b in reps_b]), -1) for a in reps_a]
    return torch.stack(torch.broadcast_tensors(*rows), -2)


# --------------------------------------------------------------------------
# Chapter 5: representations of any torch.nn.Module, an unbiased metric,
# and layer-by-layer alignment across two models
# --------------------------------------------------------------------------

__all__ += ["hsic_unbiased", "debiased_cka", "collect", "model_alignment"]


def hsic_unbiased(k: torch.Tensor, l: torch.Tensor) -> torch.Tensor:
    """Unbiased estimator of the Hilbert-Schmidt independence criterion (Song et al. 2012).

    With ``Kt``, ``Lt`` the kernels with zeroed diagonals and ``1`` the vector of ones::

        HSIC_1(K, L) = [tr(Kt Lt) + (1'Kt1)(1'Lt1) / ((n-1)(n-2)) - 2/(n-2) 1'Kt Lt 1] / (n (n-3)).

    Its expectation over ``n`` i.i.d. samples is the population HSIC, for every
    ``n >= 4``: no ``O(1/n)`` bias, so for independent representations it is
    zero on average and takes either sign (Chapter 5, ``eq-hsic-unbiased``).

    Parameters
    ----------
    k, l
        Symmetric kernel matrices of the same ``n >= 4`` samples, (..., n, n);
        batch dimensions broadcast.

    Returns
    -------
    torch.Tensor
        Estimates of the broadcast batch shape.

    Examples
    --------
    >>> import torch
    >>> x = torch.arange(6.0, dtype=torch.float64)[:, None]
    >>> z = x + 5.0                                    # a shifted copy: same centred kernel
    >>> float(hsic_unbiased(x @ x.T, x @ x.T)), float(hsic_unbiased(z @ z.T, z @ z.T))
    (10.5, 10.5)
    """
    for name, t in (("k", k), ("l", l)):
        _checks.tensor(name, t)
        if t.ndim < 2 or t.shape[-1] != t.shape[-2]:
            raise ValueError(f"{name} must be a square kernel matrix (..., n, n), got shape {tuple(t.shape)}")
    n = k.shape[-1]
    if l.shape[-1] != n:
        raise ValueError(f"k and l must be kernels of the same samples, got n = {n} and {l.shape[-1]}")
    if n < 4:
        raise ValueError(f"the unbiased HSIC needs at least 4 samples, got {n}")
    eye = torch.eye(n, dtype=torch.bool, device=k.device)
    kt, lt = k.masked_fill(eye, 0.0), l.masked_fill(eye, 0.0)
    trace = (kt * lt).sum((-1, -2))
    sk, sl = kt.sum((-1, -2)), lt.sum((-1, -2))
    cross = (kt.sum(-1) * lt.sum(-1)).sum(-1)
    return (trace + sk * sl / ((n - 1) * (n - 2)) - 2.0 * cross / (n - 2)) / (n * (n - 3))


def debiased_cka(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Debiased linear CKA: :func:`linear_cka` with the unbiased HSIC (Chapter 5, ``eq-debiased-cka``).

    ``HSIC_1(K, L) / sqrt(HSIC_1(K, K) HSIC_1(L, L))`` with ``K = X X^T``,
    ``L = Y Y^T``, with the unbiased HSIC estimator of Song et al. (2012) that
    Kornblith et al. (2019) mention for CKA. Linear CKA is biased upward at finite ``n``: two *independent*
    random representations with many features score well above 0. The
    debiased form removes that bias: it is near 0 (either sign) for unrelated
    representations, 1 for perfectly aligned ones, and keeps the invariances
    of linear CKA (orthogonal maps, isotropic scaling). Input need not be
    centred (the estimator is invariant to a shift of either representation).

    Parameters
    ----------
    x, y
        Representations (..., n, p) and (..., n, q), ``n >= 4``.

    Returns
    -------
    torch.Tensor
        Values of the broadcast batch shape; at most 1 in absolute value is
        not guaranteed for tiny ``n`` (the denominators are estimates too).

    Raises
    ------
    ValueError
        If a representation's unbiased self-HSIC is not positive (constant or
        degenerate features): the metric is undefined.

    Examples
    --------
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.randn(200, 5, generator=g, dtype=torch.float64)
    >>> round(float(debiased_cka(x, 3.0 * x + 1.0)), 10)         # scaled and shifted: still 1
    1.0
    >>> y = torch.randn(200, 50, generator=g, dtype=torch.float64)
    >>> float(linear_cka(x, y)) > 0.05, abs(float(debiased_cka(x, y))) < 0.05   # independent
    (True, True)
    """
    x, y = _pair(x, y, min_samples=4)
    k = x @ x.transpose(-1, -2)
    l = y @ y.transpose(-1, -2)
    kk, ll = hsic_unbiased(k, k), hsic_unbiased(l, l)
    for name, v in (("x", kk), ("y", ll)):
        if bool((v <= 0).any()):
            raise ValueError(f"{name} has a non-positive unbiased self-HSIC (constant or degenerate "
                             "features): debiased CKA is undefined")
    return hsic_unbiased(k, l) / torch.sqrt(kk * ll)


METRICS["dcka"] = debiased_cka

from ._hooks import collect  # noqa: E402  (re-exported: align.collect)


def model_alignment(model_a: torch.nn.Module, model_b: torch.nn.Module, inputs_a, inputs_b,
                    layers_a: Sequence[str], layers_b: Sequence[str], *, metric="dcka", reduce="flatten",
                    **kwargs) -> torch.Tensor:
    """Layer-by-layer alignment of two models on the same samples (Chapter 5's heatmaps).

    ``out[i, j] = metric(rep_a[layers_a[i]], rep_b[layers_b[j]])`` with the
    representations of :func:`collect`. The two models may see the same samples
    through different "views" (``inputs_b`` a fixed transformation of
    ``inputs_a``, row for row); pass the same model twice for the within-model
    map.

    Parameters
    ----------
    model_a, model_b
        Modules (may be the same object).
    inputs_a, inputs_b
        Their inputs, with the same number of samples, row i the same sample.
    layers_a, layers_b
        Submodule names.
    metric
        A name of :data:`METRICS` (``"dcka"``, the default, ``"cka"``, ``"knn"``,
        ``"gram"``) or a callable of two representations.
    reduce
        As in :func:`collect`.
    **kwargs
        Passed to the metric.

    Returns
    -------
    torch.Tensor
        (len(layers_a), len(layers_b)).

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 8)).double()
    >>> x = torch.randn(30, 3, dtype=torch.float64)
    >>> m = model_alignment(net, net, x, x, ["0", "2"], ["0", "2"])
    >>> bool(torch.allclose(m.diagonal(), torch.ones(2, dtype=torch.float64)))
    True
    """
    reps_a = collect(model_a, inputs_a, layers_a, reduce=reduce)
    reps_b = collect(model_b, inputs_b, layers_b, reduce=reduce)
    return alignment_matrix(list(reps_a.values()), list(reps_b.values()), metric=metric, **kwargs)
