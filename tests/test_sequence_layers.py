"""Sequence layers without torch: the conformance suite, several inputs and outputs, containers, errors."""

import numpy as np
import pytest

import nanonet as nn
from nanonet.layers.embedding import scatter_rows
from layer_table import SEQ
from nanonet.testing import parametrize_with_checks


SEQ_TABLE = SEQ  # see layer_table.py


@parametrize_with_checks(SEQ_TABLE)
def test_sequence_layers_pass_the_suite(layer, check):
    check(layer)


class WithOptions(nn.Module):
    """Calls ``module`` with fixed keyword options (masks), so the checker can take it as a plain model."""

    checks_itself = True

    def __init__(self, module, **options):
        self.module, self.options = module, options

    def forward(self, *xs):
        return self.module.forward(*xs, **self.options)

    def backward(self, grad_out):
        return self.module.backward(grad_out)


def _x(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape)


@pytest.mark.parametrize("cell, n_states", [("RNN", 1), ("LSTM", 2), ("GRU", 1)])
@pytest.mark.parametrize("batch_first", [False, True])
def test_gradients_flow_into_initial_states_and_from_final_states(cell, n_states, batch_first):
    rnn = getattr(nn, cell)(2, 3, num_layers=2, bidirectional=True, batch_first=batch_first, return_state=True,
                            rng=0)
    x = _x((2, 4, 2) if batch_first else (4, 2, 2))
    states = tuple(_x((2, 4, 3) if batch_first else (4, 2, 3), seed=i + 1) for i in range(n_states))
    report = nn.check_gradients(rnn, (x,) + states, rng=0, mode="full")
    assert report.ok, report
    assert [r.name for r in report.rows][:1 + n_states] == [f"input {i}" for i in range(1 + n_states)]


@pytest.mark.parametrize("cell, n_states", [("RNN", 1), ("LSTM", 2), ("GRU", 1)])
def test_an_empty_batch_flows_through_states_and_return_state(cell, n_states):
    """Batch 0 (a rank's empty share): every output, state and gradient has 0 rows; no gradient moves."""
    rnn = getattr(nn, cell)(3, 4, num_layers=2, dropout=0.5, bidirectional=True, batch_first=True,
                            return_state=True, rng=0)
    outs = rnn(np.zeros((0, 5, 3)), *[np.zeros((0, 4, 4))] * n_states)
    assert [o.shape for o in outs] == [(0, 5, 8)] + [(0, 4, 4)] * n_states
    back = rnn.backward(tuple(np.ones_like(o) for o in outs))
    assert [b.shape for b in back] == [(0, 5, 3)] + [(0, 4, 4)] * n_states
    assert all(p.grad.shape == p.value.shape and not p.grad.any() for p in rnn.parameters())


def test_unused_outputs_take_none_and_gradients_match_zeros():
    lstm = nn.LSTM(2, 3, return_state=True, rng=0)
    out, h, c = lstm(_x((5, 2, 2)))
    g = _x(out.shape, 1)
    with_none = lstm.backward((g, None, None))
    with_zeros = lstm.backward((g, np.zeros_like(h), np.zeros_like(c)))
    np.testing.assert_array_equal(with_none, with_zeros)


@pytest.mark.parametrize("options", [{}, {"key_padding_mask": np.array([[False, True, False, True]] * 2)},
                                     {"attn_mask": np.triu(np.ones((3, 4), bool), 1)}, {"is_causal": True}],
                         ids=["none", "padding", "attn", "causal"])
@pytest.mark.parametrize("n_inputs", [1, 2, 3])
def test_attention_gradients_with_several_inputs_and_masks(n_inputs, options):
    mha = nn.MultiheadAttention(4, 2, batch_first=True, rng=0)
    length = 4 if n_inputs == 1 else 3
    if n_inputs == 1 and "attn_mask" in options:
        options = {"attn_mask": np.triu(np.ones((4, 4), bool), 1)}
    arrays = tuple(_x((2, length if i == 0 else 4, 4), seed=i) for i in range(n_inputs))
    model = WithOptions(mha, **options)
    report = nn.check_gradients(model, arrays if n_inputs > 1 else arrays[0], rng=0, mode="full")
    assert report.ok, report


