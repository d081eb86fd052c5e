"""Hessian-vector products (HVPs) of a loss given as a function of parameters.

Every curvature computation of the book (the sharpness of Chapter 4, progressive
sharpening and the edge of stability ``2/eta``) reduces to products ``H v`` with
the Hessian ``H = grad^2 L(theta)``, never forming ``H``. :func:`hvp_operator`
builds ``v -> H v`` on flat vectors along one of two paths:

``"reverse"`` (default)
    reverse-over-reverse: the gradient is computed once with ``create_graph=True``
    and each product is one backward pass through that cached graph
    (``torch.autograd.grad(g, params, v, retain_graph=True)``).
``"forward"``
    forward-over-reverse: ``torch.func.jvp`` of ``torch.func.grad`` of the loss;
    nothing is cached, each product redoes the forward and backward passes with
    dual numbers. It needs a loss that ``torch.func`` can differentiate twice:
    ``F.mse_loss`` with ``reduction="mean"`` fails in torch 2.13 ("ZeroTensors are
    immutable"), ``F.huber_loss`` has no forward derivative; the operator then
    raises a ``ValueError`` that says so and names the reverse path.

A block of vectors (an ``(n, p)`` tensor) is multiplied column by column, or in
one batched call (``batched=True``: ``is_grads_batched`` on the cached graph,
``torch.func.vmap`` on the forward path).

Which is faster was measured on the seven-model family of the Performance page
(CPU, one thread, float32 and float64, 1.7k-22k parameters; the "HVP paths" rows):
a forward-over-reverse product cost 1.7-4x a reverse one on every model (up to 7x
on a loaded machine), and a batched block of 8 products cost less than 8 single
reverse products only on the two 1.7k-parameter ReLU networks (0.6-0.8x), about
the same on the CNN and the transformer block, and up to 2x more on the larger
MLPs. So the default is reverse, column by column; the forward path is the one to
pick when memory is short (it keeps no graph between products) and the batched
one to try on a GPU for small models, where kernel launches dominate (not
measured here).

Public API: :func:`hvp_operator` and the :class:`HVP` it returns.
"""

from __future__ import annotations

from typing import Callable

import torch

from . import _checks
from .params import Params, like

__all__ = ["HVP", "hvp_operator", "MODES"]

#: The product paths of :func:`hvp_operator`.
MODES = ("reverse", "forward")


class HVP:
    """The operator ``v -> H v`` returned by :func:`hvp_operator` (call it on flat vectors).

    Attributes
    ----------
    n : int
        Number of parameters (length of the flat vectors).
    mode : str
        ``"reverse"`` or ``"forward"`` (see the module docstring).
    batched : bool
        Whether an ``(n, p)`` block is multiplied in one batched call.
    loss : float
        Loss value at the point.
    gradient : torch.Tensor
        The flat gradient at the point (detached), a by-product of building the
        operator; :func:`ntlib.hessian.top_eigenvalues` may use it in its start.
    products : int
        Number of Hessian-vector products computed so far (a block of ``p``
        columns counts ``p``).

    Examples
    --------
    >>> import torch
    >>> op = HVP(lambda w: (w ** 3).sum(), torch.tensor([1.0, 2.0], dtype=torch.float64))
    >>> op(torch.ones(2, dtype=torch.float64)).tolist(), op.gradient.tolist(), op.products
    ([6.0, 12.0], [3.0, 12.0], 1)
    """

    def __init__(self, loss_fn: Callable[[Params], torch.Tensor], params: Params, mode: str = "reverse",
                 batched: bool = False, *, _items: tuple[torch.Tensor, ...] | None = None):
        # _items: params whose types the caller (ntlib.hessian) has checked already
        items = _checks.params("params", params, finite=False) if _items is None else _items
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if not isinstance(batched, bool):
            raise TypeError(f"batched must be a bool, got {type(batched).__name__}")
        _checks.function("loss_fn", loss_fn)
        self.mode, self.batched, self.products = mode, batched, 0
        if any(t.dtype != items[0].dtype or t.device != items[0].device for t in items):
            raise ValueError("params must share one dtype and one device (the flat vectors have one)")
        self._shapes = [t.shape for t in items]
        self._sizes = [t.numel() for t in items]
        self.n = sum(self._sizes)
        self.dtype, self.device = items[0].dtype, items[0].device
        # one flat leaf, the parameters as its views: every product then takes and returns one
        # flat tensor, without splitting v or concatenating the result (per-product overhead)
        point = torch.cat([t.detach().reshape(-1) for t in items])
        if not bool(torch.isfinite(point).all()):  # one check for all; then name the tensor
            _checks.params("params", params)

        def flat_loss(flat: torch.Tensor) -> torch.Tensor:
            views = [c.view(s) for c, s in zip(flat.split(self._sizes), self._shapes)]
            return loss_fn(like(params, views))

        leaf = point.clone().requires_grad_(True)
        with torch.enable_grad():
            value = flat_loss(leaf)
            _checks.scalar_output("loss_fn(params)", value)
            if not bool(torch.isfinite(value)):
                raise ValueError(f"loss_fn(params) is not finite: {float(value.detach())}")
            (grad,) = torch.autograd.grad(value.reshape(()), leaf, create_graph=mode == "reverse",
                                          allow_unused=True)
        self.loss = float(value.detach())
        self.gradient = torch.zeros_like(point) if grad is None else grad.detach()
        if mode == "reverse":
            # a loss at most linear in the parameters has a gradient without a graph: H = 0
            self._grad = grad if grad is not None and grad.requires_grad else None
            self._leaf = leaf
        else:
            self._point = point
            self._grad_fn = torch.func.grad(lambda flat: flat_loss(flat).reshape(()))

    # -- products ---------------------------------------------------------------------------
    def _reverse(self, v: torch.Tensor, batched: bool = False) -> torch.Tensor:
        """``H v`` for a flat ``v``, or the rows ``H v_i`` for a ``(p, n)`` stack with ``batched``."""
        if self._grad is None:
            return torch.zeros_like(v)
        (hv,) = torch.autograd.grad(self._grad, self._leaf, grad_outputs=v, retain_graph=True,
                                    allow_unused=True, is_grads_batched=batched)
        return torch.zeros_like(v) if hv is None else hv

    def _forward(self, v: torch.Tensor) -> torch.Tensor:
        try:
            return torch.func.jvp(self._grad_fn, (self._point,), (v,))[1]
        except RuntimeError as exc:
            raise ValueError(
                "the forward-over-reverse product (mode='forward') failed on this loss "
                f"({str(exc).splitlines()[0][:120]}); F.mse_loss with reduction='mean' and F.huber_loss "
                "are known not to support it in torch 2.13: use mode='reverse', or write the mean "
                "as F.mse_loss(..., reduction='none').mean()") from None

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        """``H v`` for a flat ``(n,)`` vector, or ``H V`` for an ``(n, p)`` block."""
        if not isinstance(v, torch.Tensor) or v.ndim not in (1, 2) or v.shape[0] != self.n:
            raise ValueError(f"v must be a tensor of shape ({self.n},) or ({self.n}, p), "
                             f"got {getattr(v, 'shape', type(v).__name__)}")
        v = v.to(dtype=self.dtype, device=self.device)
        return self._apply(v)

    def _apply(self, v: torch.Tensor) -> torch.Tensor:
        """:meth:`__call__` without the argument checks (for solvers that built ``v`` themselves)."""
        if v.ndim == 1:
            self.products += 1
            return self._reverse(v) if self.mode == "reverse" else self._forward(v)
        p = v.shape[1]
        self.products += p
        if not self.batched or p == 1:
            one = self._reverse if self.mode == "reverse" else self._forward
            return torch.stack([one(c) for c in v.unbind(1)], 1)
        rows = v.T.contiguous()
        if self.mode == "reverse":
            return self._reverse(rows, batched=True).T
        return torch.func.vmap(self._forward)(rows).T


