"""Every built-in dense layer and loss through the conformance suite, table-driven.

Adding a layer or a loss to ``layer_table.py`` is all it takes to check it.
"""

import warnings

import numpy as np
import pytest

import nanonet as nn
from layer_table import CORE
from layer_table import TABLE as TABLE_ALL
from nanonet.testing import parametrize_with_checks

TABLE = CORE  # the dense layers and the losses; see layer_table.py


@parametrize_with_checks(TABLE)
def test_builtin_layers_pass_the_suite(layer, check):
    check(layer)


ACTIVATIONS = [nn.ReLU(), nn.LeakyReLU(), nn.Tanh(), nn.Sigmoid(), nn.GELU(), nn.Softplus(), nn.ELU(),
               nn.ELU(0.3), nn.Identity()]


@pytest.mark.parametrize("layer", ACTIVATIONS, ids=repr)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_activations_are_stable_at_extreme_inputs(layer, dtype):
    x = np.array([[-1000.0, -50.0, -1e-300, 0.0, 1e-300, 50.0, 1000.0]], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = layer.forward(x)
        dx = layer.backward(np.ones_like(y))
    assert y.dtype == dtype and dx.dtype == dtype
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(dx))
    report = nn.check_gradients(layer, x.astype(np.float64), rng=0, mode="full")
    assert report.ok, report


@pytest.mark.parametrize("loss, target", [
    (nn.BCEWithLogitsLoss(), np.array([[1.0, 0.0, 1.0, 0.0]])),
    (nn.CrossEntropyLoss(), np.array([3])),
    (nn.L1Loss(), np.zeros((1, 4))),
    (nn.HuberLoss(), np.zeros((1, 4))),
], ids=repr)
def test_losses_are_stable_for_huge_logits(loss, target):
    pred = np.array([[-1000.0, 1000.0, 1000.0, -1000.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = loss(pred, target)
        grad = loss.backward()
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    report = nn.check_gradients(nn.Identity(), pred, target, loss_fn=loss, rng=0, mode="full", eps=1e-4)
    assert report.ok, report


def test_bce_and_cross_entropy_values_at_huge_logits():
    assert nn.BCEWithLogitsLoss()(np.array([[1000.0, -1000.0]]), np.array([[1.0, 0.0]])) == 0.0
    assert nn.BCEWithLogitsLoss()(np.array([[-1000.0]]), np.array([[1.0]])) == 1000.0
    ce = nn.CrossEntropyLoss()
    assert ce(np.array([[0.0, 1000.0]]), np.array([0])) == pytest.approx(1000.0)
    np.testing.assert_allclose(ce.backward(), [[-1.0, 1.0]])


def test_batchnorm_train_and_eval():
    gen = np.random.default_rng(0)
    bn = nn.BatchNorm1d(3, momentum=0.5)
    x = gen.normal(loc=2.0, scale=3.0, size=(10, 3))
    y = bn(x)
    np.testing.assert_allclose(y.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=0), 1, rtol=1e-4)
    np.testing.assert_allclose(bn.running_mean.value, 0.5 * x.mean(axis=0))
    np.testing.assert_allclose(bn.running_var.value, 0.5 + 0.5 * x.var(axis=0, ddof=1))
    state = bn.state_dict()
    assert set(state) == {"weight", "bias", "running_mean", "running_var"}
    bn.eval()
    y_eval = bn(x)
    expected = (x - bn.running_mean.value) / np.sqrt(bn.running_var.value + bn.eps)
    np.testing.assert_allclose(y_eval, expected)
    np.testing.assert_array_equal(bn.state_dict()["running_mean"], state["running_mean"])
    assert bn.batch_independent and not bn.train().batch_independent
    with pytest.raises(ValueError, match=r"BatchNorm1d\(3.*at least 2 rows"):
        bn(x[:1])
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 3\), got \(10, 4\)"):
        bn(np.ones((10, 4)))


def test_batchnorm_buffers_follow_to_and_load_state_dict():
    bn = nn.BatchNorm1d(2)
    bn(np.array([[1.0, 2.0], [3.0, 5.0]]))
    other = nn.BatchNorm1d(2)
    other.load_state_dict(bn.state_dict())
    np.testing.assert_array_equal(other.running_var.value, bn.running_var.value)
    bn.to(np.float32)
    assert bn.running_mean.value.dtype == np.float32
    assert bn(np.ones((2, 2), dtype=np.float32)).dtype == np.float32


def test_dropout_inverted_and_identity_in_eval():
    drop = nn.Dropout(0.25, rng=0)
    x = np.ones((400, 50))
    y = drop(x)
    kept = y != 0
    assert abs(kept.mean() - 0.75) < 0.01
    np.testing.assert_allclose(y[kept], 1 / 0.75)
    np.testing.assert_array_equal(drop.backward(np.ones_like(y)), y)
    assert abs(y.mean() - 1) < 0.02
    np.testing.assert_array_equal(drop.eval()(x), x)
    a, b = nn.Dropout(0.5, rng=7)(x), nn.Dropout(0.5, rng=7)(x)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match=r"Dropout expected p in \[0, 1\)"):
        nn.Dropout(1.0)


