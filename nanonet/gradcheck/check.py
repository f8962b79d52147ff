"""The gradient checker: analytic gradients against central finite differences.

``check_gradients`` runs the model's real ``backward`` once, then perturbs the
input and every named parameter and compares. It always works on a float64
deep copy of the model (and loss), so the caller's model, its ``.grad`` arrays
and its dtype are never touched. Before that ``backward`` it fills every
``.grad`` with random values and subtracts them afterwards, so a ``backward``
that overwrites ``.grad`` instead of adding to it is caught too.

Per row (the input, then each parameter by dotted name) it reports:

- ``rel_error = ||a - n|| / max(||a|| + ||n||, tiny)`` where ``a`` is the
  analytic and ``n`` the numeric vector, ``||.||`` the Euclidean norm and
  ``tiny`` the smallest positive normal float64. It lies in [0, 1], is 0 when
  both are zero, and can never divide by zero. (The seed divided by
  ``||a + n||``, which is zero when ``a == -n``.)
- ``max_abs_error = max |a - n|``.
- ``passed``: every element satisfies ``|a - n| <= atol + rtol * |n|``
  (numpy's ``allclose`` rule with the numeric value as reference), after
  kinks are accounted for (``nanonet.gradcheck.diagnosis.resolve_kinks``).
- ``diagnosis`` for a failed row: the suspected mistake, or None.

How the objective is evaluated fast is in ``nanonet.gradcheck.engine`` (prefix
caching, stacked copies, per-row objectives) and ``nanonet.gradcheck.grouped``
(full mode: grouped perturbations of parameters).
"""

import copy

import numpy as np

from .._rng import as_generator
from . import several
from .arguments import check_data, check_eps_values, check_gradients_arguments, check_model, check_settings
from .diagnosis import diagnose as _diagnose
from .diagnosis import resolve_kinks
from .engine import KinkWatch, Objective
from .evidence import Evidence, flag_float32, float32_rows, sizes_of, warm_up
from .grouped import grouped_numeric
from .numeric import analytic_jacobian, numeric_directional, numeric_gradient, numerical_jacobian
from .report import EpsSweep, GradientReport, GradientRow

__all__ = ["GradientReport", "GradientRow", "EpsSweep", "analytic_jacobian", "check_gradients", "compare",
           "eps_sweep", "freeze_randomness", "numeric_directional", "numeric_gradient", "numerical_jacobian"]

MODES = ("full", "projected", "fast")
_TINY = np.finfo(np.float64).tiny
_KINK_ORIGIN_PROBES = 16  # how many accepted kink probes are traced to a declared kink
_MULTI_KINK_PROBES = 64  # how many still-failing probes are tested for several kinks at once


def compare(name, analytic, numeric, *, rtol, atol, shape=None):
    """Build a ``GradientRow`` from an analytic and a numeric vector."""
    a = np.asarray(analytic, dtype=np.float64).reshape(-1)
    n = np.asarray(numeric, dtype=np.float64).reshape(-1)
    diff = np.abs(a - n)
    rel = float(np.linalg.norm(a - n) / max(np.linalg.norm(a) + np.linalg.norm(n), _TINY))
    passed = bool(np.all(diff <= atol + rtol * np.abs(n)))
    shape = tuple(shape) if shape is not None else tuple(np.shape(analytic))
    return GradientRow(name, shape, rel, float(diff.max(initial=0.0)), passed, a.size)


def _float64_copy(model):
    work = copy.deepcopy(model)
    dtypes = {str(p.value.dtype) for p in work.parameters()}
    if dtypes != {"float64"} and dtypes:
        work.to(np.float64)
    return work, (dtypes.pop() if len(dtypes) == 1 else ("mixed" if dtypes else "float64"))


def _as_float64(arr, what):
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"check_gradients expected {what} to be a numpy.ndarray, got {type(arr).__name__}")
    if arr.dtype.kind == "f":
        return np.array(arr, dtype=np.float64, order="C")
    return arr.copy()


