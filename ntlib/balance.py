"""Balance diagnostics for a reader's own ``torch.nn`` model, from per-sample gradients.

Implements the measurements of Chapter 5 ("Beyond linear networks"). A rescaling or
matrix symmetry of the loss makes SGD drift toward the point of its orbit where the
two sides of a *balance* condition agree (Chapter 2, ``thm-neuron-balance`` and
``thm-matrix-balance``); this module measures both sides on any module:

* :func:`sample_grads`: per-sample gradients of chosen parameters of a module
  (``torch.func``: ``functional_call``, ``grad``, ``vmap``), by name;
* :func:`neuron_balance`: per hidden unit of a ``Linear -> ReLU -> Linear`` pair,
  ``(E_B|grad_in l_B|^2, E_B|grad_out l_B|^2)`` (incoming weights and bias against
  outgoing weights); summed over units, the layer balance;
* :func:`matrix_balance`: for two ``Linear`` maps with nothing but a linear map
  between them, the h x h sides ``(E_B[g_W g_W^T], E_B[g_U^T g_U])``;
* :func:`attention_balance`: for an attention block's query and key maps, per head,
  ``(E_B[g_Q g_Q^T], E_B[g_K g_K^T])`` (Chapter 5, ``eq-attention-balance``), the
  balance of the double rotation ``(W_Q, W_K) -> (A W_Q, A^{-T} W_K)``;
* :func:`relu_pairs` finds the ``Linear -> ReLU -> Linear`` pairs of a module.

``E_B`` is the exact expectation over minibatches of ``batch_size`` drawn from the
given samples (:func:`expected_batch_gram`), as in :func:`ntlib.entropic.expected_batch_sq`.
Compare the sides with :func:`ntlib.symmetry.balance_log_ratio` (neurons, layers) or
:func:`ntlib.symmetry.matrix_balance_error` (matrices).
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch.func import functional_call, grad, vmap

from . import _checks
from .errors import DivergenceError
from .run import Run
from .symmetry import neuron_balance_sides

__all__ = ["sample_grads", "expected_batch_gram", "neuron_balance", "matrix_balance",
           "attention_balance", "relu_pairs", "train_classifier"]


def sample_grads(model: torch.nn.Module, criterion: Callable[..., torch.Tensor], inputs: torch.Tensor,
                 targets: torch.Tensor, names: Sequence[str] | None = None, *,
                 chunk: int | None = None) -> dict[str, torch.Tensor]:
    """Per-sample gradients of ``criterion(model(x_i), y_i)`` with respect to named parameters.

    Each sample is passed as a batch of one (``inputs[i:i+1]``), so any module
    that takes batches works, and ``criterion`` is the usual batch loss (e.g.
    ``torch.nn.functional.cross_entropy``; for a sequence model the loss of one
    sequence). Gradients are taken with ``torch.func`` at the model's current
    parameters, in its current mode; the model, its ``.grad`` fields and buffers
    are not touched. Parameters not in ``names`` are held fixed.

    Parameters
    ----------
    model
        Any module.
    criterion
        ``criterion(output, target) -> scalar``.
    inputs, targets
        Tensors with the same leading number of samples N.
    names
        Parameter names (``model.named_parameters()``); default all trainable ones.
    chunk
        Samples per ``vmap`` call (memory); default all.

    Returns
    -------
    dict[str, torch.Tensor]
        ``{name: (N, *param.shape)}``.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Linear(2, 1, bias=False).double()
    >>> with torch.no_grad(): _ = net.weight.copy_(torch.tensor([[1.0, 0.0]]))
    >>> x = torch.tensor([[1.0, 2.0], [0.0, 1.0]], dtype=torch.float64)
    >>> y = torch.zeros(2, 1, dtype=torch.float64)
    >>> sample_grads(net, torch.nn.functional.mse_loss, x, y)["weight"].tolist()  # 2 (w.x - y) x
    [[[2.0, 4.0]], [[0.0, 0.0]]]
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    _checks.function("criterion", criterion)
    for name, t in (("inputs", inputs), ("targets", targets)):
        if not isinstance(t, torch.Tensor) or t.ndim == 0:
            raise TypeError(f"{name} must be a tensor with a leading samples dimension")
    n = inputs.shape[0]
    if targets.shape[0] != n:
        raise ValueError(f"inputs has {n} samples, targets {targets.shape[0]}")
    params = {k: p for k, p in model.named_parameters() if p.requires_grad}
    if names is None:
        names = list(params)
    if isinstance(names, str) or not names:
        raise TypeError("names must be a non-empty list of parameter names")
    unknown = [k for k in names if k not in params]
    if unknown:
        raise ValueError(f"no trainable parameter named {unknown} (names: {list(params)[:10]} ...)")
    fixed = {k: p.detach() for k, p in params.items() if k not in names}
    fixed.update(dict(model.named_buffers()))
    chosen = {k: params[k].detach() for k in names}

    def one(p, x, y):
        return criterion(functional_call(model, {**fixed, **p}, (x.unsqueeze(0),)), y.unsqueeze(0))

    fn = vmap(grad(one), in_dims=(None, 0, 0))
    step = n if chunk is None else _checks.positive_int("chunk", chunk)
    parts = [fn(chosen, inputs[s:s + step], targets[s:s + step]) for s in range(0, n, step)]
    return {k: torch.cat([p[k] for p in parts]) for k in names}


