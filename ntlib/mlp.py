"""Small fully connected networks as stacked ensembles (functional, no ``nn.Module``).

Parameters are a list ``[W_1, b_1, ..., W_D, b_D]`` (or ``[W_1, ..., W_D]`` with
``bias=False``), each with a leading *runs* dimension: ``W_i`` is
``(runs, width[i], width[i-1])`` and ``b_i`` is ``(runs, width[i])``. Used for
the ReLU neuron-balance experiment (Chapter 2), the two-view nonlinear networks
(Chapter 3) and the tanh networks of Chapter 4. Train them with :func:`train`
(any per-run loss, fresh or fixed batches) and measure their sharpness with
``ntlib.hessian`` on one run's parameters (:func:`run_params`).
:func:`relu_loss_and_grads` is a hand-written backward pass for bias-free
two-layer ReLU networks, several times faster than autograd at these sizes.
"""

from __future__ import annotations

import operator
from typing import Callable, Sequence

import torch

from . import _checks, ensemble
from .run import Run

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": torch.relu,
    "tanh": torch.tanh,
    "linear": lambda h: h,
}


def init(widths: Sequence[int], runs: int, generator: torch.Generator, *, bias: bool = True,
         scale: float = 1.0, dtype: torch.dtype | None = None) -> list[torch.Tensor]:
    """Gaussian initialisation: ``W_i ~ N(0, scale^2 / fan_in)``, biases zero.

    ``widths = [in, h_1, ..., out]``; returns the parameter list described in
    the module docstring.

    Example
    -------
    >>> from ntlib.config import generator
    >>> [tuple(p.shape) for p in init([3, 5, 1], 2, generator(0))]
    [(2, 5, 3), (2, 5), (2, 1, 5), (2, 1)]
    """
    widths = _checks.widths("widths", widths)
    _checks.generator("generator", generator)
    _checks.positive_int("runs", runs)
    _checks.positive("scale", scale, strict=False)
    dtype = dtype or torch.get_default_dtype()
    params: list[torch.Tensor] = []
    for a, b in zip(widths[:-1], widths[1:]):
        params.append(torch.randn(runs, b, a, generator=generator, dtype=dtype) * (scale / a ** 0.5))
        if bias:
            params.append(torch.zeros(runs, b, dtype=dtype))
    return params


def _layers(params: Sequence[torch.Tensor], bias: bool):
    if bias:
        if len(params) % 2:
            raise ValueError(f"with bias=True params must alternate W, b; got {len(params)} tensors")
        return list(zip(params[0::2], params[1::2]))
    return [(w, None) for w in params]


