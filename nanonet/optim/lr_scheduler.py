"""Learning-rate schedules, with ``torch.optim.lr_scheduler``'s names and defaults.

Each schedule computes the learning rate of epoch ``e`` in closed form from the
group's ``initial_lr``, so a run resumed at epoch ``e`` gets exactly the rate
an uninterrupted run had. Use them the PyTorch way (``scheduler.step()`` once
per epoch, after training that epoch) or pass them to ``nn.fit`` in
``callbacks=[...]``: ``fit`` then sets the rate at the start of every epoch
from the epoch number (also when resuming with ``initial_epoch``).
"""

import math

from .._checks import check_number


class LRScheduler:
    """Base class: subclasses implement ``lr_at(base_lr, epoch)``.

    Constructing a schedule records each group's ``initial_lr`` (kept if the
    optimizer already has it, e.g. after ``load_state_dict``) and sets the rate
    of epoch 0, as torch does.
    """

    def __init__(self, optimizer, last_epoch=-1):
        if not hasattr(optimizer, "param_groups"):
            raise TypeError(f"{type(self).__name__} expected an optimizer, got {type(optimizer).__name__}")
        _int_at_least(self, "last_epoch", last_epoch, -1)
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            if last_epoch == -1:
                group.setdefault("initial_lr", group["lr"])
            elif "initial_lr" not in group:
                raise ValueError(f"{type(self).__name__}: last_epoch={last_epoch} needs 'initial_lr' in every "
                                 f"parameter group (create the schedule with last_epoch=-1 first)")
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self.step()

    def lr_at(self, base_lr, epoch):
        raise NotImplementedError(f"{type(self).__name__} must implement lr_at(base_lr, epoch)")

    def step(self):
        """Advance one epoch and set every group's ``lr``."""
        self.last_epoch += 1
        self._apply(self.last_epoch)

    def _apply(self, epoch):
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = self.lr_at(base, epoch)

    def get_last_lr(self):
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self):
        """JSON-able: ``{"last_epoch": int, "base_lrs": [float, ...]}``."""
        return {"last_epoch": self.last_epoch, "base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state):
        if set(state) != {"last_epoch", "base_lrs"} or len(state["base_lrs"]) != len(self.base_lrs):
            raise ValueError(f"{type(self).__name__}.load_state_dict expected last_epoch and "
                             f"{len(self.base_lrs)} base_lrs, got {state!r}")
        self.last_epoch = int(state["last_epoch"])
        self.base_lrs = [float(b) for b in state["base_lrs"]]
        self._apply(self.last_epoch)

    # -- nn.fit callback protocol -------------------------------------------------
    def on_epoch_begin(self, epoch, logs=None):
        """As an ``nn.fit`` callback: the rate of epoch ``epoch`` (counted from 0)."""
        self.last_epoch = epoch
        self._apply(epoch)

    def __repr__(self):
        return f"{type(self).__name__}({self.extra_repr()})"

    def extra_repr(self):
        return ""


class StepLR(LRScheduler):
    """``lr = initial_lr * gamma ** (epoch // step_size)``.

    Example:
        >>> import numpy as np
        >>> import nanonet as nn
        >>> opt = nn.optim.SGD([nn.Parameter(np.zeros(2))], lr=1.0)
        >>> sched = nn.optim.StepLR(opt, step_size=2, gamma=0.5)
        >>> lrs = []
        >>> for epoch in range(5):
        ...     lrs.append(opt.param_groups[0]["lr"])
        ...     sched.step()
        >>> lrs
        [1.0, 1.0, 0.5, 0.5, 0.25]
    """

    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        _int_at_least(self, "step_size", step_size, 1)
        _positive(self, "gamma", gamma)
        self.step_size, self.gamma = int(step_size), float(gamma)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, epoch):
        return base_lr * self.gamma ** (epoch // self.step_size)

    def extra_repr(self):
        return f"step_size={self.step_size}, gamma={self.gamma}"


class ExponentialLR(LRScheduler):
    """``lr = initial_lr * gamma ** epoch``.

    Example:
        >>> import numpy as np
        >>> import nanonet as nn
        >>> opt = nn.optim.SGD([nn.Parameter(np.zeros(2))], lr=1.0)
        >>> sched = nn.optim.ExponentialLR(opt, gamma=0.5)
        >>> sched.step(); sched.step()
        >>> sched.get_last_lr()
        [0.25]
    """

    def __init__(self, optimizer, gamma, last_epoch=-1):
        _positive(self, "gamma", gamma)
        self.gamma = float(gamma)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, epoch):
        return base_lr * self.gamma**epoch

    def extra_repr(self):
        return f"gamma={self.gamma}"


