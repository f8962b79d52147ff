"""Callbacks for ``nn.fit``: early stopping, checkpoints, NaN guard, progress bar.

A callback is any object with some of the hooks ``on_train_begin(logs)``,
``on_epoch_begin(epoch, logs)``, ``on_batch_end(batch, logs)``,
``on_epoch_end(epoch, logs)`` and ``on_train_end(logs)``; ``fit`` first calls
``set_context(context)`` with a :class:`~nanonet.training.FitContext` (model,
optimizer, rng, history, ...), and a callback stops training with
``self.context.stop(reason)``. Epoch logs hold ``loss`` (and ``val_loss``,
metrics); batch logs ``loss`` and ``size``.

Epoch numbers (Keras' convention, see :func:`nanonet.fit`): the hooks receive
0-based indices (``on_epoch_end(epoch, logs)`` gets 0 for the first epoch),
and everything a user reads (messages, ``History.epoch``, the attributes
``stopped_epoch``, ``best_epoch``, ``TerminateOnNaN.epoch``/``batch`` and a
checkpoint's ``{epoch}``) counts from 1: the index plus one.

In data-parallel training (``fit(..., distributed=True)``) every rank runs
the callbacks with the same global logs, except those whose ``main_only`` is
True (the progress bar, checkpoints, printing), which run on rank 0 only;
rank 0's decision to stop is every rank's.
"""

import math
import os
import string
import sys
import time

from . import serialization
from ._checks import check_number