def freeze_randomness(model):
    """Make every module with a ``frozen`` switch (e.g. ``Dropout``) reuse its last random draw."""
    for module in model.modules():
        if hasattr(module, "frozen"):
            module.frozen = True


class _Setup:
    """The float64 copy, its analytic gradients, and the objective to differentiate."""

    def __init__(self, model, x, y, loss_fn, gen):
        if (loss_fn is None) != (y is None):
            raise ValueError("check_gradients needs both y and loss_fn, or neither")
        self.work, self.model_dtype = _float64_copy(model)
        freeze_randomness(self.work)
        x64 = tuple(_as_float64(a, f"x[{i}]") for i, a in enumerate(x)) if isinstance(x, tuple) \
            else _as_float64(x, "x")
        loss = copy.deepcopy(loss_fn) if loss_fn is not None else None
        y64 = _as_float64(y, "y") if y is not None else None
        self.evidence = Evidence(model, x64, _float64_copy, freeze_randomness)
        warm_up(self.work, x64)  # a forward at another input first: a stale cache then shows
        out = several.run(self.work, x64)
        probe = None
        if loss is not None:
            loss.forward(out, y64)
            seed = loss.backward()
        else:
            probe = several.random_like(out, gen)
            seed = tuple(p.copy() for p in probe) if isinstance(probe, tuple) else probe.copy()
        params = list(self.work.named_parameters())
        self.prefill = {name: gen.standard_normal(p.value.shape) for name, p in params}
        for name, p in params:
            p.grad = self.prefill[name].copy()
        grad_x = self.work.backward(seed)
        self.analytic = several.input_gradients(grad_x, x64)
        for name, p in params:
            self.analytic[name] = p.grad - self.prefill[name] if p.grad.shape == p.value.shape else p.grad
        self.evidence.record(out, seed, self.work)
        self.float32 = float32_rows(self.work, seed, self.analytic)
        self.sizes = sizes_of(x64, out)
        self.watch = KinkWatch(self.work, loss)
        self.objective = Objective(self.work, x64, y64, loss, probe)
        first = several.input_arrays(x64)[0]
        self.batch = first.shape[0] if first.ndim else None


