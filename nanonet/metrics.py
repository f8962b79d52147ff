"""Metrics for ``fit(metrics=...)`` and ``evaluate(metrics=...)``, by name or as callables.

A metric is given by name (``"accuracy"``, ``"top_k_accuracy"``,
``"binary_accuracy"``, ``"mse"``, ``"mae"``, ``"r2"``), as a :class:`Metric`
instance (``TopKAccuracy(k=3)``), or as any callable ``fn(pred, target) ->
float``. ``fit`` logs it under its name for the training data and as
``val_<name>`` for the validation data.

**Exact over the data set.** A built-in metric adds up per-batch sufficient
statistics (counts, sums of squares) and computes its value once from the
totals, so the epoch's ``r2`` is the R² of the whole epoch, whatever the batch
size. A plain callable is averaged over the batches weighted by batch size
(exact for per-sample means such as a MAE, approximate for anything else).
Metrics cost nothing when none are asked for: ``fit`` then never builds a
tracker.

Example:
    >>> import numpy as np
    >>> logits = np.array([[2.0, 0.0, 1.0], [0.0, 3.0, 1.0], [1.0, 0.0, 2.0]])
    >>> float(Accuracy()(logits, np.array([0, 1, 1])))
    0.6666666666666666
    >>> float(get("top_k_accuracy", k=2)(logits, np.array([0, 1, 0])))
    1.0
"""

import numpy as np

from ._checks import check_number


class Metric:
    """Base class: ``stats(pred, target)`` gives additive statistics, ``result(stats)`` the value.

    ``metric(pred, target)`` is the value on one batch. Subclasses set
    ``name`` (the log key) and implement both methods; ``stats`` checks its
    inputs and raises a clear error naming the metric.
    """

    name = "metric"

    def stats(self, pred, target):
        raise NotImplementedError(f"{type(self).__name__} must implement stats(pred, target)")

    def result(self, stats):
        raise NotImplementedError(f"{type(self).__name__} must implement result(stats)")

    def merge(self, a, b):
        """The statistics of two batches together (a sum for most metrics)."""
        return a + b

    def __call__(self, pred, target):
        return self.result(self.stats(pred, target))

    def _arrays(self, pred, target):
        for label, arr in (("pred", pred), ("target", target)):
            if not isinstance(arr, np.ndarray):
                raise TypeError(f"{self!r} expected {label} to be a numpy.ndarray, got {type(arr).__name__}")
            if arr.dtype.kind not in "biuf":
                raise TypeError(f"{self!r} expected a numeric {label}, got dtype {arr.dtype}")

    def _same_shape(self, pred, target):
        self._arrays(pred, target)
        if pred.shape != target.shape:
            raise ValueError(f"{self!r} expected target of the same shape as pred {pred.shape}, got {target.shape}")

    def __repr__(self):
        return f"{type(self).__name__}()"


class _Mean(Metric):
    """A mean over samples or elements: stats ``[total, count]`` (hits and rows for the accuracies)."""

    def result(self, stats):
        return float(stats[0] / stats[1]) if stats[1] else float("nan")


class Accuracy(_Mean):
    """Share of rows whose largest score is the target class.

    ``pred``: scores ``(N, C)`` with ``C >= 2`` (logits or probabilities: the
    arg-max is the same). ``target``: class indices ``(N,)`` (integers) or
    one-hot / probability rows ``(N, C)`` (their arg-max is the class). For a
    single logit per row (BCE) use ``binary_accuracy``.
    """

    name = "accuracy"

    def _classes(self, pred, target):
        self._arrays(pred, target)
        if pred.ndim != 2 or pred.shape[1] < 2:
            raise ValueError(f"{self!r} expected pred of shape (N, C) with C >= 2 classes, got {pred.shape}; "
                             f"for one logit per row (BCEWithLogitsLoss) use 'binary_accuracy'")
        if target.dtype.kind in "iu":
            if target.shape != (pred.shape[0],):
                raise ValueError(f"{self!r} expected integer class targets of shape ({pred.shape[0]},), "
                                 f"got {target.shape}")
            return target
        if target.shape != pred.shape:
            raise ValueError(f"{self!r} expected one-hot or probability targets of shape {pred.shape}, "
                             f"got {target.shape}")
        return target.argmax(axis=1)

    def stats(self, pred, target):
        classes = self._classes(pred, target)
        return np.array([np.count_nonzero(pred.argmax(axis=1) == classes), len(classes)], dtype=float)


