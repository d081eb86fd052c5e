"""The entropic (modified) loss of discrete and stochastic training.

Implements Chapter 1 of the book:

* ``thm-modified-loss``: gradient descent with learning rate ``lr`` follows, to
  :math:`O(\\eta^2)`, the gradient flow of
  :math:`F_\\eta = L + \\tfrac{\\eta}{4}\\lVert\\nabla L\\rVert^2`.
* ``thm-sgd-entropic``: for SGD with batches of size :math:`B`,
  :math:`F_\\eta = L + \\tfrac{\\eta}{4}\\mathbb{E}_B\\lVert\\nabla \\ell_B\\rVert^2
  = L + \\tfrac{\\eta}{4}\\lVert\\nabla L\\rVert^2 + \\tfrac{\\eta}{4B}\\operatorname{Tr}\\Sigma`.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import torch

from . import _checks
from .params import Params, sq_norm
from .grads import grad, value_and_grad


def entropic_loss(loss_fn: Callable[[Params], torch.Tensor], lr: float, *, coef: float = 0.25) -> Callable[[Params], torch.Tensor]:
    """Return ``theta -> L(theta) + coef * lr * |grad L(theta)|^2`` (Eq. ``eq-modified-loss``).

    The default ``coef = 1/4`` is the one that makes gradient flow on the result
    match gradient descent to second order; other values exist only to show that
    they do not. The returned callable is differentiable (double backprop), so
    its gradient can drive a flow or an optimiser. ``theta`` may be a tensor or a
    tuple of tensors.

    Example
    -------
    >>> import torch
    >>> F = entropic_loss(lambda t: 0.5 * (t ** 2).sum(), lr=0.1)
    >>> F(torch.tensor([2.0], dtype=torch.float64)).item()  # 2 + 0.1/4 * 4
    2.1
    """
    _checks.function("loss_fn", loss_fn)
    lr = _checks.positive("lr", lr, strict=False)
    coef = _checks.real("coef", coef)

    def F(theta: Params) -> torch.Tensor:
        # one forward pass: the loss value comes with its gradient's graph
        value, g = value_and_grad(loss_fn, theta, create_graph=True)
        return value + coef * lr * sq_norm(g)

    return F


class EntropicTerms(NamedTuple):
    """Decomposition of the SGD entropic term (Eq. ``eq-sgd-decomposition``).

    Returned by :func:`sgd_entropic_terms`; see its example.
    """

    loss: torch.Tensor
    """Full-batch loss L."""
    grad_sq: torch.Tensor
    """The part from discretisation, ``|grad L|^2``."""
    trace_cov: torch.Tensor
    """Tr Sigma, the per-sample gradient covariance (population, 1/N)."""
    noise: torch.Tensor
    """The part from sampling, ``(1/B) Tr Sigma`` times the finite-population factor."""
    expected_batch_grad_sq: torch.Tensor
    """The expectation over batches ``E_B |grad l_B|^2 = grad_sq + noise``."""

    def free_energy(self, lr: float) -> torch.Tensor:
        """F = L + (lr/4) E_B|grad l_B|^2."""
        return self.loss + 0.25 * lr * self.expected_batch_grad_sq


def sgd_entropic_terms(sample_grads: torch.Tensor, losses: torch.Tensor, batch_size: int, *, replacement: bool = True) -> EntropicTerms:
    """The terms of the SGD entropic loss from per-sample gradients (Eq. ``eq-sgd-decomposition``).

    Parameters
    ----------
    sample_grads
        ``(N, P)`` per-sample gradients (flattened), e.g. from
        :func:`ntlib.grads.per_sample_grads`.
    losses
        ``(N,)`` per-sample losses; their mean is L.
    batch_size
        B, the minibatch size.
    replacement
        ``True``: B i.i.d. draws (the noise term is Tr Sigma / B). ``False``:
        without replacement from the N points, which multiplies it by
        (N - B) / (N - 1) (Smith et al. 2021).

    Example
    -------
    >>> import torch
    >>> G = torch.tensor([[1.0, 0.0], [-1.0, 0.0]], dtype=torch.float64)  # mean 0, Tr Sigma = 1
    >>> t = sgd_entropic_terms(G, torch.tensor([0.5, 0.5], dtype=torch.float64), batch_size=2)
    >>> float(t.grad_sq), float(t.trace_cov), float(t.noise), float(t.free_energy(lr=0.4))
    (0.0, 1.0, 0.5, 0.55)
    """
    _checks.tensor("sample_grads", sample_grads, ndim=2)
    _checks.tensor("losses", losses, ndim=1)
    if losses.shape[0] != sample_grads.shape[0]:
        raise ValueError(f"losses has {losses.shape[0]} entries, sample_grads has {sample_grads.shape[0]} rows")
    mean, var, factor = _batch_moments(sample_grads, batch_size, replacement)
    grad_sq, trace_cov = mean @ mean, var.sum()
    noise = trace_cov * factor
    return EntropicTerms(losses.mean(), grad_sq, trace_cov, noise, grad_sq + noise)


def expected_batch_sq(sample_grads: torch.Tensor, batch_size: int, *, replacement: bool = True) -> torch.Tensor:
    """Entry-wise ``E_B[(grad l_B)^2]`` over minibatches, from per-sample gradients (``eq-sgd-decomposition``).

    ``sample_grads`` is (N, ...) (e.g. one tensor of
    :func:`ntlib.grads.per_sample_grads`). With mean ``m`` and population
    variance ``v`` (1/N) of each entry, ``E_B[g_B^2] = m^2 + v c / B`` with
    ``c = 1`` for i.i.d. draws and ``c = (N - B)/(N - 1)`` without replacement.
    Summed over all entries this is ``EntropicTerms.expected_batch_grad_sq``
    of :func:`sgd_entropic_terms`; per tensor it gives the two sides of
    neuron balance (:func:`ntlib.symmetry.neuron_balance_sides`).

    Example
    -------
    >>> import torch
    >>> expected_batch_sq(torch.tensor([[1.0], [3.0]]), 1).tolist()  # (1 + 9) / 2
    [5.0]
    """
    m, v, factor = _batch_moments(sample_grads, batch_size, replacement)
    return m * m + v * factor


def _batch_moments(sample_grads: torch.Tensor, batch_size: int,
                   replacement: bool) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Entry-wise mean and population variance of per-sample gradients, and the variance factor of a batch mean."""
    _checks.tensor("sample_grads", sample_grads)
    if sample_grads.ndim < 1 or sample_grads.shape[0] < 1:
        raise ValueError("sample_grads must have a leading samples dimension of size >= 1")
    n = sample_grads.shape[0]
    b = _checks.positive_int("batch_size", batch_size)
    if not replacement and b > n:
        raise ValueError(f"batch_size={b} exceeds the {n} samples available without replacement")
    m = sample_grads.mean(0)
    v = ((sample_grads - m) ** 2).mean(0)
    c = 1.0 if replacement else ((n - b) / (n - 1) if n > 1 else 0.0)
    return m, v, c / b


