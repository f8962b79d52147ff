"""Vectorised optimizer updates: one update over a whole run of flat parameters (``foreach``, in numpy).

``Sequential`` and ``Graph`` lay their parameters out as views of one block
per dtype (``nanonet._flat``). For such a *run* of parameters an optimizer
applies its per-element formula once, to the 1-D blocks, instead of once per
parameter: Adam's dozen numpy calls per parameter become a dozen per step.
Every operation is element-wise, so the result is exactly (bit for bit) the
per-parameter update; ``tests/test_foreach.py`` checks it, and checks both
against ``torch.optim``.

The optimizer's state stays per parameter, as its users see it
(``opt.state[p]["exp_avg"]``, ``state_dict``): each per-parameter array is a
view of the run's flat state array. Before each step a :class:`GroupPlan`
checks, by identity only, that nothing moved: the group's parameters, each
one's ``value`` and ``grad`` objects, and each one's state entries. If
anything did (``p.value`` reassigned, ``Module.to``, a loaded state dict, a
state entry replaced), the plan is rebuilt from what is there, and
parameters that no longer form a run are updated one at a time, as before.
"""

from itertools import repeat
from operator import attrgetter, eq, is_, methodcaller

import numpy as np

from .. import _flat

_VALUE, _GRAD, _STEP = attrgetter("value"), attrgetter("grad"), methodcaller("get", "step")


class RunState:
    """A run of parameters updated as one, with its flat state and scratch arrays.

    ``state`` is the state dict the optimizer's ``_update_arrays`` sees (flat
    arrays, and ``step``); ``views[key][i]`` is parameter ``i``'s view of
    ``state[key]``, bound into ``opt.state[p]``.
    """

    def __init__(self, run, state):
        self.run = run
        self.state = state
        self.views = {}
        self.scratch = [np.empty_like(run.value), np.empty_like(run.value)]
        self.bound = [None] * len(run.params)  # the per-parameter state dicts, once bound

    @classmethod
    def make(cls, opt, run):
        """The run's flat state from the per-parameter state there is, or None if it cannot be flat.

        All parameters without state: a fresh run. All with the same state
        keys, the same ``step`` and arrays shaped like their parameters: the
        arrays are copied into flat ones and the per-parameter entries become
        views of them. Anything else is left to the per-parameter path (and
        its checks).
        """
        states = [opt.state.get(p) for p in run.params]
        if not any(states):
            return cls(run, {})
        if not all(states) or len({frozenset(s) for s in states}) != 1 \
                or len({s.get("step") for s in states}) != 1:
            return None
        flat = {}
        for key, first in states[0].items():
            if not isinstance(first, np.ndarray):
                flat[key] = first
                continue
            arrays = [s[key] for s in states]
            if any(a.__class__ is not np.ndarray or a.shape != p.value.shape or a.dtype != p.value.dtype
                   for a, p in zip(arrays, run.params)):
                return None
            flat[key] = np.concatenate([a.reshape(-1) for a in arrays])
        made = cls(run, flat)
        made.bind(opt)
        return made

    def bind(self, opt):
        """Make each parameter's state entries views of the flat state (after a step that created them)."""
        start = 0
        offsets = []
        for p in self.run.params:
            offsets.append((start, start + p.value.size, p.value.shape))
            start += p.value.size
        for key, value in self.state.items():
            if isinstance(value, np.ndarray) and key not in self.views:
                self.views[key] = [value[a:b].reshape(shape) for a, b, shape in offsets]
        for i, p in enumerate(self.run.params):
            own = opt.state.get(p)
            if own is None:
                own = opt.state[p] = {}
            for key, value in self.state.items():
                own[key] = self.views[key][i] if key in self.views else value
            self.bound[i] = own

    def update(self, opt, group):
        """One step of the whole run; returns True when it created state (the plan's checks then change)."""
        run, state = self.run, self.state
        before = len(state)
        opt._update_arrays(run.value, run.grad, group, state, *self.scratch)
        if len(state) != before or self.bound[0] is None:
            self.bind(opt)
            return True
        if "step" in state:
            step = state["step"]
            for own in self.bound:
                own["step"] = step
        return False


class GroupPlan:
    """How one parameter group is updated: runs as one (:class:`RunState`), other parameters one by one.

    ``current`` checks, by identity only, everything the plan relies on: the
    group's parameters, each run's value and grad arrays, and the state
    entries each run bound (and their ``step``).
    """

    def __init__(self, opt, group):
        self.group = group
        self.params = tuple(group["params"])
        self.items = []
        for run in _flat.runs(self.params):
            made = RunState.make(opt, run) if run.value is not None else None
            if made is None:
                self.items.extend(run.params)
            else:
                self.items.append(made)
        self.refresh()

    def refresh(self):
        """Collect the identity checks of ``current`` (after a run bound new state)."""
        runs = [item for item in self.items if item.__class__ is RunState]
        self.run_params = [p for r in runs for p in r.run.params]
        self.values = [v for r in runs for v in r.run.values]
        self.grads = [g for r in runs for g in r.run.grads]
        self.owners = [own for r in runs for own in r.bound]
        self.views = [(methodcaller("get", key), r.bound, views) for r in runs for key, views in r.views.items()]
        self.steps = [(r.bound, r) for r in runs if "step" in r.state]

    def grads_current(self, group):
        """The part of ``current`` that zeroing the gradients relies on: parameters and their grad arrays."""
        params = group["params"]
        return (group is self.group and len(params) == len(self.params) and all(map(is_, params, self.params))
                and all(map(is_, map(_GRAD, self.run_params), self.grads)))

    def current(self, opt, group):
        """True while nothing the plan relies on changed (identity checks, made in C by ``map``)."""
        params, run_params = group["params"], self.run_params
        if group is not self.group or len(params) != len(self.params) or not all(map(is_, params, self.params)) \
                or not all(map(is_, map(_GRAD, run_params), self.grads)) \
                or not all(map(is_, map(_VALUE, run_params), self.values)):
            return False
        if self.owners and not all(map(is_, map(opt.state.get, self.run_params), self.owners)):
            return False
        for getter, owners, views in self.views:
            if not all(map(is_, map(getter, owners), views)):
                return False
        for owners, run in self.steps:
            if not all(map(eq, map(_STEP, owners), repeat(run.state["step"]))):
                return False
        return True

    def step(self, opt, group):
        items = self.items
        if len(items) == 1 and items[0].__class__ is RunState:  # one block: the usual model
            if items[0].update(opt, group):
                self.refresh()
            return
        changed = False
        for item in self.items:
            if item.__class__ is RunState:
                changed = item.update(opt, group) or changed
            else:
                opt._update(item, group, opt._state_for(item))
        if changed:
            self.refresh()

    def zero_grad(self):
        for item in self.items:
            if item.__class__ is RunState:
                item.run.grad.fill(0)
            else:
                item.grad.fill(0)


def group_plan(opt, group):
    """The group's current :class:`GroupPlan` (rebuilt when anything it relies on changed)."""
    plans = opt.__dict__.get("_plans")
    if plans is None:
        plans = opt._plans = {}
    plan = plans.get(id(group))
    if plan is None or not plan.current(opt, group):
        plan = plans[id(group)] = GroupPlan(opt, group)
    return plan
