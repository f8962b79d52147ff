"""ONNX converters of attention and the Transformer encoder (registered on import; ``onnx_export`` imports it).

Attention is composed as nanonet computes it (``nanonet.layers.attention``):
``MatMul(q, k^T)``, ``Mul`` by the scale, the masks, ``Softmax`` along the
keys, ``MatMul`` by ``v``. ``MultiheadAttention`` adds its projections (one
``MatMul`` per group of rows, as the layer), the heads (``Reshape`` and
``Transpose``) and ``out_proj``; ``TransformerEncoderLayer`` its LayerNorms,
residual ``Add``s and feed-forward block (eval mode: every dropout is the
identity, so none is written).

**Masks.** nanonet's containers call a layer without keyword options, so a
layer inside a ``Sequential`` or a ``Graph`` attends without masks, and so
does its export. A converter of your own module that calls a layer with
masks (``encoder(h, is_causal=True)``) calls the functions below with the
same options, which write them into the graph:

- ``is_causal=True``: a ``Where`` on a causal pattern built from the scores'
  ``Shape`` (so it follows a dynamic sequence length);
- ``attn_mask`` of one ``(L, S)`` (``MultiheadAttention``, the encoders) or
  ``(..., L, S)`` without a batch axis (``scaled_dot_product_attention``),
  boolean or additive: a constant ``Add`` (with ``is_causal``, folded into
  it). A query whose every key is masked attends to nothing (output 0), as in
  nanonet: its row of the constant is 0 and a constant ``Mul`` zeroes its
  weights after the ``Softmax`` (which would give NaN on a row of ``-inf``);
- refused, with an error naming the layer: ``key_padding_mask`` and a mask
  with a batch axis (``(N * num_heads, L, S)``, or ``(N, ...)`` for the
  function), which vary per example: they would be graph inputs, and a
  nanonet container has no way to pass an input to a call option.
"""

import math

import numpy as np

from .. import layers
from ..layers.attention import causal_bias, mask_bias
from .onnx_converters import convert, converter_for, register_converter
from .onnx_converters_seq import reshape, transpose

_ELEMENTWISE = (layers.ReLU, layers.GELU, layers.Tanh, layers.Sigmoid, layers.LeakyReLU, layers.ELU, layers.Identity)


def _refuse(module, what):
    raise ValueError(f"export_onnx: {module.short_repr()}: {what} varies per example; it would be a graph input, "
                     f"and a nanonet container cannot pass an input to a call option, so it is not exported")


def _call(module, builder, inputs, name, expected, **options):
    """``module``'s converter with the mask ``options`` of its call. A subclass with a converter of its own
    (registered by you) is run as registered, which takes no masks: given masks, that is an error."""
    fn = converter_for(module)  # a subclass that redefines forward without a converter is refused, named
    if fn is expected:
        outputs = fn(module, builder, inputs, name, **options)
        builder.made(module, inputs, outputs)
        return outputs[0]
    if any(value is not None and value is not False for value in options.values()):
        raise ValueError(f"export_onnx: {module.short_repr()} has a converter of its own, which takes no masks; "
                         f"masks given: {sorted(k for k, v in options.items() if v is not None and v is not False)}")
    return convert(module, builder, inputs, name)[0]


def _known_shape(builder, tensor):
    try:
        return builder.feature_shape(tensor)
    except RuntimeError:
        return None


def _causal(builder, scores, name):
    """``scores`` with ``-inf`` where key j comes after query i (j > i), for the scores' own (L, S)."""
    shape = builder.node("Shape", [scores], name + "scores_shape")
    zero, one = builder.ints(name + "zero", 0), builder.ints(name + "one", 1)
    ranges = [builder.node("Range", [zero, builder.node("Gather", [shape, builder.ints(f"{name}axis{axis}", axis)],
                                                        f"{name}size{axis}", axis=0), one], f"{name}range{axis}")
              for axis in (-2, -1)]
    rows = builder.node("Unsqueeze", [ranges[0], builder.ints(name + "rows_axis", [1])], name + "rows")
    after = builder.node("Greater", [ranges[1], rows], name + "after")
    return builder.node("Where", [after, builder.scalar(name + "neg_inf", -np.inf), scores], name + "causal")


