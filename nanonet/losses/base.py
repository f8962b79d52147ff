"""The loss contract: ``Loss``, the base class of every loss.

A loss is not a Module: ``forward(pred, target)`` returns a Python float and
``backward(grad=1.0)`` returns ``dJ/dpred``, an array shaped like ``pred``.
"""


from .. import _contract
from .._checks import check_array, check_finite

_REDUCTIONS = ("mean", "sum")


class Loss:
    """Base class of losses.

    Subclasses implement ``forward(pred, target) -> float`` and
    ``backward(grad=1.0) -> dJ/dpred``. Calling the loss runs ``forward``
    after checking both arrays for NaN/Inf.

    As for modules, the contract wraps a subclass's ``forward`` and
    ``backward`` (``nanonet._contract``): ``backward`` before ``forward`` is a
    ``RuntimeError`` and an error raised inside names the loss. The pair
    (``pred``, ``target``) is checked by the loss itself (``check_pair``), as
    its rules differ from loss to loss (class indices, probabilities).
    """

    input_kinds = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _contract.install(cls)

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
        check_not_empty(self, pred)
        return self.forward(pred, target)

    def check_pair(self, pred, target):
        """Both float arrays of the same dtype and exactly the same, non-empty shape."""
        check_array(self, pred, name="pred")
        check_array(self, target, name="target", dtype=pred.dtype)
        check_not_empty(self, pred)
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



def check_not_empty(loss, pred):
    """An empty batch is an error in every loss (a mean over nothing is undefined, a sum over nothing hides a bug)."""
    if pred.size == 0:
        raise ValueError(f"{loss!r} got an empty batch: pred has shape {pred.shape}; a loss needs at least one "
                         f"element (check the data and the batch size)")


def _mean_scale(loss, count, grad=1.0):
    """``grad / count`` for reduction="mean", ``grad`` for "sum"."""
    return float(grad) / count if loss.reduction == "mean" else float(grad)


