"""``SyncBatchNorm``: batch normalization whose batch statistics span every rank.

A plain ``BatchNorm1d`` in data-parallel training normalizes each rank's
share of the batch by that share's statistics (as torch's does): training
then differs from one process. ``SyncBatchNorm`` sums the statistics over the
ranks, so each feature is normalized by the mean and variance of the whole
global batch, and the running statistics are those of the global batch:
training equals single-process training (to rounding). With one process it
is exactly ``BatchNorm1d``.

Cost per layer and step: two ``Allreduce`` of ``features + 1`` and
``features`` numbers in forward (the mean, then the variance about it: the
same two passes as one process, so no loss of precision), one of
``2 * features`` in backward.

The statistics go through two hooks of the batch-norm class,
``_batch_moments(x)`` and ``_grad_means(dxhat, xhat)``; :class:`SyncStats`
replaces them and reduces over every axis but the channel axis 1, so
``BatchNorm2d``, whose training statistics use the same two hooks, becomes
``SyncBatchNorm2d(SyncStats, BatchNorm2d)`` with nothing else to write.
"""

import numpy as np

from ..layers.normalization import BatchNorm1d, BatchNorm2d
from . import runtime


def _axes(x):
    """Every axis but the channels (axis 1): ``(0,)`` for ``(N, C)``, ``(0, 2, 3)`` for ``(N, C, H, W)``."""
    return (0,) + tuple(range(2, x.ndim))


class SyncStats:
    """Mixin over a batch-norm class: batch statistics summed over the ranks of ``self.group``."""

    #: the trainer must run forward and backward on every rank, even one whose share is empty.
    collective = True
    group = None

    def _group(self):
        return self.group or runtime.comm()

    @property
    def _channels(self):
        return self.weight.value.shape[0]

    def output_shape(self, shape):
        """The feature shape out for ``shape`` in (``nn.Graph`` asks; a probe forward would be a collective)."""
        shape = tuple(shape)
        if shape[:1] != (self._channels,) or len(shape) != 1 + len(self._spatial):
            dims = ", ".join((str(self._channels),) + self._spatial)
            raise ValueError(f"{self!r} expected inputs of shape (N, {dims}), got feature shape {shape}")
        return shape

    def _batch_moments(self, x):
        group, axes, channels = self._group(), _axes(x), self._channels
        keep = x.ndim > 2
        local = np.empty(channels + 1, dtype=x.dtype)
        local[:-1] = x.sum(axis=axes)
        local[-1] = x.size // channels
        group.allreduce_sum(local)
        n = int(round(float(local[-1])))
        if n < 2:
            raise ValueError(f"{self!r} expected at least 2 rows over all {group.size} rank(s) in training mode, "
                             f"got {n} (this rank's input has shape {x.shape})")
        self._count = n
        mean = local[:-1] / n
        centered = x - (mean.reshape(1, -1, *[1] * (x.ndim - 2)) if keep else mean)
        var = (centered * centered).sum(axis=axes)
        group.allreduce_sum(var)
        var /= n
        if keep:
            shape = (1, -1) + (1,) * (x.ndim - 2)
            mean, var = mean.reshape(shape), var.reshape(shape)
        return mean, centered, var, n

    def _grad_means(self, dxhat, xhat):
        axes, f = _axes(dxhat), self._channels
        sums = np.empty(2 * f, dtype=dxhat.dtype)
        sums[:f] = dxhat.sum(axis=axes)
        sums[f:] = (dxhat * xhat).sum(axis=axes)
        self._group().allreduce_sum(sums)
        sums /= self._count
        if dxhat.ndim > 2:
            shape = (1, -1) + (1,) * (dxhat.ndim - 2)
            return sums[:f].reshape(shape), sums[f:].reshape(shape)
        return sums[:f], sums[f:]


