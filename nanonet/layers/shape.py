"""Shape layers: ``Identity`` and ``Flatten``."""

import math

from ..module import Module


class Identity(Module):
    """``y = x``. Useful as a placeholder, and to check a loss on its own.

    Shape:
        - x: any shape -> y: the same array.

    Example:
        >>> import numpy as np
        >>> import nanonet as nn
        >>> nn.Identity()(np.ones((2, 3))).shape
        (2, 3)
    """

    batch_independent = True

    def forward(self, x):
        return x

    def backward(self, grad_out):
        return grad_out


class Flatten(Module):
    """Flattens every axis but the first: ``(N, d1, d2, ...) -> (N, d1*d2*...)``.

    Returns a view when the input is contiguous; backward reshapes back.

    Shape:
        - x: ``(N, *)`` with at least one axis -> y: ``(N, prod(*))``.

    Example:
        >>> import numpy as np
        >>> import nanonet as nn
        >>> nn.Flatten()(np.zeros((4, 2, 3))).shape
        (4, 6)
    """

    batch_independent = True

    def __init__(self):
        self._shape = None

    def forward(self, x):
        if x.ndim < 1:
            raise ValueError(f"{self!r} expected input of shape (N, ...), got a 0-d array")
        self._shape = x.shape
        return x.reshape(x.shape[0], math.prod(x.shape[1:]))  # not -1: the batch may be empty

    def backward(self, grad_out):
        return grad_out.reshape(self._shape)
