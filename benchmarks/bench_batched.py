"""Many small runs at once: stacked parameters vs a Python loop over runs.

Workload (Chapter 3, theory notes section 6): two embedded deep linear networks
(EDLN) f(x) = M_O W_D ... W_1 M_I Z x, hidden widths (8, 8) and (10, 10, 10),
d = 6 inputs, 4 outputs, frozen M and Z with singular values in [0.7, 1.4],
trained together by SGD (eta = 0.01, batch 4) on a Gaussian teacher y = V* x + eps
with label noise, for 200 steps. ``runs`` independent seeds.

Methods (all on the same pre-drawn data stream but the 1-run loop):

* ``python loop, torch autograd`` (baseline): what one writes first: for each
  run, a training loop on 2-D tensors with autograd;
* ``ntlib.linear.train, stacked runs``: ntlib's batched path: every weight
  carries a leading runs dimension, explicit backprop, one step for all runs;
* ``python loop of 1-run ntlib.linear.train``: the same code without batching;
* ``stacked runs, torch autograd``: the stacking with autograd instead of
  ntlib's explicit backprop;
* ``torch.func.vmap(grad) over runs``: the single-run step vectorised with vmap.

``rel_error`` is the largest relative difference of the final weights from the
baseline's (round-off of batched vs plain matmuls: the iterates are the same).

A second comparison times ntlib's stacked path and the loop with 1 and 2 torch threads: the
policy ``NTLIB_THREADS=1`` (ntlib.config) comes from it.
"""

from __future__ import annotations

import torch
from torch.func import grad as fgrad, vmap

from benchmarks import timed, with_ratios

D_IN, D_OUT = 6, 4
WIDTHS = ((8, 8), (10, 10, 10))
LR, BATCH, NOISE = 0.01, 4, 0.5


def _well_conditioned(g: torch.Generator, runs: int, n: int) -> torch.Tensor:
    """(runs, n, n) matrices with singular values uniform in [0.7, 1.4]."""
    q1, _ = torch.linalg.qr(torch.randn(runs, n, n, generator=g))
    q2, _ = torch.linalg.qr(torch.randn(runs, n, n, generator=g))
    s = 0.7 + 0.7 * torch.rand(runs, n, generator=g)
    return q1 @ torch.diag_embed(s) @ q2


def problem(runs: int, steps: int, seed: int = 0, device: str = "cpu") -> dict:
    """Frozen maps, initial weights, the teacher and the data stream of ``runs`` independent runs.

    The data stream is drawn exactly as :func:`ntlib.linear.train` draws it from
    ``generator(seed + 1)`` (per step: x then the noise, each of shape (runs, batch, .)),
    so that every method trains on the same samples.
    """
    g = torch.Generator().manual_seed(seed)
    nets = []
    for widths in WIDTHS:
        dims = (D_IN,) + widths + (D_OUT,)
        weights = [torch.randn(runs, dims[i + 1], dims[i], generator=g) / dims[i] ** 0.5 for i in range(len(dims) - 1)]
        m_in = _well_conditioned(g, runs, D_IN) @ _well_conditioned(g, runs, D_IN)   # M_I Z
        m_out = _well_conditioned(g, runs, D_OUT)
        nets.append({"weights": weights, "m_in": m_in, "m_out": m_out})
    v_star = torch.randn(D_OUT, D_IN, generator=g) / D_IN ** 0.5
    gd = torch.Generator().manual_seed(seed + 1)
    xs, ys = [], []
    for _ in range(steps):
        x = torch.randn(runs, BATCH, D_IN, generator=gd)
        e = torch.randn(runs, BATCH, D_OUT, generator=gd)
        xs.append(x)
        ys.append(x @ v_star.T + NOISE * e)
    out = {"nets": nets, "v_star": v_star, "x": torch.stack(xs), "y": torch.stack(ys), "steps": steps,
           "runs": runs, "seed": seed}
    return _to(out, device)


def _to(obj, device):
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        return {k: _to(v, device) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to(v, device) for v in obj]
    return obj


def _forward(weights, m_in, m_out, x):
    """EDLN output; works with or without a leading runs dimension (matmul broadcasts)."""
    h = x @ m_in.transpose(-1, -2)
    for w in weights:
        h = h @ w.transpose(-1, -2)
    return h @ m_out.transpose(-1, -2)


def _loss(params, frozen, x, y):
    """Sum over both networks of the batch-mean squared error (per run: no runs dim; stacked: summed over runs)."""
    total, i = 0.0, 0
    for m_in, m_out, n in frozen:
        out = _forward(params[i:i + n], m_in, m_out, x)
        total = total + ((out - y) ** 2).sum(-1).mean(-1).sum()
        i += n
    return total


def _frozen(prob, r=None):
    sel = (lambda t: t) if r is None else (lambda t: t[r])
    return [(sel(n["m_in"]), sel(n["m_out"]), len(n["weights"])) for n in prob["nets"]]


def _params(prob, r=None):
    sel = (lambda t: t) if r is None else (lambda t: t[r])
    return [sel(w).clone() for n in prob["nets"] for w in n["weights"]]


def train_loop(prob) -> list[torch.Tensor]:
    """Baseline: one plain training loop per run. Returns the final weights stacked over runs."""
    finals = []
    for r in range(prob["runs"]):
        frozen = _frozen(prob, r)
        params = [p.requires_grad_(True) for p in _params(prob, r)]
        for k in range(prob["steps"]):
            loss = _loss(params, frozen, prob["x"][k, r], prob["y"][k, r])
            grads = torch.autograd.grad(loss, params)
            with torch.no_grad():
                for p, gp in zip(params, grads):
                    p.sub_(LR * gp)
        finals.append([p.detach() for p in params])
    return [torch.stack(ps) for ps in zip(*finals)]


