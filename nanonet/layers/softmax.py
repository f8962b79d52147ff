"""``Softmax`` and ``LogSoftmax`` along one axis, numerically stable.

Both subtract the maximum along the axis before exponentiating, so inputs
of any finite size give finite outputs: no overflow, and no ``log(0)``.
"""

import numpy as np

from .._checks import check_number, who
from ..module import Module


def _axis(module, dim, ndim):
    """The array axis that ``dim`` names for an input of ``ndim`` dimensions (a clear error otherwise)."""
    if not -ndim <= dim < ndim:
        raise ValueError(f"{who(module)} cannot use dim={dim} on an input of {ndim} dimension(s) "
                         f"(dims are {-ndim}..{ndim - 1})")
    return dim % ndim


def softmax(x, axis=-1):
    """``exp(x) / sum(exp(x))`` along ``axis``, shifted by the maximum (no overflow).

    >>> softmax(np.array([[0.0, 1000.0]]))
    array([[0., 1.]])
    """
    shifted = x - x.max(axis=axis, keepdims=True, initial=-np.inf)  # an empty axis: an empty result, as torch
    e = np.exp(shifted, out=shifted)
    e /= e.sum(axis=axis, keepdims=True)
    return e


def log_softmax(x, axis=-1):
    """``x - max - log(sum(exp(x - max)))`` along ``axis``.

    >>> log_softmax(np.array([[0.0, 1000.0]])).round(3)
    array([[-1000.,     0.]])
    """
    shifted = x - x.max(axis=axis, keepdims=True, initial=-np.inf)
    if shifted.size:  # an empty axis: no log(0) of its empty sums
        shifted -= np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
    return shifted


class _AlongDim(Module):
    """Shared: the ``dim`` hyperparameter, the forward of ``function`` along it (caching the output)."""

    function = None

    def __init__(self, dim=-1):
        self.dim = check_number(type(self).__name__, "dim", dim, integer=True)
        self._cache = None
        self._ndim = None

    @property
    def batch_independent(self):
        """True when the softmax axis is not axis 0 (then row i depends only on row i).

        A negative ``dim`` is resolved with the last input's rank (before any
        forward, inputs are assumed to have a batch axis besides ``dim``).
        """
        if self.dim >= 0 or self._ndim is None:
            return self.dim != 0
        return self._ndim + self.dim > 0

    def forward(self, x):
        """x: any shape -> the function along ``dim``, the same shape."""
        axis = _axis(self, self.dim, x.ndim)
        y = type(self).function(x, axis)
        self._cache, self._ndim = (y, axis), x.ndim
        return y

    def output_shape(self, shape):
        _axis(self, self.dim, len(shape) + 1)
        return tuple(shape)

    def extra_repr(self):
        return f"dim={self.dim}"


class Softmax(_AlongDim):
    """``y = exp(x) / sum(exp(x))`` along ``dim``, as ``torch.nn.Softmax(dim)``.

    Backward: ``dJ/dx = y * (g - sum(g * y, dim))``. Caches ``y``.

    Shape:
        - x: any shape -> y: the same shape and dtype.

    Example:
        >>> import numpy as np
        >>> import nanonet as nn
        >>> nn.Softmax(dim=-1)(np.array([[1.0, 1.0], [0.0, 1000.0]]))
        array([[0.5, 0.5],
               [0. , 1. ]])
    """

    function = staticmethod(softmax)

    def backward(self, grad_out):
        y, axis = self._cache
        dot = (grad_out * y).sum(axis=axis, keepdims=True)
        return y * (grad_out - dot)


class LogSoftmax(_AlongDim):
    """``y = log(softmax(x))`` along ``dim``, as ``torch.nn.LogSoftmax(dim)``.

    Computed as ``x - max - log(sum(exp(x - max)))``: no overflow, no
    ``log(0)``. Backward: ``dJ/dx = g - exp(y) * sum(g, dim)``. Caches ``y``.

    Shape:
        - x: any shape -> y: the same shape and dtype.

    Example:
        >>> import numpy as np
        >>> import nanonet as nn
        >>> nn.LogSoftmax()(np.array([[0.0, 1000.0]])).round(3)
        array([[-1000.,     0.]])
    """

    function = staticmethod(log_softmax)

    def backward(self, grad_out):
        y, axis = self._cache
        return grad_out - np.exp(y) * grad_out.sum(axis=axis, keepdims=True)
