import pytest
import torch

from ntlib import config


def test_defaults(monkeypatch):
    for v in ("NTLIB_SEED", "NTLIB_SCALE", "NTLIB_DEVICE", "NTLIB_THREADS"):
        monkeypatch.delenv(v, raising=False)
    cfg = config.get_config()
    assert (cfg.seed, cfg.scale, cfg.threads, cfg.dtype) == (0, "ci", 1, torch.float64)
    assert cfg.pick("small", "big") == "small"


def test_paper_scale_and_seed(monkeypatch):
    monkeypatch.setenv("NTLIB_SCALE", "paper")
    monkeypatch.setenv("NTLIB_SEED", "7")
    cfg = config.get_config()
    assert cfg.paper and cfg.seed == 7 and cfg.pick(1, 2) == 2


@pytest.mark.parametrize("var,value,msg", [
    ("NTLIB_SCALE", "huge", "NTLIB_SCALE"),
    ("NTLIB_SEED", "abc", "NTLIB_SEED"),
    ("NTLIB_THREADS", "0", "NTLIB_THREADS"),
    ("NTLIB_DEVICE", "tpu", "NTLIB_DEVICE"),
])
def test_bad_values_name_the_variable(monkeypatch, var, value, msg):
    monkeypatch.setenv(var, value)
    with pytest.raises(ValueError, match=msg):
        config.get_config()


def test_setup_is_deterministic(monkeypatch):
    monkeypatch.setenv("NTLIB_SEED", "3")
    config.setup()
    a = torch.randn(5)
    config.setup()
    assert torch.equal(a, torch.randn(5))
    config.setup(seed_offset=1)
    assert not torch.equal(a, torch.randn(5))
