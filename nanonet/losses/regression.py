"""Regression losses: ``MSELoss``, ``L1Loss``, ``HuberLoss``."""

import math

import numpy as np

from .._checks import check_backward_ready, check_finite, check_number
from .._contract import UNCHECKED
from .base import Loss, _mean_scale


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

        For two float arrays of one shape and dtype (and when ``forward`` is
        MSELoss's own, not a subclass's) the check is fused into the loss itself: a finite sum of squared differences proves both inputs
        finite, so each is scanned only when the loss is not finite.
        """
        if (type(self).forward is not MSELoss.forward  # a subclass's own forward runs as written
                or pred.__class__ is not np.ndarray or target.__class__ is not np.ndarray
                or pred.dtype.kind != "f" or target.dtype != pred.dtype or target.shape != pred.shape
                or pred.size == 0):
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
        self._last_output = UNCHECKED  # for the contract's backward check: the fused __call__ skips forward
        return total / diff.size if self.reduction == "mean" else total

    def backward(self, grad=1.0):
        """dJ/dpred: a fresh array shaped like pred."""
        check_backward_ready(self, self._diff)
        scale = 2.0 * float(grad)
        if self.reduction == "mean":
            scale /= self._diff.size
        return self._diff * scale


class L1Loss(Loss):
    """Mean absolute error: ``J = mean(|pred - target|)`` over all elements.

    Not differentiable where ``pred == target``: the gradient used there is
    0 (``sign(0)``, as in PyTorch), and ``kinks = (0.0,)`` tells the gradient
    checker (the kink is in ``pred - target``) to accept any subgradient.

    Shape:
        - pred, target: the same shape and float dtype; backward() -> like pred.

    Example:
        >>> import numpy as np
        >>> import nanonet as nn
        >>> loss = nn.L1Loss()
        >>> loss(np.array([[1.0], [3.0]]), np.array([[0.0], [4.0]]))
        1.0
        >>> loss.backward()
        array([[ 0.5],
               [-0.5]])
    """

    kinks = (0.0,)

    def __init__(self, reduction="mean"):
        super().__init__(reduction)
        self._diff = None

    def forward(self, pred, target):
        self.check_pair(pred, target)
        self._diff = pred - target
        total = float(np.abs(self._diff).sum())
        return total / self._diff.size if self.reduction == "mean" else total

    def backward(self, grad=1.0):
        check_backward_ready(self, self._diff)
        return np.sign(self._diff) * _mean_scale(self, self._diff.size, grad)

    def row_contributions(self, pred, target, batch=None):
        """Per-row terms that sum to ``forward(pred, target)`` (batch rows assumed)."""
        rows = np.abs(pred - target).reshape(pred.shape[0], -1).sum(axis=1)
        count = (batch or pred.shape[0]) * (pred.size // max(pred.shape[0], 1))
        return rows * _mean_scale(self, count)


class HuberLoss(Loss):
    """Huber loss, as ``torch.nn.HuberLoss``: per element
    ``0.5 d**2`` where ``|d| < delta``, else ``delta * (|d| - 0.5 delta)``,
    with ``d = pred - target``; mean over all elements (or sum).

    Its gradient ``clip(d, -delta, delta)`` is continuous, so there is no kink.

    Shape:
        - pred, target: the same shape and float dtype; backward() -> like pred.

    Example:
        >>> import numpy as np
        >>> import nanonet as nn
        >>> loss = nn.HuberLoss(delta=1.0)
        >>> loss(np.array([[0.5], [3.0]]), np.zeros((2, 1)))
        1.3125
        >>> loss.backward()
        array([[0.25],
               [0.5 ]])
    """

    def __init__(self, reduction="mean", delta=1.0):
        super().__init__(reduction)
        self.delta = check_number("HuberLoss", "delta", delta, low=0, low_open=True)
        self._diff = None

    def _elementwise(self, diff):
        a = np.abs(diff)
        return np.where(a < self.delta, 0.5 * diff * diff, self.delta * (a - 0.5 * self.delta))

    def forward(self, pred, target):
        self.check_pair(pred, target)
        self._diff = pred - target
        total = float(self._elementwise(self._diff).sum())
        return total / self._diff.size if self.reduction == "mean" else total

    def backward(self, grad=1.0):
        check_backward_ready(self, self._diff)
        return np.clip(self._diff, -self.delta, self.delta) * _mean_scale(self, self._diff.size, grad)

    def row_contributions(self, pred, target, batch=None):
        """Per-row terms that sum to ``forward(pred, target)`` (batch rows assumed)."""
        rows = self._elementwise(pred - target).reshape(pred.shape[0], -1).sum(axis=1)
        count = (batch or pred.shape[0]) * (pred.size // max(pred.shape[0], 1))
        return rows * _mean_scale(self, count)

    def extra_repr(self):
        return f"reduction={self.reduction!r}, delta={self.delta:g}"
