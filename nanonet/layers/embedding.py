"""``Embedding``: a lookup table from integer indices to learned vectors."""

import numpy as np
from scipy import sparse

from .._checks import check_number, shape_text, who
from .._rng import as_generator
from ..module import Module, Parameter

_ADD_AT_LIMIT = 4096  # gradient elements below which np.add.at beats building a sparse matrix


def scatter_rows(target, index, rows):
    """``target[index[k]] += rows[k]`` for every k, repeated indices adding up.

    ``index``: (N,) ints; ``rows``: (N, D). The fastest of three equivalent
    ways for the size (measured; see docs/sequence.md): ``np.add.at`` for a
    small gradient; else one sparse (N, V) one-hot matrix product, summing
    the rows of each index in a single pass, restricted to the indices that
    occur when the table is much larger than the batch.

    >>> t = np.zeros((3, 2))
    >>> scatter_rows(t, np.array([2, 0, 2]), np.ones((3, 2)))
    >>> t
    array([[1., 1.],
           [0., 0.],
           [2., 2.]])
    """
    n = index.shape[0]
    if n * rows.shape[1] < _ADD_AT_LIMIT:
        np.add.at(target, index, rows)
        return
    ones = np.ones(n, dtype=rows.dtype)
    if target.shape[0] <= 4 * n:
        onehot = sparse.csr_matrix((ones, index, np.arange(n + 1)), shape=(n, target.shape[0]))
        target += onehot.T @ rows
        return
    used, where = np.unique(index, return_inverse=True)
    onehot = sparse.csr_matrix((ones, where.reshape(-1), np.arange(n + 1)), shape=(n, len(used)))
    target[used] += onehot.T @ rows


class Embedding(Module):
    """A table of ``num_embeddings`` vectors of size ``embedding_dim``; an index picks a row.

    As ``torch.nn.Embedding(num_embeddings, embedding_dim, padding_idx=None)``:
    the weight is ``(num_embeddings, embedding_dim)`` drawn from
    ``Normal(0, 1)``; the row ``padding_idx`` (if given) starts at zero and
    gets no gradient, so it stays zero in training. A torch ``state_dict``
    (key ``weight``) loads as it is.

    The input is an array of integer indices of any shape (signed or
    unsigned ints; floats are a ``TypeError``, never rounded), each in
    ``[0, num_embeddings)`` (else ``ValueError``, naming the layer, before
    anything changes). Indices have no gradient: ``backward`` adds into
    ``weight.grad`` (repeated indices add up) and returns ``None``.

    Args:
        num_embeddings: size of the table (the vocabulary).
        embedding_dim: size of each vector.
        padding_idx: an index whose row is zero and never trained (negative
            counts from the end, as in torch), or None.
        rng: int seed or ``numpy.random.Generator`` for the initial weight.
        dtype: ``np.float64`` (default) or ``np.float32``.

    Shape:
        - weight: ``(num_embeddings, embedding_dim)``
        - x: ``(*)`` integers -> y: ``(*, embedding_dim)``

    Example:
        >>> import numpy as np
        >>> import nanonet as nn
        >>> emb = nn.Embedding(10, 3, padding_idx=0, rng=0)
        >>> emb
        Embedding(10, 3, padding_idx=0)
        >>> y = emb(np.array([[0, 2, 2], [9, 1, 0]]))
        >>> y.shape, float(np.abs(y[0, 0]).sum())
        ((2, 3, 3), 0.0)
        >>> emb.backward(np.ones_like(y)) is None, emb.weight.grad[2].tolist()
        (True, [2.0, 2.0, 2.0])
    """

    input_kinds = "iu"
    batch_independent = True

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, rng=None, dtype=np.float64):
        self.num_embeddings = check_number("Embedding", "num_embeddings", num_embeddings, low=1, integer=True)
        self.embedding_dim = check_number("Embedding", "embedding_dim", embedding_dim, low=1, integer=True)
        if padding_idx is not None:
            padding_idx = check_number("Embedding", "padding_idx", padding_idx, low=-self.num_embeddings,
                                       high=self.num_embeddings, high_open=True, integer=True)
            padding_idx %= self.num_embeddings
        self.padding_idx = padding_idx
        dtype = np.dtype(dtype)
        if dtype.kind != "f":
            raise TypeError(f"Embedding expected a floating-point dtype, got {dtype}")
        weight = as_generator(rng).standard_normal((self.num_embeddings, self.embedding_dim)).astype(dtype)
        if padding_idx is not None:
            weight[padding_idx] = 0
        self.weight = Parameter(weight)
        self._index = None

    def forward(self, x):
        """x: integer indices of any shape -> their rows, ``x.shape + (embedding_dim,)``."""
        if x.size and (x.min() < 0 or x.max() >= self.num_embeddings):
            bad = x[(x < 0) | (x >= self.num_embeddings)]
            raise ValueError(f"{who(self)} expected indices in [0, {self.num_embeddings}), got "
                             f"{bad.size} out of range (e.g. {bad.flat[0]}) in an input of shape {shape_text(x.shape)}")
        self._index = x
        return self.weight.value[x]

    def backward(self, grad_out):
        """grad_out: ``x.shape + (embedding_dim,)`` -> None; adds into ``weight.grad``."""
        index = self._index.reshape(-1).astype(np.intp, copy=False)
        rows = grad_out.reshape(-1, self.embedding_dim)
        if self.padding_idx is not None:
            keep = index != self.padding_idx
            index, rows = index[keep], rows[keep]
        scatter_rows(self.weight.grad, index, rows)
        return None

    def output_shape(self, shape):
        return tuple(shape) + (self.embedding_dim,)

    def extra_repr(self):
        text = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            text += f", padding_idx={self.padding_idx}"
        if self.weight.value.dtype != np.float64:
            text += f", dtype={self.weight.value.dtype}"
        return text
