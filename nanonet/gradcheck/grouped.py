"""Full-mode parameter gradients with grouped perturbations (Curtis, Powell and Reid).

Differentiating every element of a parameter one at a time costs two
forwards of its layer per element. Most parameters touch only a few of
their layer's output features (``weight[i, j]`` of a Linear only feature
``j``), so many elements can be perturbed *at once* and told apart by the
features they move: the classic grouping of sparse finite differences.

For a parameter of child ``k`` in a chain:

1. ``G = dJ/dz`` at the child's output ``z`` is computed numerically (the
   per-row trick: shift feature ``c`` of ``z`` in every row at once; it needs
   a batch-independent rest of the chain and a row-decomposable objective).
2. Which output features each element touches is read from one ``backward``
   per output feature. It is only a hint: step 4 verifies it.
3. Elements that touch disjoint features share a group; each group is
   perturbed with random steps ``s`` (two independent probes), and element
   ``p`` gets ``sum over its features of G * (z(+s) - z(-s)) / (2 s_p)``.
4. A group is trusted only if its two probes agree element by element and
   no feature outside the hinted ones moved; otherwise its elements are
   returned as NaN and the caller differentiates them one at a time.

Any element whose grouped value disagrees with the analytic one is
re-differentiated directly by the caller, so a failure, its kink handling and
its diagnosis always rest on plain central differences of ``J`` itself.
"""

import numpy as np

from .engine import is_batch_independent


def _features_of(obj, k, n, features):
    """For each parameter of child k: (size, F) bool, which output features each element touches.

    Read from one ``backward`` per output feature (a hint, verified later);
    cached on ``obj`` per child.
    """
    cache = obj.__dict__.setdefault("_feature_cache", {})
    if k in cache:
        return cache[k]
    child = obj.chain[k]
    out = child.forward(obj.acts[k])
    weights = np.random.default_rng(0).standard_normal(n) + 2.0
    params = child.parameters()
    patterns = {id(p): np.zeros((p.value.size, features), dtype=bool) for p in params}
    saved = [p.grad for p in params]
    try:
        for c in range(features):
            for p in params:
                p.grad = np.zeros_like(p.value)
            g = np.zeros((n, features), dtype=out.dtype)
            g[:, c] = weights
            child.backward(g.reshape(out.shape))
            for p in params:
                if p.grad.shape == p.value.shape:
                    patterns[id(p)][:, c] = p.grad.reshape(-1) != 0
    finally:
        for p, grad in zip(params, saved):
            p.grad = grad
    cache[k] = patterns
    return patterns


def _output_gradient(obj, k, eps, n, features):
    """Numeric dJ/dz at child k's output, (N, F), cached on ``obj``."""
    cache = obj.__dict__.setdefault("_grad_z_cache", {})
    if (k, eps) not in cache:
        plus, minus = obj.row_deltas(k + 1, eps)
        cache[(k, eps)] = ((plus - minus) / (2 * eps)).reshape(n, features)
    return cache[(k, eps)]


def _groups(pattern):
    """Greedy colouring: element indices per group, no two sharing a feature."""
    counts = pattern.sum(axis=1)
    if np.all(counts <= 1):
        column = np.where(counts == 1, pattern.argmax(axis=1), -1)
        order = np.argsort(column, kind="stable")
        sorted_cols = column[order]
        starts = np.r_[0, np.flatnonzero(np.diff(sorted_cols)) + 1]
        rank = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
        group = np.empty(len(order), dtype=int)
        group[order] = rank
        group[column == -1] = 0
        return [np.flatnonzero(group == g) for g in range(group.max() + 1)] if len(group) else []
    used, members = [], []
    for p in range(pattern.shape[0]):
        for g, mask in enumerate(used):
            if not np.any(mask & pattern[p]):
                mask |= pattern[p]
                members[g].append(p)
                break
        else:
            used.append(pattern[p].copy())
            members.append([p])
    return [np.array(m) for m in members]


def _probe(obj, k, target, saved, group, steps):
    """Central output difference of child k for the group stepped by ``steps``."""
    child, h_in = obj.chain[k], obj.acts[k]
    outs = []
    for sign in (1, -1):
        target.flat[group] = saved[group] + sign * steps
        outs.append(np.array(child.forward(h_in), dtype=np.float64, copy=True))
        target.flat[group] = saved[group]
    return outs[0] - outs[1]


def grouped_numeric(obj, target, eps, tol_fn, gen):
    """Numeric dJ/dparam for every element by grouped perturbations, or None where it does not apply.

    Returns a float64 array shaped like ``target.flat``; elements the
    grouping could not vouch for are NaN.
    """
    k = target.owner
    if target.name == "input" or k is None or target.param is None or obj.rows0 is None:
        return None
    if not all(is_batch_independent(m) for m in obj.chain[k + 1:]):
        return None
    z = obj.acts[k + 1]
    n = obj.batch
    if z.ndim < 1 or z.shape[0] != n or n == 0:
        return None
    features = z[0].size
    size = target.flat.size
    if features >= 2 * size:  # reading the hint alone would cost more than going element by element
        return None
    try:
        pattern = _features_of(obj, k, n, features).get(id(target.param))
    except Exception:  # a backward that cannot even run gives no hint: go element by element
        return None
    if pattern is None:
        return None
    groups = _groups(pattern)
    if 4 * len(groups) + features >= 2 * size:
        return None
    grad_z = _output_gradient(obj, k, eps, n, features)
    saved = target.flat.copy()
    numeric = np.full(size, np.nan)
    try:
        for group in groups:
            estimates = []
            claimed = pattern[group].any(axis=0)
            trusted = True
            for _ in range(2):
                steps = eps * gen.uniform(0.5, 1.5, size=len(group))
                dz = _probe(obj, k, target, saved, group, steps).reshape(n, features)
                per_feature = (grad_z * dz).sum(axis=0)
                leak = np.abs(per_feature[~claimed]).sum()
                if leak > 1e-9 * np.abs(per_feature).sum() + 1e-300:
                    trusted = False
                    break
                estimates.append(pattern[group].astype(np.float64) @ per_feature / (2 * steps))
            if not trusted:
                continue
            first, second = estimates
            mean = 0.5 * (first + second)
            agree = np.abs(first - second) <= 0.5 * tol_fn(mean)
            numeric[group[agree]] = mean[agree]
    finally:
        np.copyto(target.flat, saved)
    return numeric
