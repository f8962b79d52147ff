"""The speed work's aliasing rules: reused buffers never leak, never change results.

Sequential and the layers reuse private buffers between calls; these tests pin
what must still hold: returned arrays are never overwritten by a later call,
the caller's input is never written, backward twice accumulates twice, a
subclass that overrides forward/backward is called through its own method,
and ``Sequential.backward(g, input_grad=False)`` gives the same parameter
gradients.
"""

import copy

import numpy as np
import pytest

import nanonet as nn


def mlp(dtype=np.float64, seed=0):
    return nn.Sequential(nn.Linear(4, 6, rng=seed, dtype=dtype), nn.ReLU(),
                         nn.Linear(6, 5, rng=seed + 1, dtype=dtype), nn.ReLU(),
                         nn.Linear(5, 2, rng=seed + 2, dtype=dtype))


def grads(model):
    return {name: p.grad.copy() for name, p in model.named_parameters()}


class PassThrough(nn.Module):
    """Returns its input itself: the case that would leak a container buffer."""

    def forward(self, x):
        return x

    def backward(self, grad_out):
        return grad_out


@pytest.fixture
def data():
    rng = np.random.default_rng(3)
    return rng.normal(size=(7, 4)), rng.normal(size=(7, 4)), rng.normal(size=(7, 2))


def test_returned_outputs_and_input_grads_are_never_overwritten(data):
    x1, x2, g = data
    model = mlp()
    out1 = model(x1)
    dx1 = model.backward(g)
    kept = out1.copy(), dx1.copy()
    model(x2)
    model.backward(2 * g)
    model(x1)
    model.backward(g)
    np.testing.assert_array_equal(out1, kept[0])
    np.testing.assert_array_equal(dx1, kept[1])


@pytest.mark.parametrize("wrap", [lambda m: nn.Sequential(*m, PassThrough()),
                                  lambda m: nn.Sequential(PassThrough(), *m)])
def test_a_pass_through_child_cannot_leak_a_buffer(data, wrap):
    x1, x2, g = data
    model = wrap(list(mlp()))
    out1, dx1 = model(x1), model.backward(g)
    kept = out1.copy(), dx1.copy()
    model(x2)
    model.backward(-g)
    np.testing.assert_array_equal(out1, kept[0])
    np.testing.assert_array_equal(dx1, kept[1])


def test_layers_alone_return_fresh_arrays(data):
    x1, x2, _ = data
    for layer in (nn.Linear(4, 4, rng=0), nn.ReLU()):
        a = layer(x1)
        ga = layer.backward(np.ones_like(a))
        kept = a.copy(), ga.copy()
        b = layer(x2)
        layer.backward(np.full_like(b, 3.0))
        np.testing.assert_array_equal(a, kept[0])
        np.testing.assert_array_equal(ga, kept[1])


def test_input_is_never_written_and_backward_twice_doubles(data):
    x, _, g = data
    model = mlp()
    x_before, g_before = x.copy(), g.copy()
    model(x)
    model.zero_grad()
    model.backward(g)
    once = grads(model)
    model.backward(g)
    for name, value in grads(model).items():
        np.testing.assert_allclose(value, 2 * once[name], rtol=1e-15, atol=0)
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(g, g_before)


def test_skipping_the_input_gradient_keeps_parameter_gradients(data):
    x, _, g = data
    a, b = mlp(), mlp()
    a(x)
    b(x)
    dx = a.backward(g)
    assert dx.shape == x.shape
    assert b.backward(g, input_grad=False) is None
    for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(pa.grad, pb.grad, err_msg=name)


