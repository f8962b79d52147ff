"""``TransformerEncoderLayer`` and ``TransformerEncoder``, composed from nanonet's own modules.

Self-attention is a :class:`MultiheadAttention`; everything else acts on
each token alone, so it runs on the tokens as rows of a 2-D array
``(L * N, d_model)``: :class:`Projection` (``linear1``, ``linear2``, in
torch's weight layout), ``LayerNorm``, ``Dropout`` and the activation. The
children have torch's names, so a torch ``state_dict`` loads as it is.
"""

import copy

import numpy as np

from .._checks import check_number, shape_text, who
from .._rng import as_generator
from ..module import Module
from .activations import GELU, ReLU
from .dropout import Dropout
from .multihead import MultiheadAttention
from .normalization import LayerNorm
from .projection import Projection

_ACTIVATIONS = {"relu": ReLU, "gelu": GELU}


class TransformerEncoderLayer(Module):
    """Self-attention and a feed-forward block, each with a residual and a LayerNorm, as torch's.

    ``norm_first=False`` (post-norm, the default)::

        h = norm1(x + dropout1(self_attn(x)))
        y = norm2(h + dropout2(linear2(dropout(activation(linear1(h))))))

    ``norm_first=True`` (pre-norm): ``h = x + dropout1(self_attn(norm1(x)))``,
    ``y = h + dropout2(ff(norm2(h)))``.

    ``forward(src, *, src_mask=None, src_key_padding_mask=None, is_causal=False)``:
    the masks are passed to ``self_attn`` as ``attn_mask``, ``key_padding_mask``
    and ``is_causal`` (torch's conventions, see :class:`MultiheadAttention`).

    Args:
        d_model: the width E; nhead: heads (E divisible by it);
        dim_feedforward: the hidden width of the feed-forward block;
        dropout: the probability of every dropout inside (in training);
        activation: ``"relu"``, ``"gelu"`` or a nanonet Module;
        layer_norm_eps, batch_first, norm_first, bias: as torch's;
        rng: int seed or ``numpy.random.Generator``; dtype: float64 or float32.

    Shape:
        - src: ``(L, N, E)`` (``(N, L, E)`` with batch_first) -> the same shape.

    Example:
        >>> import numpy as np
        >>> import nanonet as nn
        >>> layer = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0, batch_first=True, rng=0)
        >>> x = np.random.default_rng(0).normal(size=(2, 5, 8))
        >>> y = layer(x, is_causal=True)
        >>> y.shape, layer.backward(np.ones_like(y)).shape
        ((2, 5, 8), (2, 5, 8))
        >>> [name for name, _ in layer.named_parameters()][:4]
        ['self_attn.in_proj_weight', 'self_attn.in_proj_bias', 'self_attn.out_proj.weight', 'self_attn.out_proj.bias']
    """

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu", layer_norm_eps=1e-5,
                 batch_first=False, norm_first=False, bias=True, *, rng=None, dtype=np.float64):
        name = "TransformerEncoderLayer"
        d_model = check_number(name, "d_model", d_model, low=1, integer=True)
        dim_feedforward = check_number(name, "dim_feedforward", dim_feedforward, low=1, integer=True)
        if isinstance(activation, str):
            if activation not in _ACTIVATIONS:
                raise ValueError(f"{name} expected activation 'relu', 'gelu' or a Module, got {activation!r}")
            activation = _ACTIVATIONS[activation]()
        elif not isinstance(activation, Module):
            raise TypeError(f"{name} expected activation 'relu', 'gelu' or a Module, got {type(activation).__name__}")
        if not isinstance(norm_first, (bool, np.bool_)):
            raise TypeError(f"{name} expected norm_first to be a bool, got {norm_first!r}")
        gen = as_generator(rng)
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first,
                                            rng=gen, dtype=dtype)
        self.linear1 = Projection(d_model, dim_feedforward, bias=bias, rng=gen, dtype=dtype)
        self.dropout = Dropout(dropout, rng=gen)
        self.linear2 = Projection(dim_feedforward, d_model, bias=bias, rng=gen, dtype=dtype)
        self.norm_first = bool(norm_first)
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, dtype=dtype)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, dtype=dtype)
        self.dropout1 = Dropout(dropout, rng=gen)
        self.dropout2 = Dropout(dropout, rng=gen)
        self.activation = activation
        self._shape = None

    @property
    def d_model(self):
        return self.self_attn.embed_dim

    @property
    def batch_first(self):
        return self.self_attn.batch_first

    def _feed_forward(self, h):
        return self.linear2.forward(self.dropout.forward(self.activation.forward(self.linear1.forward(h))))

    def _feed_backward(self, g):
        return self.linear1.backward(self.activation.backward(self.dropout.backward(self.linear2.backward(g))))

    def forward(self, src, *, src_mask=None, src_key_padding_mask=None, is_causal=False):
        """src (L, N, E) or (N, L, E) -> the same shape."""
        if src.ndim != 3 or src.shape[-1] != self.d_model:
            layout = "(N, L, {})" if self.batch_first else "(L, N, {})"
            raise ValueError(f"{who(self)} expected src of shape {layout.format(self.d_model)}, "
                             f"got {shape_text(src.shape)}")
        shape, rows = src.shape, src.reshape(-1, self.d_model)
        masks = {"attn_mask": src_mask, "key_padding_mask": src_key_padding_mask, "is_causal": is_causal}
        if self.norm_first:
            attended = self.self_attn.forward(self.norm1.forward(rows).reshape(shape), **masks)
            h = rows + self.dropout1.forward(attended.reshape(-1, self.d_model))
            out = h + self.dropout2.forward(self._feed_forward(self.norm2.forward(h)))
        else:
            attended = self.self_attn.forward(src, **masks)
            h = self.norm1.forward(rows + self.dropout1.forward(attended.reshape(-1, self.d_model)))
            out = self.norm2.forward(h + self.dropout2.forward(self._feed_forward(h)))
        self._shape = shape
        return out.reshape(shape)

    def step(self, src, cache):
        """The causal forward of new positions ``src`` after the cached ones, for inference (eval mode).

        ``cache``: a dict, empty at first (see ``MultiheadAttention.step``).
        Equals the last rows of ``forward(all, is_causal=True)``; no backward.
        """
        if self.training:
            raise RuntimeError(f"{who(self)}.step is for inference: call .eval() first")
        shape, rows = src.shape, src.reshape(-1, self.d_model)
        if self.norm_first:
            h = rows + self.self_attn.step(self.norm1.forward(rows).reshape(shape), cache).reshape(rows.shape)
            out = h + self._feed_forward(self.norm2.forward(h))
        else:
            h = self.norm1.forward(rows + self.self_attn.step(src, cache).reshape(rows.shape))
            out = self.norm2.forward(h + self._feed_forward(h))
        return out.reshape(shape)

    def backward(self, grad_out, *, input_grad=True):
        """grad_out shaped like src -> dJ/dsrc (None with ``input_grad=False``: the parameter gradients only)."""
        shape, g = self._shape, grad_out.reshape(-1, self.d_model)
        if self.norm_first:
            g_h = g + self.norm2.backward(self._feed_backward(self.dropout2.backward(g)))
            g_attended = self.self_attn.backward(self.dropout1.backward(g_h).reshape(shape))  # norm1 needs it
            g_norm1 = self.norm1.backward(g_attended.reshape(-1, self.d_model))
            if not input_grad:
                return None
            g_x = g_h + g_norm1
        else:
            g_sum2 = self.norm2.backward(g)
            g_h = g_sum2 + self._feed_backward(self.dropout2.backward(g_sum2))
            g_sum1 = self.norm1.backward(g_h)
            g_attended = self.self_attn.backward(self.dropout1.backward(g_sum1).reshape(shape), input_grad=input_grad)
            if not input_grad:
                return None
            g_x = g_sum1 + g_attended.reshape(-1, self.d_model)
        return g_x.reshape(shape)

    def output_shape(self, shape):
        return self.self_attn.output_shape(shape)

    def short_repr(self):
        return f"{type(self).__name__}({self.extra_repr()})"

    def extra_repr(self):
        return (f"d_model={self.d_model}, nhead={self.self_attn.num_heads}, "
                f"dim_feedforward={self.linear1.out_features}, dropout={self.dropout.p:g}"
                + (", norm_first=True" if self.norm_first else ""))


