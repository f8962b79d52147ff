"""Bridges to other tools: PyTorch weights (``torch_weights``) and ONNX export (``onnx_export``).

Nothing here imports torch or onnx when nanonet is imported: each function
imports what it needs when called, and says which extra installs it.
"""

from .torch_weights import load_torch_state_dict, to_torch_state_dict


def export_onnx(model, path, input_shape=None, *, opset=None, dtype=None):
    """Write ``model`` as an ONNX file at ``path``, checked by ``onnx.checker``; returns the ``ModelProto``.

    Exports ``Sequential`` and ``Graph`` models (nested too) of the built-in
    layers: Linear, the activations, LayerNorm, BatchNorm1d, Dropout,
    Flatten, Identity, Add, Multiply, Concat and Split; the convolutional
    layers (Conv1d, Conv2d with every padding mode, ConvTranspose2d,
    MaxPool1d/2d, AvgPool2d, AdaptiveAvgPool2d, BatchNorm2d, Dropout2d,
    ZeroPad2d, Upsample) and the SyncBatchNorm classes; the sequence layers
    (Embedding, Softmax, LogSoftmax, Projection, RNN, LSTM, GRU,
    ScaledDotProductAttention, MultiheadAttention, TransformerEncoderLayer,
    TransformerEncoder). The model is exported as it computes in **eval
    mode** (Dropout is the identity, BatchNorm uses its running statistics).
    Only axis 0 is dynamic (the batch; the sequence length for a time-major
    recurrent or attention layer): the other sizes are ``input_shape``'s. An
    input the model reads as indices (an Embedding first) is declared int64.
    Each layer is written by a converter from a registry keyed by its class
    (``nanonet.interop.onnx_converters``); a layer without one is a
    ``NotImplementedError`` that names it, and adding one is a single
    decorated function. Linear's ``(in, out)`` weight is a plain ``MatMul``
    operand.

    Args:
        model: a nanonet Module.
        path: the ``.onnx`` file to write (atomically: a temporary file, then a rename).
        input_shape: the feature shape of one example, without the batch axis,
            e.g. ``(10,)``, ``(3, 32, 32)`` for a CNN, ``(L,)`` for L indices; a list of them for a Graph
            with several inputs.
            Default: a Graph's ``Input`` shapes, or the first Linear's ``in_features``.
        opset: the ONNX opset (default 17; LayerNorm needs 17; from 19 circular padding is ``Pad``'s
            ``wrap`` mode, below it ``Slice`` and ``Concat``).
        dtype: the graph's float type (default: the model's parameters' dtype).

    The batch axis is dynamic (``"batch"``); inputs are named as the
    Graph's inputs (``"input"`` for other models), outputs ``"output"`` (or
    ``"output_0"``, ``"output_1"``, ...). Needs onnx, nanonet's optional
    ``onnx`` extra; run the file with onnxruntime.

    Example:
        >>> import pytest; _ = pytest.importorskip("onnx")   # the `onnx` extra
        >>> import nanonet as nn
        >>> model = nn.Sequential(nn.Linear(4, 8, rng=0), nn.ReLU(), nn.Linear(8, 2, rng=1)).to("float32")
        >>> proto = nn.export_onnx(model, getfixture("tmp_path") / "mlp.onnx")
        >>> [node.op_type for node in proto.graph.node]
        ['MatMul', 'Add', 'Relu', 'MatMul', 'Add', 'Identity']
    """
    from .onnx_export import export

    return export(model, path, input_shape, opset=opset, dtype=dtype)


__all__ = ["export_onnx", "load_torch_state_dict", "to_torch_state_dict"]
