"""Sequential: a chain of modules."""

from .._checks import check_finite
from ..module import Module, anomaly_enabled


def child_error(container, index, child, exc, phase):
    """Re-create ``exc`` with a message that names the failing child.

    The new exception has the same type when that type takes a single message
    (nearly all do); otherwise the original gets a note and None is returned,
    so that the caller re-raises the original.
    """
    message = f"{type(container).__name__}[{index}] {child.short_repr()} failed in {phase}: {exc}"
    try:
        new = type(exc)(message)
    except Exception:
        exc.add_note(message)
        return None
    return new


class Sequential(Module):
    """Runs its children in order in ``forward`` and in reverse in ``backward``.

    Children are named ``"0"``, ``"1"``, ... so parameters are ``"0.weight"``,
    ``"0.bias"``, ``"2.weight"``, and so on. Supports ``len()``, iteration and
    indexing (an int gives the child, a slice a new Sequential sharing the
    children). An exception inside a child is re-raised naming the child's
    position and repr.

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

    def __init__(self, *modules):
        for i, m in enumerate(modules):
            if not isinstance(m, Module):
                raise TypeError(f"Sequential expected Module arguments, got {type(m).__name__} at position {i}")
        self._layers = list(modules)

    def named_children(self):
        for i, m in enumerate(self._layers):
            yield str(i), m

    def append(self, module):
        if not isinstance(module, Module):
            raise TypeError(f"Sequential.append expected a Module, got {type(module).__name__}")
        self._layers.append(module)
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
        return self._layers[index]

    def forward(self, x):
        """x: the first child's input -> the last child's output."""
        check_each = anomaly_enabled()
        i = 0
        try:
            for i, layer in enumerate(self._layers):
                x = layer.forward(x)
                if check_each:
                    check_finite(layer, x, name="output (made by this module)")
        except Exception as exc:
            new = child_error(self, i, self._layers[i], exc, "forward")
            if new is None:
                raise
            raise new from exc
        return x

    def backward(self, grad_out):
        """grad_out: dJ/d(output) -> dJ/dx, running the children in reverse."""
        check_each = anomaly_enabled()
        i = len(self._layers) - 1
        try:
            for i in range(len(self._layers) - 1, -1, -1):
                grad_out = self._layers[i].backward(grad_out)
                if check_each:
                    check_finite(self._layers[i], grad_out, name="input gradient (made by this module)")
        except Exception as exc:
            new = child_error(self, i, self._layers[i], exc, "backward")
            if new is None:
                raise
            raise new from exc
        return grad_out
