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
  ``.grad``, a zero gradient, a sign flip, a factor of N, of the number of
  features or elements, or of 2, a transposed weight gradient, a sum over the
  wrong axis (broadcast back, or of grad_out over another single axis), a
  mask error (right where a unit is active, wrong exactly where it is not),
  and, with the ``evidence`` of the model run again
  (``nanonet.gradcheck.evidence``): a stale cache, W where W.T was meant, a
  missing chain-rule factor (the derivative at the input instead of the
  output, or the reverse) and a missing mean or variance term of a
  normalization.
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


def _factor_candidates(sizes):
    """``(value, text)`` for each factor a forgotten or doubled normalization produces."""
    batch = sizes.get("batch")
    out = []
    if batch and batch > 1:
        out += [(batch, f"too large by a factor of N = {batch}, the batch size (a forgotten 1/N of a batch mean)"),
                (1 / batch, f"too small by a factor of N = {batch}, the batch size (divided by N once too often)")]
    for where in ("output", "input"):
        features = sizes.get(f"{where} features")
        if not features or features < 2 or (where == "input" and features == sizes.get("output features")):
            continue
        f_text = f"F = {features}, the number of {where} features per sample"
        out += [(features, f"too large by a factor of {f_text}: divided by the batch size N where the mean runs "
                           f"over all N*F elements"),
                (1 / features, f"too small by a factor of {f_text}: divided by all N*F elements where the mean "
                               f"runs over the N rows only")]
        if batch and batch > 1:
            size = batch * features
            out += [(size, f"too large by a factor of N*F = {size}, the number of {where} elements (a forgotten "
                           f"mean over all elements)"),
                    (1 / size, f"too small by a factor of N*F = {size}, the number of {where} elements (divided "
                               f"by all elements once too often)")]
    out += [(2.0, "too large by a factor of 2 (e.g. a forgotten 1/2, or x**2 differentiated twice)"),
            (0.5, "too small by a factor of 2 (e.g. a spurious 1/2)")]
    return out


def _factor_text(c, sizes):
    texts = [text for value, text in _factor_candidates(sizes) if abs(c - value) <= 1e-3 * abs(value)]
    if texts:
        return "off by a factor: the analytic gradient is " + "; or ".join(texts)
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


_MASK_CAUSE = "a ReLU/LeakyReLU mask taken from the wrong array, with the wrong threshold, or from the wrong layer"


def _mask_error(a, n):
    """Right on some elements, wrong exactly on the others in the way a wrong 0/1 (or slope) mask makes it."""
    scale = max(float(np.abs(a).max()), float(np.abs(n).max()))
    tiny = 1e-7 * scale
    live = (np.abs(a) > tiny) | (np.abs(n) > tiny)
    agree = live & (np.abs(a - n) <= 1e-4 * np.maximum(np.abs(a), np.abs(n)) + tiny)
    bad = live & ~agree
    blocked = bad & (np.abs(a) <= tiny)
    leaked = bad & (np.abs(n) <= tiny)
    if not agree.any() and blocked.any() and leaked.any() and not (bad & ~blocked & ~leaked).any():
        return (f"mask error: the mask is inverted: the analytic gradient is zero exactly where the numeric one "
                f"is not ({int(blocked.sum())} elements) and nonzero exactly where it is zero "
                f"({int(leaked.sum())}) ({_MASK_CAUSE})")
    if not agree.any() or not bad.any():
        return None
    head = (f"mask error: the analytic gradient matches the numeric one on {int(agree.sum())} of "
            f"{int(live.sum())} nonzero elements and is wrong exactly on the other {int(bad.sum())}")
    if not (bad & ~blocked & ~leaked).any():
        if not leaked.any():
            return f"{head}, where it is zero and the numeric one is not: backward blocks active units ({_MASK_CAUSE})"
        if not blocked.any():
            return (f"{head}, where it is nonzero and the numeric one is zero: backward lets the gradient through "
                    f"inactive units ({_MASK_CAUSE})")
        return (f"{head}: zero where the numeric one is not ({int(blocked.sum())}) and nonzero where it is zero "
                f"({int(leaked.sum())}): the mask does not match the units' activity ({_MASK_CAUSE})")
    if blocked.any() or leaked.any() or bad.sum() < 2:
        return None
    ratio = a[bad] / n[bad]
    c = float(np.median(ratio))
    if np.all(np.abs(ratio - c) <= 1e-3 * abs(c)):
        return (f"{head}, where it is {c:.4g} times the numeric one: the derivative chosen for those units is "
                f"wrong ({_MASK_CAUSE}, e.g. a LeakyReLU slope where 1 was meant)")
    return None


