"""Same seed, same bits: ntlib's training helpers are deterministic on CPU.

Each check runs the same computation twice from the same seed and compares the
results with ``torch.equal`` (bit-identical, not allclose); a different seed must
give a different result (the check is not vacuous). One check runs in fresh
processes, so that the seeding done by ``ntlib.setup()`` from ``NTLIB_SEED`` is
covered too.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from ntlib import config, dynamics
from ntlib._params import flatten

torch.set_default_dtype(torch.float64)


def _net_problem(seed: int):
    g = config.generator(seed)
    p = (torch.randn(6, 3, generator=g), torch.randn(6, generator=g), torch.randn(6, generator=g) / 6 ** 0.5)
    x, y = torch.randn(40, 3, generator=g), torch.randn(40, generator=g)

    def batch_loss(q, idx):
        return ((torch.tanh(x[idx] @ q[0].T + q[1]) @ q[2] - y[idx]) ** 2).mean()

    def batches(seed_b: int, steps: int, b: int = 4):
        gb = config.generator(seed_b)
        return [torch.randint(0, 40, (b,), generator=gb) for _ in range(steps)]

    return p, batch_loss, batches


def _run_all(seed: int) -> torch.Tensor:
    p, batch_loss, batches = _net_problem(seed)
    full = lambda q: batch_loss(q, slice(None))
    a = dynamics.gd(full, p, lr=0.05, steps=50).final
    b = dynamics.sgd(batch_loss, p, lr=0.05, batches=batches(seed + 1, 200), steps=200).final
    c = dynamics.gradient_flow(full, p, 0.2, rtol=1e-8, atol=1e-10)
    return torch.cat([flatten(a), flatten(b), flatten(c)])


def test_gd_sgd_gradient_flow_are_bit_identical_for_the_same_seed():
    r1, r2 = _run_all(3), _run_all(3)
    assert torch.equal(r1, r2)
    assert not torch.equal(r1, _run_all(4))


def test_trajectory_records_are_bit_identical():
    p, batch_loss, batches = _net_problem(0)
    t1 = dynamics.sgd(batch_loss, p, 0.1, batches(9, 30), 30, record_every=3)
    t2 = dynamics.sgd(batch_loss, p, 0.1, batches(9, 30), 30, record_every=3)
    assert torch.equal(t1.losses, t2.losses) and torch.equal(t1.steps, t2.steps)
    assert all(torch.equal(flatten(a), flatten(b)) for a, b in zip(t1.params, t2.params))


SCRIPT = textwrap.dedent("""
    import hashlib, torch, ntlib
    from ntlib._params import flatten
    cfg = ntlib.setup()
    p = (torch.randn(5, 2), torch.randn(5))          # global generator, seeded by setup()
    x = torch.randn(30, 2, generator=ntlib.config.generator(cfg.seed + 1))
    y = torch.sin(x.sum(1))
    g = ntlib.config.generator(cfg.seed + 2)
    batches = [torch.randint(0, 30, (4,), generator=g) for _ in range(100)]
    loss = lambda q, i: ((torch.tanh(x[i] @ q[0].T) @ q[1] - y[i]) ** 2).mean()
    tr = ntlib.sgd(loss, p, 0.05, batches, 100)
    print(hashlib.sha256(flatten(tr.final).numpy().tobytes()).hexdigest())
""")


def _fresh_process(seed: int) -> str:
    env = dict(os.environ, NTLIB_SEED=str(seed), NTLIB_DEVICE="cpu")
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def _in_process(seed: int, monkeypatch) -> str:
    import contextlib
    import io

    monkeypatch.setenv("NTLIB_SEED", str(seed))
    monkeypatch.setenv("NTLIB_DEVICE", "cpu")
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(SCRIPT, {})
    return buf.getvalue().strip()


def test_ntlib_setup_makes_a_fresh_process_bit_identical(monkeypatch):
    """A fresh process and this one, both seeded by ntlib.setup() from NTLIB_SEED, give the same bits."""
    a = _fresh_process(2)
    assert len(a) == 64 and a == _in_process(2, monkeypatch)
    assert a != _in_process(3, monkeypatch)


def _linear_run(seed: int, method: str) -> torch.Tensor:
    from ntlib import linear

    t = linear.teacher(torch.randn(3, 4, generator=config.generator(seed)))
    w = linear.init_weights([4, 5, 5, 3], runs=4, generator=config.generator(seed + 1))
    ws, _ = linear.train(w, t, lr=0.02, lr_end=0.005, steps=200, generator=config.generator(seed + 2),
                         batch_size=4, method=method)
    return torch.cat([x.reshape(-1) for x in ws])


@pytest.mark.parametrize("method", ["sgd", "gd"])
def test_linear_training_is_bit_identical(method):
    """Batched deep linear network training (ntlib.linear.train) from the same seed gives the same bits."""
    a = _linear_run(0, method)
    assert torch.equal(a, _linear_run(0, method))
    assert not torch.equal(a, _linear_run(1, method))
