"""Input validation shared by modules: clear errors before any state changes.

Every message names the module (its repr), what it expected and what it got.
Nothing is cast, broadcast or upcast here: a mismatch is an error.
"""

import math

import numpy as np


def who(module):
    """A one-line description of ``module`` for error messages."""
    short = getattr(module, "short_repr", None)
    return short() if callable(short) else repr(module)


def _shape_text(shape):
    return "(" + ", ".join(str(s) for s in shape) + ")"


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
