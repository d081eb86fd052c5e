"""ntlib.params: the tensor-or-tuple convention, flattening and its inverse."""

from __future__ import annotations

import importlib
import importlib.util

import pytest
import torch
from hypothesis import given, strategies as st

import ntlib
from ntlib import params as P
from ntlib.params import as_tuple, flatten, like, sq_norm, unflatten

from helpers import close, gen, seeds

shapes = st.lists(st.lists(st.integers(1, 4), min_size=0, max_size=3), min_size=1, max_size=4)


@given(seed=seeds, shp=shapes, as_tensor=st.booleans())
def test_flatten_unflatten_round_trip(seed, shp, as_tensor):
    g = gen(seed)
    items = [torch.randn(tuple(s), generator=g) for s in shp]
    p = items[0] if as_tensor else tuple(items)
    v = flatten(p)
    assert v.numel() == sum(t.numel() for t in (items[:1] if as_tensor else items))
    back = unflatten(v, p)
    if as_tensor:
        assert torch.equal(back, p)
    else:
        assert isinstance(back, tuple) and all(torch.equal(a, b) for a, b in zip(back, p))
    assert torch.equal(flatten(back), v)
    with pytest.raises(ValueError, match="entries"):
        unflatten(torch.cat([v, v[:1]]), p)


def test_flatten_is_row_major_in_tensor_order():
    p = (torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([5.0]), torch.tensor(6.0))
    assert flatten(p).tolist() == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    a, b, c = unflatten(torch.arange(6.0), p)
    assert a.tolist() == [[0.0, 1.0], [2.0, 3.0]] and b.tolist() == [4.0] and c.shape == ()
    with pytest.raises(ValueError, match="vec has 5 entries, template needs 6"):
        unflatten(torch.arange(5.0), p)


def test_as_tuple_and_like_keep_the_container_form():
    a, b = torch.zeros(2), torch.ones(3)
    assert as_tuple(a) == (a,) and as_tuple([a, b]) == (a, b) and as_tuple((a, b)) == (a, b)
    assert like(a, [b]) is b
    out = like([a, b], [b, a])
    assert isinstance(out, tuple) and out[0] is b and out[1] is a


@given(seed=seeds, shp=shapes)
def test_sq_norm_is_the_squared_norm_of_the_flat_vector(seed, shp):
    g = gen(seed)
    p = tuple(torch.randn(tuple(s), generator=g) for s in shp)
    v = flatten(p)
    assert close(sq_norm(p), v @ v, 1e-14)
    assert close(sq_norm(p[0]), (p[0] ** 2).sum(), 1e-14)


def test_params_is_defined_once_and_public():
    """The re-cut made ``ntlib.params`` public; the private ``ntlib._params`` is gone and no module redefines Params."""
    assert importlib.util.find_spec("ntlib._params") is None
    names = ["config", "grads", "entropic", "dynamics", "ensemble", "hessian", "symmetry", "modules"]
    for name in names:
        mod = importlib.import_module(f"ntlib.{name}")
        assert getattr(mod, "Params", P.Params) is P.Params, name
    assert set(P.__all__) == {"Params", "as_tuple", "like", "flatten", "unflatten", "sq_norm"}
    assert ntlib.params is P
