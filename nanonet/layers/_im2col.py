"""The strided machinery of convolution and pooling: padding, im2col, col2im.

Arrays are ``(N, C, *spatial)`` with one or two spatial axes. The columns
("cols") of an input are laid out ``(N, C, *kernel, *out)``: for sample
``n``, ``cols[n].reshape(C * prod(kernel), prod(out))`` is the matrix whose
column ``l`` holds the receptive field of output position ``l``, so a
convolution is one matrix product per sample and group, written straight
into the ``(N, C_out, *out)`` layout without a transpose.

- ``pad`` / ``pad_adjoint``: padding in every mode and its exact adjoint
  (the gradient of padding folds the border back onto the pixels it copied);
- ``im2col``: one copy out of a strided window view
  (``numpy.lib.stride_tricks.sliding_window_view``), into a reusable buffer;
- ``col2im_add``: the adjoint of ``im2col``, a strided accumulation with
  one vectorised add per kernel offset (never a loop over pixels).
"""

import itertools

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ._conv_args import numpy_pad_mode


def _spatial_axes(dims):
    return tuple(range(2, 2 + dims))


def pad(x, pads, mode="zeros", value=0.0, buf=None):
    """``x`` padded by ``pads`` (``((before, after), ...)`` per spatial axis).

    Constant padding (``"zeros"``, or ``value`` for max pooling's -inf)
    writes into ``buf`` when it is a padded array of the right shape and
    dtype made by an earlier call with the same ``pads`` and ``value`` (its
    border is never written, so it stays); otherwise into a new one. The
    other modes use ``np.pad``. No padding returns ``x`` itself.
    """
    if not any(lo or hi for lo, hi in pads):
        return x
    if mode != "zeros":
        return np.pad(x, ((0, 0), (0, 0)) + tuple(pads), mode=numpy_pad_mode(mode))
    shape = x.shape[:2] + tuple(n + lo + hi for n, (lo, hi) in zip(x.shape[2:], pads))
    if buf is None or buf.shape != shape or buf.dtype != x.dtype:
        buf = np.full(shape, value, dtype=x.dtype)
    inner = (slice(None), slice(None)) + tuple(slice(lo, lo + n) for n, (lo, _) in zip(x.shape[2:], pads))
    buf[inner] = x
    return buf


def _fold_matrix(size, lo, hi, mode):
    """(size + lo + hi, size) 0/1 matrix P with padded = P @ x along one axis (a non-constant mode)."""
    index = np.pad(np.arange(size), (lo, hi), mode=numpy_pad_mode(mode))
    fold = np.zeros((index.size, size))
    fold[np.arange(index.size), index] = 1.0
    return fold


def pad_adjoint(grad, pads, mode="zeros"):
    """The gradient of ``pad``: ``grad`` of the padded array -> gradient of the unpadded one.

    Zero padding crops (a view). The other modes add each border pixel back
    onto the pixel it copied, axis by axis, through a 0/1 fold matrix.
    """
    if not any(lo or hi for lo, hi in pads):
        return grad
    if mode == "zeros":
        inner = (slice(None), slice(None)) + tuple(slice(lo, n - hi) for n, (lo, hi) in
                                                   zip(grad.shape[2:], pads))
        return grad[inner]
    out = grad
    for axis, (lo, hi) in zip(_spatial_axes(len(pads)), pads):
        if lo or hi:
            size = out.shape[axis] - lo - hi
            fold = _fold_matrix(size, lo, hi, mode).astype(grad.dtype)
            out = np.moveaxis(np.moveaxis(out, axis, -1) @ fold, -1, axis)
    return np.ascontiguousarray(out)


def window_view(xp, kernel, stride, dilation, out_sizes):
    """The strided view ``(N, C, *out, *kernel)`` of the windows of ``xp`` (no copy)."""
    dims = len(kernel)
    span = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    win = sliding_window_view(xp, span, axis=_spatial_axes(dims))
    index = (slice(None), slice(None))
    index += tuple(slice(0, s * (o - 1) + 1, s) for s, o in zip(stride, out_sizes))
    index += tuple(slice(None, None, d) for d in dilation)
    return win[index]


def im2col(xp, kernel, stride, dilation, out_sizes, buf=None):
    """The columns ``(N, C, *kernel, *out)`` of the padded input ``xp``, copied into ``buf`` when it fits.

    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> cols = im2col(x, (2, 2), (2, 2), (1, 1), (2, 2))
    >>> cols.shape, cols[0, 0, :, :, 0, 0].tolist()
    ((1, 1, 2, 2, 2, 2), [[0.0, 1.0], [4.0, 5.0]])
    """
    dims = len(kernel)
    win = window_view(xp, kernel, stride, dilation, out_sizes)
    order = (0, 1) + tuple(range(2 + dims, 2 + 2 * dims)) + _spatial_axes(dims)
    view = win.transpose(order)
    if buf is None or buf.shape != view.shape or buf.dtype != view.dtype:
        buf = np.empty(view.shape, dtype=view.dtype)
    np.copyto(buf, view)
    return buf


def col2im_add(cols, out, stride, dilation):
    """``out += col2im(cols)``: the adjoint of ``im2col``; ``cols`` is ``(N, C, *kernel, *out_sizes)``.

    One strided, vectorised add per kernel offset.
    """
    dims = out.ndim - 2
    kernel = cols.shape[2:2 + dims]
    out_sizes = cols.shape[2 + dims:]
    for offset in itertools.product(*(range(k) for k in kernel)):
        target = (slice(None), slice(None)) + tuple(
            slice(o * d, o * d + s * (n - 1) + 1, s) for o, d, s, n in zip(offset, dilation, stride, out_sizes))
        out[target] += cols[(slice(None), slice(None)) + offset]
    return out
