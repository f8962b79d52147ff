"""What ``fit``'s inner loop decides once per epoch, and its batches (see ``nanonet.training._train_epoch``)."""

import functools
import inspect

import numpy as np

from ._rng import as_generator


def epoch_batches(ctx, x, y, shuffle):
    """The batches of ``nanonet.data.batches`` (the same order, drawn from ``ctx.rng``), without fresh arrays.

    Shuffled rows are gathered (``np.take(..., out=)``) into two buffers kept
    in ``ctx.scratch`` for the whole run; every batch is a view of them, or
    of ``x`` and ``y`` themselves when not shuffling.
    """
    n, size = len(x), ctx.batch_size
    if shuffle:
        order = as_generator(ctx.rng).permutation(n)
        bufs = ctx.scratch.get("epoch")
        if bufs is None or bufs[0].shape != x.shape or bufs[0].dtype != x.dtype \
                or bufs[1].shape != y.shape or bufs[1].dtype != y.dtype:
            bufs = ctx.scratch["epoch"] = (np.empty(x.shape, x.dtype), np.empty(y.shape, y.dtype))
        x = x.take(order, axis=0, out=bufs[0], mode="clip")  # "clip": no index is out of range, and
        y = y.take(order, axis=0, out=bufs[1], mode="clip")  # out= is then filled without a copy
    for start in range(0, n, size):
        yield x[start:start + size], y[start:start + size]


def zero_grad_of(model, optimizer):
    """``optimizer.zero_grad`` when it zeroes exactly the model's parameters (one fill per flat block), else the model's."""
    owned = getattr(optimizer, "parameters", None)
    if callable(owned) and callable(getattr(optimizer, "zero_grad", None)):
        try:
            same = {id(p) for p in owned()} == {id(p) for p in model.parameters()}
        except TypeError:
            same = False
        if same:
            return optimizer.zero_grad
    return model.zero_grad


_TAKES_INPUT_GRAD = {}  # backward function -> whether it has an ``input_grad`` parameter


def backward_of(model):
    """``model.backward`` that skips dJ/dx of the data where the model offers it (``input_grad=False``)."""
    method = model.backward
    key = getattr(method, "__func__", method)
    takes = _TAKES_INPUT_GRAD.get(key)
    if takes is None:
        try:
            takes = "input_grad" in inspect.signature(method).parameters
        except (TypeError, ValueError):
            takes = False
        if len(_TAKES_INPUT_GRAD) < 256:
            _TAKES_INPUT_GRAD[key] = takes
    return functools.partial(model.backward, input_grad=False) if takes else model.backward
