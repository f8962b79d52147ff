"""What the diagnoses need beyond the two vectors of a failed row: the model run again, differently.

``check_gradients`` builds one ``Evidence`` per check. Nothing here runs
unless a row fails, and then on fresh float64 copies of the caller's model
(which the checker never changes), so the checked copy and its caches stay
as they were. The exceptions are cheap and run every check: the one forward
of ``warm_up`` before the checked one, and the float32 probe's two more
``backward`` calls right after the checked one (its ``.grad`` arrays are
restored).

- ``previous_input(x)``: the input of the forward the checker runs *before*
  the real one, so that a backward reading a cache the last forward did not
  refresh (a stale cache) gives a wrong gradient instead of a lucky right one.
- ``history()``: the analytic gradients after two forwards at ``x`` (no stale
  value can survive) and after one forward at the previous input.
- ``float32_rows``: rows whose analytic gradient does not follow a change of
  ``grad_out`` smaller than float32 can represent: computed in float32 (two
  more ``backward`` calls per check, the only cost when every row passes).
- ``at_output()``: for a shape-preserving (element-wise) model, ``backward``
  after a forward at the *output* y, and the numeric derivative at y.
"""

import numpy as np

_FLOAT32_PROBE = 1.0 + 2.0 ** -26  # a relative change of grad_out that float32 rounds away, float64 keeps
_LINEAR_PROBE = 1.0 + 2.0 ** -8  # one that float32 resolves too (to ~3e-5 of it): tells non-linearity apart
_H = 1e-6


def previous_input(x):
    """Another valid input of the same shape and dtype: ``x``'s elements rotated by one place."""
    return np.roll(x.reshape(-1), 1).reshape(x.shape)


def _grads(model, seed, names):
    """``{"input": dJ/dx, name: dJ/dparam}`` from one ``backward(seed)`` on zeroed gradients."""
    params = dict(model.named_parameters())
    for p in params.values():
        p.grad = np.zeros_like(p.value)
    dx = model.backward(seed)
    out = {"input": None if dx is None else np.array(dx, dtype=np.float64, copy=True)}
    out.update({name: np.array(params[name].grad, dtype=np.float64, copy=True) for name in names if name in params})
    return out


def float32_rows(work, seed, analytic):
    """The rows (``"input"`` and parameter names) whose backward ignores a sub-float32 change of ``grad_out``.

    ``work`` has just run its forward and given ``analytic`` (row name ->
    gradient) for ``seed``; ``backward`` runs twice more on zeroed ``.grad``
    arrays (restored afterwards), with ``seed * s`` and ``seed * s * t``,
    ``s = 1 + 2**-8`` and ``t = 1 + 2**-26``. A backward is linear in
    ``grad_out``, so in float64 every gradient grows by exactly those factors
    (up to rounding far below them). A row is flagged when it follows ``s``
    (linear, so no other bug) but not ``t`` (it passed through float32), and
    is not itself rounding noise (per element at least 1e-4 of the largest row).
    """
    if not isinstance(seed, np.ndarray) or seed.dtype != np.float64 or not np.any(seed):
        return set()
    params = dict(work.named_parameters())
    kept = {name: p.grad for name, p in params.items()}
    names = [name for name in analytic if name != "input"]
    try:
        scaled = _grads(work, seed * _LINEAR_PROBE, names)
        nudged = _grads(work, seed * (_LINEAR_PROBE * _FLOAT32_PROBE), names)
    except Exception:  # a backward that cannot run again: no verdict
        return set()
    finally:
        for name, p in params.items():
            p.grad = kept[name]

    def rms(v):
        return np.linalg.norm(v) / np.sqrt(max(v.size, 1))

    base = {name: np.asarray(a, dtype=np.float64) for name, a in analytic.items()
            if a is not None and np.all(np.isfinite(a))}
    largest = max((rms(a) for a in base.values()), default=0.0)
    flagged = set()
    for name, a in base.items():
        b1, b2 = scaled.get(name), nudged.get(name)
        if b1 is None or b2 is None or b1.shape != a.shape or b2.shape != a.shape or rms(a) < 1e-4 * largest:
            continue
        linear = np.linalg.norm(b1 - _LINEAR_PROBE * a) <= 1e-3 * (_LINEAR_PROBE - 1) * np.linalg.norm(a)
        expected = (_FLOAT32_PROBE - 1.0) * b1
        if linear and np.linalg.norm((b2 - b1) - expected) > 0.25 * np.linalg.norm(expected):
            flagged.add(name)
    return flagged


