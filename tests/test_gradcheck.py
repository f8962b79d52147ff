"""The gradient checker: it passes correct layers and catches the seed's bug."""

import numpy as np
import pytest

import nanonet as nn


class SeedBiasBugLinear(nn.Linear):
    """The seed's mistake: the bias gradient summed over batch *and* units."""

    def backward(self, grad_out):
        self.weight.grad += self._x.T @ grad_out
        self.bias.grad += np.sum(grad_out)
        return grad_out @ self.weight.value.T


def _seed_problem():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(500, 10)), rng.normal(size=(500, 1))
    return rng, x, y


def _seed_model(linear, rng):
    return nn.Sequential(linear(10, 64, rng=rng), nn.ReLU(), linear(64, 64, rng=rng), nn.ReLU(),
                         linear(64, 1, rng=rng))


@pytest.mark.parametrize("mode", ["projected", "full"])
def test_catches_the_seeds_bias_bug_and_passes_the_fix(mode):
    rng, x, y = _seed_problem()
    good = _seed_model(nn.Linear, np.random.default_rng(1))
    bad = _seed_model(SeedBiasBugLinear, np.random.default_rng(1))
    if mode == "full":  # keep the full check small: fewer samples
        x, y = x[:40], y[:40]
    good_report = nn.check_gradients(good, x, y, loss_fn=nn.MSELoss(), rng=0, mode=mode)
    bad_report = nn.check_gradients(bad, x, y, loss_fn=nn.MSELoss(), rng=0, mode=mode)
    assert good_report.ok, good_report
    assert not bad_report.ok
    failed = {row.name for row in bad_report.failed}
    # The last layer has one unit, so summing over units is harmless there (as in the seed's last diff).
    assert failed == {"0.bias", "2.bias"}, bad_report
    assert bad_report["0.bias"].rel_error > 0.1
    assert "0.bias" in str(bad_report) and "FAIL" in str(bad_report)


def test_report_rows_and_table():
    rng, x, y = _seed_problem()
    model = _seed_model(nn.Linear, rng)
    report = nn.check_gradients(model, x, y, loss_fn=nn.MSELoss(), rng=0)
    assert [r.name for r in report.rows] == ["input", "0.weight", "0.bias", "2.weight", "2.bias",
                                             "4.weight", "4.bias"]
    assert report["input"].shape == (500, 10) and report["0.weight"].shape == (10, 64)
    for row in report.rows:
        assert row.passed and 0 <= row.rel_error < 1e-5 and row.max_abs_error < 1e-7
    text = str(report)
    assert len([line for line in text.splitlines() if line.endswith("PASS")]) == 7
    assert "all rows passed" in text
    with pytest.raises(KeyError, match="no row named"):
        report["nope"]


def test_checker_leaves_the_callers_model_untouched():
    rng, x, y = _seed_problem()
    model = _seed_model(nn.Linear, rng)
    for p in model.parameters():
        p.grad += 1.0
    before = {n: (p.value.copy(), p.grad.copy()) for n, p in model.named_parameters()}
    x_before = x.copy()
    nn.check_gradients(model, x, y, loss_fn=nn.MSELoss(), rng=0)
    for n, p in model.named_parameters():
        np.testing.assert_array_equal(p.value, before[n][0])
        np.testing.assert_array_equal(p.grad, before[n][1])
    np.testing.assert_array_equal(x, x_before)


def test_float32_model_is_checked_on_a_float64_copy():
    gen = np.random.default_rng(0)
    model = nn.Sequential(nn.Linear(4, 5, rng=0, dtype=np.float32), nn.ReLU(), nn.Linear(5, 1, rng=1, dtype=np.float32))
    x = gen.normal(size=(6, 4)).astype(np.float32)
    y = gen.normal(size=(6, 1)).astype(np.float32)
    report = nn.check_gradients(model, x, y, loss_fn=nn.MSELoss(), rng=0, mode="full")
    assert report.ok, report
    assert report.model_dtype == "float32"
    assert "float32 model was checked on a float64 copy" in str(report)
    assert model[0].weight.value.dtype == np.float32


def test_without_loss_checks_a_single_modules_jacobian():
    x = np.random.default_rng(0).normal(size=(3, 4))
    report = nn.check_gradients(nn.Linear(4, 2, rng=0), x, rng=1, mode="full")
    assert report.ok and [r.name for r in report.rows] == ["input", "weight", "bias"]
    bad = SeedBiasBugLinear(4, 2, rng=0)
    report = nn.check_gradients(bad, x, rng=1, mode="full")
    assert [r.name for r in report.failed] == ["bias"]


def test_relative_error_cannot_divide_by_zero():
    row = nn.gradcheck.compare("z", np.zeros(3), np.zeros(3), rtol=1e-5, atol=1e-8)
    assert row.rel_error == 0.0 and row.passed
    row = nn.gradcheck.compare("opp", np.ones(3), -np.ones(3), rtol=1e-5, atol=1e-8)
    assert row.rel_error == pytest.approx(1.0) and not row.passed


def test_numerical_jacobian_matches_closed_form():
    a = np.random.default_rng(0).normal(size=(3, 4))
    x = np.random.default_rng(1).normal(size=4)
    np.testing.assert_allclose(nn.numerical_jacobian(lambda v: a @ v, x), a, atol=1e-9)
    np.testing.assert_allclose(nn.numerical_jacobian(np.tanh, x), np.diag(1 - np.tanh(x) ** 2), atol=1e-9)


def test_analytic_jacobian_uses_real_backward():
    layer = nn.Linear(3, 2, rng=0)
    x = np.random.default_rng(1).normal(size=(2, 3))
    jac = nn.analytic_jacobian(layer, x)
    np.testing.assert_allclose(jac, np.kron(np.eye(2), layer.weight.value.T), atol=1e-12)
    bad = SeedBiasBugLinear(3, 2, rng=0)

    class FlippedInputGrad(nn.Linear):
        def backward(self, grad_out):
            return -super().backward(grad_out)

    flipped = FlippedInputGrad(3, 2, rng=0)
    assert not np.allclose(nn.analytic_jacobian(flipped, x), jac)
    np.testing.assert_allclose(nn.analytic_jacobian(bad, x), jac)


def test_bad_arguments():
    layer = nn.Linear(2, 2, rng=0)
    with pytest.raises(ValueError, match="mode"):
        nn.check_gradients(layer, np.ones((1, 2)), mode="fastest")
    with pytest.raises(ValueError, match="both y and loss_fn"):
        nn.check_gradients(layer, np.ones((1, 2)), y=np.ones((1, 2)))
