"""Certified top Hessian eigenvalues (sharpness) from Hessian-vector products.

The sharpness of a loss at ``theta`` is the largest eigenvalue of its Hessian
``H = grad^2 L(theta)`` (Chapter 4, progressive sharpening and the edge of
stability ``2/eta``). :func:`top_eigenvalues` computes the ``k`` largest
*algebraic* eigenvalues of ``H`` by Lanczos with full reorthogonalisation on
Hessian-vector products (HVPs), and stops only when every returned Ritz pair
``(theta_i, y_i)`` satisfies the residual test

.. math:: \\|H y_i - \\theta_i y_i\\| \\le \\mathrm{tol}\\,|\\theta_i|,

so that, for symmetric ``H``, an eigenvalue lies within ``tol |theta_i|`` of
each returned value (Bauer-Fike; in practice the error is much smaller, about
``residual^2 / gap``). The residual is computed from stored products ``H q_j``,
at no extra HVP. Like every Krylov method, it certifies that each value *is* an
eigenvalue to that accuracy, not that no larger one exists: a starting vector
orthogonal to the top eigenvector cannot see it (probability zero for the default
random start).

Each HVP is one backward pass through a gradient graph built once per call
(double backprop, ``torch.autograd.grad(g, params, v, retain_graph=True)``).
The caller's tensors, their ``.grad`` fields and any module's train/eval mode
are left untouched.

Public API: :func:`top_eigenvalues`, :class:`Eigen`, :class:`ConvergenceError`,
:func:`hvp_operator`, :func:`dense_hessian`, :func:`module_loss`,
:class:`SharpnessTracker`.
"""

from __future__ import annotations

import math
import warnings
from typing import Callable, NamedTuple, Sequence

import torch

from . import _checks
from ._params import Params, as_tuple, flatten, like, unflatten
from .grads import _scalar

__all__ = [
    "Eigen", "ConvergenceError", "top_eigenvalues", "hvp_operator", "dense_hessian",
    "module_loss", "SharpnessTracker",
]


class Eigen(NamedTuple):
    """Result of :func:`top_eigenvalues`.

    Attributes
    ----------
    values : torch.Tensor
        Shape ``(k,)``: the ``k`` largest algebraic eigenvalues, descending.
    vectors : torch.Tensor
        Shape ``(n, k)``, ``n`` the total number of parameters: column ``i`` is the
        unit eigenvector of ``values[i]``, flattened in the order of
        ``ntlib._params.flatten(params)``. :meth:`vector` returns it in the
        container form of ``params``.
    residuals : torch.Tensor
        Shape ``(k,)``: ``|H y_i - theta_i y_i|`` for each returned pair.
    hvps : int
        Number of Hessian-vector products used.
    converged : bool
        True when every pair passed the residual test.
    """

    values: torch.Tensor
    vectors: torch.Tensor
    residuals: torch.Tensor
    hvps: int
    converged: bool

    def vector(self, i: int, like_params: Params) -> Params:
        """Eigenvector ``i`` shaped like ``like_params`` (a tensor or a tuple)."""
        return unflatten(self.vectors[:, i], like_params)


class ConvergenceError(RuntimeError):
    """Raised when ``max_hvps`` products did not certify the requested pairs.

    The partial (uncertified) result is kept in the attribute ``result``.
    """

    def __init__(self, message: str, result: Eigen):
        super().__init__(message)
        self.result = result