class Evidence:
    """Lazily computed facts about the model for the diagnoses of failed rows.

    Args:
        model: the caller's original (only ever copied, never run).
        x: the float64 input of the check.
        to_float64: ``model -> (float64 copy, dtype)``, the checker's own copier.
        freeze: the checker's ``freeze_randomness``.
    """

    def __init__(self, model, x, to_float64, freeze):
        self.model, self.x = model, x
        self._copy, self._freeze = to_float64, freeze
        self.seed = None
        self.output = None
        self.names = ()
        self.matrices = {}
        self._history = None
        self._at_output = None

    def record(self, output, seed, work):
        """What the checked run produced: its output, the gradient seeded at it, its parameters."""
        self.output = output if isinstance(output, np.ndarray) else None
        self.seed = np.array(seed, dtype=np.float64) if isinstance(seed, np.ndarray) else None
        named = list(work.named_parameters())
        self.names = tuple(name for name, _ in named)
        self.matrices = {name: np.array(p.value, dtype=np.float64) for name, p in named if p.value.ndim == 2}

    def fresh(self):
        work, _ = self._copy(self.model)
        self._freeze(work)
        return work

    def _run(self, inputs):
        """Forwards at each of ``inputs`` in turn, then one backward with the recorded seed."""
        work = self.fresh()
        for x in inputs:
            work.forward(x)
        return _grads(work, self.seed, self.names)

    def history(self):
        """``(repeated, previous)``: gradients after forwards (x, x), and after one forward at the previous input."""
        if self._history is None:
            self._history = (None, None)
            if self.seed is not None and isinstance(self.x, np.ndarray):
                try:
                    self._history = (self._run([self.x, self.x]), self._run([previous_input(self.x)]))
                except Exception:
                    pass
        return self._history

    def at_output(self):
        """For a model whose output has the input's shape: ``(backward after a forward at y, f'(y) numerically)``.

        The numeric derivative perturbs every element at once, which is the
        element-wise derivative only for an element-wise model; the diagnoses
        compare it with the analytic gradient, so a mismatch just means "no".
        """
        if self._at_output is None:
            self._at_output = (None, None)
            y, x = self.output, self.x
            if (self.seed is not None and isinstance(x, np.ndarray) and y is not None and y.shape == x.shape
                    and y.dtype == x.dtype and x.dtype.kind == "f"):
                try:
                    again = self._run([np.array(y, copy=True)])["input"]
                    work = self.fresh()
                    up = np.array(work.forward(y + _H), dtype=np.float64, copy=True)
                    down = np.array(work.forward(y - _H), dtype=np.float64, copy=True)
                    self._at_output = (again, (up - down) / (2 * _H))
                except Exception:
                    pass
        return self._at_output


def warm_up(work, x):
    """One forward at ``previous_input(x)`` before the checked one, so that a stale cache shows (errors ignored)."""
    if isinstance(x, np.ndarray) and x.size > 1:
        try:
            work.forward(previous_input(x))
        except Exception:
            pass


def sizes_of(x, out):
    """The counts a wrong normalization factor can equal: batch, features of the input and of the output."""
    if not isinstance(x, np.ndarray) or x.ndim == 0 or x.shape[0] == 0:
        return {}
    n = x.shape[0]
    sizes = {"batch": n, "input features": x.size // n}
    if isinstance(out, np.ndarray) and out.ndim and out.shape[0] == n:
        sizes["output features"] = out.size // n
    return sizes


FLOAT32_TEXT = ("computed in float32 inside a float64 check: this gradient does not follow a change of grad_out "
                "smaller than float32 resolves (1 + 2**-26), so somewhere on its way it was rounded to float32 "
                "(a cast, a float32 constant or parameter); its error (~1e-7 relative) hides under the tolerance")


def flag_float32(row, flagged):
    """Fail ``row`` (named, or ``"all"`` in fast mode) when the float32 probe flagged it."""
    if flagged and (row.name in flagged or row.name == "all"):
        row.passed = False
        row.diagnosis = row.diagnosis or FLOAT32_TEXT
    return row
