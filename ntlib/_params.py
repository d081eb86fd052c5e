"""Helpers for parameters given as one tensor or a tuple of tensors."""

from __future__ import annotations

from typing import Sequence, Union

import torch

Params = Union[torch.Tensor, Sequence[torch.Tensor]]


def as_tuple(p: Params) -> tuple[torch.Tensor, ...]:
    """``p`` as a tuple of tensors."""
    return (p,) if isinstance(p, torch.Tensor) else tuple(p)


def like(template: Params, items: Sequence[torch.Tensor]) -> Params:
    """Return ``items`` in the same container form as ``template`` (tensor or tuple)."""
    return items[0] if isinstance(template, torch.Tensor) else tuple(items)


def flatten(p: Params) -> torch.Tensor:
    """Concatenate all tensors of ``p`` into one vector."""
    return torch.cat([t.reshape(-1) for t in as_tuple(p)])


def unflatten(vec: torch.Tensor, template: Params) -> Params:
    """Split a vector into tensors shaped like ``template`` (inverse of :func:`flatten`)."""
    out, i = [], 0
    for t in as_tuple(template):
        out.append(vec[i : i + t.numel()].reshape(t.shape))
        i += t.numel()
    if i != vec.numel():
        raise ValueError(f"vector has {vec.numel()} entries, template needs {i}")
    return like(template, out)


def sq_norm(p: Params) -> torch.Tensor:
    """Squared Euclidean norm summed over all tensors of ``p``."""
    return sum((t * t).sum() for t in as_tuple(p))