@pytest.mark.parametrize("n_inputs, kdim, options", [
    (1, None, {}), (1, None, {"is_causal": True, "key_padding_mask": np.array([[False, True, False, True]] * 2)}),
    (2, None, {"attn_mask": np.triu(np.ones((3, 4), bool), 1)}), (3, 3, {})], ids=["self", "masks", "kv", "qkv"])
def test_the_key_bias_gets_exactly_zero_gradient_its_true_value(n_inputs, kdim, options):
    """q . b_k shifts a query's every score alike: the softmax ignores it, so its gradient is 0, not noise."""
    mha = nn.MultiheadAttention(4, 2, dropout=0.3, kdim=kdim, vdim=kdim, batch_first=True, rng=0)
    mha.in_proj_bias.value[:] = _x(12, 5)
    arrays = [_x((2, 4 if n_inputs == 1 else 3, 4), 0)] + [_x((2, 4, kdim or 4), i) for i in range(1, n_inputs)]
    out = mha(*arrays, **options)
    mha.backward(_x(out.shape, 9))
    d_q, d_k, d_v = mha.in_proj_bias.grad.reshape(3, 4)
    assert not d_k.any() and np.abs(d_q).min() > 1e-6 and np.abs(d_v).min() > 1e-6
    mha.frozen = True  # the same dropout mask: moving b_k leaves the output as it is (to rounding)
    mha.in_proj_bias.value[4:8] += 0.5
    np.testing.assert_allclose(mha(*arrays, **options), out, rtol=0, atol=1e-12)


def test_scaled_dot_product_attention_gradients():
    sdpa = nn.ScaledDotProductAttention(dropout_p=0.3, rng=0)
    q, k, v = _x((2, 3, 4)), _x((2, 5, 4), 1), _x((2, 5, 2), 2)
    report = nn.check_gradients(WithOptions(sdpa, attn_mask=np.random.default_rng(0).random((3, 5)) < 0.7),
                                (q, k, v), rng=0, mode="full")
    assert report.ok, report


def test_integer_inputs_get_no_gradient_row():
    model = nn.Sequential(nn.Embedding(5, 3, rng=0), nn.LSTM(3, 2, batch_first=True, rng=0), nn.Linear(2, 1, rng=0))
    idx = np.random.default_rng(0).integers(0, 5, size=(2, 4))
    report = nn.check_gradients(model, idx, rng=0, mode="full")
    assert report.ok, report
    assert "input" not in [r.name for r in report.rows] and report["0.weight"].probes == 15


def test_embedding_gradient_accumulates_repeated_indices_in_every_path():
    gen = np.random.default_rng(0)
    for rows, width, size in [(5, 2, 7), (6, 64, 4000), (20000, 8, 600)]:  # np.add.at, dense one-hot, sparse rows
        index = gen.integers(0, rows, size=size)
        grads = gen.normal(size=(size, width))
        got = np.zeros((rows, width))
        scatter_rows(got, index, grads)
        want = np.zeros((rows, width))
        for i, g in zip(index, grads):
            want[i] += g
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_embedding_padding_row_is_never_trained():
    emb = nn.Embedding(4, 2, padding_idx=1, rng=0)
    opt = nn.optim.SGD(emb.parameters(), lr=0.5)
    idx = np.array([[1, 2, 1], [0, 1, 3]])
    for _ in range(3):
        emb.zero_grad()
        out = emb(idx)
        emb.backward(np.ones_like(out))
        opt.step()
        assert not np.any(emb.weight.grad[1]) and not np.any(emb.weight.value[1])
    assert np.all(emb.weight.grad[2] == 1) and np.all(emb.weight.grad[0] == 1)