class _RowChecker:
    def __init__(self, setup, eps, rtol, atol, gen, n_directions, diagnose):
        self.setup, self.obj = setup, setup.objective
        self.eps, self.rtol, self.atol, self.gen = eps, rtol, atol, gen
        self.n_directions, self.diagnose = n_directions, diagnose
        self.kink_names = set()

    def tol(self, numeric):
        return self.atol + self.rtol * np.abs(numeric)

    def _element_deltas(self, target, positions, step):
        idx = np.concatenate([positions, positions])
        steps = np.concatenate([np.full(len(positions), step), np.full(len(positions), -step)])
        d = self.obj.deltas(target, idx, steps)
        return d[:len(positions)], d[len(positions):]

    def _direction_deltas(self, target, directions, step):
        d = self.obj.deltas(target, None, np.concatenate([step * directions, -step * directions]))
        return d[:len(directions)], d[len(directions):]

    def _finish_row(self, target, a, n, kinks, kink_step, probes):
        n, multi = self._several_kinks(target, a, n, kink_step)
        row = compare(target.name, a, n, rtol=self.rtol, atol=self.atol, shape=target.array.shape)
        row.probes = probes
        row.kinks = int(len(kinks) + len(multi))
        if len(kinks):
            row.undeclared_kinks = self._undeclared(target, kinks[:_KINK_ORIGIN_PROBES], kink_step)
        if len(multi):
            row.note = (f"{len(multi)} probe(s) cross several declared kinks at once (e.g. a row of zeros into "
                        f"ReLUs with zero bias): there one-sided differences cannot vouch for the chain rule's "
                        f"choice of subgradients, so these probes were accepted as kinks")
        return row

    def _crossings(self, target, pos, kink_step, step):
        saved = target.flat.copy()

        def run(sign):
            kink_step(target, saved, pos, sign, step)
            self.obj.full_value()
            np.copyto(target.flat, saved)

        try:
            return self.setup.watch.crossings(lambda: run(1), lambda: run(-1))
        finally:
            np.copyto(target.flat, saved)

    def _several_kinks(self, target, a, n, kink_step):
        """Accept failing probes that cross two or more declared kinks at once, even at a tiny step."""
        if not self.setup.watch.entries:
            return n, []
        failing = np.flatnonzero(np.abs(a - n) > self.tol(n))[:_MULTI_KINK_PROBES]
        tiny = self.eps / 4096
        multi = [pos for pos in failing if self._crossings(target, pos, kink_step, tiny) >= 2]
        if multi:
            n = n.copy()
            n[multi] = a[multi]
        return n, multi

    def _undeclared(self, target, positions, kink_step):
        """How many of the accepted kink probes crossed no declared kink."""
        return sum(1 for pos in positions if self._crossings(target, pos, kink_step, self.eps) == 0)

    def element_row(self, target, analytic):
        a = np.asarray(analytic, dtype=np.float64).reshape(-1)
        eps = self.eps
        grouped = None if self.obj.can_use_rows(target) else grouped_numeric(self.obj, target, eps, self.tol,
                                                                               self.gen)
        if self.obj.can_use_rows(target):
            plus, minus = (d.reshape(-1) for d in self.obj.input_row_deltas(eps))
        elif grouped is not None:
            # grouped values first; anything they cannot vouch for or that disagrees is redone directly
            plus, minus = grouped * eps, -grouped * eps
            redo = np.flatnonzero(~(np.abs(a - grouped) <= self.tol(grouped)))
            if redo.size:
                plus[redo], minus[redo] = self._element_deltas(target, redo, eps)
        else:
            plus, minus = self._element_deltas(target, np.arange(a.size), eps)
        n = (plus - minus) / (2 * eps)
        n, kinks = resolve_kinks(a, n, plus, minus, eps, self.tol,
                                 lambda pos, h: self._element_deltas(target, pos, h), self.obj.noise)

        def kink_step(t, saved, pos, sign, step):
            t.flat[pos] = saved[pos] + sign * step

        row = self._finish_row(target, a, n, kinks, kink_step, a.size)
        if not row.passed and self.diagnose:
            prefill = self.setup.prefill.get(target.name)
            row.diagnosis = _diagnose(a, n, target.array.shape, batch=self.setup.batch, prefill=prefill,
                                      name=target.name, evidence=self.setup.evidence, sizes=self.setup.sizes)
        return row

    def projected_row(self, target, analytic):
        a = np.asarray(analytic, dtype=np.float64).reshape(-1)
        directions = self.gen.standard_normal((self.n_directions, a.size))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        plus, minus = self._direction_deltas(target, directions, self.eps)
        n = (plus - minus) / (2 * self.eps)
        projected = directions @ a
        n, kinks = resolve_kinks(projected, n, plus, minus, self.eps, self.tol,
                                 lambda pos, h: self._direction_deltas(target, directions[pos], h), self.obj.noise)

        def kink_step(t, saved, pos, sign, step):
            np.add(saved, sign * step * directions[pos], out=t.flat)

        row = self._finish_row(target, projected, n, kinks, kink_step, self.n_directions)
        if not row.passed and self.diagnose:
            full = self.element_row(target, analytic)
            full.note = (f"the projected check failed ({self.n_directions} directions, rel_error "
                         f"{row.rel_error:.2e}); re-checked element by element to diagnose")
            return full
        return row

    def row(self, target, mode):
        analytic = self.setup.analytic[target.name]
        if analytic is None or np.shape(analytic) != target.array.shape:
            return GradientRow(target.name, target.array.shape, 1.0, float("inf"), False, 0,
                               diagnosis=f"backward produced a gradient of shape {np.shape(analytic)}, "
                                         f"expected {target.array.shape}")
        if mode == "full" or target.array.size <= self.n_directions:
            return flag_float32(self.element_row(target, analytic), self.setup.float32)
        return flag_float32(self.projected_row(target, analytic), self.setup.float32)

    def fast_row(self, targets, n_directions, kinks=True):
        """One row for everything: uᵀJv along joint random directions, 2 forwards each."""
        dirs = [self.gen.standard_normal((n_directions, t.flat.size)) for t in targets]
        norms = np.sqrt(sum((d * d).sum(axis=1) for d in dirs))
        dirs = [d / norms[:, None] for d in dirs]
        analytic = sum(d @ np.asarray(self.setup.analytic[t.name], dtype=np.float64).reshape(-1)
                       for d, t in zip(dirs, targets))
        saved = [t.flat.copy() for t in targets]

        def deltas(positions, step):
            out = np.empty((2, len(positions)))
            for j, pos in enumerate(positions):
                for s, sign in enumerate((1, -1)):
                    for t, d, keep in zip(targets, dirs, saved):
                        np.add(keep, sign * step * d[pos], out=t.flat)
                    out[s, j] = self.obj.full_value() - self.obj.f0
                    for t, keep in zip(targets, saved):
                        np.copyto(t.flat, keep)
            return out[0], out[1]

        plus, minus = deltas(np.arange(n_directions), self.eps)
        n = (plus - minus) / (2 * self.eps)
        accepted = []
        if kinks:
            n, accepted = resolve_kinks(analytic, n, plus, minus, self.eps, self.tol, deltas, self.obj.noise)
        row = compare("all", analytic, n, rtol=self.rtol, atol=self.atol, shape=(sum(t.flat.size for t in targets),))
        row.kinks = int(len(accepted))
        return flag_float32(row, self.setup.float32) if kinks else row


