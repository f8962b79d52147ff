"""Mini-batches: ``batches(x, y, batch_size)``."""

import numpy as np

from ._checks import check_number
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
    return check_number(caller, "batch_size", batch_size, low=1, integer=True)


def batches(x, y, batch_size, shuffle=True, rng=None, *, drop_last=False, rank=0, world_size=1):
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

    **Sharding** (data-parallel training, see ``nanonet.distributed``): with
    ``world_size > 1`` each call yields only rank ``rank``'s share of every
    global batch: the rows :func:`shard_bounds` gives it, a disjoint,
    contiguous part of the batch. Every rank must pass the same data and the
    same ``rng`` seed, so that all draw the same order; the shares of one
    batch together are exactly the batch a single process would get. A share
    may be empty when the batch has fewer rows than there are ranks.

    Shape:
        - x: ``(N, ...)``, y: ``(N, ...)`` -> batches ``(B, ...)`` with ``B <= batch_size``.

    Example:
        >>> import numpy as np
        >>> x, y = np.arange(10.0).reshape(5, 2), np.arange(5.0).reshape(5, 1)
        >>> [len(xb) for xb, yb in batches(x, y, batch_size=2, shuffle=False)]
        [2, 2, 1]
        >>> [len(xb) for xb, yb in batches(x, y, batch_size=2, rng=0, drop_last=True)]
        [2, 2]
        >>> [xb[:, 0].tolist() for xb, yb in batches(x, y, batch_size=3, shuffle=False, rank=1, world_size=2)]
        [[4.0], [8.0]]
    """
    check_pair("batches", x, y)
    check_batch_size("batches", batch_size)
    check_rank("batches", rank, world_size)
    n = len(x)
    if world_size > 1:
        yield from _shards(x, y, batch_size, shuffle, rng, drop_last, rank, world_size)
        return
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


def check_rank(caller, rank, world_size):
    for name, value, low in (("world_size", world_size, 1), ("rank", rank, 0)):
        check_number(caller, name, value, low=low, integer=True)
    if rank >= world_size:
        raise ValueError(f"{caller} expected 0 <= rank < world_size, got rank={rank}, world_size={world_size}")


def shard_bounds(n, rank, world_size):
    """Rank ``rank``'s rows ``[start, stop)`` of a batch of ``n`` rows split over ``world_size`` ranks.

    The shares are contiguous and differ by at most one row: the first
    ``n % world_size`` ranks take one more (as ``numpy.array_split``).

    Example:
        >>> [shard_bounds(10, r, 3) for r in range(3)]
        [(0, 4), (4, 7), (7, 10)]
    """
    base, extra = divmod(n, world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + (rank < extra)


def _shards(x, y, batch_size, shuffle, rng, drop_last, rank, world_size):
    """This rank's share of each batch; only its rows are copied (the permutation is drawn in full)."""
    n = len(x)
    order = as_generator(rng).permutation(n) if shuffle else None
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        lo, hi = shard_bounds(min(batch_size, n - start), rank, world_size)
        if order is None:
            yield x[start + lo:start + hi], y[start + lo:start + hi]
        else:
            rows = order[start + lo:start + hi]
            yield np.take(x, rows, axis=0), np.take(y, rows, axis=0)
