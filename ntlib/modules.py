"""``torch.nn.Module`` models in ntlib's functional world.

ntlib's numerical functions take a loss as a function of parameters
(``loss_fn(params) -> scalar``, with ``params`` a tensor or a tuple of tensors,
see :mod:`ntlib.params`). :func:`module_loss` turns a module, a criterion and a
fixed batch into that pair, without touching the module's parameters, their
``.grad`` fields, its buffers or its train/eval mode.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from .params import as_tuple

__all__ = ["module_loss"]


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
    >>> from ntlib.hessian import top_eigenvalues
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
