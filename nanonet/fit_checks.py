"""What ``fit`` checks about its optimizer and gradients, apart from the loop (``nanonet.training``).

- ``not_a_class``: a class passed where an instance is needed (``loss_fn=nn.MSELoss``);
- ``check_optimizer_owns``: the optimizer steps only the model's parameters
  (one over another model's would train nothing, silently);
- ``check_gradients_finite``: before each step, the gradient of every
  stepped parameter is finite, else a ``FloatingPointError`` names it.
"""

import math
from operator import attrgetter, is_

import numpy as np

from . import _flat

_GRAD = attrgetter("grad")


def not_a_class(name, value, example):
    if isinstance(value, type):
        raise TypeError(f"fit expected {name} to be an instance, got the class {value.__name__}; "
                        f"create one first, e.g. {example}")


def optimizer_parameters(optimizer):
    params = getattr(optimizer, "parameters", None)
    if callable(params):
        return list(params())
    return [p for group in getattr(optimizer, "param_groups", ()) for p in group["params"]]


def check_optimizer_owns(model, optimizer):
    """Refuse an optimizer over parameters that are not the model's: it would train nothing of it."""
    params = optimizer_parameters(optimizer)
    mine = {id(p) for p in model.parameters()}
    foreign = [i for i, p in enumerate(params) if id(p) not in mine]
    if foreign:
        first = params[foreign[0]]
        raise ValueError(
            f"fit: {len(foreign)} of the optimizer's {len(params)} parameters are not parameters of "
            f"{model.short_repr()} (the first: #{foreign[0]}, shape {tuple(first.value.shape)}); the optimizer "
            f"would update arrays the model never uses. Build it over this model: "
            f"{type(optimizer).__name__}(model.parameters(), ...)")


def finite_check_plan(params):
    """What ``check_gradients_finite`` reads, made once per fit: ``(params, [(run, block, ones)])``.

    Gradients laid out in one block (``Sequential`` and ``Graph`` flatten
    theirs, see ``nanonet._flat``) are checked with one dot product per
    block; any other gradient with one of its own.
    """
    items = []
    for run in _flat.runs(params):
        grad = run.grad if run.grad is not None else run.params[0].grad
        items.append((run, run.grad, np.ones(grad.size, dtype=grad.dtype), run.grads))
    return list(params), items


def check_gradients_finite(ctx, epoch, batch, loss):
    """Raise ``FloatingPointError`` naming the parameter whose gradient holds NaN/Inf (before any step).

    One BLAS dot with a vector of ones per gradient block: the sum of a
    gradient is finite when every element is (NaN and Inf propagate; a
    finite sum only overflows for elements near 1e308, and then each element
    is looked at). A block whose parameters' gradients were replaced since
    the plan was made is not trusted: each gradient is then looked at.
    """
    params, items = ctx.finite_check or ((), ())
    total, dot = 0.0, np.dot
    try:
        for run, block, ones, grads in items:
            if block is None:
                total += dot(run.params[0].grad.ravel(), ones)
            elif all(map(is_, map(_GRAD, run.params), grads)):  # the block still holds the gradients
                total += dot(block, ones)
            else:
                total = math.nan
                break
    except (ValueError, AttributeError, TypeError):  # a .grad replaced by another shape or type: look closer
        total = math.nan
    if math.isfinite(total):
        return
    names = {id(p): name for name, p in ctx.model.named_parameters()}
    for p in params:
        if not isinstance(p.grad, np.ndarray) or p.grad.dtype.kind != "f":
            continue  # the optimizer names a .grad of the wrong type or shape
        bad = ~np.isfinite(p.grad)
        if bad.any():
            raise FloatingPointError(
                f"fit: the gradient of {names.get(id(p), 'a parameter')!r} {p.grad.shape} became non-finite "
                f"({int(bad.sum())} NaN/Inf value(s)) at epoch {epoch}, batch {batch}, although the loss was "
                f"finite ({loss:.6g}); that batch was not stepped on. Lower the learning rate or clip gradients "
                f"(clip_grad_norm=...); run a batch inside nn.detect_anomaly() to name the module that made it")
