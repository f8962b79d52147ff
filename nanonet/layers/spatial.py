"""Layers that move pixels without weights: ``ZeroPad2d`` and ``Upsample`` (NCHW, PyTorch's arguments)."""

import math

import numpy as np

from .._checks import check_number, who
from ..module import Module
from ._conv_args import check_feature_shape, check_input, per_axis


class ZeroPad2d(Module):
    """Pads the two spatial axes with zeros; a negative padding crops (as ``torch.nn.ZeroPad2d``).

    Args:
        padding: an int (all four sides) or ``(left, right, top, bottom)``.

    Shape:
        - x: ``(N, C, H, W)`` -> y: ``(N, C, H + top + bottom, W + left + right)``.

    Example:
        >>> import numpy as np
        >>> import nanonet as nn
        >>> nn.ZeroPad2d((1, 0, 0, 1))(np.ones((1, 1, 1, 2)))
        array([[[[0., 1., 1.],
                 [0., 0., 0.]]]])
    """

    batch_independent = True

    def __init__(self, padding):
        self.padding = per_axis("ZeroPad2d", "padding", padding, 4,
                                lambda p: check_number("ZeroPad2d", "padding", p, integer=True))
        self._x_shape = None

    def _pairs(self):
        left, right, top, bottom = self.padding
        return (top, bottom), (left, right)

    def _sizes(self, spatial):
        sizes = tuple(n + lo + hi for n, (lo, hi) in zip(spatial, self._pairs()))
        if min(sizes) < 1:
            raise ValueError(f"{who(self)}: an input of spatial size {tuple(spatial)} would give the empty "
                             f"output {sizes}")
        return sizes

    def output_shape(self, shape):
        shape = check_feature_shape(self, shape, None, 2)
        return shape[:1] + self._sizes(shape[1:])

    def _regions(self, spatial):
        """(where the kept input lies in the output, which part of the input is kept)."""
        inside, source = [slice(None)] * 2, [slice(None)] * 2
        for n, (lo, hi) in zip(spatial, self._pairs()):
            inside.append(slice(max(lo, 0), max(lo, 0) + n + min(lo, 0) + min(hi, 0)))
            source.append(slice(max(-lo, 0), n - max(-hi, 0)))
        return tuple(inside), tuple(source)

    def forward(self, x):
        """x: (N, C, H, W) -> (N, C, H_out, W_out), a fresh array."""
        check_input(self, x, None, 2, None)
        out = np.zeros(x.shape[:2] + self._sizes(x.shape[2:]), dtype=x.dtype)
        inside, source = self._regions(x.shape[2:])
        out[inside] = x[source]
        self._x_shape = x.shape
        return out

    def backward(self, grad_out):
        """grad_out: (N, C, H_out, W_out) -> dJ/dx: the part of it over the input (0 where cropped)."""
        dx = np.zeros(self._x_shape, dtype=grad_out.dtype)
        inside, source = self._regions(self._x_shape[2:])
        dx[source] = grad_out[inside]
        return dx

    def extra_repr(self):
        return f"padding={self.padding}"


def _nearest_index(size, out, scale_factor):
    """PyTorch's nearest source index for each output position (its float32 arithmetic, exactly)."""
    if out == size:
        return np.arange(out)
    if out == 2 * size:
        return np.arange(out) // 2
    if scale_factor is not None:
        scale = np.float32(1.0 / scale_factor)
    else:
        scale = np.float32(size) / np.float32(out)
    index = np.floor(np.arange(out, dtype=np.float32) * scale).astype(np.int64)
    return np.minimum(index, size - 1)


class Upsample(Module):
    """Nearest-neighbour upsampling of the two spatial axes (``torch.nn.Upsample(mode="nearest")``).

    Output pixel ``(i, j)`` copies input pixel ``(floor(i / s_h), floor(j / s_w))``
    (PyTorch's index rule, float32 arithmetic included); backward adds each
    output gradient back onto the pixel it copied.

    Args:
        size: the output size, an int or ``(H_out, W_out)``; or
        scale_factor: a positive number or a pair; ``H_out = floor(H * s_h)``.
        mode: ``"nearest"`` (the only mode).

    Shape:
        - x: ``(N, C, H, W)`` -> y: ``(N, C, H_out, W_out)``.

    Example:
        >>> import numpy as np
        >>> import nanonet as nn
        >>> nn.Upsample(scale_factor=2)(np.array([[[[1.0, 2.0]]]]))
        array([[[[1., 1., 2., 2.],
                 [1., 1., 2., 2.]]]])
    """

    batch_independent = True

    def __init__(self, size=None, scale_factor=None, mode="nearest"):
        if (size is None) == (scale_factor is None):
            raise ValueError("Upsample expected exactly one of size and scale_factor, "
                             f"got size={size!r} and scale_factor={scale_factor!r}")
        if mode != "nearest":
            raise ValueError(f"Upsample supports mode='nearest' only, got {mode!r}")
        self.mode = mode
        self.size = self.scale_factor = None
        if size is not None:
            self.size = per_axis("Upsample", "size", size, 2,
                                 lambda v: check_number("Upsample", "size", v, low=1, integer=True))
        else:
            self.scale_factor = per_axis("Upsample", "scale_factor", scale_factor, 2, lambda v: check_number(
                "Upsample", "scale_factor", v, low=0, low_open=True), what="a number")
        self._index = None
        self._x_shape = None

    def _sizes(self, spatial):
        if self.size is not None:
            return self.size
        sizes = tuple(int(math.floor(n * s)) for n, s in zip(spatial, self.scale_factor))
        if min(sizes) < 1:
            raise ValueError(f"{who(self)}: an input of spatial size {tuple(spatial)} gives the empty output {sizes}")
        return sizes

    def output_shape(self, shape):
        shape = check_feature_shape(self, shape, None, 2)
        return shape[:1] + self._sizes(shape[1:])

    def _indices(self, spatial):
        if self._index is None or self._index[0] != spatial:
            factors = self.scale_factor or (None, None)
            self._index = (spatial, tuple(_nearest_index(n, o, f) for n, o, f in
                                          zip(spatial, self._sizes(spatial), factors)))
        return self._index[1]

    def forward(self, x):
        """x: (N, C, H, W) -> (N, C, H_out, W_out)."""
        check_input(self, x, None, 2, None)
        rows, cols = self._indices(x.shape[2:])
        self._x_shape = x.shape
        return x[:, :, rows[:, None], cols[None, :]]

    def backward(self, grad_out):
        """grad_out: (N, C, H_out, W_out) -> dJ/dx (N, C, H, W), each output's gradient summed onto its source."""
        (h, w), (rows, cols) = self._x_shape[2:], self._indices(self._x_shape[2:])
        pick_rows = np.zeros((h, rows.size), dtype=grad_out.dtype)
        pick_rows[rows, np.arange(rows.size)] = 1
        pick_cols = np.zeros((cols.size, w), dtype=grad_out.dtype)
        pick_cols[np.arange(cols.size), cols] = 1
        return np.matmul(np.matmul(pick_rows, grad_out), pick_cols)

    def extra_repr(self):
        if self.size is not None:
            return f"size={self.size}, mode={self.mode!r}"
        factor = self.scale_factor[0] if self.scale_factor[0] == self.scale_factor[1] else self.scale_factor
        return f"scale_factor={factor:g}, mode={self.mode!r}" if not isinstance(factor, tuple) else \
            f"scale_factor={factor}, mode={self.mode!r}"


__all__ = ["Upsample", "ZeroPad2d"]
