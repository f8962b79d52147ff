"""Empty batches (and empty sequences) through the sequence layers, against PyTorch 2.13 in float64.

A batch of 0 is what a data-parallel rank gets when the global batch is
smaller than the world, or what a filter leaves. torch's RNN/LSTM/GRU,
MultiheadAttention and Transformer encoder take it, forward and backward, in
both layouts; nanonet's must give the same shapes for every output, state and
gradient, and the same (zero) parameter gradients. A sequence of length 0 is
refused by torch's recurrent layers (and by nanonet's), and taken by torch's
attention (and by nanonet's: no keys means weights of 0, an output of the bias).
"""

import numpy as np
import pytest

import nanonet as nn

torch = pytest.importorskip("torch")


def seeded(shape, seed):
    return np.random.default_rng(seed).normal(size=shape)


def same(ours, theirs, what):
    theirs = theirs.detach().numpy() if hasattr(theirs, "detach") else np.asarray(theirs)
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} vs torch {theirs.shape}"
    assert ours.dtype == theirs.dtype, f"{what}: dtype {ours.dtype} vs torch {theirs.dtype}"
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-13, err_msg=what)


def to_torch(ours, theirs):
    theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()}, strict=True)


def same_param_grads(ours, theirs):
    named = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        assert named[name].grad is not None, name
        same(p.grad, named[name].grad, f"{name}.grad")