def hvp_operator(loss_fn: Callable[[Params], torch.Tensor], params: Params
                 ) -> tuple[Callable[[torch.Tensor], torch.Tensor], int]:
    """Build ``v -> H v`` on flat vectors, reusing one gradient graph.

    The gradient is computed once with ``create_graph=True``; each product is
    then a single backward pass through that graph (about the cost of one
    gradient evaluation). ``loss_fn`` must be deterministic (a fixed batch).

    Parameters
    ----------
    loss_fn : callable
        Maps parameters (same container form as ``params``) to a scalar tensor.
    params : tensor or tuple of tensors
        Point at which the Hessian is taken. Not modified.

    Returns
    -------
    hvp : callable
        ``hvp(v)`` for a flat vector ``v`` of ``n`` entries returns ``H v`` (flat);
        for an ``(n, p)`` block it returns the ``(n, p)`` block of products.
    n : int
        Number of parameters.

    Examples
    --------
    >>> import torch
    >>> a = torch.tensor([1.0, 3.0], dtype=torch.float64)
    >>> hvp, n = hvp_operator(lambda w: 0.5 * (a * w * w).sum(), torch.zeros(2, dtype=torch.float64))
    >>> hvp(torch.tensor([1.0, 1.0], dtype=torch.float64)).tolist(), n
    ([1.0, 3.0], 2)
    """
    items = _checks.params("params", params)
    leaves = [t.detach().requires_grad_(True) for t in items]
    with torch.enable_grad():
        value = loss_fn(like(params, leaves))
        _scalar("loss_fn(params)", value)
        if not bool(torch.isfinite(value)):
            raise ValueError(f"loss_fn(params) is not finite: {float(value.detach())}")
        grads = torch.autograd.grad(value.reshape(()), leaves, create_graph=True, allow_unused=True)
    # a parameter the loss ignores, or one entering only linearly, has zero Hessian rows
    pairs = [(i, g) for i, g in enumerate(grads) if g is not None and g.requires_grad]
    sizes = [t.numel() for t in leaves]
    offsets = [0]
    for s in sizes:
        offsets.append(offsets[-1] + s)
    n = offsets[-1]

    def hvp(v: torch.Tensor) -> torch.Tensor:
        if v.ndim == 2:  # a block of vectors, one product per column
            return torch.stack([hvp(c) for c in v.unbind(1)], 1) if v.shape[1] != 1 else hvp(v[:, 0])[:, None]
        out = torch.zeros(n, dtype=leaves[0].dtype, device=leaves[0].device)
        if not pairs:
            return out
        vs = [v[offsets[i]:offsets[i + 1]].reshape(leaves[i].shape) for i, _ in pairs]
        with torch.enable_grad():
            hv = torch.autograd.grad([g for _, g in pairs], leaves, grad_outputs=vs, retain_graph=True,
                                     allow_unused=True)
        for i, h in enumerate(hv):
            if h is not None:
                out[offsets[i]:offsets[i + 1]] = h.reshape(-1)
        return out

    return hvp, n


