"""Pooling: ``MaxPool1d``, ``MaxPool2d``, ``AvgPool2d``, ``AdaptiveAvgPool2d`` (NCL / NCHW, PyTorch's arguments).

The windows are a strided view of the padded input (``nanonet.layers._im2col``);
nothing loops over pixels. Max pooling keeps, per window, the position of its
maximum (the first one, in row-major window order, as PyTorch) and backward
sends each gradient there in one ``np.bincount``. Average pooling's backward
is col2im of ``grad_out / divisor``.

**Ties are kinks.** Where two inputs of a window tie for the maximum, the
max is not differentiable: any convex combination of the tied inputs'
gradients is a valid subgradient (PyTorch and nanonet pick the first).
``MaxPool*`` declare it: ``kinks = ("ties in a window",)`` and
``kink_pieces(x)`` returns which input of each window is the maximum, so the
gradient checker recognises a probe that changes the winner as crossing a
declared kink (see ``nanonet.gradcheck.engine.KinkWatch``).
"""

import math

import numpy as np

from .._checks import check_number
from ..module import Module
from ._conv_args import check_feature_shape, check_input, int_tuple, output_sizes, per_axis
from ._im2col import col2im_add, pad, pad_adjoint, window_view
from ._tiles import Tiles


def _window_args(owner, dims, kernel_size, stride, padding, dilation=1):
    kernel = int_tuple(owner, "kernel_size", kernel_size, dims)
    stride = kernel if stride is None else int_tuple(owner, "stride", stride, dims)
    padding = int_tuple(owner, "padding", padding, dims, low=0)
    dilation = int_tuple(owner, "dilation", dilation, dims)
    if any(2 * p > k for p, k in zip(padding, kernel)):
        raise ValueError(f"{owner} expected padding at most half the kernel size (as PyTorch), got "
                         f"padding={padding} for kernel_size={kernel}")
    return kernel, stride, padding, dilation