def test_sequence_models_in_graph_and_sequential_with_build_time_shapes(capsys):
    tokens = nn.Input(6, name="tokens")
    h0, c0 = nn.Input((2, 4), name="h0"), nn.Input((2, 4), name="c0")
    emb = nn.Embedding(10, 4, rng=0)(tokens)
    enc = nn.TransformerEncoderLayer(4, 2, 8, dropout=0.0, batch_first=True, rng=0)(emb)
    out, h_n, c_n = nn.LSTM(4, 4, num_layers=2, batch_first=True, return_state=True, rng=0)(enc, h0, c0)
    attended = nn.MultiheadAttention(4, 2, batch_first=True, rng=0)(out, emb)  # cross-attention: query, key=value
    logits = nn.Linear(4, 10, rng=0)(nn.Add()(out, attended))
    net = nn.Graph([tokens, h0, c0], [logits, h_n])
    assert net.output_shapes == [(6, 10), (2, 4)]
    net.summary()
    text = capsys.readouterr().out
    assert "(None, 6, 4)" in text and "(None, 2, 4)" in text and "TransformerEncoderLayer" in text
    idx = np.random.default_rng(0).integers(0, 10, size=(3, 6))
    y, h = net(idx, np.zeros((3, 2, 4)), np.zeros((3, 2, 4)))
    d_idx, dh0, dc0 = net.backward((np.ones_like(y), np.ones_like(h)))
    assert d_idx is None and dh0.shape == dc0.shape == (3, 2, 4)
    seq = nn.Sequential(nn.Embedding(10, 4, rng=0), nn.GRU(4, 3, batch_first=True, rng=0), nn.Linear(3, 2, rng=0),
                        nn.LogSoftmax())
    seq.summary(input_shape=(6,))
    assert "(None, 6, 3)" in capsys.readouterr().out
    assert seq(idx).shape == (3, 6, 2) and seq.backward(np.ones((3, 6, 2))) is None


def test_save_load_and_float32(tmp_path):
    gen = np.random.default_rng(0)
    for make in (lambda: nn.LSTM(3, 4, num_layers=2, bidirectional=True, rng=gen),
                 lambda: nn.TransformerEncoder(nn.TransformerEncoderLayer(4, 2, 8, rng=gen), 2).eval()):
        model = make()
        x = _x((5, 2, 3 if isinstance(model, nn.LSTM) else 4))
        path = tmp_path / "model.npz"
        nn.save(path, model)
        other = make()
        nn.load(path, other)
        np.testing.assert_array_equal(other.eval()(x), model.eval()(x))
        want = model(x)
        model.to(np.float32)
        got = model(x.astype(np.float32))
        assert got.dtype == np.float32 and np.allclose(got, want, atol=1e-4)
        with pytest.raises(TypeError, match="dtype float32"):
            model(x)


def test_dropout_acts_in_training_only():
    lstm = nn.LSTM(3, 4, num_layers=2, dropout=0.5, rng=0)
    enc = nn.TransformerEncoderLayer(4, 2, 8, dropout=0.5, rng=0)
    for model, x in ((lstm, _x((5, 2, 3))), (enc, _x((5, 2, 4)))):
        assert not np.array_equal(model(x), model(x))
        model.eval()
        np.testing.assert_array_equal(model(x), model(x))


def test_keyword_options_reach_forward_but_not_graph_nodes():
    mha = nn.MultiheadAttention(4, 1, batch_first=True, rng=0)
    x = _x((1, 3, 4))
    causal = mha(x, is_causal=True)
    np.testing.assert_allclose(causal[0, 0], mha(x[:, :1])[0, 0])  # the first query sees only itself
    with pytest.raises(TypeError, match="unexpected keyword argument 'mask'"):
        mha(x, mask=None)
    with pytest.raises(TypeError, match="only name= is allowed"):
        mha(nn.Input((3, 4)), is_causal=True)