class Callback:
    """Base class with empty hooks; ``self.context`` is set by ``fit``.

    ``main_only = True`` (a class or instance attribute) runs the callback on
    rank 0 only in data-parallel training: for side effects such as printing
    and writing files, never for decisions every rank must share.
    """

    context = None
    main_only = False

    def set_context(self, context):
        self.context = context

    def on_train_begin(self, logs=None):
        pass

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_batch_end(self, batch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass

    def __repr__(self):
        return f"{type(self).__name__}()"


class LambdaCallback(Callback):
    """Hooks given as functions, e.g. ``LambdaCallback(on_epoch_end=lambda epoch, logs: print(epoch))``.

    ``main_only=True``: run only on rank 0 in data-parallel training (e.g. to print).

    Example:
        >>> seen = []
        >>> cb = LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(epoch))
        >>> cb.on_epoch_end(3, {"loss": 1.0}); seen
        [3]
    """

    def __init__(self, main_only=False, **hooks):
        if not isinstance(main_only, bool):
            raise TypeError(f"LambdaCallback expected main_only to be True or False, got {main_only!r}")
        self.main_only = main_only
        for name, fn in hooks.items():
            if not name.startswith("on_") or not hasattr(Callback, name) or not callable(fn):
                raise TypeError(f"LambdaCallback expected hook functions such as on_epoch_end=..., got {name}={fn!r}")
            setattr(self, name, fn)


class _Monitor:
    """Is ``current`` better than ``best`` by more than ``min_delta``? (Keras' rule)."""

    def __init__(self, owner, monitor, mode, min_delta):
        if not isinstance(monitor, str) or not monitor:
            raise TypeError(f"{owner} expected monitor to be the name of a logged value such as 'val_loss', "
                            f"got {monitor!r}")
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"{owner} expected mode 'auto', 'min' or 'max', got {mode!r}")
        min_delta = check_number(owner, "min_delta", min_delta)
        if mode == "auto":
            mode = "max" if monitor.endswith(("acc", "accuracy", "auc", "r2")) else "min"
        self.owner, self.monitor, self.mode, self.min_delta = owner, monitor, mode, abs(min_delta)

    def initial(self):
        return math.inf if self.mode == "min" else -math.inf

    def improved(self, current, best):
        if self.mode == "min":
            return current < best - self.min_delta
        return current > best + self.min_delta

    def check_keys(self, context):
        if self.monitor not in context.log_keys:
            raise ValueError(f"{self.owner} monitors {self.monitor!r}, but fit logs only {context.log_keys}"
                             + ("; pass validation_data or validation_split" if self.monitor.startswith("val_")
                                else ""))


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved for ``patience`` epochs (Keras' semantics).

    An epoch improves when the value beats the best so far by more than
    ``min_delta`` (below it for ``mode="min"``, above for ``"max"``; ``"auto"``
    picks max for names ending in acc/accuracy/auc/r2, the higher-is-better
    metrics). After ``patience`` epochs without improvement, training stops. With
    ``restore_best_weights=True`` the model gets the weights of the best
    epoch back at the end of training (whether or not it stopped early).

    Attributes after fit: ``stopped_epoch`` (the number, from 1, of the epoch
    it stopped in; None if it never stopped), ``best``, ``best_epoch`` (from 1).
    """

    def __init__(self, monitor="val_loss", min_delta=0.0, patience=0, mode="auto", baseline=None,
                 restore_best_weights=False, verbose=0):
        patience = check_number("EarlyStopping", "patience", patience, low=0, integer=True)
        if baseline is not None:
            baseline = check_number("EarlyStopping", "baseline", baseline)
        self._monitor = _Monitor("EarlyStopping", monitor, mode, min_delta)
        self.monitor, self.patience, self.baseline = monitor, patience, baseline
        self.restore_best_weights, self.verbose = bool(restore_best_weights), verbose

    def on_train_begin(self, logs=None):
        self._monitor.check_keys(self.context)
        self.wait, self.stopped_epoch, self.best_epoch = 0, None, None
        self.best = self._monitor.initial()
        self.best_weights = None

    def on_epoch_end(self, epoch, logs=None):
        current = logs[self.monitor]
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.context.model.state_dict()
        self.wait += 1
        if self._monitor.improved(current, self.best):
            self.best, self.best_epoch = current, epoch + 1
            if self.restore_best_weights:
                self.best_weights = self.context.model.state_dict()
            if self.baseline is None or self._monitor.improved(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > self.context.initial_epoch:
            self.stopped_epoch = epoch + 1
            self.context.stop(f"EarlyStopping: {self.monitor} did not improve for {self.wait} epoch(s) "
                              f"(best {self.best:.6g} at epoch {self.best_epoch}); stopped at epoch {epoch + 1}")

    def on_train_end(self, logs=None):
        if self.restore_best_weights and self.best_weights is not None:
            self.context.model.load_state_dict(self.best_weights)
            if self.verbose and self.context.rank == 0:
                print(f"EarlyStopping: restored the weights of epoch {self.best_epoch}", file=sys.stderr)

    def __repr__(self):
        return (f"EarlyStopping(monitor={self.monitor!r}, min_delta={self._monitor.min_delta}, "
                f"patience={self.patience}, restore_best_weights={self.restore_best_weights})")


class ModelCheckpoint(Callback):
    """Save model, optimizer, epoch and rng state with ``nn.save`` after each epoch.

    ``path`` may hold format fields: ``{epoch}`` (epochs completed, from 1)
    and any log key, e.g. ``"ckpt-{epoch:03d}-{val_loss:.3f}.npz"``. With
    ``save_best_only=True`` a file is written only when ``monitor`` improves.

    The meta saved with the weights (``nn.load`` returns it): ``epoch`` (epochs
    completed: pass it as ``fit(initial_epoch=...)`` to resume), ``rng_state``
    (rebuild the shuffling generator with
    ``nanonet.serialization.generator_from_state``), ``logs`` (this epoch's)
    and ``best`` (the best monitored value so far).

    In data-parallel training only rank 0 writes (every rank holds the same
    state); to resume, ``nn.load`` the file on every rank.
    """

    main_only = True

    def __init__(self, path, monitor="val_loss", save_best_only=False, mode="auto", verbose=0):
        if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
            raise TypeError(f"ModelCheckpoint expected path to be a non-empty file name (str or os.PathLike), "
                            f"got {path!r}")
        self.path, self.monitor, self.save_best_only, self.verbose = str(path), monitor, bool(save_best_only), verbose
        self._fields = _format_fields(self.path)
        self._monitor = _Monitor("ModelCheckpoint", monitor, mode, 0.0)

    def on_train_begin(self, logs=None):
        if self.save_best_only:
            self._monitor.check_keys(self.context)
        _check_pattern(self.path, self._fields, self.context.log_keys)
        self.best = self._monitor.initial()
        self.saved = []

    def on_epoch_end(self, epoch, logs=None):
        current = logs.get(self.monitor)
        if self.save_best_only:
            if not self._monitor.improved(current, self.best):
                return
        if current is not None and self._monitor.improved(current, self.best):
            self.best = current
        path = self.path.format(epoch=epoch + 1, **logs)
        ctx = self.context
        serialization.save(path, ctx.model, ctx.optimizer, epoch=epoch + 1, rng_state=ctx.rng.bit_generator.state,
                           logs=logs, best=self.best if math.isfinite(self.best) else None)
        self.saved.append(path)
        if self.verbose:
            print(f"ModelCheckpoint: saved {path} (epoch {epoch + 1})", file=sys.stderr)

    def __repr__(self):
        return f"ModelCheckpoint({self.path!r}, monitor={self.monitor!r}, save_best_only={self.save_best_only})"


def _format_fields(path):
    """The named fields of a path pattern such as ``ckpt-{epoch:03d}-{val_loss:.3f}.npz``; ValueError if malformed."""
    try:
        fields = [field for _, field, _, _ in string.Formatter().parse(path) if field is not None]
    except ValueError as exc:
        raise ValueError(f"ModelCheckpoint: the path pattern {path!r} is malformed ({exc}); "
                         f"write fields as {{epoch}} or {{val_loss:.3f}}, a literal brace as {{{{ or }}}}") from None
    for field in fields:
        if not field or field.isdigit():
            raise ValueError(f"ModelCheckpoint: the path pattern {path!r} has a positional field {{{field}}}; "
                             f"name it, e.g. {{epoch}}")
    return fields


def _check_pattern(path, fields, log_keys):
    """Before the first epoch: every field is known, the pattern formats, and its folder exists."""
    known = ["epoch", *log_keys]
    unknown = sorted({f.split(".")[0].split("[")[0] for f in fields} - set(known))
    if unknown:
        raise ValueError(f"ModelCheckpoint: the path pattern {path!r} uses {unknown}, which fit does not log; "
                         f"it can use {known}")
    try:
        example = path.format(epoch=1, **dict.fromkeys(log_keys, 0.5))
    except (ValueError, TypeError, IndexError, KeyError, AttributeError) as exc:
        raise ValueError(f"ModelCheckpoint: the path pattern {path!r} cannot be formatted "
                         f"({type(exc).__name__}: {exc})") from None
    folder = os.path.dirname(os.path.abspath(example))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"ModelCheckpoint: the folder of {path!r} does not exist: {folder}")


class TerminateOnNaN(Callback):
    """Stop training when a batch loss is NaN or Inf, and say where.

    ``fit`` does not step on a non-finite loss, so the model keeps the weights
    from before that batch. After the run, ``epoch`` and ``batch`` say where
    it happened (both counted from 1) and ``History.stop_reason`` holds the message (printed to
    stderr unless ``verbose=0``).
    """

    def on_train_begin(self, logs=None):
        self.epoch = self.batch = None
        self._epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_batch_end(self, batch, logs=None):
        loss = logs["loss"]
        if not math.isfinite(loss):
            self.epoch, self.batch = self._epoch + 1, batch + 1
            message = (f"TerminateOnNaN: the loss became {loss} at epoch {self.epoch}, batch {self.batch}; "
                       f"training stopped with the weights from before that batch")
            self.context.stop(message)
            if self.context.verbose:
                print(message, file=sys.stderr)


def _duration(seconds):
    """``41 ms``, ``2.3 s``: an epoch's wall time for the progress line."""
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def _has_tqdm():
    try:
        import tqdm  # noqa: F401
    except ImportError:
        return False
    return True


class ProgressBar(Callback):
    """A progress bar over all the batches of a run (``fit(verbose=1)`` adds one).

    Uses tqdm if installed (the ``progress`` extra: ``pip install ".[progress]"``), otherwise a
    plain line rewritten in place (``\\r``) when ``file`` is a terminal, and one
    line per epoch when it is not (``dynamic=False``, as ``fit(verbose=2)``).
    Each epoch ends with its logs and its wall time (training plus validation),
    e.g. ``epoch 3/10 - loss 0.1234 - val_loss 0.2345 - 41 ms``; in place, the
    finished epoch's line stays and the next epoch starts a new one.
    In data-parallel training it runs on rank 0 only.

    Args:
        file: where to write (default: ``sys.stdout`` at the start of training).
        use_tqdm: True, False, or None (tqdm if installed).
        dynamic: rewrite one line in place; None: only if ``file`` is a terminal.
    """

    main_only = True

    def __init__(self, file=None, use_tqdm=None, dynamic=None, min_interval=0.1):
        min_interval = check_number("ProgressBar", "min_interval", min_interval, low=0)
        if file is not None and not callable(getattr(file, "write", None)):
            raise TypeError(f"ProgressBar expected file to be a writable text stream (or None), got {file!r}")
        self.file, self.use_tqdm, self.dynamic, self.min_interval = file, use_tqdm, dynamic, min_interval

    def on_train_begin(self, logs=None):
        ctx = self.context
        self._file = self.file or sys.stdout
        self._total = (ctx.epochs - ctx.initial_epoch) * ctx.steps_per_epoch
        self._done, self._last, self._epoch = 0, 0.0, ctx.initial_epoch
        use_tqdm = _has_tqdm() if self.use_tqdm is None else self.use_tqdm
        self._tqdm = None
        if use_tqdm:
            from tqdm.auto import tqdm

            self._tqdm = tqdm(total=self._total, file=self._file, unit="batch", dynamic_ncols=True)
        dynamic = self.dynamic
        if dynamic is None:
            dynamic = bool(getattr(self._file, "isatty", lambda: False)())
        self._dynamic = dynamic

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._started = time.monotonic()

    def on_batch_end(self, batch, logs=None):
        self._done += 1
        now = time.monotonic()
        if self._tqdm is not None:
            self._tqdm.update(1)
            if now - self._last >= self.min_interval:
                self._tqdm.set_postfix_str(f"epoch {self._epoch + 1}/{self.context.epochs} loss {logs['loss']:.4g}",
                                           refresh=False)
                self._last = now
        elif self._dynamic and now - self._last >= self.min_interval:
            self._write_line(f"loss {logs['loss']:.4g}", end="")
            self._last = now

    def on_epoch_end(self, epoch, logs=None):
        text = " - ".join([f"{k} {v:.4g}" for k, v in logs.items()] + [_duration(time.monotonic() - self._started)])
        if self._tqdm is not None:
            self._tqdm.set_postfix_str(f"epoch {epoch + 1}/{self.context.epochs} {text}")
        elif self._dynamic:
            self._write_line(text, end="\n")
        else:
            self._file.write(f"epoch {epoch + 1}/{self.context.epochs} - {text}\n")
            self._file.flush()

    def _write_line(self, text, end):
        width = 20
        frac = self._done / self._total if self._total else 1.0
        bar = "=" * int(frac * width)
        self._file.write(f"\r[{bar:<{width}}] {self._done}/{self._total} "
                         f"epoch {self._epoch + 1}/{self.context.epochs} {text}\033[K{end}")
        self._file.flush()

    def on_train_end(self, logs=None):
        if self._tqdm is not None:
            self._tqdm.close()

    def __repr__(self):
        return f"ProgressBar(use_tqdm={self.use_tqdm}, dynamic={self.dynamic})"