def _check_flag(owner, name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{owner} expected {name} to be True or False, got {value!r}")
    return bool(value)


class _Pool(Module):
    """Window geometry shared by max and average pooling; ``_dims`` spatial axes."""

    batch_independent = True
    _dims = 2

    def _setup(self, kernel_size, stride, padding, dilation, ceil_mode):
        name = type(self).__name__
        self.kernel_size, self.stride, self.padding, self.dilation = _window_args(
            name, self._dims, kernel_size, stride, padding, dilation)
        self.ceil_mode = _check_flag(name, "ceil_mode", ceil_mode)
        self._geometry = None

    def _sizes(self, spatial):
        pads = tuple((p, p) for p in self.padding)
        return output_sizes(self, spatial, pads, self.kernel_size, self.stride, self.dilation, self.ceil_mode)

    def _pads(self, spatial, sizes):
        """Padding per axis, with the extra right padding ``ceil_mode``'s last window needs."""
        return tuple((p, max(p, (o - 1) * s + d * (k - 1) + 1 - n - p)) for n, o, p, s, d, k in
                     zip(spatial, sizes, self.padding, self.stride, self.dilation, self.kernel_size))

    def output_shape(self, shape):
        shape = check_feature_shape(self, shape, None, self._dims)
        return shape[:1] + self._sizes(shape[1:])

    def _config_text(self):
        text = f"kernel_size={self.kernel_size}, stride={self.stride}"
        if any(self.padding):
            text += f", padding={self.padding}"
        if self.dilation != (1,) * self._dims:
            text += f", dilation={self.dilation}"
        if self.ceil_mode:
            text += ", ceil_mode=True"
        return text


class _MaxPoolNd(_Pool):
    kinks = ("ties in a window",)

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
        self._setup(kernel_size, stride, padding, dilation, ceil_mode)
        self._winner = None  # flat index, in the padded input, of each window's maximum
        self._shapes = None
        self._pad_buf = None
        self._tiles = None  # (Tiles, winner codes) of the last forward over non-overlapping windows
        self._tiler = None  # the Tiles of the last input shape and dtype, reused
        self._tiled = self.stride == self.kernel_size and not any(self.padding) and \
            self.dilation == (1,) * self._dims

    def _windows(self, x):
        """``(max (N, C, *out), argmax (N, C, *out) over the flattened window, pads, sizes)`` for ``x``.

        One pass per kernel offset over strided views: ``np.maximum`` and a
        strict ``>`` (so the first maximum wins, as PyTorch), never an
        argmax along a tiny axis.
        """
        check_input(self, x, None, self._dims, None)
        sizes = self._sizes(x.shape[2:])
        pads = self._pads(x.shape[2:], sizes)
        xp = pad(x, pads, value=-np.inf, buf=self._pad_buf)
        if xp is not x:
            self._pad_buf = xp
        win = window_view(xp, self.kernel_size, self.stride, self.dilation, sizes)
        offsets = list(np.ndindex(*self.kernel_size))
        best = win[(Ellipsis,) + offsets[0]].copy()
        arg = np.zeros(best.shape, dtype=np.int8 if len(offsets) < 128 else np.intp)
        better = np.empty(best.shape, dtype=bool)
        for k, offset in enumerate(offsets[1:], start=1):
            view = win[(Ellipsis,) + offset]
            np.greater(view, best, out=better)
            np.copyto(arg, k, where=better)
            np.maximum(best, view, out=best)
        return best, arg, pads, sizes

    def kink_pieces(self, x):
        """Which input of each window is its maximum: a change of winner crosses a kink (a tie)."""
        return self._windows(x)[1]

    def forward(self, x):
        """x: (N, C, *spatial) -> (N, C, *out), each window's maximum."""
        if self._tiled:  # non-overlapping windows: a few passes per axis (nanonet.layers._tiles)
            check_input(self, x, None, self._dims, None)
            sizes = self._sizes(x.shape[2:])
            if all(o * k <= n for o, k, n in zip(sizes, self.kernel_size, x.shape[2:])):  # no partial window
                tiler = self._tiler
                if tiler is None or tiler.shape != x.shape or tiler.dtype != x.dtype:
                    tiler = self._tiler = Tiles(x.shape, x.dtype, self.kernel_size, sizes)
                out, code = tiler.forward(x)
                self._tiles, self._winner = (tiler, code), None
                return out
        out, arg, pads, sizes = self._windows(x)
        padded = x.shape[:2] + tuple(n + lo + hi for n, (lo, hi) in zip(x.shape[2:], pads))
        base, offsets = self._index(x.shape, padded, sizes)
        self._winner = base + offsets[arg]
        self._shapes, self._tiles = (padded, pads), None
        return out

    def _index(self, shape, padded, sizes):
        """Flat index (in the padded input) of each window's origin, and of each kernel offset from it."""
        key = (shape, padded)
        if self._geometry is None or self._geometry[0] != key:
            strides = np.cumprod((1,) + padded[:0:-1])[::-1]  # element strides of the padded array
            base = (np.arange(shape[0] * shape[1]) * strides[1]).reshape(shape[:2] + (1,) * self._dims)
            for axis, (o, s) in enumerate(zip(sizes, self.stride)):
                along = np.arange(o) * s * strides[2 + axis]
                base = base + along.reshape((o,) + (1,) * (self._dims - 1 - axis))
            grids = np.meshgrid(*(np.arange(k) * d for k, d in zip(self.kernel_size, self.dilation)),
                                indexing="ij")
            offsets = sum(g.ravel() * st for g, st in zip(grids, strides[2:]))
            self._geometry = (key, base, offsets)
        return self._geometry[1], self._geometry[2]

    def backward(self, grad_out):
        """grad_out: (N, C, *out) -> dJ/dx: each gradient goes to its window's maximum (summed where shared)."""
        if self._tiles is not None:
            tiler, code = self._tiles
            return tiler.adjoint(grad_out, code)
        padded, pads = self._shapes
        dxp = np.bincount(self._winner.ravel(), weights=grad_out.ravel(), minlength=math.prod(padded))
        dx = pad_adjoint(dxp.reshape(padded).astype(grad_out.dtype, copy=False), pads)
        return np.ascontiguousarray(dx)

    def extra_repr(self):
        return self._config_text()


class MaxPool2d(_MaxPoolNd):
    """2-D max pooling, NCHW: the maximum of each ``kH x kW`` window.

    Args:
        kernel_size: an int or a pair.
        stride: default ``kernel_size`` (non-overlapping windows).
        padding: implicit -inf padding on both sides, at most half the kernel.
        dilation: spacing between the window's elements.
        ceil_mode: round the output size up (a last, partial window), as PyTorch.

    Ties are kinks (see the module docstring): the first maximum gets the gradient.

    Shape:
        - x: ``(N, C, H, W)`` -> y: ``(N, C, H_out, W_out)``,
          ``H_out = floor_or_ceil((H + 2 * padding - dilation * (kH - 1) - 1) / stride) + 1``.

    Example:
        >>> import numpy as np
        >>> import nanonet as nn
        >>> pool = nn.MaxPool2d(2)
        >>> pool(np.arange(16.0).reshape(1, 1, 4, 4))
        array([[[[ 5.,  7.],
                 [13., 15.]]]])
        >>> pool.backward(np.ones((1, 1, 2, 2)))[0, 0]
        array([[0., 0., 0., 0.],
               [0., 1., 0., 1.],
               [0., 0., 0., 0.],
               [0., 1., 0., 1.]])
    """

    _dims = 2


class MaxPool1d(_MaxPoolNd):
    """1-D max pooling, NCL: the maximum of each window of ``kernel_size`` steps (arguments as ``MaxPool2d``).

    Shape:
        - x: ``(N, C, L)`` -> y: ``(N, C, L_out)``.

    Example:
        >>> import numpy as np
        >>> import nanonet as nn
        >>> nn.MaxPool1d(3, stride=2)(np.array([[[1.0, 5.0, 2.0, 0.0, 3.0]]]))
        array([[[5., 3.]]])
    """

    _dims = 1


class AvgPool2d(_Pool):
    """2-D average pooling, NCHW.

    Args:
        kernel_size, stride, padding, ceil_mode: as ``MaxPool2d`` (zero padding).
        count_include_pad: divide by the whole window, padding included
            (default, as PyTorch), or by the input pixels it covers only.
        divisor_override: divide every window's sum by this int instead.

    Shape:
        - x: ``(N, C, H, W)`` -> y: ``(N, C, H_out, W_out)`` (as ``MaxPool2d``).

    Example:
        >>> import numpy as np
        >>> import nanonet as nn
        >>> nn.AvgPool2d(2)(np.arange(16.0).reshape(1, 1, 4, 4))
        array([[[[ 2.5,  4.5],
                 [10.5, 12.5]]]])
    """

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None):
        self._setup(kernel_size, stride, padding, 1, ceil_mode)
        self.count_include_pad = _check_flag("AvgPool2d", "count_include_pad", count_include_pad)
        self.divisor_override = None if divisor_override is None else check_number(
            "AvgPool2d", "divisor_override", divisor_override, low=1, integer=True)
        self._pad_buf = None
        self._shapes = None

    def _divisor(self, spatial, sizes):
        """(out_H, out_W) divisors, PyTorch's rule (windows clipped to the padded or the real input)."""
        if self.divisor_override is not None:
            return np.float64(self.divisor_override)
        if self._geometry is not None and self._geometry[0] == spatial:
            return self._geometry[1]
        per_axis = []
        for n, o, k, s, p in zip(spatial, sizes, self.kernel_size, self.stride, self.padding):
            start = np.arange(o) * s - p
            end = np.minimum(start + k, n + p)
            size = end - start if self.count_include_pad else np.minimum(end, n) - np.maximum(start, 0)
            per_axis.append(size.astype(np.float64))
        divisor = np.multiply.outer(*per_axis)
        self._geometry = (spatial, divisor)
        return divisor

    def forward(self, x):
        """x: (N, C, H, W) -> (N, C, H_out, W_out), each window's sum over its divisor."""
        check_input(self, x, None, 2, None)
        sizes = self._sizes(x.shape[2:])
        pads = self._pads(x.shape[2:], sizes)
        xp = pad(x, pads, buf=self._pad_buf)
        if xp is not x:
            self._pad_buf = xp
        sums = window_view(xp, self.kernel_size, self.stride, self.dilation, sizes).sum(axis=(-2, -1))
        self._shapes = (x.shape, xp.shape, pads)
        return sums / self._divisor(x.shape[2:], sizes).astype(x.dtype)

    def backward(self, grad_out):
        """grad_out: (N, C, H_out, W_out) -> dJ/dx: each window's share spread back over it."""
        shape, padded, pads = self._shapes
        share = grad_out / self._divisor(shape[2:], grad_out.shape[2:]).astype(grad_out.dtype)
        cols = np.broadcast_to(share[:, :, None, None], share.shape[:2] + self.kernel_size + share.shape[2:])
        dxp = col2im_add(cols, np.zeros(padded, dtype=grad_out.dtype), self.stride, self.dilation)
        return np.ascontiguousarray(pad_adjoint(dxp, pads))

    def extra_repr(self):
        text = self._config_text()
        if not self.count_include_pad:
            text += ", count_include_pad=False"
        if self.divisor_override is not None:
            text += f", divisor_override={self.divisor_override}"
        return text


