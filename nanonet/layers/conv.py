"""Convolutions: ``Conv1d`` and ``Conv2d`` (NCL / NCHW), PyTorch's arguments, defaults and weight layout.

How it runs (see ``nanonet.layers._im2col``): the padded input is copied
once out of a strided window view into columns ``(N, C, *kernel, *out)``
(im2col), and the convolution is one batched matrix product per sample and
group, ``weight (G, O/G, C/G * k) @ cols (N, G, C/G * k, L)``, which lands
directly in the ``(N, O, *out)`` output. Backward is two more batched
products (``dW``, and the columns' gradient) and, for ``dJ/dx``, col2im: one
strided add per kernel offset. The columns, the padded input and the
weight-gradient products live in private buffers reused while the shapes
stay the same; ``forward`` and ``backward`` return fresh arrays.
"""

import math

import numpy as np

from .._checks import check_number, check_same_shape
from .._flat import Transient
from .._rng import as_generator
from ..module import Module, Parameter
from ._conv_args import (
    check_dtype,
    check_feature_shape,
    check_input,
    check_pad_fits,
    check_padding_mode,
    int_tuple,
    output_sizes,
    padding_pairs,
)
from . import _conv_nhwc
from ._im2col import col2im_add, im2col, pad, pad_adjoint


def conv_channels(owner, in_channels, out_channels, groups):
    """Checked ``(in_channels, out_channels, groups)``: positive ints, ``groups`` dividing both."""
    in_channels = check_number(owner, "in_channels", in_channels, low=1, integer=True)
    out_channels = check_number(owner, "out_channels", out_channels, low=1, integer=True)
    groups = check_number(owner, "groups", groups, low=1, integer=True)
    for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
        if value % groups:
            raise ValueError(f"{owner} expected groups to divide {name}, got {name}={value} and groups={groups}")
    return in_channels, out_channels, groups


def check_bias_flag(owner, bias):
    if not isinstance(bias, (bool, np.bool_)):
        raise TypeError(f"{owner} expected bias to be True or False, got {bias!r}")
    return bool(bias)


def he_normal(rng, shape, fan_in, dtype):
    """``Normal(0, 2 / fan_in)`` weights (He/Kaiming normal), as Linear's default."""
    return (as_generator(rng).standard_normal(shape) * math.sqrt(2.0 / fan_in)).astype(dtype, copy=False)