def _slices(arr, axes):
    """``arr`` as (slices, m): every slice runs over ``axes``, one per index of the other axes."""
    other = [i for i in range(arr.ndim) if i not in axes]
    m = int(np.prod([arr.shape[i] for i in axes]))
    return np.transpose(arr, other + list(axes)).reshape(-1, m)


def _missing_normalization_term(a, n, x):
    """The error is, per slice along some axes, a constant and/or a multiple of the standardized input."""
    if x is None or x.size != a.size or x.dtype.kind != "f":
        return None
    x = np.asarray(x, dtype=np.float64)
    d = (a - n).reshape(x.shape)
    if np.linalg.norm(d) <= 1e-6 * np.linalg.norm(n):
        return None
    for k in range(1, x.ndim + 1):
        for axes in itertools.combinations(range(x.ndim), k):
            diff, xs = _slices(d, axes), _slices(x, axes)
            m = diff.shape[1]
            if m < 4:
                continue
            z = xs - xs.mean(axis=1, keepdims=True)
            std = np.sqrt((z * z).mean(axis=1, keepdims=True))
            if np.any(std <= 1e-12 * (np.abs(xs).max() + 1e-300)):
                continue
            z /= std  # mean 0, norm sqrt(m): 1 and z are orthogonal, least squares is two means
            alpha, beta = diff.mean(axis=1, keepdims=True), (diff * z).mean(axis=1, keepdims=True)
            total = np.linalg.norm(diff)
            if np.linalg.norm(diff - alpha - beta * z) > 1e-5 * total:
                continue
            mean_part = np.sqrt(m) * np.linalg.norm(alpha)
            var_part = np.sqrt(m) * np.linalg.norm(beta)
            where = f"axis {axes[0]}" if len(axes) == 1 else f"axes {axes}"
            ax = axes[0] if len(axes) == 1 else axes
            mean_text = f"the path through the mean (- grad.mean(axis={ax}))"
            var_text = f"the path through the variance (- xhat * (grad * xhat).mean(axis={ax}))"
            if var_part <= 1e-4 * total:
                form, missing = "a constant", f"{mean_text} is"
            elif mean_part <= 1e-4 * total:
                form, missing = "a multiple of the normalized input", f"{var_text} is"
            else:
                form, missing = "a constant plus a multiple of the normalized input", f"{mean_text} and {var_text} are"
            return (f"a missing term of a normalization's backward: along {where} the error is, slice by slice, "
                    f"{form}: {missing} missing")
    return None


def _seed_sums(seed, size):
    """``{axes: seed summed over them}`` for every axis combination whose sum has ``size`` elements."""
    out = {}
    for k in range(1, seed.ndim + 1):
        for axes in itertools.combinations(range(seed.ndim), k):
            summed = seed.sum(axis=axes)
            if summed.size == size:
                out[axes] = summed.reshape(-1)
    return out


def _summed_over_wrong_axis(a, n, seed):
    """The analytic gradient is grad_out summed over other axes than the numeric one (a bias-like row)."""
    if seed is None:
        return None
    sums = _seed_sums(np.asarray(seed, dtype=np.float64), a.size)
    right = [axes for axes, v in sums.items() if _close(n, v)]
    wrong = [axes for axes, v in sums.items() if _close(a, v) and axes not in right]
    if not right or not wrong:
        return None

    def text(axes):
        return f"axis {axes[0]}" if len(axes) == 1 else f"axes {axes}"

    return (f"summed over the wrong axis: the analytic gradient is grad_out summed over {text(wrong[0])} where "
            f"{text(right[0])} was meant (e.g. grad_out.sum(axis={wrong[0][0] if len(wrong[0]) == 1 else wrong[0]}) "
            f"for a bias)")


def _w_instead_of_wt(a, n, shape, seed, matrices):
    """The input gradient multiplies grad_out by a square weight where its transpose was meant (or the reverse)."""
    if seed is None or len(shape) != 2 or seed.ndim != 2 or seed.shape[0] != shape[0]:
        return None
    got, want = a.reshape(shape), n.reshape(shape)
    for name, w in matrices.items():
        if w.shape != (shape[1], shape[1]) or seed.shape[1] != shape[1]:
            continue
        if _close(got, seed @ w) and _close(want, seed @ w.T):
            return (f"W instead of W.T: the analytic input gradient is grad_out @ {name} where grad_out @ {name}.T "
                    f"was meant (a square weight hides the shape error)")
        if _close(got, seed @ w.T) and _close(want, seed @ w):
            return (f"W.T instead of W: the analytic input gradient is grad_out @ {name}.T where grad_out @ {name} "
                    f"was meant (a square weight hides the shape error)")
    return None


