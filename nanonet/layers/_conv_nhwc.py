"""Conv2d on small maps: im2col in channels-last order, one GEMM per product.

The general path (``nanonet.layers.conv``) lays the columns out ``(N, C, kH,
kW, H_out, W_out)``: its copies and adds run along ``W_out``. On the small
maps deep in a CNN (4x4 after two poolings) those inner runs are 4 numbers
long and numpy's per-run overhead dominates. Here the padded input is
channels-last ``(N, H, W, C)``, so the columns ``(N, H_out, W_out, kH, kW,
C)`` are copied one kernel row at a time in runs of ``kW * C`` numbers, and
each product is one 2-D GEMM over all samples:

- forward: ``cols (N*L, kH*kW*C) @ weight^T -> (N*L, O)``, transposed into
  ``(N, O, H_out, W_out)`` (bias added in the same pass);
- dJ/dW: ``grad (O, N*L) @ cols``;
- dJ/dx: the convolution's adjoint is itself a stride-1 convolution of the
  gradient, padded by ``k - 1 - pad``, with the flipped, transposed kernel:
  channels-last im2col of the gradient and one GEMM. No col2im adds.

Only for ``groups == 1``, stride 1, dilation 1, zero padding of at most
``k - 1`` on each side (see ``fits``). The buffers are kept per shape.
"""

import numpy as np
from numpy.lib.stride_tricks import as_strided


def fits(layer, x_shape, sizes):
    """Whether this path serves ``layer`` on input ``x_shape`` (output ``sizes``): small maps, many channels.

    Measured (float32 and float64, one BLAS thread): channels-last wins where
    the output is at most 8 wide and ``kW * C`` at least twice that width
    (digits' second conv, 16 channels on 4x4); it loses on 8x8 maps of 1
    channel and on 16x16 or wider maps, where the general path's runs are long.
    """
    if layer._dims != 2 or layer.groups != 1 or layer.padding_mode != "zeros" or layer.stride != (1, 1) \
            or layer.dilation != (1, 1):
        return False
    kh, kw = layer.kernel_size
    if any(lo > k - 1 or hi > k - 1 for (lo, hi), k in zip(layer._pads, (kh, kw))):
        return False
    return sizes[1] <= 8 and kw * x_shape[1] >= 2 * sizes[1]


def _buffer(bufs, name, shape, dtype, zeros=False):
    buf = bufs.get(name)
    if buf is None or buf.shape != shape or buf.dtype != dtype:
        buf = bufs[name] = np.zeros(shape, dtype) if zeros else np.empty(shape, dtype)
    return buf


def _columns(bufs, name, x, pads, kernel, sizes):
    """Channels-last columns ``(N * H_out * W_out, kH * kW * C)`` of ``x`` (NCHW) zero-padded by ``pads``."""
    n, c, h, w = x.shape
    (top, bottom), (left, right) = pads
    kh, kw = kernel
    ho, wo = sizes
    xp = _buffer(bufs, name + "_pad", (n, h + top + bottom, w + left + right, c), x.dtype, zeros=True)
    np.copyto(xp[:, top:top + h, left:left + w, :], x.transpose(0, 2, 3, 1))  # the border stays 0
    cols = _buffer(bufs, name, (n, ho, wo, kh, kw * c), x.dtype)
    run = (n, ho, wo, kw * c)
    strides = xp.strides[:3] + (xp.itemsize,)
    for i in range(kh):  # kernel row i: for each output pixel, kW * C consecutive numbers of padded row h + i
        np.copyto(cols[:, :, :, i], as_strided(xp[:, i:], run, strides))
    return cols.reshape(n * ho * wo, kh * kw * c)


def forward(bufs, x, weight, bias, pads, sizes, out):
    """``out`` (N, O, *sizes) = conv2d(x); keeps the columns in ``bufs`` for ``backward``."""
    o, kernel = weight.shape[0], weight.shape[2:]
    n, length = x.shape[0], sizes[0] * sizes[1]
    cols = _columns(bufs, "cols", x, pads, kernel, sizes)
    w_last = _buffer(bufs, "w_last", (o,) + kernel + (weight.shape[1],), weight.dtype)
    np.copyto(w_last, weight.transpose(0, 2, 3, 1))  # (O, kH, kW, C): the columns' order
    y = _buffer(bufs, "y", (n * length, o), weight.dtype)
    np.matmul(cols, w_last.reshape(o, -1).T, out=y)
    y_nco = y.reshape(n, length, o).transpose(0, 2, 1)
    if bias is None:
        np.copyto(out.reshape(n, o, length), y_nco)
    else:
        np.add(y_nco, bias[:, None], out=out.reshape(n, o, length))
    return out


def backward(bufs, grad_out, weight, weight_grad, bias_grad, pads, input_shape, input_grad, out=None):
    """Adds dJ/dW and dJ/db; returns dJ/dx (N, C, H, W) when ``input_grad`` (in ``out`` if it fits), else None."""
    n, o = grad_out.shape[:2]
    length = grad_out.shape[2] * grad_out.shape[3]
    kh, kw = weight.shape[2:]
    cols = bufs["cols"].reshape(n * length, kh * kw * weight.shape[1])  # explicit, not -1: N may be 0
    g_on = _buffer(bufs, "g_on", (o, n, length), grad_out.dtype)
    np.copyto(g_on, grad_out.reshape(n, o, length).transpose(1, 0, 2))
    g_on = g_on.reshape(o, n * length)
    if bias_grad is not None:
        bias_grad += g_on.sum(axis=1)
    dw = _buffer(bufs, "dw", (o, kh, kw, weight.shape[1]), weight.dtype)
    np.matmul(g_on, cols, out=dw.reshape(o, -1))
    np.add(weight_grad, dw.transpose(0, 3, 1, 2), out=weight_grad)
    if not input_grad:
        return None
    c, h, w = input_shape[1:]
    adjoint_pads = tuple((k - 1 - lo, k - 1 - hi) for (lo, hi), k in zip(pads, (kh, kw)))
    gcols = _columns(bufs, "gcols", grad_out, adjoint_pads, (kh, kw), (h, w))
    flipped = _buffer(bufs, "flipped", (kh, kw, o, c), weight.dtype)
    np.copyto(flipped, weight[:, :, ::-1, ::-1].transpose(2, 3, 0, 1))
    dx_last = _buffer(bufs, "dx_last", (n * h * w, c), weight.dtype)
    np.matmul(gcols, flipped.reshape(kh * kw * o, c), out=dx_last)
    dx = out if out is not None and out.shape == (n, c, h, w) and out.dtype == weight.dtype and out.flags.c_contiguous \
        else np.empty((n, c, h, w), dtype=weight.dtype)
    np.copyto(dx.reshape(n, c, h * w), dx_last.reshape(n, h * w, c).transpose(0, 2, 1))
    return dx
