"""Losses: scalar objectives with a hand-written gradient.

A loss is not a Module: ``forward(pred, target)`` returns a Python float and
``backward(grad=1.0)`` returns ``dJ/dpred``, an array shaped like ``pred``.
"""

import math

import numpy as np

from ._checks import check_array, check_backward_ready, check_finite

_REDUCTIONS = ("mean", "sum")


class Loss:
    """Base class of losses.

    Subclasses implement ``forward(pred, target) -> float`` and
    ``backward(grad=1.0) -> dJ/dpred``. Calling the loss runs ``forward``
    after checking both arrays for NaN/Inf.
    """

    def __init__(self, reduction="mean"):
        if reduction not in _REDUCTIONS:
            raise ValueError(f"{type(self).__name__} expected reduction in {_REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction

    def forward(self, pred, target):
        raise NotImplementedError(f"{type(self).__name__} must implement forward(pred, target)")

    def backward(self, grad=1.0):
        raise NotImplementedError(f"{type(self).__name__} must implement backward(grad=1.0)")

    def __call__(self, pred, target):
        check_finite(self, pred, name="pred")
        check_finite(self, target, name="target")
        return self.forward(pred, target)

    def check_pair(self, pred, target):
        """Both float arrays of the same dtype and exactly the same shape."""
        check_array(self, pred, name="pred")
        check_array(self, target, name="target", dtype=pred.dtype)
        if target.shape != pred.shape:
            raise ValueError(
                f"{self!r} expected target of the same shape as pred {pred.shape}, got {target.shape}; "
                f"nanonet does not broadcast (reshape the target, e.g. y.reshape(-1, 1))"
            )

    def extra_repr(self):
        return f"reduction={self.reduction!r}"

    def __repr__(self):
        return f"{type(self).__name__}({self.extra_repr()})"

    short_repr = __repr__


class MSELoss(Loss):
    """Mean squared error: ``J = mean((pred - target) ** 2)`` over all elements.

    ``reduction="mean"`` equals ``torch.nn.MSELoss()``; ``"sum"`` sums instead.
    The seed's hand-written J had an extra 1/2, ``J_seed = mean(...) / 2``:
    nanonet's mean loss is twice the seed's, and so is its gradient.

    Shape:
        - pred, target: the same shape (no broadcasting), the same float dtype.
        - backward() -> dJ/dpred: the shape and dtype of pred.

    Example:
        >>> import numpy as np
        >>> import nanonet as nn
        >>> loss = nn.MSELoss()
        >>> loss(np.array([[1.0], [3.0]]), np.array([[0.0], [1.0]]))
        2.5
        >>> loss.backward()
        array([[1.],
               [2.]])
    """

    def __init__(self, reduction="mean"):
        super().__init__(reduction)
        self._diff = None
        self._spare = None

    def __call__(self, pred, target):
        """Checks pred and target for NaN/Inf, then runs ``forward``.

        For two float arrays of one shape and dtype the check is fused into the
        loss itself: a finite sum of squared differences proves both inputs
        finite, so each is scanned only when the loss is not finite.
        """
        if (pred.__class__ is not np.ndarray or target.__class__ is not np.ndarray
                or pred.dtype.kind != "f" or target.dtype != pred.dtype or target.shape != pred.shape):
            return super().__call__(pred, target)
        with np.errstate(over="ignore", invalid="ignore"):
            diff, total = self._squared_error(pred, target)
        if not math.isfinite(total):
            check_finite(self, pred, name="pred")
            check_finite(self, target, name="target")
            flat = diff.reshape(-1)
            total = float(np.dot(flat, flat))  # finite inputs, overflowing sum: numpy warns as before
        return self._finish(diff, total)

    def forward(self, pred, target):
        self.check_pair(pred, target)
        diff, total = self._squared_error(pred, target)
        return self._finish(diff, total)

    def _squared_error(self, pred, target):
        """``pred - target`` and its sum of squares.

        Two private buffers take turns, so that the cache of the last good
        forward (``_diff``) survives a call that raises.
        """
        diff = self._spare
        if diff is None or diff.shape != pred.shape or diff.dtype != pred.dtype:
            diff = np.empty_like(pred, order="C")
        np.subtract(pred, target, out=diff)
        flat = diff.reshape(-1)
        return diff, float(np.dot(flat, flat))

    def _finish(self, diff, total):
        self._spare, self._diff = self._diff, diff
        return total / diff.size if self.reduction == "mean" else total

    def backward(self, grad=1.0):
        """dJ/dpred: a fresh array shaped like pred."""
        check_backward_ready(self, self._diff)
        scale = 2.0 * float(grad)
        if self.reduction == "mean":
            scale /= self._diff.size
        return self._diff * scale
