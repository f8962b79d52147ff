"""nn.export_onnx of sequence models: Sequential and Graph models, the models of `nanonet demo text`, masks given
by a converter of one's own module, and the configurations that are refused (with the layer and the reason)."""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="onnx is not installed (nanonet's `onnx` extra)")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (nanonet's `onnx` extra)")

import nanonet as nn  # noqa: E402
from nanonet import demo_text  # noqa: E402
from nanonet.interop import onnx_converters as registry  # noqa: E402
from nanonet.interop import onnx_converters_attention as attention  # noqa: E402
from onnx_helpers import assert_close, check_export, randomized, run_onnx  # noqa: E402
from test_sequence_layers import WithOptions  # noqa: E402

F32 = np.float32


def lstm_tagger(dt):
    return nn.Sequential(nn.Embedding(20, 6, padding_idx=0, rng=0, dtype=dt),
                         nn.LSTM(6, 7, num_layers=2, batch_first=True, rng=1, dtype=dt),
                         nn.Linear(7, 5, rng=2, dtype=dt), nn.LogSoftmax(-1))


def gru_classifier(dt):
    tokens = nn.Input((8,), name="tokens")
    h = nn.GRU(4, 5, bidirectional=True, batch_first=True, rng=1, dtype=dt)(nn.Embedding(12, 4, rng=0, dtype=dt)(tokens))
    return nn.Graph(tokens, nn.Softmax(-1)(nn.Linear(80, 3, rng=2, dtype=dt)(nn.Flatten()(h))))


def transformer_classifier(dt):
    tokens = nn.Input((6,), name="tokens")
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.1, batch_first=True, rng=1, dtype=dt)
    h = nn.TransformerEncoder(layer, 2, norm=nn.LayerNorm(8, dtype=dt))(nn.Embedding(30, 8, rng=0, dtype=dt)(tokens))
    return nn.Graph(tokens, nn.Softmax(-1)(nn.Linear(48, 3, rng=2, dtype=dt)(nn.Flatten()(h))))


def lstm_with_states(dt):
    x, h0, c0 = nn.Input((5, 3), name="x"), nn.Input((4, 6), name="h0"), nn.Input((4, 6), name="c0")
    out, h, c = nn.LSTM(3, 6, num_layers=2, bidirectional=True, batch_first=True, return_state=True, rng=0,
                        dtype=dt)(x, h0, c0)
    return nn.Graph([x, h0, c0], [nn.Linear(12, 2, rng=1, dtype=dt)(out), h, c])


def recurrent_branches(dt):
    x = nn.Input((6, 3))
    rnn = nn.RNN(3, 4, nonlinearity="relu", batch_first=True, rng=0, dtype=dt)(x)
    gru = nn.GRU(3, 2, num_layers=2, batch_first=True, rng=1, dtype=dt)(x)
    return nn.Graph(x, nn.Linear(6, 2, rng=2, dtype=dt)(nn.Concat(axis=-1)(rnn, gru)))


MODELS = [("embedding lstm linear log-softmax", lstm_tagger, [(9,)]),
          ("embedding bi-gru classifier graph", gru_classifier, [(8,)]),
          ("transformer classifier graph", transformer_classifier, [(6,)]),
          ("lstm with initial and final states", lstm_with_states, [(5, 3), (4, 6), (4, 6)]),
          ("relu rnn and gru branches", recurrent_branches, [(6, 3)])]


@pytest.mark.parametrize("label, make, shapes", MODELS, ids=[m[0] for m in MODELS])
def test_sequence_models_in_sequential_and_graph(tmp_path, label, make, shapes):
    check_export(tmp_path, randomized(make(F32)), shapes)


@pytest.mark.parametrize("label, make, shapes", MODELS[:3], ids=[m[0] for m in MODELS[:3]])
def test_sequence_models_in_float64(tmp_path, label, make, shapes):
    runner = "ort" if "transformer" in label else "ref"  # ONNX Runtime runs LSTM and GRU in float32 only
    check_export(tmp_path, randomized(make(np.float64)), shapes, np.float64, runner=runner, batches=(2,))


# -- the models of `nanonet demo text` -----------------------------------------------------------
def test_the_char_lstm_of_the_text_demo_exports_as_a_graph_of_its_own_layers(tmp_path):
    net = demo_text.CharLSTM(65, embed=16, hidden=32, num_layers=2, rng=0)
    tokens = nn.Input((12,), name="tokens")
    out, _, _ = net.lstm(net.tok(tokens))  # the LSTM returns its states: the logits need its output only
    model = nn.Graph(tokens, net.head(out))
    check_export(tmp_path, model, [(12,)])
    x = np.random.default_rng(3).integers(0, 65, size=(2, 12))
    assert_close(run_onnx(tmp_path / "model.onnx", [x])[0], nn.predict(net, x))  # the demo's own forward


