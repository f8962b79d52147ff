"""Data-parallel ``fit``: what ``nn.fit(..., distributed=True)`` does on each rank.

One step on rank r of W, for a global batch of N rows of which this rank
holds n (``nanonet.data.batches(..., rank=r, world_size=W)``):

1. forward on the n rows; the loss ``L_r`` (a mean over the rows, or a sum);
2. one small ``Allreduce`` of ``[w_r * L_r, metric sums, non-finite flags]``
   with ``w_r = n / N`` (1 for ``reduction="sum"``): every rank now holds the
   loss of the global batch, and knows whether it is finite;
3. if it is: ``backward(loss_fn.backward(w_r))``, so that the sum of the
   ranks' gradients is the gradient of the global batch's loss, exactly as
   one process computes it (only the order of the sums differs), however
   unevenly the rows are shared; the gradients are summed in buckets
   (:class:`~nanonet.distributed.GradientReducer`), clipped, stepped;
4. the batch callbacks run; rank 0's stop decision is broadcast.

Every rank runs the callbacks (with the same global logs, so LR schedules
and EarlyStopping's restored weights agree), except those marked
``main_only`` (progress bar, checkpoints, printing), which run on rank 0
only. Rank 0's stop decision, after each batch and each epoch, is every
rank's. A rank that raises inside ``fit`` aborts all ranks
(``runtime.abort_on``); errors all ranks raise together (a non-finite loss,
ranks that disagree at start) are raised on every rank instead.
"""

import json
import math

import numpy as np

from .._checks import check_number
from .._rng import as_generator
from ..data import batches, shard_bounds
from ..fit_checks import check_gradients_finite, finite_check_plan, optimizer_parameters
from ..metrics import Tracker
from ..module import Buffer
from ..optim.clip import clip_grad_norm
from . import runtime
from .consistency import (broadcast_array, broadcast_state, check_same, describe_array, describe_model,
                          describe_optimizer, describe_rng)
from .reducer import GradientReducer

CALLER = "fit(distributed=True)"


class DataParallel:
    """The options of data-parallel training: ``fit(..., distributed=DataParallel(...))``.

    ``distributed=True`` is ``DataParallel()``.

    Args:
        bucket_cap_mb: the largest gradient bucket (one ``Allreduce``), MiB (torch's default 25).
        overlap: send each bucket while the rest of ``backward`` runs (non-blocking
            ``Iallreduce``); see docs/distributed.md for when it pays.
        gradient_as_bucket_view: None (default: the gradients become views of their buckets where
            that is safe, so no step copies them), True or False (never: copy in and out each step);
            see ``GradientReducer``.
        check_data: compare a checksum of x, y and the validation data across the ranks at start
            (shapes and dtypes are always compared).

    Example:
        >>> DataParallel(bucket_cap_mb=4, overlap=True)
        DataParallel(bucket_cap_mb=4.0, overlap=True, gradient_as_bucket_view=None, check_data=True)
    """

    def __init__(self, *, bucket_cap_mb=25.0, overlap=False, gradient_as_bucket_view=None, check_data=True):
        self.bucket_cap_mb = check_number("DataParallel", "bucket_cap_mb", bucket_cap_mb, low=0, low_open=True)
        for name, value in (("overlap", overlap), ("check_data", check_data)):
            if not isinstance(value, bool):
                raise TypeError(f"DataParallel expected {name} to be True or False, got {value!r}")
        if not (gradient_as_bucket_view is None or isinstance(gradient_as_bucket_view, bool)):
            raise TypeError(f"DataParallel expected gradient_as_bucket_view to be None, True or False, "
                            f"got {gradient_as_bucket_view!r}")
        self.overlap, self.gradient_as_bucket_view, self.check_data = overlap, gradient_as_bucket_view, check_data

    def __repr__(self):
        return (f"DataParallel(bucket_cap_mb={self.bucket_cap_mb}, overlap={self.overlap}, "
                f"gradient_as_bucket_view={self.gradient_as_bucket_view}, check_data={self.check_data})")


def data_parallel(distributed):
    """The trainer for ``fit``'s ``distributed`` argument: None for False, else a :class:`Trainer`."""
    if distributed is False or distributed is None:
        return None
    if distributed is True:
        distributed = DataParallel()
    if not isinstance(distributed, DataParallel):
        raise TypeError(f"fit expected distributed to be True, False or a nanonet.distributed.DataParallel, "
                        f"got {distributed!r}")
    return Trainer(distributed, runtime.init())


