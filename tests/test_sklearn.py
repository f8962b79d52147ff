"""nanonet.sklearn: scikit-learn's estimator checks; the estimators in Pipeline, GridSearchCV, cross_val_score."""

import pickle

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn", reason="scikit-learn is not installed (nanonet's `sklearn` extra)")

from sklearn.base import clone  # noqa: E402
from sklearn.datasets import make_blobs, make_regression  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import nanonet as nn  # noqa: E402
from nanonet.sklearn import NanonetClassifier, NanonetRegressor  # noqa: E402

# The configuration scikit-learn's checks run on: small and quick, but trained enough for their score
# thresholds (accuracy > 0.83 on blobs, R² > 0.5). No check is excluded: the estimators pass them all.
# (check_array_api_input is skipped by scikit-learn itself unless SCIPY_ARRAY_API=1, and the pandas
# checks need pandas, which the `test` extra installs.)
CHECKED = [NanonetClassifier(hidden_layer_sizes=(16,), lr=0.02, epochs=20, random_state=0),
           NanonetRegressor(hidden_layer_sizes=(16,), lr=0.02, epochs=20, random_state=0)]


@parametrize_with_checks(CHECKED)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def blobs(n=240, seed=0):
    x, y = make_blobs(n_samples=n, centers=3, n_features=4, random_state=seed)
    return x, np.array(["cat", "dog", "emu"])[y]


def test_pipeline_with_a_scaler_and_string_labels():
    x, y = blobs()
    pipe = make_pipeline(StandardScaler(), NanonetClassifier(hidden_layer_sizes=(16,), lr=0.01, epochs=15,
                                                             random_state=0))
    pipe.fit(x[:180], y[:180])
    assert pipe.score(x[180:], y[180:]) > 0.95
    clf = pipe[-1]
    assert clf.classes_.tolist() == ["cat", "dog", "emu"] and clf.n_features_in_ == 4
    proba = pipe.predict_proba(x[180:])
    assert proba.shape == (60, 3) and np.allclose(proba.sum(axis=1), 1.0)
    assert (clf.classes_[proba.argmax(axis=1)] == pipe.predict(x[180:])).all()
    assert len(clf.loss_curve_) == clf.n_iter_ == 15 and clf.loss_ == clf.loss_curve_[-1]
    assert isinstance(clf.model_, nn.Sequential) and isinstance(clf.history_, nn.History)


def test_grid_search_picks_a_setting_and_refits():
    x, y = make_regression(n_samples=120, n_features=3, noise=1.0, random_state=0)
    y = (y - y.mean()) / y.std()
    grid = GridSearchCV(NanonetRegressor(epochs=10, random_state=0),
                        {"lr": [1e-4, 3e-2], "hidden_layer_sizes": [(8,), (16,)]}, cv=3)
    grid.fit(x, y)
    assert grid.best_params_["lr"] == 3e-2      # 10 epochs at 1e-4 barely move
    assert grid.best_score_ > 0.8 and grid.best_estimator_.score(x, y) > 0.8
    assert len(grid.cv_results_["params"]) == 4


def test_cross_val_score():
    x, y = blobs(n=150, seed=1)
    pipe = make_pipeline(StandardScaler(), NanonetClassifier(hidden_layer_sizes=(8,), lr=0.02, epochs=10,
                                                             random_state=0))
    scores = cross_val_score(pipe, x, y, cv=3)
    assert scores.shape == (3,) and scores.min() > 0.9


def test_partial_fit_runs_one_epoch_per_call_and_keeps_the_network():
    x, y = blobs()
    clf = NanonetClassifier(hidden_layer_sizes=(8,), lr=0.01, random_state=0)
    with pytest.raises(ValueError, match="partial_fit needs classes=... .every label. on its first call"):
        clf.partial_fit(x, y)
    clf.partial_fit(x[:100], y[:100], classes=["cat", "dog", "emu"])
    model = clf.model_
    for _ in range(4):
        clf.partial_fit(x, y)
    assert clf.model_ is model and clf.n_iter_ == 5 and len(clf.loss_curve_) == 5
    assert clf.loss_curve_[-1] < clf.loss_curve_[1]
    with pytest.raises(ValueError, match=r"X has 3 features, but NanonetClassifier is expecting 4 features"):
        clf.partial_fit(x[:, :3], y)
    with pytest.raises(ValueError, match=r"labels \['yak'\] that are not in classes_"):
        clf.partial_fit(x[:2], np.array(["yak", "cat"]))
    reg = NanonetRegressor(hidden_layer_sizes=(8,), lr=0.01, random_state=0)
    reg.partial_fit(x, np.arange(len(x), dtype=float) / len(x))
    assert reg.n_iter_ == 1 and reg.predict(x).shape == (len(x),)


def test_early_stopping_holds_out_a_fraction_and_restores_the_best_weights():
    x, y = make_regression(n_samples=200, n_features=5, noise=30.0, random_state=0)
    y = (y - y.mean()) / y.std()
    reg = NanonetRegressor(hidden_layer_sizes=(64, 64), lr=0.05, epochs=300, early_stopping=True, patience=3,
                           validation_fraction=0.2, random_state=0).fit(x, y)
    val = reg.history_.history["val_loss"]
    assert reg.n_iter_ < 300 and len(val) == reg.n_iter_
    stop = [cb for cb in [reg.history_] if cb.stopped_epoch is not None]
    assert stop and reg.history_.stopped_epoch == reg.n_iter_
    with pytest.raises(ValueError, match="leaves none for validation or training with n_samples = 3"):
        NanonetRegressor(early_stopping=True, validation_fraction=0.1).fit(x[:3], y[:3])


def test_a_module_factory_a_loss_and_optimizer_params_are_used_and_never_changed():
    built = []

    def factory(n_features, n_outputs, rng):
        built.append((n_features, n_outputs))
        return nn.Sequential(nn.Linear(n_features, 12, rng=rng), nn.Tanh(), nn.Linear(12, n_outputs, rng=rng))

    loss = nn.CrossEntropyLoss(label_smoothing=0.1)
    x, y = blobs(n=90)
    clf = NanonetClassifier(module=factory, loss=loss, optimizer="sgd", optimizer_params={"momentum": 0.9},
                            lr=0.05, epochs=5, random_state=0).fit(x, y)
    assert built == [(4, 3)] and isinstance(clf.model_[1], nn.Tanh)
    assert clf.loss_fn_ is not loss and clf.loss_fn_.label_smoothing == 0.1 and loss._cache is None
    assert clf.optimizer_.param_groups[0]["momentum"] == 0.9
    params = clf.get_params()
    assert params["loss"] is loss and params["module"] is factory
    assert clone(clf).set_params(lr=0.5).get_params()["lr"] == 0.5


def test_same_random_state_gives_identical_fits_and_pickling_keeps_predictions():
    x, y = blobs(n=90)
    a = NanonetClassifier(hidden_layer_sizes=(8,), epochs=3, random_state=7).fit(x, y)
    b = NanonetClassifier(hidden_layer_sizes=(8,), epochs=3, random_state=7).fit(x, y)
    np.testing.assert_array_equal(a.predict_proba(x), b.predict_proba(x))
    restored = pickle.loads(pickle.dumps(a))
    np.testing.assert_array_equal(restored.predict_proba(x), a.predict_proba(x))
    restored.partial_fit(x, y)  # the unpickled network trains on
    assert restored.n_iter_ == 4


def test_multi_output_regression():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(150, 3))
    y = np.column_stack([x[:, 0] + x[:, 1], x[:, 2] - x[:, 0]])
    reg = NanonetRegressor(hidden_layer_sizes=(16,), lr=0.02, epochs=30, random_state=0).fit(x, y)
    assert reg.n_outputs_ == 2 and reg.predict(x).shape == (150, 2) and reg.score(x, y) > 0.9


