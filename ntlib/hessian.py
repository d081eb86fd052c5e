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
start, which has a random component).

Each HVP is one backward pass through a gradient graph built once per call
(double backprop, ``torch.autograd.grad(g, params, v, retain_graph=True)``;
:mod:`ntlib.hvp` has the product paths and the measurements behind this
default). The cold start mixes the gradient, which comes free with that graph,
with a random vector (``start="gradient"``).
The caller's tensors, their ``.grad`` fields and any module's train/eval mode
are left untouched.

Public API: :func:`top_eigenvalues`, :class:`Eigen`, :func:`hvp_operator`,
:func:`dense_hessian`, :class:`SharpnessTracker`; the solver raises
:class:`ntlib.errors.ConvergenceError`. For a ``torch.nn.Module``, build the
``(loss_fn, params)`` pair with :func:`ntlib.modules.module_loss`.
"""

from __future__ import annotations

import inspect
import warnings
from typing import Callable, NamedTuple

import torch

from . import _checks
from ._lanczos import lanczos, start_block
from .errors import ConvergenceError
from .hvp import HVP, hvp_operator
from .params import Params, flatten, unflatten

__all__ = [
    "Eigen", "top_eigenvalues", "hvp_operator", "dense_hessian", "SharpnessTracker",
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
        ``ntlib.params.flatten(params)``. :meth:`vector` returns it in the
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


STARTS = ("gradient", "random")


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
    if v.shape[0] != n or v.ndim == 1 and v.numel() != n:
        raise ValueError(f"v0 must have {n} entries (the number of parameters), got {v.numel()}")
    _checks.tensor("v0", v)
    if float(v.norm()) == 0.0:
        raise ValueError("v0 must be non-zero")
    return v.detach()


def top_eigenvalues(loss_fn: Callable[[Params], torch.Tensor], params: Params, k: int = 1, *,
                    tol: float = 1e-3, atol: float = 0.0, block: int = 1, max_hvps: int = 1000,
                    max_basis: int = 80,
                    v0=None, start: str = "gradient", strict: bool = True,
                    generator: torch.Generator | None = None,
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
        must be deterministic (a fixed batch). See :func:`ntlib.modules.module_loss` for a
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
        an ``(n, j)`` block such as ``Eigen.vectors`` (with ``block=1`` the start
        is the sum of its columns; otherwise its first ``block`` columns, padded
        with random vectors).
    start : str
        ``"gradient"`` or ``"random"``: the cold start when ``v0`` is not
        given. ``"gradient"`` (default): the normalised gradient plus a
        normalised random vector (the gradient comes
        free with the graph of the products; along training it lies mostly in the
        top eigenspace). The random half keeps an overlap with every eigenvector,
        so a gradient confined to a symmetric subspace costs at most about what a
        random start costs; at a critical point (zero gradient), or with an
        ``hvp`` that does not carry the gradient, the start is random. On the
        14 problems of the Performance page's family (four seeds each) it
        needed 29 % fewer products at initialisation and about as many after
        training, with no spread over seeds. ``"random"``: a random vector.
    strict : bool
        If True (default) raise :class:`~ntlib.errors.ConvergenceError` when the budget runs
        out; if False return the result with ``converged=False`` and warn.
    generator : torch.Generator, optional
        Source of the random start (and of restarts after an invariant subspace).
    hvp : callable, optional
        A precomputed ``v -> H v`` to reuse: an :class:`ntlib.hvp.HVP` from
        :func:`hvp_operator` (e.g. built with ``mode="forward"``), or any callable
        on flat vectors and ``(n, p)`` blocks.

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
    return _top(loss_fn, params, k, tol=tol, atol=atol, block=block, max_hvps=max_hvps, max_basis=max_basis,
                v0=v0, start=start, strict=strict, generator=generator, hvp=hvp)[0]


def _top(loss_fn, params, k, *, tol, atol, block, max_hvps, max_basis, v0, start, strict, generator, hvp,
         extra: int = 0) -> tuple[Eigen, torch.Tensor]:
    """:func:`top_eigenvalues`, also returning ``extra`` further Ritz vectors (rows)."""
    items = _checks.params("params", params, finite=hvp is not None)  # else HVP checks them at once
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
    if start not in STARTS:
        raise ValueError(f"start must be one of {STARTS}, got {start!r}")
    if generator is not None:
        _checks.generator("generator", generator)
    v0 = _start_vector(v0, params, n)
    if hvp is None:
        hvp = HVP(loss_fn, params, _items=items)
    elif not callable(hvp):
        raise TypeError(f"hvp must be callable, got {type(hvp).__name__}")
    if isinstance(hvp, HVP):
        if hvp.n != n:
            raise ValueError(f"hvp acts on {hvp.n} parameters, params have {n}")
        apply, gradient = hvp._apply, hvp.gradient  # checked vectors: skip the per-product checks
    else:
        apply, gradient = hvp, None
    dtype, device = items[0].dtype, items[0].device

    def random() -> torch.Tensor:
        return torch.randn(n, generator=generator, dtype=dtype, device="cpu").to(device)

    X = start_block(v0, gradient if start == "gradient" else None, block, random, dtype, device)
    with torch.no_grad():
        found, ritz = lanczos(apply, n, k, block, tol, atol, max_hvps, max_basis, X, random, extra)
    out = Eigen(*found)
    if not out.converged:
        worst = float((out.residuals / out.values.abs().clamp_min(1e-300)).max())
        msg = (f"top_eigenvalues: {k} pair(s) not certified to tol={tol:g} after {out.hvps} "
               f"Hessian-vector products (worst relative residual {worst:.3g}); raise max_hvps "
               f"or tol")
        if strict:
            raise ConvergenceError(msg, out)
        warnings.warn(msg, RuntimeWarning, stacklevel=3)
    return out, ritz


def dense_hessian(loss_fn: Callable[[Params], torch.Tensor], params: Params) -> torch.Tensor:
    """The dense ``n x n`` Hessian of ``loss_fn`` at ``params`` (flattened order).

    Column ``j`` is the Hessian-vector product with the ``j``-th basis vector
    (:func:`hvp_operator`, one backward pass each; row ``j`` equals column ``j``
    up to round-off); the result is symmetrised.
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
    H = torch.empty(n, n, dtype=hvp.dtype, device=hvp.device)
    e = torch.zeros(n, dtype=hvp.dtype, device=hvp.device)
    for j in range(n):
        e[j] = 1.0
        H[j] = hvp._apply(e)  # row j of the symmetric H (contiguous writes)
        e[j] = 0.0
    return 0.5 * (H + H.T)


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
    extra, mix : int, float
        The next check starts from the sum of the previous eigenvectors and
        ``mix`` times the next ``extra`` (unconverged) Ritz vectors: when the top
        eigenvalues cross between checks, the new top eigenvector is mostly in
        that span. Measured on the benchmark's edge-of-stability run (every 10
        GD steps): ``extra=0`` gave mean 6.9 / max 16 products per check,
        ``extra=1, mix=0.3`` mean 8.4 / max 14, ``extra=2, mix=1`` mean 9.6 / max 13.
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

    def __init__(self, k: int = 1, tol: float = 1e-3, *, extra: int = 1, mix: float = 0.3, **kwargs):
        self.k = _checks.positive_int("k", k)
        self.tol = _checks.positive("tol", tol)
        self.extra = _checks.positive_int("extra", extra, minimum=0)
        self.mix = _checks.positive("mix", mix, strict=False)
        options = {name: p.default for name, p in inspect.signature(top_eigenvalues).parameters.items()
                   if p.kind is p.KEYWORD_ONLY}
        unknown = set(kwargs) - set(options) | set(kwargs) & {"v0", "tol", "hvp"}
        if unknown:
            raise TypeError(f"SharpnessTracker got unexpected or managed option(s) {sorted(unknown)}")
        options.update(kwargs)
        self.options = options
        self.history: list[dict] = []
        self.last: Eigen | None = None
        self._start: torch.Tensor | None = None

    def update(self, loss_fn: Callable[[Params], torch.Tensor], params: Params, *, step: int | None = None,
               v0=None) -> float:
        """Compute the top eigenvalue(s) at ``params``; return the sharpness (largest one).

        ``v0`` overrides the warm start (by default: the previous eigenvectors plus
        ``mix`` times the next ``extra`` Ritz vectors).
        """
        if v0 is None:
            v0 = self._start
        opts = {**self.options, "tol": self.tol, "v0": v0}
        res, ritz = _top(loss_fn, params, self.k, **opts, extra=self.extra)
        self.last = res
        self._start = torch.cat([res.vectors, self.mix * ritz.T], 1)
        self.history.append({
            "step": len(self.history) if step is None else step,
            "values": [float(x) for x in res.values],
            "residuals": [float(x) for x in res.residuals],
            "hvps": res.hvps,
        })
        return float(res.values[0])