def check_gradients(model, x, y=None, loss_fn=None, *, eps=1e-6, rtol=1e-5, atol=1e-7,
                    rng=None, mode="projected", n_directions=8, diagnose=True):
    """Compare ``model``'s analytic gradients with central finite differences.

    With ``loss_fn``: the objective is ``loss_fn(model(x), y)``; checks dJ/dx
    and dJ/dp for every named parameter.

    Without a loss: the objective is ``sum(R * model(x))`` for a random ``R``
    of the output's shape; this checks the module's whole Jacobian (input and
    parameters) through random projections of its output.

    Args:
        mode: ``"full"`` differentiates every element (the exact Jacobian
            of the objective); ``"projected"`` (default) differentiates along
            ``n_directions`` random unit directions per row (every element
            when a row has no more elements than that); ``"fast"`` checks
            ``uᵀJv`` along ``n_directions`` random directions through all
            arrays at once (``2 * n_directions`` forwards whatever the size),
            one row named ``"all"``, and re-checks every row in projected
            mode only if that fails.
        eps: the central-difference step.
        rtol, atol: per element, ``|a - n| <= atol + rtol * |n|`` passes.
        rng: seed or Generator for ``R``, the directions and the ``.grad`` pre-fill.
        diagnose: name the suspected mistake of each failed row (a failed
            projected row is then re-checked element by element).

    Kinks: where a probe fails, the checker takes a 16x smaller step and
    the one-sided differences. Near a kink the smaller step agrees; at a kink
    the analytic value passes if it lies between the left and right
    one-sided differences. Such probes are counted in ``row.kinks``; those
    that cross no kink declared by a module's ``kinks`` are reported as
    undeclared kinks (in ``report.notes``), not as gradient bugs.

    Returns:
        ``GradientReport``: ``.ok``, ``.rows``, ``report[name]`` and a readable ``str``.

    Example:
        >>> import numpy as np
        >>> import nanonet as nn
        >>> x = np.random.default_rng(1).normal(size=(5, 3))
        >>> report = nn.check_gradients(nn.Linear(3, 4, rng=0), x, rng=0)
        >>> report.ok, [row.name for row in report.rows]
        (True, ['input', 'weight', 'bias'])
    """
    check_gradients_arguments(model, x, y, loss_fn, eps=eps, rtol=rtol, atol=atol, n_directions=n_directions,
                              mode=mode, modes=MODES, diagnose=diagnose)
    gen = as_generator(rng)
    setup = _Setup(model, x, y, loss_fn, gen)
    checker = _RowChecker(setup, eps, rtol, atol, gen, n_directions, diagnose)
    targets = setup.objective.targets()
    notes = []
    if mode == "fast":
        rows = [checker.fast_row(targets, max(1, min(n_directions, 2)))]
        if not rows[0].passed:
            rows += [checker.row(t, "projected") for t in targets]
            if all(row.passed for row in rows[1:]):
                rows[0].passed = True
                rows[0].note = ("the joint probe disagreed, but every array passes on its own: the probe crossed "
                                "several kinks at once, where one-sided differences cannot vouch for a subgradient")
            else:
                notes.append("the fast check failed; every array was re-checked (projected) to find the culprit")
    else:
        rows = [checker.row(t, mode) for t in targets]
    for row in rows:
        declared = row.kinks - row.undeclared_kinks
        if declared > 0:
            notes.append(f"{row.name}: {declared} probe(s) at or near a declared kink "
                         f"({setup.watch.describe()}); the analytic value is a valid subgradient there")
        if row.undeclared_kinks:
            notes.append(f"{row.name}: {row.undeclared_kinks} probe(s) show an undeclared kink (the one-sided "
                         f"differences disagree and the analytic value lies between them); "
                         f"declare it in the layer's `kinks`")
    return GradientReport(rows, mode, eps, rtol, atol, setup.model_dtype, notes)


