"""Adam and AdamW (decoupled weight decay)."""

import math

import numpy as np

from .optimizer import Optimizer, flag, in_range, non_negative


class Adam(Optimizer):
    """Adam, with ``torch.optim.Adam``'s names, defaults and update.

    For each parameter ``p`` with gradient ``g``, at step ``t = 1, 2, ...``::

        g = g + weight_decay * p                 (Adam's L2 penalty; AdamW decays p instead)
        m = m + (1 - beta1) * (g - m)
        v = beta2 * v + (1 - beta2) * g * g
        v_max = max(v_max, v)                    (amsgrad: v_max replaces v below)
        p = p - lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

    Args:
        params: ``model.parameters()`` or a list of parameter-group dicts.
        lr: learning rate (> 0).
        betas: ``(beta1, beta2)``, each in [0, 1).
        eps: added to the denominator (>= 0).
        weight_decay: L2 penalty added to the gradient (>= 0).
        amsgrad: use the running maximum of ``v`` (AMSGrad).
        maximize: ascend instead of descend.

    State per parameter: ``step`` (int), ``exp_avg`` (m), ``exp_avg_sq`` (v),
    and ``max_exp_avg_sq`` with amsgrad.

    Shape:
        - every state array: the shape and dtype of its parameter.

    Example:
        >>> import numpy as np
        >>> import nanonet as nn
        >>> p = nn.Parameter(np.array([1.0, 2.0]))
        >>> opt = nn.optim.Adam([p], lr=0.1)
        >>> p.grad[:] = [3.0, -0.5]
        >>> opt.step()                       # the first Adam step moves each entry by about lr
        >>> np.round(p.value, 6)
        array([0.9, 2.1])
    """

    _array_state = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    _decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, *,
                 maximize=False):
        defaults = dict(lr=lr, betas=tuple(betas) if isinstance(betas, (list, tuple)) else betas, eps=eps,
                        weight_decay=weight_decay, amsgrad=amsgrad, maximize=maximize)
        super().__init__(params, defaults)

    def _validate(self, hyper):
        super()._validate(hyper)
        betas = hyper["betas"]
        if not isinstance(betas, tuple) or len(betas) != 2:
            raise ValueError(f"{type(self).__name__} expected betas to be a pair (beta1, beta2), got {betas!r}")
        in_range(self, "betas[0]", betas[0], 0.0, 1.0)
        in_range(self, "betas[1]", betas[1], 0.0, 1.0)
        non_negative(self, "eps", hyper["eps"])
        non_negative(self, "weight_decay", hyper["weight_decay"])
        flag(self, "amsgrad", hyper["amsgrad"])
        flag(self, "maximize", hyper["maximize"])

    def _expected_state(self, group):
        keys = {"step", "exp_avg", "exp_avg_sq"}
        return keys | {"max_exp_avg_sq"} if group.get("amsgrad") else keys

    def _update_arrays(self, value, grad, group, state, d, t):
        lr, (beta1, beta2), wd = group["lr"], group["betas"], group["weight_decay"]
        if not state:
            state.update(step=0, exp_avg=np.zeros_like(value), exp_avg_sq=np.zeros_like(value))
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = np.zeros_like(value)
        state["step"] += 1
        step = state["step"]
        if group["maximize"]:
            np.negative(grad, out=d)
        elif wd != 0 and not self._decoupled:  # d is written below: a copy
            np.copyto(d, grad)
        else:
            d = grad                            # only read
        if wd != 0:
            if self._decoupled:
                value *= 1.0 - lr * wd
            else:
                np.multiply(value, wd, out=t)
                d += t
        m, v = state["exp_avg"], state["exp_avg_sq"]
        np.subtract(d, m, out=t)          # m.lerp_(g, 1 - beta1)
        t *= 1.0 - beta1
        m += t
        v *= beta2                        # v.mul_(beta2).addcmul_(g, g, 1 - beta2)
        np.multiply(d, d, out=t)
        t *= 1.0 - beta2
        v += t
        if group["amsgrad"]:
            v = np.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
        step_size = lr / (1.0 - beta1**step)
        np.sqrt(v, out=t)                 # denom = sqrt(v) / sqrt(1 - beta2**t) + eps
        t /= math.sqrt(1.0 - beta2**step)
        t += group["eps"]
        np.divide(m, t, out=t)
        t *= step_size
        value -= t


class AdamW(Adam):
    """AdamW: Adam with decoupled weight decay, as ``torch.optim.AdamW``.

    The same update as :class:`Adam`, except that weight decay shrinks the
    parameter directly (``p = p * (1 - lr * weight_decay)``) before the Adam
    step, instead of being added to the gradient. The default
    ``weight_decay`` is 0.01, as in torch.

    Example:
        >>> import numpy as np
        >>> import nanonet as nn
        >>> opt = nn.optim.AdamW([nn.Parameter(np.zeros(3))])
        >>> opt.defaults["weight_decay"]
        0.01
    """

    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
                 maximize=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize)