def expected_batch_gram(g: torch.Tensor, batch_size: int, *, replacement: bool = True) -> torch.Tensor:
    """``E_B[g_B g_B^T]`` over minibatches of ``batch_size`` from per-sample matrices ``g`` (N, ..., h, m).

    ``g_B`` is the mean of ``batch_size`` rows of ``g`` drawn i.i.d. (``replacement=True``)
    or without replacement. With mean ``M`` and ``S = mean_i g_i g_i^T``::

        E_B[g_B g_B^T] = M M^T + c (S - M M^T) / B,

    ``c = 1`` i.i.d., ``c = (N - B) / (N - 1)`` without replacement (the matrix form
    of :func:`ntlib.entropic.expected_batch_sq`, whose diagonal it reproduces).

    Returns
    -------
    torch.Tensor
        (..., h, h), symmetric positive semi-definite.

    Examples
    --------
    >>> import torch
    >>> g = torch.tensor([[[1.0], [0.0]], [[-1.0], [2.0]]])   # two samples, 2 x 1 each
    >>> expected_batch_gram(g, 1).tolist()                   # mean of g_i g_i^T
    [[1.0, -1.0], [-1.0, 2.0]]
    >>> expected_batch_gram(g, 2, replacement=False).tolist()  # the full batch: M M^T
    [[0.0, 0.0], [0.0, 1.0]]
    """
    _checks.tensor("g", g)
    if g.ndim < 3 or g.shape[0] < 1:
        raise ValueError(f"g must be per-sample matrices (N, ..., h, m), got shape {tuple(g.shape)}")
    n = g.shape[0]
    b = _checks.positive_int("batch_size", batch_size)
    if not replacement and b > n:
        raise ValueError(f"batch_size={b} exceeds the {n} samples available without replacement")
    m = g.mean(0)
    mm = m @ m.transpose(-1, -2)
    s = torch.einsum("n...ij,n...kj->...ik", g, g) / n
    c = 1.0 if replacement else ((n - b) / (n - 1) if n > 1 else 0.0)
    return mm + (c / b) * (s - mm)


def _get(grads: dict, name: str, what: str) -> torch.Tensor:
    if not isinstance(grads, dict):
        raise TypeError("grads must be the dict of per-sample gradients returned by sample_grads")
    if name not in grads:
        raise ValueError(f"{what}: no per-sample gradient named {name!r} in grads (have {list(grads)})")
    return _checks.tensor(f"grads[{name!r}]", grads[name])


