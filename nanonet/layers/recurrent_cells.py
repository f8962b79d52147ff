"""One direction of one recurrent layer, forward and backward through time, by hand.

The layer (``nanonet.layers.recurrent``) computes the input projections of
every time step at once, ``xw[t] = x[t] @ W_ih.T + biases``, one large matrix
product. A kernel here runs the recurrence over time, one small product
``h @ W_hh.T`` per step, and its backward runs the steps in reverse
(backpropagation through time), returning the gradients of ``xw`` and of the
recurrent pre-activations so that the layer gets every weight gradient from
one large product as well.

Every array is time-major, ``(T, B, ...)``, in time order even for the
reverse direction: ``hs`` is ``(T + 1, B, H)`` with the initial state at
index 0 (forward) or T (reverse), so ``out`` and ``prev`` (the state before
each step) are contiguous slices of it. Each kernel keeps, per step, only
what its backward needs; the derivative factors that do not depend on the
incoming gradient are computed for all steps at once, outside the loop.

Gate orders are torch's: LSTM ``i, f, g, o``; GRU ``r, z, n``.

**Sigmoids through tanh.** ``sigma(a) = (tanh(a / 2) + 1) / 2``: numpy's
tanh is vectorized (SIMD) where ``scipy.special.expit`` is not, several times
faster in float32. The layer scales the sigmoid gates' rows of ``W_ih``,
``W_hh`` and the biases by 1/2 once per forward (``row_scale``), so a kernel
runs a single ``tanh`` over all the gates of a step, then maps the sigmoid
gates with ``* 1/2 + 1/2``. The backward uses the gate values only, in the
usual way (``sigma' = sigma (1 - sigma)``), with the unscaled ``W_hh``.
"""

import numpy as np


def _half_rows(gates, sigmoid_blocks, hidden, dtype):
    """The row scale of a cell: 1/2 on the sigmoid gates' rows, 1 elsewhere."""
    scale = np.ones(gates * hidden, dtype)
    for block in sigmoid_blocks:
        scale[block * hidden:(block + 1) * hidden] = 0.5
    return scale


def scratch(work, name, shape, dtype):
    """An uninitialised array kept in ``work`` (a dict the layer holds from one step to the next), or a
    new one when ``work`` is None or the shape or dtype changed.

    Reusing the arrays of the last step's cache (dead once a new forward starts) spares the allocator:
    a step of ``LSTM(128, 128)`` on (32, 64, 128) allocates about 20 MB, and glibc hands part of that
    back to the kernel and takes it again each step, ~750 page faults and 2-3 ms of a 22 ms float32 step.
    """
    arr = None if work is None else work.get(name)
    if arr is None or arr.shape != shape or arr.dtype != dtype:
        arr = np.empty(shape, dtype)
        if work is not None:
            work[name] = arr
    return arr


def flat_rows(layer_in, work):
    """A layer's input ``(T, B, F)`` as contiguous ``(T * B, F)`` rows (a scratch copy when it is not)."""
    steps, batch, width = layer_in.shape
    if layer_in.flags.c_contiguous:
        return layer_in.reshape(steps * batch, width)  # no -1: batch may be 0
    flat = scratch(work, "flat_in", (steps * batch, width), layer_in.dtype)
    np.copyto(flat.reshape(layer_in.shape), layer_in)
    return flat


def _states(xw, h0, hidden, reverse, work=None, name="hs"):
    steps, batch = xw.shape[0], xw.shape[1]
    hs = scratch(work, name, (steps + 1, batch, hidden), xw.dtype)
    hs[steps if reverse else 0] = h0
    return hs


def _order(steps, reverse):
    """(t, index of the state before t, index of the state after t) in processing order."""
    if reverse:
        return [(t, t + 1, t) for t in range(steps - 1, -1, -1)]
    return [(t, t, t + 1) for t in range(steps)]


def _views(hs, reverse):
    """(out, prev): the state after and before each step, both (T, B, H), in time order."""
    return (hs[:-1], hs[1:]) if reverse else (hs[1:], hs[:-1])


