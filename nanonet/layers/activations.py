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
        check_array(self, x)
        self._mask = x > 0
        return np.maximum(x, 0)

    def backward(self, grad_out):
        check_backward_ready(self, self._mask)
        check_same_shape(self, grad_out, self._mask.shape)
        return grad_out * self._mask
