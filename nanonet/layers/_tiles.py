"""Max pooling over non-overlapping windows (tiles), as whole-array passes over the flat input.

When the stride is the kernel size (PyTorch's default), with no padding and
no dilation, every input pixel is in at most one window, and the maximum of
a ``kH x kW`` tile is the maximum over ``kW`` columns, then over ``kH`` rows.

Each stage runs over the *flat* array and its copies shifted by one step of
its axis (``f[:-s]`` against ``f[s:]``): contiguous operands, so numpy's SIMD
loops, where strided views of the windows (``x[..., 0::2]``, rows of a few
pixels) cost about ten times as much per element. The stage computes every
position, the window origins among them, and one ``np.take`` at the origins
gives the output. Large inputs go in chunks of whole ``(n, c)`` planes, so
the work arrays stay in cache. Per window it runs the same operations, on the
same operands and in the same order, as per-axis passes over strided views
would (a strict ``>`` for the winner, then ``np.maximum(best, next)``), so its
outputs (signed zeros and NaN included) and winners are bit for bit theirs.

Ties: each stage keeps the first maximum along its axis (a strict ``>``), the
last axis first, so the winner of a tile is its first maximum in row-major
order, as PyTorch's (and ``MaxPool2d``'s general path). The winner is kept
as one small code per tile (its row-major offset in the kernel), and the
adjoint writes each gradient at its tile's winner in one scatter.

>>> import numpy as np
>>> x = np.array([[[[1.0, 5.0], [5.0, 2.0]]]])  # a tie between (0, 1) and (1, 0)
>>> tiles = Tiles(x.shape, x.dtype, (2, 2), (1, 1))
>>> y, code = tiles.forward(x)
>>> y.ravel().tolist(), tiles.adjoint(np.ones_like(y), code)[0, 0].tolist()
([5.0], [[0.0, 1.0], [0.0, 0.0]])
"""

import math

import numpy as np

from .._flat import Transient


#: Elements per chunk of the forward: its work arrays stay in a core's cache (whole planes at least).
CHUNK = 131072


class _Scratch(dict, Transient):
    """Full-size work arrays of one forward; a copied layer makes its own."""

    __slots__ = ()


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