def _plain(w_hh):
    """``w_hh.T`` as a C-contiguous copy: ``h @ w_hh.T`` through the transposed view is a transposed
    GEMM, which OpenBLAS runs about 1.5x slower than the plain one at a step's sizes ((32, 128) @
    (128, 512) in float32: 72 us against 49 us)."""
    return np.ascontiguousarray(w_hh.T)


def last_state(hs, reverse):
    return hs[0] if reverse else hs[-1]


class RNNTanh:
    """``h' = tanh(xw + h @ W_hh.T)`` (``xw`` holds both biases)."""

    gates = 1

    @staticmethod
    def row_scale(hidden, dtype):
        return None

    @staticmethod
    def activate(a):
        np.tanh(a, out=a)

    @staticmethod
    def derivative(out, into):
        np.multiply(out, out, out=into)
        np.subtract(1, into, out=into)

    @classmethod
    def forward(cls, xw, w_hh, h0, reverse, work=None):
        hidden = w_hh.shape[1]
        hs = _states(xw, h0, hidden, reverse, work)
        wt = _plain(w_hh)
        for t, before, after in _order(xw.shape[0], reverse):
            a = hs[after]
            np.dot(hs[before], wt, out=a)
            a += xw[t]
            cls.activate(a)
        return hs, (hs, work)

    @classmethod
    def backward(cls, g_out, g_last, w_hh, cache, reverse):
        """-> (d_xw, d_hw, d_h0): gradients of xw, of the recurrent pre-activation, of h0."""
        hs, work = cache
        out, _ = _views(hs, reverse)
        deriv, d_pre = (scratch(work, name, out.shape, out.dtype) for name in ("deriv", "d_pre"))
        cls.derivative(out, deriv)
        dh_rec = np.zeros_like(hs[0]) if g_last is None else g_last.copy()
        dh = np.empty_like(dh_rec)
        for t, _, _ in _order(g_out.shape[0], not reverse):
            np.add(g_out[t], dh_rec, out=dh)
            np.multiply(dh, deriv[t], out=d_pre[t])
            np.dot(d_pre[t], w_hh, out=dh_rec)
        return d_pre, d_pre, dh_rec


class RNNReLU(RNNTanh):
    """``h' = relu(xw + h @ W_hh.T)``; the derivative at 0 is 0 (torch's choice)."""

    @staticmethod
    def activate(a):
        np.maximum(a, 0, out=a)

    @staticmethod
    def derivative(out, into):
        np.greater(out, 0, out=into, casting="unsafe")  # True -> 1.0, False -> 0.0


