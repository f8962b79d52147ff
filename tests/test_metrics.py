"""nanonet.metrics, nn.predict and nn.evaluate: values against scikit-learn, batch invariance, fit logging."""

import numpy as np
import pytest

import nanonet as nn
from nanonet import metrics
from nanonet.datasets import make_regression


def logits_and_labels(n=60, c=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, c)), rng.integers(0, c, size=n)


# -- values ---------------------------------------------------------------------------
def test_accuracy_by_hand_for_logits_probabilities_and_one_hot_targets():
    logits = np.array([[2.0, 0.0, 1.0], [0.0, 3.0, 1.0], [1.0, 0.0, 2.0], [0.0, 1.0, 0.5]])
    labels = np.array([0, 1, 1, 2])  # rows 0 and 1 right
    acc = metrics.get("accuracy")
    assert acc(logits, labels) == 0.5
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert acc(probabilities, labels) == 0.5
    assert acc(logits, np.eye(3)[labels]) == 0.5
    assert acc(logits, labels.astype(np.uint8)) == 0.5


def test_values_equal_scikit_learn():
    sk = pytest.importorskip("sklearn.metrics", reason="scikit-learn is not installed (the `sklearn` extra)")
    logits, labels = logits_and_labels()
    assert metrics.Accuracy()(logits, labels) == sk.accuracy_score(labels, logits.argmax(1))
    for k in (1, 2, 3):
        assert metrics.TopKAccuracy(k)(logits, labels) == pytest.approx(
            sk.top_k_accuracy_score(labels, logits, k=k, labels=range(4)), abs=1e-15)
    rng = np.random.default_rng(1)
    pred, target = rng.normal(size=(50, 3)), rng.normal(size=(50, 3))
    assert metrics.get("mse")(pred, target) == pytest.approx(sk.mean_squared_error(target, pred), rel=1e-13)
    assert metrics.get("mae")(pred, target) == pytest.approx(sk.mean_absolute_error(target, pred), rel=1e-13)
    assert metrics.get("r2")(pred, target) == pytest.approx(sk.r2_score(target, pred), rel=1e-12)
    assert metrics.get("r2")(pred[:, 0], target[:, 0]) == pytest.approx(sk.r2_score(target[:, 0], pred[:, 0]))
    constant = np.ones((5, 1))
    assert metrics.get("r2")(constant, constant) == sk.r2_score(constant, constant) == 1.0
    assert metrics.get("r2")(constant * 2, constant) == sk.r2_score(constant, constant * 2) == 0.0
    bits = rng.integers(0, 2, size=(40, 2)).astype(float)
    z = rng.normal(size=(40, 2))
    assert metrics.get("binary_accuracy")(z, bits) == sk.accuracy_score(bits.ravel(), (z > 0).ravel())


def test_top_k_with_k_at_least_the_classes_counts_every_row():
    logits, labels = logits_and_labels(c=3)
    assert metrics.TopKAccuracy(k=3)(logits, labels) == 1.0 == metrics.TopKAccuracy(k=9)(logits, labels)


@pytest.mark.parametrize("name, pred, target, error, match", [
    ("accuracy", np.zeros((4, 1)), np.zeros(4, int), ValueError, r"C >= 2 classes, got \(4, 1\).*binary_accuracy"),
    ("accuracy", np.zeros((4, 3)), np.zeros((4, 1), int), ValueError, r"integer class targets of shape \(4,\)"),
    ("accuracy", np.zeros((4, 3)), np.zeros((4, 2)), ValueError, r"one-hot or probability targets of shape \(4, 3\)"),
    ("mse", np.zeros((4, 1)), np.zeros(4), ValueError, r"same shape as pred \(4, 1\), got \(4,\)"),
    ("mae", [1.0], np.zeros(1), TypeError, r"pred to be a numpy.ndarray, got list"),
    ("r2", np.zeros((2, 2, 2)), np.zeros((2, 2, 2)), ValueError, r"R2Score\(\) expected pred of shape \(N,\)"),
])
def test_bad_input_is_a_clear_error_naming_the_metric(name, pred, target, error, match):
    with pytest.raises(error, match=match):
        metrics.get(name)(pred, target)


def test_unknown_names_and_bad_options_are_refused():
    with pytest.raises(ValueError, match=r"unknown metric 'acc'; the built-in metrics are \['accuracy'"):
        metrics.get("acc")
    with pytest.raises(ValueError, match=r"TopKAccuracy expected k to be an int >= 1, got 0"):
        metrics.TopKAccuracy(k=0)
    with pytest.raises(ValueError, match=r"BinaryAccuracy expected a finite threshold, got nan"):
        metrics.BinaryAccuracy(threshold=float("nan"))
    with pytest.raises(TypeError, match=r"expected metrics as a list or dict, got 'accuracy'; write metrics=\["):
        metrics.resolve("fit", "accuracy")
    with pytest.raises(ValueError, match="two metrics are called 'mse'"):
        metrics.resolve("fit", ["mse", metrics.MeanSquaredError()])
    with pytest.raises(ValueError, match="may not be called 'val_x'"):
        metrics.resolve("fit", {"val_x": "mse"})