class SyncBatchNorm(SyncStats, BatchNorm1d):
    """``BatchNorm1d`` with batch statistics over all ranks (as ``torch.nn.SyncBatchNorm``).

    Use it where ``BatchNorm1d`` would go in a model trained with
    ``fit(..., distributed=True)``; every rank must call it in each step (the
    trainer runs an empty forward on a rank whose share of a batch is empty).
    In eval mode, and with one process, it is ``BatchNorm1d``. The state
    (``weight``, ``bias``, ``running_mean``, ``running_var``) is the same, so
    checkpoints load either way.

    Args:
        features, eps, momentum, dtype: as ``BatchNorm1d``.
        group: the communicator (default: ``nanonet.distributed.init()``'s, at the first forward).

    Shape:
        - x: ``(N, features)`` per rank (N may be 0 or 1; the global N must be >= 2 in training)
          -> y: ``(N, features)``

    Example:
        >>> import numpy as np
        >>> from nanonet import distributed as dist
        >>> bn = dist.SyncBatchNorm(2)
        >>> bn(np.array([[1.0, 10.0], [3.0, 30.0]])).round(3)
        array([[-1., -1.],
               [ 1.,  1.]])
        >>> bn
        SyncBatchNorm(2, eps=1e-05, momentum=0.1)
    """

    _spatial = ()

    def __init__(self, features, eps=1e-5, momentum=0.1, dtype=np.float64, *, group=None):
        super().__init__(features, eps=eps, momentum=momentum, dtype=dtype)
        self.group = group


class SyncBatchNorm2d(SyncStats, BatchNorm2d):
    """``BatchNorm2d`` with batch statistics over all ranks: the per-channel statistics of the global batch.

    As :class:`SyncBatchNorm`, for ``(N, C, H, W)`` inputs (torch's single
    ``SyncBatchNorm`` class takes any rank; nanonet keeps one class per layout,
    as its batch-norm layers do).

    Shape:
        - x: ``(N, num_features, H, W)`` per rank -> the same shape.

    Example:
        >>> import numpy as np
        >>> from nanonet import distributed as dist
        >>> bn = dist.SyncBatchNorm2d(2)
        >>> y = bn(np.random.default_rng(0).normal(size=(3, 2, 2, 2)))
        >>> bool(np.allclose(y.mean(axis=(0, 2, 3)), 0))
        True
    """

    _spatial = ("H", "W")

    def __init__(self, num_features, eps=1e-5, momentum=0.1, *, dtype=np.float64, group=None):
        super().__init__(num_features, eps=eps, momentum=momentum, dtype=dtype)
        self.group = group


_SYNC = {BatchNorm1d: SyncBatchNorm, BatchNorm2d: SyncBatchNorm2d}


def convert_sync_batchnorm(model):
    """Turn every ``BatchNorm1d`` (``BatchNorm2d``) inside ``model`` into a :class:`SyncBatchNorm`
    (:class:`SyncBatchNorm2d`), in place; returns ``model``.

    The instances stay the same objects (only their class changes), so
    containers, optimizers and checkpoints that refer to them keep working.
    Other subclasses of the batch-norm classes are refused.

    Example:
        >>> import nanonet as nn
        >>> from nanonet import distributed as dist
        >>> model = dist.convert_sync_batchnorm(nn.Sequential(nn.Linear(3, 4, rng=0), nn.BatchNorm1d(4)))
        >>> type(model[1]).__name__
        'SyncBatchNorm'
    """
    for module in model.modules():
        if type(module) in _SYNC:
            module.__class__ = _SYNC[type(module)]
            module.group = None
        elif isinstance(module, tuple(_SYNC)) and not isinstance(module, SyncStats):
            base = next(cls.__name__ for cls in _SYNC if isinstance(module, cls))
            raise TypeError(f"convert_sync_batchnorm: {type(module).__name__} is a subclass of {base} that it "
                            f"does not know how to convert; use SyncStats in that class")
    return model