class LSTMCell:
    """``i, f, g, o = sigma, sigma, tanh, sigma (xw + h @ W_hh.T)``; ``c' = f c + i g``; ``h' = o tanh(c')``."""

    gates = 4

    @staticmethod
    def row_scale(hidden, dtype):
        return _half_rows(4, (0, 1, 3), hidden, dtype)

    @classmethod
    def forward(cls, xw, w_hh, h0, c0, reverse, work=None):
        """xw (T, B, 4H) and w_hh with the sigmoid rows at 1/2 (see the module docstring).

        ``xw`` is the layer's own array and is overwritten in place with the gate values (the cache's
        ``acts``): no second (T, B, 4H) array to allocate and fill. ``work`` (see ``scratch``) lends the
        arrays of the cache, and of the backward that follows.
        """
        steps, batch, width = xw.shape
        hidden = width // 4
        hs = _states(xw, h0, hidden, reverse, work, "hs")
        cs = _states(xw, c0, hidden, reverse, work, "cs")
        acts = xw  # the gates after their nonlinearity, (T, B, 4H)
        tanh_c = scratch(work, "tanh_c", (steps, batch, hidden), xw.dtype)
        wt = _plain(w_hh)
        rec = np.empty((batch, width), dtype=xw.dtype)
        tmp = np.empty((batch, hidden), dtype=xw.dtype)
        s2, s3 = 2 * hidden, 3 * hidden
        scale = cls.row_scale(hidden, xw.dtype)
        shift = np.where(scale < 1, scale, 0).astype(xw.dtype)  # 1/2 on the sigmoid rows, 0 on g's
        # as full (B, 4H) blocks: a same-shape multiply or add is ~2x faster than one broadcasting a row
        scale, shift = (np.tile(v, (batch, 1)) for v in (scale, shift))
        for t, before, after in _order(steps, reverse):
            a = acts[t]
            np.dot(hs[before], wt, out=rec)
            a += rec
            np.tanh(a, out=a)
            a *= scale
            a += shift
            c = cs[after]
            np.multiply(a[:, hidden:s2], cs[before], out=c)
            np.multiply(a[:, :hidden], a[:, s2:s3], out=tmp)
            c += tmp
            np.tanh(c, out=tanh_c[t])
            np.multiply(a[:, s3:], tanh_c[t], out=hs[after])
        return hs, cs, (hs, cs, acts, tanh_c, work)

    @staticmethod
    def backward(g_out, g_last_h, g_last_c, w_hh, cache, reverse):
        """-> (d_xw, d_hw, d_h0, d_c0); ``d_hw`` is ``d_xw`` (both biases enter the same sum)."""
        hs, cs, acts, tanh_c, work = cache
        steps, batch, width = acts.shape
        hidden = width // 4
        _, c_prev = _views(cs, reverse)
        dtype = acts.dtype
        # d_pre starts as what multiplies dc (i, f, g) and dh (o) at each step, for all steps at once and in
        # place: s (1 - s) over the whole (T, B, 4H) block in two contiguous passes (g's part redone below),
        # then times each gate's other factor; the loop scales it by dc and dh
        d_pre = scratch(work, "d_pre", (steps, batch, 4, hidden), dtype)
        np.subtract(1, acts, out=d_pre.reshape(acts.shape))
        d_pre.reshape(acts.shape)[...] *= acts
        gates = acts.reshape(steps, batch, 4, hidden)
        i, f, g, o = (gates[:, :, k] for k in range(4))
        on_i, on_f, on_g, on_o = (d_pre[:, :, k] for k in range(4))
        np.multiply(g, g, out=on_g)
        np.subtract(1, on_g, out=on_g)
        on_g *= i
        on_i *= g
        on_f *= c_prev
        on_o *= tanh_c
        dc_from_dh = scratch(work, "dc_from_dh", tanh_c.shape, dtype)
        np.multiply(tanh_c, tanh_c, out=dc_from_dh)
        np.subtract(1, dc_from_dh, out=dc_from_dh)
        dc_from_dh *= o
        dh_rec = np.zeros((batch, hidden), dtype) if g_last_h is None else g_last_h.copy()
        dc = np.zeros((batch, hidden), dtype) if g_last_c is None else g_last_c.copy()
        dh = np.empty_like(dh_rec)
        tmp = np.empty_like(dh_rec)
        dc_gates = dc[:, None, :]  # a view: dc for each of i, f, g
        for t, _, _ in _order(steps, not reverse):
            np.add(g_out[t], dh_rec, out=dh)
            np.multiply(dh, dc_from_dh[t], out=tmp)
            dc += tmp
            step = d_pre[t]  # (B, 4, H)
            step[:, :3] *= dc_gates
            step[:, 3] *= dh
            dc *= f[t]
            np.dot(step.reshape(batch, width), w_hh, out=dh_rec)
        d_pre = d_pre.reshape(steps, batch, width)
        return d_pre, d_pre, dh_rec, dc


