"""Affine layers."""

import math

import numpy as np

from .._checks import (check_array, check_backward_ready, check_features, check_number, check_same_shape,
                       shape_text, who)
from .._flat import Transient
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
    #: Set by ``fit`` alone (``nanonet._train_step.GradZeroing``) in place of filling this layer's grads with 0:
    #: they count as zero, and the next accumulation writes ``x.T @ grad_out`` into them instead of adding
    #: (the bound backward) or fills them first (any other path), then clears the flag. Nothing else sets it,
    #: so code that pre-fills ``.grad`` (the gradient checker) always sees backward add.
    _grads_zeroed = False

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

        The products go into a private scratch block ``[dw | db]``, reused
        while the gradients and the batch size stay the same, and are then
        added in place. The column sums are one BLAS call (``ones @
        grad_out``). When ``weight.grad`` and ``bias.grad`` lie side by side
        in one block (``Sequential`` and ``Graph`` lay them out so), both are
        added in one call over that block.
        """
        wg = self.weight.grad
        bg = None if self.bias is None else self.bias.grad
        if self._grads_zeroed:  # fit's promise, kept the plain way: zero them now, then add
            self._grads_zeroed = False
            wg.fill(0)
            if bg is not None:
                bg.fill(0)
        scratch = self._scratch
        if scratch is None or scratch[0] is not wg or scratch[1] is not bg or scratch[4].shape[0] != x.shape[0]:
            scratch = self._scratch = _scratch_for(wg, bg, x.shape[0])
        dw, db, ones, joint = scratch[2], scratch[3], scratch[4], scratch[5]
        blas = scratch[6]
        if blas is not None:  # small: BLAS adds into the gradients itself (beta=1), one call each
            blas[0](1.0, grad_out.T, x.T, beta=1.0, c=wg.T, trans_b=1, overwrite_c=1)
            if bg is not None:
                blas[1](1.0, grad_out.T, ones, beta=1.0, y=bg, overwrite_y=1)
            return
        np.dot(x.T, grad_out, out=dw)
        if bg is None:
            np.add(wg, dw, out=wg)
            return
        np.dot(ones, grad_out, out=db)
        if joint is not None:
            np.add(joint[0], joint[1], out=joint[0])
        else:
            np.add(wg, dw, out=wg)
            np.add(bg, db, out=bg)

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

    # -- bound calls: a container's prepared plan (see nanonet.containers.plan) ----------------
    # ``_bind_forward(shape, dtype, out)`` returns ``f(x)``, and ``_bind_backward(shape, dtype, out,
    # input_grad)`` returns ``f(grad_out)``: ``_forward_into(x, out)`` and ``_backward_into(grad_out,
    # out, input_grad)`` for an input of ``shape``/``dtype``, prepared once. Each call checks, by
    # identity and shape only, that its argument and the layer's parameters are what it was bound
    # to, and otherwise runs the method itself (with all its checks and messages).

    def _bind_forward(self, shape, dtype, out):
        if len(shape) != 2:  # only the 2-D path is prepared; any leading shape runs the method itself
            return lambda x: self._forward_into(x, out)
        weight, bias = self.weight, self.bias
        w, b = weight.value, None if bias is None else bias.value
        record = ((shape[0], self.out_features), w.dtype)
        dot, add, slow = np.dot, np.add, self._forward_into

        def forward(x):
            if x.__class__ is not np.ndarray or x.shape != shape or x.dtype is not dtype or self.weight is not weight \
                    or weight.value is not w or self.bias is not bias or (bias is not None and bias.value is not b):
                return slow(x, out)
            self._x = x
            y = dot(x, w) if out is None else dot(x, w, out=out)
            if b is not None:
                add(y, b, out=y)
            self._last_output = record
            return y

        return forward

    def _bind_backward(self, shape, dtype, out, input_grad):
        if len(shape) != 2:
            return lambda grad_out: self._backward_into(grad_out, out, input_grad)
        weight, bias = self.weight, self.bias
        w, wg = weight.value, weight.grad
        bg = None if bias is None else bias.grad
        x_shape = (shape[0], self.in_features)
        scratch = self._scratch = _scratch_for(wg, bg, shape[0])
        dw, db, ones, joint, blas = scratch[2], scratch[3], scratch[4], scratch[5], scratch[6]
        gemm, gemv = blas if blas is not None else (None, None)
        w_t, wg_t = w.T, wg.T
        direct = wg.flags.c_contiguous and (bg is None or bg.flags.c_contiguous)  # np.dot(out=) needs it
        dot, add, slow = np.dot, np.add, self._backward_into

        def backward(grad_out):
            x = self._x
            if grad_out.__class__ is not np.ndarray or grad_out.shape != shape or grad_out.dtype is not dtype \
                    or x is None or x.shape != x_shape or self.weight is not weight or weight.value is not w \
                    or weight.grad is not wg or self.bias is not bias or (bias is not None and bias.grad is not bg):
                return slow(grad_out, out, input_grad)
            zeroed = self._grads_zeroed  # fit zeroed the grads by promise: write them (the numbers of 0 + product)
            if zeroed:
                self._grads_zeroed = False
                if not direct:
                    zeroed = False
                    wg.fill(0)
                    if bg is not None:
                        bg.fill(0)
            if gemm is not None:
                beta = 0.0 if zeroed else 1.0
                gemm(1.0, grad_out.T, x.T, beta=beta, c=wg_t, trans_b=1, overwrite_c=1)
                if bg is not None:
                    gemv(1.0, grad_out.T, ones, beta=beta, y=bg, overwrite_y=1)
            elif zeroed:
                dot(x.T, grad_out, out=wg)
                if bg is not None:
                    dot(ones, grad_out, out=bg)
            elif bg is None:
                dot(x.T, grad_out, out=dw)
                add(wg, dw, out=wg)
            else:
                dot(x.T, grad_out, out=dw)
                dot(ones, grad_out, out=db)
                if joint is not None:
                    add(joint[0], joint[1], out=joint[0])
                else:
                    add(wg, dw, out=wg)
                    add(bg, db, out=bg)
            if not input_grad:
                return None
            return dot(grad_out, w_t) if out is None else dot(grad_out, w_t, out=out)

        return backward

    def extra_repr(self):
        text = f"{self.in_features} -> {self.out_features}"
        if self.bias is None:
            text += ", bias=False"
        if self.weight.value.dtype != np.float64:
            text += f", dtype={self.weight.value.dtype}"
        return text


class _Scratch(tuple, Transient):
    """Linear's scratch: it names gradient arrays by identity, so a copied layer makes its own."""

    __slots__ = ()


