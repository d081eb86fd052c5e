"""Gradients of losses on parameters given as a tensor or a tuple of tensors.

``grad`` is the full-batch gradient; ``per_sample_grads`` returns one gradient
per data point (``torch.func.vmap`` over ``torch.func.grad``), the quantity whose
covariance :math:`\\Sigma` enters the SGD entropic term (Chapter 1, ``thm-sgd-entropic``).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch.func import grad as _fgrad, vmap

from . import _checks
from .params import Params, as_tuple, like


def grad(loss_fn: Callable[[Params], torch.Tensor], params: Params, *, create_graph: bool = False) -> Params:
    """Gradient of the scalar ``loss_fn(params)`` with respect to ``params``.

    Returns the same container form as ``params`` (a tensor or a tuple).
    ``create_graph=True`` keeps the graph for a second derivative (double backprop).
    The caller's tensors and their ``.grad`` fields are left untouched.

    Example
    -------
    >>> import torch
    >>> grad(lambda t: (t ** 2).sum(), torch.tensor([1.0, -2.0], dtype=torch.float64)).tolist()
    [2.0, -4.0]
    """
    return value_and_grad(loss_fn, params, create_graph=create_graph)[1]


def value_and_grad(loss_fn: Callable[[Params], torch.Tensor], params: Params, *,
                   create_graph: bool = False) -> tuple[torch.Tensor, Params]:
    """``(loss_fn(params), grad)`` from one forward and one backward pass (see :func:`grad`).

    Example
    -------
    >>> import torch
    >>> w, b = torch.tensor([2.0], dtype=torch.float64), torch.tensor([1.0], dtype=torch.float64)
    >>> value, (gw, gb) = value_and_grad(lambda p: (p[0] * 3.0 + p[1]).sum() ** 2, (w, b))
    >>> float(value), float(gw), float(gb)  # (3w + b)^2 = 49; 2*7*3, 2*7
    (49.0, 42.0, 14.0)
    """
    _checks.function("loss_fn", loss_fn)
    items = _checks.params("params", params)
    leaves = [t if t.requires_grad else t.detach().requires_grad_(True) for t in items]
    value = loss_fn(like(params, leaves))
    _checks.scalar_output("loss_fn(params)", value)
    g = torch.autograd.grad(value, leaves, create_graph=create_graph, allow_unused=True)
    g = [torch.zeros_like(t) if gi is None else gi for t, gi in zip(leaves, g)]
    return (value if create_graph else value.detach()), like(params, g)


def per_sample_grads(sample_loss: Callable, params: Params, *data: torch.Tensor) -> Params:
    """Per-sample gradients ``grad_theta sample_loss(params, *sample_i)`` for every sample i.

    ``sample_loss(params, *sample)`` takes one sample (each tensor of ``data``
    without its leading dimension) and returns a scalar. The result has a leading
    dimension of size ``n`` (the number of samples) on each parameter tensor.

    Example
    -------
    >>> import torch
    >>> X = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    >>> y = torch.tensor([1.0, 1.0], dtype=torch.float64)
    >>> w = torch.zeros(2, dtype=torch.float64)
    >>> per_sample_grads(lambda w, x, yi: (x @ w - yi) ** 2, w, X, y).tolist()  # 2 (x.w - y) x
    [[-2.0, -0.0], [-0.0, -4.0]]
    """
    _checks.function("sample_loss", sample_loss)
    _checks.params("params", params)
    if not data:
        raise ValueError("per_sample_grads needs at least one data tensor")
    for i, d in enumerate(data):
        if not isinstance(d, torch.Tensor) or d.ndim == 0:
            raise TypeError(f"data[{i}] must be a torch.Tensor with a leading samples dimension, "
                            f"got {getattr(d, 'shape', type(d).__name__)}")
    n = data[0].shape[0]
    for i, d in enumerate(data):
        _checks.tensor(f"data[{i}]", d) if d.is_floating_point() else None
        if d.shape[0] != n:
            raise ValueError(f"data[{i}] has {d.shape[0]} samples, data[0] has {n}")
    p = like(params, [t.detach() for t in as_tuple(params)])
    return vmap(_fgrad(sample_loss), in_dims=(None,) + (0,) * len(data))(p, *data)

