"""A small pre-LN transformer language model and its SGD loop (Chapter 5).

The model of Chapter 5's alignment heatmaps and attention balance: token and
position embeddings, ``layers`` pre-LN blocks ``x + attn(LN(x))``,
``x + mlp(LN(x))`` with causal multi-head self-attention and a
``Linear -> ReLU -> Linear`` MLP, a final LayerNorm and a linear read-out.

Submodule names (for :func:`ntlib.align.collect` and :mod:`ntlib.balance`):
``blocks.i.attn`` (attention output, before the residual sum),
``blocks.i.attn.query`` / ``.key`` / ``.value`` / ``.out`` (bias-free ``Linear``),
``blocks.i.mlp`` (MLP output) with ``blocks.i.mlp.0`` and ``blocks.i.mlp.2`` its
two ``Linear`` maps (a pair for :func:`ntlib.balance.neuron_balance`).

The query and key maps of each head enter the scores only through
``W_Q^T W_K``: the double-rotation symmetry of :func:`ntlib.balance.attention_balance`.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from . import _checks
from .errors import DivergenceError
from .run import Run

__all__ = ["CausalSelfAttention", "Block", "TinyTransformer", "lm_loss", "train_lm", "batch_windows"]


class CausalSelfAttention(nn.Module):
    """Causal multi-head self-attention with bias-free query, key, value and output maps.

    Head ``h`` uses rows ``h * d_head:(h + 1) * d_head`` of the query, key and value
    weights; scores ``q^T k / sqrt(d_head)``, masked to the past.
    """

    def __init__(self, d_model: int, heads: int):
        super().__init__()
        d_model = _checks.positive_int("d_model", d_model)
        self.heads = _checks.positive_int("heads", heads)
        if d_model % self.heads:
            raise ValueError(f"d_model = {d_model} must be divisible by heads = {heads}")
        self.query, self.key, self.value, self.out = (nn.Linear(d_model, d_model, bias=False) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Causal multi-head self-attention of ``x`` (shape ``(n, T, d)``), same shape out."""
        n, t, d = x.shape
        split = lambda z: z.view(n, t, self.heads, d // self.heads).transpose(1, 2)
        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(d // self.heads)
        mask = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
        att = scores.masked_fill(mask, float("-inf")).softmax(-1)
        return self.out((att @ v).transpose(1, 2).reshape(n, t, d))


class Block(nn.Module):
    """One pre-LN block: ``x + attn(LN(x))`` then ``x + mlp(LN(x))``; MLP width ``4 d_model``."""

    def __init__(self, d_model: int, heads: int):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, heads)
        self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.ReLU(), nn.Linear(4 * d_model, d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-LN residual block: ``x + attn(ln1(x))``, then ``+ mlp(ln2(.))``; shape ``(n, T, d)``."""
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class TinyTransformer(nn.Module):
    """A pre-LN causal transformer language model: ``(n, T)`` token ids to ``(n, T, vocab)`` logits.

    Parameters
    ----------
    vocab, d_model, heads, layers, context
        Vocabulary size, width, heads per block, number of blocks, longest sequence.

    Examples
    --------
    >>> import torch
    >>> net = TinyTransformer(vocab=7, d_model=8, heads=2, layers=2, context=5)
    >>> net(torch.zeros(3, 5, dtype=torch.long)).shape
    torch.Size([3, 5, 7])
    >>> [name for name, _ in net.named_modules() if name.endswith(("attn", "mlp"))]
    ['blocks.0.attn', 'blocks.0.mlp', 'blocks.1.attn', 'blocks.1.mlp']
    """

    def __init__(self, vocab: int, d_model: int, heads: int, layers: int, context: int):
        super().__init__()
        self.vocab = _checks.positive_int("vocab", vocab)
        self.context = _checks.positive_int("context", context)
        layers = _checks.positive_int("layers", layers)
        self.tok = nn.Embedding(vocab, d_model)
        self.pos = nn.Embedding(context, d_model)
        self.blocks = nn.ModuleList(Block(d_model, heads) for _ in range(layers))
        self.ln = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Next-token logits, shape ``(n, T, vocab)``, for token ids ``idx`` of shape ``(n, T)``."""
        if idx.ndim != 2 or idx.shape[1] > self.context:
            raise ValueError(f"idx must be (n, T) token ids with T <= context = {self.context}, "
                             f"got shape {tuple(idx.shape)}")
        x = self.tok(idx) + self.pos(torch.arange(idx.shape[1], device=idx.device))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln(x))


def lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy of ``(n, T, vocab)`` logits against ``(n, T)`` targets.

    Example
    -------
    >>> import math, torch
    >>> round(float(lm_loss(torch.zeros(2, 3, 4), torch.zeros(2, 3, dtype=torch.long))), 6) == round(math.log(4), 6)
    True
    """
    return nn.functional.cross_entropy(logits.flatten(0, -2), targets.flatten())


def batch_windows(tokens: torch.Tensor, starts: torch.Tensor, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs ``tokens[s:s+length]`` and next-token targets ``tokens[s+1:s+length+1]`` for each start ``s``.

    Example
    -------
    >>> import torch
    >>> x, y = batch_windows(torch.arange(10), torch.tensor([0, 5]), 3)
    >>> x.tolist(), y.tolist()
    ([[0, 1, 2], [5, 6, 7]], [[1, 2, 3], [6, 7, 8]])
    """
    if tokens.ndim != 1:
        raise ValueError(f"tokens must be a 1-d tensor of ids, got shape {tuple(tokens.shape)}")
    length = _checks.positive_int("length", length)
    if bool((starts < 0).any()) or bool((starts + length + 1 > tokens.numel()).any()):
        raise ValueError(f"every start must satisfy 0 <= s <= {tokens.numel() - length - 1}")
    idx = starts[:, None] + torch.arange(length + 1, device=tokens.device)
    w = tokens[idx]
    return w[:, :-1], w[:, 1:]


def train_lm(model: TinyTransformer, tokens: torch.Tensor, *, steps: int, lr: float, batch_size: int,
             generator: torch.Generator, weight_decay: float = 0.0, windows: torch.Tensor | None = None,
             record_every: int = 0, recorder: Callable[[int, nn.Module], object] | None = None,
             progress: Callable[[int], None] | None = None) -> Run:
    """Train a language model in place by plain SGD (no momentum) on windows of ``tokens``.

    Each step draws ``batch_size`` window starts uniformly (i.i.d., from
    ``generator``) of length ``model.context`` and takes a step on
    ``lm_loss + weight_decay / 2 |theta|^2``. With ``windows`` (a tensor of
    window starts: a fixed training set) each step draws ``batch_size`` of them
    without replacement instead; ``batch_size = len(windows)`` is gradient
    descent on that set, the no-noise control.

    Returns
    -------
    ntlib.run.Run
        ``params`` is the model; ``records`` what ``recorder(step, model)``
        returned every ``record_every`` steps (and after the last); ``info``
        holds ``"loss"``, the training loss of each step.

    Raises
    ------
    DivergenceError
        A non-finite loss.

    Example
    -------
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> net = TinyTransformer(vocab=3, d_model=8, heads=2, layers=1, context=6)
    >>> toks = torch.arange(300) % 3                         # 0 1 2 0 1 2 ...
    >>> run = train_lm(net, toks, steps=300, lr=0.5, batch_size=8, generator=g)
    >>> run.info["loss"][-1] < 0.1 * run.info["loss"][0]
    True
    """
    if not isinstance(model, TinyTransformer):
        raise TypeError(f"model must be a TinyTransformer, got {type(model).__name__}")
    steps = _checks.positive_int("steps", steps)
    lr = _checks.positive("lr", lr)
    batch_size = _checks.positive_int("batch_size", batch_size)
    weight_decay = _checks.positive("weight_decay", weight_decay, strict=False)
    _checks.generator("generator", generator)
    hi = tokens.numel() - model.context - 1
    if hi < 1:
        raise ValueError(f"tokens ({tokens.numel()}) must be longer than context + 1 = {model.context + 1}")
    if windows is not None:
        if windows.ndim != 1 or not 1 <= batch_size <= windows.numel():
            raise ValueError(f"windows must be a 1-d tensor of starts with at least batch_size = {batch_size} "
                             f"entries, got shape {tuple(windows.shape)}")
        if bool((windows < 0).any()) or bool((windows > hi).any()):
            raise ValueError(f"window starts must lie in [0, {hi}]")
    params = [p for p in model.parameters() if p.requires_grad]
    losses, rec_steps, records = [], [], []
    for step in range(steps + 1):
        if recorder is not None and record_every and (step % record_every == 0 or step == steps):
            rec_steps.append(step)
            records.append(recorder(step, model))
        if step == steps:
            break
        if windows is None:
            starts = torch.randint(0, hi + 1, (batch_size,), generator=generator)
        elif batch_size == windows.numel():
            starts = windows
        else:
            starts = windows[torch.randperm(windows.numel(), generator=generator)[:batch_size]]
        x, y = batch_windows(tokens, starts.to(tokens.device), model.context)
        loss = lm_loss(model(x), y)
        if not torch.isfinite(loss):
            raise DivergenceError(step, lr, losses[-1] if losses else None)
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for p, g in zip(params, grads):
                p.sub_(lr * (g + weight_decay * p) if weight_decay else lr * g)
        losses.append(float(loss.detach()))
        if progress is not None:
            progress(step)
    return Run(params=model, steps=rec_steps, records=records, info={"loss": losses})
