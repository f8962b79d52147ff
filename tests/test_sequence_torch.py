"""Sequence layers against PyTorch in float64: outputs, input and state gradients, parameter gradients.

Each layer runs over a table of configurations (sequence lengths 1 to 50,
batch 1, several layers, both directions, masks of every kind, batch_first
both ways, dropout off). The torch module gets nanonet's ``state_dict`` as it
is (no transposes anywhere: the layouts are torch's), and every array must
agree to 1e-10 relative (the norm of the difference over the norm of torch's).
"""

import numpy as np
import pytest

import nanonet as nn

torch = pytest.importorskip("torch")

RTOL = 1e-10


def close(ours, theirs, what):
    theirs = theirs.detach().numpy() if hasattr(theirs, "detach") else np.asarray(theirs)
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} vs torch {theirs.shape}"
    scale = max(np.linalg.norm(theirs), 1e-300)
    err = np.linalg.norm(ours - theirs) / scale
    assert err <= RTOL or np.linalg.norm(ours - theirs) <= 1e-13, f"{what}: relative error {err:.2e}"


def load_into_torch(ours, theirs):
    missing = theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()}, strict=True)
    assert not missing.missing_keys and not missing.unexpected_keys


def check_params(ours, theirs):
    named = dict(theirs.named_parameters())
    assert set(named) == {n for n, _ in ours.named_parameters()}
    for name, p in ours.named_parameters():
        close(p.grad, named[name].grad, f"{name}.grad")


def seeded(shape, seed):
    return np.random.default_rng(seed).normal(size=shape)


# -- recurrent layers -----------------------------------------------------------------------------------
RNN_CASES = [  # (cell, kwargs, seq_len, batch, with_states)
    ("RNN", {}, 1, 1, False),
    ("RNN", {"nonlinearity": "relu", "num_layers": 2}, 7, 3, True),
    ("RNN", {"bidirectional": True, "batch_first": True}, 50, 2, True),
    ("RNN", {"bias": False, "num_layers": 3}, 5, 1, False),
    ("LSTM", {}, 1, 1, True),
    ("LSTM", {"num_layers": 2, "batch_first": True}, 13, 3, False),
    ("LSTM", {"bidirectional": True}, 50, 1, True),
    ("LSTM", {"num_layers": 3, "bidirectional": True, "batch_first": True}, 9, 2, True),
    ("LSTM", {"bias": False, "num_layers": 2, "dropout": 0.5}, 4, 2, True),  # dropout off: eval mode below
    ("GRU", {}, 1, 1, False),
    ("GRU", {"num_layers": 2, "bidirectional": True}, 17, 2, True),
    ("GRU", {"batch_first": True, "bias": False}, 50, 1, True),
    ("GRU", {"num_layers": 3, "batch_first": True}, 6, 3, False),
]


@pytest.mark.parametrize("cell, kwargs, steps, batch, with_states", RNN_CASES,
                         ids=[f"{c[0]}-{'-'.join(f'{k}={v}' for k, v in c[1].items())}-L{c[2]}-N{c[3]}-s{c[4]:d}"
                              for c in RNN_CASES])
def test_recurrent_layers_match_torch(cell, kwargs, steps, batch, with_states):
    inputs, hidden = 4, 5
    ours = getattr(nn, cell)(inputs, hidden, return_state=True, rng=1, **kwargs)
    theirs = getattr(torch.nn, cell)(inputs, hidden, dtype=torch.float64, **kwargs)
    load_into_torch(ours, theirs)
    if kwargs.get("dropout"):
        ours.eval(), theirs.eval()
    bf = kwargs.get("batch_first", False)
    layers = kwargs.get("num_layers", 1) * (2 if kwargs.get("bidirectional") else 1)
    x = seeded((batch, steps, inputs) if bf else (steps, batch, inputs), 0)
    n_states = 2 if cell == "LSTM" else 1
    # nanonet's states are batch-first with batch_first=True; torch's are always (layers, N, H)
    states = [seeded((layers, batch, hidden), 10 + i) for i in range(n_states)] if with_states else []
    ours_states = [s.transpose(1, 0, 2).copy() if bf else s for s in states]
    outs = ours(x, *ours_states)
    grads = [seeded(o.shape, 20 + i) for i, o in enumerate(outs)]
    back = ours.backward(tuple(grads))
    tx = torch.tensor(x, requires_grad=True)
    ts = [torch.tensor(s, requires_grad=True) for s in states]
    if cell == "LSTM":
        t_out, (t_h, t_c) = theirs(tx, tuple(ts) if ts else None)
        t_finals = [t_h, t_c]
    else:
        t_out, t_h = theirs(tx, ts[0] if ts else None)
        t_finals = [t_h]
    total = (t_out * torch.tensor(grads[0])).sum()
    for t_f, g in zip(t_finals, grads[1:]):
        total = total + (t_f * torch.tensor(g.transpose(1, 0, 2) if bf else g)).sum()
    total.backward()
    close(outs[0], t_out, "output")
    for o, t_f in zip(outs[1:], t_finals):
        close(o.transpose(1, 0, 2) if bf else o, t_f, "final state")
    dx, d_states = (back[0], back[1:]) if with_states else (back, ())
    close(dx, tx.grad, "dJ/dx")
    for d, t in zip(d_states, ts):
        close(d.transpose(1, 0, 2) if bf else d, t.grad, "dJ/d(initial state)")
    check_params(ours, theirs)


