"""Max pooling over non-overlapping windows (tiles), one spatial axis at a time.

When the stride is the kernel size (PyTorch's default), with no padding and
no dilation, every input pixel is in at most one window, and the maximum of
a ``kH x kW`` tile is the maximum over ``kW`` columns, then over ``kH`` rows.
Each stage is a few ufunc passes over strided views with long inner loops
(no window view, no flat indices, no scatter), in the input's own dtype.

Ties: each stage keeps the first maximum along its axis (a strict ``>``), the
last axis first, so the winner of a tile is its first maximum in row-major
order, as PyTorch's (and ``MaxPool2d``'s general path).

>>> import numpy as np
>>> x = np.array([[[[1.0, 5.0], [5.0, 2.0]]]])  # a tie between (0, 1) and (1, 0)
>>> y, stages = tile_max(x, (2, 2), (1, 1))
>>> y.ravel().tolist(), tile_max_adjoint(np.ones_like(y), stages, x.shape)[0, 0].tolist()
([5.0], [[0.0, 1.0], [0.0, 0.0]])
"""

import numpy as np


def _along(ndim, axis, index):
    return (slice(None),) * axis + (index,) + (slice(None),) * (ndim - axis - 1)


def tile_max(x, kernel, sizes):
    """``(max, stages)``: each tile's maximum ``(N, C, *sizes)``, and what ``tile_max_adjoint`` needs.

    ``x`` is ``(N, C, *spatial)`` with ``sizes[d] * kernel[d] <= spatial[d]``
    (the pixels past the last whole tile are in no window). ``stages`` holds,
    per stage, the axis, its kernel size and the winning offset along it
    (bool for a kernel of 2, else int8).
    """
    dims = len(kernel)
    cur = x[(slice(None), slice(None)) + tuple(slice(0, o * k) for o, k in zip(sizes, kernel))]
    stages = []
    for axis in range(1 + dims, 1, -1):  # the last axis first: ties go to the first in row-major order
        k = kernel[axis - 2]
        views = [cur[_along(cur.ndim, axis, slice(j, None, k))] for j in range(k)]
        if k == 1:
            stages.append((axis, k, None))
            continue
        if k == 2:
            arg = np.greater(views[1], views[0])
            best = np.maximum(views[0], views[1])
        else:
            best = views[0].copy()
            arg = np.zeros(best.shape, dtype=np.int8 if k < 128 else np.intp)
            better = np.empty(best.shape, dtype=bool)
            for j in range(1, k):
                np.greater(views[j], best, out=better)
                np.copyto(arg, j, where=better)
                np.maximum(best, views[j], out=best)
        stages.append((axis, k, arg))
        cur = best
    if cur is not x and not cur.flags.owndata:  # every kernel was 1: the (cropped) input itself
        cur = cur.copy()
    return cur, stages


def _pick(arg, k, choices):
    """``choices[arg]`` elementwise (``arg`` bool for ``k == 2``, else int8)."""
    if k == 2:
        return np.where(arg, choices[1], choices[0])
    out = choices[0].copy()
    for j in range(1, k):
        np.copyto(out, choices[j], where=arg == j)
    return out


def tile_origins(shape, kernel, sizes):
    """The flat index, in a C-ordered array of ``shape``, of each tile's first pixel: ``(N, C, *sizes)``."""
    strides = np.cumprod((1,) + tuple(shape[:0:-1]))[::-1]  # element strides
    dims = len(kernel)
    base = np.zeros((1, 1) + (1,) * dims, dtype=np.intp)
    axes = ((shape[0], strides[0]), (shape[1], strides[1])) + tuple(
        (o, k * st) for o, k, st in zip(sizes, kernel, strides[2:]))
    for axis, (count, step) in enumerate(axes):
        along = np.arange(count, dtype=np.intp) * step
        base = base + along.reshape((1,) * axis + (count,) + (1,) * (1 + dims - axis))
    return base


def tile_max_adjoint(grad_out, stages, shape, origins=None):
    """dJ/dx ``shape``: each of ``grad_out``'s gradients goes to its tile's winner; 0 elsewhere.

    ``origins`` is ``tile_origins(shape, kernel, grad_out.shape[2:])`` (a
    caller may keep it). One scatter of the winners' flat indices.
    """
    args = {axis: (k, arg) for axis, k, arg in stages}
    kernel = tuple(args[axis][0] for axis in range(2, len(shape)))
    index = tile_origins(shape, kernel, grad_out.shape[2:]) if origins is None else origins
    if len(kernel) == 2:
        (kh, rows), (kw, cols) = args[2], args[3]
        if rows is not None:
            index = index + rows * shape[3]
            if cols is not None:
                cols = _pick(rows, kh, [cols[:, :, j::kh] for j in range(kh)])
        if cols is not None:
            index = index + cols
    elif args[2][1] is not None:
        index = index + args[2][1]
    dx = np.zeros(shape, dtype=grad_out.dtype)
    dx.reshape(-1)[index.reshape(-1)] = grad_out.reshape(-1)  # distinct winners: no sums
    return dx
