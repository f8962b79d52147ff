"""Element-wise activations."""

import numpy as np

from .._checks import check_array, check_backward_ready, check_same_shape
from ..module import Module


class ReLU(Module):
    """Rectified linear unit: ``y = max(x, 0)``.

    At exactly ``x == 0`` the output is 0 and the derivative used is **0**
    (the same choice as PyTorch): a unit sitting exactly at the kink passes no
    gradient. Any subgradient in [0, 1] would be valid there.

    Caches only the boolean mask ``x > 0`` for backward.

    Shape:
        - x: any shape -> y: the same shape and dtype.

    Example:
        >>> import numpy as np
        >>> import nanonet as nn
        >>> nn.ReLU()(np.array([[-1.0, 0.0, 2.0]]))
        array([[0., 0., 2.]])
    """

    def __init__(self):
        self._mask = None

    def forward(self, x):
        """x: any shape -> max(x, 0), a fresh array."""
        return self._forward_into(x, None)

    def backward(self, grad_out):
        """grad_out: x's shape -> grad_out where x > 0, else 0 (a fresh array)."""
        return self._backward_into(grad_out, None)

    # The container protocol (as Linear's): write into ``out`` when it has the
    # result's exact shape and dtype, else into a fresh array. ``out`` may be
    # the input itself (``_in_place``); a container passes that only for a
    # buffer it owns. The boolean mask is a private buffer, refilled in place
    # by each forward of the same shape; it never leaves the module.

    def _forward_into(self, x, out):
        if x.__class__ is not np.ndarray or x.dtype.kind != "f":
            check_array(self, x)
        mask = self._mask
        if mask is None or mask.shape != x.shape:
            mask = np.empty(x.shape, dtype=bool)
        np.greater(x, 0, out=mask)
        self._mask = mask
        if out is None or out.shape != x.shape or out.dtype != x.dtype:
            return np.maximum(x, 0)
        return np.maximum(x, 0, out=out)

    def _backward_into(self, grad_out, out, input_grad=True):
        mask = self._mask
        check_backward_ready(self, mask)
        if grad_out.__class__ is not np.ndarray or grad_out.shape != mask.shape or grad_out.dtype.kind != "f":
            check_same_shape(self, grad_out, mask.shape)
        if not input_grad:
            return None
        if out is None or out.shape != mask.shape or out.dtype != grad_out.dtype:
            return np.multiply(grad_out, mask)
        return np.multiply(grad_out, mask, out=out)

    def zero_grad(self):
        """ReLU has no parameters: a short walk over its attributes, no names built."""
        if not self.__dict__.keys() <= {"_mask", "training"}:
            super().zero_grad()  # a subclass that may have added parameters or children

    _into_methods = (forward, backward)  # what _forward_into / _backward_into implement
    _in_place = True  # out may be the input itself: the mask is taken before it is overwritten