def forward(params: Sequence[torch.Tensor], x: torch.Tensor, *, activation: str = "relu", bias: bool = True,
            return_hidden: bool = False):
    """Output of every run on ``x`` ((n, in) shared or (runs, n, in)): shape (runs, n, out).

    The activation follows every layer but the last. With ``return_hidden`` the
    post-activation hidden representations ``[h_1, ..., h_{D-1}]`` are returned too.

    Example
    -------
    >>> import torch
    >>> from ntlib.config import generator
    >>> p = init([3, 4, 2], 5, generator(0), dtype=torch.float64)
    >>> tuple(forward(p, torch.zeros(7, 3, dtype=torch.float64), activation="tanh").shape)
    (5, 7, 2)
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    act = ACTIVATIONS[activation]
    layers = _layers(params, bias)
    runs = layers[0][0].shape[0]
    h = x if x.ndim == 3 else x.unsqueeze(0).expand(runs, -1, -1)
    if h.shape[-1] != layers[0][0].shape[-1]:
        raise ValueError(f"x has {h.shape[-1]} features, the first layer expects {layers[0][0].shape[-1]}")
    hidden = []
    for i, (w, b) in enumerate(layers):
        h = h @ w.transpose(-1, -2)
        if b is not None:
            h = h + b.unsqueeze(-2)
        if i < len(layers) - 1:
            h = act(h)
            hidden.append(h)
    return (h, hidden) if return_hidden else h


def mse(params: Sequence[torch.Tensor], x: torch.Tensor, y: torch.Tensor, *, activation: str = "relu",
        bias: bool = True) -> torch.Tensor:
    """Per-run loss ``mean_n |f(x_n) - y_n|^2`` (summed over outputs), shape (runs,).

    Example
    -------
    >>> import torch
    >>> from ntlib.config import generator
    >>> p = init([1, 3, 1], 2, generator(0), dtype=torch.float64)  # zero biases: f(0) = 0
    >>> mse(p, torch.zeros(4, 1, dtype=torch.float64), torch.ones(4, 1, dtype=torch.float64)).tolist()
    [1.0, 1.0]
    """
    f = forward(params, x, activation=activation, bias=bias)
    if not isinstance(y, torch.Tensor):  # shape only: value checks would break torch.func.vmap
        raise TypeError(f"y must be a torch.Tensor, got {type(y).__name__}")
    if y.shape[-2:] != f.shape[-2:] or (y.ndim == 3 and y.shape[0] != f.shape[0]) or y.ndim not in (2, 3):
        raise ValueError(f"y must have shape (n, out) = {tuple(f.shape[-2:])} or (runs, n, out) = "
                         f"{tuple(f.shape)}, got {tuple(y.shape)}")
    return ((f - y) ** 2).sum(-1).mean(-1)


def run_params(params: Sequence[torch.Tensor], run: int) -> tuple[torch.Tensor, ...]:
    """The parameters of one run, with a runs dimension of 1 (for ``ntlib.hessian``).

    Example
    -------
    >>> from ntlib.config import generator
    >>> [tuple(q.shape) for q in run_params(init([2, 3, 1], 4, generator(0)), 2)]
    [(1, 3, 2), (1, 3), (1, 1, 3), (1, 1)]
    """
    runs = params[0].shape[0]
    try:
        ok = not isinstance(run, bool) and 0 <= operator.index(run) < runs
    except TypeError:
        ok = False
    if not ok:
        raise ValueError(f"run must be an int in [0, {runs}), got {run!r}")
    run = operator.index(run)
    return tuple(p[run : run + 1] for p in params)


def train(params: Sequence[torch.Tensor], batches: Callable[[int], tuple], *, lr, steps: int,
          activation: str = "relu", bias: bool = True, loss: Callable | None = None,
          **kwargs) -> Run:
    """Train every run on ``batches(step) -> (x, y)`` with the per-run MSE (or ``loss``).

    ``batches`` returns a fresh sample each step for SGD, or always the same
    full batch for gradient descent; ``x`` is (n, in) shared or (runs, n, in).
    ``loss(params, x, y)`` may replace the MSE (it must return shape (runs,)).
    Remaining keyword arguments (``lr_end``, ``optimizer``, ``adam``,
    ``weight_decay``, ``record_every``, ``recorder``, ``progress``) go to
    :func:`ntlib.ensemble.train`, which returns a :class:`~ntlib.run.Run` and
    raises :class:`~ntlib.errors.DivergenceError` on a non-finite loss.

    Example
    -------
    >>> import torch
    >>> from ntlib.config import generator
    >>> x = torch.linspace(-1, 1, 16, dtype=torch.float64).unsqueeze(1)
    >>> p0 = init([1, 8, 1], 3, generator(0), dtype=torch.float64)
    >>> run = train(p0, lambda k: (x, x ** 2), lr=0.1, steps=300, activation="tanh")
    >>> bool((mse(run.params, x, x ** 2, activation="tanh") < mse(p0, x, x ** 2, activation="tanh")).all())
    True
    """
    _checks.function("batches", batches)
    per_run = loss or (lambda p, x, y: mse(p, x, y, activation=activation, bias=bias))
    step = ensemble.autograd_loss_and_grads(lambda p, batch: per_run(p, *batch), batches)
    return ensemble.train(step, params, lr=lr, steps=steps, **kwargs)


def relu_loss_and_grads(params: Sequence[torch.Tensor], x: torch.Tensor,
                        y: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Loss and gradients of ``f(x) = U relu(W x)`` by explicit backprop (``thm-neuron-balance``).

    ``params = [W (runs, h, d), U (runs, o, h)]`` as from :func:`init` with
    ``bias=False``; ``x`` (runs, n, d), ``y`` (runs, n, o). Returns the loss
    summed over runs of ``mean_n |f(x_n) - y_n|^2`` and the per-run gradients,
    the same as autograd on ``mse(params, x, y, bias=False).sum()`` but several
    times faster for the tiny networks of Chapter 2 (use it as the
    ``loss_and_grads`` of :func:`ntlib.ensemble.train`). Each hidden unit has
    the rescaling symmetry ``(w_i, u_i) -> (e^lam w_i, e^-lam u_i)`` (Chapter 2,
    ``thm-neuron-balance``).

    Example
    -------
    >>> import torch
    >>> w, u = torch.tensor([[[1.0, -1.0]]]), torch.tensor([[[2.0]]])
    >>> loss, (gw, gu) = relu_loss_and_grads([w, u], torch.tensor([[[1.0, 0.0]]]), torch.tensor([[[1.0]]]))
    >>> float(loss), gw.tolist(), gu.tolist()
    (1.0, [[[4.0, 0.0]]], [[[2.0]]])
    """
    if len(params) != 2:
        raise ValueError(f"params must be [W, U] (a bias-free two-layer net), got {len(params)} tensors")
    w, u = params
    _checks.tensor("params[0]", w)
    _checks.tensor("params[1]", u)
    if w.ndim != 3 or u.ndim != 3 or u.shape[-1] != w.shape[-2] or u.shape[0] != w.shape[0]:
        raise ValueError(f"params must be [W (runs, h, d), U (runs, o, h)], got {tuple(w.shape)} and {tuple(u.shape)}")
    if x.ndim != 3 or x.shape[-1] != w.shape[-1] or y.shape != (*x.shape[:-1], u.shape[-2]):
        raise ValueError(f"x must be (runs, n, {w.shape[-1]}) and y (runs, n, {u.shape[-2]}), "
                         f"got {tuple(x.shape)} and {tuple(y.shape)}")
    z = x @ w.transpose(-1, -2)
    a = torch.relu(z)
    r = a @ u.transpose(-1, -2) - y
    n = x.shape[-2]
    dr = (2.0 / n) * r
    gu = dr.transpose(-1, -2) @ a
    gw = ((dr @ u) * (z > 0)).transpose(-1, -2) @ x
    return (r * r).sum() / n, [gw, gu]