ERRORS = [  # (what, call, exception, message)
    ("float indices", lambda: nn.Embedding(5, 2)(np.ones((2, 3))), TypeError,
     r"Embedding\(5, 2\) expected a signed integer or unsigned integer input, got dtype float64"),
    ("index out of range", lambda: nn.Embedding(5, 2)(np.array([[0, 5]])), ValueError,
     r"Embedding\(5, 2\) expected indices in \[0, 5\), got 1 out of range \(e.g. 5\)"),
    ("negative index", lambda: nn.Embedding(5, 2)(np.array([-1])), ValueError, r"indices in \[0, 5\)"),
    ("padding_idx", lambda: nn.Embedding(5, 2, padding_idx=5), ValueError, r"padding_idx to be an int in \[-5, 5\)"),
    ("rnn rank", lambda: nn.LSTM(3, 4)(np.ones((5, 3))), ValueError,
     r"LSTM\(3, 4\) expected input of shape \(L, N, 3\) .*got \(5, 3\)"),
    ("rnn length 0", lambda: nn.LSTM(3, 4)(np.ones((0, 2, 3))), ValueError,
     r"LSTM\(3, 4\) expected a sequence of length >= 1, got input \(0, 2, 3\)"),
    ("rnn length 0, batch first", lambda: nn.GRU(3, 4, batch_first=True)(np.ones((2, 0, 3))), ValueError,
     r"GRU\(3, 4, batch_first=True\) expected a sequence of length >= 1, got input \(2, 0, 3\)"),
    ("rnn features", lambda: nn.GRU(3, 4, batch_first=True)(np.ones((2, 5, 2))), ValueError,
     r"GRU\(3, 4, batch_first=True\) expected input of shape \(N, L, 3\)"),
    ("rnn state shape", lambda: nn.RNN(3, 4)(np.ones((5, 2, 3)), np.ones((1, 3, 4))), ValueError,
     r"expected h0 of shape \(1, 2, 4\) \(num_layers \* num_directions, N, hidden_size\), got \(1, 3, 4\)"),
    ("lstm one state", lambda: nn.LSTM(3, 4)(np.ones((5, 2, 3)), np.ones((1, 2, 4))), TypeError,
     r"expected x alone or \(x, h0, c0\)"),
    ("rnn state dtype", lambda: nn.RNN(3, 4)(np.ones((5, 2, 3)), np.ones((1, 2, 4), np.float32)), TypeError,
     r"expected h0 of dtype float64, got float32"),
    ("nonlinearity", lambda: nn.RNN(3, 4, nonlinearity="gelu"), ValueError, r"'tanh' or 'relu'"),
    ("dropout nan", lambda: nn.LSTM(3, 4, dropout=float("nan")), ValueError, r"finite dropout"),
    ("dropout 1", lambda: nn.GRU(3, 4, num_layers=2, dropout=1.0), ValueError, r"GRU expected dropout in \[0, 1\)"),
    ("heads", lambda: nn.MultiheadAttention(10, 3), ValueError,
     r"embed_dim divisible by num_heads, got embed_dim=10 and num_heads=3"),
    ("mha rank", lambda: nn.MultiheadAttention(4, 2)(np.ones((3, 4))), ValueError,
     r"MultiheadAttention\(4, num_heads=2\) expected query of shape \(L, N, 4\), got \(3, 4\)"),
    ("mha key width", lambda: nn.MultiheadAttention(4, 2, kdim=3, vdim=3)(np.ones((2, 1, 4)), np.ones((2, 1, 4)),
                                                                          np.ones((2, 1, 3))), ValueError,
     r"expected key of shape \(S, N, 3\), got \(2, 1, 4\)"),
    ("padding mask shape", lambda: nn.MultiheadAttention(4, 2)(np.ones((3, 2, 4)),
                                                               key_padding_mask=np.zeros((3, 2), bool)),
     ValueError, r"expected key_padding_mask of shape \(2, 3\) \(N, S\), got \(3, 2\)"),
    ("attn mask shape", lambda: nn.MultiheadAttention(4, 2)(np.ones((3, 2, 4)), attn_mask=np.zeros((3, 4), bool)),
     ValueError, r"expected attn_mask of shape \(3, 3\) \(L, S\) or \(4, 3, 3\) \(N \* num_heads, L, S\)"),
    ("mask dtype", lambda: nn.MultiheadAttention(4, 2)(np.ones((3, 2, 4)), attn_mask=np.zeros((3, 3), int)),
     TypeError, r"attn_mask to be boolean or of dtype float64, got int64"),
    ("mask nan", lambda: nn.MultiheadAttention(4, 2)(np.ones((3, 2, 4)), attn_mask=np.full((3, 3), np.nan)),
     ValueError, r"NaN or \+inf in attn_mask"),
    ("sdpa both masks", lambda: nn.scaled_dot_product_attention(np.ones((1, 2, 2)), np.ones((1, 2, 2)),
                                                                np.ones((1, 2, 2)), np.ones((2, 2), bool),
                                                                is_causal=True), ValueError,
     r"both attn_mask and is_causal"),
    ("encoder width", lambda: nn.TransformerEncoderLayer(4, 2, 8)(np.ones((3, 2, 5))), ValueError,
     r"TransformerEncoderLayer\(d_model=4.*expected src of shape \(L, N, 4\), got \(3, 2, 5\)"),
    ("activation", lambda: nn.TransformerEncoderLayer(4, 2, activation="tanh"), ValueError, r"'relu', 'gelu'"),
    ("softmax dim", lambda: nn.Softmax(2)(np.ones((3, 4))), ValueError, r"Softmax\(dim=2\) cannot use dim=2"),
    ("linear 3-D width", lambda: nn.Linear(4, 2)(np.ones((2, 3, 5))), ValueError,
     r"expected input of shape \(N, 4\) or \(N, \.\.\., 4\), got \(2, 3, 5\)"),
]