def _adaptive_matrix(size, out):
    """(out, size): row i averages input ``[floor(i * size / out), ceil((i + 1) * size / out))`` (PyTorch's)."""
    matrix = np.zeros((out, size))
    for i in range(out):
        start, end = (i * size) // out, -(-((i + 1) * size) // out)
        matrix[i, start:end] = 1.0 / (end - start)
    return matrix


class AdaptiveAvgPool2d(Module):
    """Average pooling to a fixed output size, whatever the input size (PyTorch's windows).

    Output cell ``(i, j)`` averages rows ``[floor(i H / H_out), ceil((i + 1) H / H_out))``
    and the same for columns; windows may overlap when the sizes do not
    divide. Computed as ``A_h @ x @ A_w.T`` with two small averaging matrices.

    Args:
        output_size: an int, or a pair (``None`` in it keeps that input size).

    Shape:
        - x: ``(N, C, H, W)`` -> y: ``(N, C, H_out, W_out)``.

    Example:
        >>> import numpy as np
        >>> import nanonet as nn
        >>> gap = nn.AdaptiveAvgPool2d(1)
        >>> gap(np.arange(8.0).reshape(1, 2, 2, 2)).ravel()
        array([1.5, 5.5])
    """

    batch_independent = True

    def __init__(self, output_size):
        self.output_size = per_axis("AdaptiveAvgPool2d", "output_size", output_size, 2, lambda v: None if v is None
                                    else check_number("AdaptiveAvgPool2d", "output_size", v, low=1, integer=True),
                                    what="an int (or None)")
        if self.output_size == (None, None) and not isinstance(output_size, (tuple, list)):
            raise TypeError(f"AdaptiveAvgPool2d expected output_size to be an int or a pair, got {output_size!r}")
        self._matrices = None
        self._x_shape = None

    def _sizes(self, spatial):
        return tuple(n if o is None else o for n, o in zip(spatial, self.output_size))

    def output_shape(self, shape):
        shape = check_feature_shape(self, shape, None, 2)
        return shape[:1] + self._sizes(shape[1:])

    def _mats(self, spatial, dtype):
        key = (spatial, dtype)
        if self._matrices is None or self._matrices[0] != key:
            sizes = self._sizes(spatial)
            self._matrices = (key, tuple(_adaptive_matrix(n, o).astype(dtype) for n, o in zip(spatial, sizes)))
        return self._matrices[1]

    def forward(self, x):
        """x: (N, C, H, W) -> (N, C, H_out, W_out)."""
        check_input(self, x, None, 2, None)
        rows, cols = self._mats(x.shape[2:], x.dtype)
        self._x_shape = x.shape
        return np.matmul(np.matmul(rows, x), cols.T)

    def backward(self, grad_out):
        """grad_out: (N, C, H_out, W_out) -> dJ/dx (N, C, H, W)."""
        rows, cols = self._mats(self._x_shape[2:], grad_out.dtype)
        return np.matmul(np.matmul(rows.T, grad_out), cols)

    def extra_repr(self):
        return f"output_size={self.output_size if self.output_size[0] != self.output_size[1] else self.output_size[0]}"


__all__ = ["AdaptiveAvgPool2d", "AvgPool2d", "MaxPool1d", "MaxPool2d"]
