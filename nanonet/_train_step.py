"""What ``fit``'s inner loop decides once per epoch, and its batches (see ``nanonet.training._train_epoch``)."""

import functools
import inspect

import numpy as np

from ._rng import as_generator
from .containers.plan import layer_key
from .layers.linear import Linear
from .module import Parameter


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


def zero_grad_of(model, optimizer, params=None):
    """``optimizer.zero_grad`` when it zeroes exactly the model's parameters (one fill per flat block), else the model's."""
    owned = getattr(optimizer, "parameters", None)
    if callable(owned) and callable(getattr(optimizer, "zero_grad", None)):
        try:
            mine = model.parameters() if params is None else params
            same = {id(p) for p in owned()} == {id(p) for p in mine}
        except TypeError:
            same = False
        if same:
            return optimizer.zero_grad
    return model.zero_grad


class GradZeroing:
    """How ``fit`` zeroes the gradients each step: by promise where a Linear will write them, else by filling.

    Decided once per epoch: each Linear (the class itself, no method replaced
    on the instance) that alone holds its weight and bias in the model gets
    its grads zeroed *by promise*: ``zero()`` sets its ``_grads_zeroed`` flag
    instead of filling them, and its backward writes the product instead of
    adding it into them (one pass less, and no fill; see ``Linear._accumulate``).
    Every other parameter of the model is filled with 0 as before (all of
    them, with ``zero_grad_of``'s call, when no Linear qualifies).
    ``settle()`` keeps any promise a backward did not (a layer that did not
    run): fit calls it after backward and on every way out of a step, so that
    outside the step every ``.grad`` holds what zero_grad + backward give.
    Each step checks, by identity, that the layers still hold the same
    class and Parameters and no ``backward`` replaced on the instance; if
    not, the whole model is filled the plain way. Code that fills ``.grad``
    itself (the gradient checker, a user's loop) never sees a promise: a
    backward then always adds.
    """

    def __init__(self, model, optimizer):
        modules = model.modules()
        holders, params = {}, []  # how many modules hold each parameter; the parameters, as model.parameters()
        for m in modules:
            for _, p in m._named_own(Parameter):
                count = holders.get(id(p), 0)
                if not count:
                    params.append(p)
                holders[id(p)] = count + 1
        self.fill = zero_grad_of(model, optimizer, params)
        layers = [m for m in modules if m.__class__ is Linear and layer_key(m) is Linear
                  and holders[id(m.weight)] == 1 and (m.bias is None or holders[id(m.bias)] == 1)]
        self.layers = layers
        self.items = [(m, m.weight, m.bias) for m in layers]
        promised = {id(m.weight) for m in layers} | {id(m.bias) for m in layers if m.bias is not None}
        self.others = [p for p in params if id(p) not in promised]

    def zero(self):
        for m, weight, bias in self.items:
            if m.__class__ is not Linear or m.weight is not weight or m.bias is not bias or "backward" in m.__dict__:
                self.settle()
                self.fill()
                return
        for m in self.layers:
            m._grads_zeroed = True
        for p in self.others:
            p.grad.fill(0)

    def settle(self):
        """Fill the grads of every layer whose promise is still open (its backward did not run)."""
        for m in self.layers:
            if m._grads_zeroed:
                m._grads_zeroed = False
                m.weight.grad.fill(0)
                if m.bias is not None:
                    m.bias.grad.fill(0)


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