class Tiles:
    """Max pooling of ``(N, C, *spatial)`` inputs of one shape and dtype over whole tiles of ``kernel``.

    ``sizes[d] * kernel[d] <= spatial[d]`` (the pixels past the last whole
    tile are in no window). Keeps the geometry (tile origins, the flat offset
    of each kernel position) and its work arrays from call to call.
    """

    def __init__(self, shape, dtype, kernel, sizes):
        self.shape, self.dtype, self.kernel = tuple(shape), np.dtype(dtype), tuple(kernel)
        self.out_shape = self.shape[:2] + tuple(sizes)
        steps = np.cumprod((1,) + self.shape[:1:-1])[::-1]  # element strides of the spatial axes
        self.steps = tuple(int(s) for s in steps[1:])
        self.origins = tile_origins(self.shape, self.kernel, sizes).reshape(-1)
        count = math.prod(self.kernel)
        self.code_dtype = np.dtype(np.uint8 if count <= 256 else np.intp)
        self.offsets = np.array([sum(i * s for i, s in zip(index, self.steps)) for index in np.ndindex(*self.kernel)],
                                dtype=np.intp)  # code (row-major position in the kernel) -> flat offset
        self._scratch = None

    def _buffer(self, name, length, dtype):
        if self._scratch is None:
            self._scratch = _Scratch()
        buf = self._scratch.get(name)
        if buf is None or buf.size < length or buf.dtype != dtype:
            buf = self._scratch[name] = np.empty(length, dtype=dtype)
        return buf[:length]

    def forward(self, x):
        """``(max, code)``: each tile's maximum ``(N, C, *sizes)`` (a new array), and its winner's code."""
        out = np.empty(self.out_shape, dtype=x.dtype)
        code = np.zeros(self.out_shape, dtype=self.code_dtype)
        planes, plane = self.shape[0] * self.shape[1], math.prod(self.shape[2:])
        if out.size == 0:
            return out, code
        flat, out_flat, code_flat = x.reshape(-1), out.reshape(-1), code.reshape(-1)
        per_plane = out.size // planes
        step = max(1, CHUNK // plane)  # whole (n, c) planes per chunk: no window crosses one
        for first in range(0, planes, step):
            count = min(step, planes - first)
            origins = self.origins[:count * per_plane]  # the same for every chunk of ``count`` planes
            tiles = slice(first * per_plane, (first + count) * per_plane)
            self._chunk(flat[first * plane:(first + count) * plane], origins, out_flat[tiles], code_flat[tiles])
        return out, code

    def _chunk(self, cur, origins, out, code):
        """Max pool the whole planes ``cur`` (flat) into ``out``, their winners' codes into ``code``."""
        stages = []  # (step, kernel, arg) per axis with a kernel above 1, the last axis first
        for axis in range(len(self.kernel) - 1, -1, -1):
            k, s = self.kernel[axis], self.steps[axis]
            if k == 1:
                continue
            length = cur.size - (k - 1) * s
            best = self._buffer(f"best{axis}", length, cur.dtype)
            if k == 2:
                arg = np.greater(cur[s:], cur[:length], out=self._buffer(f"arg{axis}", length, bool))
                np.maximum(cur[:length], cur[s:], out=best)
            else:
                np.copyto(best, cur[:length])
                arg = self._buffer(f"arg{axis}", length, np.uint8)
                arg.fill(0)
                better = self._buffer("better", length, bool)
                for j in range(1, k):
                    view = cur[j * s:j * s + length]
                    np.greater(view, best, out=better)
                    np.copyto(arg, j, where=better)
                    np.maximum(best, view, out=best)
            stages.append((s, k, arg))
            cur = best
        np.take(cur, origins, out=out, mode="clip")  # valid indices; "clip" is unbuffered
        if stages:
            winners = self._codes(stages)
            if winners.dtype == bool:
                winners = winners.view(np.uint8)
            if winners.dtype == code.dtype:
                np.take(winners, origins, out=code, mode="clip")
            else:
                code[...] = np.take(winners, origins)

    def _codes(self, stages):
        """Per position, the winner of the tile starting there as its row-major position in the kernel."""
        code, inner = None, 1  # code[p]: winner of the sub-tile (the axes done so far) starting at p
        for s, k, arg in stages:
            length = arg.size
            if code is None:
                code = arg
            elif k == 2 and code.dtype == bool:  # pick code[p + arg * s]: bit operations, no branches
                sel = np.bitwise_xor(code[:length], code[s:s + length], out=self._buffer(f"sel{s}", length, bool))
                np.bitwise_and(sel, arg, out=sel)
                np.bitwise_xor(sel, code[:length], out=sel)
                code = sel
            else:
                wide = np.dtype(np.uint8) if self.code_dtype == np.uint8 else np.dtype(np.intp)
                sel = self._buffer(f"pick{s}", length, wide)
                np.copyto(sel, code[:length])
                for j in range(1, k):
                    np.copyto(sel, code[j * s:j * s + length], where=arg == j)
                code = sel
            if inner > 1:  # code = arg * inner + code, in the code's dtype
                combined = self._buffer(f"code{s}", length, self.code_dtype)
                np.multiply(arg.view(np.uint8) if arg.dtype == bool else arg, self.code_dtype.type(inner),
                            out=combined, casting="unsafe")
                np.add(combined, code.view(np.uint8) if code.dtype == bool else code, out=combined, casting="unsafe")
                code = combined
            inner *= k
        return code

    def adjoint(self, grad_out, code):
        """dJ/dx (a new array): each of ``grad_out``'s gradients at its tile's winner; 0 elsewhere."""
        dx = np.zeros(self.shape, dtype=grad_out.dtype)
        index = np.take(self.offsets, code.reshape(-1))
        np.add(index, self.origins, out=index)
        dx.reshape(-1)[index] = grad_out.reshape(-1)  # distinct winners: no sums
        return dx
