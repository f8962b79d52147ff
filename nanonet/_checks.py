"""Input validation shared by modules: clear errors before any state changes.

Every message names the module (its repr), what it expected and what it got.
Nothing is cast, broadcast or upcast here: a mismatch is an error.
"""

import math
import numbers

import numpy as np


def who(module):
    """A one-line description of ``module`` for error messages."""
    short = getattr(module, "short_repr", None)
    return short() if callable(short) else repr(module)


def shape_text(shape):
    """``(32, 12)``: a shape as error messages write it."""
    return "(" + ", ".join(str(s) for s in shape) + ")"


_shape_text = shape_text


def one_line(text):
    """A message on one line (for the command line): its lines joined with '; '.

    >>> one_line("2 problem(s):\\n  - a\\n  - b")
    '2 problem(s):; - a; - b'
    """
    return "; ".join(part.strip() for part in str(text).splitlines() if part.strip())


def renamed_error(exc, message):
    """A new exception of ``exc``'s type carrying ``message``.

    When that type cannot be built from one message, ``exc`` gets the message
    as a note and None is returned: the caller then re-raises ``exc`` itself.
    """
    try:
        return type(exc)(message)
    except Exception:
        exc.add_note(message)
        return None


def check_numeric(module, x, *, name="input"):
    """Reject anything but an ndarray of numbers (bool, int, float, complex): strings, objects, dates..."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{who(module)} expected {name} to be a numpy.ndarray, got {type(x).__name__}")
    if x.dtype.kind not in "biufc":
        raise TypeError(f"{who(module)} expected a numeric {name}, got dtype {x.dtype}")


def check_array(module, x, *, name="input", dtype=None):
    """Reject anything but a floating-point ndarray (of ``dtype``, if given)."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{who(module)} expected {name} to be a numpy.ndarray, got {type(x).__name__}")
    if x.dtype.kind != "f":
        raise TypeError(
            f"{who(module)} expected a floating-point {name}, got dtype {x.dtype}; "
            f"nanonet does not cast silently: convert with x.astype(np.float64)"
        )
    if dtype is not None and x.dtype != dtype:
        raise TypeError(
            f"{who(module)} expected {name} of dtype {np.dtype(dtype)}, got {x.dtype}; "
            f"convert the data or the module (module.to(np.{x.dtype}))"
        )


def check_features(module, x, features, *, dtype=None, name="input"):
    """Check that ``x`` is a float array of shape ``(N, features)``."""
    check_array(module, x, name=name, dtype=dtype)
    if x.ndim != 2 or x.shape[1] != features:
        raise ValueError(f"{who(module)} expected {name} of shape (N, {features}), got {_shape_text(x.shape)}")


def check_same_shape(module, got, expected_shape, *, name="grad_out", dtype=None):
    """Check that ``got`` is a float array (of ``dtype``, if given) of exactly ``expected_shape``."""
    check_array(module, got, name=name, dtype=dtype)
    if got.shape != tuple(expected_shape):
        raise ValueError(
            f"{who(module)} expected {name} of shape {_shape_text(expected_shape)}, got {_shape_text(got.shape)}"
        )


def check_finite(module, x, *, name="input"):
    """Raise ``FloatingPointError`` if ``x`` holds NaN or Inf.

    A small float array is tested with ``np.isfinite(x).all()``. For a large
    one (or any other input) a finite ``x . x`` (one BLAS call; ``np.sum``
    for non-float input) proves every element finite without a temporary
    array; only when it is not finite (NaN, Inf, or overflow) is each element
    tested.
    """
    if x.__class__ is np.ndarray and x.dtype.kind == "f" and x.size <= 65536:
        if np.isfinite(x).all():
            return
    elif not isinstance(x, np.ndarray) or x.dtype.kind not in "biufc":
        check_numeric(module, x, name=name)
    if x.dtype.kind in "biu":
        return
    with np.errstate(over="ignore", invalid="ignore"):
        if x.__class__ is np.ndarray and x.dtype.kind == "f":
            flat = x.reshape(-1)
            if math.isfinite(np.dot(flat, flat)):
                return
        elif np.isfinite(np.sum(x)):
            return
    bad = ~np.isfinite(x)
    if bad.any():
        count = int(bad.sum())
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise FloatingPointError(
            f"{who(module)} got a non-finite {name}: {count} NaN/Inf value(s), the first at index {first}"
        )


def check_backward_ready(module, cache):
    if cache is None:
        raise RuntimeError(f"{who(module)}: backward called before forward; call forward(x) first")


def _range_text(low, high, low_open, high_open):
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low:g}"
    return f"{'<' if high_open else '<='} {high:g}"


def check_number(owner, name, value, *, low=None, high=None, low_open=False, high_open=False, integer=False):
    """A hyperparameter, checked: a finite real number (an int with ``integer=True``) within the bounds.

    The one helper every layer, loss, optimizer and tool validates its
    numbers with, so that NaN and Inf are refused everywhere (a check written
    as ``x <= 0`` lets NaN through). ``owner`` names the culprit: a class
    name (a str, in ``__init__``) or the object itself. ``low``/``high`` are
    inclusive unless ``low_open``/``high_open``. Returns ``float(value)`` (or
    ``int(value)``). bool is not a number here.

    >>> check_number("Dropout", "p", 0.5, low=0, high=1, high_open=True)
    0.5
    >>> check_number("LeakyReLU", "negative_slope", float("nan"))
    Traceback (most recent call last):
    ...
    ValueError: LeakyReLU expected a finite negative_slope, got nan
    """
    label = owner if isinstance(owner, str) else who(owner)
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, kind):
        what = "an int" if integer else "a real number"
        raise TypeError(f"{label} expected {name} to be {what}, got {value!r}")
    if not integer and not math.isfinite(value):
        raise ValueError(f"{label} expected a finite {name}, got {value!r}")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        kind = "to be an int " if integer else ""
        raise ValueError(f"{label} expected {name} {kind}{_range_text(low, high, low_open, high_open)}, got {value!r}")
    return int(value) if integer else float(value)