class TransformerEncoder(Module):
    """``num_layers`` copies of ``encoder_layer`` in a row (and an optional final ``norm``), as torch's.

    Like torch, every layer starts as a deep copy of ``encoder_layer`` (the
    same initial weights); unlike a plain copy, each gets fresh random
    generators (from ``rng``, else from the layer's own), so their dropout
    masks differ. ``forward(src, *, mask=None, src_key_padding_mask=None,
    is_causal=False)`` passes the masks to every layer. Parameters are named
    ``layers.0.self_attn.in_proj_weight``, ..., ``norm.weight``, as torch's.

    Shape:
        - src: ``(L, N, E)`` (``(N, L, E)`` with batch_first) -> the same shape.

    Example:
        >>> import numpy as np
        >>> import nanonet as nn
        >>> layer = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, batch_first=True, rng=0)
        >>> encoder = nn.TransformerEncoder(layer, num_layers=2, norm=nn.LayerNorm(8))
        >>> y = encoder(np.ones((2, 3, 8)), src_key_padding_mask=np.array([[False, False, True]] * 2))
        >>> y.shape, len(encoder.layers)
        ((2, 3, 8), 2)
    """

    def __init__(self, encoder_layer, num_layers, norm=None, *, rng=None):
        if not isinstance(encoder_layer, TransformerEncoderLayer):
            raise TypeError(f"TransformerEncoder expected a TransformerEncoderLayer, got "
                            f"{type(encoder_layer).__name__}")
        num_layers = check_number("TransformerEncoder", "num_layers", num_layers, low=1, integer=True)
        if norm is not None and not isinstance(norm, Module):
            raise TypeError(f"TransformerEncoder expected norm to be a Module or None, got {type(norm).__name__}")
        source = as_generator(rng) if rng is not None else copy.deepcopy(encoder_layer.self_attn.rng)
        self.layers = []
        for _ in range(num_layers):
            clone = copy.deepcopy(encoder_layer)
            for module in clone.modules():
                if isinstance(getattr(module, "rng", None), np.random.Generator):
                    module.rng = np.random.default_rng(source.integers(2**63))
            self.layers.append(clone)
        self.norm = norm
        self._shape = None

    @property
    def num_layers(self):
        return len(self.layers)

    @property
    def batch_first(self):
        """The layers' layout (torch's encoder reads it from its layer too): where the batch axis is."""
        return self.layers[0].batch_first

    def forward(self, src, *, mask=None, src_key_padding_mask=None, is_causal=False):
        """src -> the last layer's output (normalized by ``norm`` if given)."""
        h = src
        for layer in self.layers:
            h = layer.forward(h, src_mask=mask, src_key_padding_mask=src_key_padding_mask, is_causal=is_causal)
        self._shape = h.shape
        if self.norm is None:
            return h
        return self.norm.forward(h.reshape(-1, h.shape[-1])).reshape(h.shape)

    def step(self, src, caches):
        """The causal forward of new positions after the cached ones, for inference (see the layer's ``step``).

        ``caches``: a list, empty at first; it gets one dict per layer.
        """
        if not caches:
            caches.extend({} for _ in self.layers)
        h = src
        for layer, cache in zip(self.layers, caches):
            h = layer.step(h, cache)
        if self.norm is None:
            return h
        return self.norm.forward(h.reshape(-1, h.shape[-1])).reshape(h.shape)

    def backward(self, grad_out, *, input_grad=True):
        """grad_out shaped like src -> dJ/dsrc (None with ``input_grad=False``)."""
        g = grad_out
        if self.norm is not None:
            g = self.norm.backward(g.reshape(-1, g.shape[-1])).reshape(self._shape)
        for k in range(len(self.layers) - 1, -1, -1):
            g = self.layers[k].backward(g, input_grad=input_grad or k > 0)
        return g

    def output_shape(self, shape):
        return self.layers[0].output_shape(shape)

    def short_repr(self):
        return f"{type(self).__name__}({self.extra_repr()})"

    def extra_repr(self):
        return f"num_layers={self.num_layers}"