def test_the_causal_char_transformer_of_the_text_demo_exports_with_a_converter_of_its_own(tmp_path):
    @registry.register_converter(demo_text.CharTransformer)
    def _char_transformer(module, builder, inputs, name):
        tokens = registry.convert(module.tok, builder, inputs, name + "tok.")[0]
        steps = builder.feature_shape(inputs[0])[0]
        where = builder.ints(name + "positions", np.arange(steps))  # pos(arange(T)): constant indices
        positions = registry.convert(module.pos, builder, [where], name + "pos.")[0]
        h = builder.node("Add", [tokens, positions], name + "h")
        h = attention.convert_encoder(module.encoder, builder, [h], name + "encoder.", is_causal=True)[0]
        return registry.convert(module.head, builder, [h], name + "head.")

    net = randomized(demo_text.CharTransformer(65, context=16, d_model=16, nhead=2, num_layers=2, dim_feedforward=32,
                                               rng=0))
    try:
        proto = check_export(tmp_path, net, [(16,)])
    finally:
        del registry.CONVERTERS[demo_text.CharTransformer]
    assert {"Gather", "Where", "LayerNormalization", "Softmax"} <= {n.op_type for n in proto.graph.node}
    x = np.random.default_rng(4).integers(0, 65, size=(2, 16))
    x_later = x.copy()
    x_later[:, 8:] = (x[:, 8:] + 1) % 65  # causal: the first 8 positions' logits cannot see the change
    first, later = (run_onnx(tmp_path / "model.onnx", [a])[0] for a in (x, x_later))
    np.testing.assert_array_equal(first[:, :8], later[:, :8])
    assert np.abs(first[:, 8:] - later[:, 8:]).max() > 1e-3


# -- masks: a converter of one's own module passes its call's options --------------------------------
# WithOptions(layer, **masks) calls the layer with fixed keyword options: a module of one's own, whose converter
# (the fixture below) passes them to the layer's converter function.
FUNCTIONS = {nn.ScaledDotProductAttention: attention.convert_sdpa,
             nn.MultiheadAttention: attention.convert_multihead_attention,
             nn.TransformerEncoderLayer: attention.convert_encoder_layer,
             nn.TransformerEncoder: attention.convert_encoder}


@pytest.fixture
def with_options():
    @registry.register_converter(WithOptions)
    def _with_options(module, builder, inputs, name):
        return FUNCTIONS[type(module.module)](module.module, builder, inputs, name, **module.options)

    yield WithOptions
    del registry.CONVERTERS[WithOptions]


NO_ROW_4 = np.array([[True, False, True, False], [True] * 4, [False] * 4])  # row 1 attends to no key
MASKED = [  # (id, module, options, feature shapes)
    ("mha causal", lambda: nn.MultiheadAttention(8, 2, batch_first=True, rng=0, dtype=F32), dict(is_causal=True),
     [(5, 8)]),
    ("mha bool mask with an empty row", lambda: nn.MultiheadAttention(8, 2, batch_first=True, rng=0, dtype=F32),
     dict(attn_mask=NO_ROW_4[:, 1:]), [(3, 8)]),
    ("mha float mask and causal", lambda: nn.MultiheadAttention(6, 3, batch_first=True, rng=0, dtype=F32),
     dict(attn_mask=np.triu(np.full((4, 4), -2.0, F32), 2), is_causal=True), [(4, 6)]),
    ("mha cross mask", lambda: nn.MultiheadAttention(8, 2, batch_first=True, rng=0, dtype=F32),
     dict(attn_mask=NO_ROW_4), [(3, 8), (4, 8)]),
    ("encoder layer causal time-major", lambda: nn.TransformerEncoderLayer(8, 2, 12, batch_first=False, rng=0,
                                                                          dtype=F32), dict(is_causal=True), [(2, 8)]),
    ("encoder causal pre-norm", lambda: nn.TransformerEncoder(nn.TransformerEncoderLayer(
        8, 2, 12, batch_first=True, norm_first=True, rng=0, dtype=F32), 2), dict(is_causal=True), [(6, 8)]),
    ("encoder mask", lambda: nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 12, batch_first=True, rng=0,
                                                                              dtype=F32), 2),
     dict(mask=np.triu(np.ones((3, 3), bool), 1)), [(3, 8)]),
    ("sdpa causal", nn.ScaledDotProductAttention, dict(is_causal=True), [(4, 6), (4, 6), (4, 3)]),
    ("sdpa keep-mask with an empty row", nn.ScaledDotProductAttention, dict(attn_mask=~NO_ROW_4),
     [(3, 5), (4, 5), (4, 2)]),
]


