"""Gradient clipping by global norm."""

import math
import numbers

import numpy as np

from .._checks import check_number
from ..module import Module, Parameter


def clip_grad_norm(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scale all gradients together so that their global norm is at most ``max_norm``.

    The global norm is the ``norm_type``-norm of all gradients concatenated
    (``float("inf")`` for the largest absolute value). As in
    ``torch.nn.utils.clip_grad_norm_``, the gradients are multiplied in place
    by ``min(1, max_norm / (total_norm + 1e-6))``.

    Args:
        parameters: an iterable of Parameters (e.g. ``model.parameters()``), or one Parameter.
        max_norm: the largest allowed norm (> 0).
        norm_type: p of the p-norm (> 0), or ``inf``.
        error_if_nonfinite: raise ``FloatingPointError`` if the norm is NaN/Inf
            (otherwise the gradients become NaN, as in torch).

    Returns:
        The total norm before clipping, a Python float.

    Example:
        >>> import numpy as np
        >>> import nanonet as nn
        >>> p = nn.Parameter(np.zeros(2))
        >>> p.grad[:] = [3.0, 4.0]
        >>> nn.optim.clip_grad_norm([p], max_norm=1.0)
        5.0
        >>> np.round(p.grad, 6)
        array([0.6, 0.8])
    """
    if isinstance(parameters, Module):
        raise TypeError("clip_grad_norm expected an iterable of Parameters, got a Module; pass model.parameters()")
    params = [parameters] if isinstance(parameters, Parameter) else list(parameters)
    for i, p in enumerate(params):
        if not isinstance(p, Parameter):
            raise TypeError(f"clip_grad_norm expected Parameters, got {type(p).__name__} at position {i}")
    check_number("clip_grad_norm", "max_norm", max_norm, low=0, low_open=True)
    if not (isinstance(norm_type, numbers.Real) and not isinstance(norm_type, bool) and norm_type == math.inf):
        check_number("clip_grad_norm", "norm_type", norm_type, low=0, low_open=True)  # inf: the max norm
    if not params:
        return 0.0
    norm_type = float(norm_type)
    norms = np.array([_norm(p.grad, norm_type) for p in params])
    total = float(norms.max() if math.isinf(norm_type) else np.linalg.norm(norms, norm_type))
    if error_if_nonfinite and not math.isfinite(total):
        raise FloatingPointError(f"clip_grad_norm: the total gradient norm is {total}; "
                                 f"some gradient holds NaN or Inf")
    coef = min(max_norm / (total + 1e-6), 1.0)
    if coef < 1.0 or not math.isfinite(total):
        for p in params:
            p.grad *= coef
    return total


def _norm(grad, norm_type):
    flat = grad.reshape(-1)
    if flat.size == 0:
        return 0.0
    if norm_type == 2.0:
        return math.sqrt(float(np.dot(flat, flat)))
    return float(np.linalg.norm(flat, norm_type))


clip_grad_norm_ = clip_grad_norm
