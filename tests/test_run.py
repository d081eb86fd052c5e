"""ntlib.run: the one result type of every trainer, and its stacking of records."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import pytest
import torch

from ntlib import dynamics, ensemble, linear, mlp, toys
from ntlib.config import generator
from ntlib.run import Run


class Rec(NamedTuple):
    loss: torch.Tensor
    norm: float


def test_stacked_by_key_index_attribute_and_whole():
    r = Run(params=torch.zeros(1), steps=[0, 5],
            records=[{"a": torch.tensor([1.0, 2.0]), "b": 3.0}, {"a": torch.tensor([4.0, 5.0]), "b": 6.0}])
    assert r.stacked("a").tolist() == [[1.0, 2.0], [4.0, 5.0]] and r.stacked("b").tolist() == [3.0, 6.0]
    t = Run(torch.zeros(1), [0, 1], [(torch.tensor(1.0), torch.ones(2)), (torch.tensor(2.0), torch.zeros(2))])
    assert t.stacked(0).tolist() == [1.0, 2.0] and t.stacked(1).shape == (2, 2)
    n = Run(torch.zeros(1), [0, 1], [Rec(torch.tensor(1.0), 2.0), Rec(torch.tensor(3.0), 4.0)])
    assert n.stacked("loss").tolist() == [1.0, 3.0] and n.stacked("norm").tolist() == [2.0, 4.0]
    w = Run(torch.zeros(1), [0, 1, 2], [torch.ones(2), 2 * torch.ones(2), 3 * torch.ones(2)])
    assert w.stacked().tolist() == [[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]


def test_python_float_records_stack_as_float64_under_any_default_dtype():
    """Regression: under a float32 default the recorded losses of gd (Python doubles) were stacked as float32."""
    torch.set_default_dtype(torch.float32)  # the autouse fixture restores float64 after the test
    r = Run(torch.zeros(1), [0, 1], [{"loss": 0.1}, {"loss": 1 / 3}])
    assert r.stacked("loss").dtype == torch.float64 and r.stacked("loss").tolist() == [0.1, 1 / 3]
    run = dynamics.gd(lambda t: 0.5 * (t ** 2).sum(), torch.tensor([1.0], dtype=torch.float64), lr=0.1, steps=2)
    assert run.stacked("loss").tolist() == [r["loss"] for r in run.records] == [0.5, 0.5 * 0.9 ** 2, 0.5 * 0.81 ** 2]


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="this run has no records"):
        Run(torch.zeros(1)).stacked()
    with pytest.raises(ValueError, match=r"records\['a'\] cannot be stacked"):
        Run(torch.zeros(1), [0, 1], [{"a": torch.ones(2)}, {"a": torch.ones(3)}]).stacked("a")
    with pytest.raises(KeyError, match="has no entry 'c'"):
        Run(torch.zeros(1), [0], [Rec(torch.tensor(1.0), 2.0)]).stacked("c")
    with pytest.raises(KeyError):
        Run(torch.zeros(1), [0], [{"a": 1.0}]).stacked("b")


def test_a_run_is_frozen_with_empty_defaults():
    r = Run(torch.zeros(1))
    assert r.steps == [] and r.records == [] and r.info == {}
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.params = torch.ones(1)


def test_every_trainer_returns_a_run():
    """One result type for gd, sgd, ensemble.train (and linear/mlp on it) and the two toy trainers."""
    half_sq = lambda t: 0.5 * (t ** 2).sum()
    x = torch.ones(2)
    t = linear.teacher(torch.eye(2))
    runs = {
        "gd": dynamics.gd(half_sq, x, 0.1, 2),
        "sgd": dynamics.sgd(lambda p, b: b * half_sq(p), x, 0.1, [1.0, 2.0], 2),
        "ensemble": ensemble.train(lambda k, ps: (half_sq(ps[0]), [ps[0]]), [torch.ones(2, 1)], lr=0.1, steps=2),
        "linear": linear.train(linear.init_weights([2, 2], 2, generator(0)), t, lr=0.01, steps=2,
                               generator=generator(1)),
        "mlp": mlp.train(mlp.init([2, 3, 1], 2, generator(0)), lambda k: (torch.ones(4, 2), torch.ones(4, 1)),
                         lr=0.01, steps=2),
        "scale_invariant": toys.scale_invariant_train(torch.ones(2, 2), torch.tensor([1.0, 0.0]), lr=0.1, steps=2,
                                                      batch_size=1, noise=0.1, generator=generator(0)),
        "rescaling": toys.rescaling_toy_train(torch.ones(2), torch.ones(2), target=1.0, noise=0.1, lr=0.1, steps=2,
                                              generator=generator(0)),
    }
    for name, run in runs.items():
        assert isinstance(run, Run), name
    assert runs["gd"].steps == [0, 1, 2] and runs["ensemble"].steps == [] and runs["scale_invariant"].steps == [0, 1, 2]
