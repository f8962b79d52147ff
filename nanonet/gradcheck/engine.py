"""How the gradient checker evaluates its objective fast.

The checker needs ``f(theta + s) - f(theta)`` for many small perturbations
``s`` of one array (the input or one parameter). Done naively that is one
whole forward per perturbation. ``Objective`` does less, where the maths
allows, and always gives the same numbers up to rounding:

- **Prefix caching.** In a ``Sequential``, a parameter owned by child ``k``
  cannot change children ``0..k-1``: their outputs are computed once, and
  each perturbation re-runs the forward from child ``k`` only.
- **Stacking.** When every module after the perturbed one is
  ``batch_independent``, the outputs of P perturbed copies are stacked along
  the rows and run through the rest of the chain in one call.
- **Per-row objectives.** When the model is batch independent and the
  objective is a sum of per-row terms (a random projection of the output,
  or a loss with ``row_contributions``; ``MSELoss`` is known), perturbing
  feature ``c`` of the input in *every* row at once gives the derivative for
  all N rows from one pair of forwards: row ``r``'s term only sees row ``r``.

Everything else falls back to the plain way: perturb in place, run the whole
forward, restore exactly.
"""

import numpy as np

from ..containers import Sequential
from ..losses import MSELoss
from . import several

_STACK_ELEMENTS = 1 << 17  # rows of stacked copies per call, in elements of the widest array


def is_batch_independent(module):
    """True when row i of ``module``'s output depends only on row i of its input."""
    if isinstance(module, Sequential):
        return all(is_batch_independent(child) for child in module)
    return bool(getattr(module, "batch_independent", False))


def _mse_rows(loss, pred, target, batch):
    diff = (pred - target).reshape(pred.shape[0], -1)
    rows = np.einsum("ij,ij->i", diff, diff)
    return rows / (batch * diff.shape[1]) if loss.reduction == "mean" else rows


def row_function(loss):
    """``f(pred, target, batch) -> (rows,)`` summing to the loss, or None if unknown."""
    method = getattr(loss, "row_contributions", None)
    if callable(method):
        return method
    if type(loss).forward is MSELoss.forward and getattr(loss, "reduction", None) in ("mean", "sum"):
        return lambda pred, target, batch: _mse_rows(loss, pred, target, batch)
    return None


class Target:
    """One checked array: ``"input"`` or a parameter, and where it enters the chain."""

    def __init__(self, name, array, owner, param=None):
        self.name = name
        self.param = param
        self.array = array
        self.flat = array.reshape(-1)
        if not np.shares_memory(self.flat, array):
            raise ValueError(f"gradient check needs C-contiguous arrays, {name} is not")
        self.owner = owner  # chain index of the child that owns it; 0 for the input; None: unknown