def test_results_match_the_plain_expressions(data):
    x, _, g = data
    model = mlp()
    model.zero_grad()
    out = model(x)
    dx = model.backward(g)
    (l0, _, l2, _, l4) = list(model)
    z1 = x @ l0.weight.value + l0.bias.value
    z2 = np.maximum(z1, 0) @ l2.weight.value + l2.bias.value
    np.testing.assert_allclose(out, np.maximum(z2, 0) @ l4.weight.value + l4.bias.value, rtol=1e-13)
    g2 = (g @ l4.weight.value.T) * (z2 > 0)
    np.testing.assert_allclose(l4.bias.grad, g.sum(axis=0), rtol=1e-13)
    np.testing.assert_allclose(l2.weight.grad, np.maximum(z1, 0).T @ g2, rtol=1e-13)
    g1 = (g2 @ l2.weight.value.T) * (z1 > 0)
    np.testing.assert_allclose(l0.bias.grad, g1.sum(axis=0), rtol=1e-13)
    np.testing.assert_allclose(dx, g1 @ l0.weight.value.T, rtol=1e-13)


def test_a_subclass_override_is_called_inside_sequential(data):
    x, _, g = data
    calls = []

    class Traced(nn.Linear):
        def backward(self, grad_out):
            calls.append(grad_out.shape)
            return super().backward(grad_out)

    model = nn.Sequential(nn.Linear(4, 3, rng=0), nn.ReLU(), Traced(3, 2, rng=1))
    model(x)
    model.backward(g)
    assert calls == [(7, 2)]


@pytest.mark.parametrize("change", ["deepcopy", "to32", "new_grad"])
def test_gradients_stay_right_after_the_grad_arrays_are_replaced(data, change):
    x, _, g = data
    layer = nn.Linear(4, 2, rng=0)
    if change == "deepcopy":
        layer = copy.deepcopy(layer)
    elif change == "to32":
        layer.to(np.float32).to(np.float64)
    else:
        layer.bias.grad = np.zeros(2)
    for _ in range(2):
        layer(x)
        layer.backward(g)
    np.testing.assert_allclose(layer.weight.grad, 2 * x.T @ g, rtol=1e-13)
    np.testing.assert_allclose(layer.bias.grad, 2 * g.sum(axis=0), rtol=1e-13)
    layer.zero_grad()
    assert not layer.weight.grad.any() and not layer.bias.grad.any()


def test_mse_cache_survives_a_call_that_raises():
    loss = nn.MSELoss()
    pred, target = np.array([[1.0], [3.0]]), np.array([[0.0], [1.0]])
    loss(pred, target)
    before = loss.backward()
    with pytest.raises(FloatingPointError, match="non-finite pred"):
        loss(np.array([[np.nan], [1.0]]), target)
    np.testing.assert_array_equal(loss.backward(), before)


def test_float32_model_trains_in_float32(data):
    x, _, g = data
    model = mlp(np.float32)
    out = model(x.astype(np.float32))
    assert out.dtype == np.float32
    assert model.backward(g.astype(np.float32)).dtype == np.float32
    assert all(p.grad.dtype == np.float32 for p in model.parameters())


@pytest.mark.parametrize("layers", [
    lambda: [nn.ReLU(), nn.Linear(4, 5, rng=0, bias=False), nn.ReLU(), nn.ReLU(), nn.Linear(5, 2, rng=1)],
    lambda: [nn.Linear(4, 3, rng=0), nn.ReLU(), nn.Linear(3, 2, rng=1, bias=False), nn.ReLU()],
])
def test_other_chains_pass_the_gradient_check(data, layers):
    x, _, _ = data
    model = nn.Sequential(*layers())
    model.backward(np.ones_like(model(x)))  # buffers exist; the checker's copy reuses them for every probe
    report = nn.check_gradients(model, x, rng=0, mode="full")
    assert report.ok, str(report)
    with nn.detect_anomaly():
        out = model(x)
        model.backward(np.ones_like(out), input_grad=False)


def test_a_child_patched_on_the_instance_is_called_through_its_own_methods():
    model = nn.Sequential(nn.Linear(3, 4, rng=0), nn.ReLU(), nn.Linear(4, 2, rng=1))
    x = np.random.default_rng(2).normal(size=(5, 3))
    model(x)  # the plan is built and cached with ReLU on the buffered path
    calls = []
    relu = model[1]
    original = relu.forward

    def traced(h):
        calls.append(h.shape)
        return original(h)

    relu.forward = traced
    model(x)
    assert calls == [(5, 4)]
