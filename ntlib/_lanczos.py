"""The solver behind :func:`ntlib.hessian.top_eigenvalues`: block Lanczos on products ``v -> H v``.

Private: the public entry point, its validation and its result type live in
:mod:`ntlib.hessian`. Kept apart so that each module stays one concept.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import numpy as np
import torch
from scipy.linalg import lapack


class Ritz(NamedTuple):
    """Ritz values (descending), vectors (columns), exact residuals, products used, certified."""

    values: torch.Tensor
    vectors: torch.Tensor
    residuals: torch.Tensor
    hvps: int
    converged: bool


def start_block(v0: torch.Tensor | None, gradient: torch.Tensor | None, block: int,
                 random: Callable[[], torch.Tensor], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The start block as rows: ``v0`` if given, else the gradient plus a random vector, else random."""
    X = [random() for _ in range(block)]
    if v0 is not None:
        cols = list(v0.to(dtype=dtype, device=device).reshape(v0.shape[0], -1).unbind(1))
        X = cols + X[len(cols):] if len(cols) <= block else [sum(cols)] if block == 1 else cols[:block]
    elif gradient is not None:
        gn = float(gradient.norm())
        if math.isfinite(gn) and gn > 0.0:  # at a critical point the gradient says nothing
            X[0] = gradient.to(dtype=dtype, device=device) / gn + X[0] / X[0].norm()
    return torch.stack(X)


def lanczos(apply: Callable[[torch.Tensor], torch.Tensor], n: int, k: int, block: int, tol: float,
            atol: float, max_hvps: int, max_basis: int, X: torch.Tensor,
            random: Callable[[], torch.Tensor], extra: int = 0) -> tuple[Ritz, torch.Tensor]:
    """Block Lanczos with full reorthogonalisation and thick restarts for the top-k pairs.

    ``X`` holds the start block as rows. The basis ``Q`` and its images
    ``W = H Q`` are stored as rows; the projection ``T = Q^T H Q`` (small, kept
    in float64 numpy) is diagonalised (Rayleigh-Ritz) after every block. The
    coefficients ``Q^T H q`` of a new block serve both as the new columns of
    ``T`` and as the first Gram-Schmidt pass of the next block. A Ritz pair's
    residual ``W s - theta Q s`` equals ``(I - Q Q^T) W s``, that is the
    orthogonalised next block weighted by the last rows of ``s``: this estimate
    (no product, no ``n``-vector operation for ``block=1``) decides when to stop,
    and the residual is then recomputed exactly from the stored ``Q`` and ``W``;
    only the exact one certifies. Also returns the next ``extra`` Ritz vectors
    (rows; for warm starts).
    """
    dtype, device = X.dtype, X.device
    vnorm = torch.linalg.vector_norm  # direct: Tensor.norm goes through a Python wrapper
    cap = min(max_basis, n) + block
    Qr = torch.empty(cap, n, dtype=dtype, device=device)
    Wr = torch.empty(cap, n, dtype=dtype, device=device)
    T = np.zeros((cap, cap))
    hvps, scale, m, clean, beta = 0, 0.0, 0, False, [0.0]  # clean: X already orthogonal to the basis
    norms = vnorm(X, dim=1).tolist()

    def exact(S: np.ndarray, theta: np.ndarray, m: int) -> tuple[torch.Tensor, torch.Tensor]:
        Sj = torch.from_numpy(S.T.copy()).to(dtype=dtype, device=device)
        Y = Sj @ Qr[:m]  # Ritz vectors as rows
        th = torch.from_numpy(theta.copy()).to(dtype=dtype, device=device)
        return Y, vnorm(Sj @ Wr[:m] - th[:, None] * Y, dim=1)

    while True:
        # add the block to the basis; a row that vanishes (an invariant subspace, or a
        # dependent row) is replaced by a fresh random direction
        m0 = m
        for i in range(min(X.shape[0], n - m0)):
            x, n0, passes = X[i], norms[i], 0 if clean and i == 0 else 2
            for attempt in range(4):
                for _ in range(passes if m else 0):
                    x = x - (Qr[:m] @ x) @ Qr[:m]
                nx = vnorm(x).item() if passes or not clean else beta[0]
                if math.isfinite(nx) and nx > 1e-10 * n0 and nx > 1e-14 * scale:
                    break
                x, passes = random(), 2
                n0 = vnorm(x).item()
            else:
                raise RuntimeError("lanczos: could not extend the Krylov basis")
            torch.div(x, nx, out=Qr[m])
            m += 1
        WX = apply(Qr[m0]).unsqueeze(0) if m == m0 + 1 else apply(Qr[m0:m].T).T
        hvps += m - m0
        Q = Qr[:m]
        C = Q @ WX.T  # (m, b): the new columns of T
        Cn = C.cpu().numpy().astype(np.float64)
        if not np.isfinite(Cn).all():  # a non-finite entry of H q reaches every coefficient
            raise ValueError("a Hessian-vector product is not finite")
        Wr[m0:m] = WX
        T[:m, m0:m] = Cn
        T[m0:m, :m0] = Cn[:m0].T
        theta, S, info = lapack.dsyev(T[:m, :m], lower=0)  # upper triangle; less overhead than np.linalg.eigh
        if info:
            raise RuntimeError(f"lanczos: the projected eigenproblem failed (LAPACK info {info})")
        theta, S = theta[::-1].copy(), S[:, ::-1].copy()  # descending
        scale = max(scale, float(np.abs(theta).max()))
        # the part of H X not in the basis: Gram-Schmidt twice, the first pass from C
        X = WX - C.T @ Q
        X = X - (X @ Q.T) @ Q
        beta = vnorm(X, dim=1).tolist()
        norms = np.sqrt((Cn * Cn).sum(0) + np.square(beta)).tolist()  # |H q| of each row
        clean = True
        j = min(k, m)
        bound = np.maximum(tol * np.abs(theta[:j]), atol)
        if m - m0 == 1:
            est = np.abs(S[m - 1, :j]) * beta[0]
        else:
            Sl = torch.from_numpy(S[m0:m, :j].T.copy()).to(dtype=dtype, device=device)
            est = vnorm(Sl @ X, dim=1).cpu().double().numpy()
        full = m >= n
        if j == k and (full or (est <= bound).all()) or hvps + block > max_hvps or full:
            Y, res = exact(S[:, :j], theta[:j], m)
            done = j == k and (full or bool((res.cpu().double().numpy() <= bound).all()))
            if done or hvps + block > max_hvps or full:
                more = exact(S[:, j:j + extra], theta[j:j + extra], m)[0] if extra else Qr[:0]
                values = torch.from_numpy(theta[:j].copy()).to(dtype=dtype, device=device)
                return Ritz(values, Y.T.contiguous(), res, hvps, done), more
        if m + block > cap:  # thick restart: keep the best Ritz vectors and their images
            keep = min(m - block, max(k + 2 * block, max_basis // 2))
            Sk = torch.from_numpy(S[:, :keep].T.copy()).to(dtype=dtype, device=device)
            Qr[:keep], Wr[:keep] = Sk @ Qr[:m], Sk @ Wr[:m]
            T[:] = 0.0
            T[:keep, :keep] = np.diag(theta[:keep])
            m = keep