def hvp_operator(loss_fn: Callable[[Params], torch.Tensor], params: Params, *, mode: str = "reverse",
                 batched: bool = False) -> tuple[HVP, int]:
    """Build ``v -> H v`` on flat vectors (the Hessian-vector products behind Chapter 4's sharpness).

    ``loss_fn`` must be deterministic (a fixed batch). On the reverse path the
    gradient graph is built here, once, and each product is one backward pass
    through it; on the forward path each product is ``torch.func.jvp`` of
    ``torch.func.grad``. See the module docstring for the measurements behind
    the defaults.

    Parameters
    ----------
    loss_fn : callable
        Maps parameters (same container form as ``params``) to a scalar tensor.
    params : tensor or tuple of tensors
        Point at which the Hessian is taken. Not modified; ``.grad`` untouched.
    mode : str
        ``"reverse"`` or ``"forward"``: reverse-over-reverse on a cached graph (default) or
        forward-over-reverse with ``torch.func`` (no memory kept between products).
    batched : bool
        Multiply an ``(n, p)`` block in one batched call instead of column by column.

    Returns
    -------
    hvp : HVP
        ``hvp(v)`` for a flat vector ``v`` of ``n`` entries returns ``H v`` (flat);
        for an ``(n, p)`` block it returns the ``(n, p)`` block of products. It also
        carries the loss value and the gradient at ``params``.
    n : int
        Number of parameters.

    Raises
    ------
    ValueError, TypeError
        On a non-scalar or non-finite loss, non-finite params, params of several
        dtypes or devices, an unknown ``mode``;
        on a product with a vector of the wrong shape; on the forward path, when
        ``torch.func`` cannot differentiate the loss (the message says why).

    Examples
    --------
    >>> import torch
    >>> a = torch.tensor([1.0, 3.0], dtype=torch.float64)
    >>> loss = lambda w: 0.5 * (a * w * w).sum()
    >>> hvp, n = hvp_operator(loss, torch.zeros(2, dtype=torch.float64))
    >>> hvp(torch.tensor([1.0, 1.0], dtype=torch.float64)).tolist(), n
    ([1.0, 3.0], 2)
    >>> fwd, _ = hvp_operator(loss, torch.zeros(2, dtype=torch.float64), mode="forward", batched=True)
    >>> fwd(torch.eye(2, dtype=torch.float64)).tolist()
    [[1.0, 0.0], [0.0, 3.0]]
    """
    op = HVP(loss_fn, params, mode, batched)
    return op, op.n
