"""ONNX converters of the convolutional layers (registered on import; ``onnx_export`` imports this module).

The exported graph has a dynamic batch axis only: each layer's spatial input
size is fixed at export (``builder.feature_shape``), so every option is
written exactly, from the layer's own geometry (its padding pairs, its
``ceil_mode`` extent, its divisors, its nearest indices), never re-derived:

- ``Conv1d``/``Conv2d``: ``Conv`` (its ``pads`` for zeros, ``"same"``
  included); reflect/replicate padding is a ``Pad`` node (``reflect``/``edge``)
  before it, circular a ``Pad`` ``wrap`` from opset 19, else ``Slice`` + ``Concat``.
- ``ConvTranspose2d``: ``ConvTranspose`` (ONNX's weight layout is torch's, (in, out / groups, kH, kW)).
- ``MaxPool1d``/``MaxPool2d``: ``MaxPool`` with the padding the layer's windows
  span (``ceil_mode``'s last window included), so no runtime's ``ceil_mode``
  rule is relied on; an explicit ``-inf`` ``Pad`` where that padding reaches the
  kernel size (ONNX Runtime refuses such pads).
- ``AvgPool2d``: ``AveragePool`` where its divisor is ONNX's; otherwise
  (``ceil_mode`` windows clipped at the padding, ``divisor_override``) zero
  ``Pad``, ``AveragePool`` and a ``Mul`` by the constant ``kernel area / divisor``.
- ``AdaptiveAvgPool2d``: ``GlobalAveragePool`` (output 1), ``AveragePool``
  (sizes that divide), else the layer's two averaging matrices as ``MatMul``.
- ``ZeroPad2d``: ``Slice`` for the negative (cropped) sides, then ``Pad``.
- ``Upsample``: ``Resize`` (nearest, asymmetric, floor) for integer factors,
  where every runtime computes ``floor(i / factor)`` exactly; other sizes
  ``Gather`` the layer's own indices (PyTorch's float32 rule).

``BatchNorm2d`` and ``Dropout2d`` are in ``onnx_converters``; the
``SyncBatchNorm`` classes find the batch-norm converter by the subclass rule.
"""

import math

import numpy as np

from .. import layers
from .onnx_converters import register_converter

WRAP_OPSET = 19  # Pad's mode="wrap" (circular padding)
_PAD_MODE = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


# -- helpers ----------------------------------------------------------------------------------
def _ints(builder, name, values):
    return builder.constant(name, np.asarray(values, dtype=np.int64))


def _spatial(builder, tensor):
    return builder.feature_shape(tensor)[1:]


def _onnx_pads(pairs):
    """``((before, after), ...)`` per spatial axis -> ONNX's ``[begin..., end...]``."""
    return [lo for lo, _ in pairs] + [hi for _, hi in pairs]


def _pad(builder, x, pairs, name, mode="constant", value=None):
    """``Pad`` the spatial axes of the (N, C, *spatial) tensor ``x`` by ``pairs``."""
    spec = [0, 0] + [lo for lo, _ in pairs] + [0, 0] + [hi for _, hi in pairs]
    args = [x, _ints(builder, name + "pads", spec)]
    if value is not None:
        args.append(builder.scalar(name + "pad_value", value))
    return builder.node("Pad", args, name + "padded", mode=mode)


def _slice(builder, x, starts, ends, axes, name):
    return builder.node("Slice", [x, _ints(builder, name + "starts", starts), _ints(builder, name + "ends", ends),
                                  _ints(builder, name + "axes", axes)], name + "sliced")


def _wrap(builder, x, pairs, spatial, name):
    """Circular padding without ``Pad``'s ``wrap`` (opset < 19): the end and the start of each axis
    concatenated around it (PyTorch allows padding up to the size, so one copy of each suffices)."""
    for axis, ((lo, hi), n) in enumerate(zip(pairs, spatial), start=2):
        parts = [x]
        if lo:
            parts.insert(0, _slice(builder, x, [n - lo], [n], [axis], f"{name}wrap{axis}_before_"))
        if hi:
            parts.append(_slice(builder, x, [0], [hi], [axis], f"{name}wrap{axis}_after_"))
        if len(parts) > 1:
            x = builder.node("Concat", parts, f"{name}wrap{axis}", axis=axis)
    return x


def _conv_args(module, builder, x, name):
    args = [x, builder.weight(name + "weight", module.weight.value)]
    if module.bias is not None:
        args.append(builder.weight(name + "bias", module.bias.value))
    return args


# -- convolutions -----------------------------------------------------------------------------
@register_converter(layers.Conv1d)
@register_converter(layers.Conv2d)
def _conv(module, builder, inputs, name):
    x, pairs = inputs[0], module._pads  # the layer's own (before, after) pairs: "same" is asymmetric
    if module.padding_mode != "zeros" and any(lo or hi for lo, hi in pairs):
        if module.padding_mode == "circular" and builder.opset < WRAP_OPSET:
            x = _wrap(builder, x, pairs, _spatial(builder, x), name)
        else:
            x = _pad(builder, x, pairs, name, mode=_PAD_MODE[module.padding_mode])
        pairs = ((0, 0),) * len(pairs)
    return [builder.node("Conv", _conv_args(module, builder, x, name), name + "out",
                         kernel_shape=list(module.kernel_size), strides=list(module.stride),
                         dilations=list(module.dilation), group=module.groups, pads=_onnx_pads(pairs))]