class GRUCell:
    """``r, z = sigma(xw_rz + h W_hrz.T)``, ``n = tanh(xw_n + r (h W_hn.T + b_hn))``, ``h' = (1 - z) n + z h``.

    ``xw`` holds ``b_ih`` and the ``r``, ``z`` parts of ``b_hh``; ``b_hn`` stays
    inside the product with ``r``, as in torch.
    """

    gates = 3

    @staticmethod
    def row_scale(hidden, dtype):
        return _half_rows(3, (0, 1), hidden, dtype)

    @staticmethod
    def forward(xw, w_hh, b_hn, h0, reverse, work=None):
        """xw (T, B, 3H) and w_hh with the r, z rows at 1/2 (see the module docstring); b_hn as it is."""
        steps, batch, width = xw.shape
        hidden = width // 3
        s2 = 2 * hidden
        hs = _states(xw, h0, hidden, reverse, work)
        rz = scratch(work, "rz", (steps, batch, s2), xw.dtype)
        n = scratch(work, "n", (steps, batch, hidden), xw.dtype)
        hwn = scratch(work, "hwn", (steps, batch, hidden), xw.dtype)  # h W_hn.T + b_hn
        hw = np.empty((batch, width), dtype=xw.dtype)
        wt = _plain(w_hh)
        for t, before, after in _order(steps, reverse):
            h = hs[before]
            np.dot(h, wt, out=hw)
            np.add(hw[:, :s2], xw[t, :, :s2], out=rz[t])
            np.tanh(rz[t], out=rz[t])
            rz[t] *= 0.5
            rz[t] += 0.5
            np.add(hw[:, s2:], b_hn, out=hwn[t])
            np.multiply(rz[t, :, :hidden], hwn[t], out=n[t])
            n[t] += xw[t, :, s2:]
            np.tanh(n[t], out=n[t])
            new = hs[after]
            np.subtract(h, n[t], out=new)
            new *= rz[t, :, hidden:]
            new += n[t]
        return hs, (hs, rz, n, hwn, work)

    @staticmethod
    def backward(g_out, g_last, w_hh, cache, reverse):
        """-> (d_xw, d_hw, d_h0); ``d_hw`` differs from ``d_xw`` in the ``n`` block (``r`` multiplies it)."""
        hs, rz, n, hwn, work = cache
        steps, batch, s2 = rz.shape
        hidden = s2 // 2
        width = 3 * hidden
        _, prev = _views(hs, reverse)
        r, z = rz[:, :, :hidden], rz[:, :, hidden:]
        # (1 - z)(1 - n^2), (prev - n) z (1 - z) and hwn r (1 - r), in place in scratch arrays (no temporaries)
        dn_from_dh, dz_from_dh, dr_from_dn, tmp = (scratch(work, name, n.shape, n.dtype) for name in
                                                   ("dn_from_dh", "dz_from_dh", "dr_from_dn", "tmp"))
        np.multiply(n, n, out=dn_from_dh)
        np.subtract(1, dn_from_dh, out=dn_from_dh)
        np.subtract(1, z, out=tmp)
        dn_from_dh *= tmp
        np.subtract(prev, n, out=dz_from_dh)
        dz_from_dh *= z
        dz_from_dh *= tmp
        np.multiply(hwn, r, out=dr_from_dn)
        np.subtract(1, r, out=tmp)
        dr_from_dn *= tmp
        d_xw = scratch(work, "d_xw", (steps, batch, width), rz.dtype)
        d_hw = scratch(work, "d_hw", (steps, batch, width), rz.dtype)
        dh_rec = np.zeros((batch, hidden), rz.dtype) if g_last is None else g_last.copy()
        dh = np.empty_like(dh_rec)
        for t, _, _ in _order(steps, not reverse):
            np.add(g_out[t], dh_rec, out=dh)
            dn = d_xw[t, :, s2:]
            np.multiply(dh, dn_from_dh[t], out=dn)
            np.multiply(dh, dz_from_dh[t], out=d_xw[t, :, hidden:s2])
            np.multiply(dn, dr_from_dn[t], out=d_xw[t, :, :hidden])
            d_hw[t, :, :s2] = d_xw[t, :, :s2]
            np.multiply(dn, r[t], out=d_hw[t, :, s2:])
            np.dot(d_hw[t], w_hh, out=dh_rec)
            dh *= z[t]
            dh_rec += dh
        return d_xw, d_hw, dh_rec
