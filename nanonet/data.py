"""Mini-batches: ``batches(x, y, batch_size)``."""

import numbers

import numpy as np

from ._rng import as_generator


def check_pair(caller, x, y):
    """``x`` and ``y`` are ndarrays with the same, non-zero number of samples (rows)."""
    for name, arr in (("x", x), ("y", y)):
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"{caller} expected {name} to be a numpy.ndarray, got {type(arr).__name__}")
        if arr.ndim == 0:
            raise ValueError(f"{caller} expected {name} with a first (sample) axis, got a 0-d array")
    if len(x) != len(y):
        raise ValueError(f"{caller} expected x and y to have the same number of samples, got {len(x)} and {len(y)}")
    if len(x) == 0:
        raise ValueError(f"{caller} got empty data: x and y have 0 samples")


def check_batch_size(caller, batch_size):
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"{caller} expected batch_size to be a positive int, got {batch_size!r}")


def batches(x, y, batch_size, shuffle=True, rng=None, *, drop_last=False):
    """Yield ``(x_batch, y_batch)`` pairs that cover the data once (one epoch).

    With ``shuffle=True`` the rows are put in a random order drawn from
    ``rng`` (an int seed or a ``numpy.random.Generator``; a Generator is
    advanced, so successive epochs differ), one permutation per call, each
    batch gathered into new arrays; otherwise in their order, as views.

    **The last partial batch.** When ``batch_size`` does not divide the number
    of samples ``N``, the last batch is smaller (``N % batch_size`` rows) and
    is yielded, so every sample is used once per epoch; ``drop_last=True``
    drops it instead (as ``torch.utils.data.DataLoader``). A ``batch_size``
    larger than ``N`` gives one batch of all ``N`` rows.

    Shape:
        - x: ``(N, ...)``, y: ``(N, ...)`` -> batches ``(B, ...)`` with ``B <= batch_size``.

    Example:
        >>> import numpy as np
        >>> x, y = np.arange(10.0).reshape(5, 2), np.arange(5.0).reshape(5, 1)
        >>> [len(xb) for xb, yb in batches(x, y, batch_size=2, shuffle=False)]
        [2, 2, 1]
        >>> [len(xb) for xb, yb in batches(x, y, batch_size=2, rng=0, drop_last=True)]
        [2, 2]
    """
    check_pair("batches", x, y)
    check_batch_size("batches", batch_size)
    n = len(x)
    stop = n - n % batch_size if drop_last else n
    if shuffle:  # each batch gathered on its own: no copy of the whole data set per epoch
        order = as_generator(rng).permutation(n)
        for start in range(0, stop, batch_size):
            rows = order[start:start + batch_size]
            yield x.take(rows, axis=0), y.take(rows, axis=0)
        return
    for start in range(0, stop, batch_size):
        yield x[start:start + batch_size], y[start:start + batch_size]


def num_batches(n, batch_size, drop_last=False):
    """How many batches ``batches`` yields for ``n`` samples."""
    return n // batch_size if drop_last else -(-n // batch_size)