@pytest.mark.parametrize("params, error, match", [
    (dict(lr=0.0), ValueError, r"NanonetClassifier expected lr > 0, got 0.0"),
    (dict(lr=float("nan")), ValueError, r"finite lr"),
    (dict(epochs=0), ValueError, r"epochs to be an int >= 1"),
    (dict(batch_size=2.5), TypeError, r"batch_size to be an int"),
    (dict(optimizer="lbfgs"), ValueError, r"optimizer in \['adam', 'adamw', 'rmsprop', 'sgd'\]"),
    (dict(hidden_layer_sizes=(8, 0)), ValueError, r"hidden_layer_sizes as a tuple of positive ints"),
    (dict(activation="swish"), ValueError, r"activation in \['gelu', 'relu', 'sigmoid', 'tanh'\]"),
    (dict(loss="mse"), TypeError, r"loss to be None or a nanonet Loss"),
    (dict(module=nn.Linear(4, 3)), TypeError, r"module to be None or a factory"),
    (dict(module=lambda n, k, rng: "net"), TypeError, r"module\(...\) must return a nanonet Module, got str"),
    (dict(validation_fraction=1.0), ValueError, r"validation_fraction in \(0, 1\)"),
    (dict(random_state="seed"), ValueError, r"random_state must be None, an int"),
])
def test_bad_parameters_are_clear_errors_at_fit(params, error, match):
    x, y = blobs(n=30)
    clf = NanonetClassifier(**params)  # scikit-learn's rule: __init__ and set_params never validate
    with pytest.raises(error, match=match):
        clf.fit(x, y)
    assert not hasattr(clf, "model_") or "module" in params