# -- recurrent layers ------------------------------------------------------------------------------------
@pytest.mark.parametrize("cell", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("with_states, return_state, bidirectional, training", [
    (False, False, False, False), (True, True, True, False), (False, True, True, True), (True, False, False, True)])
def test_recurrent_layers_take_an_empty_batch_as_torch(cell, batch_first, with_states, return_state, bidirectional,
                                                       training):
    kw = {"num_layers": 2, "batch_first": batch_first, "bidirectional": bidirectional, "dropout": 0.5 * training}
    ours = getattr(nn, cell)(3, 4, return_state=return_state, rng=0, **kw)
    theirs = getattr(torch.nn, cell)(3, 4, dtype=torch.float64, **kw)
    to_torch(ours, theirs)
    ours.train(training), theirs.train(training)
    n_states, layers, steps = 2 if cell == "LSTM" else 1, 2 * (2 if bidirectional else 1), 5
    x = np.zeros((0, steps, 3) if batch_first else (steps, 0, 3))
    states = [np.zeros((layers, 0, 4)) for _ in range(n_states)] if with_states else []  # torch's layout

    def ours_layout(s):
        return s.transpose(1, 0, 2) if batch_first else s  # nanonet's states are batch-first with batch_first

    outs = ours(x, *[ours_layout(s) for s in states])
    outs = outs if return_state else (outs,)
    grads = tuple(np.zeros_like(o) for o in outs)
    back = ours.backward(grads if return_state else grads[0])
    back = back if with_states else (back,)

    tx = torch.tensor(x, requires_grad=True)
    ts = [torch.tensor(s, requires_grad=True) for s in states]
    t_out, t_finals = theirs(tx, (tuple(ts) if cell == "LSTM" else ts[0]) if ts else None)
    t_finals = list(t_finals) if cell == "LSTM" else [t_finals]
    (t_out.sum() + sum(f.sum() for f in t_finals)).backward()

    same(outs[0], t_out, "output")
    for o, t in zip(outs[1:], t_finals):
        same(ours_layout(o), t, "final state")
    assert len(outs) == (1 + n_states if return_state else 1)
    same(back[0], tx.grad, "dJ/dx")
    for d, t in zip(back[1:], ts):
        same(ours_layout(d), t.grad, "dJ/d(initial state)")
    assert len(back) == 1 + len(ts)
    same_param_grads(ours, theirs)


@pytest.mark.parametrize("cell", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("batch", [0, 2])
def test_a_sequence_of_length_zero_is_refused_as_torch(cell, batch_first, batch):
    x = np.zeros((batch, 0, 3) if batch_first else (0, batch, 3))
    with pytest.raises(RuntimeError, match="sequence length to be larger than 0"):
        getattr(torch.nn, cell)(3, 4, batch_first=batch_first, dtype=torch.float64)(torch.tensor(x))
    ours = getattr(nn, cell)(3, 4, batch_first=batch_first, rng=0)
    with pytest.raises(ValueError, match=rf"{cell}\(3, 4.*expected a sequence of length >= 1"):
        ours(x)


# -- attention ---------------------------------------------------------------------------------------------
def _mha_masks(kind, batch, heads, rows, cols):
    """(nanonet's keyword options, torch's): torch needs the causal mask as attn_mask."""
    if kind == "padding":
        mask = np.zeros((batch, cols), bool)
        return {"key_padding_mask": mask}, {"key_padding_mask": torch.tensor(mask)}
    if kind == "per-head":
        mask = seeded((batch * heads, rows, cols), 1)
        return {"attn_mask": mask}, {"attn_mask": torch.tensor(mask)}
    if kind == "causal":
        return {"is_causal": True}, {"attn_mask": torch.tensor(np.triu(np.full((rows, cols), -np.inf), 1)),
                                     "is_causal": True}
    return {}, {}


MHA_CASES = [  # (inputs: 1 self, 2 q + kv, 3 q + k + v with kdim/vdim; batch; L; S; mask; training with dropout)
    (1, 0, 5, 5, "none", False), (1, 0, 5, 5, "padding", True), (1, 0, 4, 4, "causal", False),
    (2, 0, 3, 6, "per-head", True), (3, 0, 4, 2, "padding", False),
    (1, 2, 0, 0, "none", False), (2, 2, 0, 3, "none", False), (3, 2, 4, 0, "none", False),
    (2, 2, 3, 0, "padding", False),
]


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("n_in, batch, rows, cols, mask, training", MHA_CASES)
def test_multihead_attention_takes_empty_batches_and_sequences_as_torch(batch_first, n_in, batch, rows, cols, mask,
                                                                         training):
    kdim, vdim = (3, 5) if n_in == 3 else (None, None)
    kw = {"kdim": kdim, "vdim": vdim, "batch_first": batch_first, "dropout": 0.3 * training}
    ours = nn.MultiheadAttention(6, 2, rng=0, **kw)
    ours.in_proj_bias.value[:] = seeded(18, 1)  # non-zero biases: an empty key set gives out_proj.bias
    ours.out_proj.bias.value[:] = seeded(6, 2)
    theirs = torch.nn.MultiheadAttention(6, 2, dtype=torch.float64, **kw)
    to_torch(ours, theirs)
    ours.train(training), theirs.train(training)
    widths, lengths = [6, kdim or 6, vdim or 6][:n_in], [rows, cols, cols][:n_in]
    arrays = [seeded((batch, t, w) if batch_first else (t, batch, w), 3 + i) for i, (t, w) in
              enumerate(zip(lengths, widths))]
    options, t_options = _mha_masks(mask, batch, 2, rows, cols)
    out = ours(*arrays, **options)
    g = seeded(out.shape, 4)
    back = ours.backward(g)
    back = back if isinstance(back, tuple) else (back,)
    tin = [torch.tensor(a, requires_grad=True) for a in arrays]
    q, k, v = tin * 3 if n_in == 1 else (tin + tin[1:] if n_in == 2 else tin)
    # need_weights=True: torch's need_weights=False path cannot reshape a batch of 0 with a padding or a
    # per-head mask (a RuntimeError in torch 2.13); both paths agree wherever a row has a key left
    t_out = theirs(q, k, v, need_weights=True, **t_options)[0]
    (t_out * torch.tensor(g)).sum().backward()
    same(out, t_out, "output")
    assert len(back) == n_in
    for i, (d, t) in enumerate(zip(back, tin)):
        same(d, t.grad, f"dJ/d(input {i})")
    same_param_grads(ours, theirs)


@pytest.mark.parametrize("q_shape, k_shape", [((0, 2, 5, 4), (0, 2, 3, 4)), ((2, 2, 5, 4), (2, 2, 0, 4)),
                                              ((2, 2, 0, 4), (2, 2, 3, 4))], ids=["batch 0", "S=0", "L=0"])
def test_scaled_dot_product_attention_takes_empty_axes_as_torch(q_shape, k_shape):
    q, k, v = seeded(q_shape, 0), seeded(k_shape, 1), seeded(k_shape[:-1] + (3,), 2)
    sdpa = nn.ScaledDotProductAttention()
    out = sdpa(q, k, v)
    g = seeded(out.shape, 3)
    grads = sdpa.backward(g)
    tq, tk, tv = (torch.tensor(a, requires_grad=True) for a in (q, k, v))
    t_out = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv)
    (t_out * torch.tensor(g)).sum().backward()
    same(out, t_out, "output")
    for d, t in zip(grads, (tq, tk, tv)):
        same(d, t.grad, "gradient")


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("mask", ["none", "padding", "causal"])
def test_transformer_encoder_takes_an_empty_batch_as_torch(batch_first, norm_first, mask):
    kw = {"dim_feedforward": 8, "dropout": 0.0, "batch_first": batch_first, "norm_first": norm_first}
    ours = nn.TransformerEncoder(nn.TransformerEncoderLayer(4, 2, rng=0, **kw), 2, norm=nn.LayerNorm(4))
    theirs = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(4, 2, dtype=torch.float64, **kw), 2,
                                         norm=torch.nn.LayerNorm(4, dtype=torch.float64), enable_nested_tensor=False)
    to_torch(ours, theirs)
    assert ours.batch_first is batch_first is ours.layers[0].batch_first  # where the batch axis is, as torch's
    x = np.zeros((0, 5, 4) if batch_first else (5, 0, 4))
    options = {"src_key_padding_mask": np.zeros((0, 5), bool)} if mask == "padding" else \
        {"is_causal": True} if mask == "causal" else {}
    t_options = {"mask": torch.tensor(np.triu(np.full((5, 5), -np.inf), 1)), "is_causal": True} \
        if mask == "causal" else {}  # torch 2.13 cannot reshape a batch of 0 with a padding mask: none given
    out = ours(x, **options)
    dx = ours.backward(np.zeros_like(out))
    tx = torch.tensor(x, requires_grad=True)
    t_out = theirs(tx, **t_options)
    t_out.sum().backward()
    same(out, t_out, "output")
    same(dx, tx.grad, "dJ/dx")
    same_param_grads(ours, theirs)
    layer = ours.layers[0]  # a single layer, also in eval mode
    same(layer.eval()(x, **{"src_mask" if k == "mask" else k: v for k, v in options.items()}),
         theirs.layers[0].eval()(tx, **{"src_mask" if k == "mask" else k: v for k, v in t_options.items()}),
         "a layer's output in eval mode")