@pytest.mark.parametrize("what, call, exc, message", ERRORS, ids=[e[0] for e in ERRORS])
def test_bad_input_gets_a_clear_error(what, call, exc, message):
    with pytest.raises(exc, match=message):
        call()


def test_errors_come_before_any_state_change():
    lstm = nn.LSTM(3, 4, num_layers=2, dropout=0.5, rng=0)
    lstm(_x((5, 2, 3)))
    cache, state = lstm._cache, lstm.state_dict()
    masks = [m.copy() for m in lstm._masks]
    with pytest.raises(ValueError):
        lstm(np.ones((5, 2, 4)))
    assert lstm._cache is cache and all(np.array_equal(m, k) for m, k in zip(masks, lstm._masks))
    assert all(np.array_equal(v, lstm.state_dict()[k]) for k, v in state.items())
    emb = nn.Embedding(5, 2, rng=0)
    good = np.array([1, 2])
    emb(good)
    with pytest.raises(ValueError):
        emb(np.array([7]))
    assert emb._index is good


def test_input_grad_false_skips_only_the_data_gradient():
    x = _x((2, 4, 6))
    for make in (lambda: nn.LSTM(6, 3, num_layers=2, bidirectional=True, batch_first=True, rng=0),
                 lambda: nn.GRU(6, 3, batch_first=True, rng=0),
                 lambda: nn.MultiheadAttention(6, 2, batch_first=True, rng=0),
                 lambda: nn.TransformerEncoderLayer(6, 2, 8, dropout=0.0, batch_first=True, rng=0),
                 lambda: nn.TransformerEncoder(nn.TransformerEncoderLayer(6, 2, 8, dropout=0.0, norm_first=True,
                                                                         batch_first=True, rng=0), 2)):
        full, skip = make(), make()
        g = _x(full(x).shape, 1)
        skip(x)
        assert full.backward(g) is not None and skip.backward(g, input_grad=False) is None
        for (name, a), (_, b) in zip(full.named_parameters(), skip.named_parameters()):
            np.testing.assert_allclose(b.grad, a.grad, rtol=1e-12, atol=1e-14, err_msg=name)


def test_cached_attention_step_equals_the_causal_forward():
    for batch_first in (True, False):
        enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(6, 2, 8, batch_first=batch_first, rng=0), 2).eval()
        x = _x((2, 5, 6) if batch_first else (5, 2, 6))
        caches = []
        pieces = [enc.step(x[:, :2] if batch_first else x[:2], caches)]
        pieces += [enc.step(x[:, t:t + 1] if batch_first else x[t:t + 1], caches) for t in range(2, 5)]
        np.testing.assert_allclose(np.concatenate(pieces, axis=1 if batch_first else 0), enc(x, is_causal=True),
                                   rtol=1e-12, atol=1e-13)
    with pytest.raises(RuntimeError, match=r"step is for inference: call .eval\(\) first"):
        nn.TransformerEncoderLayer(6, 2, 8, rng=0).step(_x((3, 1, 6)), {})


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_reused_scratch_arrays_never_alias_what_the_caller_holds(kind):
    """The recurrent layers reuse their last step's arrays: nothing returned may change on the next step."""
    def make():
        return getattr(nn, kind)(3, 4, num_layers=2, bidirectional=True, batch_first=True, return_state=True,
                                 rng=0)
    layer, x1, x2 = make(), _x((2, 5, 3)), _x((2, 5, 3), seed=1)
    first = layer(x1)
    grads = layer.backward(tuple(np.ones_like(o) for o in first))
    held = [a.copy() for a in first] + [grads.copy()]
    second = layer(x2)
    second_grads = layer.backward(tuple(np.cos(o) for o in second))
    assert all(np.array_equal(a, b) for a, b in zip(held, list(first) + [grads]))
    fresh = make()
    fresh_out = fresh(x2)
    assert all(np.array_equal(a, b) for a, b in zip(second, fresh_out))
    np.testing.assert_array_equal(second_grads, fresh.backward(tuple(np.cos(o) for o in fresh_out)))
    for p, q in zip(layer.parameters(), fresh.parameters()):
        assert not np.array_equal(p.grad, q.grad)  # the layer's holds both steps' gradients, fresh's one
