"""What the gradient checker returns: ``GradientRow``, ``GradientReport``, ``EpsSweep``."""

from dataclasses import dataclass, field

import numpy as np

_TINY = np.finfo(np.float64).tiny


@dataclass
class GradientRow:
    """One compared array: ``"input"``, a parameter's dotted name, or ``"all"`` (fast mode).

    ``kinks`` counts the probes accepted at or near a kink (the analytic
    value is a valid subgradient there); ``undeclared_kinks`` those of them
    that no module declared. ``diagnosis`` names the suspected mistake of a
    failed row, or is None.
    """

    name: str
    shape: tuple
    rel_error: float
    max_abs_error: float
    passed: bool
    probes: int
    diagnosis: str = None
    kinks: int = 0
    undeclared_kinks: int = 0
    note: str = None

    @property
    def result(self):
        return "PASS" if self.passed else "FAIL"


def _table(lines):
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines]


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
        table = [("row", "shape", "probes", "rel_error", "max_abs_error", "kinks", "result")]
        for r in self.rows:
            table.append((r.name, str(r.shape), str(r.probes), f"{r.rel_error:.2e}",
                          f"{r.max_abs_error:.2e}", str(r.kinks), r.result))
        lines = [header] + _table(table)
        for r in self.rows:
            if r.diagnosis:
                lines.append(f"{r.name}: diagnosis: {r.diagnosis}")
            if r.note:
                lines.append(f"{r.name}: {r.note}")
        lines += self.notes
        verdict = "all rows passed" if self.ok else f"{len(self.failed)} of {len(self.rows)} rows FAILED"
        lines.append(verdict)
        return "\n".join(lines)


@dataclass
class EpsSweep:
    """The error between analytic and numeric derivatives at each step size.

    ``rows`` holds ``(eps, rel_error, max_abs_error)``. A right gradient
    shows a V: the error falls with eps (truncation, ~eps**2) until round-off
    (~1/eps) takes over. A bug shows an error that never falls below a floor.
    """

    rows: list
    best_eps: float
    best_error: float
    verdict: str

    def __str__(self):
        table = [("eps", "rel_error", "max_abs_error", "")]
        best = min(r[1] for r in self.rows)
        for eps, rel, err in self.rows:
            bar = "#" * int(max(0, min(40, 2 * (16 + np.log10(max(rel, 1e-16))))))
            table.append((f"{eps:.0e}", f"{rel:.2e}", f"{err:.2e}", bar + (" <- best" if rel == best else "")))
        return "\n".join(["eps sweep (rel_error of directional derivatives against step size)"]
                         + _table(table) + [self.verdict])
