"""Why a gradient row failed: kinks, and the common hand-written-backprop mistakes.

Two jobs, both used by ``check_gradients``:

- ``resolve_kinks`` looks again at the elements whose central difference
  disagrees with the analytic value. With a smaller step it tells a point
  that only lies *near* a kink (the smaller step agrees) from a point *at* a
  kink (the one-sided differences keep disagreeing however small the step),
  and accepts the analytic value at a kink when it lies between the left and
  right one-sided differences: a valid subgradient.
- ``diagnose`` compares a failed row's analytic vector with its numeric one
  and names the mistake that fits: an overwritten instead of accumulated
  ``.grad``, a zero gradient, a sign flip, a factor of N or 2, a transposed
  weight gradient, a sum over the wrong axis.
"""

import itertools

import numpy as np

_TINY = np.finfo(np.float64).tiny
_SHRINK = 16.0  # the second, smaller step is eps / _SHRINK


def _close(u, v, rel=1e-4):
    """``u`` and ``v`` agree to ``rel`` of their size (Euclidean norms)."""
    scale = np.linalg.norm(u) + np.linalg.norm(v)
    return bool(np.linalg.norm(u - v) <= rel * scale + 1e-9 * np.sqrt(u.size))


def resolve_kinks(analytic, numeric, plus, minus, eps, tol_fn, reevaluate, noise=0.0):
    """Accept elements that fail only because of a kink.

    For each failing probe the step shrinks (eps/16, eps/256, eps/4096).
    A probe is accepted *near* a kink as soon as the central difference at
    the smaller step agrees with the analytic value, and *at* a kink when the
    gap between the one-sided differences stays the same as the step shrinks
    (a jump in the derivative, not curvature, which shrinks with the step)
    and the analytic value lies between them. A probe whose one-sided
    differences agree is smooth there: a real disagreement, left as it is.

    Args:
        analytic, numeric: (P,) analytic and central-difference values.
        plus, minus: (P,) ``f(+eps) - f0`` and ``f(-eps) - f0``.
        tol_fn: ``numeric -> per-element tolerance``.
        reevaluate: ``(positions, step) -> (plus, minus)`` at a smaller step.
        noise: the round-off in one objective difference (absolute); it
            widens the tolerance of the one-sided differences by ``noise / step``.

    Returns:
        ``(numeric, kink_positions)``: the numeric values with each accepted
        element replaced by the value it was accepted against, and the
        positions of the accepted elements.
    """
    bad = np.flatnonzero(np.abs(analytic - numeric) > tol_fn(numeric))
    numeric = numeric.copy()
    accepted = []
    jump = np.abs(plus[bad] + minus[bad]) / eps  # |right - left|
    for level in (_SHRINK, _SHRINK ** 2, _SHRINK ** 3):
        if bad.size == 0:
            break
        h = eps / level
        plus2, minus2 = reevaluate(bad, h)
        a = analytic[bad]
        central2 = (plus2 - minus2) / (2 * h)
        left2, right2 = -minus2 / h, plus2 / h
        tol2 = tol_fn(central2) + noise / h
        jump2 = np.abs(right2 - left2)
        near = np.abs(a - central2) <= tol2
        steady = np.abs(jump2 - jump) <= 0.1 * jump + tol2
        between = (a >= np.minimum(left2, right2) - tol2) & (a <= np.maximum(left2, right2) + tol2)
        at_kink = ~near & (jump2 > tol2) & steady & between
        numeric[bad[near]] = central2[near]
        numeric[bad[at_kink]] = a[at_kink]  # a valid subgradient: compared against itself
        accepted.append(bad[near | at_kink])
        keep = ~(near | at_kink) & (jump2 > tol2)  # smooth probes cannot be kinks: stop looking
        bad, jump = bad[keep], jump2[keep]
    return numeric, (np.concatenate(accepted) if accepted else bad[:0])


def _factor_text(c, batch):
    names = []
    if batch and batch > 1:
        names += [(batch, f"too large by a factor of N = {batch}, the batch size (a forgotten 1/N of a batch mean)"),
                  (1 / batch, f"too small by a factor of N = {batch}, the batch size (divided by N once too often)")]
    names += [(2.0, "too large by a factor of 2 (e.g. a forgotten 1/2, or x**2 differentiated twice)"),
              (0.5, "too small by a factor of 2 (e.g. a spurious 1/2)")]
    for value, text in names:
        if abs(c - value) <= 1e-3 * abs(value):
            return f"off by a factor: the analytic gradient is {text}"
    return f"off by a constant factor: the analytic gradient is {c:.4g} times the numeric one"


def _transposed(a, n, shape):
    if len(shape) != 2:
        return False
    rows, cols = shape
    if rows == cols:
        return _close(a.reshape(shape), n.reshape(shape).T)
    return _close(a.reshape(cols, rows), n.reshape(shape).T)


def _wrong_axis(a, n, shape):
    """The axes whose sum, broadcast back, reproduces the analytic gradient."""
    if a.size < 2:
        return None
    grid = n.reshape(shape)
    for k in range(1, len(shape) + 1):
        for axes in itertools.combinations(range(len(shape)), k):
            if all(shape[i] == 1 for i in axes):
                continue
            summed = np.broadcast_to(grid.sum(axis=axes, keepdims=True), shape).reshape(-1)
            if _close(a, summed):
                return axes
    return None


def diagnose(analytic, numeric, shape, *, batch=None, prefill=None):
    """Name the mistake that turns ``numeric`` into ``analytic``, or None.

    Args:
        analytic, numeric: the failed row's full vectors (same size).
        shape: the array's shape (for axis and transpose tests).
        batch: N, the number of rows of the input (for a factor of N).
        prefill: what the checker put into ``.grad`` before backward (a
            parameter row), to recognize an overwrite.

    >>> import numpy as np
    >>> diagnose(-np.arange(1.0, 4.0), np.arange(1.0, 4.0), (3,))
    'sign flip: the analytic gradient is the negative of the numeric one'
    """
    a = np.asarray(analytic, dtype=np.float64).reshape(-1)
    n = np.asarray(numeric, dtype=np.float64).reshape(-1)
    shape = tuple(shape)
    if prefill is not None:
        p = np.asarray(prefill, dtype=np.float64).reshape(-1)
        if np.any(p) and _close(a + p, n) and not _close(a, n):
            return ("overwritten instead of accumulated: backward replaced .grad (`grad = ...`) where it must "
                    "add (`grad += ...`); the value it held before backward was lost")
    if not np.any(n):
        return "the analytic gradient should be zero here: backward adds something where nothing depends on it"
    if np.linalg.norm(a) <= 1e-12 * np.linalg.norm(n):
        return "the analytic gradient is zero: backward does not add into this .grad (or returns zeros)"
    if _close(a, -n):
        return "sign flip: the analytic gradient is the negative of the numeric one"
    c = float(np.dot(a, n) / np.dot(n, n))
    if _close(a, c * n) and abs(c - 1) > 1e-3:
        return _factor_text(c, batch)
    if _transposed(a, n, shape):
        return "transposed weight gradient: the analytic gradient is the numeric one transposed (x.T @ g vs g.T @ x)"
    axes = _wrong_axis(a, n, shape)
    if axes is not None:
        if len(axes) == len(shape):
            where = "all axes: every element equals the sum of the whole numeric gradient"
        else:
            where = f"axis {axes[0] if len(axes) == 1 else axes}"
        return (f"summed over the wrong axis ({where}); e.g. np.sum(grad_out) where grad_out.sum(axis=0) "
                f"was meant (the seed's bias bug)")
    return None
