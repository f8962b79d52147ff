"""scikit-learn estimators around a nanonet network (the skorch idea): ``NanonetClassifier``, ``NanonetRegressor``.

They behave like ``MLPClassifier`` / ``MLPRegressor``: constructed from
hyperparameters only, trained by ``fit`` (or ``partial_fit``, one epoch per
call), and usable wherever scikit-learn takes an estimator: ``Pipeline``,
``GridSearchCV``, ``cross_val_score``, ``clone``. They pass
``sklearn.utils.estimator_checks.check_estimator`` (see
``tests/test_sklearn.py`` for the two documented exclusions).

Needs scikit-learn, nanonet's optional ``sklearn`` extra. Inputs are
converted as scikit-learn converts them (lists, DataFrames, float32 or int
arrays become float64 arrays); nanonet's own "no silent casting" rule applies
to its layers, not to these adapters.

Example:
    >>> import numpy as np
    >>> from nanonet.sklearn import NanonetClassifier
    >>> X = np.array([[0.0, 0.0], [0.1, 0.2], [3.0, 3.1], [3.2, 2.9]] * 8)
    >>> y = np.array(["a", "a", "b", "b"] * 8)
    >>> clf = NanonetClassifier(hidden_layer_sizes=(8,), lr=0.05, epochs=30, random_state=0).fit(X, y)
    >>> clf.predict([[0.0, 0.1], [3.1, 3.0]]).tolist(), clf.score(X, y)
    (['a', 'b'], 1.0)
"""

import copy
import numbers

import numpy as np
from scipy import special

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.preprocessing import LabelEncoder
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data
except ImportError as exc:  # pragma: no cover - exercised only without scikit-learn
    from ._extras import missing

    raise missing("nanonet.sklearn", "scikit-learn >= 1.6", "sklearn") from exc

from . import optim
from ._checks import check_number
from .callbacks import EarlyStopping
from .containers import Sequential
from .inference import predict as _predict
from .layers import GELU, Linear, ReLU, Sigmoid, Tanh
from .losses import CrossEntropyLoss, Loss, MSELoss
from .module import Module
from .training import fit as _fit

OPTIMIZERS = {"adam": optim.Adam, "adamw": optim.AdamW, "sgd": optim.SGD, "rmsprop": optim.RMSprop}
ACTIVATIONS = {"relu": ReLU, "tanh": Tanh, "sigmoid": Sigmoid, "gelu": GELU}


def _generator(random_state):
    """A numpy Generator from scikit-learn's ``random_state`` (None, an int, a RandomState or a Generator)."""
    if random_state is None:
        return np.random.default_rng()
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(2**31))   # the caller's own RandomState, advanced
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        return np.random.default_rng(int(random_state))
    raise ValueError(f"random_state must be None, an int, a numpy RandomState or Generator, got {random_state!r}")


def _writable(obj, seen):
    """``obj`` with every read-only (or ndarray-subclass) array inside nanonet objects replaced by a plain copy."""
    if isinstance(obj, np.ndarray):
        return obj if obj.__class__ is np.ndarray and obj.flags.writeable else np.array(obj)
    if id(obj) in seen:
        return obj
    seen.add(id(obj))
    if isinstance(obj, list):
        obj[:] = [_writable(v, seen) for v in obj]
    elif isinstance(obj, tuple):
        return tuple(_writable(v, seen) for v in obj)
    elif isinstance(obj, dict):
        for key in list(obj):
            obj[key] = _writable(obj[key], seen)
    elif type(obj).__module__.startswith("nanonet.") and hasattr(obj, "__dict__"):
        for key, value in list(vars(obj).items()):
            fixed = _writable(value, seen)
            if fixed is not value:
                setattr(obj, key, fixed)
    return obj