def test_torch_recurrent_state_dict_loads_as_it_is():
    theirs = torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True, dtype=torch.float64)
    ours = nn.LSTM(3, 4, num_layers=2, bidirectional=True, rng=0)
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    x = seeded((6, 2, 3), 0)
    close(ours(x), theirs(torch.tensor(x))[0], "output after loading torch's weights")


# -- attention ------------------------------------------------------------------------------------------
def _padding(batch, keys, seed, fully_padded=False):
    mask = np.random.default_rng(seed).random((batch, keys)) < 0.3
    mask[:, 0] = False
    if fully_padded:
        mask[0] = True  # every key of batch item 0 is padding: its rows are all masked
    return mask


MASKS = {  # name -> f(batch, heads, rows, cols) -> kwargs (nanonet's and torch's are the same arrays)
    "none": lambda n, h, l, s: {},
    "padding-bool": lambda n, h, l, s: {"key_padding_mask": _padding(n, s, 1)},
    "padding-float": lambda n, h, l, s: {"key_padding_mask": np.where(_padding(n, s, 2), -np.inf, seeded((n, s), 3))},
    "fully-padded": lambda n, h, l, s: {"key_padding_mask": _padding(n, s, 4, fully_padded=True)},
    "attn-bool": lambda n, h, l, s: {"attn_mask": np.random.default_rng(5).random((l, s)) < 0.3},
    "attn-float": lambda n, h, l, s: {"attn_mask": seeded((l, s), 6)},
    "attn-per-head": lambda n, h, l, s: {"attn_mask": seeded((n * h, l, s), 7)},
    "attn-row-masked": lambda n, h, l, s: {"attn_mask": np.eye(l, s, dtype=bool) | (np.arange(l) == 0)[:, None]},
    "both": lambda n, h, l, s: {"attn_mask": np.random.default_rng(8).random((l, s)) < 0.2,
                                "key_padding_mask": _padding(n, s, 9)},
}

MHA_CASES = [  # (inputs: 1 self, 2 q+kv, 3 q+k+v; kdim/vdim; batch_first; batch; L; S)
    (1, None, True, 2, 5, 5), (1, None, False, 1, 1, 1), (1, None, False, 3, 50, 50),
    (2, None, True, 2, 4, 7), (3, None, False, 1, 6, 3), (3, (3, 5), True, 2, 5, 4),
]


def _torch_mha_call(theirs, tin, kwargs):
    q, k, v = (tin * 3)[:3] if len(tin) == 1 else (tin + [tin[1]] if len(tin) == 2 else tin)
    return theirs(q, k, v, need_weights=False, **{key: torch.tensor(m) for key, m in kwargs.items()})[0]


@pytest.mark.parametrize("mask", list(MASKS))
@pytest.mark.parametrize("n_in, dims, bf, batch, rows, cols", MHA_CASES)
def test_multihead_attention_matches_torch(n_in, dims, bf, batch, rows, cols, mask):
    embed, heads = 6, 2
    kdim, vdim = dims or (None, None)
    ours = nn.MultiheadAttention(embed, heads, kdim=kdim, vdim=vdim, batch_first=bf, rng=0)
    ours.in_proj_bias.value[:] = seeded(3 * embed, 1)  # torch starts them at 0; test them non-zero
    ours.out_proj.bias.value[:] = seeded(embed, 2)
    theirs = torch.nn.MultiheadAttention(embed, heads, kdim=kdim, vdim=vdim, batch_first=bf, dtype=torch.float64)
    load_into_torch(ours, theirs)
    rows = cols if n_in == 1 else rows
    widths = [embed, kdim or embed, vdim or embed][:n_in]
    lengths = [rows, cols, cols][:n_in]
    arrays = [seeded((batch, t, w) if bf else (t, batch, w), 30 + i) for i, (t, w) in enumerate(zip(lengths, widths))]
    kwargs = MASKS[mask](batch, heads, rows, cols)
    out = ours(*arrays, **kwargs)
    g = seeded(out.shape, 40)
    back = ours.backward(g)
    back = back if isinstance(back, tuple) else (back,)
    tin = [torch.tensor(a, requires_grad=True) for a in arrays]
    t_out = _torch_mha_call(theirs, tin, kwargs)
    (t_out * torch.tensor(g)).sum().backward()
    close(out, t_out, "output")
    for i, (d, t) in enumerate(zip(back, tin)):
        close(d, t.grad, f"dJ/d(input {i})")
    check_params(ours, theirs)


