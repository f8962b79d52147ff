"""ONNX converters of the sequence layers (registered on import; ``onnx_export`` imports this module).

- ``Embedding``: ``Gather`` on the table; the graph input that feeds it is
  declared int64 (``onnx_export.takes_indices``).
- ``Softmax``, ``LogSoftmax``: ``Softmax``/``LogSoftmax`` along ``dim`` (any
  axis: from opset 13 ONNX normalizes along that one axis, as nanonet).
- ``Projection``: ``MatMul`` by ``weight.T`` (torch's ``(out, in)`` layout
  transposed at export) and ``Add``. ``Linear`` on N-D input is
  ``onnx_converters``'s ``MatMul``, which broadcasts over the leading axes.
- ``RNN`` (tanh or relu), ``LSTM``, ``GRU``: ONNX's own ``RNN``/``LSTM``/``GRU``
  ops, one per stacked layer (both directions in one ``bidirectional`` op),
  the gate blocks reordered (torch's LSTM ``i, f, g, o`` -> ONNX's ``i, o, f, c``;
  GRU ``r, z, n`` -> ``z, r, h`` with ``linear_before_reset=1``, which is
  torch's ``r * (h W_hn^T + b_hn)``). ``batch_first`` is a ``Transpose``:
  ONNX Runtime refuses the ops' ``layout=1``. Initial states given to the
  module (a Graph node ``lstm(x, h0, c0)``) are sliced per layer into the
  ops' ``initial_h``/``initial_c``; with ``return_state`` the ops' ``Y_h``/``Y_c``
  are concatenated into ``h_n``/``c_n``. Dropout between layers is off (eval).

The attention layers and the Transformer encoder are in ``onnx_converters_attention``.
"""

import numpy as np

from .. import layers
from .onnx_converters import register_converter

# ONNX's gate blocks, as indices of torch's blocks: ONNX LSTM i, o, f, c of torch's i, f, g, o; GRU z, r, h of r, z, n
_GATE_ORDER = {"RNN": [0], "LSTM": [0, 3, 1, 2], "GRU": [1, 0, 2]}


def transpose(builder, x, perm, name):
    return builder.node("Transpose", [x], name, perm=list(perm))


def reshape(builder, x, shape, name):
    """``Reshape`` to ``shape`` (0 copies that axis of ``x``: the dynamic batch stays dynamic)."""
    return builder.node("Reshape", [x, builder.ints(name + "_shape", shape)], name)


# -- lookup, normalization along an axis, torch-layout affine ------------------------------------
@register_converter(layers.Embedding)
def _embedding(module, builder, inputs, name):
    # the padding row is a row of zeros in the table: nothing more to write
    return [builder.node("Gather", [builder.weight(name + "weight", module.weight.value), inputs[0]], name + "out",
                         axis=0)]


@register_converter(layers.Softmax)
@register_converter(layers.LogSoftmax)
def _softmax(module, builder, inputs, name):
    return [builder.node(type(module).__name__, inputs[:1], name + "out", axis=module.dim)]


@register_converter(layers.Projection)
def _projection(module, builder, inputs, name):
    out = builder.node("MatMul", [inputs[0], builder.weight(name + "weight_t", module.weight.value.T)],
                       name + "matmul")
    if module.bias is None:
        return [out]
    return [builder.node("Add", [out, builder.weight(name + "bias", module.bias.value)], name + "out")]


# -- recurrent layers -----------------------------------------------------------------------------
def _gates(array, order, hidden):
    """``array``'s gate blocks of ``hidden`` rows, in ONNX's order."""
    return np.concatenate([array[k * hidden:(k + 1) * hidden] for k in order])


def _layer_weights(module, builder, layer, order, name):
    """``W``, ``R`` and ``B`` (or "" without bias) of one stacked layer, directions stacked, in ONNX's layout."""
    hidden = module.hidden_size
    params = [module._params(layer, d) for d in range(module.directions)]
    w = np.stack([_gates(w_ih.value, order, hidden) for w_ih, _, _, _ in params])
    r = np.stack([_gates(w_hh.value, order, hidden) for _, w_hh, _, _ in params])
    args = [builder.weight(name + "W", w), builder.weight(name + "R", r)]
    if not module.bias:
        return args + [""]
    b = np.stack([np.concatenate([_gates(b_ih.value, order, hidden), _gates(b_hh.value, order, hidden)])
                  for _, _, b_ih, b_hh in params])
    return args + [builder.weight(name + "B", b)]


@register_converter(layers.RNN)
@register_converter(layers.LSTM)
@register_converter(layers.GRU)
def _recurrent(module, builder, inputs, name):
    op = "LSTM" if isinstance(module, layers.LSTM) else "GRU" if isinstance(module, layers.GRU) else "RNN"
    dirs, n_states = module.directions, module._n_states
    attrs = dict(hidden_size=module.hidden_size, direction="bidirectional" if dirs == 2 else "forward")
    if op == "GRU":
        attrs["linear_before_reset"] = 1
    if op == "RNN":
        attrs["activations"] = [module.nonlinearity.capitalize()] * dirs  # "Tanh" or "Relu"
    x, states = inputs[0], inputs[1:]
    if module.batch_first:  # the ops are time-major, and so are their states: (L, N, F), (layers * D, N, H)
        x = transpose(builder, x, (1, 0, 2), name + "time_major")
        states = [transpose(builder, s, (1, 0, 2), f"{name}state{i}_layer_major") for i, s in enumerate(states)]
    finals = [[] for _ in range(n_states)]
    for layer in range(module.num_layers):
        prefix = f"{name}l{layer}."
        args = [x, *_layer_weights(module, builder, layer, _GATE_ORDER[op], prefix)]
        if states:
            starts, ends, axes = (builder.ints(prefix + key, [v]) for key, v in
                                  (("starts", layer * dirs), ("ends", (layer + 1) * dirs), ("axes", 0)))
            args += [""] + [builder.node("Slice", [s, starts, ends, axes], f"{prefix}initial{i}")
                            for i, s in enumerate(states)]  # "": no sequence_lens
        outs = [prefix + "Y"] + ([prefix + "Y_h", prefix + "Y_c"][:n_states] if module.return_state else [])
        made = builder.node(op, args, outs, **attrs)
        for store, state in zip(finals, made[1:]):
            store.append(state)
        # Y: (L, D, N, H) -> (L, N, D * H), both directions side by side as nanonet's output
        x = reshape(builder, transpose(builder, made[0], (0, 2, 1, 3), prefix + "Y_t"), (0, 0, -1), prefix + "out")
    outputs = [x] + [s[0] if len(s) == 1 else builder.node("Concat", s, f"{name}final{i}", axis=0)
                     for i, s in enumerate(finals if module.return_state else [])]
    if module.batch_first:
        outputs = [transpose(builder, t, (1, 0, 2), f"{name}out{i}") for i, t in enumerate(outputs)]
    return outputs
