"""Element-wise activations.

Every activation here maps an array of any shape to one of the same shape
and dtype, acts element by element (so it is ``batch_independent``), and
declares in ``kinks`` the input values where it is not differentiable (the
gradient checker accepts any subgradient there).
"""

import math

import numpy as np
from scipy import special

from .._checks import check_array, check_backward_ready, check_number, check_same_shape
from ..module import Module


class ReLU(Module):
    """Rectified linear unit: ``y = max(x, 0)``.

    At exactly ``x == 0`` the output is 0 and the derivative used is **0**
    (the same choice as PyTorch): a unit sitting exactly at the kink passes no
    gradient. Any subgradient in [0, 1] would be valid there.

    Caches only the boolean mask ``x > 0`` for backward.

    Shape:
        - x: any shape -> y: the same shape and dtype.

    Example:
        >>> import numpy as np
        >>> import nanonet as nn
        >>> nn.ReLU()(np.array([[-1.0, 0.0, 2.0]]))
        array([[0., 0., 2.]])
    """

    kinks = (0.0,)
    batch_independent = True

    def __init__(self):
        self._mask = None

    def forward(self, x):
        """x: any shape -> max(x, 0), a fresh array."""
        return self._forward_into(x, None)

    def backward(self, grad_out):
        """grad_out: x's shape -> grad_out where x > 0, else 0 (a fresh array)."""
        return self._backward_into(grad_out, None)

    # The container protocol (as Linear's): write into ``out`` when it has the
    # result's exact shape and dtype, else into a fresh array. ``out`` may be
    # the input itself (``_in_place``); a container passes that only for a
    # buffer it owns. The boolean mask is a private buffer, refilled in place
    # by each forward of the same shape; it never leaves the module.

    def _forward_into(self, x, out):
        if x.__class__ is not np.ndarray or x.dtype.kind != "f":
            check_array(self, x)
        mask = self._mask
        if mask is None or mask.shape != x.shape:
            mask = np.empty(x.shape, dtype=bool)
        np.greater(x, 0, out=mask)
        self._mask = mask
        self._last_output = (x.shape, x.dtype)  # what the contract checks backward's grad_out against
        if out is None or out.shape != x.shape or out.dtype != x.dtype:
            return np.maximum(x, 0)
        return np.maximum(x, 0, out=out)

    def _backward_into(self, grad_out, out, input_grad=True):
        mask = self._mask
        if mask is None:
            check_backward_ready(self, mask)
        if grad_out.__class__ is not np.ndarray or grad_out.shape != mask.shape or grad_out.dtype.kind != "f":
            check_same_shape(self, grad_out, mask.shape)
        if not input_grad:
            return None
        if out is None or out.shape != mask.shape or out.dtype != grad_out.dtype:
            return np.multiply(grad_out, mask)
        return np.multiply(grad_out, mask, out=out)

    _into_methods = (forward, backward)  # what _forward_into / _backward_into implement
    _in_place = True  # out may be the input itself: the mask is taken before it is overwritten

    # Bound calls for a container's prepared plan, as Linear's (``out`` may be the input itself when
    # ``in_place``); the mask is bound too, and is this layer's mask again after every call.

    def _bind_forward(self, shape, dtype, out, in_place=False):
        mask, record = np.empty(shape, dtype=bool), (shape, dtype)
        greater, maximum, slow = np.greater, np.maximum, self._forward_into

        def forward(x):
            if x.__class__ is not np.ndarray or x.shape != shape or x.dtype is not dtype:
                return slow(x, x if in_place else out)
            greater(x, 0, out=mask)
            self._mask = mask
            self._last_output = record
            if in_place:
                return maximum(x, 0, out=x)
            return maximum(x, 0) if out is None else maximum(x, 0, out=out)

        return forward

    def _bind_backward(self, shape, dtype, out, input_grad, in_place=False):
        multiply, slow = np.multiply, self._backward_into

        def backward(grad_out):
            mask = self._mask
            if grad_out.__class__ is not np.ndarray or grad_out.shape != shape or grad_out.dtype is not dtype \
                    or mask is None or mask.shape != shape:
                return slow(grad_out, grad_out if in_place else out, input_grad)
            if not input_grad:
                return None
            if in_place:
                return multiply(grad_out, mask, out=grad_out)
            return multiply(grad_out, mask) if out is None else multiply(grad_out, mask, out=out)

        return backward


class _Elementwise(Module):
    """Shared plumbing: check the input, cache what backward needs, check grad_out."""

    kinks = ()
    batch_independent = True

    def __init__(self):
        self._cache = None

    def forward(self, x):
        out, self._cache = self._forward(x)
        return out

    def backward(self, grad_out):
        return grad_out * self._derivative(self._cache)


class LeakyReLU(_Elementwise):
    """``y = x`` for ``x > 0``, else ``negative_slope * x``.

    At exactly 0 the derivative used is ``negative_slope`` (as in PyTorch);
    any value in between is a valid subgradient, and ``kinks = (0.0,)`` says
    so to the gradient checker.

    Shape:
        - x: any shape -> y: the same shape and dtype.

    Example:
        >>> import numpy as np
        >>> import nanonet as nn
        >>> nn.LeakyReLU(0.1)(np.array([[-2.0, 0.0, 3.0]]))
        array([[-0.2,  0. ,  3. ]])
    """

    kinks = (0.0,)

    def __init__(self, negative_slope=0.01):
        super().__init__()
        self.negative_slope = check_number("LeakyReLU", "negative_slope", negative_slope)

    def _forward(self, x):
        return np.where(x > 0, x, x * self.negative_slope), x

    def _derivative(self, x):
        return np.where(x > 0, 1.0, self.negative_slope).astype(x.dtype, copy=False)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope:g}"


