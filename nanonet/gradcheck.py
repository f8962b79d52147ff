"""The gradient checker: analytic gradients against central finite differences.

``check_gradients`` runs the model's real ``backward`` once, then perturbs the
input and every named parameter and compares. It always works on a float64
deep copy of the model (and loss), so the caller's model, its ``.grad`` arrays
and its dtype are never touched.

Per row (the input, then each parameter by dotted name) it reports:

- ``rel_error = ||a - n|| / max(||a|| + ||n||, tiny)`` where ``a`` is the
  analytic and ``n`` the numeric vector, ``||.||`` the Euclidean norm and
  ``tiny`` the smallest positive normal float64. It lies in [0, 1], is 0 when
  both are zero, and can never divide by zero. (The seed divided by
  ``||a + n||``, which is zero when ``a == -n``.)
- ``max_abs_error = max |a - n|``.
- ``passed``: every element satisfies ``|a - n| <= atol + rtol * |n|``
  (numpy's ``allclose`` rule with the numeric value as reference).
"""

import copy
from dataclasses import dataclass, field

import numpy as np

from ._rng import as_generator

MODES = ("full", "projected")
_TINY = np.finfo(np.float64).tiny


@dataclass
class GradientRow:
    """One compared array: ``"input"`` or a parameter's dotted name."""

    name: str
    shape: tuple
    rel_error: float
    max_abs_error: float
    passed: bool
    probes: int
    diagnosis: str = None

    @property
    def result(self):
        return "PASS" if self.passed else "FAIL"