def test_fully_padded_rows_give_zeros_as_torch_sdpa():
    mha = nn.MultiheadAttention(4, 2, batch_first=True, rng=0)
    mask = np.array([[True, True, True], [False, True, False]])
    out = mha(seeded((2, 3, 4), 0), key_padding_mask=mask)
    np.testing.assert_array_equal(out[0], np.broadcast_to(mha.out_proj.bias.value, (3, 4)))
    assert np.all(np.isfinite(out)) and not np.any(mha.attn_weights[0])


@pytest.mark.parametrize("case", ["plain", "bool", "float", "causal", "scale", "broadcast"])
def test_scaled_dot_product_attention_matches_torch(case):
    q, k, v = seeded((2, 3, 5, 4), 0), seeded((2, 3, 6, 4), 1), seeded((2, 3, 6, 7), 2)
    kwargs = {"bool": {"attn_mask": np.random.default_rng(3).random((5, 6)) < 0.7},
              "float": {"attn_mask": seeded((2, 3, 5, 6), 4)}, "causal": {"is_causal": True},
              "broadcast": {"attn_mask": seeded((3, 1, 6), 5)}}.get(case, {})
    scale = 0.3 if case == "scale" else None
    sdpa = nn.ScaledDotProductAttention(scale=scale)
    out = sdpa(q, k, v, **kwargs)
    g = seeded(out.shape, 6)
    grads = sdpa.backward(g)
    tq, tk, tv = (torch.tensor(a, requires_grad=True) for a in (q, k, v))
    t_kwargs = {key: torch.tensor(m) if isinstance(m, np.ndarray) else m for key, m in kwargs.items()}
    t_out = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, scale=scale, **t_kwargs)
    (t_out * torch.tensor(g)).sum().backward()
    close(out, t_out, "output")
    close(nn.scaled_dot_product_attention(q, k, v, scale=scale, **kwargs), t_out, "the function's output")
    for d, t in zip(grads, (tq, tk, tv)):
        close(d, t.grad, "gradient")


ENCODER_CASES = [  # (activation, norm_first, batch_first, mask kwargs)
    ("relu", False, False, {}), ("gelu", False, True, {"src_key_padding_mask": "padding"}),
    ("relu", True, True, {"is_causal": True}), ("gelu", True, False, {"src_mask": "float"}),
    ("relu", False, True, {"src_key_padding_mask": "fully"}),
]


def _encoder_masks(spec, batch, length):
    out = {}
    for key, kind in spec.items():
        if kind == "padding":
            out[key] = _padding(batch, length, 1)
        elif kind == "fully":
            out[key] = _padding(batch, length, 2, fully_padded=True)
        elif kind == "float":
            out[key] = seeded((length, length), 3)
        else:
            out[key] = kind
    return out


@pytest.mark.parametrize("activation, norm_first, bf, masks", ENCODER_CASES)
def test_transformer_encoder_layer_matches_torch(activation, norm_first, bf, masks):
    d, heads, ff, batch, length = 6, 2, 10, 2, 7
    kw = {"dim_feedforward": ff, "dropout": 0.0, "activation": activation, "batch_first": bf, "norm_first": norm_first}
    ours = nn.TransformerEncoderLayer(d, heads, rng=0, **kw)
    for p in ours.parameters():  # LayerNorm's ones and zeros would hide a swapped weight and bias
        p.value += seeded(p.value.shape, p.value.size) * 0.1
    theirs = torch.nn.TransformerEncoderLayer(d, heads, dtype=torch.float64, **kw)
    load_into_torch(ours, theirs)
    x = seeded((batch, length, d) if bf else (length, batch, d), 0)
    kwargs = _encoder_masks(masks, batch, length)
    causal = {"src_mask": torch.nn.Transformer.generate_square_subsequent_mask(length, dtype=torch.float64)} \
        if kwargs.get("is_causal") else {}
    out = ours(x, **kwargs)
    g = seeded(out.shape, 1)
    dx = ours.backward(g)
    tx = torch.tensor(x, requires_grad=True)
    t_out = theirs(tx, **{k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}, **causal)
    (t_out * torch.tensor(g)).sum().backward()
    close(out, t_out, "output")
    close(dx, tx.grad, "dJ/dx")
    check_params(ours, theirs)


