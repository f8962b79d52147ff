"""The fit loop: ``fit(model, loss_fn, optimizer, x, y, epochs=..., batch_size=...) -> History``."""

import math
import numbers
from dataclasses import dataclass, field

import numpy as np

from ._checks import check_finite
from ._rng import as_generator
from .data import batches, check_batch_size, check_pair, num_batches
from ._train_step import backward_of, epoch_batches, zero_grad_of
from .module import Module, anomaly_enabled
from .optim.clip import clip_grad_norm as _clip

HOOKS = ("on_train_begin", "on_epoch_begin", "on_batch_end", "on_epoch_end", "on_train_end")


class History:
    """What ``fit`` returns: per-epoch lists of the logged values.

    Attributes:
        history: ``{"loss": [...], "val_loss": [...], "<metric>": [...], "val_<metric>": [...]}``,
            one Python float per epoch run (``val_*`` only with validation data).
        epoch: the epoch numbers (from ``initial_epoch``, counted from 0).
        stopped_epoch: the epoch a callback stopped training at, else None.
        stop_reason: the callback's message (e.g. where the loss became NaN), else None.

    Example:
        >>> h = History()
        >>> h.append(0, {"loss": 2.0, "val_loss": 2.5})
        >>> h.history, h.epoch
        ({'loss': [2.0], 'val_loss': [2.5]}, [0])
    """

    def __init__(self):
        self.history = {}
        self.epoch = []
        self.stopped_epoch = None
        self.stop_reason = None

    def append(self, epoch, logs):
        self.epoch.append(int(epoch))
        for key, value in logs.items():
            self.history.setdefault(key, []).append(float(value))

    def plot(self, path=None, *, title=None, log_scale=True):
        """Draw the training (and validation) loss per epoch; save a PNG at ``path`` if given.

        Needs matplotlib (``pip install nanonet[plot]``); returns the
        ``matplotlib.figure.Figure`` (made without pyplot, so no window and no
        global state).
        """
        return plot_histories({"": self}, path, title=title, log_scale=log_scale)

    def __repr__(self):
        return f"History(epochs={len(self.epoch)}, keys={list(self.history)})"


def plot_histories(histories, path=None, *, title=None, log_scale=True):
    """Draw several runs' loss curves in one figure, e.g. ``{"SGD": h1, "Adam": h2}``.

    Needs matplotlib, the optional ``plot`` extra. Returns the Figure; saves
    it as a PNG at ``path`` if given.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError("History.plot needs matplotlib, which is nanonet's optional `plot` extra: "
                          "pip install nanonet[plot]  (or pip install matplotlib)") from exc
    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.add_subplot()
    for label, hist in histories.items():
        prefix = f"{label} " if label else ""
        line, = ax.plot(hist.epoch, hist.history.get("loss", []), label=prefix + "training loss")
        if "val_loss" in hist.history:
            ax.plot(hist.epoch, hist.history["val_loss"], "--", color=line.get_color(),
                    label=prefix + "validation loss")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    if log_scale:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)
    if path is not None:
        fig.savefig(path, dpi=100)
    return fig


@dataclass
class FitContext:
    """What callbacks see of a running ``fit`` (``callback.context``)."""

    model: Module
    loss_fn: object
    optimizer: object
    rng: np.random.Generator
    epochs: int
    initial_epoch: int
    batch_size: int
    steps_per_epoch: int
    verbose: int
    history: History
    log_keys: list
    stop_training: bool = False
    stop_reason: str = None
    callbacks: list = field(default_factory=list)
    scratch: dict = field(default_factory=dict, repr=False)  # buffers fit reuses from epoch to epoch

    def stop(self, reason):
        """Ask ``fit`` to stop after the current batch; the first reason is kept."""
        self.stop_training = True
        if self.stop_reason is None:
            self.stop_reason = reason


class _Caller:
    """A name for ``check_finite``'s messages."""

    def __init__(self, name):
        self.name = name

    def short_repr(self):
        return self.name


