"""``Projection``: an affine layer that keeps torch's ``(out_features, in_features)`` weight layout."""

import math

import numpy as np

from .._checks import check_number, shape_text, who
from .._rng import as_generator
from ..module import Module, Parameter
from .linear import Linear


class Projection(Module):
    """``y = x @ weight.T + bias`` on the last axis, with ``weight`` laid out ``(out_features, in_features)``.

    nanonet's ``Linear`` keeps its weight as ``(in_features, out_features)``;
    a torch ``nn.Linear`` as ``(out_features, in_features)``. Inside the
    layers whose torch ``state_dict`` must load as it is
    (``MultiheadAttention.out_proj``, ``TransformerEncoderLayer.linear1`` and
    ``linear2``) nanonet uses this layer, in torch's layout, so that no
    square weight can ever be loaded transposed by mistake. Initialized as
    torch's ``nn.Linear``: weight and bias ``~ U(-1/sqrt(in), 1/sqrt(in))``.

    Args:
        in_features, out_features: sizes of the last axis in and out.
        bias: if False, no bias.
        rng: int seed or ``numpy.random.Generator``.
        dtype: ``np.float64`` (default) or ``np.float32``.

    Shape:
        - weight: ``(out_features, in_features)``; bias: ``(out_features,)``
        - x: ``(..., in_features)`` -> y: ``(..., out_features)``

    Example:
        >>> import numpy as np
        >>> import nanonet as nn
        >>> p = nn.Projection(4, 2, rng=0)
        >>> p, p.weight.shape
        (Projection(4 -> 2), (2, 4))
        >>> p(np.ones((3, 5, 4))).shape
        (3, 5, 2)
    """

    batch_independent = True

    def __init__(self, in_features, out_features, bias=True, rng=None, dtype=np.float64):
        self.in_features = check_number("Projection", "in_features", in_features, low=1, integer=True)
        self.out_features = check_number("Projection", "out_features", out_features, low=1, integer=True)
        dtype = np.dtype(dtype)
        if dtype.kind != "f":
            raise TypeError(f"Projection expected a floating-point dtype, got {dtype}")
        gen = as_generator(rng)
        bound = 1 / math.sqrt(self.in_features)
        self.weight = Parameter(gen.uniform(-bound, bound, (self.out_features, self.in_features)).astype(dtype))
        self.bias = Parameter(gen.uniform(-bound, bound, self.out_features).astype(dtype)) if bias else None
        self._x = None

    def forward(self, x):
        """x: (..., in_features) -> (..., out_features)."""
        w = self.weight.value
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            raise ValueError(f"{who(self)} expected input of shape (..., {self.in_features}), "
                             f"got {shape_text(x.shape)}")
        if x.dtype != w.dtype:
            raise TypeError(f"{who(self)} expected input of dtype {w.dtype}, got {x.dtype} "
                            f"(nanonet does not cast silently)")
        self._x = x
        y = np.dot(x.reshape(-1, self.in_features), w.T)
        if self.bias is not None:
            y += self.bias.value
        return y.reshape(x.shape[:-1] + (self.out_features,))

    def backward(self, grad_out):
        """grad_out: (..., out_features) -> dJ/dx: (..., in_features); adds into weight.grad and bias.grad."""
        x = self._x
        g = grad_out.reshape(-1, self.out_features)
        self.weight.grad += np.dot(g.T, x.reshape(-1, self.in_features))
        if self.bias is not None:
            self.bias.grad += np.dot(np.ones(g.shape[0], g.dtype), g)
        return np.dot(g, self.weight.value).reshape(x.shape)

    def output_shape(self, shape):
        if not shape or shape[-1] != self.in_features:
            raise ValueError(f"{who(self)} expected feature shape (..., {self.in_features}), got {tuple(shape)}")
        return tuple(shape[:-1]) + (self.out_features,)

    extra_repr = Linear.extra_repr  # the same configuration text: "4 -> 2, bias=False, dtype=float32"