@dataclass
class GradientReport:
    """What ``check_gradients`` found. ``ok`` is True when every row passed."""

    rows: list
    mode: str
    eps: float
    rtol: float
    atol: float
    model_dtype: str = "float64"
    notes: list = field(default_factory=list)

    @property
    def ok(self):
        return all(row.passed for row in self.rows)

    @property
    def failed(self):
        return [row for row in self.rows if not row.passed]

    def __getitem__(self, name):
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(f"no row named {name!r}; rows are {[r.name for r in self.rows]}")

    def __bool__(self):
        return self.ok

    def __str__(self):
        header = (
            f"gradient check: mode={self.mode}, eps={self.eps:g}, rtol={self.rtol:g}, "
            f"atol={self.atol:g}, computed in float64"
        )
        if self.model_dtype != "float64":
            header += f" (the {self.model_dtype} model was checked on a float64 copy)"
        table = [("row", "shape", "probes", "rel_error", "max_abs_error", "result")]
        for r in self.rows:
            table.append((r.name, str(r.shape), str(r.probes), f"{r.rel_error:.2e}",
                          f"{r.max_abs_error:.2e}", r.result))
        widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
        lines = [header] + ["  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in table]
        for r in self.rows:
            if r.diagnosis:
                lines.append(f"{r.name}: {r.diagnosis}")
        lines += self.notes
        verdict = "all rows passed" if self.ok else f"{len(self.failed)} of {len(self.rows)} rows FAILED"
        lines.append(verdict)
        return "\n".join(lines)


def compare(name, analytic, numeric, *, rtol, atol, shape=None):
    """Build a ``GradientRow`` from an analytic and a numeric vector."""
    a = np.asarray(analytic, dtype=np.float64).reshape(-1)
    n = np.asarray(numeric, dtype=np.float64).reshape(-1)
    diff = np.abs(a - n)
    rel = float(np.linalg.norm(a - n) / max(np.linalg.norm(a) + np.linalg.norm(n), _TINY))
    passed = bool(np.all(diff <= atol + rtol * np.abs(n)))
    shape = tuple(shape) if shape is not None else tuple(np.shape(analytic))
    return GradientRow(name, shape, rel, float(diff.max(initial=0.0)), passed, a.size)


def _flat_view(arr):
    flat = arr.reshape(-1)
    if not np.shares_memory(flat, arr):
        raise ValueError("gradient check needs C-contiguous arrays to perturb in place")
    return flat


def numeric_directional(objective, arr, directions, eps):
    """Central differences of ``objective()`` along each row of ``directions``.

    ``arr`` is perturbed in place and restored exactly.
    """
    flat = _flat_view(arr)
    saved = flat.copy()
    out = np.empty(len(directions))
    for k, d in enumerate(directions):
        np.add(saved, eps * d, out=flat)
        f_plus = objective()
        np.subtract(saved, eps * d, out=flat)
        f_minus = objective()
        out[k] = (f_plus - f_minus) / (2 * eps)
    np.copyto(flat, saved)
    return out


def numeric_gradient(objective, arr, eps):
    """Central differences of ``objective()`` for every element of ``arr``.

    ``arr`` is perturbed in place, one element at a time, and restored exactly.
    """
    flat = _flat_view(arr)
    grad = np.empty(flat.size)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        f_plus = objective()
        flat[i] = old - eps
        f_minus = objective()
        flat[i] = old
        grad[i] = (f_plus - f_minus) / (2 * eps)
    return grad


def numerical_jacobian(f, x, eps=1e-6):
    """The Jacobian of ``f`` at ``x`` by central differences, in float64.

    Returns an array of shape ``(f(x).size, x.size)``: ``J[i, j] = d f(x)_i / d x_j``.
    ``x`` itself is not modified (``f`` receives a float64 copy).

    >>> import numpy as np
    >>> J = numerical_jacobian(lambda v: v ** 2, np.array([1.0, 2.0]))
    >>> np.allclose(J, [[2, 0], [0, 4]])
    True
    """
    x = np.array(x, dtype=np.float64, order="C")
    flat = x.reshape(-1)
    out_size = np.asarray(f(x)).size
    jac = np.empty((out_size, flat.size))
    for j in range(flat.size):
        old = flat[j]
        flat[j] = old + eps
        f_plus = np.array(f(x), dtype=np.float64).reshape(-1)
        flat[j] = old - eps
        f_minus = np.array(f(x), dtype=np.float64).reshape(-1)
        flat[j] = old
        jac[:, j] = (f_plus - f_minus) / (2 * eps)
    return jac


def analytic_jacobian(module, x):
    """The input Jacobian of ``module`` at ``x`` from its real ``backward``.

    Runs on a deep copy, so the module's gradients are untouched. Returns
    ``(out.size, x.size)``, one ``backward`` per output element.
    """
    work = copy.deepcopy(module)
    out = work.forward(x)
    jac = np.empty((out.size, x.size))
    basis = np.zeros(out.size, dtype=out.dtype)
    for i in range(out.size):
        basis[:] = 0
        basis[i] = 1
        jac[i] = work.backward(basis.reshape(out.shape)).reshape(-1)
    return jac


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


def check_gradients(model, x, y=None, loss_fn=None, *, eps=1e-6, rtol=1e-5, atol=1e-7,
                    rng=None, mode="projected", n_directions=8):
    """Compare ``model``'s analytic gradients with central finite differences.

    With ``loss_fn``: the objective is ``loss_fn(model(x), y)``; checks dJ/dx
    and dJ/dp for every named parameter.

    Without a loss: the objective is ``sum(R * model(x))`` for a random ``R``
    of the output's shape; this checks the module's whole Jacobian (input and
    parameters) through random projections of its output.

    Args:
        mode: ``"full"`` differentiates every element; ``"projected"``
            (default) differentiates along ``n_directions`` random unit
            directions per row (every element when a row has no more elements
            than that), which costs ``2 * n_directions`` forwards per row.
        eps: the central-difference step.
        rtol, atol: per element, ``|a - n| <= atol + rtol * |n|`` passes.
        rng: seed or Generator for ``R`` and the directions.

    Returns:
        ``GradientReport``: ``.ok``, ``.rows`` and a readable ``str``.

    Example:
        >>> import numpy as np
        >>> import nanonet as nn
        >>> x = np.random.default_rng(1).normal(size=(5, 3))
        >>> report = nn.check_gradients(nn.Linear(3, 4, rng=0), x, rng=0)
        >>> report.ok, [row.name for row in report.rows]
        (True, ['input', 'weight', 'bias'])
    """
    if mode not in MODES:
        raise ValueError(f"check_gradients expected mode in {MODES}, got {mode!r}")
    if (loss_fn is None) != (y is None):
        raise ValueError("check_gradients needs both y and loss_fn, or neither")
    gen = as_generator(rng)
    work, model_dtype = _float64_copy(model)
    x64 = _as_float64(x, "x")

    if loss_fn is not None:
        loss = copy.deepcopy(loss_fn)
        y64 = _as_float64(y, "y")

        def objective():
            return loss.forward(work.forward(x64), y64)

        objective()
        seed = loss.backward()
    else:
        probe = gen.standard_normal(np.shape(work.forward(x64)))

        def objective():
            return float(np.vdot(probe, work.forward(x64)))

        objective()
        seed = probe

    work.zero_grad()
    grad_x = work.backward(seed)
    targets = [("input", x64, grad_x)]
    targets += [(name, p.value, p.grad.copy()) for name, p in work.named_parameters()]

    rows = []
    for name, arr, analytic in targets:
        if mode == "full" or arr.size <= n_directions:
            numeric = numeric_gradient(objective, arr, eps)
            row = compare(name, analytic, numeric, rtol=rtol, atol=atol, shape=arr.shape)
        else:
            directions = gen.standard_normal((n_directions, arr.size))
            directions /= np.linalg.norm(directions, axis=1, keepdims=True)
            numeric = numeric_directional(objective, arr, directions, eps)
            projected = directions @ np.asarray(analytic, dtype=np.float64).reshape(-1)
            row = compare(name, projected, numeric, rtol=rtol, atol=atol, shape=arr.shape)
        rows.append(row)
    return GradientReport(rows, mode, eps, rtol, atol, model_dtype)
