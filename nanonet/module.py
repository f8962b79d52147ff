"""The core contract: ``Parameter``, ``Buffer`` and ``Module``.

A module is a small object with a hand-written ``forward`` and ``backward``:

- ``forward(x)`` computes the output and caches exactly what ``backward`` needs;
- ``backward(grad_out)`` *adds* ``dJ/dparam`` into every parameter's ``.grad``
  and returns ``dJ/dx``.

Parameters and child modules are found by looking at the module's attributes
(``vars(self)``) in assignment order; a user registers them by plain
assignment and nothing else (no ``__setattr__`` magic, no registration call).
"""

import contextlib
import contextvars
from collections.abc import Mapping

import numpy as np

from . import _contract
from ._checks import check_finite, who

_DETECT_ANOMALY = contextvars.ContextVar("nanonet_detect_anomaly", default=False)


@contextlib.contextmanager
def detect_anomaly(enabled=True):
    """Within this block, NaN/Inf produced by any module raises at once.

    Containers check each child's output (forward) and input gradient
    (backward) and name the child that produced the first non-finite value.

    >>> import nanonet as nn
    >>> with nn.detect_anomaly():
    ...     pass
    """
    token = _DETECT_ANOMALY.set(bool(enabled))
    try:
        yield
    finally:
        _DETECT_ANOMALY.reset(token)


def anomaly_enabled():
    """True inside a ``detect_anomaly()`` block."""
    return _DETECT_ANOMALY.get()


def _check_finite_value(module, value, name):
    """``check_finite`` on an array, on each array of a tuple or list, or on each value of a dict."""
    if isinstance(value, dict):
        for key, item in value.items():
            check_finite(module, item, name=f"{name} {key!r}")
    elif isinstance(value, (tuple, list)) and value and all(isinstance(v, np.ndarray) for v in value):
        for i, item in enumerate(value):
            check_finite(module, item, name=f"{name} {i}")
    else:
        check_finite(module, value, name=name)


class _State:
    """An ndarray held by a module and saved in its ``state_dict``."""

    def __init__(self, value):
        if not isinstance(value, np.ndarray):
            raise TypeError(f"{type(self).__name__} expected a numpy.ndarray, got {type(value).__name__}")
        self.value = value

    @property
    def shape(self):
        return self.value.shape

    @property
    def dtype(self):
        return self.value.dtype

    @property
    def size(self):
        return self.value.size

    def __repr__(self):
        return f"{type(self).__name__}(shape={self.value.shape}, dtype={self.value.dtype})"


class Parameter(_State):
    """A trainable array that carries its own gradient.

    Attributes:
        value: the ndarray (floating point).
        grad: an ndarray of the same shape and dtype, zeros at first.

    >>> p = Parameter(np.ones((2, 3)))
    >>> p.grad.shape, p.grad.dtype, float(p.grad.sum())
    ((2, 3), dtype('float64'), 0.0)
    """

    def __init__(self, value):
        super().__init__(value)
        if value.dtype.kind != "f":
            raise TypeError(f"Parameter expected a floating-point array, got dtype {value.dtype}")
        self.grad = np.zeros_like(value)

    def zero_grad(self):
        self.grad.fill(0)


class Buffer(_State):
    """Non-trainable state that belongs in ``state_dict`` (e.g. running statistics).

    >>> Buffer(np.zeros(3))
    Buffer(shape=(3,), dtype=float64)
    """


