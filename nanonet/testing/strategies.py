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