class Tanh(_Elementwise):
    """Hyperbolic tangent; caches its output (``dy/dx = 1 - y**2``).

    Shape:
        - x: any shape -> y: the same shape and dtype.

    Example:
        >>> import numpy as np
        >>> import nanonet as nn
        >>> nn.Tanh()(np.array([0.0, 1000.0]))
        array([0., 1.])
    """

    def _forward(self, x):
        y = np.tanh(x)
        return y, y

    def _derivative(self, y):
        return 1 - y * y


class Sigmoid(_Elementwise):
    """Logistic sigmoid ``1 / (1 + exp(-x))`` via ``scipy.special.expit``
    (no overflow at any finite input); caches its output.

    Shape:
        - x: any shape -> y: the same shape and dtype.

    Example:
        >>> import numpy as np
        >>> import nanonet as nn
        >>> nn.Sigmoid()(np.array([-1000.0, 0.0, 1000.0]))
        array([0. , 0.5, 1. ])
    """

    def _forward(self, x):
        y = special.expit(x)
        return y, y

    def _derivative(self, y):
        return y * (1 - y)


class GELU(_Elementwise):
    """Exact Gaussian error linear unit: ``y = x * Phi(x)``, ``Phi`` the
    standard normal CDF (``scipy.special.ndtr``); the same as
    ``torch.nn.GELU()`` (approximate="none").

    ``dy/dx = Phi(x) + x * phi(x)`` with ``phi`` the normal density.

    Shape:
        - x: any shape -> y: the same shape and dtype.

    Example:
        >>> import numpy as np
        >>> import nanonet as nn
        >>> nn.GELU()(np.array([0.0, 1.0])).round(4)
        array([0.    , 0.8413])
    """

    def _forward(self, x):
        phi = special.ndtr(x)
        return x * phi, (x, phi)  # backward reuses Phi(x) instead of computing it again

    def _derivative(self, cache):
        x, phi = cache
        d = np.multiply(x, x)                 # the same numbers as Phi(x) + x * exp(-x*x/2) / sqrt(2 pi),
        d *= -0.5                             # in one array
        np.exp(d, out=d)
        d *= 1 / math.sqrt(2 * math.pi)
        d *= x
        d += phi
        return d


class Softplus(_Elementwise):
    """``y = log(1 + exp(beta * x)) / beta``, and ``y = x`` where
    ``beta * x > threshold`` (exactly PyTorch's definition).

    Computed with ``numpy.logaddexp``: no overflow at any finite input.

    Shape:
        - x: any shape -> y: the same shape and dtype.

    Example:
        >>> import numpy as np
        >>> import nanonet as nn
        >>> nn.Softplus()(np.array([-1000.0, 0.0, 1000.0])).round(4).tolist()
        [0.0, 0.6931, 1000.0]
    """

    def __init__(self, beta=1.0, threshold=20.0):
        super().__init__()
        self.beta = check_number("Softplus", "beta", beta, low=0, low_open=True)
        self.threshold = check_number("Softplus", "threshold", threshold)

    def _forward(self, x):
        bx = x * self.beta
        soft = np.logaddexp(0, bx) / self.beta
        return np.where(bx > self.threshold, x, soft).astype(x.dtype, copy=False), x

    def _derivative(self, x):
        bx = x * self.beta
        return np.where(bx > self.threshold, 1, special.expit(bx)).astype(x.dtype, copy=False)

    def extra_repr(self):
        return f"beta={self.beta:g}, threshold={self.threshold:g}"


class ELU(_Elementwise):
    """``y = x`` for ``x > 0``, else ``alpha * (exp(x) - 1)``.

    The derivative jumps at 0 (from ``alpha`` to 1) unless ``alpha == 1``, so
    ``kinks`` is ``(0.0,)`` for ``alpha != 1`` and empty otherwise. At 0 the
    derivative used is ``alpha`` (as in PyTorch).

    Shape:
        - x: any shape -> y: the same shape and dtype.

    Example:
        >>> import numpy as np
        >>> import nanonet as nn
        >>> nn.ELU()(np.array([-1000.0, 0.0, 2.0]))
        array([-1.,  0.,  2.])
    """

    def __init__(self, alpha=1.0):
        super().__init__()
        self.alpha = check_number("ELU", "alpha", alpha)
        self.kinks = () if self.alpha == 1.0 else (0.0,)

    def _forward(self, x):
        neg = np.expm1(np.minimum(x, 0)) * self.alpha
        return np.where(x > 0, x, neg).astype(x.dtype, copy=False), x

    def _derivative(self, x):
        neg = np.exp(np.minimum(x, 0)) * self.alpha
        return np.where(x > 0, 1, neg).astype(x.dtype, copy=False)

    def extra_repr(self):
        return f"alpha={self.alpha:g}"