def fit(model, loss_fn, optimizer, x, y, *, epochs, batch_size, validation_data=None, validation_split=None,
        callbacks=(), verbose=1, rng=None, metrics=None, shuffle=True, initial_epoch=0, clip_grad_norm=None):
    """Train ``model`` on ``(x, y)`` for ``epochs`` epochs of mini-batches; return a :class:`History`.

    Each batch: ``model.zero_grad()``, ``loss = loss_fn(model(xb), yb)``,
    ``model.backward(loss_fn.backward())``, optional clipping of the global
    gradient norm to ``clip_grad_norm``, ``optimizer.step()``. Training runs
    in ``model.train()`` mode, validation in ``model.eval()`` mode; the
    model's mode on entry is restored at the end.

    **The recorded epoch loss** is the mean of the batch losses weighted by
    batch size, each taken *before* that batch's update (as Keras does). For
    a per-sample mean loss (``MSELoss()``) it is the mean loss over the
    epoch's samples. ``val_loss`` is the loss over the validation set after
    the epoch, computed the same way in batches of ``batch_size``. Metrics
    (``metrics={"mae": fn}`` or ``[fn]``, with ``fn(pred, target) -> float``)
    are averaged the same way and logged as ``name`` and ``val_name``.

    **A non-finite loss** (NaN/Inf, or a model output the loss rejects) is not
    stepped on. If a callback (``TerminateOnNaN``) stops the run, ``fit``
    returns; otherwise it raises ``FloatingPointError`` naming the epoch and
    the batch.

    Args:
        model, loss_fn, optimizer: a Module, a Loss, an optimizer over the model's parameters.
        x, y: arrays with the same number of rows (samples).
        epochs: train until this epoch count (with ``initial_epoch``: the last epoch + 1).
        batch_size: rows per batch; the last batch may be smaller (see ``nanonet.data.batches``).
        validation_data: ``(x_val, y_val)``.
        validation_split: a fraction in (0, 1): the *last* rows of x, y (before
            any shuffling, as in Keras) are held out for validation.
        callbacks: objects with any of the hooks ``on_train_begin(logs)``,
            ``on_epoch_begin(epoch, logs)``, ``on_batch_end(batch, logs)``,
            ``on_epoch_end(epoch, logs)``, ``on_train_end(logs)`` (see
            ``nanonet.callbacks``; LR schedules work too).
        verbose: 0 silent, 1 a progress bar (tqdm if installed), 2 one line per epoch.
        rng: int seed or Generator for shuffling. The same seed gives a
            bit-identical History and weights.
        shuffle: reshuffle the training rows every epoch.
        initial_epoch: the epoch to start at, to resume a run (see ``nn.load``).
        clip_grad_norm: if given, the largest global gradient norm (see ``nanonet.optim.clip_grad_norm``).

    Example:
        >>> import numpy as np
        >>> import nanonet as nn
        >>> from nanonet.datasets import make_regression
        >>> x, y, _, _ = make_regression(n_train=64, rng=0)
        >>> model = nn.Sequential(nn.Linear(10, 16, rng=0), nn.ReLU(), nn.Linear(16, 1, rng=1))
        >>> opt = nn.optim.Adam(model.parameters(), lr=1e-2)
        >>> h = nn.fit(model, nn.MSELoss(), opt, x, y, epochs=5, batch_size=16, validation_split=0.25,
        ...            verbose=0, rng=0)
        >>> list(h.history), len(h.history["loss"])
        (['loss', 'val_loss'], 5)
    """
    metrics = _check_fit(model, loss_fn, optimizer, x, y, epochs, batch_size, verbose, metrics, initial_epoch,
                         clip_grad_norm)
    x, y, val = _split(x, y, validation_data, validation_split)
    log_keys = ["loss", *metrics] + (["val_loss", *(f"val_{k}" for k in metrics)] if val else [])
    callbacks = _check_callbacks(callbacks)
    if verbose:
        from .callbacks import ProgressBar

        callbacks.append(ProgressBar() if verbose == 1 else ProgressBar(use_tqdm=False, dynamic=False))
    ctx = FitContext(model, loss_fn, optimizer, as_generator(rng), int(epochs), int(initial_epoch),
                     int(batch_size), num_batches(len(x), batch_size), int(verbose), History(), log_keys,
                     callbacks=callbacks)
    for cb in callbacks:
        if hasattr(cb, "set_context"):
            cb.set_context(ctx)
    was_training = model.training
    try:
        _dispatch(callbacks, "on_train_begin", {})
        for epoch in range(ctx.initial_epoch, ctx.epochs):
            _dispatch(callbacks, "on_epoch_begin", epoch, {})
            logs = _train_epoch(ctx, x, y, epoch, metrics, shuffle, clip_grad_norm)
            if val:
                scores = evaluate(model, loss_fn, *val, batch_size=batch_size, metrics=metrics)
                logs.update({f"val_{k}": v for k, v in scores.items()})
            ctx.history.append(epoch, logs)
            _dispatch(callbacks, "on_epoch_end", epoch, logs)
            if ctx.stop_training:
                ctx.history.stopped_epoch = epoch
                break
        ctx.history.stop_reason = ctx.stop_reason
        _dispatch(callbacks, "on_train_end", {})
    finally:
        model.train(was_training)
    return ctx.history