class Objective:
    """``J(theta)``: a loss of the model's output, or ``sum(probe * output)``."""

    def __init__(self, work, x, y=None, loss=None, probe=None):
        self.work, self.x, self.y, self.loss, self.probe = work, x, y, loss, probe
        # several inputs or outputs (see .several): whole forwards only, no prefix caching or row tricks
        self.plain = isinstance(x, tuple) or isinstance(probe, tuple)
        self.chain = list(work) if isinstance(work, Sequential) and not self.plain else [work]
        first = several.input_arrays(x)[0]
        self.batch = first.shape[0] if first.ndim else 1
        if self.plain:
            h = several.run(work, x)
            self.acts = None
        else:
            self.acts = [x]
            h = x
            for module in self.chain:
                h = np.array(module.forward(h), copy=True)
                self.acts.append(h)
        self.f0 = self.value_of(h)
        self._rows = row_function(loss) if loss is not None else self._probe_rows
        self.rows0 = self._row_values(h, 1) if self._rows is not None and first.ndim and not self.plain else None
        if self.rows0 is not None and not np.isclose(self.rows0.sum(), self.f0, rtol=1e-9, atol=1e-300):
            self.rows0 = None  # the loss does not decompose as declared: do not rely on it
        self._tiled = {}
        if self.loss is None:
            magnitude = several.magnitude(self.probe, h)
        else:
            magnitude = abs(self.f0) + (float(np.abs(self.rows0).sum()) if self.rows0 is not None else 0.0)
        self.noise = 8 * np.finfo(np.float64).eps * max(magnitude, abs(self.f0))  # round-off of one difference

    # -- pieces ---------------------------------------------------------------
    def value_of(self, out):
        if self.loss is not None:
            return float(self.loss.forward(out, self.y))
        return several.project(self.probe, out)

    def _probe_rows(self, out, target, batch):
        return (out * target).reshape(out.shape[0], -1).sum(axis=1)

    def _row_values(self, out, copies):
        """Per-row objective terms of ``copies`` stacked outputs: (copies, batch)."""
        target = self.probe if self.loss is None else self.y
        if copies > 1:
            if copies not in self._tiled:
                self._tiled[copies] = np.concatenate([target] * copies, axis=0)
            target = self._tiled[copies]
        return np.asarray(self._rows(out, target, self.batch), dtype=np.float64).reshape(copies, self.batch)

    def targets(self):
        """The floating-point input(s), then every named parameter, with the chain index that owns it.

        An integer input (indices) has no gradient and no row.
        """
        inputs = zip(several.input_names(self.x), several.input_arrays(self.x))
        out = [Target(name, arr, None if self.plain else 0) for name, arr in inputs if several.differentiable(arr)]
        members = [{id(p) for p in m.parameters()} for m in self.chain]
        for name, p in self.work.named_parameters():
            owners = [k for k, ids in enumerate(members) if id(p) in ids]
            owner = owners[0] if len(owners) == 1 and not self.plain else None
            out.append(Target(name, p.value, owner, p))
        return out

    def full_value(self):
        return self.value_of(several.run(self.work, self.x))

    # -- evaluation -------------------------------------------------------------
    def deltas(self, target, index, steps):
        """``f(theta + step_k) - f(theta)`` for each perturbation k of ``target``.

        ``index`` is None and ``steps`` a (P, size) array of whole-array
        steps, or ``index`` a (P,) int array and ``steps`` (P,) scalars, one
        element each.
        """
        count = len(steps)
        if count == 0:
            return np.empty(0)
        if target.owner is None:
            return self._deltas_in_place(target, index, steps)
        k = target.owner
        if target.name == "input":
            if self.x.ndim == 0:
                return self._deltas_in_place(target, index, steps)
            stack_ok = all(is_batch_independent(m) for m in self.chain)
            return self._deltas_stacked_input(target, index, steps, stack_ok)
        suffix_ok = all(is_batch_independent(m) for m in self.chain[k + 1:])
        return self._deltas_from_child(target, k, index, steps, suffix_ok)

    def _apply(self, target, saved, index, step):
        if index is None:
            np.add(saved, step, out=target.flat)
        else:
            target.flat[index] = saved[index] + step

    def _deltas_in_place(self, target, index, steps):
        saved = target.flat.copy()
        out = np.empty(len(steps))
        try:
            for j in range(len(steps)):
                self._apply(target, saved, None if index is None else index[j], steps[j])
                out[j] = self.full_value() - self.f0
                if index is not None:
                    target.flat[index[j]] = saved[index[j]]
        finally:
            np.copyto(target.flat, saved)
        return out

    def _finish(self, start, stacked, copies):
        """Run ``stacked`` (copies stacked along rows) from chain[start:], return deltas (copies,)."""
        h = stacked
        for module in self.chain[start:]:
            h = module.forward(h)
        if self.rows0 is not None:
            return (self._row_values(h, copies) - self.rows0).sum(axis=1)
        parts = np.split(h, copies, axis=0)
        return np.array([self.value_of(p) for p in parts]) - self.f0

    def _chunk(self, width):
        return max(1, _STACK_ELEMENTS // max(width, 1))

    def _deltas_stacked_input(self, target, index, steps, stack_ok):
        x = self.x
        count = len(steps)
        chunk = self._chunk(x.size) if stack_ok else 1
        out = np.empty(count)
        for lo in range(0, count, chunk):
            hi = min(count, lo + chunk)
            stack = np.empty((hi - lo,) + x.shape, dtype=x.dtype)
            stack[:] = x
            flat = stack.reshape(hi - lo, -1)
            if index is None:
                flat += steps[lo:hi]
            else:
                flat[np.arange(hi - lo), index[lo:hi]] += steps[lo:hi]
            stacked = stack.reshape((hi - lo) * x.shape[0], *x.shape[1:])
            out[lo:hi] = self._finish(0, stacked, hi - lo)
        return out

    def _deltas_from_child(self, target, k, index, steps, suffix_ok):
        child, h_in = self.chain[k], self.acts[k]
        width = self.acts[k + 1].size
        count = len(steps)
        chunk = self._chunk(width) if suffix_ok else 1
        saved = target.flat.copy()
        out = np.empty(count)
        try:
            for lo in range(0, count, chunk):
                hi = min(count, lo + chunk)
                pieces = []
                for j in range(lo, hi):
                    self._apply(target, saved, None if index is None else index[j], steps[j])
                    pieces.append(np.array(child.forward(h_in), copy=True))
                    if index is None:
                        np.copyto(target.flat, saved)
                    else:
                        target.flat[index[j]] = saved[index[j]]
                stacked = pieces[0] if len(pieces) == 1 else np.concatenate(pieces, axis=0)
                out[lo:hi] = self._finish(k + 1, stacked, hi - lo)
        finally:
            np.copyto(target.flat, saved)
        return out

    # -- the per-row trick for the input ------------------------------------------
    def can_use_rows(self, target):
        return (target.name == "input" and self.rows0 is not None and self.x.ndim >= 1
                and all(is_batch_independent(m) for m in self.chain))

    def input_row_deltas(self, step):
        """Deltas for every element of the input, shifted by +step and -step.

        Feature c is shifted in all rows at once; row r's objective term gives
        the delta of element (r, c). Returns (plus, minus), each shaped like x.
        """
        return self.row_deltas(0, step)

    def row_deltas(self, start, step):
        """Like ``input_row_deltas`` for ``acts[start]``, the input of chain[start:].

        Needs ``rows0`` and a batch-independent chain[start:].
        """
        base = self.acts[start]
        n = base.shape[0]
        features = base[0].size if n else 0
        plus = np.empty((n, features))
        minus = np.empty((n, features))
        chunk = max(1, self._chunk(base.size) // 2)
        flat_base = base.reshape(n, features)
        for lo in range(0, features, chunk):
            hi = min(features, lo + chunk)
            m = hi - lo
            stack = np.empty((2 * m, n, features), dtype=base.dtype)
            stack[:] = flat_base
            cols = np.arange(lo, hi)
            stack[np.arange(m), :, cols] += step
            stack[m + np.arange(m), :, cols] -= step
            h = stack.reshape((2 * m * n,) + base.shape[1:])
            for module in self.chain[start:]:
                h = module.forward(h)
            rows = self._row_values(h, 2 * m) - self.rows0
            plus[:, lo:hi] = rows[:m].T
            minus[:, lo:hi] = rows[m:].T
        return plus.reshape(base.shape), minus.reshape(base.shape)


def kink_levels(obj):
    """The input values a module (or loss) declares as kinks: the numbers in its ``kinks``."""
    return tuple(float(k) for k in getattr(obj, "kinks", ()) or () if not isinstance(k, str))


def kink_piece_function(obj):
    """``obj.kink_pieces`` when ``obj`` declares kinks that are not at fixed input values, else None.

    A kink may lie where inputs *tie* rather than at a fixed value (max
    pooling: two inputs of one window equal). Such a layer names it in
    ``kinks`` with a string (``kinks = ("ties in a window",)``) and defines
    ``kink_pieces(*inputs)``: an integer array saying, per output element,
    which smooth piece the function is on (for max pooling, which input of
    the window is the maximum). Two points on different pieces of an element
    have a kink between them.
    """
    named = [k for k in getattr(obj, "kinks", ()) or () if isinstance(k, str)]
    if not named:
        return None
    pieces = getattr(obj, "kink_pieces", None)
    if not callable(pieces):
        raise TypeError(f"{obj!r} declares the kink(s) {named} but has no kink_pieces(x) method to locate them")
    return pieces


class KinkWatch:
    """Records, on request, the values that declared kinks refer to.

    Every module of ``work`` (and the loss) with a non-empty ``kinks`` gets
    an instance-level ``forward`` wrapper on the checker's private copy; while
    ``active`` it keeps a copy of its kink variable (a module's input, a
    loss's ``pred - target``) and, for kinks declared by name, of its
    ``kink_pieces`` (see ``kink_piece_function``). ``crossed`` tells whether
    moving from one point to another took any of those values across (or
    onto) a declared kink, or moved an element onto another piece.
    """

    def __init__(self, work, loss=None):
        self.active = False
        self.entries = []
        seen = set()
        for module in work.modules():
            if id(module) not in seen and tuple(getattr(module, "kinks", ()) or ()):
                seen.add(id(module))
                self._wrap(module, lambda x, *rest: x)
        if loss is not None and tuple(getattr(loss, "kinks", ()) or ()):
            self._wrap(loss, lambda pred, target: pred - target)

    def _wrap(self, obj, variable):
        original = obj.forward
        entry = {"name": repr(obj), "kinks": tuple(obj.kinks), "levels": kink_levels(obj),
                 "pieces": kink_piece_function(obj), "value": None}

        def forward(*args, **options):
            if self.active:
                entry["value"] = _kink_record(entry, variable, args)
            return original(*args, **options)

        obj.forward = forward
        self.entries.append(entry)

    def describe(self):
        return ", ".join(f"{e['name']} at {', '.join(k if isinstance(k, str) else f'{k:g}' for k in e['kinks'])}"
                         for e in self.entries)

    def _snapshot(self, run):
        for e in self.entries:
            e["value"] = None
        run()
        return [e["value"] for e in self.entries]

    def crossings(self, run_plus, run_minus):
        """How many kink-variable elements lie on different sides of a declared kink at the two points
        (or, for kinks declared by name, on different pieces)."""
        if not self.entries:
            return 0
        self.active = True
        try:
            before, after = self._snapshot(run_plus), self._snapshot(run_minus)
        finally:
            self.active = False
        return sum(_kink_crossings(e, u, v) for e, u, v in zip(self.entries, before, after))

    def crossed(self, run_plus, run_minus):
        """True when a declared kink lies between the two evaluated points."""
        return self.crossings(run_plus, run_minus) > 0


def _kink_record(entry, variable, args):
    """What one forward tells about the kinks: (kink variable or None, pieces or None)."""
    value = np.array(variable(*args), dtype=np.float64, copy=True) if entry["levels"] else None
    pieces = np.array(entry["pieces"](*args), copy=True) if entry["pieces"] is not None else None
    return value, pieces


def _kink_crossings(entry, u, v):
    """Elements on different sides of a declared level, plus elements on different pieces, between two records."""
    if u is None or v is None:
        return 0
    count = 0
    if u[0] is not None and v[0] is not None and u[0].shape == v[0].shape:
        count += sum(int(np.count_nonzero(np.sign(u[0] - k) != np.sign(v[0] - k))) for k in entry["levels"])
    if u[1] is not None and v[1] is not None and u[1].shape == v[1].shape:
        count += int(np.count_nonzero(u[1] != v[1]))
    return count
