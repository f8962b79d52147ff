"""Dropout: inverted dropout with an explicit random generator."""

import numpy as np

from .._checks import check_number, shape_text, who
from .._rng import as_generator
from ..module import Module


class Dropout(Module):
    """Inverted dropout: in training, each element is zeroed with probability
    ``p`` and the survivors are scaled by ``1 / (1 - p)``; in eval mode it is
    the identity.

    Args:
        p: the drop probability, in [0, 1).
        rng: int seed or ``numpy.random.Generator`` for the masks. Two layers
            built with the same seed draw the same masks.

    **Checkable.** Set ``frozen = True`` and every later forward reuses the
    last mask drawn instead of drawing a new one, so the function is fixed
    and finite differences can be taken. The gradient checker does this on
    its private copy. A frozen mask drawn for ``(N, ...)`` is reused for an
    input of ``(k * N, ...)`` (k stacked copies of the batch, as the checker
    builds them), tiled along the first axis.

    Shape:
        - x: any shape ``(N, ...)`` -> y: the same shape and dtype.

    Example:
        >>> import numpy as np
        >>> import nanonet as nn
        >>> drop = nn.Dropout(0.5, rng=0)
        >>> y = drop(np.ones((2, 4)))
        >>> sorted(set(y.ravel().tolist()))
        [0.0, 2.0]
        >>> drop.eval()(np.ones((1, 2)))
        array([[1., 1.]])
    """

    batch_independent = True

    def __init__(self, p=0.5, rng=None):
        self.p = check_number("Dropout", "p", p, low=0, high=1, high_open=True)
        self.rng = as_generator(rng)
        self.frozen = False
        self._mask = None
        self._active = None

    def _draw(self, x):
        if self.frozen and self._mask is not None:
            mask = self._mask
            n = mask.shape[0]
            if mask.shape[1:] == x.shape[1:] and n and x.shape[0] % n == 0:
                return np.tile(mask, (x.shape[0] // n,) + (1,) * (x.ndim - 1)).astype(x.dtype, copy=False)
        keep = self.rng.random(x.shape) >= self.p
        self._mask = keep.astype(x.dtype) * (1 / (1 - self.p))
        return self._mask

    def forward(self, x):
        """x: (N, ...) -> the same shape; the identity in eval mode."""
        if not self.training or self.p == 0:
            self._active = None
            return x
        self._active = self._draw(x)
        return x * self._active

    def backward(self, grad_out):
        if self._active is None:
            return grad_out
        return grad_out * self._active

    def extra_repr(self):
        return f"p={self.p:g}"


class Dropout2d(Dropout):
    """Channel dropout for ``(N, C, H, W)`` inputs: in training each whole channel of each sample is zeroed
    with probability ``p`` and the survivors are scaled by ``1 / (1 - p)`` (as ``torch.nn.Dropout2d``);
    in eval mode it is the identity.

    Neighbouring pixels of a feature map are strongly correlated, so dropping
    single pixels (``Dropout``) regularises little; dropping whole maps does.
    ``rng`` and ``frozen`` work as in ``Dropout`` (the mask is ``(N, C, 1, 1)``).

    Shape:
        - x: ``(N, C, H, W)`` -> y: the same shape and dtype.

    Example:
        >>> import numpy as np
        >>> import nanonet as nn
        >>> y = nn.Dropout2d(0.5, rng=0)(np.ones((2, 3, 2, 2)))
        >>> [sorted(set(y[n, c].ravel().tolist())) for n in range(2) for c in range(3)]
        [[2.0], [0.0], [0.0], [0.0], [2.0], [2.0]]
    """

    def __init__(self, p=0.5, rng=None):
        super().__init__(check_number("Dropout2d", "p", p, low=0, high=1, high_open=True), rng)

    def _draw(self, x):
        mask = self._mask
        if self.frozen and mask is not None:
            n = mask.shape[0]
            if mask.shape[1] == x.shape[1] and n and x.shape[0] % n == 0:
                return np.tile(mask, (x.shape[0] // n, 1, 1, 1)).astype(x.dtype, copy=False)
        keep = self.rng.random(x.shape[:2] + (1, 1)) >= self.p
        self._mask = keep.astype(x.dtype) * (1 / (1 - self.p))
        return self._mask

    def forward(self, x):
        """x: (N, C, H, W) -> the same shape; the identity in eval mode."""
        if x.ndim != 4:
            raise ValueError(f"{who(self)} expected input of shape (N, C, H, W), got {shape_text(x.shape)}")
        return super().forward(x)

    def output_shape(self, shape):
        if len(shape) != 3:
            raise ValueError(f"{who(self)} expected a feature shape (C, H, W), got {tuple(shape)}")
        return tuple(shape)