@pytest.mark.parametrize("label, make, options, shapes", MASKED, ids=[m[0] for m in MASKED])
def test_masks_given_by_a_converter_of_ones_own_module(tmp_path, with_options, label, make, options, shapes):
    inner = randomized(make())
    ins = [nn.Input(s) for s in shapes]
    model = nn.Graph(ins, with_options(inner, **options)(*ins)) if len(ins) > 1 else with_options(inner, **options)
    check_export(tmp_path, model, shapes)  # batches 1 and 3: with a time-major layer, sequence lengths 1 and 3


# -- refused: the layer and the reason --------------------------------------------------------------
def mha(**kw):
    return nn.MultiheadAttention(8, 2, batch_first=True, rng=0, **kw)


REFUSED = [
    ("key padding mask", lambda: mha(), dict(key_padding_mask=np.zeros((2, 3), bool)), [(3, 8)], ValueError,
     r"MultiheadAttention\(8, num_heads=2, batch_first=True\): key_padding_mask varies per example; it would be a "
     r"graph input"),
    ("mask per example and head", lambda: mha(), dict(attn_mask=np.zeros((4, 3, 3), bool)), [(3, 8)], ValueError,
     r"MultiheadAttention\(8.*an attn_mask of shape \(4, 3, 3\) \(one per example and head\) varies per example"),
    ("encoder padding mask", lambda: nn.TransformerEncoderLayer(8, 2, 12, batch_first=True, rng=0),
     dict(src_key_padding_mask=np.zeros((2, 3), bool)), [(3, 8)], ValueError, r"key_padding_mask varies per example"),
    ("sdpa mask with a batch axis", nn.ScaledDotProductAttention, dict(attn_mask=np.ones((2, 3, 4), bool)),
     [(3, 5), (4, 5), (4, 2)], ValueError, r"ScaledDotProductAttention\(\): an attn_mask with a batch axis"),
]


@pytest.mark.parametrize("label, make, options, shapes, error, match", REFUSED, ids=[r[0] for r in REFUSED])
def test_per_example_masks_are_refused_naming_the_layer(tmp_path, with_options, label, make, options, shapes,
                                                        error, match):
    ins = [nn.Input(s) for s in shapes]
    model = nn.Graph(ins, with_options(make(), **options)(*ins))
    with pytest.raises(error, match=match):
        nn.export_onnx(model, tmp_path / "m.onnx", shapes if len(shapes) > 1 else shapes[0])
    assert not list(tmp_path.iterdir())


def test_what_cannot_be_written_exactly_is_an_error_naming_the_layer(tmp_path):
    class Swish(nn.Module):  # an activation of one's own, without a converter
        def forward(self, x):
            return x / (1 + np.exp(-x))

        def backward(self, grad_out):
            raise NotImplementedError

    layer = nn.TransformerEncoderLayer(8, 2, 12, activation=Swish(), batch_first=True, rng=0)
    with pytest.raises(NotImplementedError, match=r"export_onnx: Swish\(\) .* has no ONNX converter"):
        nn.export_onnx(nn.Sequential(layer), tmp_path / "a.onnx", (3, 8))
    encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 12, batch_first=True, rng=0), 1)
    with pytest.raises(ValueError, match=r"TransformerEncoderLayer\(d_model=8.*\) needs opset >= 17, got opset=16"):
        nn.export_onnx(encoder, tmp_path / "b.onnx", (3, 8), opset=16)

    class LoudLayer(nn.TransformerEncoderLayer):  # computes something else: not exported as its base
        def forward(self, src, **masks):
            return 2 * super().forward(src, **masks)

    with pytest.raises(NotImplementedError, match=r"LoudLayer\(d_model=8.*has no ONNX converter"):
        nn.export_onnx(nn.TransformerEncoder(LoudLayer(8, 2, 12, batch_first=True, rng=0), 2), tmp_path / "c.onnx",
                       (3, 8))
    from nanonet.interop.onnx_export import GraphBuilder
    builder = GraphBuilder(np.float32, 17)
    for name, shape in (("q", (3, 5)), ("k", (4, 5)), ("v", (4, 2)), ("x", (3, 8))):
        builder.set_shape(name, shape)
    with pytest.raises(ValueError, match=r"ScaledDotProductAttention\(\) got both attn_mask and is_causal"):
        attention.scaled_dot_product_attention(builder, "q", "k", "v", "a.", attn_mask=np.ones((3, 4), bool),
                                               is_causal=True)
    with pytest.raises(ValueError, match=r"MultiheadAttention\(8.*expected attn_mask of shape \(3, 3\) \(L, S\), "
                                         r"got \(3, 4\)"):
        attention.convert_multihead_attention(mha(), builder, ["x"], "m.", attn_mask=np.ones((3, 4), bool))
    assert not list(tmp_path.iterdir())