class _ConvNd(Module):
    """What Conv1d and Conv2d share; ``_dims`` is the number of spatial axes."""

    batch_independent = True
    _dims = 2

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, padding_mode="zeros", *, rng=None, dtype=np.float64):
        name, dims = type(self).__name__, self._dims
        self.in_channels, self.out_channels, self.groups = conv_channels(name, in_channels, out_channels, groups)
        self.kernel_size = int_tuple(name, "kernel_size", kernel_size, dims)
        self.stride = int_tuple(name, "stride", stride, dims)
        self.dilation = int_tuple(name, "dilation", dilation, dims)
        self._pads = padding_pairs(name, padding, dims, self.kernel_size, self.dilation, self.stride)
        self.padding = padding if isinstance(padding, str) else tuple(lo for lo, _ in self._pads)
        self.padding_mode = check_padding_mode(name, padding_mode)
        dtype = check_dtype(name, dtype)
        fan_in = self.in_channels // self.groups * math.prod(self.kernel_size)
        shape = (self.out_channels, self.in_channels // self.groups) + self.kernel_size
        self.weight = Parameter(he_normal(rng, shape, fan_in, dtype))
        self.bias = Parameter(np.zeros(self.out_channels, dtype=dtype)) if check_bias_flag(name, bias) else None
        self._cols = None       # im2col of the last input: what backward needs
        self._pad_buf = None    # the zero-padded input, reused
        self._scratch = None    # (dW per sample, dcols) products of backward, reused
        self._input_shape = None
        self._wide = None       # stride-1 backward: (key, wide grad_out, its view, dcols, kernel offsets)
        self._last = None       # small maps: the channels-last path's buffers (nanonet.layers._conv_nhwc)

    # -- shapes -------------------------------------------------------------
    def _out_sizes(self, spatial):
        check_pad_fits(self, self.padding_mode, spatial, self._pads)
        return output_sizes(self, spatial, self._pads, self.kernel_size, self.stride, self.dilation)

    def output_shape(self, shape):
        """The feature shape ``(C_out, *out)`` for an input feature shape ``(C_in, *spatial)``."""
        shape = check_feature_shape(self, shape, self.in_channels, self._dims)
        return (self.out_channels,) + self._out_sizes(shape[1:])

    # -- forward and backward -----------------------------------------------
    def forward(self, x):
        """x: (N, C_in, *spatial) -> (N, C_out, *out), a fresh array."""
        return self._forward_into(x, None)

    def backward(self, grad_out):
        """grad_out: (N, C_out, *out) -> dJ/dx (N, C_in, *spatial); adds into weight.grad and bias.grad."""
        return self._backward_into(grad_out, None)

    # The container protocol (as Linear's, see nanonet.containers.sequential): write the result into
    # ``out`` when it has exactly the result's shape and dtype, else into a fresh array;
    # ``input_grad=False`` skips dJ/dx (col2im), for the first layer of a model in training.

    def _forward_into(self, x, out):
        w = self.weight.value
        check_input(self, x, self.in_channels, self._dims, w.dtype)
        sizes = self._out_sizes(x.shape[2:])
        if _conv_nhwc.fits(self, x.shape, sizes):
            return self._forward_last(x, out, sizes)
        self._last = None
        xp = pad(x, self._pads, self.padding_mode, buf=self._pad_buf)
        if xp is not x and self.padding_mode == "zeros":
            self._pad_buf = xp
        cols = self._cols = im2col(xp, self.kernel_size, self.stride, self.dilation, sizes, buf=self._cols)
        n, groups, length = x.shape[0], self.groups, math.prod(sizes)
        shape = (n, self.out_channels) + sizes
        if out is None or out.shape != shape or out.dtype != w.dtype:
            out = np.empty(shape, dtype=w.dtype)
        per_group = (n, groups, self.out_channels // groups, length)
        ck = self.in_channels // groups * math.prod(self.kernel_size)  # explicit, not -1: N may be 0
        np.matmul(w.reshape(groups, self.out_channels // groups, ck), cols.reshape(n, groups, ck, length),
                  out=out.reshape(per_group))
        if self.bias is not None:
            flat = out.reshape(n, self.out_channels, length)
            np.add(flat, self.bias.value[:, None], out=flat)
        self._input_shape = x.shape
        self._last_output = (shape, w.dtype)  # what the contract checks backward's grad_out against
        return out

    def _forward_last(self, x, out, sizes):
        """``_forward_into`` on small maps, channels-last (``nanonet.layers._conv_nhwc``)."""
        w = self.weight.value
        shape = (x.shape[0], self.out_channels) + sizes
        if out is None or out.shape != shape or out.dtype != w.dtype:
            out = np.empty(shape, dtype=w.dtype)
        if self._last is None:
            self._last = {}
        self._cols = None
        _conv_nhwc.forward(self._last, x, w, None if self.bias is None else self.bias.value, self._pads, sizes, out)
        self._input_shape = x.shape
        self._last_output = (shape, w.dtype)
        return out

    def _backward_into(self, grad_out, out, input_grad=True):
        cols = self._cols
        if cols is None and self._last is None:
            raise RuntimeError(f"{self.short_repr()}: backward called before forward; call forward(x) first")
        w = self.weight.value
        expected = self._last_output[0]
        if grad_out.__class__ is not np.ndarray or grad_out.shape != expected or grad_out.dtype != w.dtype:
            check_same_shape(self, grad_out, expected, dtype=w.dtype)
        if cols is None:
            return _conv_nhwc.backward(self._last, grad_out, w, self.weight.grad,
                                       None if self.bias is None else self.bias.grad, self._pads, self._input_shape,
                                       input_grad, out)
        n, groups = grad_out.shape[0], self.groups
        og, length = self.out_channels // groups, math.prod(expected[2:])
        g = grad_out.reshape(n, groups, og, length)
        cols_m = cols.reshape(n, groups, self.in_channels // groups * math.prod(self.kernel_size), length)
        dw, dcols = self._buffers(g, cols_m, input_grad and self.stride != (1,) * self._dims)
        np.matmul(g, cols_m.transpose(0, 1, 3, 2), out=dw)
        wg = self.weight.grad
        np.add(wg, dw.sum(axis=0).reshape(wg.shape), out=wg)
        if self.bias is not None:
            self.bias.grad += grad_out.reshape(n, self.out_channels, length).sum(axis=(0, 2))
        if not input_grad:
            return None
        padded_shape = self._input_shape[:2] + tuple(
            s + lo + hi for s, (lo, hi) in zip(self._input_shape[2:], self._pads))
        dxp = np.zeros(padded_shape, dtype=w.dtype)
        w_t = w.reshape(groups, og, -1).transpose(0, 2, 1)
        if self.stride == (1,) * self._dims:
            self._col2im_flat(grad_out, w_t, dxp)
        else:
            np.matmul(w_t, g, out=dcols)
            col2im_add(dcols.reshape(cols.shape), dxp, self.stride, self.dilation)
        dx = pad_adjoint(dxp, self._pads, self.padding_mode)
        if out is not None and out.shape == dx.shape and out.dtype == dx.dtype:
            np.copyto(out, dx)
            return out
        return dx if dx is dxp else np.ascontiguousarray(dx)

    def _col2im_flat(self, grad_out, w_t, dxp):
        """``dxp += col2im(w^T @ grad_out)`` for stride 1, on the flattened padded input.

        With stride 1, output pixel ``q`` and kernel offset ``k`` read padded
        pixel ``q + offset[k]`` in flat (row-major) order, once ``grad_out``
        sits on the padded input's row width (its ``wide`` layout: zeros in
        the ``kW - 1`` columns between rows). Then the columns' gradient is one
        batched product and col2im one add of a contiguous run per kernel
        offset, instead of one strided add per offset and output row.
        """
        n, groups = grad_out.shape[0], self.groups
        padded = dxp.shape[2:]
        steps = np.cumprod((1,) + padded[:0:-1])[::-1]  # element strides of the padded spatial axes
        length = 1 + sum((o - 1) * st for o, st in zip(grad_out.shape[2:], steps))
        key = (grad_out.shape, padded, grad_out.dtype)
        wide = self._wide
        if wide is None or wide[0] != key:
            gw = np.zeros((n, groups, self.out_channels // groups, length), dtype=grad_out.dtype)
            dcols = np.empty((n, groups, w_t.shape[1], length), dtype=grad_out.dtype)
            item = gw.itemsize
            view = np.lib.stride_tricks.as_strided(gw, grad_out.shape, (gw.strides[0], length * item) + tuple(
                int(st) * item for st in steps))
            offsets = [int(sum(k * d * st for k, d, st in zip(offset, self.dilation, steps)))
                       for offset in np.ndindex(*self.kernel_size)]
            wide = self._wide = _Wide((key, gw, view, dcols, offsets))
        _, gw, view, dcols, offsets = wide
        np.copyto(view, grad_out)  # the columns between rows stay 0
        np.matmul(w_t, gw, out=dcols)
        flat = dxp.reshape(n, self.in_channels, math.prod(padded))  # explicit, not -1: N may be 0
        per_offset = dcols.reshape(n, self.in_channels, len(offsets), length)
        for k, start in enumerate(offsets):
            target = flat[:, :, start:start + length]
            np.add(target, per_offset[:, :, k], out=target)

    def _buffers(self, g, cols_m, input_grad):
        """Scratch arrays for the per-sample weight gradients and the columns' gradient, reused."""
        shapes = (g.shape[:3] + cols_m.shape[2:3], cols_m.shape)
        scratch = self._scratch
        if scratch is None or scratch[0].shape != shapes[0] or scratch[0].dtype != g.dtype \
                or (input_grad and scratch[1] is None) or (scratch[1] is not None and scratch[1].shape != shapes[1]):
            scratch = self._scratch = (np.empty(shapes[0], g.dtype),
                                       np.empty(shapes[1], g.dtype) if input_grad else None)
        return scratch

    _into_methods = (forward, backward)  # what _forward_into / _backward_into implement

    def extra_repr(self):
        text = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0,) * self._dims:
            text += f", padding={self.padding!r}"
        if self.dilation != (1,) * self._dims:
            text += f", dilation={self.dilation}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.bias is None:
            text += ", bias=False"
        if self.padding_mode != "zeros":
            text += f", padding_mode={self.padding_mode!r}"
        if self.weight.value.dtype != np.float64:
            text += f", dtype={self.weight.value.dtype}"
        return text


class _Wide(tuple, Transient):
    """The stride-1 backward's buffers; it holds a view of one of them, so a copied layer makes its own."""

    __slots__ = ()


_COMMON_DOC = """
    Args:
        in_channels, out_channels: channels of the input and the output.
        kernel_size, stride, dilation: an int or a tuple of one int per spatial axis.
        padding: an int or a tuple (the same on both sides of each axis),
            ``"valid"`` (none) or ``"same"`` (output size = input size; stride 1
            only; an odd total puts the extra pixel after, as PyTorch).
        groups: split the channels into ``groups`` independent convolutions
            (``groups == in_channels``: depthwise). Must divide both channel counts.
        bias: add a learned bias per output channel.
        padding_mode: ``"zeros"``, ``"reflect"``, ``"replicate"`` or ``"circular"``.
        rng: int seed or ``numpy.random.Generator`` for the initial weights.
        dtype: ``np.float64`` (default) or ``np.float32``.

    Initialization: ``weight ~ Normal(0, 2 / fan_in)`` with ``fan_in =
    in_channels / groups * prod(kernel_size)`` (He/Kaiming normal, as
    ``Linear``: nanonet's networks are mostly ReLU networks), bias 0.
    (PyTorch's default init differs; its weights load as they are.)
"""


class Conv2d(_ConvNd):
    """2-D convolution (cross-correlation, as every framework), NCHW.

    ``y[n, o] = bias[o] + sum_{c in group(o), i, j} weight[o, c, i, j] *
    x_padded[n, c, h * stride + i * dilation, w * stride + j * dilation]``.
    """ + _COMMON_DOC + """
    Shape:
        - weight: ``(out_channels, in_channels // groups, kH, kW)`` (PyTorch's,
          Caffe's and Chainer's layout: a torch ``state_dict`` loads as it is)
        - bias: ``(out_channels,)``
        - x: ``(N, in_channels, H, W)`` -> y: ``(N, out_channels, H_out, W_out)``
          with ``H_out = (H + pad_top + pad_bottom - dilation * (kH - 1) - 1) // stride + 1``.

    Example:
        >>> import numpy as np
        >>> import nanonet as nn
        >>> conv = nn.Conv2d(3, 8, 3, padding=1, rng=0)
        >>> conv
        Conv2d(3, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
        >>> conv(np.ones((2, 3, 5, 5))).shape
        (2, 8, 5, 5)
        >>> conv.weight.shape, conv.output_shape((3, 32, 32))
        ((8, 3, 3, 3), (8, 32, 32))
    """

    _dims = 2


class Conv1d(_ConvNd):
    """1-D convolution over sequences, NCL (the same maths as ``Conv2d`` with one spatial axis).
    """ + _COMMON_DOC + """
    Shape:
        - weight: ``(out_channels, in_channels // groups, k)``; bias: ``(out_channels,)``
        - x: ``(N, in_channels, L)`` -> y: ``(N, out_channels, L_out)``.

    Example:
        >>> import numpy as np
        >>> import nanonet as nn
        >>> conv = nn.Conv1d(2, 4, 5, stride=2, rng=0)
        >>> conv(np.ones((3, 2, 11))).shape
        (3, 4, 4)
    """

    _dims = 1


__all__ = ["Conv1d", "Conv2d"]
