"""Normalization layers: ``LayerNorm`` (per row) and ``BatchNorm1d`` (per feature)."""

import numpy as np

from .._checks import check_array, check_features, check_number, shape_text, who
from ..module import Buffer, Module, Parameter


def _check_config(name, features, eps, dtype):
    features = check_number(name, "features", features, low=1, integer=True)
    eps = check_number(name, "eps", eps, low=0, low_open=True)
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"{name} expected a floating-point dtype, got {dtype}")
    return features, eps, dtype


def _normalized_backward(dxhat, xhat, rstd, axis):
    """dJ/dx of ``xhat = (x - mean) * rstd`` along ``axis``, given dJ/dxhat."""
    mean_d = dxhat.mean(axis=axis, keepdims=True)
    mean_dx = (dxhat * xhat).mean(axis=axis, keepdims=True)
    return rstd * (dxhat - mean_d - xhat * mean_dx)


class LayerNorm(Module):
    """Normalizes each row over its features, then scales and shifts:
    ``y = (x - mean_row) / sqrt(var_row + eps) * weight + bias`` (biased
    variance, as ``torch.nn.LayerNorm(features)``).

    Row i depends only on row i: ``batch_independent`` is True.

    Shape:
        - weight, bias: ``(features,)`` (ones and zeros at first)
        - x: ``(N, features)`` -> y: ``(N, features)``

    Example:
        >>> import numpy as np
        >>> import nanonet as nn
        >>> ln = nn.LayerNorm(3)
        >>> ln(np.array([[1.0, 2.0, 3.0]])).round(3)
        array([[-1.225,  0.   ,  1.225]])
    """

    batch_independent = True

    def __init__(self, features, eps=1e-5, dtype=np.float64):
        self.features, self.eps, dtype = _check_config("LayerNorm", features, eps, dtype)
        self.weight = Parameter(np.ones(self.features, dtype=dtype))
        self.bias = Parameter(np.zeros(self.features, dtype=dtype))
        self._cache = None

    def forward(self, x):
        """x: (N, features) -> (N, features)."""
        check_features(self, x, self.features, dtype=self.weight.value.dtype)
        centered = x - x.mean(axis=1, keepdims=True)
        var = (centered * centered).mean(axis=1, keepdims=True)
        rstd = 1 / np.sqrt(var + self.eps)
        xhat = centered * rstd
        self._cache = (xhat, rstd)
        return xhat * self.weight.value + self.bias.value

    def backward(self, grad_out):
        """grad_out: (N, features) -> dJ/dx: (N, features)."""
        xhat, rstd = self._cache
        self.weight.grad += (grad_out * xhat).sum(axis=0)
        self.bias.grad += grad_out.sum(axis=0)
        return _normalized_backward(grad_out * self.weight.value, xhat, rstd, axis=1)

    def extra_repr(self):
        return f"{self.features}, eps={self.eps:g}"