class TopKAccuracy(Accuracy):
    """Share of rows whose target class is among the ``k`` largest scores (Keras' default ``k=5``).

    Inputs as :class:`Accuracy`. A tie at the k-th score counts the
    target as found only if ``np.argpartition`` places it in the top k.
    """

    name = "top_k_accuracy"

    def __init__(self, k=5):
        self.k = check_number("TopKAccuracy", "k", k, low=1, integer=True)

    def stats(self, pred, target):
        classes = self._classes(pred, target)
        if self.k >= pred.shape[1]:
            hits = len(classes)
        else:
            top = np.argpartition(pred, -self.k, axis=1)[:, -self.k:]
            hits = np.count_nonzero((top == classes[:, None]).any(axis=1))
        return np.array([hits, len(classes)], dtype=float)

    def __repr__(self):
        return f"TopKAccuracy(k={self.k})"


class BinaryAccuracy(_Mean):
    """Share of elements where ``pred > threshold`` agrees with ``target > 0.5``.

    For ``BCEWithLogitsLoss`` outputs: ``pred`` holds logits, so the default
    ``threshold=0.0`` is probability 0.5 (pass ``threshold=0.5`` for
    probabilities). ``target``: 0/1 labels (or probabilities) of pred's shape.
    """

    name = "binary_accuracy"

    def __init__(self, threshold=0.0):
        self.threshold = check_number("BinaryAccuracy", "threshold", threshold)

    def stats(self, pred, target):
        self._same_shape(pred, target)
        return np.array([np.count_nonzero((pred > self.threshold) == (target > 0.5)), pred.size], dtype=float)

    def __repr__(self):
        return f"BinaryAccuracy(threshold={self.threshold:g})"


class MeanSquaredError(_Mean):
    """Mean of ``(pred - target) ** 2`` over all elements (as ``MSELoss()``)."""

    name = "mse"

    def stats(self, pred, target):
        self._same_shape(pred, target)
        diff = (pred - target).reshape(-1)
        return np.array([float(np.dot(diff, diff)), diff.size])


class MeanAbsoluteError(_Mean):
    """Mean of ``|pred - target|`` over all elements."""

    name = "mae"

    def stats(self, pred, target):
        self._same_shape(pred, target)
        return np.array([float(np.abs(pred - target).sum()), pred.size])


class R2Score(Metric):
    """Coefficient of determination, as ``sklearn.metrics.r2_score`` (``"uniform_average"``).

    ``1 - sum((y - pred)^2) / sum((y - mean(y))^2)`` per output column,
    averaged over the columns. A constant target column scores 1.0 when
    predicted exactly and 0.0 otherwise (scikit-learn's ``force_finite``).
    ``pred`` and ``target``: ``(N,)`` or ``(N, outputs)``, the same shape.
    """

    name = "r2"

    def stats(self, pred, target):
        self._same_shape(pred, target)
        if pred.ndim not in (1, 2) or not len(pred):
            raise ValueError(f"{self!r} expected pred of shape (N,) or (N, outputs), N >= 1, got {pred.shape}")
        p = pred.reshape(len(pred), -1).astype(float)
        t = target.reshape(len(target), -1).astype(float)
        mean = t.mean(axis=0)
        count = np.full(t.shape[1], float(len(t)))
        return np.stack([count, mean, ((t - mean) ** 2).sum(axis=0), ((t - p) ** 2).sum(axis=0)])

    def merge(self, a, b):
        """Chan et al.'s pairwise update of count, mean and squared deviations (no cancellation)."""
        (na, ma, sa, ra), (nb, mb, sb, rb) = a, b
        n = na + nb
        delta = mb - ma
        return np.stack([n, ma + delta * nb / n, sa + sb + delta * delta * na * nb / n, ra + rb])

    def result(self, stats):
        _, _, spread, residual = stats
        safe = np.where(spread != 0, spread, 1.0)
        scores = np.where(spread != 0, 1.0 - residual / safe, np.where(residual == 0, 1.0, 0.0))
        return float(scores.mean())


