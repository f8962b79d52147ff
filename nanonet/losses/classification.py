"""Classification losses from logits: ``CrossEntropyLoss`` and ``BCEWithLogitsLoss``.

Both work on raw scores (logits) and fuse the softmax/sigmoid into the loss,
which is what keeps them finite for logits of any size.
"""

import numpy as np
from scipy import special

from .._checks import check_array, check_backward_ready
from . import fused
from .base import Loss, _mean_scale


def log_softmax(logits):
    """Row-wise ``log(softmax(logits))``, stable: ``z - max - log(sum(exp(z - max)))``.

    >>> import numpy as np
    >>> log_softmax(np.array([[0.0, 1000.0]])).round(3)
    array([[-1000.,     0.]])
    """
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


class CrossEntropyLoss(Loss):
    """Softmax cross-entropy from logits, as ``torch.nn.CrossEntropyLoss``.

    ``J = mean_i( -sum_c t_ic * log_softmax(z)_ic )`` over the N rows
    (``reduction="sum"`` sums). The target is either

    - integer class indices, shape ``(N,)``, values in ``[0, C)``, or
    - class probabilities, shape ``(N, C)``, of the logits' dtype.

    The log-softmax is fused and shifted by each row's maximum, so logits of
    any finite size give a finite loss and gradient
    ``(softmax(z) * sum_c t_c - t) / N``.

    Shape:
        - pred (logits): ``(N, C)``; target: ``(N,)`` int or ``(N, C)`` float.
        - backward() -> ``(N, C)``, like pred.

    Example:
        >>> import numpy as np
        >>> import nanonet as nn
        >>> loss = nn.CrossEntropyLoss()
        >>> round(loss(np.array([[2.0, 0.0], [0.0, 1000.0]]), np.array([0, 1])), 4)
        0.0635
        >>> loss.backward().round(3)
        array([[-0.06,  0.06],
               [ 0.  , -0. ]])
    """

    def __init__(self, reduction="mean"):
        super().__init__(reduction)
        self._cache = None
        self._fused = None  # the spare buffers of the fused path (nanonet.losses.fused)

    def __call__(self, pred, target):
        """Checks both arrays, then runs ``forward``; integer class targets take a fused path (same result)."""
        if type(self).forward is CrossEntropyLoss.forward:
            loss = fused.forward(self, pred, target)
            if loss is not None:
                return loss
        return super().__call__(pred, target)

    def _probabilities(self, pred, target):
        """The target as an (N, C) array of class weights, after checking it."""
        check_array(self, pred, name="pred (logits)")
        if pred.ndim != 2 or pred.shape[1] < 1:
            raise ValueError(f"{self!r} expected pred (logits) of shape (N, C), got {pred.shape}")
        if not isinstance(target, np.ndarray):
            raise TypeError(f"{self!r} expected target to be a numpy.ndarray, got {type(target).__name__}")
        n, c = pred.shape
        if target.dtype.kind in "iu":
            if target.shape != (n,):
                raise ValueError(f"{self!r} expected integer class targets of shape ({n},), got {target.shape}")
            if target.size and (target.min() < 0 or target.max() >= c):
                raise ValueError(
                    f"{self!r} expected class indices in [0, {c}), got values from {target.min()} to {target.max()}"
                )
            onehot = np.zeros_like(pred)
            onehot[np.arange(n), target] = 1
            return onehot
        check_array(self, target, name="target (integer classes or probabilities)", dtype=pred.dtype)
        if target.shape != pred.shape:
            raise ValueError(
                f"{self!r} expected probability targets of shape {pred.shape} (like pred), got {target.shape}"
            )
        return target

    def forward(self, pred, target):
        probs = self._probabilities(pred, target)
        logp = log_softmax(pred)
        self._cache = (logp, probs)
        total = float(-(probs * logp).sum())
        return total / pred.shape[0] if self.reduction == "mean" else total

    def backward(self, grad=1.0):
        check_backward_ready(self, self._cache)
        if self._cache.__class__ is fused.Fused:
            return fused.backward(self, grad)
        logp, probs = self._cache
        grad_logits = np.exp(logp) * probs.sum(axis=1, keepdims=True) - probs
        return grad_logits * _mean_scale(self, logp.shape[0], grad)

    def row_contributions(self, pred, target, batch=None):
        """Per-row terms that sum to ``forward(pred, target)`` (batch rows assumed)."""
        rows = -(self._probabilities(pred, target) * log_softmax(pred)).sum(axis=1)
        return rows * _mean_scale(self, batch or pred.shape[0])

    @staticmethod
    def example_target(pred_shape, rng):
        """Integer classes for logits of ``pred_shape`` (used by ``check_layer``)."""
        return rng.integers(0, pred_shape[1], size=pred_shape[0])


class BCEWithLogitsLoss(Loss):
    """Binary cross-entropy from logits, as ``torch.nn.BCEWithLogitsLoss``.

    Per element ``max(z, 0) - z * t + log1p(exp(-|z|))``, which equals
    ``-(t log sigmoid(z) + (1 - t) log(1 - sigmoid(z)))`` and stays finite for
    any finite logit. Mean over all elements (or sum). Gradient:
    ``(sigmoid(z) - t) / size``.

    Shape:
        - pred (logits), target (in [0, 1]): the same shape and float dtype.
        - backward() -> like pred.

    Example:
        >>> import numpy as np
        >>> import nanonet as nn
        >>> loss = nn.BCEWithLogitsLoss()
        >>> loss(np.array([[1000.0], [-1000.0]]), np.array([[1.0], [1.0]]))
        500.0
        >>> loss.backward()
        array([[ 0. ],
               [-0.5]])
    """

    def __init__(self, reduction="mean"):
        super().__init__(reduction)
        self._cache = None

    @staticmethod
    def _elementwise(z, t):
        return np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))

    def forward(self, pred, target):
        self.check_pair(pred, target)
        self._cache = (pred, target)
        total = float(self._elementwise(pred, target).sum())
        return total / pred.size if self.reduction == "mean" else total

    def backward(self, grad=1.0):
        check_backward_ready(self, self._cache)
        pred, target = self._cache
        return (special.expit(pred) - target) * _mean_scale(self, pred.size, grad)

    def row_contributions(self, pred, target, batch=None):
        """Per-row terms that sum to ``forward(pred, target)`` (batch rows assumed)."""
        rows = self._elementwise(pred, target).reshape(pred.shape[0], -1).sum(axis=1)
        count = (batch or pred.shape[0]) * (pred.size // max(pred.shape[0], 1))
        return rows * _mean_scale(self, count)

    @staticmethod
    def example_target(pred_shape, rng):
        """Probabilities in [0, 1] of ``pred_shape`` (used by ``check_layer``)."""
        return rng.uniform(0, 1, size=pred_shape)
