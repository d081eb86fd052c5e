"""ntlib.grads against closed forms and central differences; the caller's state is left alone."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, strategies as st

from ntlib import grads
from ntlib.params import flatten, unflatten

from helpers import close, examples, gen, rand_spd, randn, seeds, tanh_net


@given(seed=seeds, n=st.integers(1, 6), cond=st.floats(1.0, 100.0))
def test_grad_of_a_quadratic_is_a_t_minus_b(seed, n, cond):
    a, b, t = rand_spd(n, seed, cond), randn(seed + 1, n), randn(seed + 2, n)
    g = grads.grad(lambda x: 0.5 * x @ a @ x - b @ x, t)
    assert close(g, a @ t - b, 1e-13, 1 + cond * float(t.abs().max()) + float(b.abs().max()))


@given(seed=seeds, width=st.integers(1, 4), n=st.integers(1, 6))
def test_value_and_grad_match_central_differences(seed, width, n):
    """Tuple parameters of a tanh network: the gradient equals central differences (h = 1e-6)."""
    p, loss, *_ = tanh_net(gen(seed), width=width, d=2, n=n)
    value, gr = grads.value_and_grad(loss, p)
    assert isinstance(gr, tuple) and float(value) == float(loss(p))
    v, h = flatten(p), 1e-6
    fd = torch.stack([(loss(unflatten(v + h * e, p)) - loss(unflatten(v - h * e, p))) / (2 * h)
                      for e in torch.eye(v.numel())])
    assert torch.allclose(flatten(gr), fd, atol=1e-8 * (1 + float(fd.abs().max())))
    assert torch.equal(flatten(grads.grad(loss, p)), flatten(gr))


def test_grad_leaves_caller_state_alone():
    t = torch.randn(3, requires_grad=True)
    t.grad = torch.ones(3)
    before = t.detach().clone()
    grads.grad(lambda x: (x ** 2).sum(), t)
    assert torch.equal(t.grad, torch.ones(3)) and torch.equal(t.detach(), before)


def test_unused_parameters_get_zero_gradients_and_create_graph_allows_a_second_derivative():
    a, b = torch.tensor([2.0, 3.0]), torch.tensor([5.0])
    ga, gb = grads.grad(lambda p: (p[0] ** 3).sum(), (a, b))
    assert ga.tolist() == [12.0, 27.0] and gb.tolist() == [0.0]
    value, g = grads.value_and_grad(lambda x: (x ** 3).sum(), a, create_graph=True)
    assert value.requires_grad and g.requires_grad
    hess = grads.grad(lambda x: grads.grad(lambda y: (y ** 3).sum(), x, create_graph=True).sum(), a)
    assert hess.tolist() == [12.0, 18.0]  # d/dx sum 3 x^2 = 6 x


@examples(10)
@given(seed=seeds, n=st.integers(1, 8), d=st.integers(1, 4))
def test_per_sample_grads_closed_form_and_mean(seed, n, d):
    """Linear regression: row i is 2 (x_i.w + c - y_i) (x_i, 1); for any loss the rows average to the full gradient."""
    g = gen(seed)
    x, y, w, c = randn(g, n, d), randn(g, n), randn(g, d), randn(g, 1)
    pw, pc = grads.per_sample_grads(lambda p, xi, yi: (xi @ p[0] + p[1][0] - yi) ** 2, (w, c), x, y)
    r = 2 * (x @ w + c - y)
    assert pw.shape == (n, d) and pc.shape == (n, 1)
    assert close(pw, r[:, None] * x, 1e-12) and close(pc[:, 0], r, 1e-12)
    ps = grads.per_sample_grads(lambda w_, xi, yi: torch.sin(xi @ w_ - yi) ** 2, w, x, y)
    full = grads.grad(lambda w_: (torch.sin(x @ w_ - y) ** 2).mean(), w)
    assert ps.shape == (n, d) and close(ps.mean(0), full, 1e-12)


@pytest.mark.parametrize("call,exc,msg", [
    (lambda: grads.grad(lambda x: x * 2, torch.ones(3)), ValueError, r"loss_fn\(params\) must return a scalar"),
    (lambda: grads.grad(lambda x: x.sum(), torch.tensor([1.0, float("nan")])), ValueError, "params contains NaN"),
    (lambda: grads.grad(lambda x: x.sum(), [1.0, 2.0]), TypeError, "params"),
    (lambda: grads.grad(lambda x: x.sum(), ()), TypeError, "non-empty tuple/list"),
    (lambda: grads.grad(3.0, torch.ones(2)), TypeError, "loss_fn must be callable"),
    (lambda: grads.value_and_grad(lambda t: t.sum(), torch.ones(2, dtype=torch.int64)), TypeError,
     "params must have a floating"),
    (lambda: grads.per_sample_grads(None, torch.ones(2), torch.ones(3, 2)), TypeError, "sample_loss must be callable"),
    (lambda: grads.per_sample_grads(lambda w, x: x @ w, torch.ones(2)), ValueError, "at least one data tensor"),
    (lambda: grads.per_sample_grads(lambda w, x: x @ w, torch.ones(2), [1.0, 2.0]), TypeError,
     r"data\[0\] must be a torch.Tensor"),
    (lambda: grads.per_sample_grads(lambda w, x: x @ w, torch.ones(2), torch.tensor(1.0)), TypeError, r"data\[0\]"),
    (lambda: grads.per_sample_grads(lambda w, x, y: (x @ w - y) ** 2, torch.ones(2), torch.ones(5, 2), torch.ones(4)),
     ValueError, r"data\[1\] has 4 samples, data\[0\] has 5"),
    (lambda: grads.per_sample_grads(lambda w, x: x @ w, torch.ones(2), torch.tensor([[1.0, float("inf")]])),
     ValueError, r"data\[0\] contains NaN"),
])
def test_bad_input_names_the_argument(call, exc, msg):
    with pytest.raises(exc, match=msg):
        call()