#: Below this many multiply-adds a weight gradient is added by BLAS itself (gemm with beta=1, gemv for
#: the bias): one call each instead of a product, its scratch and an add. OpenBLAS runs such small
#: products on one thread, so scipy's BLAS never wakes a second thread pool beside numpy's.
BLAS_ACCUMULATE_LIMIT = 65536


def _blas_for(wg, bg, rows):
    """scipy's ``(gemm, gemv)`` for ``wg``'s dtype when they can add into ``wg``/``bg`` in place, else None."""
    if not rows or rows * wg.size > BLAS_ACCUMULATE_LIMIT or wg.dtype not in (np.float32, np.float64) \
            or not wg.flags.c_contiguous or (bg is not None and not bg.flags.c_contiguous):
        return None
    from scipy.linalg import blas  # imported on first use: it takes a while

    return (blas.dgemm, blas.dgemv) if wg.dtype == np.float64 else (blas.sgemm, blas.sgemv)


def _scratch_for(wg, bg, rows):
    """``(wg, bg, dw, db, ones, joint, blas)``: Linear's scratch for these gradient arrays and batch size.

    ``dw`` and ``db`` are views of one block; ``joint`` is ``(grads, block)``
    when ``bg`` directly follows ``wg`` in one contiguous array (one add
    updates both), else None; ``blas`` is ``_blas_for``'s pair or None.
    """
    block = np.empty(wg.size + (0 if bg is None else bg.size), wg.dtype)
    dw = block[:wg.size].reshape(wg.shape)
    db = None if bg is None else block[wg.size:]
    joint = None
    if bg is not None and wg.base is not None and wg.base is bg.base and wg.flags.c_contiguous \
            and bg.flags.c_contiguous and wg.base.ndim == 1 and wg.dtype == bg.dtype:
        base = wg.base
        start = (wg.__array_interface__["data"][0] - base.__array_interface__["data"][0]) // wg.itemsize
        if bg.__array_interface__["data"][0] == wg.__array_interface__["data"][0] + wg.nbytes:
            joint = (base[start:start + block.size], block)
    return _Scratch((wg, bg, dw, db, np.ones(rows, wg.dtype), joint, _blas_for(wg, bg, rows)))
