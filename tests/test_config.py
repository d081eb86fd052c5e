"""ntlib.config: environment variables, seeding, generators; same seed, same bits in a fresh process."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from hypothesis import given, strategies as st

from ntlib import config

VARS = ("NTLIB_SEED", "NTLIB_SCALE", "NTLIB_DEVICE", "NTLIB_THREADS")


def test_defaults(monkeypatch):
    for v in VARS:
        monkeypatch.delenv(v, raising=False)
    cfg = config.get_config()
    assert (cfg.seed, cfg.scale, cfg.threads, cfg.dtype) == (0, "ci", 1, torch.float64)
    assert isinstance(cfg, config.Config) and not cfg.paper and cfg.pick("small", "big") == "small"


def test_paper_scale_seed_threads_and_device(monkeypatch):
    monkeypatch.setenv("NTLIB_SCALE", " Paper ")
    monkeypatch.setenv("NTLIB_SEED", "7")
    monkeypatch.setenv("NTLIB_THREADS", "2")
    monkeypatch.setenv("NTLIB_DEVICE", "cpu")
    cfg = config.get_config()
    assert cfg.paper and cfg.seed == 7 and cfg.pick(1, 2) == 2 and cfg.threads == 2
    assert cfg.device == torch.device("cpu")


@pytest.mark.parametrize("var,value,msg", [
    ("NTLIB_SCALE", "huge", "NTLIB_SCALE must be one of"),
    ("NTLIB_SEED", "abc", "NTLIB_SEED must be an integer"),
    ("NTLIB_THREADS", "0", "NTLIB_THREADS must be >= 1"),
    ("NTLIB_DEVICE", "tpu", "NTLIB_DEVICE must be"),
])
def test_bad_values_name_the_variable(monkeypatch, var, value, msg):
    monkeypatch.setenv(var, value)
    with pytest.raises(ValueError, match=msg):
        config.get_config()


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_without_cuda_is_an_error(monkeypatch):
    monkeypatch.setenv("NTLIB_DEVICE", "cuda")
    with pytest.raises(ValueError, match="torch.cuda.is_available"):
        config.get_config()


def test_setup_seeds_sets_dtype_and_threads(monkeypatch):
    monkeypatch.setenv("NTLIB_SEED", "3")
    monkeypatch.setenv("NTLIB_DEVICE", "cpu")
    torch.set_default_dtype(torch.float32)  # the autouse fixture restores dtype and threads after the test
    cfg = config.setup()
    a = torch.randn(5)
    assert torch.get_default_dtype() == torch.float64 == cfg.dtype and torch.get_num_threads() == cfg.threads
    config.setup()
    assert torch.equal(a, torch.randn(5))
    config.setup(seed_offset=1)
    assert not torch.equal(a, torch.randn(5))


def test_seed_everything_seeds_python_numpy_and_torch():
    import random

    import numpy as np

    config.seed_everything(5)
    a = (random.random(), np.random.rand(), torch.rand(3))
    config.seed_everything(5)
    assert a[0] == random.random() and a[1] == np.random.rand() and torch.equal(a[2], torch.rand(3))
    config.seed_everything(2**40)  # numpy takes the seed modulo 2^32


@given(seed=st.integers(0, 2**40))
def test_generator_is_a_function_of_the_seed(seed):
    a = torch.randn(4, generator=config.generator(seed))
    assert torch.equal(a, torch.randn(4, generator=config.generator(seed)))
    assert not torch.equal(a, torch.randn(4, generator=config.generator(seed + 1)))


@pytest.mark.parametrize("call,exc,msg", [
    (lambda: config.setup(seed_offset=1.5), TypeError, "seed_offset must be an int"),
    (lambda: config.seed_everything("1"), TypeError, "seed must be an int"),
    (lambda: config.seed_everything(True), TypeError, "seed must be an int"),
    (lambda: config.generator(True), TypeError, "seed must be an int"),
])
def test_bad_arguments_name_the_argument(call, exc, msg):
    with pytest.raises(exc, match=msg):
        call()


# ---- same seed, same bits: ntlib.setup() in a fresh process and in this one -------------------

SCRIPT = textwrap.dedent("""
    import hashlib, torch, ntlib
    from ntlib.params import flatten
    cfg = ntlib.setup()
    p = (torch.randn(5, 2), torch.randn(5))          # global generator, seeded by setup()
    x = torch.randn(30, 2, generator=ntlib.config.generator(cfg.seed + 1))
    y = torch.sin(x.sum(1))
    g = ntlib.config.generator(cfg.seed + 2)
    batches = [torch.randint(0, 30, (4,), generator=g) for _ in range(100)]
    loss = lambda q, i: ((torch.tanh(x[i] @ q[0].T) @ q[1] - y[i]) ** 2).mean()
    run = ntlib.sgd(loss, p, 0.05, batches, 100)
    print(hashlib.sha256(flatten(run.params).numpy().tobytes()).hexdigest())
""")


def _fresh_process(seed: int) -> str:
    env = dict(os.environ, NTLIB_SEED=str(seed), NTLIB_DEVICE="cpu")
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def _in_process(seed: int, monkeypatch) -> str:
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
