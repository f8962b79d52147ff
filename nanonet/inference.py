"""Using a trained model: ``predict(model, x)`` and ``evaluate(model, loss_fn, x, y)``.

Both run the model in eval mode (Dropout off, BatchNorm on its running
statistics) and restore the caller's mode afterwards, also on error.
"""

import math

import numpy as np

from . import metrics as metrics_mod
from .data import batches, check_batch_size, check_pair
from .module import Module


def _check_model(caller, model):
    if not isinstance(model, Module):
        raise TypeError(f"{caller} expected model to be a nanonet Module, got {type(model).__name__}")


def predict(model, x, batch_size=None):
    """The model's output for ``x`` in eval mode, computed in batches of ``batch_size`` rows.

    ``batch_size=None`` runs all rows at once. ``x`` is an array, or a tuple
    of arrays for a Graph with several inputs. The result is a fresh array
    (a tuple of arrays for a Graph with several outputs); the model's
    training/eval mode is restored afterwards.

    Shape:
        - x: ``(N, ...)`` -> the model's output ``(N, ...)``.

    Example:
        >>> import numpy as np
        >>> import nanonet as nn
        >>> model = nn.Sequential(nn.Linear(3, 2, rng=0), nn.Dropout(0.5, rng=0))
        >>> x = np.ones((5, 3))
        >>> out = nn.predict(model, x, batch_size=2)
        >>> out.shape, model.training, bool(np.allclose(out, model[0](x)))
        ((5, 2), True, True)
    """
    _check_model("predict", model)
    arrays = tuple(x) if isinstance(x, (tuple, list)) else (x,)
    for i, arr in enumerate(arrays):
        name = "x" if len(arrays) == 1 else f"x[{i}]"
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"predict expected {name} to be a numpy.ndarray, got {type(arr).__name__}")
        if arr.ndim == 0 or len(arr) == 0:
            raise ValueError(f"predict expected {name} with at least one sample (row), got shape {arr.shape}")
        if len(arr) != len(arrays[0]):
            raise ValueError(f"predict expected every input to have {len(arrays[0])} samples, "
                             f"got {len(arr)} in {name}")
    n = len(arrays[0])
    batch_size = n if batch_size is None else batch_size
    check_batch_size("predict", batch_size)
    was_training = model.training
    model.eval()
    try:
        outputs = [model(*(arr[start:start + batch_size] for arr in arrays)) for start in range(0, n, batch_size)]
    finally:
        model.train(was_training)
    if isinstance(outputs[0], tuple):
        return tuple(_join([out[i] for out in outputs], arrays) for i in range(len(outputs[0])))
    return _join(outputs, arrays)


def _join(parts, arrays):
    if len(parts) > 1:
        return np.concatenate(parts)
    out = parts[0]
    if any(np.may_share_memory(out, arr) for arr in arrays):   # e.g. Identity returns its input
        return out.copy()
    return out


def evaluate(model, loss_fn, x, y, *, batch_size=None, metrics=None):
    """The loss (and metrics) of ``model`` on ``(x, y)`` in eval mode: ``{"loss": ..., name: ...}``.

    Computed in batches of ``batch_size`` (all rows at once if None). The
    loss is averaged over the batches weighted by batch size; a built-in
    metric (``metrics=["accuracy"]``, see :mod:`nanonet.metrics`) is exact
    over the whole data set, a plain callable ``fn(pred, target)`` is
    averaged like the loss. The model's mode is restored afterwards.

    Example:
        >>> import numpy as np
        >>> import nanonet as nn
        >>> nn.evaluate(nn.Linear(2, 1, rng=0), nn.MSELoss(), np.zeros((4, 2)), np.ones((4, 1)), metrics=["mae"])
        {'loss': 1.0, 'mae': 1.0}
    """
    _check_model("evaluate", model)
    if isinstance(loss_fn, type) or not (callable(loss_fn) and hasattr(loss_fn, "backward")):
        raise TypeError(f"evaluate expected loss_fn to be a loss instance (e.g. nn.MSELoss()), got {loss_fn!r}")
    check_pair("evaluate", x, y)
    metrics = metrics_mod.resolve("evaluate", metrics)
    batch_size = len(x) if batch_size is None else batch_size
    check_batch_size("evaluate", batch_size)
    tracker = metrics_mod.Tracker(metrics) if metrics else None
    was_training = model.training
    model.eval()
    total = 0.0
    try:
        for xb, yb in batches(x, y, batch_size, shuffle=False):
            pred = model(xb)
            try:
                total += loss_fn(pred, yb) * len(xb)
            except FloatingPointError:
                total = math.nan
            if tracker is not None:
                tracker.update(pred, yb)
    finally:
        model.train(was_training)
    return {"loss": total / len(x), **(tracker.result() if tracker is not None else {})}
