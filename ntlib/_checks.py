"""Input validation shared by every public function of ntlib.

Each check raises ``ValueError`` (or ``TypeError``) naming the argument and what
was expected, so that bad input never becomes a silent NaN or a wrong answer.
"""

from __future__ import annotations

import torch

from .params import Params


def tensor(name: str, x, *, ndim: int | None = None, finite: bool = True) -> torch.Tensor:
    """Check that ``x`` is a floating tensor (optionally of ``ndim`` dims, all finite)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not (x.is_floating_point() or x.is_complex()):
        raise TypeError(f"{name} must have a floating dtype, got {x.dtype}")
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {tuple(x.shape)}")
    if finite and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def params(name: str, p: Params, *, finite: bool = True) -> tuple[torch.Tensor, ...]:
    """Normalise a tensor or a sequence of tensors to a non-empty tuple of (finite) tensors.

    ``finite=False`` skips the finiteness checks, for a caller that checks all the
    tensors at once and calls again with ``finite=True`` to name the culprit.
    """
    items = (p,) if isinstance(p, torch.Tensor) else tuple(p) if isinstance(p, (tuple, list)) else None
    if not items:
        raise TypeError(f"{name} must be a tensor or a non-empty tuple/list of tensors, got {type(p).__name__}")
    for i, t in enumerate(items):
        tensor(f"{name}[{i}]" if len(items) > 1 or not isinstance(p, torch.Tensor) else name, t, finite=finite)
    return items


def positive(name: str, value: float, *, strict: bool = True) -> float:
    """Check that a scalar is finite and positive (or non-negative)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}") from None
    if not (v == v and abs(v) != float("inf")) or (v <= 0 if strict else v < 0):
        raise ValueError(f"{name} must be {'> 0' if strict else '>= 0'} and finite, got {value!r}")
    return v


def real(name: str, value: float) -> float:
    """Check that a scalar is a finite real number."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}") from None
    if not (v == v and abs(v) != float("inf")):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return v


def function(name: str, f) -> None:
    """Check that ``f`` is callable."""
    if not callable(f):
        raise TypeError(f"{name} must be callable, got {type(f).__name__}")


def integer(name: str, value: int) -> int:
    """Check that ``value`` is an int (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    return value


def positive_int(name: str, value: int, *, minimum: int = 1) -> int:
    """Check that ``value`` is an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def square(name: str, m: torch.Tensor) -> torch.Tensor:
    """Check that ``m`` is a finite square matrix."""
    tensor(name, m, ndim=2)
    if m.shape[0] != m.shape[1]:
        raise ValueError(f"{name} must be a square matrix, got shape {tuple(m.shape)}")
    return m


def spd(name: str, m: torch.Tensor, *, rtol: float = 1e-10) -> torch.Tensor:
    """Check that ``m`` is a symmetric positive-definite matrix."""
    square(name, m)
    scale = m.abs().max().clamp_min(torch.finfo(m.dtype).tiny)
    if not torch.allclose(m, m.T, atol=1e-10 * float(scale), rtol=0):
        raise ValueError(f"{name} must be symmetric")
    lo = torch.linalg.eigvalsh(m).min()
    if lo <= rtol * scale:
        raise ValueError(f"{name} must be positive definite, smallest eigenvalue is {float(lo):.3g}")
    return m


def scalar_output(name: str, value) -> torch.Tensor:
    """Check that a user callable returned a scalar tensor (one element)."""
    if not isinstance(value, torch.Tensor) or value.numel() != 1:
        raise ValueError(f"{name} must return a scalar tensor, got {getattr(value, 'shape', type(value).__name__)}")
    return value


def generator(name: str, g) -> torch.Generator:
    """Check that ``g`` is a ``torch.Generator`` (see ``ntlib.config.generator``)."""
    if not isinstance(g, torch.Generator):
        raise TypeError(f"{name} must be a torch.Generator (e.g. ntlib.config.generator(seed)), got {type(g).__name__}")
    return g


def widths(name: str, w) -> list[int]:
    """Check a list of at least two positive integer layer widths."""
    w = list(w)
    if len(w) < 2 or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in w):
        raise ValueError(f"{name} must list at least 2 positive integer sizes, got {w}")
    return w


def invertible(name: str, m: torch.Tensor, *, rtol: float = 1e-10) -> torch.Tensor:
    """Check a finite matrix (or a stack of them) of full rank: square ones must be invertible."""
    tensor(name, m)
    if m.ndim not in (2, 3):
        raise ValueError(f"{name} must be a matrix (a, b) or a stack (runs, a, b), got shape {tuple(m.shape)}")
    s = torch.linalg.svdvals(m)
    if bool((s[..., -1] <= rtol * s[..., 0]).any()):
        raise ValueError(f"{name} must have full rank (an invertible embedding), smallest singular value "
                         f"{float(s[..., -1].min()):.3g}")
    return m


def weight_chain(name: str, weights) -> list[torch.Tensor]:
    """Check a non-empty list of (runs, out, in) weight tensors that chain (``weights[i+1]`` takes what ``weights[i]`` gives)."""
    if not isinstance(weights, (list, tuple)) or not weights:
        raise TypeError(f"{name} must be a non-empty list of (runs, out, in) tensors, got {type(weights).__name__}")
    for i, w in enumerate(weights):
        tensor(f"{name}[{i}]", w, ndim=3)
    for i, (a, b) in enumerate(zip(weights[:-1], weights[1:])):
        if a.shape[-2] != b.shape[-1] or a.shape[0] != b.shape[0]:
            raise ValueError(f"{name}[{i}] {tuple(a.shape)} and {name}[{i + 1}] {tuple(b.shape)} do not chain")
    return list(weights)


def teacher(name: str, t):
    """Check that ``t`` is an :class:`ntlib.linear.Teacher` (the one carrier of a linear problem's data)."""
    from .linear.model import Teacher  # imported here: ntlib.linear itself uses this module

    if not isinstance(t, Teacher):
        raise TypeError(f"{name} must be a Teacher (see ntlib.linear.teacher), got {type(t).__name__}")
    return t