def _train_epoch(ctx, x, y, epoch, metrics, shuffle, clip):
    """One epoch of steps; returns its logs. The per-batch work is only the step itself:

    what can be decided once (how to zero the gradients, whether the model
    can skip dJ/dx of the data, which callbacks want ``on_batch_end``) is
    decided here, the shuffled rows are gathered into buffers reused from
    epoch to epoch, and each batch is a view of them.
    """
    model, loss_fn, optimizer = ctx.model, ctx.loss_fn, ctx.optimizer
    model.train()
    zero_grad = zero_grad_of(model, optimizer)
    forward = model if anomaly_enabled() else model.forward  # fit checked the data for NaN/Inf once
    backward = backward_of(model)
    params = model.parameters() if clip is not None else None
    batch_end = [cb.on_batch_end for cb in ctx.callbacks if callable(getattr(cb, "on_batch_end", None))]
    total, count = 0.0, 0
    sums = dict.fromkeys(metrics, 0.0)
    for b, (xb, yb) in enumerate(epoch_batches(ctx, x, y, shuffle)):
        n = len(xb)
        zero_grad()
        pred = forward(xb)
        try:
            loss = loss_fn(pred, yb)
        except FloatingPointError:          # the model's output holds NaN/Inf (the data were checked)
            loss = math.nan
        finite = math.isfinite(loss)
        if finite:
            for name, fn in metrics.items():
                sums[name] += float(fn(pred, yb)) * n
            backward(loss_fn.backward())
            if params is not None:
                _clip(params, clip)
            optimizer.step()
        total += loss * n
        count += n
        if batch_end:
            logs = {"loss": loss, "size": n}
            for hook in batch_end:
                hook(b, logs)
        if not finite and not ctx.stop_training:
            raise FloatingPointError(
                f"fit: the loss became {loss} at epoch {epoch}, batch {b}; that batch was not stepped on. "
                f"Lower the learning rate, clip gradients (clip_grad_norm=...), or pass "
                f"callbacks=[TerminateOnNaN()] to stop cleanly and keep the History")
        if ctx.stop_training:
            break
    logs = {"loss": total / count}
    logs.update({name: s / count for name, s in sums.items()})
    return logs


def evaluate(model, loss_fn, x, y, *, batch_size=None, metrics=None):
    """The loss (and metrics) of ``model`` on ``(x, y)`` in eval mode: ``{"loss": ..., name: ...}``.

    Computed in batches of ``batch_size`` (all rows at once if None) and
    averaged weighted by batch size. The model's mode is restored afterwards.

    Example:
        >>> import numpy as np
        >>> import nanonet as nn
        >>> nn.evaluate(nn.Linear(2, 1, rng=0), nn.MSELoss(), np.zeros((4, 2)), np.ones((4, 1)))
        {'loss': 1.0}
    """
    check_pair("evaluate", x, y)
    metrics = _as_metrics("evaluate", metrics)
    batch_size = len(x) if batch_size is None else batch_size
    check_batch_size("evaluate", batch_size)
    was_training = model.training
    model.eval()
    try:
        sums = dict.fromkeys(["loss", *metrics], 0.0)
        for xb, yb in batches(x, y, batch_size, shuffle=False):
            pred = model(xb)
            try:
                sums["loss"] += loss_fn(pred, yb) * len(xb)
            except FloatingPointError:
                sums["loss"] = math.nan
            for name, fn in metrics.items():
                sums[name] += float(fn(pred, yb)) * len(xb)
    finally:
        model.train(was_training)
    return {k: v / len(x) for k, v in sums.items()}


