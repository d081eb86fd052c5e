"""ntlib.errors: the two errors besides bad arguments, and that every module raises these ones."""

from __future__ import annotations

import importlib

import pytest
import torch

import ntlib
from ntlib import ensemble, errors, hessian
from ntlib.errors import ConvergenceError, DivergenceError


def test_divergence_error_names_the_step_the_learning_rate_and_the_last_loss():
    e = DivergenceError(7, 0.25, 1.5)
    assert isinstance(e, RuntimeError)
    assert (e.step, e.lr, e.last_finite_loss) == (7, 0.25, 1.5)
    assert "step 7" in str(e) and "learning rate 0.25" in str(e) and "last finite loss: 1.5" in str(e)
    assert "lower the learning rate" in str(e)
    assert "last finite loss: none" in str(DivergenceError(0, 1.0, None))


def test_convergence_error_keeps_the_partial_result():
    partial = object()
    e = ConvergenceError("3 pairs not certified", result=partial)
    assert isinstance(e, RuntimeError) and str(e) == "3 pairs not certified" and e.result is partial


def test_one_definition_of_each_error():
    """``DivergenceError`` (was in dynamics) and ``ConvergenceError`` (was in hessian) live in ntlib.errors only."""
    assert ntlib.DivergenceError is DivergenceError and ntlib.ConvergenceError is ConvergenceError
    for name in ("dynamics", "ensemble", "toys", "hessian", "mlp", "linear.training"):
        mod = importlib.import_module(f"ntlib.{name}")
        for err in (DivergenceError, ConvergenceError):
            assert getattr(mod, err.__name__, err) is err, f"ntlib.{name} redefines {err.__name__}"
    assert set(errors.__all__) == {"DivergenceError", "ConvergenceError"}


def test_trainers_and_solvers_raise_them():
    nan_at_3 = lambda k, ps: (torch.tensor(float("nan") if k == 3 else 1.0), [torch.zeros_like(ps[0])])
    with pytest.raises(DivergenceError) as e:
        ensemble.train(nan_at_3, [torch.ones(2, 1)], lr=[0.1, 0.3], steps=5)
    assert e.value.step == 3 and e.value.lr == pytest.approx(0.3) and e.value.last_finite_loss == 1.0
    a = torch.diag(torch.linspace(0.0, 1.0, 200))
    with pytest.raises(ConvergenceError) as c:
        hessian.top_eigenvalues(lambda w: 0.5 * w @ a @ w, torch.zeros(200), tol=1e-12, max_hvps=5)
    assert isinstance(c.value.result, hessian.Eigen) and c.value.result.converged is False
