"""The entropic loss F = L + (eta/4)|grad L|^2 and its gradient: ntlib vs hand-written double backprop.

Workload: an MLP 32-64-64-10 (tanh), 512 samples, MSE, float64. One call =
value of F and its gradient with respect to every parameter (what a flow or an
optimiser on F needs each step).

Methods:

* ``hand-written double backprop`` (baseline): ``g = autograd.grad(L, p,
  create_graph=True)``; ``F = L + eta/4 sum |g|^2``; ``autograd.grad(F, p)``;
* ``ntlib.entropic_loss + ntlib.value_and_grad``: the same through ntlib's API
  (input validation included). Target: within 1.2x of the baseline
  (ratio >= 0.83).

``rel_error`` is the relative difference of ntlib's gradient from the baseline's.
"""

from __future__ import annotations

import time

import torch

import ntlib
from benchmarks import with_ratios

LR = 0.05


def problem(n: int = 512, seed: int = 0, device: str = "cpu"):
    """Parameters (tuple) and the MSE loss of a seeded 32-64-64-10 tanh MLP."""
    g = torch.Generator().manual_seed(seed)
    dims = (32, 64, 64, 10)
    params = []
    for a, b in zip(dims[:-1], dims[1:]):
        params += [torch.randn(b, a, generator=g) / a ** 0.5, torch.zeros(b)]
    x = torch.randn(n, dims[0], generator=g)
    y = torch.randn(n, dims[-1], generator=g)
    params, x, y = [p.to(device) for p in params], x.to(device), y.to(device)

    def loss_fn(p):
        h = x
        for i in range(0, len(p) - 2, 2):
            h = torch.tanh(h @ p[i].T + p[i + 1])
        return ((h @ p[-2].T + p[-1] - y) ** 2).sum(1).mean()

    return tuple(params), loss_fn


def hand_written(loss_fn, params):
    """F and grad F by explicit double backprop."""
    p = [t.detach().requires_grad_(True) for t in params]
    value = loss_fn(p)
    g = torch.autograd.grad(value, p, create_graph=True)
    F = value + 0.25 * LR * sum((gi * gi).sum() for gi in g)
    return F.detach(), torch.autograd.grad(F, p)


def with_ntlib(loss_fn, params):
    """F and grad F through ntlib.entropic_loss and ntlib.value_and_grad."""
    return ntlib.value_and_grad(ntlib.entropic_loss(loss_fn, LR), params)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def run(quick: bool = False, device: str = "cpu") -> list[dict]:
    """Rows: baseline and ntlib, wall time of one (F, grad F) evaluation.

    The two methods are called alternately ``pairs`` times and each row reports
    the *minimum* over its calls: on a loaded machine the median of calls of a
    few milliseconds mostly measures the other jobs, while the minimum is the
    cost of the computation itself (the recommendation of Python's ``timeit``).
    """
    params, loss_fn = problem(device=device)
    pairs = 20 if quick else 200
    ref_val, ref_grad = hand_written(loss_fn, params)
    val, grad = with_ntlib(loss_fn, params)
    err = max(float((a - b).abs().max() / b.abs().max()) for a, b in zip(grad, ref_grad))
    err = max(err, abs(float(val - ref_val)) / abs(float(ref_val)))
    walls = {"hand": [], "ntlib": []}
    for _ in range(pairs):
        for key, fn in (("hand", hand_written), ("ntlib", with_ntlib)):
            t0 = time.perf_counter()
            fn(loss_fn, params)
            _sync(device)
            walls[key].append(time.perf_counter() - t0)
    bench = "entropic loss + gradient, MLP 32-64-64-10, 512 samples"
    rows = [
        {"benchmark": bench, "method": "hand-written double backprop", "wall_s": min(walls["hand"]),
         "note": f"baseline; min of {pairs} interleaved calls"},
        {"benchmark": bench, "method": "ntlib.entropic_loss + value_and_grad", "wall_s": min(walls["ntlib"]),
         "rel_error": err, "note": "target: ratio >= 0.83 (within 1.2x)"},
    ]
    return with_ratios(rows, "hand-written double backprop")