def _lanczos(hvp: Callable[[torch.Tensor], torch.Tensor], n: int, k: int, block: int, tol: float,
             atol: float, max_hvps: int, max_basis: int, v0: torch.Tensor | None,
             generator: torch.Generator | None, dtype: torch.dtype, device: torch.device) -> Eigen:
    """Block Lanczos with full reorthogonalisation and thick restarts for the top-k pairs.

    The basis ``Q`` and its images ``W = H Q`` are stored, the projection
    ``T = Q^T H Q`` is diagonalised (Rayleigh-Ritz) after every block, and the
    residual of each Ritz pair ``W s - theta Q s`` is exact without extra products.
    """

    def random_vector() -> torch.Tensor:
        return torch.randn(n, generator=generator, dtype=dtype, device="cpu").to(device)

    Q = torch.empty(n, 0, dtype=dtype, device=device)  # orthonormal basis
    W = torch.empty(n, 0, dtype=dtype, device=device)  # H Q
    T = torch.empty(0, 0, dtype=dtype, device=device)  # Q^T H Q
    X = [random_vector() for _ in range(block)]
    if v0 is not None:
        cols = v0.to(dtype=dtype, device=device).reshape(n, -1).unbind(1)
        X = list(cols) + X[len(cols):] if len(cols) <= block else [sum(cols)] if block == 1 else list(cols[:block])
    hvps, scale = 0, 0.0
    while True:
        # orthonormalise the new block against the basis and itself (twice is enough)
        new: list[torch.Tensor] = []
        basis = Q
        for x in X[: n - Q.shape[1]]:
            for attempt in range(3):
                n0 = float(x.norm())
                for _ in range(2):
                    x = x - basis @ (basis.T @ x)
                nx = float(x.norm())
                if math.isfinite(nx) and nx > 1e-10 * n0 and nx > 1e-14 * scale:
                    break
                x = random_vector()  # invariant subspace (or a dependent column): fresh direction
            else:
                raise RuntimeError("lanczos: could not extend the Krylov basis")
            x = x / nx
            new.append(x)
            basis = torch.cat([basis, x[:, None]], 1)
        Xb = torch.stack(new, 1)
        WX = hvp(Xb)
        hvps += Xb.shape[1]
        if not bool(torch.isfinite(WX).all()):
            raise ValueError("a Hessian-vector product is not finite")
        top = Q.T @ WX
        T = torch.cat([torch.cat([T, top], 1), torch.cat([top.T, Xb.T @ WX], 1)], 0)
        Q, W = basis, torch.cat([W, WX], 1)
        m = Q.shape[1]
        theta, S = torch.linalg.eigh(0.5 * (T + T.T))
        theta, S = theta.flip(0), S.flip(1)  # descending
        scale = max(scale, float(theta.abs().max()))
        j = min(k, m)
        Y = Q @ S[:, :j]
        res = (W @ S[:, :j] - Y * theta[:j]).norm(dim=0)
        full = m >= n
        if j == k and (full or bool((res <= torch.clamp(tol * theta[:j].abs(), min=atol)).all())):
            return Eigen(theta[:j], Y, res, hvps, True)
        if hvps + block > max_hvps or full:
            return Eigen(theta[:j], Y, res, hvps, False)
        # next block: the part of H X not in the basis
        X = list(WX.unbind(1))
        if m + block > max_basis:  # thick restart: keep the best Ritz vectors and their images
            keep = min(m - block, max(k + 2 * block, max_basis // 2))
            X = [x - Q @ (Q.T @ x) for x in X]
            Q, W = Q @ S[:, :keep], W @ S[:, :keep]
            T = torch.diag(theta[:keep])


def _start_vector(v0, params, n: int) -> torch.Tensor | None:
    if v0 is None:
        return None
    if isinstance(v0, torch.Tensor) and v0.ndim == 2 and v0.shape[0] == n:
        v = v0  # a block of previous eigenvectors
    elif isinstance(v0, torch.Tensor) and v0.ndim == 1:
        v = v0
    else:
        try:
            v = flatten(v0)
        except (TypeError, RuntimeError):
            raise TypeError("v0 must be a flat vector, an (n, j) block or a tensor/tuple shaped like params") from None
    if v.numel() != n:
        raise ValueError(f"v0 must have {n} entries (the number of parameters), got {v.numel()}")
    _checks.tensor("v0", v)
    if float(v.norm()) == 0.0:
        raise ValueError("v0 must be non-zero")
    return v.detach()


def top_eigenvalues(loss_fn: Callable[[Params], torch.Tensor], params: Params, k: int = 1, *,
                    tol: float = 1e-3, atol: float = 0.0, block: int = 1, max_hvps: int = 1000,
                    max_basis: int = 80,
                    v0=None, strict: bool = True, generator: torch.Generator | None = None,
                    hvp: Callable[[torch.Tensor], torch.Tensor] | None = None) -> Eigen:
    """The ``k`` largest (algebraic) Hessian eigenvalues of ``loss_fn`` at ``params``.

    Lanczos with full reorthogonalisation and thick restarts on Hessian-vector
    products, stopped by the residual test ``|H y - theta y| <= max(tol |theta|, atol)``
    on each of the ``k`` pairs (see the module docstring). The sharpness of
    Chapter 4 (progressive sharpening, edge of stability ``2/eta``) is
    ``values[0]``. Eigenvalues are ranked *algebraically*: a large negative
    eigenvalue is never returned before a smaller positive one.

    Parameters
    ----------
    loss_fn : callable
        Maps parameters (same container form as ``params``) to a scalar tensor;
        must be deterministic (a fixed batch). See :func:`module_loss` for a
        ``torch.nn.Module``.
    params : tensor or tuple of tensors
        Where the Hessian is taken. Not modified; ``.grad`` fields untouched.
    k : int
        Number of eigenpairs, ``1 <= k <= n`` (``n`` parameters).
    tol : float
        Relative residual tolerance, ``> 0``.
    atol : float
        Absolute residual floor, ``>= 0`` (needed only when a requested
        eigenvalue may be zero).
    block : int
        Block size. A single-vector Krylov space holds one direction per
        eigenvalue, so an eigenvalue of exact multiplicity ``m > 1`` (a symmetry
        of the model) is returned once and the next ``k`` slots go to smaller
        eigenvalues; use ``block >= m`` (e.g. ``block=k``) when ``k > 1`` and exact
        degeneracies are possible. Near-degenerate values are resolved by any block.
    max_hvps : int
        Budget of Hessian-vector products.
    max_basis : int
        Basis size that triggers a thick restart (memory ``n * max_basis``).
    v0 : tensor, tuple of tensors or (n, j) tensor, optional
        Warm start: a previous eigenvector (flat or shaped like ``params``), or
        a block of previous eigenvectors (``Eigen.vectors``) whose span is used.
    strict : bool
        If True (default) raise :class:`ConvergenceError` when the budget runs
        out; if False return the result with ``converged=False`` and warn.
    generator : torch.Generator, optional
        Source of the random start (and of restarts after an invariant subspace).
    hvp : callable, optional
        A precomputed ``v -> H v`` (from :func:`hvp_operator`) to reuse.

    Returns
    -------
    Eigen
        ``values`` (descending), ``vectors`` (flat columns), ``residuals``,
        ``hvps`` and ``converged``.

    Raises
    ------
    ConvergenceError
        If ``strict`` and the pairs are not certified within ``max_hvps``.
    ValueError, TypeError
        On bad arguments, a non-scalar or non-finite loss, or non-finite params.

    Examples
    --------
    >>> import torch
    >>> a = torch.tensor([3.0, -5.0, 1.0, 2.0], dtype=torch.float64)
    >>> loss = lambda w: 0.5 * (a * w * w).sum()
    >>> res = top_eigenvalues(loss, torch.zeros(4, dtype=torch.float64), k=2, tol=1e-10)
    >>> [round(float(x), 8) for x in res.values], res.converged
    ([3.0, 2.0], True)
    """
    items = _checks.params("params", params)
    k = _checks.positive_int("k", k)
    tol = _checks.positive("tol", tol)
    atol = _checks.positive("atol", atol, strict=False)
    max_hvps = _checks.positive_int("max_hvps", max_hvps)
    block = _checks.positive_int("block", block)
    max_basis = _checks.positive_int("max_basis", max_basis, minimum=k + 2 * block)
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable, got {type(loss_fn).__name__}")
    n = sum(t.numel() for t in items)
    if k > n:
        raise ValueError(f"k must be <= the number of parameters ({n}), got {k}")
    if hvp is None:
        hvp, _ = hvp_operator(loss_fn, params)
    start = _start_vector(v0, params, n)
    out = _lanczos(hvp, n, k, block, tol, atol, max_hvps, max_basis, start, generator,
                   items[0].dtype, items[0].device)
    if not out.converged:
        worst = float((out.residuals / out.values.abs().clamp_min(1e-300)).max())
        msg = (f"top_eigenvalues: {k} pair(s) not certified to tol={tol:g} after {out.hvps} "
               f"Hessian-vector products (worst relative residual {worst:.3g}); raise max_hvps "
               f"or tol")
        if strict:
            raise ConvergenceError(msg, out)
        warnings.warn(msg, RuntimeWarning, stacklevel=2)
    return out


def dense_hessian(loss_fn: Callable[[Params], torch.Tensor], params: Params) -> torch.Tensor:
    """The dense ``n x n`` Hessian of ``loss_fn`` at ``params`` (flattened order).

    Column ``j`` is the Hessian-vector product with the ``j``-th basis vector
    (:func:`hvp_operator`, one backward pass each); the result is symmetrised.
    For small models (tests, ground truth): ``n`` products, memory ``n^2``.
    (Batched products through ``is_grads_batched`` or ``torch.func`` were
    measured slower on CPU.)

    Examples
    --------
    >>> import torch
    >>> loss = lambda p: (p[0] ** 2 * p[1]).sum()
    >>> dense_hessian(loss, (torch.tensor([1.0], dtype=torch.float64), torch.tensor([2.0], dtype=torch.float64))).tolist()
    [[4.0, 2.0], [2.0, 0.0]]
    """
    hvp, n = hvp_operator(loss_fn, params)
    items = as_tuple(params)
    H = torch.empty(n, n, dtype=items[0].dtype, device=items[0].device)
    e = torch.zeros(n, dtype=items[0].dtype, device=items[0].device)
    for j in range(n):
        e[j] = 1.0
        H[:, j] = hvp(e)
        e[j] = 0.0
    return 0.5 * (H + H.T)


def module_loss(model: torch.nn.Module, criterion: Callable[..., torch.Tensor], inputs, targets
                ) -> tuple[Callable[[tuple[torch.Tensor, ...]], torch.Tensor], tuple[torch.Tensor, ...]]:
    """``(loss_fn, params)`` for the loss of a ``torch.nn.Module`` on a fixed batch.

    ``loss_fn(params) = criterion(model(inputs), targets)`` evaluated with
    ``torch.func.functional_call`` on the trainable parameters, in the model's
    *current* mode (call ``model.eval()`` first if dropout or batch norm should
    be frozen). Buffers are copied on each call, so batch-norm running
    statistics are never updated. ``params`` are the model's own trainable
    parameters, in ``model.named_parameters()`` order (left untouched).

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Linear(2, 1, bias=False).double()
    >>> x, y = torch.eye(2, dtype=torch.float64), torch.zeros(2, 1, dtype=torch.float64)
    >>> loss_fn, params = module_loss(net, torch.nn.functional.mse_loss, x, y)
    >>> [round(float(v), 8) for v in top_eigenvalues(loss_fn, params, k=2, tol=1e-8).values]
    [1.0, 1.0]
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not callable(criterion):
        raise TypeError(f"criterion must be callable, got {type(criterion).__name__}")
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise ValueError("model has no trainable parameters")
    names = [name for name, _ in named]
    buffers = dict(model.named_buffers())
    args = inputs if isinstance(inputs, tuple) else (inputs,)

    def loss_fn(params: Sequence[torch.Tensor]) -> torch.Tensor:
        state = {name: b.clone() for name, b in buffers.items()}
        state.update(zip(names, as_tuple(params)))
        return criterion(torch.func.functional_call(model, state, args), targets)

    return loss_fn, tuple(p for _, p in named)


class SharpnessTracker:
    """Track the top Hessian eigenvalue(s) along training, with warm starts.

    Each :meth:`update` calls :func:`top_eigenvalues` started from the previous
    eigenvectors (the top eigenvector moves slowly along a training path, so a
    check costs a few Hessian-vector products) and appends to ``history``.

    Parameters
    ----------
    k : int
        Number of top eigenvalues tracked.
    tol : float
        Relative residual tolerance of each check.
    **kwargs
        Passed on to :func:`top_eigenvalues` (``max_hvps``, ``strict``, ...).

    Attributes
    ----------
    history : list of dict
        One ``{"step", "values", "hvps", "residuals"}`` per check (floats and lists).
    last : Eigen or None
        The last result (its vectors seed the next check).

    Examples
    --------
    >>> import torch
    >>> tracker = SharpnessTracker(tol=1e-8, generator=torch.Generator().manual_seed(0))
    >>> a = torch.tensor([1.0, 4.0, 2.0], dtype=torch.float64)
    >>> w = torch.ones(3, dtype=torch.float64)
    >>> for step in range(3):
    ...     s = tracker.update(lambda p: 0.5 * (a * (1 + 0.1 * step) * p * p).sum(), w, step=step)
    >>> [round(h["values"][0], 6) for h in tracker.history]
    [4.0, 4.4, 4.8]
    """

    def __init__(self, k: int = 1, tol: float = 1e-3, **kwargs):
        self.k = _checks.positive_int("k", k)
        self.tol = _checks.positive("tol", tol)
        if "v0" in kwargs:
            raise TypeError("SharpnessTracker manages v0 itself; pass the first vector with update(..., v0=)")
        self.kwargs = kwargs
        self.history: list[dict] = []
        self.last: Eigen | None = None

    def update(self, loss_fn: Callable[[Params], torch.Tensor], params: Params, *, step: int | None = None,
               v0=None) -> float:
        """Compute the top eigenvalue(s) at ``params``; return the sharpness (largest one)."""
        if v0 is None and self.last is not None:
            v0 = self.last.vectors
        res = top_eigenvalues(loss_fn, params, self.k, tol=self.tol, v0=v0, **self.kwargs)
        self.last = res
        self.history.append({
            "step": len(self.history) if step is None else step,
            "values": [float(x) for x in res.values],
            "residuals": [float(x) for x in res.residuals],
            "hvps": res.hvps,
        })
        return float(res.values[0])
