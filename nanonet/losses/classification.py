"""Classification losses from logits: ``CrossEntropyLoss`` and ``BCEWithLogitsLoss``.

Both work on raw scores (logits) and fuse the softmax/sigmoid into the loss,
which is what keeps them finite for logits of any size.
"""

import numpy as np
from scipy import special

from .._checks import check_array, check_backward_ready, check_number
from . import fused
from .base import Loss, _mean_scale, check_not_empty


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

    ``J = -sum_i sum_c q_ic * log_softmax(z)_ic / D``, where the target gives
    the row weights ``q`` and the divisor ``D`` (``reduction="sum"``: D = 1).
    The target is either

    - integer class indices, shape ``(N,)``, values in ``[0, C)`` or
      ``ignore_index``: ``q_i = w[t_i] * onehot(t_i)``, and for the mean
      ``D = sum_i w[t_i]`` over the rows not ignored (N without weights); or
    - class probabilities, shape ``(N, C)``, of the logits' dtype:
      ``q_ic = w_c * t_ic`` and ``D = N`` (a loss with another
      ``ignore_index`` than -100 refuses them, as torch does).

    Args:
        reduction: ``"mean"`` (default) or ``"sum"``.
        weight: a rescaling weight per class, shape ``(C,)``, finite and
            ``>= 0`` (default: all ones); used in the logits' dtype.
        ignore_index: a class index whose rows count for nothing, neither in
            the sum nor in ``D`` (default -100, as torch). A batch in which
            every row is ignored has loss NaN and a zero gradient, as in torch.
        label_smoothing: ``eps`` in ``[0, 1]``: the target becomes
            ``(1 - eps) * target + eps / C`` (for class indices: each row's
            one-hot), with torch's normalisation under ``weight``.

    Values and gradients equal torch's in float64. The log-softmax is fused
    and shifted by each row's maximum, so logits of any finite size give a
    finite loss and gradient ``(softmax(z) * sum_c q_c - q) / D``.

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
        >>> weighted = nn.CrossEntropyLoss(weight=np.array([1.0, 3.0]), ignore_index=-1, label_smoothing=0.1)
        >>> round(weighted(np.array([[2.0, 0.0], [0.0, 1.0], [5.0, 0.0]]), np.array([0, 1, -1])), 4)
        0.3495
    """

    def __init__(self, reduction="mean", *, weight=None, ignore_index=-100, label_smoothing=0.0):
        super().__init__(reduction)
        self.weight = _class_weights("CrossEntropyLoss", "weight", weight)
        self.ignore_index = check_number("CrossEntropyLoss", "ignore_index", ignore_index, integer=True)
        self.label_smoothing = check_number("CrossEntropyLoss", "label_smoothing", label_smoothing, low=0, high=1)
        self._cache = None
        self._fused = None  # the spare buffers of the fused path (nanonet.losses.fused)

    def __call__(self, pred, target):
        """Checks both arrays, then runs ``forward``; integer class targets take a fused path (same result)."""
        if type(self).forward is CrossEntropyLoss.forward:
            loss = fused.forward(self, pred, target)
            if loss is not None:
                return loss
        return super().__call__(pred, target)

    def _row_weights(self, pred, target):
        """``(q, total)``: the (N, C) row weights and the mean's divisor, after checking the pair."""
        check_array(self, pred, name="pred (logits)")
        if pred.ndim != 2 or pred.shape[1] < 1:
            raise ValueError(f"{self!r} expected pred (logits) of shape (N, C), got {pred.shape}")
        check_not_empty(self, pred)
        if not isinstance(target, np.ndarray):
            raise TypeError(f"{self!r} expected target to be a numpy.ndarray, got {type(target).__name__}")
        n, c = pred.shape
        weight = _weights_for(self, self.weight, "weight", pred, c)
        eps = self.label_smoothing
        if target.dtype.kind in "iu":
            if target.shape != (n,):
                raise ValueError(f"{self!r} expected integer class targets of shape ({n},), got {target.shape}")
            keep = target != self.ignore_index
            classes = target[keep]
            if classes.size and (classes.min() < 0 or classes.max() >= c):
                raise ValueError(f"{self!r} expected class indices in [0, {c}) or ignore_index={self.ignore_index}, "
                                 f"got values from {classes.min()} to {classes.max()}")
            rows = np.flatnonzero(keep)
            scale = np.ones(len(rows), pred.dtype) if weight is None else weight[classes]
            q = np.zeros_like(pred)
            q[rows, classes] = (1 - eps) * scale
            if eps:
                q[rows] += (eps / c) * (1 if weight is None else weight)
            return q, float(scale.sum())
        check_array(self, target, name="target (integer classes or probabilities)", dtype=pred.dtype)
        if self.ignore_index != -100:
            raise ValueError(f"{self!r} got probability targets, for which ignore_index does not apply "
                             f"(as in torch); leave ignore_index at -100 or pass class indices")
        if target.shape != pred.shape:
            raise ValueError(
                f"{self!r} expected probability targets of shape {pred.shape} (like pred), got {target.shape}"
            )
        q = target * (1 - eps) + eps / c if eps else target
        return (q if weight is None else q * weight), float(n)

    def forward(self, pred, target):
        q, total = self._row_weights(pred, target)
        logp = log_softmax(pred)
        self._cache = (logp, q, total)
        value = float(-(q * logp).sum())
        if self.reduction == "sum":
            return value
        return value / total if total else float("nan")

    def backward(self, grad=1.0):
        if self._cache is None:
            check_backward_ready(self, None)
        if self._cache.__class__ is fused.Fused:
            return fused.backward(self, grad)
        logp, q, total = self._cache
        grad_logits = np.exp(logp) * q.sum(axis=1, keepdims=True) - q
        if self.reduction == "mean" and not total:
            return np.zeros_like(grad_logits)    # every row ignored: torch's zero gradient
        return grad_logits * (float(grad) / total if self.reduction == "mean" else float(grad))

    def row_contributions(self, pred, target, batch=None):
        """Per-row terms that sum to ``forward(pred, target)`` (batch rows assumed).

        ``pred`` may hold several stacked copies of a batch of ``batch`` rows
        (the gradient checker's trick); the divisor is then one copy's.
        """
        q, total = self._row_weights(pred, target)
        rows = -(q * log_softmax(pred)).sum(axis=1)
        if self.reduction == "sum":
            return rows
        return rows / (total * (batch or pred.shape[0]) / pred.shape[0])

    def extra_repr(self):
        text = super().extra_repr()
        if self.weight is not None:
            text += f", weight={_array_text(self.weight)}"
        if self.ignore_index != -100:
            text += f", ignore_index={self.ignore_index}"
        if self.label_smoothing:
            text += f", label_smoothing={self.label_smoothing:g}"
        return text

    @staticmethod
    def example_target(pred_shape, rng):
        """Integer classes for logits of ``pred_shape`` (used by ``check_layer``)."""
        return rng.integers(0, pred_shape[1], size=pred_shape[0])


