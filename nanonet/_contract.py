"""The checks every layer gets from the contract without writing them.

``Module.__init_subclass__`` (and ``Loss``'s) passes each ``forward`` and
``backward`` that a class body defines through :func:`checked_forward` and
:func:`checked_backward`. A user's layer is then as short as the maths, and
still gives the standard errors, named after it, before anything changes:

``forward(*inputs)``
    - every positional input must be a ``numpy.ndarray`` whose dtype kind is
      in the class's ``input_kinds`` (``"f"``, floating point, by default;
      Embedding takes ``"iu"``; ``None`` means the module checks its inputs
      itself, as containers do): else ``TypeError``, before ``forward`` runs;
    - an exception raised inside ``forward`` that does not already name the
      module is re-raised with the same type, naming the module and the
      input shapes;
    - the output's shape and dtype are remembered for ``backward``; a
      ``forward`` that raised forgets them.

``backward(grad_out)``
    - before a successful ``forward``: ``RuntimeError``;
    - ``grad_out`` must be an ndarray of exactly the last output's shape
      (else ``ValueError``) and dtype (else ``TypeError``): nothing is
      broadcast or cast. A module with several outputs takes a tuple of
      gradients, one per output (``None`` allowed for an unused one);
    - exceptions inside are named as in ``forward``.

The cost is one extra Python call per ``forward``/``backward`` (well under a
microsecond). The function the class body wrote stays reachable as
``type(m).forward.__wrapped__``, for a container that has already checked
what flows between its children (the fast path).
"""

import functools

import numpy as np

from ._checks import renamed_error, shape_text, who

#: ``_last_output`` of a module whose output is not an array or a tuple of arrays (a loss's float, a dict).
UNCHECKED = "unchecked"
_NUMERIC_KINDS = "biufc"
_KIND_NAMES = {"f": "floating-point", "i": "signed integer", "u": "unsigned integer", "b": "boolean",
               "c": "complex"}


def kinds_text(kinds):
    return " or ".join(_KIND_NAMES.get(k, k) for k in kinds)


def check_input_kinds(module, args, kinds):
    """Raise ``TypeError`` naming ``module`` unless each array in ``args`` has a dtype kind in ``kinds``.

    ``kinds`` is a string of numpy kind letters for every argument, or a
    tuple of them, one per positional argument (``None`` in it: unchecked).
    """
    for i, x in enumerate(args):
        allowed = kinds[i] if isinstance(kinds, tuple) and i < len(kinds) else kinds
        if allowed is None or isinstance(kinds, tuple) and i >= len(kinds):
            continue
        name = "input" if len(args) == 1 else f"input {i}"
        if not isinstance(x, np.ndarray):
            raise TypeError(f"{who(module)} expected {name} to be a numpy.ndarray, got {type(x).__name__}")
        if x.dtype.kind not in allowed:
            hint = " (convert with x.astype(np.float64); nanonet does not cast silently)" if allowed == "f" else ""
            raise TypeError(
                f"{who(module)} expected a {kinds_text(allowed)} {name}, got dtype {x.dtype}{hint}"
            )


def output_record(out):
    """What ``backward`` checks its gradient against: ``(shape, dtype)``, a list of them, or UNCHECKED."""
    if out.__class__ is np.ndarray:
        return (out.shape, out.dtype)
    if isinstance(out, (tuple, list)) and out and all(isinstance(o, np.ndarray) for o in out):
        return [(o.shape, o.dtype) for o in out]
    return UNCHECKED


def _check_one(module, g, record, name):
    shape, dtype = record
    if not isinstance(g, np.ndarray):
        raise TypeError(f"{who(module)} expected {name} to be a numpy.ndarray, got {type(g).__name__}")
    if g.shape != shape:
        raise ValueError(f"{who(module)} expected {name} of shape {shape_text(shape)}, got {shape_text(g.shape)} "
                         f"(a gradient has the shape of the module's last output)")
    if g.dtype != dtype:
        raise TypeError(f"{who(module)} expected {name} of dtype {dtype}, got {g.dtype} (a gradient has the "
                        f"dtype of the module's last output; nanonet does not cast silently)")