class _NanonetEstimator(BaseEstimator):
    """What both estimators share: the network, the training loop, partial_fit."""

    def __init__(self, module=None, hidden_layer_sizes=(64,), activation="relu", loss=None, optimizer="adam",
                 lr=1e-3, optimizer_params=None, epochs=100, batch_size=32, early_stopping=False,
                 validation_fraction=0.1, patience=10, shuffle=True, random_state=None, verbose=0):
        self.module = module
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.loss = loss
        self.optimizer = optimizer
        self.lr = lr
        self.optimizer_params = optimizer_params
        self.epochs = epochs
        self.batch_size = batch_size
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.shuffle = shuffle
        self.random_state = random_state
        self.verbose = verbose

    # -- what the subclasses decide ------------------------------------------------------------
    def _default_loss(self):
        raise NotImplementedError

    def _encode_targets(self, y, reset, classes=None):
        raise NotImplementedError

    # -- checks --------------------------------------------------------------------------------
    def _check_params(self):
        name = type(self).__name__
        check_number(name, "lr", self.lr, low=0, low_open=True)
        check_number(name, "epochs", self.epochs, low=1, integer=True)
        check_number(name, "batch_size", self.batch_size, low=1, integer=True)
        check_number(name, "patience", self.patience, low=0, integer=True)
        check_number(name, "validation_fraction", self.validation_fraction, low=0, high=1, low_open=True,
                     high_open=True)
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"{name} expected optimizer in {sorted(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.optimizer_params is not None and not isinstance(self.optimizer_params, dict):
            raise TypeError(f"{name} expected optimizer_params to be None or a dict, got {self.optimizer_params!r}")
        if self.loss is not None and not isinstance(self.loss, Loss):
            raise TypeError(f"{name} expected loss to be None or a nanonet Loss, got {self.loss!r}")
        if self.module is None:
            sizes = self.hidden_layer_sizes
            if not isinstance(sizes, (tuple, list)) or not all(
                    isinstance(h, numbers.Integral) and not isinstance(h, bool) and h > 0 for h in sizes):
                raise ValueError(f"{name} expected hidden_layer_sizes as a tuple of positive ints, got {sizes!r}")
            if self.activation not in ACTIVATIONS:
                raise ValueError(f"{name} expected activation in {sorted(ACTIVATIONS)}, got {self.activation!r}")
        elif isinstance(self.module, Module) or not callable(self.module):
            raise TypeError(f"{name} expected module to be None or a factory module(n_features, n_outputs, rng) "
                            f"that builds a new network for each fit, got {self.module!r}")
        if self.verbose not in (0, 1, 2):
            raise ValueError(f"{name} expected verbose to be 0, 1 or 2, got {self.verbose!r}")

    def _build(self, n_features, n_outputs, rng):
        if self.module is not None:
            model = self.module(n_features, n_outputs, rng)
            if not isinstance(model, Module):
                raise TypeError(f"{type(self).__name__}: module(...) must return a nanonet Module, "
                                f"got {type(model).__name__}")
            return model
        layers, width = [], n_features
        for h in self.hidden_layer_sizes:
            layers += [Linear(width, int(h), rng=rng), ACTIVATIONS[self.activation]()]
            width = int(h)
        return Sequential(*layers, Linear(width, n_outputs, rng=rng))

    # -- training ------------------------------------------------------------------------------
    def _start(self, X, y, classes=None):
        """Validate the parameters and the data, build the network and the optimizer (a fresh start)."""
        self._check_params()
        X, y = self._validate(X, y, reset=True, classes=classes)
        self._rng = _generator(self.random_state)
        self.model_ = self._build(X.shape[1], self._n_outputs(), self._rng)
        params = dict(self.optimizer_params or {})
        params.setdefault("lr", self.lr)
        self.optimizer_ = OPTIMIZERS[self.optimizer](self.model_.parameters(), **params)
        self.loss_fn_ = copy.deepcopy(self.loss) if self.loss is not None else self._default_loss()
        self.loss_curve_ = []
        self.n_iter_ = 0
        return X, y

    def _validate(self, X, y, reset, classes=None):
        X, y = validate_data(self, X, y, reset=reset, dtype=np.float64, **self._y_options())
        return X, self._encode_targets(y, reset, classes)

    def _train(self, X, y, epochs, early_stopping):
        validation, callbacks = None, []
        if early_stopping:
            n_val = int(round(len(X) * self.validation_fraction))
            if n_val < 1 or len(X) - n_val < 1:
                raise ValueError(f"{type(self).__name__}: early_stopping holds out validation_fraction="
                                 f"{self.validation_fraction} of the samples, which leaves none for validation or "
                                 f"training with n_samples = {len(X)}")
            order = self._rng.permutation(len(X))
            val, train = order[:n_val], order[n_val:]
            X, y, validation = X[train], y[train], (X[val], y[val])
            callbacks.append(EarlyStopping(monitor="val_loss", patience=self.patience, restore_best_weights=True))
        history = _fit(self.model_, self.loss_fn_, self.optimizer_, X, y, epochs=epochs,
                       batch_size=int(self.batch_size), validation_data=validation, callbacks=callbacks,
                       verbose=self.verbose, rng=self._rng, shuffle=bool(self.shuffle))
        self.history_ = history
        self.loss_curve_ = self.loss_curve_ + history.history["loss"]
        self.loss_ = self.loss_curve_[-1]
        self.n_iter_ += len(history.epoch)
        return self

    def fit(self, X, y):
        """Train a new network for ``epochs`` epochs (fewer with ``early_stopping``); returns self."""
        X, y = self._start(X, y)
        return self._train(X, y, int(self.epochs), bool(self.early_stopping))

    def _partial_fit(self, X, y, classes=None):
        """One epoch on ``(X, y)`` (no early stopping), starting a network on the first call; returns self."""
        if not hasattr(self, "model_"):
            X, y = self._start(X, y, classes=classes)
        else:
            X, y = self._validate(X, y, reset=False)
        return self._train(X, y, 1, early_stopping=False)

    def __setstate__(self, state):
        """After unpickling: read-only arrays (joblib memory-maps them) become writable copies.

        The network writes into its own buffers and the optimizer into its
        parameters, so an unpickled estimator can predict and go on with
        ``partial_fit`` whichever way it was loaded.
        """
        super().__setstate__(state)
        seen = set()
        for key, value in vars(self).items():
            setattr(self, key, _writable(value, seen))

    def _outputs(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return _predict(self.model_, X)


class NanonetClassifier(ClassifierMixin, _NanonetEstimator):
    """A classifier: a nanonet network trained with ``CrossEntropyLoss`` on the class indices.

    Args:
        module: a factory ``module(n_features, n_classes, rng) -> Module``
            returning logits ``(N, n_classes)``; None builds an MLP from
            ``hidden_layer_sizes`` and ``activation``.
        hidden_layer_sizes: the hidden widths of the default MLP (default ``(64,)``).
        activation: ``"relu"`` (default), ``"tanh"``, ``"sigmoid"`` or ``"gelu"``.
        loss: a nanonet Loss taking logits and integer classes (default
            ``CrossEntropyLoss()``; e.g. ``CrossEntropyLoss(weight=..., label_smoothing=0.1)``).
            It is copied for each fit.
        optimizer: ``"adam"`` (default), ``"adamw"``, ``"sgd"`` or ``"rmsprop"``.
        lr: the learning rate (default 1e-3).
        optimizer_params: other optimizer arguments, e.g. ``{"momentum": 0.9}``.
        epochs: epochs of ``fit`` (default 100); ``partial_fit`` runs one.
        batch_size: rows per batch (default 32).
        early_stopping: hold out ``validation_fraction`` of the rows (at
            random) and stop when their loss has not improved for
            ``patience`` epochs, restoring the best weights.
        shuffle: reshuffle the rows every epoch.
        random_state: None, an int, or a numpy RandomState / Generator: the
            weights, the shuffling and the hold-out. An int gives identical
            fits.
        verbose: 0, 1 or 2, as ``nn.fit``.

    Attributes:
        model_: the trained nanonet Module.
        classes_: the class labels, sorted.
        n_features_in_: the number of features seen by ``fit``.
        feature_names_in_: the column names, when ``fit`` got a DataFrame with string column names.
        history_: the last ``fit``/``partial_fit`` call's ``History``.
        loss_curve_: the training loss of every epoch run.
        loss_: the last training loss.
        n_iter_: the number of epochs run.
        optimizer_: the optimizer in use (``partial_fit`` goes on with it).
        loss_fn_: the loss in use (a copy of ``loss``).
    """

    def _default_loss(self):
        return CrossEntropyLoss()

    def _y_options(self):
        return {}

    def _n_outputs(self):
        return len(self.classes_)

    def _encode_targets(self, y, reset, classes=None):
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        if reset:
            encoder = LabelEncoder().fit(y if classes is None else classes)
            self.classes_ = encoder.classes_
        unknown = np.setdiff1d(np.unique(y), self.classes_)
        if unknown.size:
            raise ValueError(f"{type(self).__name__}: y holds labels {unknown.tolist()[:5]} that are not in "
                             f"classes_ {self.classes_.tolist()[:10]}")
        return np.searchsorted(self.classes_, y).astype(np.int64)

    def partial_fit(self, X, y, classes=None):
        """One epoch on ``(X, y)``; the first call needs ``classes`` (all labels), as in scikit-learn."""
        if not hasattr(self, "model_") and classes is None:
            raise ValueError("NanonetClassifier.partial_fit needs classes=... (every label) on its first call")
        return self._partial_fit(X, y, classes=classes)

    def predict_proba(self, X):
        """Class probabilities ``(N, n_classes)``, in the order of ``classes_`` (softmax of the logits)."""
        return special.softmax(self._outputs(X), axis=1)

    def predict(self, X):
        """The most probable class label of each row."""
        logits = self._outputs(X)
        return self.classes_[np.argmax(logits, axis=1)]


class NanonetRegressor(RegressorMixin, _NanonetEstimator):
    """A regressor: a nanonet network trained with ``MSELoss`` (one or several outputs).

    The arguments and fitted attributes are those of :class:`NanonetClassifier`,
    except that ``module(n_features, n_outputs, rng)`` returns ``(N,
    n_outputs)``, the default loss is ``MSELoss()``, there is no ``classes_``
    and ``predict_proba``, and ``n_outputs_`` is the number of target columns.
    A 1-D ``y`` gives 1-D predictions. Scale the target (e.g. with
    ``TransformedTargetRegressor``) when it is far from unit size.
    """

    def _default_loss(self):
        return MSELoss()

    def _y_options(self):
        return {"multi_output": True, "y_numeric": True}

    def _n_outputs(self):
        return self.n_outputs_

    def _encode_targets(self, y, reset, classes=None):
        y = np.asarray(y, dtype=np.float64)
        columns = y.reshape(len(y), -1)
        if reset:
            self.n_outputs_ = columns.shape[1]
            self._y_1d = y.ndim == 1
        elif columns.shape[1] != self.n_outputs_:
            raise ValueError(f"NanonetRegressor: y has {columns.shape[1]} columns, but the network was fitted "
                             f"with {self.n_outputs_}")
        return columns

    def partial_fit(self, X, y):
        """One epoch on ``(X, y)``; the first call builds the network."""
        return self._partial_fit(X, y)

    def predict(self, X):
        """Predictions ``(N,)`` for a 1-D fitted target, else ``(N, n_outputs)``."""
        out = self._outputs(X)
        return out.ravel() if self._y_1d else out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