class Module:
    """Base class of every layer and container.

    Subclasses implement ``forward(x)`` and ``backward(grad_out)``. Calling a
    module (``module(x)``) runs ``forward(x)``; at this public entry point the
    input is also checked for NaN/Inf (``FloatingPointError``). Containers call
    their children's ``forward`` directly, so the check happens once per call.

    ``backward`` adds into ``.grad`` and never overwrites it: call
    ``zero_grad()`` between steps. Calling it twice after one ``forward``
    accumulates twice (the cache is kept).

    **The contract checks what every layer would otherwise repeat.** The
    ``forward`` and ``backward`` a subclass defines are wrapped once, when
    the class is created (``__init_subclass__``, see ``nanonet._contract``):
    an input whose dtype kind is not in ``input_kinds`` is a ``TypeError``,
    ``backward`` before ``forward`` a ``RuntimeError``, a ``grad_out`` whose
    shape or dtype differs from the last output a ``ValueError`` or
    ``TypeError``, and any error raised inside names the module. All of it
    happens before the layer's own code runs, so nothing changes on failure.

    A subclass needs no ``super().__init__()``: ``training`` defaults to True.

    Class attributes that describe a layer to the framework:

    - ``input_kinds``: the numpy dtype kinds its inputs may have: ``"f"``
      (floating point, the default), ``"iu"`` for integer indices, a tuple
      with one entry per positional input, or ``None`` when the module checks
      its inputs itself (containers).
    - ``kinks``: input values where the layer is not differentiable (ReLU:
      ``(0.0,)``); the gradient checker accepts any subgradient there. A
      kink between inputs (max pooling's ties) is named by a string, and the
      layer's ``kink_pieces(x)`` says which smooth piece each output is on
      (see ``nanonet.gradcheck.engine.kink_piece_function``).
    - ``batch_independent``: True when row ``i`` of the output depends only
      on row ``i`` of the input (Linear, activations; not BatchNorm in
      training). The checker then batches perturbations along the rows.
    """

    training = True
    input_kinds = "f"
    kinks = ()
    batch_independent = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _contract.install(cls)

    # -- the contract -------------------------------------------------------
    def forward(self, x):
        raise NotImplementedError(f"{type(self).__name__} must implement forward(x)")

    def backward(self, grad_out):
        raise NotImplementedError(f"{type(self).__name__} must implement backward(grad_out)")

    def __call__(self, x, *more, **options):
        """``module(x)`` runs ``forward(x)`` after checking ``x``'s kind and that it holds no NaN/Inf.

        Several arrays (merge modules such as ``nn.Add``) are checked each
        and passed to ``forward(*arrays)``. Keyword options on arrays (an
        attention mask: ``mha(x, key_padding_mask=m, is_causal=True)``) are
        passed to ``forward`` as they are: they are options, not inputs, so
        they get no kind or NaN/Inf check and no gradient. Called on symbolic
        graph nodes (an ``nn.Input`` or what a module made of one), it builds
        a graph node instead: the node's ``graph_call`` does that (see
        ``nanonet.containers.graph_build``), with ``name=`` as the only option.
        """
        if more or options or x.__class__ is not np.ndarray:
            return self._call_general((x, *more), options)
        kinds = self.input_kinds
        if kinds is not None and (kinds.__class__ is not str or x.dtype.kind not in kinds):
            _contract.check_input_kinds(self, (x,), kinds)
        check_finite(self, x)
        out = self.forward(x)
        if _DETECT_ANOMALY.get():
            check_finite(self, out, name="output (made by this module)")
        return out

    def _call_general(self, args, options):
        for arg in args:
            graph_call = getattr(arg, "graph_call", None)
            if graph_call is not None:
                return graph_call(self, args, options)
        name = options.pop("name", None)
        if name is not None:
            raise TypeError(f"{who(self)} got name={name!r}, which names a graph node; it was called on arrays")
        if self.input_kinds is not None:
            _contract.check_input_kinds(self, args, self.input_kinds)
        for i, arg in enumerate(args):
            _check_finite_value(self, arg, "input" if len(args) == 1 else f"input {i}")
        out = self.forward(*args, **options)
        if _DETECT_ANOMALY.get():
            _check_finite_value(self, out, "output (made by this module)")
        return out

    # -- structure ----------------------------------------------------------
    def named_children(self):
        """Yield ``(name, module)`` for direct children, in assignment order.

        A list or tuple of modules assigned to an attribute yields
        ``name.0``, ``name.1``, ...
        """
        for name, value in vars(self).items():
            if isinstance(value, Module):
                yield name, value
            elif isinstance(value, (list, tuple)) and value and all(isinstance(v, Module) for v in value):
                for i, child in enumerate(value):
                    yield f"{name}.{i}", child

    def children(self):
        return [m for _, m in self.named_children()]

    def _named_own(self, kind):
        for name, value in vars(self).items():
            if isinstance(value, kind):
                yield name, value

    def _named_members(self, kind, prefix, seen):
        for name, member in self._named_own(kind):
            if id(member) not in seen:
                seen.add(id(member))
                yield prefix + name, member
        for name, child in self.named_children():
            yield from child._named_members(kind, f"{prefix}{name}.", seen)

    def named_parameters(self):
        """Yield ``(dotted_name, Parameter)``: own parameters first, then each
        child's, in assignment order. A shared Parameter appears once, under
        the first name that reaches it."""
        return self._named_members(Parameter, "", set())

    def parameters(self):
        """A list of the distinct Parameters (a shared one is listed once)."""
        return [p for _, p in self.named_parameters()]

    def named_buffers(self):
        return self._named_members(Buffer, "", set())

    def modules(self):
        """This module and all its descendants, depth first."""
        out = [self]
        for _, child in self.named_children():
            out.extend(child.modules())
        return out

    # -- state --------------------------------------------------------------
    def zero_grad(self):
        """Set every parameter's ``.grad`` to 0, in place: own parameters, then each child's.

        It runs every step, so it builds no names: one pass over the
        attributes finds parameters and children (as ``named_children`` does);
        a class that overrides ``named_children`` gets its ``children()``.
        """
        generic = type(self).named_children is Module.named_children
        for value in vars(self).values():
            if isinstance(value, Parameter):
                value.grad.fill(0)
            elif generic and isinstance(value, Module):
                value.zero_grad()
            elif generic and isinstance(value, (list, tuple)):
                for item in value:
                    if isinstance(item, Module):
                        item.zero_grad()
        if not generic:
            for child in self.children():
                child.zero_grad()

    def train(self, mode=True):
        for m in self.modules():
            m.training = bool(mode)
        return self

    def eval(self):
        return self.train(False)

    def to(self, dtype):
        """Convert every parameter (value and grad) and buffer to ``dtype``, in place.

        The Parameter objects stay the same, so optimizers keep their keys.
        """
        dtype = np.dtype(dtype)
        if dtype.kind != "f":
            raise TypeError(f"{self.short_repr()}.to expected a floating-point dtype, got {dtype}")
        for p in self.parameters():
            p.value = p.value.astype(dtype)
            p.grad = p.grad.astype(dtype)
        for _, b in self.named_buffers():
            b.value = b.value.astype(dtype)
        return self

    def state_dict(self):
        """A dict of copies: ``{dotted_name: ndarray}`` for parameters, then buffers."""
        state = {name: p.value.copy() for name, p in self.named_parameters()}
        state.update({name: b.value.copy() for name, b in self.named_buffers()})
        return state

    def load_state_dict(self, state):
        """Copy ``state`` into this module's parameters and buffers, in place.

        Names, shapes and dtypes must match exactly. Every mismatch is listed
        in one error, raised before anything is changed.
        """
        problems = self.state_dict_problems(state)
        if problems:
            raise ValueError(
                f"{self.short_repr()}.load_state_dict found {len(problems)} problem(s):\n  - "
                + "\n  - ".join(problems)
            )
        for name, target in self._state_targets().items():
            np.copyto(target.value, state[name])

    def _state_targets(self):
        targets = dict(self.named_parameters())
        targets.update(self.named_buffers())
        return targets

    def state_dict_problems(self, state):
        """What in ``state`` does not fit this module: a list of strings, empty if all fits.

        Lists missing keys, unexpected keys, and shape or dtype mismatches.
        """
        if not isinstance(state, Mapping):
            raise TypeError(f"{self.short_repr()} expected a state dict ({{name: array}}), got {type(state).__name__}")
        targets = self._state_targets()
        problems = [f"missing key {name!r}" for name in targets if name not in state]
        problems += [f"unexpected key {name!r}" for name in state if name not in targets]
        for name, target in targets.items():
            if name not in state:
                continue
            arr = np.asarray(state[name])
            if arr.dtype.kind not in "biuf":
                problems.append(f"{name!r}: expected an array of numbers, got {type(state[name]).__name__} "
                                f"of dtype {arr.dtype}")
            elif arr.shape != target.value.shape:
                problems.append(f"{name!r}: expected shape {target.value.shape}, got {arr.shape}")
            elif arr.dtype != target.value.dtype:
                problems.append(f"{name!r}: expected dtype {target.value.dtype}, got {arr.dtype}")
        return problems

    # -- display ------------------------------------------------------------
    def extra_repr(self):
        """The configuration shown inside ``ClassName(...)``; override it."""
        return ""

    def __repr__(self):
        children = list(self.named_children())
        if not children:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, child in children:
            body = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {body}")
        lines.append(")")
        return "\n".join(lines)

    def short_repr(self):
        """A one-line repr, for error messages."""
        text = repr(self)
        if "\n" not in text:
            return text
        return f"{type(self).__name__}({len(list(self.named_children()))} children)"
