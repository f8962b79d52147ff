"""Random-number plumbing: every random thing in nanonet takes ``rng=``."""

import numpy as np


def as_generator(rng=None):
    """Return a ``numpy.random.Generator`` for ``rng``.

    ``rng`` may be an int seed (0 is a seed like any other), an existing
    ``Generator`` (returned as is, so draws advance it), or ``None`` for fresh
    OS entropy. nanonet never touches numpy's global random state.

    >>> a = as_generator(0).standard_normal(3)
    >>> b = as_generator(0).standard_normal(3)
    >>> bool((a == b).all())
    True
    """
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None:
        return np.random.default_rng()
    if isinstance(rng, (bool, np.bool_)) or not isinstance(rng, (int, np.integer)):
        raise TypeError(
            f"rng must be an int seed, a numpy.random.Generator or None, got {type(rng).__name__}"
        )
    if rng < 0:
        raise ValueError(f"rng must be an int seed >= 0, a numpy.random.Generator or None, got {rng}")
    return np.random.default_rng(int(rng))