class BatchNorm1d(Module):
    """Normalizes each feature over the batch, then scales and shifts.

    In training mode it uses the batch's mean and biased variance and
    updates the running statistics (``running_var`` from the unbiased
    variance), exactly as ``torch.nn.BatchNorm1d``:
    ``running = (1 - momentum) * running + momentum * batch_stat``. In eval
    mode it uses the running statistics, and forward changes nothing.

    The running statistics are ``nn.Buffer``s, so they are in
    ``state_dict()`` (``running_mean``, ``running_var``) and follow ``to()``.

    Row i of the output depends on the whole batch in training, so
    ``batch_independent`` is False there (and True in eval mode).

    Shape:
        - weight, bias, running_mean, running_var: ``(features,)``
        - x: ``(N, features)``, N >= 2 in training -> y: ``(N, features)``

    Example:
        >>> import numpy as np
        >>> import nanonet as nn
        >>> bn = nn.BatchNorm1d(2)
        >>> bn(np.array([[1.0, 10.0], [3.0, 30.0]])).round(3)
        array([[-1., -1.],
               [ 1.,  1.]])
        >>> bn.running_mean.value
        array([0.2, 2. ])
        >>> sorted(bn.state_dict())
        ['bias', 'running_mean', 'running_var', 'weight']
    """

    def __init__(self, features, eps=1e-5, momentum=0.1, dtype=np.float64):
        self.features, self.eps, dtype = _check_config("BatchNorm1d", features, eps, dtype)
        self.momentum = check_number("BatchNorm1d", "momentum", momentum, low=0, high=1)
        self.weight = Parameter(np.ones(self.features, dtype=dtype))
        self.bias = Parameter(np.zeros(self.features, dtype=dtype))
        self.running_mean = Buffer(np.zeros(self.features, dtype=dtype))
        self.running_var = Buffer(np.ones(self.features, dtype=dtype))
        self._cache = None

    @property
    def batch_independent(self):
        return not self.training

    def forward(self, x):
        """x: (N, features) -> (N, features)."""
        check_features(self, x, self.features, dtype=self.weight.value.dtype)
        if not self.training:
            rstd = 1 / np.sqrt(self.running_var.value + self.eps)
            xhat = (x - self.running_mean.value) * rstd
            self._cache = (xhat, rstd, False)
            return xhat * self.weight.value + self.bias.value
        mean, centered, var, n = self._batch_moments(x)
        rstd = 1 / np.sqrt(var + self.eps)
        xhat = centered * rstd
        m = self.momentum
        self.running_mean.value *= 1 - m
        self.running_mean.value += m * mean
        self.running_var.value *= 1 - m
        self.running_var.value += (m * n / (n - 1)) * var
        self._cache = (xhat, rstd, True)
        return xhat * self.weight.value + self.bias.value

    def backward(self, grad_out):
        """grad_out: (N, features) -> dJ/dx: (N, features)."""
        xhat, rstd, batch_stats = self._cache
        self.weight.grad += (grad_out * xhat).sum(axis=0)
        self.bias.grad += grad_out.sum(axis=0)
        dxhat = grad_out * self.weight.value
        if not batch_stats:
            return dxhat * rstd
        mean_d, mean_dx = self._grad_means(dxhat, xhat)
        return rstd * (dxhat - mean_d - xhat * mean_dx)

    # The batch statistics, in two hooks that SyncBatchNorm (nanonet.distributed) takes over all ranks.
    def _batch_moments(self, x):
        """``(mean, x - mean, biased variance, row count)`` of the batch, per feature."""
        n = x.shape[0]
        if n < 2:
            raise ValueError(f"{self!r} expected at least 2 rows in training mode, got input of shape {x.shape}")
        mean = x.mean(axis=0)
        centered = x - mean
        return mean, centered, (centered * centered).mean(axis=0), n

    def _grad_means(self, dxhat, xhat):
        """The batch means of dJ/dxhat and of dJ/dxhat * xhat, per feature."""
        return dxhat.mean(axis=0), (dxhat * xhat).mean(axis=0)

    def extra_repr(self):
        return f"{self.features}, eps={self.eps:g}, momentum={self.momentum:g}"


