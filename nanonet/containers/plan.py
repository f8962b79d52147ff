"""Prepared plans: how a container calls its children, the buffers it owns, and the calls it binds.

A child is *fast* when its class provides ``_forward_into`` and
``_backward_into`` for the very ``forward`` and ``backward`` it has
(``_into_methods``): Linear and ReLU. A subclass that overrides either is
called through its own method (``OWN``), and so is an instance whose
``forward`` or ``backward`` was replaced on the instance itself (a debugging
hook, the gradient checker's kink tracer).

A container calls each child in one *mode* per direction:

- ``BUFFER``: a fast child writes into a buffer the container owns and
  reuses from call to call;
- ``IN_PLACE``: a fast child whose class sets ``_in_place = True`` (ReLU: it
  keeps only a mask, not its input) writes over its input, a buffer of the
  container, as hand-written numpy would;
- ``FRESH``: a fast child writes a new array through ``_forward_into`` /
  ``_backward_into``, whose own checks replace the contract's wrapper;
- ``OWN``: the child's own (contract-wrapped) ``forward`` / ``backward``.

**Binding.** After a call has run once with an input of a given shape and
dtype (and succeeded), the container asks each fast child for a *bound* call
(``_bind_forward`` / ``_bind_backward``): a closure specialised to that input
and to the buffer it writes, which checks by identity and shape only that
nothing changed and otherwise falls back to the child's ``_forward_into`` /
``_backward_into`` with all their checks and messages. The next call with
that input makes one Python call per child and nothing else. Plans are
:class:`~nanonet._flat.Transient`: a copied container rebuilds its own.
"""

import functools

from .._contract import unwrapped
from .._flat import Transient

BUFFER, IN_PLACE, FRESH, OWN = "buffer", "in place", "fresh", "own method"
BOUND_LIMIT = 4  # input signatures kept per direction (a last, smaller batch makes two)


def takes_buffers(cls):
    """True when ``cls`` implements the buffer protocol for the forward and backward it has."""
    if cls is None:
        return False
    methods = getattr(cls, "_into_methods", None)
    return methods is not None and methods == (unwrapped(cls.forward), unwrapped(cls.backward))


def layer_key(module):
    """The module's class, or None when its forward/backward were replaced on the instance."""
    own = module.__dict__
    return None if "forward" in own or "backward" in own else type(module)


def bind_forward(layer, mode, shape, dtype, out):
    """The call a prepared plan makes to run ``layer`` forward in ``mode`` on inputs of ``shape``/``dtype``."""
    if mode is OWN:
        return layer.forward
    bind = getattr(layer, "_bind_forward", None)
    if mode is IN_PLACE:
        if bind is None:
            return lambda x: layer._forward_into(x, x)
        return bind(shape, dtype, None, in_place=True)
    out = out if mode is BUFFER else None
    return bind(shape, dtype, out) if bind is not None else functools.partial(layer._forward_into, out=out)


def bind_backward(layer, mode, shape, dtype, out, input_grad):
    """The call a prepared plan makes to run ``layer`` backward in ``mode`` on gradients of ``shape``/``dtype``."""
    if mode is OWN:
        return layer.backward
    bind = getattr(layer, "_bind_backward", None)
    if mode is IN_PLACE:
        if bind is None:
            return lambda g: layer._backward_into(g, g)
        return bind(shape, dtype, None, True, in_place=True)
    out = out if mode is BUFFER else None
    if bind is not None:
        return bind(shape, dtype, out, input_grad)
    return functools.partial(layer._backward_into, out=out, input_grad=input_grad)


def members_current(members):
    """True while each ``(module, class)`` pair still holds: same class, no forward/backward on the instance."""
    for m, cls in members:
        if m.__class__ is not cls:
            return False
        own = m.__dict__
        if "forward" in own or "backward" in own:
            return False
    return True


class Bound(dict, Transient):
    """Bound calls per input signature; at most ``BOUND_LIMIT`` kept (the oldest go first)."""

    __slots__ = ()

    def keep(self, signature, calls):
        while len(self) >= BOUND_LIMIT:
            del self[next(iter(self))]
        self[signature] = calls


class ChainPlan(Transient):
    """``Sequential``'s plan: a mode per child and direction, the buffers, and the bound calls.

    A fast child writes its output into a buffer when a later child is fast
    too (which then writes a new array), and its input gradient when an
    earlier child is fast: so neither the returned output nor the returned
    dJ/dx can ever be a buffer (or a view of one passed on by another
    child). ``IN_PLACE`` needs the input to be a buffer too. The first
    child's forward keeps the contract's wrapper (``OWN`` unless buffered):
    it checks the caller's input. ``current`` says, with identity checks
    only, whether the plan still describes the children.
    """

    __slots__ = ("layers", "members", "forward", "backward", "forward_buffers", "backward_buffers",
                 "bound_forward", "bound_backward")

    def __init__(self, layers):
        self.layers = layers
        self.members = tuple((m, type(m)) for m in layers)
        key = tuple(layer_key(m) for m in layers)
        count = len(key)
        fast = tuple(takes_buffers(cls) for cls in key)
        forward = tuple(f and any(fast[i + 1:]) for i, f in enumerate(fast))
        backward = tuple(f and any(fast[:i]) for i, f in enumerate(fast))
        over = tuple(getattr(cls, "_in_place", False) for cls in key)
        self.forward = tuple(
            (IN_PLACE if over[i] and i > 0 and forward[i - 1] else BUFFER) if forward[i]
            else FRESH if fast[i] and i > 0 else OWN for i in range(count))
        self.backward = tuple(
            (IN_PLACE if over[i] and i + 1 < count and backward[i + 1] else BUFFER) if backward[i]
            else FRESH if fast[i] and i == 0 else OWN for i in range(count))
        self.forward_buffers = [None] * count
        self.backward_buffers = [None] * count
        self.bound_forward, self.bound_backward = Bound(), Bound()

    def current(self, layers):
        return layers is self.layers and members_current(self.members)

    def bind_forward(self, layers, signature, inputs):
        """Bind each child's forward for the input ``signature``; ``inputs[i]`` is child i's (shape, dtype)."""
        if None not in inputs:
            self.bound_forward.keep(signature, [
                bind_forward(m, mode, shape, dtype, out)
                for m, mode, (shape, dtype), out in zip(layers, self.forward, inputs, self.forward_buffers)])

    def bind_backward(self, layers, signature, grads, input_grad):
        """Bind each child's backward; ``grads[i]`` is the (shape, dtype) of child i's incoming gradient."""
        if None not in grads:
            self.bound_backward.keep(signature, [
                bind_backward(m, mode, shape, dtype, out, input_grad if i == 0 else True)
                for i, (m, mode, (shape, dtype), out) in enumerate(zip(layers, self.backward, grads,
                                                                        self.backward_buffers))])