class Trainer:
    """One rank's part of a data-parallel ``fit`` (made by :func:`data_parallel`; used by ``nanonet.training``)."""

    def __init__(self, options, group):
        self.options, self.group = options, group
        self.is_main = group.rank == 0
        self.reducer, self.collective, self.where = None, False, "fit (at start)"

    # -- before training ----------------------------------------------------------------------------------
    def local_view(self, callbacks, verbose, rng):
        """This rank's callbacks and verbosity, and a shuffling seed shared by all ranks for ``rng=None``."""
        self.callback_names = [type(cb).__name__ for cb in callbacks]
        if not self.is_main:
            callbacks = [cb for cb in callbacks if not getattr(cb, "main_only", False)]
            verbose = 0
        # always broadcast (every rank must make the same calls); a rank given a seed keeps it, and if the
        # ranks disagree, the check at start says so
        seed = np.array([as_generator(None).integers(2**62) if self.is_main else 0], dtype=np.int64)
        shared = int(self.group.bcast(seed)[0])
        return callbacks, verbose, shared if rng is None else rng

    def start(self, ctx, x, y, val, metrics, shuffle, clip, begin):
        """Check that every rank runs the same training, broadcast rank 0's state, then ``begin()``."""
        model, opt = ctx.model, ctx.optimizer
        ctx.rank, ctx.world_size = self.group.rank, self.group.size
        description = {**describe_model(model), **describe_optimizer(opt), **describe_rng(ctx.rng),
                       "fit loss": repr(ctx.loss_fn), "fit callbacks": repr(self.callback_names),
                       "fit options": repr((ctx.epochs, ctx.initial_epoch, ctx.batch_size, shuffle, clip,
                                            list(metrics), ctx.log_keys, self.options))}
        arrays = {"x": x, "y": y, **({"x_val": val[0], "y_val": val[1]} if val else {})}
        for name, arr in arrays.items():
            if self.options.check_data:
                description.update(describe_array(name, arr))
            else:
                description[f"data {name}"] = f"{arr.dtype}{arr.shape}"
        check_same(self.group, description, CALLER)
        broadcast_state(self.group, model, opt)
        self.reducer = GradientReducer(model.parameters(), self.group, bucket_cap_mb=self.options.bucket_cap_mb,
                                       gradient_as_bucket_view=self.options.gradient_as_bucket_view)
        if self.options.overlap:
            self.reducer.attach(model)
        # the reducer may have rebound the gradients as views of its buckets: lay the finite check out again
        ctx.finite_check = finite_check_plan(optimizer_parameters(opt))
        self.collective = any(getattr(m, "collective", False) for m in model.modules())
        local = [m for m in model.modules() if not getattr(m, "collective", False)] if self.group.size > 1 else []
        self.buffers = [b for m in local for b in vars(m).values() if isinstance(b, Buffer)]
        self.together(begin)

    def together(self, fn):
        """Run ``fn`` on every rank: raise its error together if all failed, abort if only some did."""
        failed = None
        try:
            fn()
        except Exception as exc:
            failed = exc
        count = self.group.allreduce_sum(np.array([failed is not None], dtype=np.int64))[0]
        if failed is not None and count == self.group.size:
            raise runtime.collective_error(failed)
        if failed is not None:
            runtime.abort_on(failed, self.where, self.group)
        if count:
            self.group.barrier()  # the failing ranks abort; this never returns

    # -- training -------------------------------------------------------------------------------------
    def train_epoch(self, ctx, x, y, epoch, metrics, shuffle, clip):
        """One epoch of data-parallel steps; returns the global epoch logs (as ``_train_epoch``)."""
        model, loss_fn, group = ctx.model, ctx.loss_fn, self.group
        model.train()
        n_rows, batch_size = len(x), ctx.batch_size
        per_row = getattr(loss_fn, "reduction", "mean") != "sum"
        stats = np.zeros(1 + group.size)
        total, count = 0.0, 0
        tracker = Tracker(metrics) if metrics else None
        shards = batches(x, y, batch_size, shuffle=shuffle, rng=ctx.rng, rank=group.rank, world_size=group.size)
        for b, (xb, yb) in enumerate(shards):
            self.where = f"fit (epoch {epoch + 1}, batch {b + 1})"
            n_global, n = min(batch_size, n_rows - b * batch_size), len(xb)
            weight = n / n_global if per_row else 1.0
            model.zero_grad()
            pred = self._local_losses(ctx, xb, yb, weight, stats)
            group.allreduce_sum(stats)
            bad = np.flatnonzero(stats[1:])
            loss = float(stats[0])
            finite = bad.size == 0 and math.isfinite(loss)
            if finite:
                if tracker is not None and n:
                    tracker.update(pred, yb)
                self._backward_and_reduce(ctx, pred, weight, n)
                try:  # the reduced gradients are the same on every rank: every rank raises together
                    check_gradients_finite(ctx, epoch + 1, b + 1, loss)
                except FloatingPointError as exc:
                    raise runtime.collective_error(exc) from None
                if clip is not None:
                    clip_grad_norm(model.parameters(), clip)
                ctx.optimizer.step()
            total += loss * n_global
            count += n_global
            for cb in ctx.callbacks:
                hook = getattr(cb, "on_batch_end", None)
                if hook is not None:
                    hook(b, {"loss": loss, "size": n_global})
            self.agree_stop(ctx)
            if not finite and not ctx.stop_training:
                ranks = ", ".join(str(r) for r in bad) or "none: their sum overflowed"
                raise runtime.collective_error(FloatingPointError(
                    f"fit: the loss became {loss} at epoch {epoch + 1}, batch {b + 1} (non-finite on rank(s) {ranks} of "
                    f"{group.size}); that batch was not stepped on. Lower the learning rate, clip gradients "
                    f"(clip_grad_norm=...), or pass callbacks=[TerminateOnNaN()] to stop cleanly and keep the "
                    f"History"))
            if ctx.stop_training:
                break
        for buffer in self.buffers:   # e.g. BatchNorm1d's per-rank running statistics: rank 0's for all
            broadcast_array(group, buffer.value)
        logs = {"loss": total / count}
        if tracker is not None:
            logs.update(self._global_metrics(tracker))
        return logs

    def _global_metrics(self, tracker):
        """Every rank's metric statistics, merged in rank order: the metrics of the whole epoch.

        Sent once per epoch as text (``repr`` of a float is exact, so nothing is rounded).
        """
        local = json.dumps({name: None if t is None else np.asarray(t).tolist() for name, t in tracker.totals.items()})
        merged = dict.fromkeys(tracker.metrics)
        for text in self.group.allgather_text(local):
            for name, value in json.loads(text).items():
                if value is not None:
                    value = np.asarray(value, dtype=float)
                    merged[name] = value if merged[name] is None else tracker.metrics[name].merge(merged[name], value)
        tracker.totals = merged
        return tracker.result()

    def _local_losses(self, ctx, xb, yb, weight, stats):
        """Forward on this rank's rows; fill ``stats`` with its weighted loss and non-finite flag."""
        stats[:] = 0.0
        n = len(xb)
        if not n and not self.collective:
            return None
        pred = ctx.model(xb)
        if not n:
            return pred
        try:
            loss = ctx.loss_fn(pred, yb)
        except FloatingPointError:          # the model's output holds NaN/Inf (the data were checked)
            loss = math.nan
        stats[0] = loss * weight
        if not math.isfinite(loss):
            stats[1 + self.group.rank] = 1.0
        return pred

    def _backward_and_reduce(self, ctx, pred, weight, n):
        reducer = self.reducer
        if reducer.overlap:
            reducer.begin()
        if n:
            ctx.model.backward(ctx.loss_fn.backward(weight))
        elif pred is not None:               # an empty share, and collective layers that every rank must join
            ctx.model.backward(np.zeros_like(pred))
        if reducer.overlap:
            reducer.finish()
        else:
            reducer.allreduce()

    def agree_stop(self, ctx):
        """Make rank 0's stop decision (and its reason) every rank's."""
        if self.group.size == 1:
            return
        flag = self.group.bcast(np.array([ctx.stop_training], dtype=np.int64))[0]
        if flag:
            reason = self.group.bcast_text(ctx.stop_reason or "", root=0)
            ctx.stop_training, ctx.stop_reason = True, reason or None
        else:
            ctx.stop_training, ctx.stop_reason = False, None

    def evaluate(self, evaluate, model, loss_fn, x, y, batch_size, metrics):
        """The validation loss and metrics, each rank taking its share of the rows.

        The loss is the row-weighted mean (summed over the ranks); the metrics
        merge every rank's statistics, so they equal one process's exactly.
        """
        lo, hi = shard_bounds(len(x), self.group.rank, self.group.size)
        total = np.zeros(1)
        tracker = Tracker(metrics) if metrics else None
        if hi > lo:
            total[0] = evaluate(model, loss_fn, x[lo:hi], y[lo:hi], batch_size=batch_size)["loss"] * (hi - lo)
            if tracker is not None:
                was_training = model.training
                model.eval()
                try:
                    for start in range(lo, hi, batch_size):
                        stop = min(start + batch_size, hi)
                        tracker.update(model(x[start:stop]), y[start:stop])
                finally:
                    model.train(was_training)
        self.group.allreduce_sum(total)
        scores = {"loss": float(total[0]) / len(x)}
        if tracker is not None:
            scores.update(self._global_metrics(tracker))
        return scores

    # -- the end ----------------------------------------------------------------------------------------
    def fail(self, exc):
        """An exception left ``fit`` on this rank: abort every rank unless all ranks raised it together."""
        if self.group.size > 1 and isinstance(exc, Exception) and not runtime.is_collective(exc):
            runtime.abort_on(exc, self.where, self.group)

    def close(self):
        if self.reducer is not None and self.reducer.overlap:
            self.reducer.detach()