def _dispatch(callbacks, hook, *args):
    for cb in callbacks:
        method = getattr(cb, hook, None)
        if method is not None:
            method(*args)


def _check_callbacks(callbacks):
    callbacks = list(callbacks)
    for i, cb in enumerate(callbacks):
        if not any(callable(getattr(cb, h, None)) for h in HOOKS):
            raise TypeError(f"fit expected callbacks with at least one of {HOOKS}, got {cb!r} at position {i}")
    return callbacks


def _as_metrics(caller, metrics):
    if metrics is None:
        return {}
    if isinstance(metrics, dict):
        items = dict(metrics)
    else:
        items = {getattr(fn, "__name__", repr(fn)): fn for fn in metrics}
    for name, fn in items.items():
        if not callable(fn):
            raise TypeError(f"{caller} expected metrics to be callables fn(pred, target), got {fn!r} for {name!r}")
        if name == "loss" or name.startswith("val_"):
            raise ValueError(f"{caller}: a metric may not be called {name!r}")
    return items


def _check_fit(model, loss_fn, optimizer, x, y, epochs, batch_size, verbose, metrics, initial_epoch, clip):
    if not isinstance(model, Module):
        raise TypeError(f"fit expected model to be a nanonet Module, got {type(model).__name__}")
    if not (callable(loss_fn) and hasattr(loss_fn, "backward")):
        raise TypeError(f"fit expected loss_fn to be a Loss (callable, with backward), got {loss_fn!r}")
    if not (hasattr(optimizer, "step") and hasattr(optimizer, "zero_grad")):
        raise TypeError(f"fit expected an optimizer (with step and zero_grad), got {optimizer!r}")
    check_pair("fit", x, y)
    check_batch_size("fit", batch_size)
    for name, value, low in (("epochs", epochs, 1), ("initial_epoch", initial_epoch, 0)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
            raise ValueError(f"fit expected {name} to be an int >= {low}, got {value!r}")
    if initial_epoch > epochs:
        raise ValueError(f"fit expected initial_epoch <= epochs, got initial_epoch={initial_epoch}, epochs={epochs}")
    if verbose not in (0, 1, 2):
        raise ValueError(f"fit expected verbose to be 0, 1 or 2, got {verbose!r}")
    if clip is not None and (isinstance(clip, bool) or not isinstance(clip, numbers.Real) or not clip > 0):
        raise ValueError(f"fit expected clip_grad_norm to be None or > 0, got {clip!r}")
    check_finite(_Caller("fit"), x, name="x")
    check_finite(_Caller("fit"), y, name="y")
    return _as_metrics("fit", metrics)


def _split(x, y, validation_data, validation_split):
    if validation_data is not None and validation_split is not None:
        raise ValueError("fit takes validation_data or validation_split, not both")
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ValueError(f"fit expected validation_data=(x_val, y_val), got {type(validation_data).__name__}")
        check_pair("fit (validation_data)", *validation_data)
        for name, arr in zip(("x_val", "y_val"), validation_data):
            check_finite(_Caller("fit"), arr, name=name)
        return x, y, tuple(validation_data)
    if validation_split is None:
        return x, y, None
    if isinstance(validation_split, bool) or not isinstance(validation_split, numbers.Real) \
            or not 0 < validation_split < 1:
        raise ValueError(f"fit expected validation_split in (0, 1), got {validation_split!r}")
    n = len(x)
    cut = int(n * (1 - validation_split))
    if cut == 0:
        raise ValueError(f"fit: validation_split={validation_split} leaves no training data "
                         f"({n} samples -> 0 for training, {n} for validation)")
    return x[:cut], y[:cut], (x[cut:], y[cut:])
