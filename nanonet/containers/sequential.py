"""Sequential: a chain of modules."""

import numpy as np

from .. import _flat
from .._checks import check_finite, renamed_error, who
from ..module import _DETECT_ANOMALY, Module
from .plan import BUFFER, FRESH, IN_PLACE, ChainPlan, members_current

_anomaly = _DETECT_ANOMALY.get  # inside ``nn.detect_anomaly()``: check every child's output


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
        _flat.flatten(self.parameters())

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
        _flat.flatten(self.parameters())
        return self

    def to(self, dtype):
        """Convert parameters and buffers to ``dtype`` in place (see ``Module.to``), then lay them out flat again."""
        super().to(dtype)
        _flat.flatten(self.parameters())
        self.__dict__.pop("_plan", None)
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
        plan = self.__dict__.get("_plan")
        if plan is None or plan.layers is not layers or not members_current(plan.members):  # (_current_plan, inlined)
            plan = self._current_plan()
        check_each = _anomaly()
        signature = (x.shape, x.dtype) if x.__class__ is np.ndarray and not check_each else None
        calls = plan.bound_forward.get(signature)
        inputs = [] if calls is None and signature is not None else None
        modes, buffers = plan.forward, plan.forward_buffers
        i = 0
        try:
            if calls is not None:  # the plan prepared for this input: one bound call per child
                for i, call in enumerate(calls):
                    x = call(x)
                return x
            for i, layer in enumerate(layers):
                if inputs is not None:
                    inputs.append((x.shape, x.dtype) if x.__class__ is np.ndarray else None)
                mode = modes[i]
                if mode is BUFFER:
                    x = buffers[i] = layer._forward_into(x, buffers[i])
                elif mode is IN_PLACE:
                    x = buffers[i] = layer._forward_into(x, x)
                elif mode is FRESH:
                    x = layer._forward_into(x, None)
                else:
                    x = layer.forward(x)
                if check_each:
                    check_finite(layer, x, name="output (made by this module)")
        except Exception as exc:
            new = child_error(self, i, layers[i], exc, "forward")
            if new is None:
                raise
            raise new from exc
        if inputs is not None:
            plan.bind_forward(layers, signature, inputs)
        return x

    def backward(self, grad_out, *, input_grad=True):
        """grad_out: dJ/d(output) -> dJ/dx, running the children in reverse.

        ``input_grad=False`` skips dJ/dx where the first child allows it (a
        Linear or ReLU does) and returns None: in training nobody needs the
        gradient of the data. Parameter gradients are accumulated either way.
        """
        layers = self._layers
        plan = self.__dict__.get("_plan")
        if plan is None or plan.layers is not layers or not members_current(plan.members):  # (_current_plan, inlined)
            plan = self._current_plan()
        check_each = _anomaly()
        signature = (grad_out.shape, grad_out.dtype, bool(input_grad)) \
            if grad_out.__class__ is np.ndarray and not check_each else None
        calls = plan.bound_backward.get(signature)
        grads = [] if calls is None and signature is not None else None
        modes, buffers = plan.backward, plan.backward_buffers
        i = len(layers) - 1
        try:
            if calls is not None:
                for i in range(len(calls) - 1, -1, -1):
                    grad_out = calls[i](grad_out)
                return grad_out
            for i in range(len(layers) - 1, -1, -1):
                if grads is not None:
                    grads.append((grad_out.shape, grad_out.dtype) if grad_out.__class__ is np.ndarray else None)
                layer, mode = layers[i], modes[i]
                if mode is BUFFER:
                    grad_out = buffers[i] = layer._backward_into(grad_out, buffers[i])
                elif mode is IN_PLACE:
                    grad_out = buffers[i] = layer._backward_into(grad_out, grad_out)
                elif mode is FRESH:
                    grad_out = layer._backward_into(grad_out, None, input_grad)
                else:
                    grad_out = layer.backward(grad_out)
                if check_each and grad_out is not None:
                    check_finite(layer, grad_out, name="input gradient (made by this module)")
        except Exception as exc:
            new = child_error(self, i, layers[i], exc, "backward")
            if new is None:
                raise
            raise new from exc
        if grads is not None:
            plan.bind_backward(layers, signature, grads[::-1], input_grad)
        return grad_out if input_grad else None

    def _current_plan(self):
        plan = self.__dict__.get("_plan")
        if plan is None or not plan.current(self._layers):
            plan = self._plan = ChainPlan(self._layers)
        return plan