class BatchNorm2d(Module):
    """Normalizes each channel of an ``(N, C, H, W)`` input over the batch and the pixels, then scales and shifts.

    The per-channel version of ``BatchNorm1d``, exactly as
    ``torch.nn.BatchNorm2d``: in training the statistics are the mean and the
    biased variance over ``N * H * W`` values per channel, and
    ``running = (1 - momentum) * running + momentum * batch_stat`` (the
    running variance from the unbiased variance); in eval mode the running
    statistics are used and nothing changes. ``weight``, ``bias``,
    ``running_mean`` and ``running_var`` have PyTorch's names, so a torch
    ``state_dict`` loads once its ``num_batches_tracked`` entry is dropped.

    Shape:
        - weight, bias, running_mean, running_var: ``(num_features,)``
        - x: ``(N, num_features, H, W)`` -> y: the same shape.

    Example:
        >>> import numpy as np
        >>> import nanonet as nn
        >>> bn = nn.BatchNorm2d(2)
        >>> y = bn(np.random.default_rng(0).normal(3.0, 2.0, size=(4, 2, 3, 3)))
        >>> bool(np.allclose(y.mean(axis=(0, 2, 3)), 0)), bool(np.allclose(y.var(axis=(0, 2, 3)), 1, rtol=1e-3))
        (True, True)
    """

    _axes = (0, 2, 3)

    def __init__(self, num_features, eps=1e-5, momentum=0.1, *, dtype=np.float64):
        name = type(self).__name__
        self.num_features = check_number(name, "num_features", num_features, low=1, integer=True)
        self.eps = check_number(name, "eps", eps, low=0, low_open=True)
        self.momentum = check_number(name, "momentum", momentum, low=0, high=1)
        dtype = np.dtype(dtype)
        if dtype.kind != "f":
            raise TypeError(f"{name} expected a floating-point dtype, got {dtype}")
        c = self.num_features
        self.weight = Parameter(np.ones(c, dtype=dtype))
        self.bias = Parameter(np.zeros(c, dtype=dtype))
        self.running_mean = Buffer(np.zeros(c, dtype=dtype))
        self.running_var = Buffer(np.ones(c, dtype=dtype))
        self._cache = None

    @property
    def batch_independent(self):
        return not self.training

    def output_shape(self, shape):
        if len(shape) != 3 or shape[0] != self.num_features:
            raise ValueError(f"{who(self)} expected a feature shape ({self.num_features}, H, W), got {tuple(shape)}")
        return tuple(shape)

    def forward(self, x):
        """x: (N, C, H, W) -> (N, C, H, W)."""
        check_array(self, x, dtype=self.weight.value.dtype)
        if x.ndim != 4 or x.shape[1] != self.num_features:
            raise ValueError(f"{who(self)} expected input of shape (N, {self.num_features}, H, W), "
                             f"got {shape_text(x.shape)}")
        column = (1, self.num_features, 1, 1)
        if not self.training:
            rstd = (1 / np.sqrt(self.running_var.value + self.eps)).reshape(column)
            xhat = (x - self.running_mean.value.reshape(column)) * rstd
            self._cache = (xhat, rstd, False)
            return xhat * self.weight.value.reshape(column) + self.bias.value.reshape(column)
        mean, centered, var, count = self._batch_moments(x)
        rstd = 1 / np.sqrt(var + self.eps)
        xhat = centered * rstd
        m = self.momentum
        self.running_mean.value *= 1 - m
        self.running_mean.value += m * mean.reshape(-1)
        self.running_var.value *= 1 - m
        self.running_var.value += (m * count / (count - 1)) * var.reshape(-1)
        self._cache = (xhat, rstd, True)
        return xhat * self.weight.value.reshape(column) + self.bias.value.reshape(column)

    def backward(self, grad_out):
        """grad_out: (N, C, H, W) -> dJ/dx: (N, C, H, W)."""
        xhat, rstd, batch_stats = self._cache
        self.weight.grad += (grad_out * xhat).sum(axis=self._axes)
        self.bias.grad += grad_out.sum(axis=self._axes)
        dxhat = grad_out * self.weight.value.reshape(1, -1, 1, 1)
        if not batch_stats:
            return dxhat * rstd
        mean_d, mean_dx = self._grad_means(dxhat, xhat)
        return rstd * (dxhat - mean_d - xhat * mean_dx)

    # The batch statistics, in the two hooks of BatchNorm1d, which SyncBatchNorm2d takes over all ranks.
    def _batch_moments(self, x):
        """``(mean, x - mean, biased variance, values per channel)``; mean and variance shaped (1, C, 1, 1)."""
        count = x.size // self.num_features
        if count < 2:
            raise ValueError(f"{who(self)} expected more than 1 value per channel in training mode, "
                             f"got input of shape {shape_text(x.shape)}")
        mean = x.mean(axis=self._axes, keepdims=True)
        centered = x - mean
        return mean, centered, (centered * centered).mean(axis=self._axes, keepdims=True), count

    def _grad_means(self, dxhat, xhat):
        """The means of dJ/dxhat and of dJ/dxhat * xhat per channel, shaped (1, C, 1, 1)."""
        return dxhat.mean(axis=self._axes, keepdims=True), (dxhat * xhat).mean(axis=self._axes, keepdims=True)

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps:g}, momentum={self.momentum:g}"