class CosineAnnealingLR(LRScheduler):
    """``lr = eta_min + (initial_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2``.

    Falls from ``initial_lr`` at epoch 0 to ``eta_min`` at epoch ``T_max`` (and,
    like torch's, rises again after it).

    Example:
        >>> import numpy as np
        >>> import nanonet as nn
        >>> opt = nn.optim.SGD([nn.Parameter(np.zeros(2))], lr=1.0)
        >>> sched = nn.optim.CosineAnnealingLR(opt, T_max=2)
        >>> [round(sched.lr_at(1.0, e), 12) for e in range(3)]
        [1.0, 0.5, 0.0]
    """

    def __init__(self, optimizer, T_max, eta_min=0.0, last_epoch=-1):
        _int_at_least(self, "T_max", T_max, 1)
        _non_negative(self, "eta_min", eta_min)
        self.T_max, self.eta_min = int(T_max), float(eta_min)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, epoch):
        return self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * epoch / self.T_max)) / 2

    def extra_repr(self):
        return f"T_max={self.T_max}, eta_min={self.eta_min}"


class LinearLR(LRScheduler):
    """Linear warm-up: ``lr = initial_lr * factor``, the factor going linearly
    from ``start_factor`` at epoch 0 to ``end_factor`` at epoch ``total_iters``
    and staying there.

    Example:
        >>> import numpy as np
        >>> import nanonet as nn
        >>> opt = nn.optim.SGD([nn.Parameter(np.zeros(2))], lr=1.0)
        >>> sched = nn.optim.LinearLR(opt, start_factor=0.25, total_iters=3)
        >>> [sched.lr_at(1.0, e) for e in range(5)]
        [0.25, 0.5, 0.75, 1.0, 1.0]
    """

    def __init__(self, optimizer, start_factor=1.0 / 3, end_factor=1.0, total_iters=5, last_epoch=-1):
        check_number("LinearLR", "start_factor", start_factor, low=0, high=1, low_open=True)
        check_number("LinearLR", "end_factor", end_factor, low=0, high=1)
        _int_at_least(self, "total_iters", total_iters, 1)
        self.start_factor, self.end_factor = float(start_factor), float(end_factor)
        self.total_iters = int(total_iters)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, epoch):
        frac = min(epoch, self.total_iters) / self.total_iters
        return base_lr * (self.start_factor + (self.end_factor - self.start_factor) * frac)

    def extra_repr(self):
        return f"start_factor={self.start_factor:g}, end_factor={self.end_factor:g}, total_iters={self.total_iters}"


class LinearWarmup(LRScheduler):
    """Linear warm-up in front of another schedule (e.g. cosine decay).

    For ``epoch < warmup_epochs`` the rate rises linearly from
    ``start_factor * initial_lr`` towards ``initial_lr``; from epoch
    ``warmup_epochs`` on it is ``after``'s rate at ``epoch - warmup_epochs``
    (or ``initial_lr`` if ``after`` is None). ``after`` must be built on the
    same optimizer.

    Example:
        >>> import numpy as np
        >>> import nanonet as nn
        >>> opt = nn.optim.SGD([nn.Parameter(np.zeros(2))], lr=1.0)
        >>> cosine = nn.optim.CosineAnnealingLR(opt, T_max=2)
        >>> sched = nn.optim.LinearWarmup(opt, warmup_epochs=2, after=cosine)
        >>> [round(sched.lr_at(1.0, e), 12) for e in range(5)]
        [0.0, 0.5, 1.0, 0.5, 0.0]
    """

    def __init__(self, optimizer, warmup_epochs, start_factor=0.0, after=None, last_epoch=-1):
        _int_at_least(self, "warmup_epochs", warmup_epochs, 1)
        check_number("LinearWarmup", "start_factor", start_factor, low=0, high=1, high_open=True)
        if after is not None and getattr(after, "optimizer", None) is not optimizer:
            raise ValueError("LinearWarmup expected `after` to be a schedule built on the same optimizer")
        self.warmup_epochs, self.start_factor, self.after = int(warmup_epochs), float(start_factor), after
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, epoch):
        if epoch < self.warmup_epochs:
            return base_lr * (self.start_factor + (1 - self.start_factor) * epoch / self.warmup_epochs)
        return base_lr if self.after is None else self.after.lr_at(base_lr, epoch - self.warmup_epochs)

    def extra_repr(self):
        return f"warmup_epochs={self.warmup_epochs}, start_factor={self.start_factor:g}, after={self.after!r}"


def _int_at_least(sched, name, value, low):
    return check_number(type(sched).__name__, name, value, low=low, integer=True)


def _positive(sched, name, value):
    return check_number(type(sched).__name__, name, value, low=0, low_open=True)


def _non_negative(sched, name, value):
    return check_number(type(sched).__name__, name, value, low=0)
