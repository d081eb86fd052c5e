"""What a reader would otherwise use for the sharpness: each peer as a function of a family problem.

Every function takes a :class:`benchmarks.family.Problem` and returns ``(values, hvps)``: the
eigenvalues it reports, descending, as a float64 numpy array, and the number of Hessian-vector
products it computed.

- :func:`recipe`: the edge-of-stability code (Cohen et al. 2021, ``utilities.py``): scipy's
  ``eigsh`` (ARPACK, default ``tol=0``, ``which="LM"``) on a ``LinearOperator`` whose matvec
  rebuilds the gradient graph (``create_graph=True``) for every product, in the model's dtype
  (one physical batch: the whole fixed batch).
- :func:`eigsh_cached`: ``eigsh(tol=1e-3)`` on ntlib's product (the graph built once): the same
  product as ntlib, so the ratio isolates the eigensolver.
- :func:`pyhessian`: PyHessian 0.1, ``hessian(model, criterion, data=(x, y)).eigenvalues(top_n)``
  with its defaults (power iteration, ``maxIter=100``, ``tol=1e-3`` on the change of the estimate).
- :func:`curvlinops`: curvlinops 3.0.1 ``HessianLinearOperator(...).to_scipy()`` with
  ``eigsh(tol=1e-3)``; ``check_deterministic=False`` (its default probe costs extra products).
"""

from __future__ import annotations

import importlib
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from scipy.sparse.linalg import LinearOperator, eigsh

from ntlib.hvp import hvp_operator
from ntlib.modules import module_loss

NP = {torch.float32: np.float32, torch.float64: np.float64}


def _v0(n: int, dtype: torch.dtype, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(n).astype(NP[dtype])


def _sorted(vals) -> np.ndarray:
    return np.sort(np.asarray(vals, dtype=np.float64))[::-1].copy()


def _flat(ts) -> torch.Tensor:
    return torch.cat([t.contiguous().reshape(-1) for t in ts])


def recipe(pb, k: int = 1, seed: int = 0):
    """The edge-of-stability code's eigsh recipe (graph rebuilt per product, ``tol=0``)."""
    model, x, y, crit = pb.model, pb.x, pb.y, pb.criterion
    params = [p for p in model.parameters() if p.requires_grad]
    n, count = sum(p.numel() for p in params), [0]

    def matvec(vec: np.ndarray) -> np.ndarray:
        count[0] += 1
        v = torch.as_tensor(np.ascontiguousarray(vec).reshape(-1), dtype=pb.dtype, device=x.device)
        loss = crit(model(x), y)
        grads = torch.autograd.grad(loss, params, create_graph=True)
        dot = _flat(grads).mul(v).sum()
        return _flat(torch.autograd.grad(dot, params, retain_graph=True)).detach().cpu().numpy()

    op = LinearOperator((n, n), matvec=matvec, dtype=NP[pb.dtype])
    vals = eigsh(op, k=k, v0=_v0(n, pb.dtype, seed), return_eigenvectors=False)
    return _sorted(vals), count[0]


def eigsh_cached(pb, k: int = 1, seed: int = 0, tol: float = 1e-3):
    """scipy eigsh(tol) on ntlib's reverse-over-reverse product on a cached graph."""
    loss_fn, params = module_loss(pb.model, pb.criterion, pb.x, pb.y)
    hvp, n = hvp_operator(loss_fn, params)

    def matvec(vec: np.ndarray) -> np.ndarray:
        v = torch.as_tensor(np.ascontiguousarray(vec).reshape(-1), dtype=pb.dtype, device=pb.x.device)
        return hvp(v).cpu().numpy()

    op = LinearOperator((n, n), matvec=matvec, dtype=NP[pb.dtype])
    vals = eigsh(op, k=k, tol=tol, v0=_v0(n, pb.dtype, seed), return_eigenvectors=False)
    return _sorted(vals), hvp.products


def pyhessian(pb, model_copy, top_n: int = 1, seed: int = 0, **options):
    """PyHessian 0.1 (defaults unless ``options``) on a fresh copy of the model.

    A fresh copy because PyHessian calls ``eval()`` and writes ``.grad`` (with a graph) on it.
    """
    ph = importlib.import_module("pyhessian.hessian")  # the module, not the class it exports
    count, inner = [0], ph.hessian_vector_product

    def counted(*a, **kw):
        count[0] += 1
        return inner(*a, **kw)

    ph.hessian_vector_product = counted
    old = torch.get_default_dtype()
    torch.set_default_dtype(pb.dtype)  # its random start uses the default dtype
    try:
        torch.manual_seed(seed)
        with warnings.catch_warnings():  # its backward(create_graph=True) warns about a reference cycle
            warnings.simplefilter("ignore", UserWarning)
            h = ph.hessian(model_copy, pb.criterion, data=(pb.x, pb.y), cuda=pb.x.is_cuda)
            vals, _ = h.eigenvalues(top_n=top_n, **options)
    finally:
        ph.hessian_vector_product = inner
        torch.set_default_dtype(old)
    return _sorted(vals), count[0]


def curvlinops(pb, k: int = 1, seed: int = 0, tol: float = 1e-3):
    """curvlinops 3.0.1 HessianLinearOperator with scipy eigsh(tol)."""
    from curvlinops import HessianLinearOperator

    loss = torch.nn.MSELoss() if pb.criterion is F.mse_loss else torch.nn.CrossEntropyLoss()
    params = [p for p in pb.model.parameters() if p.requires_grad]
    H = HessianLinearOperator(pb.model, loss, params, [(pb.x, pb.y)], check_deterministic=False).to_scipy()
    n, count = H.shape[0], [0]

    def matvec(vec: np.ndarray) -> np.ndarray:
        count[0] += 1
        return H.matvec(vec)

    op = LinearOperator((n, n), matvec=matvec, dtype=H.dtype)
    vals = eigsh(op, k=k, tol=tol, v0=_v0(n, pb.dtype, seed), return_eigenvectors=False)
    return _sorted(vals), count[0]


def available() -> dict[str, str]:
    """Peers that cannot be imported, with the reason (an empty dict when all are there)."""
    missing = {}
    for name in ("pyhessian", "curvlinops"):
        try:
            importlib.import_module(name)
        except Exception as exc:  # an ImportError, or a broken install
            missing[name] = f"{type(exc).__name__}: {exc}".splitlines()[0][:120]
    return missing