class BCEWithLogitsLoss(Loss):
    """Binary cross-entropy from logits, as ``torch.nn.BCEWithLogitsLoss``.

    Per element ``(1 - t) * z + L * softplus(-z)`` with ``L = 1 + (p - 1) * t``
    and ``p`` the ``pos_weight`` of the element's class (1 by default, which
    gives ``max(z, 0) - z * t + log1p(exp(-|z|))``). It equals
    ``-(p t log sigmoid(z) + (1 - t) log(1 - sigmoid(z)))`` and stays finite
    for any finite logit. Mean over all elements (or sum). Gradient:
    ``(1 - t) - L * sigmoid(-z)`` per element (``sigmoid(z) - t`` without
    ``pos_weight``), divided by the size for the mean.

    Args:
        reduction: ``"mean"`` (default) or ``"sum"``.
        pos_weight: the weight of positive targets per class, shape ``(C,)``
            with ``C = pred.shape[-1]`` (broadcast along the last axis, as
            torch) or ``(1,)`` for one weight for all, finite and ``>= 0``; used in the logits' dtype. ``p > 1``
            raises recall, ``p < 1`` precision.

    Values and gradients equal torch's in float64.

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
        >>> nn.BCEWithLogitsLoss(pos_weight=np.array([3.0]))(np.array([[-1000.0]]), np.array([[1.0]]))
        3000.0
    """

    def __init__(self, reduction="mean", *, pos_weight=None):
        super().__init__(reduction)
        self.pos_weight = _class_weights("BCEWithLogitsLoss", "pos_weight", pos_weight)
        self._cache = None

    @staticmethod
    def _elementwise(z, t, pos_weight):
        if pos_weight is None:
            return np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))
        scale = 1 + (pos_weight - 1) * t
        return (1 - t) * z + scale * (np.log1p(np.exp(-np.abs(z))) + np.maximum(-z, 0))

    def _checked_pos_weight(self, pred, target):
        self.check_pair(pred, target)
        if pred.ndim == 0:
            raise ValueError(f"{self!r} expected pred with at least one axis, got a 0-d array")
        return _weights_for(self, self.pos_weight, "pos_weight", pred, pred.shape[-1], single_ok=True)

    def forward(self, pred, target):
        pos_weight = self._checked_pos_weight(pred, target)
        self._cache = (pred, target, pos_weight)
        total = float(self._elementwise(pred, target, pos_weight).sum())
        return total / pred.size if self.reduction == "mean" else total

    def backward(self, grad=1.0):
        check_backward_ready(self, self._cache)
        pred, target, pos_weight = self._cache
        if pos_weight is None:
            grad_logits = special.expit(pred) - target
        else:
            grad_logits = (1 - target) - (1 + (pos_weight - 1) * target) * special.expit(-pred)
        return grad_logits * _mean_scale(self, pred.size, grad)

    def row_contributions(self, pred, target, batch=None):
        """Per-row terms that sum to ``forward(pred, target)`` (batch rows assumed)."""
        pos_weight = self._checked_pos_weight(pred, target)
        rows = self._elementwise(pred, target, pos_weight).reshape(pred.shape[0], -1).sum(axis=1)
        count = (batch or pred.shape[0]) * (pred.size // max(pred.shape[0], 1))
        return rows * _mean_scale(self, count)

    def extra_repr(self):
        text = super().extra_repr()
        return text + (f", pos_weight={_array_text(self.pos_weight)}" if self.pos_weight is not None else "")

    @staticmethod
    def example_target(pred_shape, rng):
        """Probabilities in [0, 1] of ``pred_shape`` (used by ``check_layer``)."""
        return rng.uniform(0, 1, size=pred_shape)


def _class_weights(owner, name, value):
    """A per-class weight vector, checked at construction: None, or a finite, non-negative 1-D float array."""
    if value is None:
        return None
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{owner} expected {name} to be None or a numpy.ndarray, got {type(value).__name__}")
    if value.dtype.kind != "f" or value.ndim != 1 or value.size == 0:
        raise ValueError(f"{owner} expected {name} as a non-empty 1-D float array (one value per class), "
                         f"got dtype {value.dtype} and shape {value.shape}")
    if not np.isfinite(value).all() or (value < 0).any():
        raise ValueError(f"{owner} expected {name} to be finite and >= 0, got {_array_text(value)}")
    out = value.copy()
    out.setflags(write=False)
    return out


def _weights_for(loss, weight, name, pred, classes, *, single_ok=False):
    """``weight`` in pred's dtype after checking it has one value per class; None stays None.

    The weights are hyperparameters, like a learning rate: they are used in
    the logits' dtype (so a float32 model keeps float32 gradients).
    """
    if weight is None:
        return None
    if weight.shape != (classes,) and not (single_ok and weight.shape == (1,)):
        raise ValueError(f"{loss!r} has {name} for {weight.size} classes, but pred has {classes} "
                         f"(shape {pred.shape})")
    return weight if weight.dtype == pred.dtype else weight.astype(pred.dtype)


def _array_text(arr):
    return np.array2string(arr, precision=4, separator=", ", threshold=8)
