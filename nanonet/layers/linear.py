"""Affine layers."""

import math

import numpy as np

from .._checks import check_array, check_backward_ready, check_features, check_number, check_same_shape, shape_text, who
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
        - x: ``(N, in_features)`` -> y: ``(N, out_features)``; more leading
          axes work as in torch: ``(N, ..., in_features)`` -> ``(N, ..., out_features)``
          (reshaped to 2-D and back; the 2-D path is the fast one). Unlike
          torch, a 1-D input is refused: nanonet arrays start with the batch axis.

    The input must already have the layer's dtype: a float32 array given to a
    float64 layer is an error, not a silent upcast.

    Speed: ``forward`` and ``backward`` return fresh arrays; the layer keeps a reference to its input (for backward)
    and a private scratch block for the products it adds into the grads.

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
        in_features = check_number("Linear", "in_features", in_features, low=1, integer=True)
        out_features = check_number("Linear", "out_features", out_features, low=1, integer=True)
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
        self._scratch = None

    def forward(self, x):
        """x: (N, in_features) -> (N, out_features), a fresh array."""
        return self._forward_into(x, None)

    def backward(self, grad_out):
        """grad_out: (N, out_features) -> dJ/dx: (N, in_features), a fresh array.

        Adds ``x.T @ grad_out`` into ``weight.grad`` and the column sums of
        ``grad_out`` into ``bias.grad``.
        """
        return self._backward_into(grad_out, None)

    # -- the container protocol (see nanonet.containers.sequential) ---------
    # ``_forward_into(x, out)`` and ``_backward_into(grad_out, out, input_grad)``
    # are ``forward`` and ``backward`` writing their result into ``out`` when
    # ``out`` is an array of exactly the result's shape and dtype (otherwise
    # into a fresh array), and returning it. Only a container that owns
    # ``out`` and never lets it escape to the user passes one.
    # ``input_grad=False`` skips dJ/dx (returns None); parameter gradients are
    # accumulated all the same. ``weight.grad`` and ``bias.grad`` are updated
    # in place, through a private scratch array reused between calls.

    def _forward_into(self, x, out):
        w = self.weight.value
        if x.__class__ is not np.ndarray or x.ndim != 2 or x.shape[1] != self.in_features or x.dtype != w.dtype:
            if x.__class__ is np.ndarray and x.ndim != 2:
                return self._forward_nd(x, out)
            check_features(self, x, self.in_features, dtype=w.dtype)
        self._x = x
        if out is None or out.shape != (x.shape[0], self.out_features) or out.dtype != w.dtype:
            out = np.dot(x, w)
        else:
            np.dot(x, w, out=out)
        if self.bias is not None:
            np.add(out, self.bias.value, out=out)
        self._last_output = (out.shape, out.dtype)  # what the contract checks backward's grad_out against
        return out

    def _backward_into(self, grad_out, out, input_grad=True):
        x = self._x
        if x is None:
            check_backward_ready(self, x)
        w = self.weight.value
        expected = (x.shape[0], self.out_features)
        if grad_out.__class__ is not np.ndarray or grad_out.shape != expected or grad_out.dtype != w.dtype:
            if x.ndim != 2:
                return self._backward_nd(grad_out, out, input_grad)
            check_same_shape(self, grad_out, expected, dtype=w.dtype)
        self._accumulate(x, grad_out)
        if not input_grad:
            return None
        if out is None or out.shape != x.shape or out.dtype != w.dtype:
            return np.dot(grad_out, w.T)
        return np.dot(grad_out, w.T, out=out)

    def _accumulate(self, x, grad_out):
        """weight.grad += x.T @ grad_out; bias.grad += the column sums of grad_out.

        The products go into private scratch arrays, reused while the shapes
        stay the same, and are then added in place. The column sums are one
        BLAS call (``ones @ grad_out``).
        """
        wg = self.weight.grad
        scratch = self._scratch
        if scratch is None or scratch[0].shape != wg.shape or scratch[0].dtype != wg.dtype \
                or scratch[2].shape[0] != x.shape[0]:
            scratch = self._scratch = (np.empty_like(wg), np.empty(wg.shape[1], wg.dtype),
                                       np.ones(x.shape[0], wg.dtype))
        dw, db, ones = scratch
        np.add(wg, np.dot(x.T, grad_out, out=dw), out=wg)
        if self.bias is not None:
            bg = self.bias.grad
            np.add(bg, np.dot(ones, grad_out, out=db), out=bg)

    # -- any leading shape: (..., in_features), reshaped to the 2-D path and back ----------
    def _forward_nd(self, x, out):
        w = self.weight.value
        check_array(self, x, dtype=w.dtype)
        if x.ndim < 2 or x.shape[-1] != self.in_features:  # a batch axis first, as everywhere in nanonet
            raise ValueError(f"{who(self)} expected input of shape (N, {self.in_features}) or "
                             f"(N, ..., {self.in_features}), got {shape_text(x.shape)}")
        shape = x.shape[:-1] + (self.out_features,)
        flat_out = out.reshape(-1, self.out_features) if out is not None and out.shape == shape \
            and out.dtype == w.dtype and out.flags.c_contiguous else None
        y = self._forward_into(x.reshape(-1, self.in_features), flat_out)
        self._x = x  # backward sees the N-D input and takes the N-D path
        self._last_output = (shape, y.dtype)
        return y.reshape(shape)

    def _backward_nd(self, grad_out, out, input_grad):
        x, w = self._x, self.weight.value
        check_same_shape(self, grad_out, x.shape[:-1] + (self.out_features,), dtype=w.dtype)
        g = grad_out.reshape(-1, self.out_features)
        self._accumulate(x.reshape(-1, self.in_features), g)
        if not input_grad:
            return None
        if out is not None and out.shape == x.shape and out.dtype == w.dtype and out.flags.c_contiguous:
            np.dot(g, w.T, out=out.reshape(-1, self.in_features))
            return out
        return np.dot(g, w.T).reshape(x.shape)

    _into_methods = (forward, backward)  # what _forward_into / _backward_into implement

    def extra_repr(self):
        text = f"{self.in_features} -> {self.out_features}"
        if self.bias is None:
            text += ", bias=False"
        if self.weight.value.dtype != np.float64:
            text += f", dtype={self.weight.value.dtype}"
        return text
