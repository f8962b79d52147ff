"""Property-based: analytic Jacobians match finite differences, and the chain rule holds."""

import numpy as np
from hypothesis import assume, given
from hypothesis import strategies as st

import nanonet as nn
from nanonet.testing import strategies as nst


@given(nst.linear_cases(), nst.SEEDS)
def test_linear_jacobian(case, data_seed):
    fan_in, fan_out, batch, bias, seed = case
    layer = nn.Linear(fan_in, fan_out, bias=bias, rng=seed)
    x = np.random.default_rng(data_seed).normal(size=(batch, fan_in))
    report = nn.check_gradients(layer, x, rng=seed, mode="full")
    assert report.ok, report
    assert [r.name for r in report.rows] == ["input", "weight"] + (["bias"] if bias else [])


@given(nst.BATCH, nst.FEATURES, nst.SEEDS, st.data())
def test_relu_jacobian_away_from_zero(batch, features, seed, data):
    x = data.draw(nst.arrays((batch, features), away_from_zero=1e-3))
    report = nn.check_gradients(nn.ReLU(), x, rng=seed, mode="full")
    assert report.ok, report
    analytic = nn.analytic_jacobian(nn.ReLU(), x)
    np.testing.assert_allclose(analytic, np.diag((x > 0).reshape(-1).astype(float)))


@given(nst.BATCH, nst.FEATURES, st.sampled_from(["mean", "sum"]), st.data())
def test_mse_gradient(batch, features, reduction, data):
    pred = data.draw(nst.arrays((batch, features)))
    target = data.draw(nst.arrays((batch, features)))
    loss = nn.MSELoss(reduction)
    loss(pred, target)
    analytic = loss.backward()
    numeric = nn.numerical_jacobian(lambda p: nn.MSELoss(reduction).forward(p, target), pred)
    np.testing.assert_allclose(analytic.reshape(-1), numeric.reshape(-1), rtol=1e-6, atol=1e-6)


def _mlp(widths, seed):
    layers = []
    for i, (a, b) in enumerate(zip(widths, widths[1:])):
        layers.append(nn.Linear(a, b, rng=seed + i))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _away_from_kinks(model, x, margin=1e-4):
    """True when no ReLU input lies within ``margin`` of 0."""
    h = x
    for layer in model:
        if isinstance(layer, nn.ReLU) and np.abs(h).min() < margin:
            return False
        h = layer.forward(h)
    return True


@given(nst.mlp_widths(), nst.BATCH, nst.SEEDS, st.data())
def test_sequential_with_loss(widths, batch, seed, data):
    model = _mlp(widths, seed % 1000)
    x = data.draw(nst.arrays((batch, widths[0])))
    y = data.draw(nst.arrays((batch, widths[-1])))
    assume(_away_from_kinks(model, x))
    report = nn.check_gradients(model, x, y, loss_fn=nn.MSELoss(), rng=seed, mode="full")
    assert report.ok, report


@given(nst.mlp_widths(min_layers=2), nst.BATCH, nst.SEEDS, st.data())
def test_sequential_jacobian_is_product_of_children(widths, batch, seed, data):
    model = _mlp(widths, seed % 1000)
    x = data.draw(nst.arrays((batch, widths[0])))
    assume(_away_from_kinks(model, x))
    whole = nn.analytic_jacobian(model, x)
    product = np.eye(x.size)
    h = x
    for layer in model:
        product = nn.analytic_jacobian(layer, h) @ product
        h = layer.forward(h)
    np.testing.assert_allclose(whole, product, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(whole, nn.numerical_jacobian(model.forward, x), rtol=1e-5, atol=1e-7)
