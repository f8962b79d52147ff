"""``MultiheadAttention``, as torch's: the same arguments, masks and parameter names."""

import math

import numpy as np

from .._checks import check_number, shape_text, who
from .._rng import as_generator
from ..module import Module, Parameter
from .attention import _Dropping, attention_backward, attention_forward, causal_bias, combine, mask_bias
from .projection import Projection


def _xavier(gen, shape, dtype):
    bound = math.sqrt(6.0 / (shape[0] + shape[1]))
    return gen.uniform(-bound, bound, shape).astype(dtype)


class MultiheadAttention(_Dropping, Module):
    """Multi-head attention, as ``torch.nn.MultiheadAttention``.

    ``out = concat(head_1, ..., head_h) @ out_proj``, each head attending
    with its slice of the projected query, key and value (see
    ``nanonet.layers.attention`` for the maths and the fully masked rows).

    Calls (``backward`` returns one gradient per array given):

    - ``mha(x)``: self-attention (query = key = value = x) -> dJ/dx;
    - ``mha(q, kv)``: cross-attention, key = value = kv -> (dJ/dq, dJ/dkv);
    - ``mha(q, k, v)`` -> (dJ/dq, dJ/dk, dJ/dv).

    Keyword options of the call (as torch's, same conventions):
    ``key_padding_mask`` ``(N, S)``, boolean (**True = ignore that key**) or
    additive float; ``attn_mask`` ``(L, S)`` or ``(N * num_heads, L, S)``,
    boolean (**True = not allowed to attend**) or additive float;
    ``is_causal=True`` masks key j > query i. torch needs ``attn_mask``
    with ``is_causal`` (a hint that the mask is causal); nanonet builds the
    causal mask itself, and applies both when both are given. Only the
    output is returned (torch's ``need_weights=False``); the last forward's
    weights are ``mha.attn_weights``, ``(N, num_heads, L, S)``.

    Parameters (torch's names and layouts, so a torch ``state_dict`` loads as
    it is): ``in_proj_weight`` ``(3E, E)`` (query, key, value rows) when
    ``kdim == vdim == embed_dim``, else ``q_proj_weight`` ``(E, E)``,
    ``k_proj_weight`` ``(E, kdim)``, ``v_proj_weight`` ``(E, vdim)``;
    ``in_proj_bias`` ``(3E,)``; ``out_proj.weight`` ``(E, E)`` and
    ``out_proj.bias`` (a :class:`Projection`, torch's ``(out, in)`` layout).

    The key's part of ``in_proj_bias`` (``[E:2E]``) gets a gradient of exactly
    0: it adds ``q . b_k`` to every score of a query's row, which the softmax
    ignores, whatever the masks. Computing it (as torch does) gives rounding
    noise, which Adam, dividing by its running RMS, turns into steps of up to
    ``lr * noise / eps`` that depend on the order of the sums.

    Args:
        embed_dim: E, the model width; divisible by num_heads.
        num_heads: parallel heads, each of width E / num_heads.
        dropout: drop probability on the attention weights in training.
        bias: if False, no in_proj_bias and out_proj.bias.
        kdim, vdim: the key's and value's widths (default E).
        batch_first: arrays ``(N, L, E)`` instead of ``(L, N, E)``.
        rng: int seed or ``numpy.random.Generator`` (weights: torch's xavier
            uniform; biases 0; dropout masks).
        dtype: ``np.float64`` (default) or ``np.float32``.

    Shape:
        - query ``(L, N, E)``, key ``(S, N, kdim)``, value ``(S, N, vdim)``
          (batch first: ``(N, L, E)`` ...) -> output like query.

    Example:
        >>> import numpy as np
        >>> import nanonet as nn
        >>> mha = nn.MultiheadAttention(8, 2, batch_first=True, rng=0)
        >>> x = np.random.default_rng(0).normal(size=(3, 5, 8))
        >>> y = mha(x, key_padding_mask=np.array([[False] * 5, [False] * 4 + [True], [False] * 5]))
        >>> y.shape, mha.backward(np.ones_like(y)).shape
        ((3, 5, 8), (3, 5, 8))
        >>> sorted(mha.state_dict())
        ['in_proj_bias', 'in_proj_weight', 'out_proj.bias', 'out_proj.weight']
    """

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, kdim=None, vdim=None, batch_first=False,
                 *, rng=None, dtype=np.float64):
        name = "MultiheadAttention"
        self.embed_dim = check_number(name, "embed_dim", embed_dim, low=1, integer=True)
        self.num_heads = check_number(name, "num_heads", num_heads, low=1, integer=True)
        if self.embed_dim % self.num_heads:
            raise ValueError(f"{name} expected embed_dim divisible by num_heads, got embed_dim={self.embed_dim} "
                             f"and num_heads={self.num_heads}")
        self.dropout = check_number(name, "dropout", dropout, low=0, high=1, high_open=True)
        self.kdim = self.embed_dim if kdim is None else check_number(name, "kdim", kdim, low=1, integer=True)
        self.vdim = self.embed_dim if vdim is None else check_number(name, "vdim", vdim, low=1, integer=True)
        if not isinstance(batch_first, (bool, np.bool_)) or not isinstance(bias, (bool, np.bool_)):
            raise TypeError(f"{name} expected bias and batch_first to be bools, got {bias!r} and {batch_first!r}")
        self.batch_first = bool(batch_first)
        dtype = np.dtype(dtype)
        if dtype.kind != "f":
            raise TypeError(f"{name} expected a floating-point dtype, got {dtype}")
        gen = as_generator(rng)
        e = self.embed_dim
        if self.same_dims:
            self.in_proj_weight = Parameter(_xavier(gen, (3 * e, e), dtype))
        else:
            self.q_proj_weight = Parameter(_xavier(gen, (e, e), dtype))
            self.k_proj_weight = Parameter(_xavier(gen, (e, self.kdim), dtype))
            self.v_proj_weight = Parameter(_xavier(gen, (e, self.vdim), dtype))
        self.in_proj_bias = Parameter(np.zeros(3 * e, dtype)) if bias else None
        self.out_proj = Projection(e, e, bias=bias, rng=gen, dtype=dtype)
        if bias:
            self.out_proj.bias.value[:] = 0
        self.rng = gen
        self.frozen = False  # the gradient checker sets it: reuse the last dropout mask
        self._mask = None
        self._cache = None

    @property
    def same_dims(self):
        return self.kdim == self.vdim == self.embed_dim

    @property
    def head_dim(self):
        return self.embed_dim // self.num_heads

    @property
    def attn_weights(self):
        """The last forward's attention weights, ``(N, num_heads, L, S)`` (before dropout), or None."""
        return None if self._cache is None else self._cache[0][3]

    def _projection(self, which):
        """``(Parameter, rows)`` of the query (0), key (1) or value (2) projection; rows a slice of it."""
        e = self.embed_dim
        if self.same_dims:
            return self.in_proj_weight, slice(which * e, (which + 1) * e)
        return (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight)[which], slice(None)

    # -- checks ---------------------------------------------------------------------------
    def _batch_major(self, arr):
        return arr if self.batch_first else arr.transpose(1, 0, 2)

    def _check(self, arrays):
        dtype = self.out_proj.weight.value.dtype
        widths = (self.embed_dim, self.kdim, self.vdim)
        layout = "(N, {}, {})" if self.batch_first else "({}, N, {})"
        for i, (arr, label) in enumerate(zip(arrays, ("query", "key", "value"))):
            width = widths[i] if len(arrays) != 2 or i == 0 else self.kdim
            if arr.ndim != 3 or arr.shape[-1] != width:
                raise ValueError(f"{who(self)} expected {label} of shape {layout.format('L' if i == 0 else 'S', width)}"
                                 f", got {shape_text(arr.shape)}")
            if arr.dtype != dtype:
                raise TypeError(f"{who(self)} expected {label} of dtype {dtype}, got {arr.dtype}")
        if len(arrays) == 2 and self.kdim != self.vdim:
            raise ValueError(f"{who(self)} has kdim={self.kdim} != vdim={self.vdim}: give key and value apart")
        batch_axis = 0 if self.batch_first else 1
        if len({a.shape[batch_axis] for a in arrays}) > 1 or len({a.shape[1 - batch_axis] for a in arrays[1:]}) > 1:
            raise ValueError(f"{who(self)} expected one batch size, and key and value of one length, got "
                             + ", ".join(shape_text(a.shape) for a in arrays))

    def _bias(self, batch, rows, cols, dtype, key_padding_mask, attn_mask, is_causal):
        """The additive bias, broadcastable to (N, heads, L, S), or None."""
        pad = att = None
        if key_padding_mask is not None:
            pad = mask_bias(self, key_padding_mask, dtype, "key_padding_mask", masked_when=True)
            if pad.shape != (batch, cols):
                raise ValueError(f"{who(self)} expected key_padding_mask of shape {shape_text((batch, cols))} "
                                 f"(N, S), got {shape_text(pad.shape)}")
            pad = pad[:, None, None, :]
        if attn_mask is not None:
            att = mask_bias(self, attn_mask, dtype, "attn_mask", masked_when=True)
            if att.shape == (batch * self.num_heads, rows, cols):
                att = att.reshape(batch, self.num_heads, rows, cols)
            elif att.shape != (rows, cols):
                raise ValueError(f"{who(self)} expected attn_mask of shape {shape_text((rows, cols))} (L, S) or "
                                 f"{shape_text((batch * self.num_heads, rows, cols))} (N * num_heads, L, S), "
                                 f"got {shape_text(att.shape)}")
        causal = causal_bias(rows, cols, dtype) if is_causal else None
        return combine(pad, att, causal)

    # -- forward and backward -----------------------------------------------------------------
    def _split(self, flat, batch, length):
        """(N * L, E) -> (N, heads, L, head_dim), a view."""
        return flat.reshape(batch, length, self.num_heads, self.head_dim).transpose(0, 2, 1, 3)

    def _project(self, inputs, which):
        """Project ``inputs`` (N, T, width) with the rows ``which`` (a tuple of 0, 1, 2) in one product."""
        weight, bias = [], []
        for w in which:
            param, rows = self._projection(w)
            weight.append(param.value[rows])
            if self.in_proj_bias is not None:
                bias.append(self.in_proj_bias.value[w * self.embed_dim:(w + 1) * self.embed_dim])
        weight = weight[0] if len(which) == 1 else np.concatenate(weight)
        flat = np.dot(inputs.reshape(-1, inputs.shape[-1]), weight.T)
        if bias:
            flat += bias[0] if len(which) == 1 else np.concatenate(bias)
        n, t = inputs.shape[:2]
        return [self._split(flat[:, i * self.embed_dim:(i + 1) * self.embed_dim], n, t) for i in range(len(which))]

    def forward(self, query, key=None, value=None, *, key_padding_mask=None, attn_mask=None, is_causal=False):
        """query [, key [, value]] -> the attended output, shaped like query."""
        if key is None and value is not None:
            raise TypeError(f"{who(self)} got value without key")
        given = [a for a in (query, key, value) if a is not None]
        self._check(given)
        arrays = [self._batch_major(a) for a in given]
        if not self.same_dims and len(arrays) == 1:
            raise ValueError(f"{who(self)} has kdim/vdim != embed_dim: self-attention needs key and value apart")
        groups = {1: [(0, (0, 1, 2))], 2: [(0, (0,)), (1, (1, 2))], 3: [(0, (0,)), (1, (1,)), (2, (2,))]}[len(arrays)]
        q, k, v = [h for index, which in groups for h in self._project(arrays[index], which)]
        batch, rows, cols = q.shape[0], q.shape[2], k.shape[2]
        bias = self._bias(batch, rows, cols, q.dtype, key_padding_mask, attn_mask, is_causal)
        keep = self._keep(self.dropout, (batch, self.num_heads, rows, cols), q.dtype)
        heads, cache = attention_forward(q, k, v, bias, None, keep)
        merged = heads.transpose(0, 2, 1, 3).reshape(batch, rows, self.embed_dim)
        self._cache = (cache, arrays, groups)
        out = self.out_proj.forward(merged)
        return out if self.batch_first else out.transpose(1, 0, 2)

    def backward(self, grad_out, *, input_grad=True):
        """grad_out like the output -> dJ/dx, or one gradient per input given.

        ``input_grad=False`` skips the input gradients (None in their place): in training nobody
        needs the gradient of the data. The parameter gradients are the same.
        """
        cache, arrays, groups = self._cache
        batch, rows = cache[0].shape[0], cache[0].shape[2]
        d_merged = self.out_proj.backward(self._batch_major(grad_out))
        d_heads = d_merged.reshape(batch, rows, self.num_heads, self.head_dim).transpose(0, 2, 1, 3)
        d_qkv = iter(attention_backward(d_heads, cache))
        grads = []
        for index, which in groups:
            inputs = arrays[index]
            flat_in = inputs.reshape(-1, inputs.shape[-1])
            d_flat = np.empty((inputs.shape[0], inputs.shape[1], len(which), self.num_heads, self.head_dim),
                              inputs.dtype)
            for i, _ in enumerate(which):
                d_flat[:, :, i] = next(d_qkv).transpose(0, 2, 1, 3)
            d_flat = d_flat.reshape(flat_in.shape[0], len(which) * self.embed_dim)  # no -1: rows may be 0
            d_in = self._accumulate(which, d_flat, flat_in, input_grad)
            grads.append(None if d_in is None else d_in.reshape(inputs.shape))
        grads = [g if self.batch_first or g is None else g.transpose(1, 0, 2) for g in grads]
        return grads[0] if len(grads) == 1 else tuple(grads)

    def _accumulate(self, which, d_flat, flat_in, input_grad=True):
        """Weight and bias gradients of the rows ``which`` (consecutive); returns dJ/d(input) (N * T, width)."""
        e = self.embed_dim
        if self.in_proj_bias is not None:
            ones = np.ones(d_flat.shape[0], d_flat.dtype)
            d_bias = np.dot(ones, d_flat)
            if 1 in which:  # the key bias: exactly 0, not the rounding noise of a sum that cancels (see above)
                k = which.index(1)
                d_bias[k * e:(k + 1) * e] = 0
            self.in_proj_bias.grad[which[0] * e:(which[-1] + 1) * e] += d_bias
        if self.same_dims:  # the rows are consecutive in in_proj_weight: one product each
            rows = slice(which[0] * e, (which[-1] + 1) * e)
            self.in_proj_weight.grad[rows] += np.dot(d_flat.T, flat_in)
            return np.dot(d_flat, self.in_proj_weight.value[rows]) if input_grad else None
        d_in = None
        for i, w in enumerate(which):
            param, _ = self._projection(w)
            d = d_flat[:, i * e:(i + 1) * e]
            param.grad += np.dot(d.T, flat_in)
            if not input_grad:
                continue
            part = np.dot(d, param.value)
            d_in = part if d_in is None else np.add(d_in, part, out=d_in)
        return d_in

    def step(self, x, cache):
        """Causal self-attention of new positions ``x`` over themselves and the cached ones, for inference.

        ``cache`` is a dict, empty at first, that keeps the keys and values of
        every position seen; each call appends to it. The result equals the
        last rows of ``forward(all positions, is_causal=True)`` in eval mode,
        at the cost of the new positions only. No backward (nothing is cached
        for it); dropout is off.

        Shape:
            - x: ``(N, T_new, E)`` (``(T_new, N, E)`` without batch_first) -> the same shape.
        """
        self._check([x])
        q, k, v = self._project(self._batch_major(x), (0, 1, 2))
        if cache:
            k, v = np.concatenate([cache["k"], k], axis=2), np.concatenate([cache["v"], v], axis=2)
        cache["k"], cache["v"] = k, v
        rows, cols = q.shape[2], k.shape[2]
        heads, _ = attention_forward(q, k, v, causal_bias(rows, cols, q.dtype, offset=cols - rows))
        out = self.out_proj.forward(heads.transpose(0, 2, 1, 3).reshape(q.shape[0], rows, self.embed_dim))
        return out if self.batch_first else out.transpose(1, 0, 2)

    def output_shape(self, *shapes):
        """Feature shapes in -> the query's feature shape (the output is shaped like the query)."""
        if not 1 <= len(shapes) <= 3 or any(len(s) != 2 for s in shapes):
            raise ValueError(f"{who(self)} expected 1 to 3 inputs of 3 dimensions, got feature shapes {shapes}")
        widths = (self.embed_dim, self.kdim, self.kdim if len(shapes) == 2 else self.vdim)
        for shape, width in zip(shapes, widths):
            if shape[-1] != width:
                raise ValueError(f"{who(self)} expected a last axis of {width}, got feature shape {tuple(shape)}")
        return tuple(shapes[0])

    def short_repr(self):
        return f"{type(self).__name__}({self.extra_repr()})"

    def extra_repr(self):
        text = f"{self.embed_dim}, num_heads={self.num_heads}"
        if self.dropout:
            text += f", dropout={self.dropout:g}"
        if not self.same_dims:
            text += f", kdim={self.kdim}, vdim={self.vdim}"
        if self.in_proj_bias is None:
            text += ", bias=False"
        if self.batch_first:
            text += ", batch_first=True"
        return text