def test_dropout_frozen_reuses_the_mask_also_for_stacked_copies():
    drop = nn.Dropout(0.5, rng=0)
    x = np.random.default_rng(1).normal(size=(6, 4))
    first = drop(x)
    drop.frozen = True
    np.testing.assert_array_equal(drop(x), first)
    np.testing.assert_array_equal(drop(np.concatenate([x, x])), np.concatenate([first, first]))
    drop.frozen = False
    assert not np.array_equal(drop(x), first)


def test_layernorm_normalizes_each_row():
    ln = nn.LayerNorm(4)
    y = ln(np.random.default_rng(0).normal(size=(3, 4)) * 10 + 5)
    np.testing.assert_allclose(y.mean(axis=1), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=1), 1, rtol=1e-5)
    with pytest.raises(ValueError, match=r"LayerNorm\(4, eps=1e-05\) expected input of shape \(N, 4\)"):
        ln(np.ones((3, 5)))


def test_flatten_and_reprs():
    f = nn.Flatten()
    x = np.arange(24.0).reshape(2, 3, 4)
    np.testing.assert_array_equal(f(x), x.reshape(2, 12))
    assert f.backward(np.ones((2, 12))).shape == (2, 3, 4)
    assert repr(nn.LeakyReLU(0.2)) == "LeakyReLU(negative_slope=0.2)"
    assert repr(nn.HuberLoss(delta=2)) == "HuberLoss(reduction='mean', delta=2)"
    assert repr(nn.Dropout(0.1)) == "Dropout(p=0.1)"


def test_cross_entropy_target_errors():
    ce = nn.CrossEntropyLoss()
    logits = np.zeros((3, 4))
    with pytest.raises(ValueError, match=r"class indices in \[0, 4\)"):
        ce(logits, np.array([0, 4, 1]))
    with pytest.raises(ValueError, match=r"integer class targets of shape \(3,\)"):
        ce(logits, np.array([[0], [1], [2]]))
    with pytest.raises(TypeError, match="dtype float64, got float32"):
        ce(logits, np.zeros((3, 4), dtype=np.float32))
    probs = np.full((3, 4), 0.25)
    assert ce(logits, probs) == pytest.approx(np.log(4))
    assert ce(logits, np.array([0, 1, 2])) == pytest.approx(np.log(4))


@pytest.mark.parametrize("layer", [nn.LayerNorm(4), nn.BatchNorm1d(4), nn.BatchNorm1d(4).eval(), nn.Flatten(),
                                   nn.Dropout(0.5, rng=0)], ids=repr)
def test_other_layers_are_stable_at_extreme_inputs(layer):
    x = np.array([[-1000.0, 1000.0, 0.0, 1e-300], [1000.0, 1000.0, -1000.0, 0.0], [3.0, -2.0, 1.0, 0.5]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = layer.forward(x)
        dx = layer.backward(np.ones_like(y))
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(dx))


def _batch_axis(layer):
    """Where a layer's batch is: axis 1 for the sequence layers in their default (time-major) layout."""
    return 1 if getattr(layer, "batch_first", True) is False else 0


@pytest.mark.parametrize("spec", [spec for spec in TABLE_ALL if not spec.is_loss], ids=lambda spec: spec.label)
def test_every_layer_takes_an_empty_batch_in_eval_mode(spec):
    """A batch of 0 rows (a data-parallel rank's empty share, a filtered batch) passes through, as in torch."""
    layer = spec.make().eval()
    axis = _batch_axis(layer)
    full = np.asarray(spec.inputs())
    x = np.delete(full, np.s_[:], axis=axis)  # the same shape with 0 on the batch axis, and the same dtype
    want = layer.forward(full)
    y = layer.forward(x)
    assert y.shape[axis] == 0 and np.delete(want, np.s_[:], axis=axis).shape == y.shape
    dx = layer.backward(np.zeros_like(y))
    assert (dx is None) if x.dtype.kind in "iu" else (dx.shape == x.shape)
