"""nn.export_onnx of the sequence layers, each over its options: exported, checked by onnx.checker, run by ONNX
Runtime in float32 and (where some runtime computes the ops in float64) in float64, and compared with nanonet.

Containers, the text demo's models, masks and refusals are in test_onnx_seq_models.py.
"""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="onnx is not installed (nanonet's `onnx` extra)")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (nanonet's `onnx` extra)")

import nanonet as nn  # noqa: E402
from onnx_helpers import check_export, randomized, run_onnx  # noqa: E402


def graph(layer, *shapes):
    """A Graph of ``layer`` on one Input per shape (for layers that take several inputs)."""
    ins = [nn.Input(s, name=f"in{i}") for i, s in enumerate(shapes)]
    return nn.Graph(ins, layer(*ins))


def rec(cell, dt, **kw):
    return getattr(nn, cell)(3, 5, rng=0, dtype=dt, **kw)


# ONNX Runtime runs RNN/LSTM/GRU in float32 only, and onnx's reference evaluator knows the tanh RNN only: a relu
# RNN in float64 has no runtime to check it. Neither computes Erf (GELU) in float64 (the reference in float32).
REF, NONE = "ref", None
RECURRENT_CONFIGS = [  # (id, options, feature shape: (N, input) time-major, (L, input) batch-first)
    ("one layer time-major", {}, (2, 3)),
    ("two layers batch-first", dict(num_layers=2, batch_first=True), (5, 3)),
    ("bidirectional batch 1", dict(bidirectional=True), (1, 3)),
    ("three layers bidirectional batch-first length 1", dict(num_layers=3, batch_first=True, bidirectional=True),
     (1, 3)),
    ("no bias bidirectional two layers", dict(num_layers=2, bias=False, bidirectional=True), (2, 3)),
    ("states out batch-first bidirectional", dict(num_layers=2, batch_first=True, bidirectional=True,
                                                  return_state=True), (4, 3)),
    ("states out time-major", dict(return_state=True, num_layers=2), (3, 3)),
    ("dropout between layers is off", dict(num_layers=2, dropout=0.3, batch_first=True), (4, 3)),
]
LAYERS = [  # (id, factory(dtype), feature shapes, the ops the export must use, float64 runner)
    ("embedding", lambda dt: nn.Embedding(11, 4, padding_idx=0, rng=0, dtype=dt), [(7,)], {"Gather"}, "ort"),
    ("embedding 2-D indices", lambda dt: nn.Embedding(5, 3, rng=0, dtype=dt), [(2, 3)], {"Gather"}, "ort"),
    ("softmax last", lambda dt: nn.Softmax(-1), [(5, 4)], {"Softmax"}, "ort"),
    ("softmax middle", lambda dt: nn.Softmax(1), [(3, 4, 5)], {"Softmax"}, "ort"),
    ("softmax batch axis", lambda dt: nn.Softmax(0), [(4,)], {"Softmax"}, "ort"),
    ("log-softmax -2", lambda dt: nn.LogSoftmax(-2), [(3, 5)], {"LogSoftmax"}, "ort"),
    ("log-softmax 2", lambda dt: nn.LogSoftmax(2), [(2, 3, 4)], {"LogSoftmax"}, "ort"),
    ("linear 3-D", lambda dt: nn.Linear(4, 3, rng=0, dtype=dt), [(5, 4)], {"MatMul", "Add"}, "ort"),
    ("linear 4-D no bias", lambda dt: nn.Linear(4, 3, bias=False, rng=0, dtype=dt), [(2, 3, 4)], {"MatMul"}, "ort"),
    ("projection", lambda dt: nn.Projection(4, 3, rng=0, dtype=dt), [(5, 4)], {"MatMul", "Add"}, "ort"),
    ("projection 2-D no bias", lambda dt: nn.Projection(5, 2, bias=False, rng=0, dtype=dt), [(5,)], {"MatMul"},
     "ort"),
]
for _cell in ("RNN", "LSTM", "GRU"):
    for _label, _options, _shape in RECURRENT_CONFIGS:
        LAYERS.append((f"{_cell} {_label}", lambda dt, c=_cell, o=_options: rec(c, dt, **o), [_shape], {_cell}, REF))
LAYERS += [
    ("RNN relu batch-first", lambda dt: rec("RNN", dt, nonlinearity="relu", num_layers=2, batch_first=True),
     [(4, 3)], {"RNN"}, NONE),
    ("RNN relu bidirectional states", lambda dt: rec("RNN", dt, nonlinearity="relu", bidirectional=True,
                                                     return_state=True), [(2, 3)], {"RNN"}, NONE),
    ("sdpa", lambda dt: graph(nn.ScaledDotProductAttention(), (4, 6), (5, 6), (5, 3)),
     [(4, 6), (5, 6), (5, 3)], {"MatMul", "Softmax"}, "ort"),
    ("sdpa scale heads", lambda dt: graph(nn.ScaledDotProductAttention(scale=0.3), (2, 1, 6), (2, 3, 6), (2, 3, 4)),
     [(2, 1, 6), (2, 3, 6), (2, 3, 4)], {"MatMul", "Softmax"}, "ort"),
    ("mha self batch-first", lambda dt: nn.MultiheadAttention(8, 2, batch_first=True, rng=0, dtype=dt), [(5, 8)],
     {"Split", "Softmax"}, "ort"),
    ("mha self time-major", lambda dt: nn.MultiheadAttention(8, 4, rng=0, dtype=dt), [(2, 8)], {"Softmax"}, "ort"),
    ("mha odd heads no bias length 1", lambda dt: nn.MultiheadAttention(6, 3, bias=False, batch_first=True,
                                                                         rng=0, dtype=dt), [(1, 6)], {"Softmax"},
     "ort"),
    ("mha one head dropout", lambda dt: nn.MultiheadAttention(5, 1, dropout=0.4, batch_first=True, rng=0,
                                                              dtype=dt), [(3, 5)], {"Softmax"}, "ort"),
    ("mha cross", lambda dt: graph(nn.MultiheadAttention(8, 2, batch_first=True, rng=0, dtype=dt), (4, 8), (6, 8)),
     [(4, 8), (6, 8)], {"Split", "Softmax"}, "ort"),
    ("mha kdim vdim", lambda dt: graph(nn.MultiheadAttention(8, 2, kdim=5, vdim=3, batch_first=True, rng=0,
                                                             dtype=dt), (4, 8), (6, 5), (6, 3)),
     [(4, 8), (6, 5), (6, 3)], {"Softmax"}, "ort"),
]


def encoder_layer(dt, **kw):
    options = dict(dim_feedforward=12, dropout=0.2, batch_first=True, rng=0, dtype=dt)
    return nn.TransformerEncoderLayer(8, 2, **{**options, **kw})


LAYERS += [
    ("encoder layer post-norm relu", lambda dt: encoder_layer(dt), [(5, 8)], {"LayerNormalization", "Relu"}, "ort"),
    ("encoder layer pre-norm gelu", lambda dt: encoder_layer(dt, activation="gelu", norm_first=True), [(5, 8)],
     {"LayerNormalization", "Erf"}, NONE),
    ("encoder layer post-norm gelu time-major", lambda dt: encoder_layer(dt, activation="gelu", batch_first=False),
     [(2, 8)], {"LayerNormalization", "Erf"}, NONE),
    ("encoder layer pre-norm no bias eps length 1", lambda dt: encoder_layer(dt, norm_first=True, bias=False,
                                                                             layer_norm_eps=1e-3), [(1, 8)],
     {"LayerNormalization"}, "ort"),
    ("encoder layer tanh module", lambda dt: encoder_layer(dt, activation=nn.Tanh()), [(3, 8)], {"Tanh"}, "ort"),
    ("encoder layer softmax on rows", lambda dt: encoder_layer(dt, activation=nn.Softmax(-1)), [(3, 8)],
     {"Reshape", "Softmax"}, "ort"),
    ("encoder two layers norm", lambda dt: nn.TransformerEncoder(encoder_layer(dt), 2, norm=nn.LayerNorm(8, dtype=dt)),
     [(4, 8)], {"LayerNormalization"}, "ort"),
    ("encoder batch norm on the rows", lambda dt: nn.TransformerEncoder(encoder_layer(dt), 1, norm=nn.BatchNorm1d(
        8, dtype=dt)), [(4, 8)], {"Reshape", "BatchNormalization"}, "ort"),  # (L * N, E) rows: axis 1 is E
    ("encoder three layers pre-norm time-major", lambda dt: nn.TransformerEncoder(
        encoder_layer(dt, norm_first=True, batch_first=False), 3), [(2, 8)], {"LayerNormalization"}, "ort"),
]


@pytest.mark.parametrize("label, make, shapes, ops, f64", LAYERS, ids=[c[0] for c in LAYERS])
def test_onnx_runtime_computes_what_the_sequence_layer_computes(tmp_path, label, make, shapes, ops, f64):
    model = randomized(make(np.float32))
    model.train()  # exported as in eval mode, and left in the mode it was in
    proto = check_export(tmp_path, model, shapes)
    assert model.training
    assert ops <= {node.op_type for node in proto.graph.node}


F64_LAYERS = [case for case in LAYERS if case[4] is not None]


@pytest.mark.parametrize("label, make, shapes, ops, f64", F64_LAYERS, ids=[c[0] for c in F64_LAYERS])
def test_float64_sequence_layers_export_as_double(tmp_path, label, make, shapes, ops, f64):
    model = randomized(make(np.float64))
    proto = check_export(tmp_path, model, shapes, np.float64, runner=f64, batches=(2,))
    assert {o.type.tensor_type.elem_type for o in proto.graph.output} == {onnx.TensorProto.DOUBLE}


def test_index_inputs_are_int64_and_float_inputs_keep_the_graph_dtype(tmp_path):
    tokens, h0 = nn.Input((6,), name="tokens"), nn.Input((1, 5), name="h0")
    gru = nn.GRU(4, 5, batch_first=True, rng=1, dtype=np.float32)
    model = nn.Graph([tokens, h0], gru(nn.Embedding(9, 4, rng=0, dtype=np.float32)(tokens), h0))
    proto = check_export(tmp_path, randomized(model), [(6,), (1, 5)])
    assert [i.type.tensor_type.elem_type for i in proto.graph.input] == [onnx.TensorProto.INT64,
                                                                        onnx.TensorProto.FLOAT]
    with pytest.raises(ValueError, match=r"give input_shape.*\(L,\) \(L indices per example\) .*Embedding\(9, 4"):
        nn.export_onnx(nn.Sequential(nn.Embedding(9, 4, rng=0)), tmp_path / "m.onnx")


def test_the_gate_blocks_are_reordered_not_just_copied(tmp_path):
    """A wrong gate order can still run: this LSTM's forget gate alone is open (i, g, o shut), so its output is
    0 (o = 0), and its cell state keeps c0; swapping any two gate blocks changes that."""
    lstm = nn.LSTM(2, 3, batch_first=True, return_state=True, rng=0, dtype=np.float32)
    h = 3
    for p in lstm.parameters():
        p.value[...] = 0
    lstm.bias_ih_l0.value[:] = np.repeat([-30.0, 30.0, 0.0, -30.0], h)  # i shut, f open, g 0, o shut
    x, h0 = nn.Input((4, 2)), nn.Input((1, h))
    c0 = nn.Input((1, h))
    model = nn.Graph([x, h0, c0], list(lstm(x, h0, c0)))
    check_export(tmp_path, model, [(4, 2), (1, h), (1, h)])
    xs = [np.ones((2, 4, 2), np.float32), np.ones((2, 1, h), np.float32), np.full((2, 1, h), 0.5, np.float32)]
    out, h_n, c_n = run_onnx(tmp_path / "model.onnx", xs)
    assert np.abs(out).max() < 1e-6 and np.allclose(c_n, 0.5)