@pytest.mark.parametrize("cls", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("dim, shape", [(0, (0, 3)), (-1, (2, 0)), (1, (0, 4, 2))])
def test_softmax_along_or_beside_an_empty_axis_as_torch(cls, dim, shape):
    ours = getattr(nn, cls)(dim)
    x = np.zeros(shape)
    with np.errstate(all="raise"):
        out = ours(x)
        dx = ours.backward(np.zeros_like(out))
    tx = torch.tensor(x, requires_grad=True)
    t_out = getattr(torch.nn, cls)(dim)(tx)
    t_out.sum().backward()
    same(out, t_out, "output")
    same(dx, tx.grad, "dJ/dx")


@pytest.mark.parametrize("padding_idx", [None, 1])
def test_embedding_takes_an_empty_batch_as_torch(padding_idx):
    ours = nn.Embedding(5, 3, padding_idx=padding_idx, rng=0)
    theirs = torch.nn.Embedding(5, 3, padding_idx=padding_idx, dtype=torch.float64)
    to_torch(ours, theirs)
    idx = np.zeros((0, 4), dtype=np.int64)
    out = ours(idx)
    assert ours.backward(np.zeros_like(out)) is None
    t_out = theirs(torch.tensor(idx))
    t_out.sum().backward()
    same(out, t_out, "output")
    same_param_grads(ours, theirs)
