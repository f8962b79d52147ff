"""``ConvTranspose2d``: the adjoint of a convolution ("deconvolution"), PyTorch's arguments and layout.

Its forward is exactly a ``Conv2d``'s input gradient and its input gradient
a ``Conv2d``'s forward, so it is built from the same two pieces
(``nanonet.layers._im2col``): forward is one batched product
``weight.T @ x`` and col2im (a strided add per kernel offset); backward is
im2col of ``grad_out`` and two batched products.
"""

import math

import numpy as np

from .._checks import who
from ..module import Module, Parameter
from ._conv_args import check_dtype, check_feature_shape, check_input, int_tuple
from ._im2col import col2im_add, im2col, pad
from .conv import check_bias_flag, conv_channels, he_normal


class ConvTranspose2d(Module):
    """Transposed 2-D convolution, NCHW: the gradient of ``Conv2d`` with respect to its input, as a layer.

    Each input pixel scatters ``weight[c_in]`` (times its value) onto a
    ``kH x kW`` patch of the output, patches ``stride`` apart; ``padding``
    then crops the result on every side and ``output_padding`` adds rows and
    columns after (to pick among the sizes a stride-``s`` convolution maps
    to the same size).

    Args:
        in_channels, out_channels, kernel_size, stride, dilation, groups, bias:
            as ``Conv2d``.
        padding: an int or a pair: ``dilation * (k - 1) - padding`` zeros of
            implicit padding, i.e. the output is cropped by ``padding`` on both sides.
        output_padding: an int or a pair, extra size on the bottom/right; must
            be smaller than the stride or the dilation (as PyTorch).
        rng, dtype: as ``Conv2d``.

    Initialization: He normal, ``Normal(0, 2 / fan_in)``, with ``fan_in =
    in_channels / groups * kH * kW / (sH * sW)`` (at least 1): the number of
    terms an output pixel sums on average.

    Shape:
        - weight: ``(in_channels, out_channels // groups, kH, kW)`` (PyTorch's layout)
        - bias: ``(out_channels,)``
        - x: ``(N, in_channels, H, W)`` -> y: ``(N, out_channels, H_out, W_out)`` with
          ``H_out = (H - 1) * stride - 2 * padding + dilation * (kH - 1) + output_padding + 1``.

    Example:
        >>> import numpy as np
        >>> import nanonet as nn
        >>> up = nn.ConvTranspose2d(8, 4, 2, stride=2, rng=0)
        >>> up(np.ones((1, 8, 5, 5))).shape
        (1, 4, 10, 10)
        >>> up.weight.shape
        (8, 4, 2, 2)
    """

    batch_independent = True

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, groups=1,
                 bias=True, dilation=1, *, rng=None, dtype=np.float64):
        name = "ConvTranspose2d"
        self.in_channels, self.out_channels, self.groups = conv_channels(name, in_channels, out_channels, groups)
        self.kernel_size = int_tuple(name, "kernel_size", kernel_size, 2)
        self.stride = int_tuple(name, "stride", stride, 2)
        self.padding = int_tuple(name, "padding", padding, 2, low=0)
        self.output_padding = int_tuple(name, "output_padding", output_padding, 2, low=0)
        self.dilation = int_tuple(name, "dilation", dilation, 2)
        for op, s, d in zip(self.output_padding, self.stride, self.dilation):
            if op >= max(s, d):
                raise ValueError(f"{name} expected output_padding smaller than the stride or the dilation, got "
                                 f"output_padding={self.output_padding}, stride={self.stride}, "
                                 f"dilation={self.dilation}")
        dtype = check_dtype(name, dtype)
        fan_in = max(1.0, self.in_channels // self.groups * math.prod(self.kernel_size) / math.prod(self.stride))
        shape = (self.in_channels, self.out_channels // self.groups) + self.kernel_size
        self.weight = Parameter(he_normal(rng, shape, fan_in, dtype))
        self.bias = Parameter(np.zeros(self.out_channels, dtype=dtype)) if check_bias_flag(name, bias) else None
        self._x = None
        self._grad_buf = None  # grad_out embedded in the uncropped output, reused

    def _sizes(self, spatial):
        """``(full, out)`` per axis: the uncropped extent the patches cover, and the output size."""
        full = tuple((n - 1) * s + d * (k - 1) + 1 for n, s, d, k in
                     zip(spatial, self.stride, self.dilation, self.kernel_size))
        out = tuple(f - 2 * p + op for f, p, op in zip(full, self.padding, self.output_padding))
        if min(out) < 1:
            raise ValueError(f"{who(self)}: an input of spatial size {tuple(spatial)} gives an empty output "
                             f"{out} (padding {self.padding} crops more than the patches cover)")
        return full, out

    def output_shape(self, shape):
        shape = check_feature_shape(self, shape, self.in_channels, 2)
        return (self.out_channels,) + self._sizes(shape[1:])[1]

    def forward(self, x):
        """x: (N, C_in, H, W) -> (N, C_out, H_out, W_out), a fresh array."""
        w = self.weight.value
        check_input(self, x, self.in_channels, 2, w.dtype)
        full, sizes = self._sizes(x.shape[2:])
        n, groups = x.shape[0], self.groups
        og = self.out_channels // groups
        x_m = x.reshape(n, groups, self.in_channels // groups, math.prod(x.shape[2:]))  # not -1: N may be 0
        cols = np.matmul(w.reshape(groups, self.in_channels // groups, -1).transpose(0, 2, 1), x_m)
        extent = tuple(max(f, p + s) for f, p, s in zip(full, self.padding, sizes))
        canvas = np.zeros((n, self.out_channels) + extent, dtype=w.dtype)
        col2im_add(cols.reshape((n, groups * og) + self.kernel_size + x.shape[2:]), canvas, self.stride,
                   self.dilation)
        (top, left), (h, w_out) = self.padding, sizes
        out = canvas[:, :, top:top + h, left:left + w_out].copy()
        if self.bias is not None:
            out += self.bias.value[:, None, None]
        self._x = x
        return out

    def backward(self, grad_out):
        """grad_out: (N, C_out, H_out, W_out) -> dJ/dx (N, C_in, H, W); adds into weight.grad and bias.grad."""
        x, w = self._x, self.weight.value
        full, sizes = self._sizes(x.shape[2:])
        pads = tuple((p, max(f, p + s) - p - s) for f, p, s in zip(full, self.padding, sizes))
        gp = pad(grad_out, pads, buf=self._grad_buf)
        if gp is not grad_out:
            self._grad_buf = gp
        cols = im2col(gp, self.kernel_size, self.stride, self.dilation, x.shape[2:])
        n, groups, length = x.shape[0], self.groups, math.prod(x.shape[2:])
        og = self.out_channels // groups
        cols_m = cols.reshape(n, groups, og * math.prod(self.kernel_size), length)
        x_m = x.reshape(n, groups, self.in_channels // groups, length)
        wg = self.weight.grad
        np.add(wg, np.matmul(x_m, cols_m.transpose(0, 1, 3, 2)).sum(axis=0).reshape(wg.shape), out=wg)
        if self.bias is not None:
            self.bias.grad += grad_out.sum(axis=(0, 2, 3))
        dx = np.matmul(w.reshape(groups, self.in_channels // groups, -1), cols_m)
        return dx.reshape(x.shape)

    def extra_repr(self):
        text = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        for name, default in (("padding", (0, 0)), ("output_padding", (0, 0)), ("dilation", (1, 1))):
            if getattr(self, name) != default:
                text += f", {name}={getattr(self, name)}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.bias is None:
            text += ", bias=False"
        if self.weight.value.dtype != np.float64:
            text += f", dtype={self.weight.value.dtype}"
        return text


__all__ = ["ConvTranspose2d"]
