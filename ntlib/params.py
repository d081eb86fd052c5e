"""Parameters given as one tensor or a sequence of tensors (the ``Params`` convention).

Every function of ntlib that takes "parameters" accepts a single tensor or a
tuple/list of tensors and returns results in the same container form.
:func:`flatten` and :func:`unflatten` convert to and from one flat vector, in
the order of the tensors (row-major within each): the order of Hessian
eigenvectors (:func:`ntlib.hessian.top_eigenvalues`) and of dense Hessians.
"""

from __future__ import annotations

from typing import Sequence, Union

import torch

__all__ = ["Params", "as_tuple", "like", "flatten", "unflatten", "sq_norm"]

#: One tensor or a sequence of tensors.
Params = Union[torch.Tensor, Sequence[torch.Tensor]]


def as_tuple(p: Params) -> tuple[torch.Tensor, ...]:
    """``p`` as a tuple of tensors.

    Example
    -------
    >>> import torch
    >>> len(as_tuple(torch.zeros(3))), len(as_tuple([torch.zeros(1), torch.zeros(2)]))
    (1, 2)
    """
    return (p,) if isinstance(p, torch.Tensor) else tuple(p)


def like(template: Params, items: Sequence[torch.Tensor]) -> Params:
    """Return ``items`` in the same container form as ``template`` (tensor or tuple).

    Example
    -------
    >>> import torch
    >>> isinstance(like(torch.zeros(1), [torch.ones(1)]), torch.Tensor)
    True
    """
    return items[0] if isinstance(template, torch.Tensor) else tuple(items)


def flatten(p: Params) -> torch.Tensor:
    """Concatenate all tensors of ``p`` into one vector (row-major, in order).

    Example
    -------
    >>> import torch
    >>> flatten((torch.tensor([[1.0, 2.0]]), torch.tensor([3.0]))).tolist()
    [1.0, 2.0, 3.0]
    """
    return torch.cat([t.reshape(-1) for t in as_tuple(p)])


def unflatten(vec: torch.Tensor, template: Params) -> Params:
    """Split a vector into tensors shaped like ``template`` (inverse of :func:`flatten`).

    Example
    -------
    >>> import torch
    >>> a, b = unflatten(torch.arange(3.0), (torch.zeros(1, 2), torch.zeros(1)))
    >>> a.tolist(), b.tolist()
    ([[0.0, 1.0]], [2.0])
    """
    items = as_tuple(template)
    need = sum(t.numel() for t in items)
    if need != vec.numel():  # checked first: a short vector would fail inside reshape with a RuntimeError
        raise ValueError(f"vec has {vec.numel()} entries, template needs {need}")
    out, i = [], 0
    for t in items:
        out.append(vec[i : i + t.numel()].reshape(t.shape))
        i += t.numel()
    return like(template, out)


def sq_norm(p: Params) -> torch.Tensor:
    """Squared Euclidean norm summed over all tensors of ``p``.

    Example
    -------
    >>> import torch
    >>> float(sq_norm((torch.tensor([3.0]), torch.tensor([4.0]))))
    25.0
    """
    return sum((t * t).sum() for t in as_tuple(p))
