"""Linear, ReLU and MSELoss against their formulas (and PyTorch where installed)."""

import numpy as np
import pytest

import nanonet as nn


def test_linear_forward_backward_formulas():
    gen = np.random.default_rng(0)
    layer = nn.Linear(4, 3, rng=1)
    x, g = gen.normal(size=(5, 4)), gen.normal(size=(5, 3))
    w, b = layer.weight.value, gen.normal(size=3)
    layer.bias.value[:] = b
    np.testing.assert_allclose(layer(x), x @ w + b)
    dx = layer.backward(g)
    np.testing.assert_allclose(dx, g @ w.T)
    np.testing.assert_allclose(layer.weight.grad, x.T @ g)
    np.testing.assert_allclose(layer.bias.grad, g.sum(axis=0))


def test_linear_shapes_and_he_init_scale():
    layer = nn.Linear(400, 300, rng=0)
    assert layer.weight.shape == (400, 300) and layer.bias.shape == (300,)
    assert not layer.bias.value.any()
    assert abs(layer.weight.value.std() - np.sqrt(2 / 400)) < 0.002
    glorot = nn.Linear(400, 300, rng=0, init="glorot")
    assert abs(glorot.weight.value.std() - np.sqrt(2 / 700)) < 0.002
    assert nn.Linear(3, 2, bias=False, rng=0).bias is None


def test_linear_float32_stays_float32():
    layer = nn.Linear(3, 2, rng=0, dtype=np.float32)
    out = layer(np.ones((4, 3), dtype=np.float32))
    assert out.dtype == np.float32
    assert layer.backward(np.ones((4, 2), dtype=np.float32)).dtype == np.float32
    assert layer.weight.grad.dtype == np.float32


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_linear_rejects_bad_sizes(bad):
    with pytest.raises(ValueError if isinstance(bad, int) and not isinstance(bad, bool) else TypeError,
                       match="Linear expected in_features to be an int"):
        nn.Linear(bad, 3)


def test_relu_value_and_gradient_at_zero():
    relu = nn.ReLU()
    x = np.array([[-1.0, 0.0, 2.0]])
    np.testing.assert_array_equal(relu(x), [[0.0, 0.0, 2.0]])
    np.testing.assert_array_equal(relu.backward(np.ones((1, 3))), [[0.0, 0.0, 1.0]])


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_mse_formula(reduction):
    gen = np.random.default_rng(0)
    p, t = gen.normal(size=(6, 2)), gen.normal(size=(6, 2))
    loss = nn.MSELoss(reduction=reduction)
    value = loss(p, t)
    assert isinstance(value, float)
    expected = ((p - t) ** 2).mean() if reduction == "mean" else ((p - t) ** 2).sum()
    assert value == pytest.approx(expected, rel=1e-14)
    scale = 2 / p.size if reduction == "mean" else 2
    np.testing.assert_allclose(loss.backward(), scale * (p - t))
    np.testing.assert_allclose(loss.backward(3.0), 3 * scale * (p - t))


def test_mse_mean_is_twice_the_seeds_half_mse():
    gen = np.random.default_rng(0)
    p, t = gen.normal(size=(500, 1)), gen.normal(size=(500, 1))
    seed_j = np.sum((p - t) ** 2) / (2 * p.shape[0])
    assert nn.MSELoss()(p, t) == pytest.approx(2 * seed_j)


def test_mse_rejects_bad_reduction():
    with pytest.raises(ValueError, match="reduction"):
        nn.MSELoss(reduction="avg")


def test_against_torch_in_float64():
    torch = pytest.importorskip("torch")
    gen = np.random.default_rng(0)
    model = nn.Sequential(nn.Linear(5, 7, rng=1), nn.ReLU(), nn.Linear(7, 2, rng=2))
    x, y = gen.normal(size=(9, 5)), gen.normal(size=(9, 2))
    tl1, tl2 = torch.nn.Linear(5, 7).double(), torch.nn.Linear(7, 2).double()
    with torch.no_grad():
        for tl, ours in ((tl1, model[0]), (tl2, model[2])):
            tl.weight.copy_(torch.from_numpy(ours.weight.value.T))
            tl.bias.copy_(torch.from_numpy(ours.bias.value))
    tx = torch.from_numpy(x).requires_grad_(True)
    tloss = torch.nn.MSELoss()(tl2(torch.relu(tl1(tx))), torch.from_numpy(y))
    tloss.backward()
    loss_fn = nn.MSELoss()
    loss = loss_fn(model(x), y)
    dx = model.backward(loss_fn.backward())
    assert loss == pytest.approx(tloss.item(), rel=1e-12)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(model[0].weight.grad, tl1.weight.grad.numpy().T, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(model[2].bias.grad, tl2.bias.grad.numpy(), rtol=1e-10, atol=1e-14)