@register_converter(layers.ConvTranspose2d)
def _conv_transpose(module, builder, inputs, name):
    # ONNX's output size, stride * (in - 1) + output_padding + dilation * (k - 1) + 1 - 2 * padding, is torch's
    return [builder.node("ConvTranspose", _conv_args(module, builder, inputs[0], name), name + "out",
                         kernel_shape=list(module.kernel_size), strides=list(module.stride),
                         dilations=list(module.dilation), group=module.groups,
                         pads=_onnx_pads([(p, p) for p in module.padding]),
                         output_padding=list(module.output_padding))]


# -- pooling ----------------------------------------------------------------------------------
@register_converter(layers.MaxPool1d)
@register_converter(layers.MaxPool2d)
def _max_pool(module, builder, inputs, name):
    x = inputs[0]
    spatial = _spatial(builder, x)
    pairs = module._pads(spatial, module._sizes(spatial))  # ceil_mode's last window as extra end padding
    attrs = dict(kernel_shape=list(module.kernel_size), strides=list(module.stride),
                 dilations=list(module.dilation))
    if any(hi >= k for (_, hi), k in zip(pairs, module.kernel_size)):
        x = _pad(builder, x, pairs, name, value=-np.inf)  # the layer's own padding value
    else:
        attrs["pads"] = _onnx_pads(pairs)
    return [builder.node("MaxPool", [x], name + "out", **attrs)]


@register_converter(layers.AvgPool2d)
def _avg_pool(module, builder, inputs, name):
    x = inputs[0]
    spatial = _spatial(builder, x)
    sizes = module._sizes(spatial)
    pairs = module._pads(spatial, sizes)
    divisor = module._divisor(spatial, sizes)  # a number (divisor_override) or one per output pixel
    area = math.prod(module.kernel_size)
    attrs = dict(kernel_shape=list(module.kernel_size), strides=list(module.stride))
    symmetric = all(lo == hi for lo, hi in pairs)
    if symmetric and np.all(divisor == area):  # every window whole inside the padded input
        return [builder.node("AveragePool", [x], name + "out", pads=_onnx_pads(pairs), count_include_pad=1,
                             **attrs)]
    if module.divisor_override is None and not module.count_include_pad:  # ONNX's divisor: the input pixels
        return [builder.node("AveragePool", [x], name + "out", pads=_onnx_pads(pairs), count_include_pad=0,
                             **attrs)]
    if any(lo or hi for lo, hi in pairs):
        x = _pad(builder, x, pairs, name)
    mean = builder.node("AveragePool", [x], name + "mean", **attrs)
    factor = np.broadcast_to(area / np.asarray(divisor, dtype=np.float64), sizes)
    return [builder.node("Mul", [mean, builder.weight(name + "area_over_divisor", factor)], name + "out")]


@register_converter(layers.AdaptiveAvgPool2d)
def _adaptive_avg_pool(module, builder, inputs, name):
    x = inputs[0]
    spatial = _spatial(builder, x)
    sizes = module._sizes(spatial)
    if sizes == (1, 1):
        return [builder.node("GlobalAveragePool", [x], name + "out")]
    if all(n % o == 0 for n, o in zip(spatial, sizes)):  # the windows tile the input: kernel = stride = n / o
        kernel = [n // o for n, o in zip(spatial, sizes)]
        return [builder.node("AveragePool", [x], name + "out", kernel_shape=kernel, strides=kernel)]
    rows, cols = module._mats(spatial, builder.dtype)  # overlapping windows: A_h @ x @ A_w.T, as the layer
    h = builder.node("MatMul", [builder.weight(name + "rows", rows), x], name + "rows_avg")
    return [builder.node("MatMul", [h, builder.weight(name + "cols_t", cols.T)], name + "out")]


# -- moving pixels ----------------------------------------------------------------------------
@register_converter(layers.ZeroPad2d)
def _zero_pad(module, builder, inputs, name):
    x = inputs[0]
    pairs = module._pairs()  # (top, bottom), (left, right); negative sides crop
    if any(min(lo, hi) < 0 for lo, hi in pairs):
        spatial = _spatial(builder, x)
        x = _slice(builder, x, [max(-lo, 0) for lo, _ in pairs],
                   [n - max(-hi, 0) for n, (_, hi) in zip(spatial, pairs)], [2, 3], name + "crop_")
    grow = [(max(lo, 0), max(hi, 0)) for lo, hi in pairs]
    if any(lo or hi for lo, hi in grow):
        x = _pad(builder, x, grow, name)
    return [x if x != inputs[0] else builder.node("Identity", [x], name + "out")]


@register_converter(layers.Upsample)
def _upsample(module, builder, inputs, name):
    x = inputs[0]
    spatial = _spatial(builder, x)
    indices = module._indices(spatial)  # the layer's source index per output row and column
    factors = [len(idx) // n for n, idx in zip(spatial, indices)]
    if all(f >= 1 and np.array_equal(idx, np.arange(len(idx)) // f) for f, idx in zip(factors, indices)):
        scales = builder.constant(name + "scales", np.array([1, 1, *factors], dtype=np.float32))
        return [builder.node("Resize", [x, "", scales], name + "out", mode="nearest",
                             coordinate_transformation_mode="asymmetric", nearest_mode="floor")]
    for axis, idx in enumerate(indices, start=2):
        x = builder.node("Gather", [x, _ints(builder, f"{name}index{axis}", idx)], f"{name}gather{axis}",
                         axis=axis)
    return [x]
