"""Scaled dot-product attention, by hand: the function, the module, and the masks.

``attention_forward`` / ``attention_backward`` are the pair every attention
layer is built on (``ScaledDotProductAttention``, ``MultiheadAttention``)::

    scores = scale * q @ k^T + bias          bias: 0 where allowed, -inf where masked
    p      = softmax(scores)                 along the keys; a row with every key masked is all 0
    out    = dropout(p) @ v

and backward, with ``dp = g @ v^T`` (times the dropout mask):
``ds = p * (dp - sum(dp * p))``, ``dq = scale * ds @ k``,
``dk = scale * ds^T @ q``, ``dv = dropout(p)^T @ g``.

**Fully masked rows.** A query whose every key is masked gets attention
weights of 0, so its output is 0 (and its gradients are 0), as torch's
``scaled_dot_product_attention`` and ``MultiheadAttention(...,
need_weights=False)`` (what ``TransformerEncoderLayer`` uses) give; torch's
``need_weights=True`` path gives NaN there instead.
"""

import math

import numpy as np

from .._checks import check_number, shape_text, who
from .._rng import as_generator
from ..module import Module


def causal_bias(rows, cols, dtype, offset=0):
    """``(rows, cols)``: 0 where query i may see key j (``j <= i + offset``), -inf elsewhere.

    ``offset=0`` is torch's top-left alignment; a cached step of new queries
    after ``offset`` cached keys uses ``offset`` (see ``MultiheadAttention.step``).
    """
    bias = np.zeros((rows, cols), dtype=dtype)
    bias[np.triu_indices(rows, 1 + offset, cols)] = -np.inf
    return bias


def mask_bias(module, mask, dtype, name, masked_when):
    """A boolean or additive mask as an additive float bias (-inf where masked).

    ``masked_when`` is the boolean value that means "masked": True for
    ``MultiheadAttention``'s masks, False for ``scaled_dot_product_attention``'s
    (torch's two conventions). A float mask must have ``dtype`` and no NaN.
    """
    if not isinstance(mask, np.ndarray):
        raise TypeError(f"{who(module)} expected {name} to be a numpy.ndarray, got {type(mask).__name__}")
    if mask.dtype == np.bool_:
        bias = np.zeros(mask.shape, dtype=dtype)
        bias[mask == masked_when] = -np.inf
        return bias
    if mask.dtype != dtype:
        raise TypeError(f"{who(module)} expected {name} to be boolean or of dtype {dtype}, got {mask.dtype} "
                        f"(nanonet does not cast silently)")
    if np.isnan(mask).any() or np.isposinf(mask).any():
        raise ValueError(f"{who(module)} got NaN or +inf in {name}; an additive mask masks with -inf")
    return mask


def combine(*biases):
    """The sum of the additive biases that are not None (None if all are)."""
    found = [b for b in biases if b is not None]
    if not found:
        return None
    total = found[0]
    for b in found[1:]:
        total = total + b
    return total


def attention_forward(q, k, v, bias=None, scale=None, keep=None):
    """``(out, cache)``: attention of ``q`` (..., L, E) over ``k`` (..., S, E), ``v`` (..., S, Ev).

    ``bias`` broadcasts to (..., L, S); ``keep`` is the dropout mask on the
    weights (already scaled by 1 / (1 - p)), or None.
    """
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = np.matmul(q, np.swapaxes(k, -1, -2))
    scores *= scale
    if bias is not None:
        scores += bias
    peak = scores.max(axis=-1, keepdims=True, initial=-np.inf)  # no keys (S = 0): -inf, all weights 0
    empty = None
    if bias is not None:
        empty = np.isneginf(peak)  # every key masked: all weights 0
        if empty.any():
            peak[empty] = 0
        else:
            empty = None
    scores -= peak
    p = np.exp(scores, out=scores)
    total = p.sum(axis=-1, keepdims=True)
    if empty is not None:
        total[empty] = 1
    p /= total
    dropped = p if keep is None else p * keep
    out = np.matmul(dropped, v)
    return out, (q, k, v, p, dropped, keep, scale)


def attention_backward(grad_out, cache):
    """``(dq, dk, dv)`` from the gradient of the output and ``attention_forward``'s cache."""
    q, k, v, p, dropped, keep, scale = cache
    dv = np.matmul(np.swapaxes(dropped, -1, -2), grad_out)
    dp = np.matmul(grad_out, np.swapaxes(v, -1, -2))
    if keep is not None:
        dp *= keep
    ds = dp
    ds -= (dp * p).sum(axis=-1, keepdims=True)
    ds *= p
    ds *= scale
    dq = np.matmul(ds, k)
    dk = np.matmul(np.swapaxes(ds, -1, -2), q)
    return dq, dk, dv


