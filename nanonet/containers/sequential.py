"""Sequential: a chain of modules."""

import numpy as np

from .._checks import check_finite, renamed_error, who
from .._contract import unwrapped
from ..module import Module, anomaly_enabled


def child_error(container, index, child, exc, phase):
    """Re-create ``exc`` with a message that names the failing child.

    The new exception has the same type when that type takes a single message
    (nearly all do); otherwise the original gets a note and None is returned,
    so that the caller re-raises the original.
    """
    text = str(exc)
    if not text.startswith(f"{child.short_repr()} failed in {phase}"):  # the contract named the child already
        text = f"{child.short_repr()} failed in {phase}: {text}"
    return renamed_error(exc, f"{type(container).__name__}[{index}] {text}")


def child_position(container, index, count):
    """``index`` as a position among ``count`` children; errors name the container."""
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
        raise TypeError(f"{who(container)} expected an int position (or a slice) as index, "
                        f"got {type(index).__name__} {index!r}")
    if not -count <= index < count:
        raise IndexError(f"{who(container)} has {count} children (positions 0 to {count - 1}, or -{count} to -1); "
                         f"index {index} is out of range")
    return int(index)


def check_no_reuse(owner, named):
    """Refuse a module instance that appears twice in ``named`` (``(label, module)`` pairs) or below them.

    A module keeps the cache of its last ``forward`` for ``backward``; used
    twice in one model, the second call overwrites what the first call's
    backward needs, and the gradients are silently wrong. Weight tying is
    done with ``nn.shared_copy(module)``: a second instance with the same
    Parameters and a cache of its own.
    """
    seen = {}
    for label, module in named:
        for i, m in enumerate(module.modules()):
            where = label if i == 0 else f"{label} (inside it)"
            first = seen.setdefault(id(m), where)
            if first is not where:
                raise ValueError(
                    f"{owner}: the module instance {who(m)} is used twice, at {first} and at {where}; "
                    f"its second forward would overwrite the cache the first one's backward needs. "
                    f"To share weights, use nn.shared_copy(module): a new instance with the same Parameters"
                )