def attend(builder, q, k_t, v, name, *, scale, bias=None, causal=False):
    """``softmax(scale * q @ k_t + bias [+ causal]) @ v``: ``k_t`` is the keys transposed, ``bias`` a constant
    additive mask (``-inf`` where masked) or None, ``causal`` a causal mask of the scores' size."""
    scores = builder.node("MatMul", [q, k_t], name + "scores")
    scores = builder.node("Mul", [scores, builder.scalar(name + "scale", scale)], name + "scaled")
    keep = None
    if bias is not None:
        empty = np.isneginf(bias).all(axis=-1, keepdims=True)  # rows whose every key is masked: weights 0
        if empty.any():
            bias, keep = np.where(empty, 0.0, bias), (~empty).astype(np.float64)
        scores = builder.node("Add", [scores, builder.weight(name + "mask", bias)], name + "masked")
    if causal:
        scores = _causal(builder, scores, name)
    weights = builder.node("Softmax", [scores], name + "weights", axis=-1)
    if keep is not None:
        weights = builder.node("Mul", [weights, builder.weight(name + "keep_rows", keep)], name + "kept")
    return builder.node("MatMul", [weights, v], name + "attended")


# -- scaled dot-product attention -----------------------------------------------------------------
@register_converter(layers.ScaledDotProductAttention)
def convert_sdpa(module, builder, inputs, name, *, attn_mask=None, is_causal=False):
    """``ScaledDotProductAttention``; ``attn_mask`` (True = takes part, or additive) and ``is_causal`` as its call."""
    q, k, v = inputs
    rank = len(builder.feature_shape(k)) + 1
    bias = None
    if attn_mask is not None:
        if is_causal:
            raise ValueError(f"export_onnx: {module.short_repr()} got both attn_mask and is_causal=True; give one")
        bias = mask_bias(module, attn_mask, builder.dtype, "attn_mask", masked_when=False)
        if bias.ndim >= rank and bias.shape[0] != 1:
            _refuse(module, f"an attn_mask with a batch axis (shape {bias.shape})")
    scale = module.scale if module.scale is not None else 1 / math.sqrt(builder.feature_shape(q)[-1])
    k_t = transpose(builder, k, [*range(rank - 2), rank - 1, rank - 2], name + "key_t")
    return [attend(builder, q, k_t, v, name, scale=scale, bias=bias, causal=is_causal)]


def scaled_dot_product_attention(builder, q, k, v, name, *, attn_mask=None, is_causal=False, scale=None):
    """The nodes of ``nn.scaled_dot_product_attention(q, k, v, attn_mask, is_causal=..., scale=...)`` on the
    tensors named ``q``, ``k``, ``v``, for a converter of your own module; returns the output's name."""
    module = layers.ScaledDotProductAttention(scale=scale)
    return convert_sdpa(module, builder, [q, k, v], name, attn_mask=attn_mask, is_causal=is_causal)[0]


# -- multi-head attention -------------------------------------------------------------------------
def _project(module, builder, x, which, name):
    """The query (0), key (1), value (2) projections ``which`` of ``x``, in one ``MatMul`` as the layer."""
    rows = [module._projection(w) for w in which]
    weight = np.concatenate([param.value[part] for param, part in rows])
    out = builder.node("MatMul", [x, builder.weight(name + "weight_t", weight.T)], name + "projected")
    e = module.embed_dim
    if module.in_proj_bias is not None:
        bias = np.concatenate([module.in_proj_bias.value[w * e:(w + 1) * e] for w in which])
        out = builder.node("Add", [out, builder.weight(name + "bias", bias)], name + "biased")
    if len(which) == 1:
        return [out]
    return builder.node("Split", [out, builder.ints(name + "sizes", [e] * len(which))],
                        [f"{name}part{w}" for w in which], axis=-1)


