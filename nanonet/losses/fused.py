"""A fused cross-entropy for integer class targets: the same loss and gradient in fewer passes, no temporaries.

``CrossEntropyLoss.__call__`` takes this path for logits ``(N, C)`` and
integer targets ``(N,)`` when the loss has no option the path does not know
(its attributes are within ``KNOWN``, and ``weight``, ``label_smoothing`` and
``ignore_index`` are at values that change nothing: no weights, no smoothing,
an ignore index that no valid class can equal); anything else goes through ``forward`` as before,
with the same checks and messages. The path keeps the shifted logits,
their exponentials and the row sums in private buffers (two sets taking
turns, so that the cache of the last good call survives a call that raises),
and reads the target's logit by index instead of building a one-hot matrix.

Checks, before anything is computed: the class indices are in range (one
reduction of the targets viewed as unsigned) and the logits are finite;
otherwise the ordinary path runs and raises its usual error.
"""

import numpy as np

from .._contract import UNCHECKED

#: the attributes a CrossEntropyLoss has when it has no option beyond ``reduction`` (the fused path's domain).
KNOWN = frozenset({"reduction", "weight", "ignore_index", "label_smoothing", "_cache", "_fused", "_last_output"})


class Fused:
    """The cache of a fused forward (exp of the shifted logits, row sums, the targets' flat indices), and scratch."""

    __slots__ = ("exp", "flat", "sums", "sums_flat", "index", "rows", "starts", "peak", "peak_flat", "picked",
                 "ones_rows", "ones_classes")

    def __init__(self, pred):
        n, c = pred.shape
        self.exp = np.empty(pred.shape, pred.dtype)
        self.flat = self.exp.reshape(-1)
        self.sums = np.empty((n, 1), pred.dtype)
        self.sums_flat = self.sums.reshape(-1)
        self.index = np.empty(n, np.intp)
        self.rows = n
        self.starts = np.arange(n, dtype=np.intp) * c
        self.peak = np.empty((n, 1), pred.dtype)
        self.peak_flat = self.peak.reshape(-1)
        self.picked = np.empty(n, pred.dtype)
        self.ones_rows, self.ones_classes = np.ones(n, pred.dtype), np.ones(c, pred.dtype)


def forward(loss, pred, target):
    """The loss, or None when the ordinary path must run (another case, an out-of-range class, NaN/Inf logits).

    Sums are BLAS products with vectors of ones (cheaper than reductions at
    these sizes).
    """
    if not (pred.__class__ is np.ndarray and target.__class__ is np.ndarray and pred.ndim == 2
            and target.ndim == 1 and pred.dtype.kind == "f" and target.dtype.kind in "iu"
            and target.shape[0] == pred.shape[0] > 0 and pred.shape[1] > 0
            and loss.reduction in ("mean", "sum") and loss.__dict__.keys() <= KNOWN
            and loss.weight is None and loss.label_smoothing == 0 and loss.ignore_index < 0):
        return None  # (a negative ignore_index equals no valid class: a target equal to it is out of range below)
    c = pred.shape[1]
    unsigned = target if target.dtype.kind == "u" else target.view(target.dtype.str.replace("i", "u"))
    if int(np.maximum.reduce(unsigned)) >= c or not np.logical_and.reduce(np.isfinite(pred), axis=None):
        return None                         # (a negative class is a huge unsigned one)
    bufs = loss._fused  # the spare set: not the one the cache of the last good call uses
    if bufs is None or bufs.exp.shape != pred.shape or bufs.exp.dtype != pred.dtype:
        bufs = Fused(pred)
    shifted, picked = bufs.exp, bufs.picked
    np.maximum.reduce(pred, axis=1, keepdims=True, out=bufs.peak)
    np.subtract(pred, bufs.peak, out=shifted)
    np.add(bufs.starts, target, out=bufs.index)
    bufs.flat.take(bufs.index, out=picked, mode="clip")
    np.exp(shifted, out=shifted)
    np.dot(shifted, bufs.ones_classes, out=bufs.sums_flat)
    np.log(bufs.sums_flat, out=bufs.peak_flat)
    np.subtract(bufs.peak_flat, picked, out=picked)  # -log_softmax(z)_i,t_i per row
    total = float(np.dot(bufs.ones_rows, picked))
    loss._fused, loss._cache = loss._cache if loss._cache.__class__ is Fused else None, bufs
    loss._last_output = UNCHECKED  # for the contract's backward check: forward did not run
    return total / bufs.rows if loss.reduction == "mean" else total


def backward(loss, grad):
    """dJ/dlogits of the last fused forward: ``(softmax - onehot) * scale``, a fresh array."""
    cache = loss._cache
    out = np.divide(cache.exp, cache.sums)
    out.reshape(-1)[cache.index] -= 1
    scale = float(grad) / cache.rows if loss.reduction == "mean" else float(grad)
    return np.multiply(out, scale, out=out)
