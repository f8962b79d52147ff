"""RMSprop, plain or centered, with optional momentum."""

import numpy as np

from .optimizer import Optimizer, flag, in_range, non_negative


class RMSprop(Optimizer):
    """RMSprop, with ``torch.optim.RMSprop``'s names, defaults and update.

    For each parameter ``p`` with gradient ``g``, per step::

        g = g + weight_decay * p                              (if weight_decay)
        s = alpha * s + (1 - alpha) * g * g
        a = a + (1 - alpha) * (g - a)                         (centered only)
        den = sqrt(s - a * a) + eps  if centered  else  sqrt(s) + eps
        b = momentum * b + g / den;  p = p - lr * b           (if momentum > 0)
        p = p - lr * g / den                                  (otherwise)

    Args:
        params: ``model.parameters()`` or a list of parameter-group dicts.
        lr: learning rate (> 0; default 0.01).
        alpha: smoothing constant, in [0, 1].
        eps: added to the denominator (>= 0).
        weight_decay: L2 penalty added to the gradient (>= 0).
        momentum: momentum factor (>= 0).
        centered: normalize by an estimate of the gradient's variance.
        maximize: ascend instead of descend.

    State per parameter: ``step`` (int), ``square_avg`` (s), ``momentum_buffer``
    (b, when momentum > 0) and ``grad_avg`` (a, when centered).

    Example:
        >>> import numpy as np
        >>> import nanonet as nn
        >>> opt = nn.optim.RMSprop([nn.Parameter(np.zeros(3))], centered=True)
        >>> opt
        RMSprop(lr=0.01, alpha=0.99, eps=1e-08, weight_decay=0, momentum=0, centered=True, maximize=False; 1 parameters)
    """

    _array_state = ("square_avg", "momentum_buffer", "grad_avg")

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False, *,
                 maximize=False):
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                        centered=centered, maximize=maximize)
        super().__init__(params, defaults)

    def _validate(self, hyper):
        super()._validate(hyper)
        in_range(self, "alpha", hyper["alpha"], 0.0, 1.0, high_open=False)
        non_negative(self, "eps", hyper["eps"])
        non_negative(self, "weight_decay", hyper["weight_decay"])
        non_negative(self, "momentum", hyper["momentum"])
        flag(self, "centered", hyper["centered"])
        flag(self, "maximize", hyper["maximize"])

    def _expected_state(self, group):
        keys = {"step", "square_avg"}
        if group.get("momentum", 0) > 0:
            keys.add("momentum_buffer")
        if group.get("centered"):
            keys.add("grad_avg")
        return keys

    def _update_arrays(self, value, grad, group, state, d, t):
        alpha, wd, momentum = group["alpha"], group["weight_decay"], group["momentum"]
        if not state:
            state.update(step=0, square_avg=np.zeros_like(value))
            if momentum > 0:
                state["momentum_buffer"] = np.zeros_like(value)
            if group["centered"]:
                state["grad_avg"] = np.zeros_like(value)
        state["step"] += 1
        if group["maximize"]:
            np.negative(grad, out=d)
        elif wd != 0:                           # d is written below: a copy
            np.copyto(d, grad)
        else:
            d = grad                            # only read
        if wd != 0:
            np.multiply(value, wd, out=t)
            d += t
        s = state["square_avg"]
        s *= alpha
        np.multiply(d, d, out=t)
        t *= 1.0 - alpha
        s += t
        if group["centered"]:
            a = state["grad_avg"]
            np.subtract(d, a, out=t)
            t *= 1.0 - alpha
            a += t
            np.multiply(a, a, out=t)
            np.subtract(s, t, out=t)
            np.sqrt(t, out=t)
        else:
            np.sqrt(s, out=t)
        t += group["eps"]
        np.divide(d, t, out=t)            # t = g / den
        if momentum > 0:
            b = state["momentum_buffer"]
            b *= momentum
            b += t
            np.multiply(b, group["lr"], out=t)
        else:
            t *= group["lr"]
        value -= t