@register_converter(layers.MultiheadAttention)
def convert_multihead_attention(module, builder, inputs, name, *, key_padding_mask=None, attn_mask=None,
                                is_causal=False):
    """``MultiheadAttention`` on 1 to 3 inputs (self, cross, query/key/value), with its call's masks."""
    if key_padding_mask is not None:
        _refuse(module, "key_padding_mask")
    bias = None
    if attn_mask is not None:
        bias = mask_bias(module, attn_mask, builder.dtype, "attn_mask", masked_when=True)
        if bias.ndim != 2:
            _refuse(module, f"an attn_mask of shape {bias.shape} (one per example and head)")
        shapes = [_known_shape(builder, t) for t in (inputs[0], inputs[-1])]
        if module.batch_first and None not in shapes:  # else L is the dynamic axis: the mask's size fixes it
            want = (shapes[0][0], shapes[1][0])
            if bias.shape != want:
                raise ValueError(f"export_onnx: {module.short_repr()} expected attn_mask of shape {want} (L, S), "
                                 f"got {bias.shape}")
        if is_causal:  # the mask's shape fixes (L, S): fold the causal pattern into the constant
            bias, is_causal = bias + causal_bias(*bias.shape, bias.dtype), False
    arrays = [x if module.batch_first else transpose(builder, x, (1, 0, 2), f"{name}in{i}_batch_major")
              for i, x in enumerate(inputs)]
    groups = {1: [(0, (0, 1, 2))], 2: [(0, (0,)), (1, (1, 2))], 3: [(0, (0,)), (1, (1,)), (2, (2,))]}[len(arrays)]
    q, k, v = [t for index, which in groups for t in _project(module, builder, arrays[index], which,
                                                              f"{name}proj{index}.")]
    heads = (0, 0, module.num_heads, module.head_dim)  # (N, T, E) -> (N, T, heads, head_dim)
    q = transpose(builder, reshape(builder, q, heads, name + "q_heads"), (0, 2, 1, 3), name + "q")
    k_t = transpose(builder, reshape(builder, k, heads, name + "k_heads"), (0, 2, 3, 1), name + "k_t")
    v = transpose(builder, reshape(builder, v, heads, name + "v_heads"), (0, 2, 1, 3), name + "v")
    out = attend(builder, q, k_t, v, name, scale=1 / math.sqrt(module.head_dim), bias=bias, causal=is_causal)
    merged = reshape(builder, transpose(builder, out, (0, 2, 1, 3), name + "heads_t"), (0, 0, module.embed_dim),
                     name + "merged")
    out = convert(module.out_proj, builder, [merged], name + "out_proj.")[0]
    return [out if module.batch_first else transpose(builder, out, (1, 0, 2), name + "out")]


# -- Transformer encoder --------------------------------------------------------------------------
def _rowwise(module, builder, x, width, name):
    """``module`` on the rows ``(-1, width)`` of ``x``, as the encoder applies it, reshaped back; an
    elementwise module or a LayerNorm acts on ``x`` as it is (the same numbers, fewer nodes)."""
    if isinstance(module, (*_ELEMENTWISE, layers.LayerNorm)):
        return convert(module, builder, [x], name)[0]
    rows = reshape(builder, x, (-1, width), name + "rows")
    out = convert(module, builder, [rows], name)[0]
    return builder.node("Reshape", [out, builder.node("Shape", [x], name + "shape")], name + "unrows")


@register_converter(layers.TransformerEncoderLayer)
def convert_encoder_layer(module, builder, inputs, name, *, src_mask=None, src_key_padding_mask=None,
                          is_causal=False):
    """``TransformerEncoderLayer`` (post-norm or pre-norm) in eval mode, with its call's masks."""
    builder.require_opset(17, module)  # LayerNormalization
    x, e = inputs[0], module.d_model

    def attention(t):
        return _call(module.self_attn, builder, [t], name + "self_attn.", convert_multihead_attention,
                     key_padding_mask=src_key_padding_mask, attn_mask=src_mask, is_causal=is_causal)

    def feed_forward(t):
        t = convert(module.linear1, builder, [t], name + "linear1.")[0]
        t = _rowwise(module.activation, builder, t, module.linear1.out_features, name + "activation.")
        return convert(module.linear2, builder, [t], name + "linear2.")[0]

    def norm(which, t):
        return _rowwise(getattr(module, which), builder, t, e, f"{name}{which}.")

    def add(a, b, label):
        return builder.node("Add", [a, b], name + label)

    if module.norm_first:
        h = add(x, attention(norm("norm1", x)), "residual1")
        return [add(h, feed_forward(norm("norm2", h)), "residual2")]
    h = norm("norm1", add(x, attention(x), "residual1"))
    return [norm("norm2", add(h, feed_forward(h), "residual2"))]


@register_converter(layers.TransformerEncoder)
def convert_encoder(module, builder, inputs, name, *, mask=None, src_key_padding_mask=None, is_causal=False):
    """``TransformerEncoder``: its layers in a row (each with the masks), then its ``norm`` if any."""
    h = inputs[0]
    for i, layer in enumerate(module.layers):
        h = _call(layer, builder, [h], f"{name}layers.{i}.", convert_encoder_layer, src_mask=mask,
                  src_key_padding_mask=src_key_padding_mask, is_causal=is_causal)
    if module.norm is not None:
        h = _rowwise(module.norm, builder, h, module.layers[0].d_model, name + "norm.")
    return [h]