def eps_sweep(model, x, y=None, loss_fn=None, *, eps_values=None, rng=None, n_directions=4):
    """The error of directional derivatives through all arrays at each step size.

    Tells truncation and round-off from a real bug: for a right gradient the
    error falls with the step (truncation, ~eps**2), then rises again
    (round-off, ~1/eps); for a wrong one it never falls below a floor.

    Example:
        >>> import numpy as np
        >>> import nanonet as nn
        >>> x = np.random.default_rng(0).normal(size=(4, 3))
        >>> sweep = nn.eps_sweep(nn.Sequential(nn.Linear(3, 2, rng=0), nn.Tanh()), x, rng=0)
        >>> sweep.best_error < 1e-8
        True
    """
    check_settings("eps_sweep", n_directions=n_directions)
    eps_values = [10.0 ** -k for k in range(1, 11)] if eps_values is None else check_eps_values("eps_sweep",
                                                                                                 eps_values)
    if (loss_fn is None) != (y is None):
        raise ValueError("eps_sweep needs both y and loss_fn, or neither")
    check_model("eps_sweep", model, loss_fn=loss_fn)
    check_data("eps_sweep", x, "x")
    if y is not None:
        check_data("eps_sweep", y, "y")
    gen = as_generator(rng)
    setup = _Setup(model, x, y, loss_fn, gen)
    checker = _RowChecker(setup, 1.0, 0.0, 0.0, gen, n_directions, False)
    targets = setup.objective.targets()
    rows = []
    for eps in eps_values:
        checker.eps = eps
        checker.gen = as_generator(0 if rng is None else rng)
        row = checker.fast_row(targets, n_directions, kinks=False)
        rows.append((float(eps), row.rel_error, row.max_abs_error))
    best = min(rows, key=lambda r: r[1])
    if best[1] < 1e-6:
        verdict = (f"the gradient is right: the error reaches {best[1]:.1e} at eps={best[0]:.0e}; "
                   f"larger steps suffer truncation, smaller ones round-off")
    else:
        verdict = (f"a real bug: the error never falls below {best[1]:.1e} at any step size, "
                   f"which neither truncation nor round-off explains")
    return EpsSweep(rows, best[0], best[1], verdict)
