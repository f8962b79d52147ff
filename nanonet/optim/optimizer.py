"""The optimizer base class: parameter groups, per-parameter state, state_dict.

An optimizer holds ``param_groups`` (a list of dicts, each with ``"params"``
and its hyperparameters, as in ``torch.optim``) and ``state``, a dict keyed on
the :class:`~nanonet.Parameter` object itself. ``module.load_state_dict`` and
``module.to`` keep Parameter identity, so the keys stay valid.

``state_dict()`` is *flat*: a dict of numpy arrays keyed by strings, which
``nn.save`` writes into an ``.npz`` file without pickle:

- ``"type"``: the class name (a 0-d str array);
- ``"param_groups.<g>.params"``: the indices of the group's parameters
  (counted over all groups in order, as torch does);
- ``"param_groups.<g>.<hyperparameter>"``: e.g. ``lr``, ``betas``;
- ``"state.<i>.<key>"``: per-parameter state, e.g. ``step``, ``exp_avg``.
"""

from collections.abc import Mapping

import numpy as np

from .._checks import check_number
from ..module import Module, Parameter
from .foreach import group_plan


def _fmt(value):
    return repr(value) if not isinstance(value, float) else f"{value:g}"


class Optimizer:
    """Base class: subclasses set ``defaults`` and implement ``_update``.

    Args:
        params: an iterable of Parameters (e.g. ``model.parameters()``), or of
            dicts ``{"params": [...], "lr": ...}`` (parameter groups: any
            hyperparameter not given in a group takes the constructor's value).
        defaults: the hyperparameters.
    """

    #: per-parameter state arrays shaped like the parameter (subclasses).
    _array_state = ()

    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self._validate(self.defaults)
        self.param_groups = []
        self.state = {}
        self._scratch = {}
        if isinstance(params, Module):
            raise TypeError(f"{type(self).__name__} expected an iterable of Parameters, got a Module; "
                            f"pass model.parameters()")
        if isinstance(params, Parameter):
            raise TypeError(f"{type(self).__name__} expected an iterable of Parameters, got a single "
                            f"Parameter; pass [param]")
        if isinstance(params, (str, bytes)) or not hasattr(params, "__iter__"):
            raise TypeError(f"{type(self).__name__} expected an iterable of Parameters (model.parameters()), "
                            f"got {type(params).__name__}")
        groups = list(params)
        if not groups:
            raise ValueError(f"{type(self).__name__} got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    # -- groups ---------------------------------------------------------------
    def add_param_group(self, group):
        """Add ``{"params": [...], **hyperparameters}``; missing ones take the defaults."""
        name = type(self).__name__
        if not isinstance(group, dict) or "params" not in group:
            raise TypeError(f"{name} expected a parameter group dict with a 'params' key, got {group!r}")
        params = group["params"]
        params = [params] if isinstance(params, Parameter) else list(params)
        for i, p in enumerate(params):
            if not isinstance(p, Parameter):
                raise TypeError(f"{name} expected Parameters, got {type(p).__name__} at position {i}")
        unknown = set(group) - set(self.defaults) - {"params", "initial_lr"}
        if unknown:
            raise ValueError(f"{name} got unknown hyperparameter(s) {sorted(unknown)}")
        new = {**self.defaults, **{k: v for k, v in group.items() if k != "params"}}
        self._validate(new)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if len({id(p) for p in params}) != len(params) or seen & {id(p) for p in params}:
            raise ValueError(f"{name}: a Parameter appears more than once in the parameter groups")
        new["params"] = params
        self.param_groups.append(new)

    def _validate(self, hyper):
        """Raise ValueError for an invalid hyperparameter (subclasses extend)."""
        positive(self, "lr", hyper["lr"])

    def parameters(self):
        return [p for g in self.param_groups for p in g["params"]]

    # -- training -------------------------------------------------------------
    def zero_grad(self):
        """Set every parameter's ``.grad`` to zero, in place (one ``fill`` per run of flat parameters)."""
        if type(self)._update is not Optimizer._update:  # a subclass that updates one parameter at a time
            for group in self.param_groups:
                for p in group["params"]:
                    p.grad.fill(0)
            return
        plans = self.__dict__.get("_plans") or {}
        for group in self.param_groups:
            plan = plans.get(id(group))
            if plan is None or not plan.grads_current(group):
                plan = group_plan(self, group)
            plan.zero_grad()

    def step(self):
        """Update every parameter in place from its ``.grad``.

        Parameters that lie in one block (``Sequential`` and ``Graph`` lay
        theirs out so) are updated together, in a few vectorised calls, with
        exactly the per-parameter result (see ``nanonet.optim.foreach``).

        Every ``.grad`` must be an ndarray of its parameter's shape and dtype:
        one replaced by an array of another shape would otherwise be broadcast
        into the update. While the prepared plans are current (identity
        checks: no ``.grad`` was replaced) that holds by construction; when
        one is not, every ``.grad`` is checked (a few attribute comparisons
        each) before anything is updated, and nothing is updated if one is wrong.
        """
        if type(self)._update is not Optimizer._update:  # a subclass that updates one parameter at a time
            self._check_grads()
            for group in self.param_groups:
                for p in group["params"]:
                    self._update(p, group, self._state_for(p))
            return
        plans = self.__dict__.get("_plans") or {}
        groups = self.param_groups
        if len(groups) == 1:  # the usual case, without a list and a generator per step
            group = groups[0]
            plan = plans.get(id(group))
            if plan is None or not plan.current(self, group):
                self._check_grads()
                plan = group_plan(self, group)
            plan.step(self, group)
            return
        chosen = [plans.get(id(group)) for group in self.param_groups]
        if not all(plan is not None and plan.current(self, group) for plan, group in zip(chosen, self.param_groups)):
            self._check_grads()
            chosen = [group_plan(self, group) for group in self.param_groups]
        for plan, group in zip(chosen, self.param_groups):
            plan.step(self, group)

    def _check_grads(self):
        index = 0
        for group in self.param_groups:
            for p in group["params"]:
                g, v = p.grad, p.value
                if g.__class__ is not np.ndarray or g.shape != v.shape or g.dtype != v.dtype:
                    wrong_shape = isinstance(g, np.ndarray) and g.shape != v.shape
                    got = f"{g.dtype}{g.shape}" if isinstance(g, np.ndarray) else type(g).__name__
                    raise (ValueError if wrong_shape else TypeError)(
                        f"{type(self).__name__}.step: parameter #{index} is {v.dtype}{v.shape} but its .grad is "
                        f"{got}; a .grad must keep its parameter's shape and dtype (assign into it: "
                        f"p.grad[...] = g). Nothing was updated")
                index += 1

    def _update(self, p, group, state):
        """Update one parameter: ``_update_arrays`` on its value and grad (a subclass may override this instead)."""
        self._update_arrays(p.value, p.grad, group, state, *self._buffers(p, 2))

    def _update_arrays(self, value, grad, group, state, d, t):
        """Update ``value`` in place from ``grad`` and ``state``; ``d``, ``t`` are scratch arrays like ``value``.

        Subclasses implement it with element-wise operations only, so that it
        gives the same numbers on one parameter or on a block of many.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement _update_arrays (or _update)")

    def _state_for(self, p):
        state = self.state.get(p)
        if state is None:
            state = self.state[p] = {}
        else:
            for key in self._array_state:
                arr = state.get(key)
                if arr is not None and (arr.shape != p.value.shape or arr.dtype != p.value.dtype):
                    raise RuntimeError(
                        f"{type(self).__name__}: state {key!r} is {arr.dtype}{arr.shape} but its parameter is "
                        f"{p.value.dtype}{p.value.shape}; convert the model (model.to) before the first step"
                    )
        return state

    def _buffers(self, p, count):
        """``count`` scratch arrays shaped like ``p`` (reused every step, never saved)."""
        bufs = self._scratch.get(p)
        if bufs is None or bufs[0].dtype != p.value.dtype or len(bufs) < count:
            bufs = self._scratch[p] = [np.empty_like(p.value) for _ in range(count)]
        return bufs

    def __getstate__(self):
        """Copies (deepcopy, pickle) rebuild their vectorised plans from their own parameters."""
        state = dict(self.__dict__)
        state.pop("_plans", None)
        return state

    # -- state ----------------------------------------------------------------
    def state_dict(self):
        """A flat ``{str: ndarray}`` dict (copies); see the module docstring."""
        out = {"type": np.array(type(self).__name__)}
        index = 0
        for g, group in enumerate(self.param_groups):
            ids = np.arange(index, index + len(group["params"]), dtype=np.int64)
            out[f"param_groups.{g}.params"] = ids
            for key, value in group.items():
                if key != "params":
                    out[f"param_groups.{g}.{key}"] = np.array(value)
            for i, p in zip(ids, group["params"]):
                for key, value in self.state.get(p, {}).items():
                    out[f"state.{i}.{key}"] = np.array(value, copy=True)
            index += len(group["params"])
        return out

    def load_state_dict(self, state):
        """Restore hyperparameters and per-parameter state from ``state_dict()``.

        Every mismatch (optimizer type, groups, parameter indices, state keys,
        shapes, dtypes, invalid hyperparameters) is listed in one ValueError,
        raised before anything changes.
        """
        problems = self.state_dict_problems(state)
        if problems:
            raise ValueError(f"{type(self).__name__}.load_state_dict found {len(problems)} problem(s):\n  - "
                             + "\n  - ".join(problems))
        params = self.parameters()
        for g, group in enumerate(self.param_groups):
            group.update(self._decode_group(state, g))
        self.state = {}
        self._scratch = {}
        for key, value in state.items():
            if key.startswith("state."):
                _, i, name = key.split(".", 2)
                p = params[int(i)]
                arr = int(value) if name == "step" else np.array(value, dtype=p.value.dtype, copy=True)
                self.state.setdefault(p, {})[name] = arr

    def state_dict_problems(self, state):
        """The list of reasons ``state`` cannot be loaded here (empty if it can)."""
        if not isinstance(state, Mapping):
            raise TypeError(f"{type(self).__name__}.load_state_dict expected a dict from state_dict(), "
                            f"got {type(state).__name__}")
        problems = []
        kind = state.get("type")
        if kind is None or str(np.asarray(kind)) != type(self).__name__:
            got = None if kind is None else str(np.asarray(kind))
            return [f"optimizer type: expected {type(self).__name__!r}, got {got!r}"]
        params = self.parameters()
        groups = {k.split(".")[1] for k in state if k.startswith("param_groups.")}
        if groups != {str(g) for g in range(len(self.param_groups))}:
            problems.append(f"expected {len(self.param_groups)} parameter group(s), got {len(groups)}")
            return problems
        index = 0
        by_param = {}
        for g, group in enumerate(self.param_groups):
            problems += self._group_problems(state, g, index, len(group["params"]))
            index += len(group["params"])
        for key in state:
            if key == "type" or key.startswith("param_groups."):
                continue
            parts = key.split(".", 2)
            if len(parts) != 3 or parts[0] != "state" or not parts[1].isdigit():
                problems.append(f"unexpected key {key!r}")
            elif int(parts[1]) >= len(params):
                problems.append(f"{key!r}: parameter index out of range (there are {len(params)})")
            else:
                by_param.setdefault(int(parts[1]), {})[parts[2]] = np.asarray(state[key])
        for i, entries in by_param.items():
            problems += self._param_state_problems(i, params[i], entries, self._group_of(i, state))
        return problems

    def _group_problems(self, state, g, start, count):
        problems = []
        ids = state.get(f"param_groups.{g}.params")
        expected = np.arange(start, start + count)
        if ids is None or np.asarray(ids).shape != expected.shape or not np.array_equal(ids, expected):
            problems.append(f"param_groups.{g}.params: expected indices {expected.tolist()}, "
                            f"got {None if ids is None else np.asarray(ids).tolist()}")
        present = {k.split(".", 2)[2] for k in state if k.startswith(f"param_groups.{g}.")} - {"params"}
        for key in sorted(set(self.defaults) - present):
            problems.append(f"param_groups.{g}: missing hyperparameter {key!r}")
        for key in sorted(present - set(self.defaults) - {"initial_lr"}):
            problems.append(f"param_groups.{g}: unexpected hyperparameter {key!r}")
        if not problems:
            try:
                self._validate(self._decode_group(state, g))
            except (ValueError, TypeError) as exc:
                problems.append(f"param_groups.{g}: {exc}")
        return problems

    def _decode_group(self, state, g):
        prefix = f"param_groups.{g}."
        out = {}
        for key, value in state.items():
            if not key.startswith(prefix) or key == prefix + "params":
                continue
            name, arr = key[len(prefix):], np.asarray(value)
            default = self.defaults.get(name, 0.0)
            if isinstance(default, tuple):
                out[name] = tuple(float(v) for v in arr.reshape(-1))
            elif isinstance(default, bool):
                out[name] = bool(arr)
            else:
                out[name] = float(arr) if arr.shape == () and arr.dtype.kind in "fiub" else arr
        return out

    def _group_of(self, i, state):
        for g in range(len(self.param_groups)):
            ids = np.asarray(state.get(f"param_groups.{g}.params", ()))
            if i in ids:
                try:
                    return self._decode_group(state, g)
                except (ValueError, TypeError):
                    return {}
        return {}

    def _param_state_problems(self, i, p, entries, group):
        problems = []
        expected = self._expected_state(group)
        for key in sorted(set(entries) - expected):
            problems.append(f"state.{i}: unexpected entry {key!r}")
        for key in sorted(expected - set(entries)):
            problems.append(f"state.{i}: missing entry {key!r}")
        for key, arr in entries.items():
            if key == "step":
                if arr.shape != () or arr.dtype.kind not in "iu":
                    problems.append(f"state.{i}.step: expected an integer scalar, got {arr.dtype}{arr.shape}")
            elif key in expected and arr.shape != p.value.shape:
                problems.append(f"state.{i}.{key}: expected shape {p.value.shape}, got {arr.shape}")
            elif key in expected and arr.dtype != p.value.dtype:
                problems.append(f"state.{i}.{key}: expected dtype {p.value.dtype}, got {arr.dtype}")
        return problems

    def _expected_state(self, group):
        """The set of state keys a stepped parameter has under ``group``."""
        return set(self._array_state)

    # -- display --------------------------------------------------------------
    def __repr__(self):
        group = self.param_groups[0]
        hyper = ", ".join(f"{k}={_fmt(group[k])}" for k in self.defaults)
        count = sum(len(g["params"]) for g in self.param_groups)
        groups = f", groups={len(self.param_groups)}" if len(self.param_groups) > 1 else ""
        return f"{type(self).__name__}({hyper}; {count} parameters{groups})"


# -- hyperparameter checks (in the constructor), all through the one shared helper -------------
def positive(opt, name, value):
    check_number(type(opt).__name__, name, value, low=0, low_open=True)


def non_negative(opt, name, value):
    check_number(type(opt).__name__, name, value, low=0)


def in_range(opt, name, value, low, high, *, high_open=True):
    check_number(type(opt).__name__, name, value, low=low, high=high, high_open=high_open)


def flag(opt, name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{type(opt).__name__} expected {name} to be True or False, got {value!r}")
