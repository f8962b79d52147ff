"""The fit loop: ``fit(model, loss_fn, optimizer, x, y, epochs=..., batch_size=...) -> History``."""

import math
from dataclasses import dataclass, field

import numpy as np

from ._checks import check_finite, check_number
from ._extras import missing
from ._rng import as_generator
from . import metrics as metrics_mod
from .data import check_batch_size, check_pair, num_batches
from ._train_step import GradZeroing, backward_of, epoch_batches
from .fit_checks import (check_gradients_finite, check_optimizer_owns, finite_check_plan, not_a_class,
                         optimizer_parameters)
from .inference import evaluate, predict  # noqa: F401 (re-exported: nn.evaluate, nn.predict)
from .module import Module, anomaly_enabled
from .optim.clip import clip_grad_norm as _clip

HOOKS = ("on_train_begin", "on_epoch_begin", "on_batch_end", "on_epoch_end", "on_train_end")


class History:
    """What ``fit`` returns: per-epoch lists of the logged values.

    Attributes:
        history: ``{"loss": [...], "val_loss": [...], "<metric>": [...], "val_<metric>": [...]}``,
            one Python float per epoch run (``val_*`` only with validation data).
        epoch: the numbers of the epochs run, counted from 1 (``[1, 2, ...]``;
            ``[k + 1, ...]`` after ``initial_epoch=k``): see "Epoch numbers" in :func:`fit`.
        stopped_epoch: the number of the epoch a callback stopped training in, else None.
        stop_reason: the callback's message (e.g. where the loss became NaN), else None.

    Example:
        >>> h = History()
        >>> h.append(1, {"loss": 2.0, "val_loss": 2.5})
        >>> h.history, h.epoch
        ({'loss': [2.0], 'val_loss': [2.5]}, [1])
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

        Needs matplotlib (the ``plot`` extra: ``pip install ".[plot]"`` in the nanonet checkout); returns the
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
        raise missing("History.plot", "matplotlib", "plot") from exc
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
    finite_check: tuple = ()  # what the optimizer steps, as fit_checks.finite_check_plan lays it out
    rank: int = 0
    world_size: int = 1
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


def fit(model, loss_fn, optimizer, x, y, *, epochs, batch_size=32, validation_data=None, validation_split=None,
        callbacks=(), verbose=1, rng=None, metrics=None, shuffle=True, initial_epoch=0, clip_grad_norm=None,
        distributed=False):
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
    (``metrics=["accuracy"]``, by name, or ``{"name": fn}`` / ``[fn]`` with
    ``fn(pred, target) -> float``; see :mod:`nanonet.metrics`) are logged as
    ``name`` and ``val_name``: a built-in one exact over the epoch's
    samples, a plain callable averaged like the loss.

    **A non-finite loss** (NaN/Inf, or a model output the loss rejects) is not
    stepped on. If a callback (``TerminateOnNaN``) stops the run, ``fit``
    returns; otherwise it raises ``FloatingPointError`` naming the epoch and
    the batch.

    **Epoch numbers** follow Keras: everything a user reads counts epochs
    from 1, and epoch ``k`` is the one after which ``k`` epochs are complete.
    The progress line (``epoch 3/10``), the callbacks' messages (``stopped at
    epoch 3``), ``History.epoch`` and ``stopped_epoch``, and a checkpoint's
    ``{epoch}`` and saved ``epoch`` all say 3 for the third epoch, and
    ``fit(initial_epoch=3)`` resumes after it (running epochs 4, 5, ...).
    Callback *hooks* receive the 0-based index, as Keras' do (``epoch`` in
    ``on_epoch_end(epoch, logs)`` is 2 for epoch 3), so that
    ``range(initial_epoch, epochs)`` and the learning-rate schedules line up.

    Args:
        model, loss_fn, optimizer: a Module, a Loss, an optimizer over the model's parameters.
        x, y: arrays with the same number of rows (samples).
        epochs: the number of the last epoch to run (with ``initial_epoch=k``: runs epochs k+1 ... epochs).
        batch_size: rows per batch (default 32, as Keras); the last batch may be smaller (see
            ``nanonet.data.batches``).
        validation_data: ``(x_val, y_val)``.
        validation_split: a fraction in (0, 1): the *last* rows of x, y (before
            any shuffling, as in Keras) are held out for validation.
        callbacks: objects with any of the hooks ``on_train_begin(logs)``,
            ``on_epoch_begin(epoch, logs)``, ``on_batch_end(batch, logs)``,
            ``on_epoch_end(epoch, logs)``, ``on_train_end(logs)`` (see
            ``nanonet.callbacks``; LR schedules work too).
        verbose: 0 silent, 1 a progress bar (tqdm if installed), 2 one line per epoch; both show the
            epoch's logs and wall time.
        rng: int seed or Generator for shuffling. The same seed gives a
            bit-identical History and weights.
        shuffle: reshuffle the training rows every epoch.
        initial_epoch: how many epochs are already done, to resume a run (a checkpoint's ``epoch``,
            see ``nn.load``).
        clip_grad_norm: if given, the largest global gradient norm (see ``nanonet.optim.clip_grad_norm``).
        distributed: True (or a ``nanonet.distributed.DataParallel`` with options) to train
            data-parallel on every rank of an MPI launch (``mpiexec -n 2 python train.py``): each rank
            passes the same data and takes its share of every batch; the result equals one process's
            (see ``nanonet.distributed`` and docs/distributed.md). Plain training without a launcher.

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
    run = None
    if distributed is not False:  # the data-parallel trainer (imports mpi4py only under a launcher)
        from .distributed.trainer import data_parallel

        run = data_parallel(distributed)
    metrics = _check_fit(model, loss_fn, optimizer, x, y, epochs, batch_size, verbose, metrics, initial_epoch,
                         clip_grad_norm)
    x, y, val = _split(x, y, validation_data, validation_split)
    log_keys = ["loss", *metrics] + (["val_loss", *(f"val_{k}" for k in metrics)] if val else [])
    callbacks = _check_callbacks(callbacks)
    if run is not None:
        callbacks, verbose, rng = run.local_view(callbacks, verbose, rng)
    if verbose:
        from .callbacks import ProgressBar

        callbacks.append(ProgressBar() if verbose == 1 else ProgressBar(use_tqdm=False, dynamic=False))
    ctx = FitContext(model, loss_fn, optimizer, as_generator(rng), int(epochs), int(initial_epoch),
                     int(batch_size), num_batches(len(x), batch_size), int(verbose), History(), log_keys,
                     callbacks=callbacks, finite_check=finite_check_plan(optimizer_parameters(optimizer)))
    for cb in callbacks:
        if hasattr(cb, "set_context"):
            cb.set_context(ctx)
    was_training = model.training
    try:
        if run is not None:
            run.start(ctx, x, y, val, metrics, shuffle, clip_grad_norm,
                      begin=lambda: _dispatch(callbacks, "on_train_begin", {}))
        else:
            _dispatch(callbacks, "on_train_begin", {})
        for epoch in range(ctx.initial_epoch, ctx.epochs):
            _dispatch(callbacks, "on_epoch_begin", epoch, {})
            logs = (run.train_epoch if run else _train_epoch)(ctx, x, y, epoch, metrics, shuffle, clip_grad_norm)
            if val:
                scores = run.evaluate(evaluate, model, loss_fn, *val, batch_size, metrics) if run else \
                    evaluate(model, loss_fn, *val, batch_size=batch_size, metrics=metrics)
                logs.update({f"val_{k}": v for k, v in scores.items()})
            ctx.history.append(epoch + 1, logs)
            _dispatch(callbacks, "on_epoch_end", epoch, logs)
            if run is not None:
                run.agree_stop(ctx)
            if ctx.stop_training:
                ctx.history.stopped_epoch = epoch + 1
                break
        ctx.history.stop_reason = ctx.stop_reason
        _dispatch(callbacks, "on_train_end", {})
    except BaseException as exc:
        if run is not None:
            run.fail(exc)  # a failure on this rank alone aborts every rank (no hang)
        raise
    finally:
        model.train(was_training)
        if run is not None:
            run.close()
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
    zeroing = GradZeroing(model, optimizer)
    zero_grad, settle = zeroing.zero, zeroing.settle
    forward = model if anomaly_enabled() else model.forward  # fit checked the data for NaN/Inf once
    backward = backward_of(model)
    params = model.parameters() if clip is not None else None
    batch_end = [cb.on_batch_end for cb in ctx.callbacks if callable(getattr(cb, "on_batch_end", None))]
    total, count = 0.0, 0
    tracker = metrics_mod.Tracker(metrics) if metrics else None
    for b, (xb, yb) in enumerate(epoch_batches(ctx, x, y, shuffle)):
        n = len(xb)
        zero_grad()
        try:
            pred = forward(xb)
            try:
                loss = loss_fn(pred, yb)
            except FloatingPointError:          # the model's output holds NaN/Inf (the data were checked)
                loss = math.nan
            finite = math.isfinite(loss)
            if finite:
                if tracker is not None:
                    tracker.update(pred, yb)
                backward(loss_fn.backward())
        finally:
            settle()                            # every .grad as zero_grad + backward leave it
        if finite:
            check_gradients_finite(ctx, epoch + 1, b + 1, loss)  # numbers a user reads count from 1
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
                f"fit: the loss became {loss} at epoch {epoch + 1}, batch {b + 1}; that batch was not stepped on. "
                f"Lower the learning rate, clip gradients (clip_grad_norm=...), or pass "
                f"callbacks=[TerminateOnNaN()] to stop cleanly and keep the History")
        if ctx.stop_training:
            break
    logs = {"loss": total / count}
    if tracker is not None:
        logs.update(tracker.result())
    return logs


def _dispatch(callbacks, hook, *args):
    for cb in callbacks:
        method = getattr(cb, hook, None)
        if method is not None:
            method(*args)


def _check_callbacks(callbacks):
    if isinstance(callbacks, (str, bytes)) or not hasattr(callbacks, "__iter__"):
        raise TypeError(f"fit expected callbacks to be a list of callbacks, got {type(callbacks).__name__}")
    callbacks = list(callbacks)
    for i, cb in enumerate(callbacks):
        if isinstance(cb, type):
            raise TypeError(f"fit expected callback instances, got the class {cb.__name__} at position {i}; "
                            f"create one: {cb.__name__}(...)")
        if not any(callable(getattr(cb, h, None)) for h in HOOKS):
            raise TypeError(f"fit expected callbacks with at least one of {HOOKS}, got {cb!r} at position {i}")
    return callbacks


def _check_fit(model, loss_fn, optimizer, x, y, epochs, batch_size, verbose, metrics, initial_epoch, clip):
    not_a_class("model", model, "nn.Linear(3, 1)")
    if not isinstance(model, Module):
        raise TypeError(f"fit expected model to be a nanonet Module, got {type(model).__name__}")
    not_a_class("loss_fn", loss_fn, "nn.MSELoss()")
    if not (callable(loss_fn) and hasattr(loss_fn, "backward")):
        raise TypeError(f"fit expected loss_fn to be a Loss (callable, with backward), got {loss_fn!r}")
    not_a_class("optimizer", optimizer, "nn.optim.SGD(model.parameters(), lr=0.1)")
    if not (hasattr(optimizer, "step") and hasattr(optimizer, "zero_grad")):
        raise TypeError(f"fit expected an optimizer (with step and zero_grad), got {optimizer!r}")
    check_optimizer_owns(model, optimizer)
    check_pair("fit", x, y)
    check_batch_size("fit", batch_size)
    check_number("fit", "epochs", epochs, low=1, integer=True)
    check_number("fit", "initial_epoch", initial_epoch, low=0, integer=True)
    if initial_epoch > epochs:
        raise ValueError(f"fit expected initial_epoch <= epochs, got initial_epoch={initial_epoch}, epochs={epochs}")
    if isinstance(verbose, bool) or verbose not in (0, 1, 2):
        raise ValueError(f"fit expected verbose to be 0, 1 or 2, got {verbose!r}")
    if clip is not None:
        check_number("fit", "clip_grad_norm", clip, low=0, low_open=True)
    check_finite(_Caller("fit"), x, name="x")
    check_finite(_Caller("fit"), y, name="y")
    return metrics_mod.resolve("fit", metrics)


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
    check_number("fit", "validation_split", validation_split, low=0, high=1, low_open=True, high_open=True)
    n = len(x)
    cut = int(n * (1 - validation_split))
    if cut == 0:
        raise ValueError(f"fit: validation_split={validation_split} leaves no training data "
                         f"({n} samples -> 0 for training, {n} for validation)")
    return x[:cut], y[:cut], (x[cut:], y[cut:])