def test_transformer_encoder_loads_torch_weights_and_matches():
    layer = torch.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True, dtype=torch.float64)
    theirs = torch.nn.TransformerEncoder(layer, 2, norm=torch.nn.LayerNorm(8, dtype=torch.float64),
                                         enable_nested_tensor=False)
    for p in theirs.parameters():
        torch.nn.init.normal_(p, std=0.3)
    ours = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True, rng=0), 2,
                                 norm=nn.LayerNorm(8))
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    x = seeded((3, 5, 8), 0)
    out = ours(x, is_causal=True)
    g = seeded(out.shape, 1)
    dx = ours.backward(g)
    tx = torch.tensor(x, requires_grad=True)
    mask = torch.nn.Transformer.generate_square_subsequent_mask(5, dtype=torch.float64)
    t_out = theirs(tx, mask=mask, is_causal=True)
    (t_out * torch.tensor(g)).sum().backward()
    close(out, t_out, "output")
    close(dx, tx.grad, "dJ/dx")
    check_params(ours, theirs)


# -- embedding, softmax, linear on any leading shape ------------------------------------------------------
@pytest.mark.parametrize("padding_idx", [None, 0, -2])
@pytest.mark.parametrize("shape", [(1,), (4, 9), (2, 3, 50)])
def test_embedding_matches_torch(padding_idx, shape):
    ours = nn.Embedding(11, 4, padding_idx=padding_idx, rng=0)
    theirs = torch.nn.Embedding(11, 4, padding_idx=padding_idx, dtype=torch.float64)
    load_into_torch(ours, theirs)
    idx = np.random.default_rng(0).integers(0, 11, size=shape)
    out = ours(idx)
    g = seeded(out.shape, 1)
    assert ours.backward(g) is None
    t_out = theirs(torch.tensor(idx))
    (t_out * torch.tensor(g)).sum().backward()
    close(out, t_out, "output")
    close(ours.weight.grad, theirs.weight.grad, "weight.grad (repeated indices add up)")


@pytest.mark.parametrize("cls", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("dim, shape", [(-1, (4, 7)), (1, (3, 5, 2)), (0, (6, 3)), (-2, (2, 4, 3))])
def test_softmax_matches_torch(cls, dim, shape):
    x = seeded(shape, 0) * 30
    x.reshape(-1)[0] = 700.0  # large logits: exp would overflow without the shift
    ours = getattr(nn, cls)(dim)
    out = ours(x)
    g = seeded(shape, 1)
    dx = ours.backward(g)
    tx = torch.tensor(x, requires_grad=True)
    t_out = getattr(torch.nn, cls)(dim)(tx)
    (t_out * torch.tensor(g)).sum().backward()
    close(out, t_out, "output")
    close(dx, tx.grad, "dJ/dx")


@pytest.mark.parametrize("shape", [(2, 3, 5), (1, 1, 1, 5), (4, 5)])
def test_linear_and_projection_on_any_leading_shape_match_torch(shape):
    theirs = torch.nn.Linear(5, 3, dtype=torch.float64)
    lin, proj = nn.Linear(5, 3, rng=0), nn.Projection(5, 3, rng=0)
    state = {k: v.detach().numpy() for k, v in theirs.state_dict().items()}
    proj.load_state_dict(state)  # torch's layout, as it is
    lin.load_state_dict({"weight": state["weight"].T.copy(), "bias": state["bias"]})  # Linear: (in, out)
    x = seeded(shape, 0)
    tx = torch.tensor(x, requires_grad=True)
    t_out = theirs(tx)
    g = seeded(t_out.shape, 1)
    (t_out * torch.tensor(g)).sum().backward()
    for ours, transpose in ((lin, True), (proj, False)):
        close(ours(x), t_out, f"{ours!r} output")
        close(ours.backward(g), tx.grad, f"{ours!r} dJ/dx")
        close(ours.weight.grad.T if transpose else ours.weight.grad, theirs.weight.grad, f"{ours!r} weight.grad")
