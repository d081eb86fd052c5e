"""Representations of any ``torch.nn.Module`` by layer name, through forward hooks (Chapter 5).

:func:`collect` is re-exported as :func:`ntlib.align.collect`, where it belongs for a
reader; it lives here so that :mod:`ntlib.align` stays one screenful of metrics.
"""

from __future__ import annotations

from typing import Sequence

import torch

from . import _checks

__all__ = ["collect"]

_REDUCE = ("flatten", "mean", "last")


def _reduce(name: str, out, reduce) -> torch.Tensor:
    if isinstance(out, (tuple, list)):
        out = out[0]
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"layer {name!r} returned {type(out).__name__}, not a tensor (or a tuple starting with one)")
    out = out.detach()
    if callable(reduce):
        return reduce(out)
    if out.ndim < 2:
        raise ValueError(f"layer {name!r} output has shape {tuple(out.shape)}: need (n, ...) with features")
    if reduce == "flatten" or out.ndim == 2:
        return out.reshape(out.shape[0], -1)
    if reduce == "mean":
        return out.mean(1).reshape(out.shape[0], -1)
    return out[:, -1].reshape(out.shape[0], -1)


def collect(model: torch.nn.Module, inputs, layers: Sequence[str], *, reduce="flatten",
            chunk: int | None = None) -> dict[str, torch.Tensor]:
    """Representations of ``inputs`` at named submodules of any ``torch.nn.Module``, by forward hooks.

    Runs ``model(inputs)`` under ``torch.no_grad()`` with a forward hook on each
    submodule named in ``layers`` (names as in ``model.named_modules()``) and
    returns each one's output as an (n, features) tensor, rows indexed by the
    input: the argument of :func:`ntlib.align.alignment_matrix` and :func:`ntlib.align.debiased_cka`.
    The hooks are removed afterwards, even on error; the model's mode, parameters
    and gradients are not touched (call ``model.eval()`` first for dropout).

    Parameters
    ----------
    model
        Any module.
    inputs
        The batch (a tensor with a leading samples dimension, or a tuple of
        positional arguments).
    layers
        Non-empty list of distinct submodule names.
    reduce
        How an output (n, T, ...) of a sequence model becomes (n, features):
        ``"flatten"`` (all positions, default), ``"mean"`` (mean over dim 1),
        ``"last"`` (the last position, e.g. the token a language model
        predicts from), or a callable ``(output) -> (n, features)``. A tuple
        output (as ``nn.MultiheadAttention`` returns) contributes its first element.
    chunk
        Run the inputs in chunks of this many samples (memory); default all at once.

    Returns
    -------
    dict[str, torch.Tensor]
        ``{name: (n, features)}`` in the order of ``layers``.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2)).double()
    >>> x = torch.randn(10, 3, dtype=torch.float64)
    >>> reps = collect(net, x, ["0", "2"])
    >>> {k: tuple(v.shape) for k, v in reps.items()}
    {'0': (10, 4), '2': (10, 2)}
    >>> bool(torch.equal(reps["2"], net(x).detach()))
    True
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if isinstance(layers, str) or not isinstance(layers, (list, tuple)) or not layers:
        raise TypeError("layers must be a non-empty list of submodule names (strings)")
    if len(set(layers)) != len(layers):
        raise ValueError(f"layers must be distinct, got {list(layers)}")
    if not callable(reduce) and reduce not in _REDUCE:
        raise ValueError(f"reduce must be one of {_REDUCE} or a callable, got {reduce!r}")
    modules = dict(model.named_modules())
    missing = [name for name in layers if name not in modules]
    if missing:
        some = [n for n in modules if n][:8]
        raise ValueError(f"no submodule named {missing} in {type(model).__name__} (names: {some} ...)")
    args = inputs if isinstance(inputs, tuple) else (inputs,)
    if not args or not isinstance(args[0], torch.Tensor) or args[0].ndim == 0:
        raise TypeError("inputs must be a tensor with a leading samples dimension, or a tuple starting with one")
    n = args[0].shape[0]
    step = n if chunk is None else _checks.positive_int("chunk", chunk)
    parts: dict[str, list[torch.Tensor]] = {name: [] for name in layers}
    hooks = [modules[name].register_forward_hook(
        lambda mod, inp, out, name=name: parts[name].append(_reduce(name, out, reduce))) for name in layers]
    try:
        with torch.no_grad():
            for start in range(0, n, step):
                model(*[a[start:start + step] if isinstance(a, torch.Tensor) and a.ndim and a.shape[0] == n
                        else a for a in args])
    finally:
        for h in hooks:
            h.remove()
    out = {}
    for name in layers:
        if not parts[name]:
            raise ValueError(f"layer {name!r} was not called in the forward pass")
        if len(parts[name]) != -(-n // step):
            raise ValueError(f"layer {name!r} was called {len(parts[name])} times for {-(-n // step)} forward "
                             "passes: collect needs a module used once per pass")
        out[name] = torch.cat(parts[name])
    return out