def hessian_gradient_product(loss_fn: Callable[[Params], torch.Tensor], params: Params) -> Params:
    """``H grad L = grad (|grad L|^2 / 2)`` by double backprop (same form as ``params``).

    The direction of the leading-order irreversibility error and of the entropic
    force (Chapter 1, ``thm-irreversibility``, ``eq-entropic-force``).

    Example
    -------
    >>> import torch
    >>> A = torch.diag(torch.tensor([1.0, 3.0], dtype=torch.float64))
    >>> hessian_gradient_product(lambda t: 0.5 * t @ A @ t, torch.ones(2, dtype=torch.float64)).tolist()  # A A t
    [1.0, 9.0]
    """
    return grad(lambda p: 0.5 * sq_norm(grad(loss_fn, p, create_graph=True)), params)


def entropic_force(loss_fn: Callable[[Params], torch.Tensor], params: Params, lr: float, *,
                   coef: float = 0.25) -> Params:
    """The entropic force ``-(grad F - grad L) = -2 coef lr H grad L`` (Chapter 1, ``eq-entropic-force``).

    With the default ``coef = 1/4`` it is ``-(lr/2) H grad L``: the extra pull of
    discrete training towards points of small gradient norm.

    Example
    -------
    >>> import torch
    >>> entropic_force(lambda t: 0.5 * (t ** 2).sum(), torch.tensor([2.0], dtype=torch.float64), lr=0.1).tolist()
    [-0.1]
    """
    lr = _checks.positive("lr", lr, strict=False)
    coef = _checks.real("coef", coef)
    hg = hessian_gradient_product(loss_fn, params)
    if isinstance(hg, torch.Tensor):
        return -2 * coef * lr * hg
    return tuple(-2 * coef * lr * t for t in hg)
