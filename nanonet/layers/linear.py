"""Affine layers."""

import math

import numpy as np

from .._checks import check_backward_ready, check_features, check_same_shape
from .._rng import as_generator
from ..module import Module, Parameter

_INITS = ("he", "glorot")


class Linear(Module):
    """Fully connected layer: ``y = x @ weight + bias``.

    Args:
        in_features: size of each input row.
        out_features: size of each output row.
        bias: if False, the layer has no bias.
        rng: int seed or ``numpy.random.Generator`` for the initial weights.
        dtype: ``np.float64`` (default) or ``np.float32``.
        init: ``"he"`` (default) or ``"glorot"``.

    Initialization: ``weight ~ Normal(0, 2 / in_features)`` (He/Kaiming
    normal), chosen because nanonet's networks are mostly ReLU networks: ReLU
    zeroes half of its input, and the factor 2 keeps the activations' variance
    constant from layer to layer. ``init="glorot"`` uses
    ``Normal(0, 2 / (in_features + out_features))``, suited to tanh and
    sigmoid. The bias starts at zero.

    Shape:
        - weight: ``(in_features, out_features)`` (as in the seed's maths)
        - bias: ``(out_features,)``
        - x: ``(N, in_features)`` -> y: ``(N, out_features)``

    The input must already have the layer's dtype: a float32 array given to a
    float64 layer is an error, not a silent upcast.

    Example:
        >>> import numpy as np
        >>> import nanonet as nn
        >>> layer = nn.Linear(3, 2, rng=0)
        >>> layer
        Linear(3 -> 2)
        >>> layer(np.ones((4, 3))).shape
        (4, 2)
    """

    batch_independent = True

    def __init__(self, in_features, out_features, bias=True, rng=None, dtype=np.float64, *, init="he"):
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"Linear expected {name} to be a positive int, got {value!r}")
        dtype = np.dtype(dtype)
        if dtype.kind != "f":
            raise TypeError(f"Linear expected a floating-point dtype, got {dtype}")
        if init not in _INITS:
            raise ValueError(f"Linear expected init to be one of {_INITS}, got {init!r}")
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        fan = self.in_features if init == "he" else self.in_features + self.out_features
        std = math.sqrt(2.0 / fan)
        w = as_generator(rng).standard_normal((self.in_features, self.out_features)) * std
        self.weight = Parameter(w.astype(dtype, copy=False))
        self.bias = Parameter(np.zeros(self.out_features, dtype=dtype)) if bias else None
        self._x = None

    def forward(self, x):
        """x: (N, in_features) -> (N, out_features)."""
        check_features(self, x, self.in_features, dtype=self.weight.value.dtype)
        self._x = x
        out = x @ self.weight.value
        if self.bias is not None:
            out += self.bias.value
        return out

    def backward(self, grad_out):
        """grad_out: (N, out_features) -> dJ/dx: (N, in_features)."""
        check_backward_ready(self, self._x)
        check_same_shape(self, grad_out, (self._x.shape[0], self.out_features))
        self.weight.grad += self._x.T @ grad_out
        if self.bias is not None:
            self.bias.grad += grad_out.sum(axis=0)
        return grad_out @ self.weight.value.T

    def extra_repr(self):
        text = f"{self.in_features} -> {self.out_features}"
        if self.bias is None:
            text += ", bias=False"
        if self.weight.value.dtype != np.float64:
            text += f", dtype={self.weight.value.dtype}"
        return text
