"""Testing tools for nanonet layers: a conformance suite, like scikit-learn's ``check_estimator``.

``check_layer(layer, input_shape)`` runs every check on a layer (or a loss)
and raises ``LayerCheckError`` with a readable table when one fails;
``parametrize_with_checks([...])`` turns the same checks into pytest
parameters. The hypothesis strategies live in ``nanonet.testing.strategies``
(they need the ``test`` extra).

Example:
    >>> import nanonet as nn
    >>> from nanonet.testing import check_layer
    >>> report = check_layer(lambda: nn.Linear(3, 2, rng=0), (4, 3))
    >>> report.ok, len(report.results)
    (True, 11)
"""

import functools
from dataclasses import dataclass

from .checks import ALL_CHECKS, LAYER_CHECKS, LOSS_CHECKS, LayerSpec, SkipCheck

__all__ = ["ALL_CHECKS", "LayerCheckError", "LayerCheckReport", "LayerSpec", "check_layer",
           "parametrize_with_checks", "run_check"]


@dataclass
class CheckResult:
    """One check: ``status`` is PASS, FAIL, SKIP, XFAIL (expected and failed) or XPASS."""

    name: str
    status: str
    detail: str = ""


@dataclass
class LayerCheckReport:
    """All checks of one layer; ``ok`` when nothing failed unexpectedly."""

    label: str
    results: list

    @property
    def ok(self):
        return not self.failed

    @property
    def failed(self):
        return [r for r in self.results if r.status == "FAIL"]

    def __getitem__(self, name):
        for r in self.results:
            if r.name == name:
                return r
        raise KeyError(f"no check named {name!r}; checks are {[r.name for r in self.results]}")

    def __str__(self):
        width = max(len(r.name) for r in self.results)
        lines = [f"check_layer: {self.label}"]
        for r in self.results:
            first, *rest = (r.detail or "").splitlines() or [""]
            lines.append(f"  {r.name.ljust(width)}  {r.status.ljust(5)}  {first}".rstrip())
            lines += [f"  {' ' * width}         {line}" for line in rest]
        verdict = "all checks passed" if self.ok else f"{len(self.failed)} check(s) FAILED: " + ", ".join(
            r.name for r in self.failed)
        lines.append(verdict)
        return "\n".join(lines)


class LayerCheckError(AssertionError):
    """Raised by ``check_layer`` when a check fails; ``.report`` holds the whole report."""

    def __init__(self, report):
        super().__init__(str(report))
        self.report = report


def _checks_for(spec):
    return LOSS_CHECKS if spec.is_loss else LAYER_CHECKS


def _run_one(spec, name):
    try:
        detail = _checks_for(spec)[name](spec) or ""
        status = "PASS"
    except SkipCheck as exc:
        status, detail = "SKIP", str(exc)
    except Exception as exc:  # a failed check, whatever it raised
        status, detail = "FAIL", f"{type(exc).__name__}: {exc}"
    if name in spec.expected_failures and status in ("PASS", "FAIL"):
        status = "XPASS" if status == "PASS" else "XFAIL"
    return CheckResult(name, status, detail)


def check_layer(layer_or_factory, input_shape, *, rng=0, expected_failures=(), target=None,
                raise_on_failure=True, input=None):
    """Run every conformance check on a layer or a loss.

    Args:
        layer_or_factory: a Module or Loss, or a zero-argument callable that
            returns a fresh one (a factory taking ``rng=`` is also checked
            for determinism under a seed). Third-party layers only need
            nanonet's contract: ``forward``, ``backward``, parameters by
            assignment.
        input_shape: the shape of ``x`` (for a loss, of ``pred``).
        rng: seed for the inputs.
        expected_failures: check names the layer opts out of (reported XFAIL).
        target: for a loss, the target array or ``f(shape, generator)``.
        input: the input array or ``f(shape, generator)`` (default: normal
            floats); small integers as floats put max pooling on its ties.
        raise_on_failure: raise ``LayerCheckError`` (with the table) on failure.

    The checks, for a layer: ``gradients`` (input and parameter Jacobians
    against finite differences), ``grad_out_linearity``, ``accumulation``,
    ``batch_independence`` (when declared), ``determinism``,
    ``input_not_mutated``, ``dtype`` (float32 stays float32),
    ``state_dict`` (round trip), ``repr``, ``train_eval``, ``wrong_input``.
    For a loss: ``gradients``, ``determinism``, ``input_not_mutated``,
    ``dtype``, ``repr``, ``wrong_input``, ``grad_scaling``.

    Returns:
        ``LayerCheckReport`` (``.ok``, ``.results``, ``report[name]``, ``str``).
    """
    spec = layer_or_factory if isinstance(layer_or_factory, LayerSpec) else LayerSpec(
        layer_or_factory, input_shape, target=target, expected_failures=expected_failures, rng=rng, input=input)
    unknown = set(spec.expected_failures) - set(ALL_CHECKS)
    if unknown:
        raise ValueError(f"check_layer got unknown expected_failures {sorted(unknown)}; checks are {ALL_CHECKS}")
    report = LayerCheckReport(spec.label, [_run_one(spec, name) for name in _checks_for(spec)])
    if raise_on_failure and not report.ok:
        raise LayerCheckError(report)
    return report


def run_check(spec, name):
    """Run one named check on a ``LayerSpec``: raise on failure, ``pytest.skip`` when it does not apply."""
    result = _run_one(spec, name)
    if result.status == "FAIL":
        raise LayerCheckError(LayerCheckReport(spec.label, [result]))
    if result.status in ("SKIP", "XFAIL"):
        import pytest

        pytest.skip(f"{name}: {result.status} {result.detail}")
    return result


def parametrize_with_checks(layers, *, rng=0):
    """A ``pytest.mark.parametrize("layer, check", ...)`` over every check of every layer.

    ``layers``: ``LayerSpec`` objects or ``(layer_or_factory, input_shape)``
    pairs. The test body is ``check(layer)``::

        @parametrize_with_checks([(lambda: nn.Tanh(), (4, 3))])
        def test_my_layers(layer, check):
            check(layer)
    """
    import pytest

    params = []
    for item in layers:
        spec = item if isinstance(item, LayerSpec) else LayerSpec(*item, rng=rng)
        for name in _checks_for(spec):
            check = functools.partial(run_check, name=name)
            params.append(pytest.param(spec, check, id=f"{spec.label}-{name}"))
    return pytest.mark.parametrize("layer, check", params)