class Sequential(Module):
    """Runs its children in order in ``forward`` and in reverse in ``backward``.

    Children are named ``"0"``, ``"1"``, ... so parameters are ``"0.weight"``,
    ``"0.bias"``, ``"2.weight"``, and so on. Supports ``len()``, iteration and
    indexing (an int gives the child, a slice a new Sequential sharing the
    children). An exception inside a child is re-raised naming the child's
    position and repr.

    Buffers and aliasing (the speed rules; see docs/performance.md):
        - ``forward`` returns a fresh array, and ``backward`` a fresh dJ/dx:
          no later call ever writes into an array this container returned.
        - The activations and gradients passed *between* children live in
          buffers this container owns and reuses from call to call (while
          shapes and dtypes stay the same). A child's cache may point into
          them (a Linear keeps its input for backward); the next ``forward``
          overwrites them, exactly when it replaces the caches anyway.
        - Only children that implement the private container protocol
          (``_forward_into`` / ``_backward_into``, today Linear and ReLU, not
          subclasses that override forward or backward) write into buffers;
          any other child is called through its own ``forward``/``backward``.
        - The caller's input and ``grad_out`` are never written.
        - ``backward(grad_out, input_grad=False)`` skips the first child's
          dJ/dx (nobody needs the gradient of the data in training) and
          returns None; the parameter gradients are the same.

    Shape:
        - x: the first child's input -> the last child's output.

    Example:
        >>> import numpy as np
        >>> import nanonet as nn
        >>> model = nn.Sequential(nn.Linear(4, 8, rng=0), nn.ReLU(), nn.Linear(8, 1, rng=1))
        >>> len(model), model[0]
        (3, Linear(4 -> 8))
        >>> [name for name, _ in model.named_parameters()]
        ['0.weight', '0.bias', '2.weight', '2.bias']
        >>> model(np.ones((5, 4))).shape
        (5, 1)
    """

    input_kinds = None  # the first child checks the input
    checks_itself = True  # names the failing child instead (see nanonet._contract)

    def __init__(self, *modules):
        for i, m in enumerate(modules):
            if not isinstance(m, Module):
                raise TypeError(f"Sequential expected Module arguments, got {type(m).__name__} at position {i}")
        check_no_reuse("Sequential", ((f"position {i}", m) for i, m in enumerate(modules)))
        self._layers = list(modules)

    def named_children(self):
        for i, m in enumerate(self._layers):
            yield str(i), m

    def children(self):
        return list(self._layers)

    def append(self, module):
        if not isinstance(module, Module):
            raise TypeError(f"Sequential.append expected a Module, got {type(module).__name__}")
        layers = self._layers + [module]
        check_no_reuse("Sequential.append", ((f"position {i}", m) for i, m in enumerate(layers)))
        self._layers = layers
        return self

    def summary(self, input_shape=None, print_fn=print):
        """Print a Keras-like table: layer (type), output shape, parameter count, totals.

        ``input_shape`` is the feature shape of one example, e.g. ``(10,)``;
        by default the first layer's ``in_features`` when it has one (else
        the output shapes show as ``?``). See ``nanonet.summary``.
        """
        from ..summary import summary_text

        print_fn(summary_text(self, input_shape))

    def __len__(self):
        return len(self._layers)

    def __iter__(self):
        return iter(self._layers)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return Sequential(*self._layers[index])
        return self._layers[child_position(self, index, len(self._layers))]

    def forward(self, x):
        """x: the first child's input -> the last child's output (a fresh array)."""
        layers = self._layers
        plan = self._fast_plan()
        buffered, in_place = plan[0], plan[3]
        check_each = anomaly_enabled()
        buffers = self._forward_buffers
        i = 0
        try:
            for i, layer in enumerate(layers):
                if buffered[i]:
                    x = buffers[i] = layer._forward_into(x, x if in_place[i] else buffers[i])
                else:
                    x = layer.forward(x)
                if check_each:
                    check_finite(layer, x, name="output (made by this module)")
        except Exception as exc:
            new = child_error(self, i, self._layers[i], exc, "forward")
            if new is None:
                raise
            raise new from exc
        return x

    def backward(self, grad_out, *, input_grad=True):
        """grad_out: dJ/d(output) -> dJ/dx, running the children in reverse.

        ``input_grad=False`` skips dJ/dx where the first child allows it (a
        Linear or ReLU does) and returns None: in training nobody needs the
        gradient of the data. Parameter gradients are accumulated either way.
        """
        layers = self._layers
        _, buffered, fast, _, in_place = self._fast_plan()
        check_each = anomaly_enabled()
        buffers = self._backward_buffers
        i = len(layers) - 1
        try:
            for i in range(len(layers) - 1, -1, -1):
                layer = layers[i]
                if buffered[i]:
                    grad_out = buffers[i] = layer._backward_into(
                        grad_out, grad_out if in_place[i] else buffers[i])
                elif i == 0 and fast[0]:
                    grad_out = layer._backward_into(grad_out, None, input_grad)
                else:
                    grad_out = layer.backward(grad_out)
                if check_each and grad_out is not None:
                    check_finite(layer, grad_out, name="input gradient (made by this module)")
        except Exception as exc:
            new = child_error(self, i, self._layers[i], exc, "backward")
            if new is None:
                raise
            raise new from exc
        return grad_out if input_grad else None

    def _fast_plan(self):
        """``(forward_buffered, backward_buffered, fast, forward_in_place, backward_in_place)``.

        Each is a tuple of bools, one per child.

        A child is *fast* when its class provides ``_forward_into`` and
        ``_backward_into`` for the very ``forward`` and ``backward`` it has
        (``_into_methods``); a subclass that overrides either is called
        through its own method, and so is an instance whose ``forward`` or
        ``backward`` was replaced on the instance itself. A fast child writes
        its output into a buffer this container owns when a later child is fast too (which then
        writes a new array), and its input gradient when an earlier child is
        fast: so neither the returned output nor the returned dJ/dx can ever
        be a buffer (or a view of one passed on by another child). A child
        whose class sets ``_in_place = True`` (ReLU: it keeps only a mask, not
        its input) writes over its input when that input is a buffer of this
        container, in both directions, as hand-written numpy would. The plan
        and the buffers are rebuilt whenever the children's types change.
        """
        # None marks a child whose forward/backward were replaced on the instance (a debugging hook,
        # the gradient checker's kink tracer): it is always called through those methods.
        key = tuple(None if "forward" in m.__dict__ or "backward" in m.__dict__ else type(m) for m in self._layers)
        plan = self.__dict__.get("_plan")
        if plan is None or plan[0] != key:
            fast = tuple(_takes_buffers(cls) for cls in key)
            forward = tuple(f and any(fast[i + 1:]) for i, f in enumerate(fast))
            backward = tuple(f and any(fast[:i]) for i, f in enumerate(fast))
            over = tuple(getattr(cls, "_in_place", False) for cls in key)
            fwd_in_place = tuple(over[i] and forward[i] and i > 0 and forward[i - 1] for i in range(len(key)))
            bwd_in_place = tuple(over[i] and backward[i] and i + 1 < len(key) and backward[i + 1]
                                 for i in range(len(key)))
            plan = self._plan = (key, (forward, backward, fast, fwd_in_place, bwd_in_place))
            self._forward_buffers = [None] * len(key)
            self._backward_buffers = [None] * len(key)
        return plan[1]


def _takes_buffers(cls):
    if cls is None:
        return False
    methods = getattr(cls, "_into_methods", None)
    return methods is not None and methods == (unwrapped(cls.forward), unwrapped(cls.backward))
