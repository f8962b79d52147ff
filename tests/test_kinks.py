"""Kinks: subgradients at declared kinks pass, undeclared kinks are reported as kinks, wrong values fail."""

import numpy as np
import pytest

import nanonet as nn

EPS = 1e-6


class Abs(nn.Module):
    """|x| with derivative 1 at 0; ``kinks`` declared or not per instance."""

    batch_independent = True

    def __init__(self, declare=True, at_zero=1.0):
        self.kinks = (0.0,) if declare else ()
        self.at_zero = at_zero

    def forward(self, x):
        self._x = x
        return np.abs(x)

    def backward(self, grad_out):
        d = np.sign(self._x)
        d[self._x == 0] = self.at_zero
        return grad_out * d


def _at_and_near_zero():
    # exactly 0, within eps (both sides), and a few ordinary values
    return np.array([[0.0, 1e-9, -3e-7, 2e-8, 0.7, -1.3]])


@pytest.mark.parametrize("mode", ["full", "projected", "fast"])
def test_relu_exactly_at_and_within_eps_of_zero(mode):
    x = _at_and_near_zero()
    report = nn.check_gradients(nn.ReLU(), x, rng=0, mode=mode, n_directions=4)
    assert report.ok, report
    row = report.rows[0]
    assert row.kinks >= 1 and row.undeclared_kinks == 0
    assert any("declared kink" in note and "ReLU() at 0" in note for note in report.notes)


def test_relu_kinks_counted_per_element_in_full_mode():
    x = _at_and_near_zero()
    report = nn.check_gradients(nn.ReLU(), x, rng=0, mode="full")
    # 0 (analytic 0 vs central 0.5), 1e-9 and 2e-8 (central ~0.5): all at or within eps of the kink.
    # -3e-7 lies within eps too; ReLU's central difference there is 0.35, also a kink probe.
    assert report["input"].kinks == 4, report


def test_without_kink_handling_the_same_points_would_fail():
    x = _at_and_near_zero()
    work = nn.ReLU()
    analytic = nn.analytic_jacobian(work, x)
    numeric = nn.numerical_jacobian(nn.ReLU().forward, x, eps=EPS)
    assert not np.allclose(np.diag(analytic), np.diag(numeric), atol=1e-3)


def test_leaky_relu_and_l1_at_their_kinks():
    x = np.array([[0.0, 5e-7, -1e-8, 1.0]])
    report = nn.check_gradients(nn.LeakyReLU(0.2), x, rng=1, mode="full")
    assert report.ok and report["input"].kinks >= 2, report
    pred = np.array([[1.0, 2.0 + 1e-9], [3.0, -1.0]])
    target = np.array([[1.0, 2.0], [0.0, -1.0]])
    report = nn.check_gradients(nn.Identity(), pred, target, loss_fn=nn.L1Loss(), rng=0, mode="full")
    # diff 1e-9 is a kink probe; at diff exactly 0, sign(0) = 0 equals the central difference
    assert report.ok and report["input"].kinks == 1, report
    assert "L1Loss(reduction='mean') at 0" in "\n".join(report.notes)


def test_kinks_deep_inside_a_network():
    # a ReLU pre-activation pushed exactly onto 0 by choosing the bias
    lin = nn.Linear(3, 4, rng=0)
    x = np.random.default_rng(1).normal(size=(5, 3))
    z = x @ lin.weight.value
    lin.bias.value[0] = -z[2, 0]  # unit 0 of row 2 sits exactly at the kink
    model = nn.Sequential(lin, nn.ReLU(), nn.Linear(4, 1, rng=2))
    y = np.ones((5, 1))  # pred != y, so row 2's loss gradient is not zero
    for mode in ("full", "projected"):
        report = nn.check_gradients(model, x, y, loss_fn=nn.MSELoss(), rng=0, mode=mode)
        assert report.ok, report
        assert sum(r.kinks for r in report.rows) > 0
        assert all(r.undeclared_kinks == 0 for r in report.rows)


def test_undeclared_kink_is_reported_as_a_kink_not_a_bug():
    x = _at_and_near_zero()
    report = nn.check_gradients(Abs(declare=False), x, rng=0, mode="full")
    assert report.ok, report
    assert report["input"].undeclared_kinks >= 1 and report["input"].diagnosis is None
    assert any("undeclared kink" in note for note in report.notes)
    declared = nn.check_gradients(Abs(declare=True), x, rng=0, mode="full")
    assert declared["input"].undeclared_kinks == 0 and declared["input"].kinks == report["input"].kinks


def test_a_value_outside_the_subdifferential_fails():
    x = np.array([[0.0, 0.5]])
    report = nn.check_gradients(Abs(at_zero=3.0), x, rng=0, mode="full")
    assert not report.ok
    assert report["input"].kinks == 0


def test_smooth_layers_never_report_kinks():
    x = np.random.default_rng(0).normal(size=(6, 5))
    for layer in (nn.Tanh(), nn.GELU(), nn.Softplus(), nn.ELU()):
        report = nn.check_gradients(layer, x, rng=0, mode="full")
        assert report.ok and report["input"].kinks == 0, report


def test_a_real_bug_near_a_kink_is_still_a_bug():
    class HalfReLU(nn.ReLU):
        def backward(self, grad_out):
            return 0.5 * super().backward(grad_out)

    x = np.array([[1e-9, 0.3, -0.4, 0.8]])
    report = nn.check_gradients(HalfReLU(), x, rng=0, mode="full")
    assert not report.ok


def test_a_row_of_zeros_into_relus_crosses_several_kinks_at_once():
    # zero bias and an all-zero data row: every unit of that row sits exactly at ReLU's kink, so a
    # probe of x[0, c] crosses all of them together; the chain rule's value need not lie between
    # the one-sided differences, and the checker accepts it as a kink rather than failing.
    gen = np.random.default_rng(0)
    x = gen.normal(size=(5, 3))
    x[0] = 0.0
    model = nn.Sequential(nn.Linear(3, 8, rng=1), nn.ReLU(), nn.Linear(8, 1, rng=2))
    report = nn.check_gradients(model, x, np.ones((5, 1)), loss_fn=nn.MSELoss(), rng=0, mode="full")
    assert report.ok, report
    assert report["input"].kinks >= 1
    assert "several declared kinks at once" in str(report)


def test_several_kinks_do_not_excuse_a_real_bug_elsewhere():
    class Doubled(nn.Linear):
        def backward(self, grad_out):
            out = super().backward(grad_out)
            self.weight.grad += self._x.T @ grad_out
            return out

    x = np.random.default_rng(0).normal(size=(5, 3))
    x[0] = 0.0
    model = nn.Sequential(Doubled(3, 8, rng=1), nn.ReLU(), nn.Linear(8, 1, rng=2))
    report = nn.check_gradients(model, x, np.ones((5, 1)), loss_fn=nn.MSELoss(), rng=0, mode="full")
    assert [r.name for r in report.failed] == ["0.weight"]
    assert "factor of 2" in report["0.weight"].diagnosis
