"""Properties of the sequence layers, over random configurations (hypothesis), without torch."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import nanonet as nn
from nanonet.testing.strategies import SEEDS, attention_cases, key_padding_masks, recurrent_cases


def _build(case):
    cell, kwargs, steps, batch, n_in, hidden, seed = case
    rnn = getattr(nn, cell)(n_in, hidden, rng=seed, **kwargs)
    shape = (batch, steps, n_in) if kwargs["batch_first"] else (steps, batch, n_in)
    return rnn, np.random.default_rng(seed).normal(size=shape)


@given(recurrent_cases())
def test_recurrent_gradients_match_finite_differences(case):
    rnn, x = _build(case)
    if case[0] == "RNN" and case[1].get("nonlinearity") == "relu":
        x = x + np.sign(x)  # keep pre-activations of the first step away from relu's kink
    report = nn.check_gradients(rnn, x, rng=case[-1], mode="projected", n_directions=4)
    assert report.ok, report


@given(recurrent_cases())
def test_recurrent_outputs_are_causal_and_batch_items_independent(case):
    """The forward direction at step t sees steps 0..t only; batch item i sees item i only."""
    rnn, x = _build(case)
    bf, dirs, hidden = rnn.batch_first, rnn.directions, rnn.hidden_size
    steps = x.shape[1] if bf else x.shape[0]
    out = rnn(x)
    changed = x.copy()
    # layer 2 of a bidirectional stack reads both directions of layer 1: not causal; check the items only
    t = steps - 1 if dirs == 2 and rnn.num_layers > 1 else steps // 2
    if bf:
        changed[:, t + 1:] += 1.0
        changed[1:] += 1.0
    else:
        changed[t + 1:] += 1.0
        changed[:, 1:] += 1.0
    out2 = rnn(changed)
    first_item = (slice(0, 1), slice(0, t + 1)) if bf else (slice(0, t + 1), slice(0, 1))
    np.testing.assert_array_equal(out2[first_item][..., :hidden], out[first_item][..., :hidden])
    if dirs == 2:  # the reverse direction at step t sees steps t..L-1: it changed unless nothing after t changed
        assert t + 1 == steps or not np.array_equal(out2[first_item][..., hidden:], out[first_item][..., hidden:])


@given(recurrent_cases(), st.booleans())
def test_reverse_direction_is_the_forward_one_on_the_flipped_sequence(case, with_state):
    cell, kwargs, steps, batch, n_in, hidden, seed = case
    kwargs = {**kwargs, "bidirectional": True, "num_layers": 1, "batch_first": False}
    both = getattr(nn, cell)(n_in, hidden, rng=seed, **kwargs)
    one = getattr(nn, cell)(n_in, hidden, rng=seed, **{**kwargs, "bidirectional": False})
    one.load_state_dict({k.replace("_reverse", ""): v for k, v in both.state_dict().items() if "_reverse" in k})
    gen = np.random.default_rng(seed)
    x = gen.normal(size=(steps, batch, n_in))
    n_states = 2 if cell == "LSTM" else 1
    states = [gen.normal(size=(2, batch, hidden)) for _ in range(n_states)] if with_state else []
    out = both(x, *states)
    flipped = one(x[::-1].copy(), *[s[1:] for s in states])
    np.testing.assert_allclose(out[..., hidden:], flipped[::-1], rtol=1e-12, atol=1e-14)


@given(attention_cases(), st.booleans())
def test_attention_masks_behave_like_removing_keys(case, causal):
    """Padding keys out is the same as not having them; is_causal hides later keys."""
    embed, heads, batch, rows, cols, seed = case
    gen = np.random.default_rng(seed)
    mha = nn.MultiheadAttention(embed, heads, batch_first=True, rng=seed)
    mha.in_proj_bias.value[:] = gen.normal(size=3 * embed)
    q, kv = gen.normal(size=(batch, rows, embed)), gen.normal(size=(batch, cols + 2, embed))
    padded = np.zeros((batch, cols + 2), bool)
    padded[:, cols:] = True
    np.testing.assert_allclose(mha(q, kv, key_padding_mask=padded), mha(q, kv[:, :cols]), rtol=1e-11, atol=1e-12)
    if causal:
        x = gen.normal(size=(batch, rows, embed))
        later = x.copy()
        later[:, rows // 2 + 1:] += 1.0
        seen = slice(0, rows // 2 + 1)
        np.testing.assert_allclose(mha(x, is_causal=True)[:, seen], mha(later, is_causal=True)[:, seen], rtol=1e-12)


@given(attention_cases(), SEEDS, st.data())
def test_attention_weights_are_a_distribution_or_zero(case, seed, data):
    embed, heads, batch, rows, cols, _ = case
    mha = nn.MultiheadAttention(embed, heads, batch_first=True, rng=seed)
    gen = np.random.default_rng(seed)
    mask = data.draw(key_padding_masks(batch, cols))
    out = mha(gen.normal(size=(batch, rows, embed)), gen.normal(size=(batch, cols, embed)), key_padding_mask=mask)
    w = mha.attn_weights
    assert np.all(np.isfinite(out)) and np.all(w >= 0)
    sums = w.sum(axis=-1)
    fully = mask.all(axis=1)
    np.testing.assert_allclose(sums[~fully], 1.0, rtol=1e-12)
    assert not np.any(w[fully])
    for i in range(batch):
        assert not np.any(w[i][..., mask[i]])


@given(st.integers(1, 4), st.integers(2, 6), SEEDS, st.floats(-50, 50))
def test_softmax_is_a_shift_invariant_distribution(rows, cols, seed, shift):
    x = np.random.default_rng(seed).normal(size=(rows, cols)) * 10
    p = nn.Softmax()(x)
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(nn.Softmax()(x + shift), p, rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(nn.LogSoftmax()(x), np.log(p), rtol=1e-9, atol=1e-12)


@given(st.integers(1, 30), st.integers(1, 5), st.integers(1, 40), SEEDS)
def test_embedding_gradient_is_the_one_hot_product(vocab, dim, count, seed):
    gen = np.random.default_rng(seed)
    emb = nn.Embedding(vocab, dim, rng=seed)
    idx = gen.integers(0, vocab, size=count)
    out = emb(idx)
    np.testing.assert_array_equal(out, emb.weight.value[idx])
    g = gen.normal(size=out.shape)
    emb.backward(g)
    np.testing.assert_allclose(emb.weight.grad, np.eye(vocab)[idx].T @ g, rtol=1e-12, atol=1e-12)
