"""Stochastic gradient descent, with momentum and Nesterov momentum."""

import numpy as np

from .optimizer import Optimizer, flag, in_range, non_negative


class SGD(Optimizer):
    """Stochastic gradient descent, with ``torch.optim.SGD``'s names, defaults and update.

    For each parameter ``p`` with gradient ``g``, per step::

        g = g + weight_decay * p                        (if weight_decay)
        b = g                       (first step)        (if momentum)
        b = momentum * b + (1 - dampening) * g          (later steps)
        g = g + momentum * b  if nesterov  else  b
        p = p - lr * g                                  (maximize: p + lr * g)

    Args:
        params: ``model.parameters()`` or a list of parameter-group dicts.
        lr: learning rate (> 0; torch's default 1e-3).
        momentum: momentum factor (>= 0).
        dampening: dampening of the momentum (in [0, 1]).
        weight_decay: L2 penalty added to the gradient (>= 0).
        nesterov: Nesterov momentum (needs momentum > 0 and dampening 0).
        maximize: ascend instead of descend.

    State per parameter: ``momentum_buffer`` (when momentum > 0).

    Shape:
        - every state array: the shape and dtype of its parameter.

    Example:
        >>> import numpy as np
        >>> import nanonet as nn
        >>> p = nn.Parameter(np.array([1.0, 2.0]))
        >>> opt = nn.optim.SGD([p], lr=0.1)
        >>> p.grad[:] = [1.0, -1.0]
        >>> opt.step()
        >>> p.value
        array([0.9, 2.1])
    """

    _array_state = ("momentum_buffer",)

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *,
                 maximize=False):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize)
        super().__init__(params, defaults)

    def _validate(self, hyper):
        super()._validate(hyper)
        non_negative(self, "momentum", hyper["momentum"])
        in_range(self, "dampening", hyper["dampening"], 0.0, 1.0, high_open=False)
        non_negative(self, "weight_decay", hyper["weight_decay"])
        flag(self, "nesterov", hyper["nesterov"])
        flag(self, "maximize", hyper["maximize"])
        if hyper["nesterov"] and (hyper["momentum"] <= 0 or hyper["dampening"] != 0):
            raise ValueError(f"SGD: nesterov=True needs momentum > 0 and dampening == 0, got "
                             f"momentum={hyper['momentum']!r}, dampening={hyper['dampening']!r}")

    def _expected_state(self, group):
        return {"momentum_buffer"} if group.get("momentum", 0) != 0 else set()

    def _update_arrays(self, value, grad, group, state, d, t):
        lr, momentum, wd = group["lr"], group["momentum"], group["weight_decay"]
        if not (momentum or wd or group["maximize"]):      # plain SGD: p -= lr * g
            np.multiply(grad, lr, out=t)
            value -= t
            return
        if group["maximize"]:
            np.negative(grad, out=d)
        elif wd != 0 or group["nesterov"]:  # d is written below: a copy
            np.copyto(d, grad)
        else:
            d = grad                       # only read
        if wd != 0:
            np.multiply(value, wd, out=t)
            d += t
        if momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = d.copy()
            else:
                buf *= momentum
                if group["dampening"] == 0:  # (1 - 0) * d is d exactly: one pass less
                    buf += d
                else:
                    np.multiply(d, 1.0 - group["dampening"], out=t)
                    buf += t
            if group["nesterov"]:
                np.multiply(buf, momentum, out=t)
                d += t
            else:
                d = buf
        np.multiply(d, lr, out=t)
        value -= t