_BY_NAME = {
    "accuracy": Accuracy, "top_k_accuracy": TopKAccuracy, "binary_accuracy": BinaryAccuracy,
    "mse": MeanSquaredError, "mae": MeanAbsoluteError, "r2": R2Score,
}


def get(name, **options):
    """The built-in metric called ``name`` (options go to its constructor, e.g. ``k=3``).

    >>> get("mse")
    MeanSquaredError()
    """
    if name not in _BY_NAME:
        raise ValueError(f"unknown metric {name!r}; the built-in metrics are {sorted(_BY_NAME)} "
                         f"(or pass a callable fn(pred, target) -> float)")
    return _BY_NAME[name](**options)


class _BatchMean(Metric):
    """A plain callable ``fn(pred, target) -> float``, averaged over batches weighted by size."""

    def __init__(self, fn):
        self.fn = fn

    def stats(self, pred, target):
        n = len(pred)
        return np.array([float(self.fn(pred, target)) * n, n])

    def result(self, stats):
        return float(stats[0] / stats[1])

    def __repr__(self):
        return repr(self.fn)


def resolve(caller, metrics):
    """``metrics`` as ``{log name: Metric}``: names, Metric instances and callables, in a list or a dict."""
    if metrics is None:
        return {}
    if isinstance(metrics, (str, Metric)) or callable(metrics):
        raise TypeError(f"{caller} expected metrics as a list or dict, got {metrics!r}; "
                        f"write metrics=[{metrics!r}]")
    if isinstance(metrics, dict):
        items = list(metrics.items())
    elif isinstance(metrics, (list, tuple)):
        items = [(_name_of(m), m) for m in metrics]
    else:
        raise TypeError(f"{caller} expected metrics as a list or dict, got {type(metrics).__name__}")
    out = {}
    for name, metric in items:
        if not isinstance(name, str) or name == "loss" or name.startswith("val_"):
            raise ValueError(f"{caller}: a metric may not be called {name!r}")
        if name in out:
            raise ValueError(f"{caller}: two metrics are called {name!r}; pass a dict to name them")
        if isinstance(metric, str):
            metric = get(metric)
        elif not isinstance(metric, Metric):
            if not callable(metric):
                raise TypeError(f"{caller} expected metrics to be names or callables fn(pred, target), "
                                f"got {metric!r} for {name!r}")
            metric = _BatchMean(metric)
        out[name] = metric
    return out


def _name_of(metric):
    if isinstance(metric, str):
        return metric
    if isinstance(metric, Metric):
        return metric.name
    return getattr(metric, "__name__", repr(metric))


class Tracker:
    """Adds up the statistics of several metrics over batches; ``result()`` gives ``{name: value}``."""

    def __init__(self, metrics):
        self.metrics = metrics
        self.totals = dict.fromkeys(metrics)

    def update(self, pred, target):
        for name, metric in self.metrics.items():
            stats = metric.stats(pred, target)
            self.totals[name] = stats if self.totals[name] is None else metric.merge(self.totals[name], stats)

    def result(self, prefix=""):
        return {prefix + name: (float("nan") if self.totals[name] is None else metric.result(self.totals[name]))
                for name, metric in self.metrics.items()}