def _stale_cache(a, n, name, evidence):
    repeated, previous = evidence.history()
    if repeated is None or repeated.get(name) is None or repeated[name].size != a.size:
        return None
    again = repeated[name].reshape(-1)
    if _close(a, again, rel=1e-6):
        return None
    text = ("stale cache: backward used values from an earlier forward: its result depends on the forward "
            "before the last one (after two forwards at the same input it is different")
    text += ", and right)" if _close(again, n) else ")"
    if previous is not None and previous.get(name) is not None and _close(a, previous[name].reshape(-1)):
        text += "; it equals the analytic gradient at that earlier input"
    return text + ". Cache everything backward needs in every forward"


def _chain_rule(a, n, shape, evidence):
    seed = evidence.seed
    if seed is None or seed.size != a.size:
        return None
    again, derivative = evidence.at_output()
    if again is not None and again.size == n.size and _close(again.reshape(-1), n):
        return ("missing chain-rule factor: the derivative was evaluated at the input where its formula is in "
                "terms of the output (e.g. 1 - x**2 for tanh or x * (1 - x) for sigmoid, with x the input: the "
                "formula needs y = f(x)); run at the output instead, backward gives the right gradient")
    if derivative is not None and derivative.size == a.size and _close(a, (seed * derivative).reshape(-1)):
        return ("missing chain-rule factor: the derivative was evaluated at the output y where it belongs at the "
                "input x (e.g. 1 - tanh(y)**2 with the cached y = tanh(x): that is f'(y), not f'(x))")
    if _close(a, seed.reshape(-1)):
        return "missing chain-rule factor: the analytic input gradient is grad_out itself (the derivative is missing)"
    return None


def diagnose(analytic, numeric, shape, *, batch=None, prefill=None, name=None, evidence=None, sizes=None):
    """Name the mistake that turns ``numeric`` into ``analytic``, or None.

    Args:
        analytic, numeric: the failed row's full vectors (same size).
        shape: the array's shape (for axis and transpose tests).
        batch: N, the number of rows of the input (for a factor of N).
        prefill: what the checker put into ``.grad`` before backward (a
            parameter row), to recognize an overwrite.
        name: the row (``"input"`` or a parameter's name), for the tests that
            need ``evidence`` (``nanonet.gradcheck.evidence.Evidence``): a stale
            cache, W for W.T, a sum over the wrong axis, a missing chain-rule
            factor or normalization term.
        sizes: ``{"batch": N, "input features": F, "output features": C}`` for
            the factors a wrong normalization produces.

    >>> import numpy as np
    >>> diagnose(-np.arange(1.0, 4.0), np.arange(1.0, 4.0), (3,))
    'sign flip: the analytic gradient is the negative of the numeric one'
    """
    a = np.asarray(analytic, dtype=np.float64).reshape(-1)
    n = np.asarray(numeric, dtype=np.float64).reshape(-1)
    shape = tuple(shape)
    sizes = dict(sizes or {})
    sizes.setdefault("batch", batch)
    if prefill is not None:
        p = np.asarray(prefill, dtype=np.float64).reshape(-1)
        if np.any(p) and _close(a + p, n) and not _close(a, n):
            return ("overwritten instead of accumulated: backward replaced .grad (`grad = ...`) where it must "
                    "add (`grad += ...`); the value it held before backward was lost")
    if not np.any(n):
        return "the analytic gradient should be zero here: backward adds something where nothing depends on it"
    if np.linalg.norm(a) <= 1e-12 * np.linalg.norm(n):
        return "the analytic gradient is zero: backward does not add into this .grad (or returns zeros)"
    use = evidence is not None and name is not None
    found = _stale_cache(a, n, name, evidence) if use else None
    if found:
        return found
    if _close(a, -n):
        return "sign flip: the analytic gradient is the negative of the numeric one"
    c = float(np.dot(a, n) / np.dot(n, n))
    if _close(a, c * n) and abs(c - 1) > 1e-3:
        return _factor_text(c, sizes)
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
    seed = evidence.seed if use else None
    found = (_summed_over_wrong_axis(a, n, seed) if use and name != "input" else None) or _mask_error(a, n)
    if not found and use and name == "input":
        found = (_w_instead_of_wt(a, n, shape, seed, evidence.matrices)
                 or _missing_normalization_term(a, n, evidence.x) or _chain_rule(a, n, shape, evidence))
    return found