def check_grads(module, args, kwargs, record):
    """Raise unless ``backward``'s gradient(s) match the last output ``record``."""
    if record is None:
        raise RuntimeError(f"{who(module)}: backward called before forward (or after a forward that failed); "
                           f"call forward(x) first")
    if record is UNCHECKED:
        return
    g = args[0] if args else kwargs.get("grad_out")
    if record.__class__ is tuple:
        _check_one(module, g, record, "grad_out")
        return
    grads = g if len(args) <= 1 else args
    if not isinstance(grads, (tuple, list)) or len(grads) != len(record):
        got = f"{type(grads).__name__} of length {len(grads)}" if isinstance(grads, (tuple, list)) \
            else type(grads).__name__
        raise TypeError(f"{who(module)} expected a tuple of {len(record)} gradients (one per output), got {got}")
    for i, (piece, rec) in enumerate(zip(grads, record)):
        if piece is not None:
            _check_one(module, piece, rec, f"grad_out {i}")


def _named(module, exc, phase, args):
    """``exc`` re-made to name ``module`` (None when it already does, or cannot be re-made)."""
    if type(module).__name__ in str(exc):
        return None
    shapes = ", ".join(shape_text(a.shape) if isinstance(a, np.ndarray) else type(a).__name__ for a in args)
    return renamed_error(exc, f"{who(module)} failed in {phase} (given {shapes or 'nothing'}): {exc}")


def checked_forward(fn):
    """Wrap a class body's ``forward`` with the contract's input checks (see the module docstring)."""

    @functools.wraps(fn)
    def forward(self, *args, **kwargs):
        kinds = self.input_kinds
        if kinds is not None:
            if kinds.__class__ is str:
                for x in args:
                    if x.__class__ is not np.ndarray or x.dtype.kind not in kinds:
                        check_input_kinds(self, args, kinds)
            else:
                check_input_kinds(self, args, kinds)
        try:
            out = fn(self, *args, **kwargs)
        except Exception as exc:
            self._last_output = None
            new = _named(self, exc, "forward", args)
            if new is None:
                raise
            raise new from exc
        self._last_output = output_record(out)
        return out

    forward.__contract__ = True
    return forward


def checked_backward(fn):
    """Wrap a class body's ``backward`` with the contract's gradient checks (see the module docstring)."""

    @functools.wraps(fn)
    def backward(self, *args, **kwargs):
        record = getattr(self, "_last_output", None)
        if record is UNCHECKED:  # the last output was not an array (a loss's float): nothing to compare
            pass
        elif record.__class__ is not tuple or not args or args[0].__class__ is not np.ndarray \
                or args[0].shape != record[0] or args[0].dtype != record[1]:
            check_grads(self, args, kwargs, record)
        try:
            return fn(self, *args, **kwargs)
        except Exception as exc:
            new = _named(self, exc, "backward", args)
            if new is None:
                raise
            raise new from exc

    backward.__contract__ = True
    return backward


def install(cls):
    """Wrap the ``forward``/``backward`` that ``cls``'s own body defines (once; never twice).

    A class with ``checks_itself = True`` (containers, which check what flows
    between their children and name the child) is left as written, and so
    are its subclasses: wrapping only one of a forward/backward pair would
    leave the pair inconsistent (so a wrapped method it inherits is unwrapped).
    """
    if getattr(cls, "checks_itself", False):
        for name in ("forward", "backward"):  # inherited wrapped methods too: the pair stays consistent
            fn = getattr(cls, name, None)
            if getattr(fn, "__contract__", False):
                setattr(cls, name, unwrapped(fn))
        return
    for name, wrap in (("forward", checked_forward), ("backward", checked_backward)):
        fn = cls.__dict__.get(name)
        if callable(fn) and not getattr(fn, "__contract__", False):
            setattr(cls, name, wrap(fn))


def unwrapped(fn):
    """The function a class body wrote, under the contract's wrapper."""
    return getattr(fn, "__wrapped__", fn) if getattr(fn, "__contract__", False) else fn


def is_numeric_kind(kind):
    return kind in _NUMERIC_KINDS