def train_stacked(prob) -> list[torch.Tensor]:
    """ntlib's batched path: parameters with a leading runs dimension, one step for all runs."""
    frozen = _frozen(prob)
    params = [p.requires_grad_(True) for p in _params(prob)]
    for k in range(prob["steps"]):
        loss = _loss(params, frozen, prob["x"][k], prob["y"][k])  # sum of independent run losses
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for p, gp in zip(params, grads):
                p.sub_(LR * gp)
    return [p.detach() for p in params]


def train_vmap(prob) -> list[torch.Tensor]:
    """The single-run step vectorised over runs with torch.func.vmap."""
    frozen_stacked = _frozen(prob)
    sizes = tuple(n for _, _, n in frozen_stacked)
    mats = [t for m_in, m_out, _ in frozen_stacked for t in (m_in, m_out)]

    def one_run_grad(params, mats, x, y):
        frozen = [(mats[2 * j], mats[2 * j + 1], sizes[j]) for j in range(len(sizes))]
        return fgrad(lambda p: _loss(p, frozen, x, y))(params)

    step_grad = vmap(one_run_grad)
    params = _params(prob)
    for k in range(prob["steps"]):
        grads = step_grad(params, mats, prob["x"][k], prob["y"][k])
        params = [p - LR * gp for p, gp in zip(params, grads)]
    return params


def train_ntlib(prob) -> list[torch.Tensor]:
    """ntlib.linear.train: all runs stacked, explicit backprop, one call per network."""
    from ntlib import linear

    dev = prob["x"].device
    t = linear.teacher(prob["v_star"], sigma_eps=NOISE ** 2 * torch.eye(D_OUT, device=dev))
    out = []
    for net in prob["nets"]:
        g = torch.Generator(device=dev).manual_seed(prob["seed"] + 1)  # the same stream for both networks
        ws = linear.train(net["weights"], t, lr=LR, steps=prob["steps"], generator=g, batch_size=BATCH,
                          m_in=net["m_in"], m_out=net["m_out"]).params
        out += ws
    return out


def train_ntlib_loop(prob) -> list[torch.Tensor]:
    """A Python loop over runs, each a one-run ntlib.linear.train (its own data stream)."""
    from ntlib import linear

    dev = prob["x"].device
    t = linear.teacher(prob["v_star"], sigma_eps=NOISE ** 2 * torch.eye(D_OUT, device=dev))
    finals = []
    for r in range(prob["runs"]):
        for net in prob["nets"]:
            g = torch.Generator(device=dev).manual_seed(prob["seed"] + 1 + r)
            ws = linear.train([w[r:r + 1] for w in net["weights"]], t, lr=LR, steps=prob["steps"], generator=g,
                              batch_size=BATCH, m_in=net["m_in"][r:r + 1], m_out=net["m_out"][r:r + 1]).params
            finals.append(ws)
    return finals


def _max_rel_diff(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return max(float((x - y).abs().max() / y.abs().max()) for x, y in zip(a, b))


METHODS = (
    ("python loop, torch autograd", train_loop, "baseline: what one writes first"),
    ("ntlib.linear.train, stacked runs", train_ntlib, "ntlib's batched path; target >= 5x at 8 runs"),
    ("python loop of 1-run ntlib.linear.train", train_ntlib_loop, "batching removed (own data streams)"),
    ("stacked runs, torch autograd", train_stacked, "the same stacking with autograd"),
    ("torch.func.vmap(grad) over runs", train_vmap, "vectorised single-run step"),
)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def run(quick: bool = False, device: str = "cpu") -> list[dict]:
    """Rows: every method at 8 runs, loop vs ntlib at 32 runs, then 1 vs 2 threads."""
    steps = 100 if quick else 200
    repeat = 1 if quick else 3
    rows: list[dict] = []
    baseline = METHODS[0][0]
    for runs, methods in ((8, METHODS),) + (() if quick else ((32, METHODS[:2]),)):
        prob = problem(runs, steps, device=device)
        bench = f"{runs} EDLN runs x {steps} SGD steps"
        part, ref = [], None
        for method, fn, note in methods:
            loop = fn in (train_loop, train_ntlib_loop)
            wall, out = timed(lambda: (fn(prob), _sync(device))[0], repeat=repeat, warmup=0 if loop else 1)
            if fn is train_loop:
                ref = out
            err = None if loop else _max_rel_diff(out, ref)
            part.append({"benchmark": bench, "method": method, "wall_s": wall, "rel_error": err, "note": note})
        rows += with_ratios(part, baseline)
    if device == "cpu":
        prob = problem(8, steps)
        old = torch.get_num_threads()
        part = []
        try:
            for threads in (1, 2):
                torch.set_num_threads(threads)
                for method, fn in (("ntlib.linear.train", train_ntlib), ("python loop", train_loop)):
                    wall, _ = timed(lambda: fn(prob), repeat=repeat, warmup=1 if fn is train_ntlib else 0)
                    part.append({"benchmark": "threads: 8 EDLN runs", "method": f"{method}, {threads} thread(s)",
                                 "wall_s": wall, "note": "NTLIB_THREADS=1 is the default" if threads == 1 else ""})
        finally:
            torch.set_num_threads(old)
        rows += with_ratios(part, "ntlib.linear.train, 1 thread(s)")
    return rows