def _with_bias(grads: dict, layer: str, what: str) -> torch.Tensor:
    """Per-sample ``[g_weight, g_bias]`` (N, out, in[+1]) of a Linear layer named ``layer``."""
    w = _get(grads, f"{layer}.weight", what)
    if w.ndim != 3:
        raise ValueError(f"{what}: {layer}.weight gradients must be (N, out, in), got {tuple(w.shape)}")
    b = grads.get(f"{layer}.bias")
    return w if b is None else torch.cat([w, _checks.tensor(f"grads['{layer}.bias']", b).unsqueeze(-1)], -1)


def neuron_balance(grads: dict[str, torch.Tensor], incoming: str, outgoing: str, *, batch_size: int,
                   replacement: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-unit ``(E_B|grad_in l_B|^2, E_B|grad_out l_B|^2)`` of a ``Linear -> ReLU -> Linear`` pair.

    Unit ``i`` of ``relu(W x + b)`` feeding ``U`` has the rescaling symmetry
    ``(W_i, b_i, U_{:,i}) -> (e^s W_i, e^s b_i, e^-s U_{:,i})`` of any
    positively homogeneous activation; at stationarity of the entropic loss the
    two sides agree (Chapter 2, ``thm-neuron-balance``). The bias of ``incoming``
    counts on the incoming side when its gradient is in ``grads``.

    Parameters
    ----------
    grads
        Per-sample gradients from :func:`sample_grads` (names ``<layer>.weight``,
        ``<layer>.bias``).
    incoming, outgoing
        Names of the two ``Linear`` modules (as in ``model.named_modules()``).
    batch_size
        Minibatch size of the expectation ``E_B``.
    replacement
        I.i.d. minibatches (default) or without replacement.

    Returns
    -------
    tuple of torch.Tensor
        Two (h,) tensors. Their sums are the two sides of the layer balance; use
        :func:`ntlib.symmetry.balance_log_ratio` on records over time.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2)).double()
    >>> x, y = torch.randn(16, 3, dtype=torch.float64), torch.randn(16, 2, dtype=torch.float64)
    >>> g = sample_grads(net, torch.nn.functional.mse_loss, x, y)
    >>> inc, out = neuron_balance(g, "0", "2", batch_size=4)
    >>> tuple(inc.shape), tuple(out.shape)
    ((4,), (4,))
    """
    w = _get(grads, f"{incoming}.weight", "incoming")
    u = _get(grads, f"{outgoing}.weight", "outgoing")
    if w.ndim != 3 or u.ndim != 3 or u.shape[-1] != w.shape[-2]:
        raise ValueError(f"incoming {incoming!r} has {w.shape[-2] if w.ndim == 3 else '?'} units but outgoing "
                         f"{outgoing!r} takes {u.shape[-1] if u.ndim == 3 else '?'} inputs: not a pair "
                         f"(weight gradients {tuple(w.shape)}, {tuple(u.shape)})")
    b = grads.get(f"{incoming}.bias")
    return neuron_balance_sides(w, b, u, batch_size, replacement=replacement)


def matrix_balance(grads: dict[str, torch.Tensor], first: str, second: str, *, batch_size: int,
                   replacement: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """The h x h sides ``(E_B[g_W g_W^T], E_B[g_U^T g_U])`` of matrix balance for ``U(W x + b)``.

    ``first`` (weight ``W``, h x d, and its bias ``b``, which moves with ``W``)
    and ``second`` (weight ``U``, o x h) must be joined by nothing but a linear
    map, so that ``(W, b, U) -> (A W, A b, U A^{-1})`` leaves the loss unchanged
    for any invertible ``A``. Then every GD/SGD step changes
    ``U^T U - [W b][W b]^T`` by exactly ``lr^2 (g_U^T g_U - g_W g_W^T)``, and at
    stationarity of the entropic loss the two sides agree (Chapter 2,
    ``thm-matrix-balance``, written with ``g_W = U^T G`` and ``g_U = G W^T``).
    Compare them with :func:`ntlib.symmetry.matrix_balance_error`.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 4, bias=False), torch.nn.Linear(4, 2)).double()
    >>> x, y = torch.randn(16, 3, dtype=torch.float64), torch.randn(16, 2, dtype=torch.float64)
    >>> lhs, rhs = matrix_balance(sample_grads(net, torch.nn.functional.mse_loss, x, y), "0", "1", batch_size=2)
    >>> tuple(lhs.shape), tuple(rhs.shape)
    ((4, 4), (4, 4))
    """
    gw = _with_bias(grads, first, "first")
    gu = _get(grads, f"{second}.weight", "second")
    if gu.ndim != 3 or gu.shape[-1] != gw.shape[-2]:
        raise ValueError(f"second {second!r} weight gradients {tuple(gu.shape)} must be (N, o, h) with "
                         f"h = {gw.shape[-2]} outputs of first {first!r}")
    return (expected_batch_gram(gw, batch_size, replacement=replacement),
            expected_batch_gram(gu.transpose(-1, -2), batch_size, replacement=replacement))


def attention_balance(grads: dict[str, torch.Tensor], query: str, key: str, *, heads: int, batch_size: int,
                      replacement: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Per head, ``(E_B[g_Q g_Q^T], E_B[g_K g_K^T])``: the balance of attention's double rotation.

    Attention scores depend on the query and key maps of head ``h`` only through
    ``q^T k = x^T W_Q^T W_K x'``: for any invertible ``A`` (d_head x d_head) the map
    ``(W_Q, W_K) -> (A W_Q, A^{-T} W_K)`` (biases moving with their weights) leaves
    the loss unchanged. It is the matrix symmetry of a pair with ``W = W_Q`` and
    ``U = W_K^T``; every GD/SGD step changes ``W_K W_K^T - W_Q W_Q^T`` by exactly
    ``lr^2 (g_K g_K^T - g_Q g_Q^T)``, and at stationarity of the entropic loss
    ``E_B[g_Q g_Q^T] = E_B[g_K g_K^T]`` (Chapter 5, ``eq-attention-balance``).

    Parameters
    ----------
    grads
        Per-sample gradients from :func:`sample_grads`.
    query, key
        Names of the query and key ``Linear`` modules (weights (heads * d_head, d),
        rows of head ``h`` at ``h * d_head:(h + 1) * d_head``, as in
        :class:`ntlib.transformer.CausalSelfAttention`).
    heads
        Number of heads.
    batch_size, replacement
        As in :func:`expected_batch_gram`.

    Returns
    -------
    tuple of torch.Tensor
        Two (heads, d_head, d_head) tensors; compare with
        :func:`ntlib.symmetry.matrix_balance_error`.

    Examples
    --------
    >>> import torch
    >>> from ntlib.transformer import TinyTransformer
    >>> net = TinyTransformer(vocab=5, d_model=8, heads=2, layers=1, context=4).double()
    >>> x = torch.randint(0, 5, (6, 4))
    >>> lm = lambda logits, t: torch.nn.functional.cross_entropy(logits.flatten(0, -2), t.flatten())
    >>> g = sample_grads(net, lm, x, x, ["blocks.0.attn.query.weight", "blocks.0.attn.key.weight"])
    >>> q, k = attention_balance(g, "blocks.0.attn.query", "blocks.0.attn.key", heads=2, batch_size=1)
    >>> tuple(q.shape)
    (2, 4, 4)
    """
    heads = _checks.positive_int("heads", heads)
    out = []
    for what, name in (("query", query), ("key", key)):
        g = _with_bias(grads, name, what)
        if g.shape[-2] % heads:
            raise ValueError(f"{what} {name!r} has {g.shape[-2]} outputs, not divisible by heads = {heads}")
        g = g.reshape(g.shape[0], heads, g.shape[-2] // heads, g.shape[-1])
        out.append(expected_batch_gram(g, batch_size, replacement=replacement))
    if out[0].shape != out[1].shape:
        raise ValueError(f"query and key heads differ in size: {tuple(out[0].shape)} and {tuple(out[1].shape)}")
    return out[0], out[1]


def relu_pairs(model: torch.nn.Module) -> list[tuple[str, str]]:
    """The ``(incoming, outgoing)`` names of every ``Linear -> ReLU -> Linear`` run in a module's ``Sequential`` s.

    Only consecutive children of a ``torch.nn.Sequential`` (at any depth) are
    matched: there the rescaling symmetry per unit is guaranteed. Pairs in a
    custom ``forward`` must be named by hand.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 3),
    ...                           torch.nn.ReLU(), torch.nn.Linear(3, 2))
    >>> relu_pairs(net)
    [('0', '2'), ('2', '4')]
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    pairs = []
    for prefix, mod in model.named_modules():
        if not isinstance(mod, torch.nn.Sequential):
            continue
        kids = list(mod.named_children())
        for (n1, a), (_, r), (n2, b) in zip(kids, kids[1:], kids[2:]):
            if isinstance(a, torch.nn.Linear) and isinstance(r, torch.nn.ReLU) and isinstance(b, torch.nn.Linear):
                join = (lambda n: f"{prefix}.{n}" if prefix else n)
                pairs.append((join(n1), join(n2)))
    return pairs


def train_classifier(model: torch.nn.Module, inputs: torch.Tensor, labels: torch.Tensor, *, lr: float,
                     batch_size: int, steps: int, generator: torch.Generator, label_noise: float = 0.0,
                     record_every: int = 0, recorder: Callable[[int, torch.nn.Module], object] | None = None,
                     progress: Callable[[int], None] | None = None) -> Run:
    """Train a classifier in place by plain SGD on the cross-entropy, optionally with label noise.

    Each step draws ``batch_size`` samples i.i.d. (``batch_size = len(inputs)``:
    the whole set, gradient descent). With ``label_noise = p`` each drawn label is
    replaced, with probability ``p``, by a uniformly random class, afresh at every
    draw: noise that persists at the minimum, as the balance of Chapter 2 needs.

    Returns
    -------
    ntlib.run.Run
        ``params`` is the model; ``records`` what ``recorder(step, model)`` returned
        every ``record_every`` steps and after the last (``None`` returns are kept
        out); ``info["loss"]`` the loss of every step.

    Raises
    ------
    DivergenceError
        A non-finite loss.

    Example
    -------
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.randn(64, 2, generator=g, dtype=torch.float64)
    >>> y = (x[:, 0] > 0).long()
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2)).double()
    >>> run = train_classifier(net, x, y, lr=0.5, batch_size=8, steps=300, generator=g)
    >>> float((net(x).argmax(1) == y).double().mean()) > 0.9
    True
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    _checks.tensor("inputs", inputs)
    if labels.ndim != 1 or labels.shape[0] != inputs.shape[0] or labels.is_floating_point():
        raise ValueError(f"labels must be (N,) integer classes for inputs of {inputs.shape[0]} samples")
    lr = _checks.positive("lr", lr)
    n = inputs.shape[0]
    batch_size = _checks.positive_int("batch_size", batch_size)
    if batch_size > n:
        raise ValueError(f"batch_size = {batch_size} exceeds the {n} samples")
    steps = _checks.positive_int("steps", steps)
    _checks.generator("generator", generator)
    p = float(label_noise)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"label_noise must be a probability in [0, 1], got {label_noise}")
    classes = int(labels.max()) + 1
    params = [q for q in model.parameters() if q.requires_grad]
    losses, rec_steps, records = [], [], []
    for step in range(steps + 1):
        if recorder is not None and record_every and (step % record_every == 0 or step == steps):
            r = recorder(step, model)
            if r is not None:
                rec_steps.append(step)
                records.append(r)
        if step == steps:
            break
        idx = torch.arange(n) if batch_size == n else torch.randint(0, n, (batch_size,), generator=generator)
        y = labels[idx]
        if p > 0:
            flip = torch.rand(y.shape, generator=generator) < p
            y = torch.where(flip, torch.randint(0, classes, y.shape, generator=generator), y)
        loss = torch.nn.functional.cross_entropy(model(inputs[idx]), y)
        if not torch.isfinite(loss):
            raise DivergenceError(step, lr, losses[-1] if losses else None)
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for q, g in zip(params, grads):
                q.sub_(lr * g)
        losses.append(float(loss.detach()))
        if progress is not None:
            progress(step)
    return Run(params=model, steps=rec_steps, records=records, info={"loss": losses})
