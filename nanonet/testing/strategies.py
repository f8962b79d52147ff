"""Hypothesis strategies for nanonet, kept in one place.

Needs ``hypothesis`` (the ``test`` extra). Sizes are small on purpose: full
finite-difference checks cost two forwards per element.
"""

import numpy as np
from hypothesis import strategies as st

SEEDS = st.integers(min_value=0, max_value=2**32 - 1)
BATCH = st.integers(min_value=1, max_value=16)
FEATURES = st.integers(min_value=1, max_value=16)


@st.composite
def arrays(draw, shape, *, low=-2.0, high=2.0, away_from_zero=0.0):
    """A float64 array of ``shape`` drawn via a seed (fast for large shapes).

    ``away_from_zero`` keeps every value at least that far from 0 (for
    ReLU-like kinks), by pushing small values out to +-``away_from_zero``.
    """
    gen = np.random.default_rng(draw(SEEDS))
    x = gen.uniform(low, high, size=shape)
    if away_from_zero:
        small = np.abs(x) < away_from_zero
        x[small] = np.copysign(away_from_zero, x[small])
    return x


@st.composite
def linear_cases(draw):
    """``(in_features, out_features, batch, bias, seed)`` for a Linear layer."""
    return draw(FEATURES), draw(FEATURES), draw(BATCH), draw(st.booleans()), draw(SEEDS)


@st.composite
def mlp_widths(draw, min_layers=1, max_layers=3):
    """Widths ``[in, h1, ..., out]`` of a small MLP."""
    n = draw(st.integers(min_layers, max_layers))
    return [draw(FEATURES) for _ in range(n + 1)]


def _builtin_factories():
    """Layers that keep the width: ``name -> (features -> layer)``."""
    import nanonet as nn

    return {
        "ReLU": lambda f, s: nn.ReLU(),
        "LeakyReLU": lambda f, s: nn.LeakyReLU(0.1),
        "Tanh": lambda f, s: nn.Tanh(),
        "Sigmoid": lambda f, s: nn.Sigmoid(),
        "GELU": lambda f, s: nn.GELU(),
        "Softplus": lambda f, s: nn.Softplus(),
        "ELU": lambda f, s: nn.ELU(),
        "Identity": lambda f, s: nn.Identity(),
        "LayerNorm": lambda f, s: nn.LayerNorm(f),
        "BatchNorm1d": lambda f, s: nn.BatchNorm1d(f),
        "Dropout": lambda f, s: nn.Dropout(0.2, rng=s),
    }


def _input_features(layer):
    for attr in ("in_features", "features"):
        value = getattr(layer, attr, None)
        if isinstance(value, (int, np.integer)):
            return int(value)
    children = layer.children() if hasattr(layer, "children") else []
    return _input_features(children[0]) if children else None


@st.composite
def layer_inputs(draw, layer, *, batch=None, low=-2.0, high=2.0):
    """A float64 input for ``layer``: ``(N, in_features)`` when the layer
    (or its first child) says its width (``in_features`` or ``features``),
    else ``(N, F)`` for a drawn F. BatchNorm gets at least 2 rows.
    """
    n = draw(batch if batch is not None else BATCH)
    if not getattr(layer, "batch_independent", False):
        n = max(n, 2)
    features = _input_features(layer)
    if features is None:
        features = draw(FEATURES)
    return draw(arrays((n, features), low=low, high=high))


@st.composite
def layer_stacks(draw, *, min_layers=1, max_layers=4, kinds=None):
    """A random ``Sequential`` of Linear layers and width-keeping layers, and an input for it.

    Returns ``(model, x)``; every Linear is seeded from the draw, so the
    example is reproducible. ``kinds`` restricts the non-Linear layers to
    those names (default: every built-in one).
    """
    import nanonet as nn

    factories = _builtin_factories()
    names = sorted(kinds or factories)
    width = draw(FEATURES)
    first = width
    layers = []
    for _ in range(draw(st.integers(min_layers, max_layers))):
        if draw(st.booleans()):
            out = draw(FEATURES)
            layers.append(nn.Linear(width, out, rng=draw(SEEDS), init="glorot"))
            width = out
        else:
            layers.append(factories[draw(st.sampled_from(names))](width, draw(SEEDS)))
    model = nn.Sequential(*layers)
    n = max(2, draw(BATCH))
    return model, draw(arrays((n, first)))


@st.composite
def conv2d_cases(draw, max_size=7):
    """``(Conv2d keyword arguments, input shape)`` for a small, valid convolution (any padding mode, groups)."""
    groups = draw(st.sampled_from([1, 1, 2]))
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    kw = dict(in_channels=groups * draw(st.integers(1, 2)), out_channels=groups * draw(st.integers(1, 2)),
              kernel_size=kernel, stride=stride, dilation=dilation, groups=groups, bias=draw(st.booleans()),
              padding_mode=draw(st.sampled_from(["zeros", "reflect", "replicate", "circular"])))
    sizes = []
    for k, s, d in zip(kernel, stride, dilation):
        span = d * (k - 1) + 1
        sizes.append(draw(st.integers(max(span, 2), max(span, max_size))))
    kw["padding"] = tuple(draw(st.integers(0, min(1, n - 1))) for n in sizes)
    return kw, (draw(st.integers(1, 3)), kw["in_channels"], *sizes)


@st.composite
def pool2d_cases(draw, max_size=7):
    """``(pooling keyword arguments, input shape)`` for MaxPool2d/AvgPool2d (padding at most half the kernel)."""
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    kw = dict(kernel_size=kernel, stride=(draw(st.integers(1, 3)), draw(st.integers(1, 3))),
              padding=tuple(draw(st.integers(0, k // 2)) for k in kernel), ceil_mode=draw(st.booleans()))
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 3)),
             draw(st.integers(kernel[0], max_size)), draw(st.integers(kernel[1], max_size)))
    return kw, shape


@st.composite
def recurrent_cases(draw, *, max_steps=6):
    """``(cell, kwargs, steps, batch, input_size, hidden_size, seed)`` for a small RNN, LSTM or GRU.

    ``cell`` is ``"RNN"``, ``"LSTM"`` or ``"GRU"``; ``kwargs`` draws
    ``num_layers``, ``bidirectional``, ``batch_first``, ``bias`` (and
    ``nonlinearity`` for an RNN).
    """
    cell = draw(st.sampled_from(["RNN", "LSTM", "GRU"]))
    kwargs = {"num_layers": draw(st.integers(1, 2)), "bidirectional": draw(st.booleans()),
              "batch_first": draw(st.booleans()), "bias": draw(st.booleans())}
    if cell == "RNN":
        kwargs["nonlinearity"] = draw(st.sampled_from(["tanh", "relu"]))
    return (cell, kwargs, draw(st.integers(1, max_steps)), draw(st.integers(1, 3)), draw(st.integers(1, 4)),
            draw(st.integers(1, 4)), draw(SEEDS))


@st.composite
def attention_cases(draw):
    """``(embed_dim, num_heads, batch, query_len, key_len, seed)`` for a small MultiheadAttention."""
    heads = draw(st.integers(1, 3))
    return (heads * draw(st.integers(1, 3)), heads, draw(st.integers(1, 3)), draw(st.integers(1, 5)),
            draw(st.integers(1, 5)), draw(SEEDS))


@st.composite
def key_padding_masks(draw, batch, keys):
    """A boolean ``(batch, keys)`` mask (True = padding), any row possibly all True."""
    gen = np.random.default_rng(draw(SEEDS))
    return gen.random((batch, keys)) < draw(st.sampled_from([0.0, 0.3, 1.0]))
