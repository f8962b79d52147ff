"""Affine layers."""

import math

import numpy as np

from .._checks import check_backward_ready, check_features, check_same_shape
from .._rng import as_generator
from ..module import Module, Parameter

_INITS = ("he", "glorot")
_PLAIN_ATTRIBUTES = frozenset({"in_features", "out_features", "weight", "bias", "_x", "_scratch", "_joined",
                               "training"})


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

    Speed: ``weight.grad`` and ``bias.grad`` start as views of one
    ``(in_features + 1, out_features)`` block, so that ``backward`` adds both
    in one pass and ``zero_grad`` fills both at once. Nothing relies on it:
    replace either grad array (or ``deepcopy``, or ``.to(dtype)``) and the
    layer adds into them separately. ``forward`` and ``backward`` return
    fresh arrays; the layer keeps a reference to its input (for backward)
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
        self._scratch = None
        self._joined = None
        # weight.grad and bias.grad as views of one block: one add and one fill for both. Every use
        # checks that they still are (a deep copy or .to(dtype) makes them separate arrays again).
        if bias:
            block = np.zeros((self.in_features + 1, self.out_features), dtype=dtype)
            self.weight.grad, self.bias.grad = block[:-1], block[-1]
            self._joined = (self.weight.grad, self.bias.grad, block)

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
            check_features(self, x, self.in_features, dtype=w.dtype)
        self._x = x
        if out is None or out.shape != (x.shape[0], self.out_features) or out.dtype != w.dtype:
            out = np.dot(x, w)
        else:
            np.dot(x, w, out=out)
        if self.bias is not None:
            np.add(out, self.bias.value, out=out)
        return out

    def _backward_into(self, grad_out, out, input_grad=True):
        x = self._x
        if x is None:
            check_backward_ready(self, x)
        w = self.weight.value
        if (grad_out.__class__ is not np.ndarray or grad_out.shape != (x.shape[0], self.out_features)
                or grad_out.dtype != w.dtype or x.dtype != w.dtype):
            check_same_shape(self, grad_out, (x.shape[0], self.out_features))
            self._accumulate_slow(x, grad_out)
        else:
            self._accumulate(x, grad_out)
        if not input_grad:
            return None
        if out is None or out.shape != x.shape or out.dtype != w.dtype or grad_out.dtype != w.dtype:
            return np.dot(grad_out, w.T)
        return np.dot(grad_out, w.T, out=out)

    def _accumulate(self, x, grad_out):
        """weight.grad += x.T @ grad_out; bias.grad += column sums of grad_out (equal dtypes).

        The products go to a private scratch block (reused while the shapes
        and dtype stay), then are added in place: one add when the two grads
        are still views of the block made in ``__init__``, two otherwise.
        """
        wg = self.weight.grad
        bg = None if self.bias is None else self.bias.grad
        scratch = self._scratch
        if scratch is None or scratch[0].shape != wg.shape or scratch[0].dtype != wg.dtype \
                or scratch[3].shape[0] != x.shape[0]:
            block = np.empty((wg.shape[0] + 1, wg.shape[1]), wg.dtype)
            scratch = self._scratch = (block[:-1], block[-1], block, np.ones(x.shape[0], wg.dtype))
        np.dot(x.T, grad_out, out=scratch[0])
        if bg is None:
            np.add(wg, scratch[0], out=wg)
            return
        np.dot(scratch[3], grad_out, out=scratch[1])  # the column sums, as one BLAS call
        joined = self._joined
        if joined is not None and joined[0] is wg and joined[1] is bg and wg.base is joined[2] is bg.base:
            np.add(joined[2], scratch[2], out=joined[2])
        else:
            np.add(wg, scratch[0], out=wg)
            np.add(bg, scratch[1], out=bg)

    def _accumulate_slow(self, x, grad_out):
        """Mixed dtypes: numpy's own promotion rules, as ``+=`` applies them."""
        self.weight.grad += x.T @ grad_out
        if self.bias is not None:
            self.bias.grad += grad_out.sum(axis=0)

    def zero_grad(self):
        """Fill weight.grad and bias.grad with 0 (one fill while they share their block).

        An instance with attributes a plain Linear does not have (a subclass
        with more parameters or children) gets the general walk.
        """
        if not self.__dict__.keys() <= _PLAIN_ATTRIBUTES:
            return super().zero_grad()
        wg = self.weight.grad
        joined = self._joined
        if self.bias is None:
            wg.fill(0)
        elif (joined is not None and joined[0] is wg and joined[1] is self.bias.grad
              and wg.base is joined[2] is joined[1].base):
            joined[2].fill(0)
        else:
            wg.fill(0)
            self.bias.grad.fill(0)

    _into_methods = (forward, backward)  # what _forward_into / _backward_into implement

    def extra_repr(self):
        text = f"{self.in_features} -> {self.out_features}"
        if self.bias is None:
            text += ", bias=False"
        if self.weight.value.dtype != np.float64:
            text += f", dtype={self.weight.value.dtype}"
        return text