# -- exact over the data set, whatever the batch size ---------------------------------
def test_built_in_metrics_in_evaluate_do_not_depend_on_the_batch_size():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(103, 3)) + 50.0, rng.normal(size=(103, 2)) * 1e-3 + 1e4  # cancellation-prone r2
    model = nn.Linear(3, 2, rng=0)
    whole = nn.evaluate(model, nn.MSELoss(), x, y, metrics=["r2", "mse", "mae"])
    for batch_size in (1, 7, 50):
        parts = nn.evaluate(model, nn.MSELoss(), x, y, batch_size=batch_size, metrics=["r2", "mse", "mae"])
        for key in whole:
            assert parts[key] == pytest.approx(whole[key], rel=1e-9), (batch_size, key)
    pred = model(x)
    ss_res, ss_tot = ((y - pred) ** 2).sum(0), ((y - y.mean(0)) ** 2).sum(0)
    assert whole["r2"] == pytest.approx(float(np.mean(1 - ss_res / ss_tot)), rel=1e-9)


def test_fit_logs_named_metrics_for_training_and_validation():
    rng = np.random.default_rng(0)
    centers = rng.normal(scale=4.0, size=(3, 5))
    labels = rng.integers(0, 3, size=240)
    x = centers[labels] + rng.normal(size=(240, 5))
    model = nn.Sequential(nn.Linear(5, 16, rng=1), nn.ReLU(), nn.Linear(16, 3, rng=2))
    h = nn.fit(model, nn.CrossEntropyLoss(), nn.optim.Adam(model.parameters(), lr=0.01), x, labels, epochs=8,
               validation_split=0.25, metrics=["accuracy", metrics.TopKAccuracy(k=2)], verbose=0, rng=0)
    assert list(h.history) == ["loss", "accuracy", "top_k_accuracy", "val_loss", "val_accuracy",
                               "val_top_k_accuracy"]
    assert h.history["accuracy"][-1] > h.history["accuracy"][0] and h.history["val_accuracy"][-1] > 0.9
    assert all(a <= b for a, b in zip(h.history["val_accuracy"], h.history["val_top_k_accuracy"]))
    val = nn.evaluate(model, nn.CrossEntropyLoss(), x[180:], labels[180:], metrics=["accuracy"])
    assert val["accuracy"] == h.history["val_accuracy"][-1]


def test_no_metrics_builds_no_tracker(monkeypatch):
    def refuse(*args):
        raise AssertionError("a Tracker was built although no metric was asked for")

    monkeypatch.setattr(metrics, "Tracker", refuse)
    x, y, _, _ = make_regression(n_train=40, n_features=3, rng=0)
    model = nn.Linear(3, 1, rng=0)
    h = nn.fit(model, nn.MSELoss(), nn.optim.SGD(model.parameters(), lr=0.01), x, y, epochs=2,
               validation_split=0.25, verbose=0, rng=0)
    assert list(h.history) == ["loss", "val_loss"]
    assert list(nn.evaluate(model, nn.MSELoss(), x, y)) == ["loss"]


# -- predict --------------------------------------------------------------------------
def test_predict_runs_in_eval_mode_in_batches_and_restores_the_mode():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(23, 4))
    model = nn.Sequential(nn.Linear(4, 8, rng=0), nn.BatchNorm1d(8), nn.Dropout(0.5, rng=0), nn.Linear(8, 2, rng=1))
    model.train()
    model(x)  # move the running statistics away from their start
    expected = nn.predict(model, x)
    assert model.training
    model.eval()
    np.testing.assert_array_equal(expected, model(x))
    assert not model.training and nn.predict(model, x).shape == (23, 2) and not model.training
    model.train()
    np.testing.assert_allclose(nn.predict(model, x, batch_size=5), expected, rtol=1e-14, atol=1e-14)


def test_predict_returns_a_fresh_array_and_handles_several_inputs_and_outputs():
    x = np.ones((4, 3))
    out = nn.predict(nn.Identity(), x)
    assert np.array_equal(out, x) and not np.shares_memory(out, x)
    a, b = nn.Input(3, name="a"), nn.Input(2, name="b")
    first, second = nn.Split([1, 4])(nn.Concat()(a, b))
    net = nn.Graph([a, b], [first, second])
    xa, xb = np.arange(12.0).reshape(4, 3), np.arange(8.0).reshape(4, 2)
    left, right = nn.predict(net, (xa, xb), batch_size=3)
    np.testing.assert_array_equal(left, xa[:, :1])
    np.testing.assert_array_equal(right, np.concatenate([xa[:, 1:], xb], axis=1))


@pytest.mark.parametrize("x, kwargs, error, match", [
    ([[1.0]], {}, TypeError, r"predict expected x to be a numpy.ndarray, got list"),
    (np.ones((0, 3)), {}, ValueError, r"at least one sample"),
    (np.ones((4, 3)), {"batch_size": 0}, ValueError, r"predict expected batch_size to be an int >= 1, got 0"),
    ((np.ones((4, 3)), np.ones((3, 2))), {}, ValueError, r"every input to have 4 samples, got 3 in x\[1\]"),
])
def test_predict_bad_input(x, kwargs, error, match):
    with pytest.raises(error, match=match):
        nn.predict(nn.Linear(3, 1, rng=0), x, **kwargs)
    with pytest.raises(TypeError, match="predict expected model to be a nanonet Module, got function"):
        nn.predict(lambda v: v, np.ones((2, 3)))


def test_early_stopping_maximizes_the_higher_is_better_metrics():
    for name in ("val_accuracy", "val_top_k_accuracy", "val_binary_accuracy", "val_r2"):
        assert nn.EarlyStopping(monitor=name)._monitor.mode == "max", name
    for name in ("val_loss", "val_mse", "val_mae"):
        assert nn.EarlyStopping(monitor=name)._monitor.mode == "min", name