class _Dropping:
    """Dropout on attention weights, with the ``frozen`` switch the gradient checker uses."""

    def _keep(self, p, shape, dtype):
        """The scaled keep-mask for weights of ``shape`` in training, or None (eval, or p == 0)."""
        if not self.training or p == 0:
            return None
        if self.frozen and self._mask is not None and self._mask.shape == shape:
            return self._mask
        self._mask = (self.rng.random(shape) >= p).astype(dtype) * (1 / (1 - p))
        return self._mask


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                                 *, rng=None):
    """``softmax(query @ key^T * scale + mask) @ value``, as ``torch.nn.functional.scaled_dot_product_attention``.

    Forward only (a function has no backward): for training use
    ``ScaledDotProductAttention`` or ``MultiheadAttention``, built on the same
    code. ``attn_mask``: boolean (**True = takes part**, torch's convention
    here) or additive float, broadcastable to ``(..., L, S)``; ``is_causal``
    masks key j > query i (not with ``attn_mask``, as in torch). ``scale``
    defaults to ``1 / sqrt(E)``. ``dropout_p`` drops weights with ``rng``.

    Shape:
        - query ``(..., L, E)``, key ``(..., S, E)``, value ``(..., S, Ev)`` -> ``(..., L, Ev)``

    Example:
        >>> import numpy as np
        >>> q = np.zeros((1, 2, 4))  # equal scores: each query averages the values it may see
        >>> scaled_dot_product_attention(q, q, np.array([[[1.0], [3.0]]]), is_causal=True)
        array([[[1.],
                [2.]]])
    """
    layer = ScaledDotProductAttention(dropout_p, scale, rng=rng)
    return layer.forward(query, key, value, attn_mask=attn_mask, is_causal=is_causal)


class ScaledDotProductAttention(_Dropping, Module):
    """Attention as a module: ``forward(query, key, value, *, attn_mask=None, is_causal=False)``.

    The same maths and masks as :func:`scaled_dot_product_attention`;
    ``backward(grad_out)`` returns ``(dJ/dquery, dJ/dkey, dJ/dvalue)``.
    Masks are keyword options of the call (``sdpa(q, k, v, is_causal=True)``).

    Args:
        dropout_p: drop probability on the attention weights in training.
        scale: the factor on ``q @ k^T`` (default ``1 / sqrt(E)``).
        rng: int seed or ``numpy.random.Generator`` for the dropout masks.

    Shape:
        - query ``(..., L, E)``, key ``(..., S, E)``, value ``(..., S, Ev)`` -> ``(..., L, Ev)``

    Example:
        >>> import numpy as np
        >>> import nanonet as nn
        >>> sdpa = nn.ScaledDotProductAttention()
        >>> q = np.random.default_rng(0).normal(size=(2, 3, 4))
        >>> out = sdpa(q, q, q, is_causal=True)
        >>> [g.shape for g in sdpa.backward(np.ones_like(out))]
        [(2, 3, 4), (2, 3, 4), (2, 3, 4)]
    """

    def __init__(self, dropout_p=0.0, scale=None, rng=None):
        self.dropout_p = check_number("ScaledDotProductAttention", "dropout_p", dropout_p, low=0, high=1,
                                      high_open=True)
        self.scale = None if scale is None else check_number("ScaledDotProductAttention", "scale", scale)
        self.rng = as_generator(rng)
        self.frozen = False
        self._mask = None
        self._cache = None

    def forward(self, query, key, value, *, attn_mask=None, is_causal=False):
        """query (..., L, E), key (..., S, E), value (..., S, Ev) -> (..., L, Ev)."""
        q, k, v = query, key, value
        if q.ndim < 2 or k.ndim != q.ndim or v.ndim != q.ndim or q.shape[-1] != k.shape[-1] \
                or k.shape[-2] != v.shape[-2] or not (q.dtype == k.dtype == v.dtype):
            raise ValueError(f"{who(self)} expected query (..., L, E), key (..., S, E) and value (..., S, Ev) "
                             f"of one dtype, got {shape_text(q.shape)}, {shape_text(k.shape)} and "
                             f"{shape_text(v.shape)}")
        rows, cols = q.shape[-2], k.shape[-2]
        if is_causal and attn_mask is not None:
            raise ValueError(f"{who(self)} got both attn_mask and is_causal=True; give one (as torch)")
        bias = causal_bias(rows, cols, q.dtype) if is_causal else None
        if attn_mask is not None:
            bias = mask_bias(self, attn_mask, q.dtype, "attn_mask", masked_when=False)
        lead = np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
        try:
            shape = np.broadcast_shapes(lead + (rows, cols), () if bias is None else bias.shape)
        except ValueError:
            shape = None
        if shape != lead + (rows, cols):
            raise ValueError(f"{who(self)} expected attn_mask broadcastable to {shape_text(lead + (rows, cols))}, "
                             f"got {shape_text(bias.shape)}")
        out, self._cache = attention_forward(q, k, v, bias, self.scale, self._keep(self.dropout_p, shape, q.dtype))
        return out

    def backward(self, grad_out):
        """grad_out (..., L, Ev) -> (dJ/dquery, dJ/dkey, dJ/dvalue)."""
        q, k, v = self._cache[:3]
        grads = attention_backward(grad_out, self._cache)
        return tuple(_unbroadcast(g, a.shape) for g, a in zip(grads, (q, k, v)))

    def extra_repr(self):
        parts = [f"dropout_p={self.dropout_p:g}"] if self.dropout_p else []
        if self.scale is not None:
            parts.append(f"scale={self.scale:g}")
        return ", ".join(parts)


def _unbroadcast(grad, shape):
    """Sum ``grad`` over the axes that were broadcast to reach it from ``shape``."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    grad = grad.sum(axis=tuple(range(extra))) if extra else grad
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    return grad.sum(axis=axes, keepdims=True) if axes else grad
