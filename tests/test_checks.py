"""ntlib._checks: the validators behind every public function; each names the argument and what was expected."""

from __future__ import annotations

import pytest
import torch

from ntlib import _checks as C
from ntlib import linear


def test_validators_return_their_value():
    t = torch.ones(2, 2)
    assert C.tensor("x", t) is t and C.square("m", t) is t
    assert C.params("p", t) == (t,) and C.params("p", [t, t]) == (t, t)
    assert C.positive("lr", 2) == 2.0 and C.positive("wd", 0, strict=False) == 0.0 and C.real("c", -1) == -1.0
    assert C.integer("k", -3) == -3 and C.positive_int("k", 0, minimum=0) == 0
    assert C.spd("s", torch.eye(2)) is not None and C.scalar_output("f", torch.ones(1, 1)).numel() == 1
    g = torch.Generator()
    assert C.generator("g", g) is g and C.widths("w", (3, 4)) == [3, 4]
    assert C.invertible("m", torch.ones(2, 1, 3)) is not None  # a stack of full-rank (1 x 3) matrices
    ws = [torch.ones(2, 4, 3), torch.ones(2, 1, 4)]
    assert C.weight_chain("weights", tuple(ws)) == ws
    t0 = linear.teacher(torch.eye(2))
    assert C.teacher("t", t0) is t0
    C.function("f", len)


@pytest.mark.parametrize("call,exc,msg", [
    (lambda: C.tensor("x", [1.0]), TypeError, "x must be a torch.Tensor, got list"),
    (lambda: C.tensor("x", torch.ones(2, dtype=torch.int64)), TypeError, "x must have a floating dtype"),
    (lambda: C.tensor("x", torch.ones(2), ndim=2), ValueError, r"x must have 2 dimension\(s\), got shape \(2,\)"),
    (lambda: C.tensor("x", torch.tensor([float("inf")])), ValueError, "x contains NaN or infinite values"),
    (lambda: C.params("p", ()), TypeError, "p must be a tensor or a non-empty tuple/list"),
    (lambda: C.params("p", 3.0), TypeError, "got float"),
    (lambda: C.params("p", (torch.ones(1), torch.tensor([float("nan")]))), ValueError, r"p\[1\] contains NaN"),
    (lambda: C.positive("lr", "a"), TypeError, "lr must be a real number, got str"),
    (lambda: C.positive("lr", 0.0), ValueError, "lr must be > 0 and finite"),
    (lambda: C.positive("lr", -1.0, strict=False), ValueError, "lr must be >= 0 and finite"),
    (lambda: C.positive("lr", float("inf")), ValueError, "lr must be > 0 and finite"),
    (lambda: C.real("c", float("nan")), ValueError, "c must be finite"),
    (lambda: C.real("c", None), TypeError, "c must be a real number"),
    (lambda: C.function("f", 3), TypeError, "f must be callable, got int"),
    (lambda: C.integer("k", True), TypeError, "k must be an int, got bool"),
    (lambda: C.integer("k", 1.0), TypeError, "k must be an int, got float"),
    (lambda: C.positive_int("k", 0), ValueError, "k must be >= 1, got 0"),
    (lambda: C.positive_int("k", False), TypeError, "k must be an int"),
    (lambda: C.square("m", torch.ones(2, 3)), ValueError, r"m must be a square matrix, got shape \(2, 3\)"),
    (lambda: C.square("m", torch.ones(3)), ValueError, "m must have 2 dimension"),
    (lambda: C.spd("s", torch.tensor([[1.0, 0.5], [0.0, 1.0]])), ValueError, "s must be symmetric"),
    (lambda: C.spd("s", torch.diag(torch.tensor([1.0, 0.0]))), ValueError,
     "s must be positive definite, smallest eigenvalue is 0"),
    (lambda: C.scalar_output("f(x)", torch.ones(2)), ValueError, r"f\(x\) must return a scalar tensor"),
    (lambda: C.scalar_output("f(x)", 1.0), ValueError, r"f\(x\) must return a scalar tensor, got float"),
    (lambda: C.generator("g", 0), TypeError, "g must be a torch.Generator"),
    (lambda: C.widths("w", [3]), ValueError, "w must list at least 2 positive integer sizes"),
    (lambda: C.widths("w", [3, True]), ValueError, "w must list at least 2"),
    (lambda: C.invertible("m", torch.ones(3)), ValueError, r"m must be a matrix \(a, b\) or a stack"),
    (lambda: C.invertible("m", torch.ones(2, 2)), ValueError, "m must have full rank"),
    (lambda: C.weight_chain("w", []), TypeError, "w must be a non-empty list"),
    (lambda: C.weight_chain("w", torch.ones(1, 2, 2)), TypeError, "w must be a non-empty list"),
    (lambda: C.weight_chain("w", [torch.ones(2, 2)]), ValueError, r"w\[0\] must have 3 dimension"),
    (lambda: C.weight_chain("w", [torch.ones(1, 4, 3), torch.ones(1, 2, 3)]), ValueError,
     r"w\[0\] \(1, 4, 3\) and w\[1\] \(1, 2, 3\) do not chain"),
    (lambda: C.weight_chain("w", [torch.ones(1, 4, 3), torch.ones(2, 2, 4)]), ValueError, "do not chain"),
    (lambda: C.teacher("t", (torch.eye(2),)), TypeError, "t must be a Teacher .see ntlib.linear.teacher., got tuple"),
])
def test_bad_input_names_the_argument_and_what_was_expected(call, exc, msg):
    with pytest.raises(exc, match=msg):
        call()
