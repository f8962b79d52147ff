"""Every diagnosis, each caught on a deliberately broken layer."""

import numpy as np
import pytest

import nanonet as nn
from nanonet.gradcheck.diagnosis import diagnose


class SeedBiasBugLinear(nn.Linear):
    """The seed's mistake: the bias gradient summed over batch *and* units."""

    def backward(self, grad_out):
        self.weight.grad += self._x.T @ grad_out
        self.bias.grad += np.sum(grad_out)
        return grad_out @ self.weight.value.T


def _broken_linear(weight_update, size=(4, 3)):
    class Broken(nn.Linear):
        def backward(self, grad_out):
            weight_update(self, self._x, grad_out)
            self.bias.grad += grad_out.sum(axis=0)
            return grad_out @ self.weight.value.T

    return Broken(*size, rng=0)


def _weight_diagnosis(layer, n_rows=6, mode="full"):
    x = np.random.default_rng(1).normal(size=(n_rows, layer.in_features))
    report = nn.check_gradients(layer, x, rng=0, mode=mode)
    assert [row.name for row in report.failed] == ["weight"], report
    return report["weight"].diagnosis


@pytest.mark.parametrize("mode", ["projected", "full"])
def test_seed_bias_bug_is_named_summed_over_the_wrong_axis(mode):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(500, 10)), rng.normal(size=(500, 1))
    if mode == "full":
        x, y = x[:40], y[:40]
    gen = np.random.default_rng(1)
    model = nn.Sequential(SeedBiasBugLinear(10, 64, rng=gen), nn.ReLU(), SeedBiasBugLinear(64, 64, rng=gen),
                          nn.ReLU(), SeedBiasBugLinear(64, 1, rng=gen))
    report = nn.check_gradients(model, x, y, loss_fn=nn.MSELoss(), rng=0, mode=mode)
    assert {row.name for row in report.failed} == {"0.bias", "2.bias"}
    for name in ("0.bias", "2.bias"):
        assert report[name].diagnosis.startswith("summed over the wrong axis"), report
        assert "np.sum(grad_out)" in report[name].diagnosis
    assert "0.bias: diagnosis: summed over the wrong axis" in str(report)
    assert all(row.diagnosis is None for row in report.rows if row.passed)


def test_overwritten_instead_of_accumulated():
    def overwrite(layer, x, g):
        layer.weight.grad = x.T @ g

    assert _weight_diagnosis(_broken_linear(overwrite)).startswith("overwritten instead of accumulated")


def test_overwritten_in_place_too():
    def overwrite(layer, x, g):
        layer.weight.grad[...] = x.T @ g

    assert _weight_diagnosis(_broken_linear(overwrite)).startswith("overwritten instead of accumulated")


def test_sign_flip():
    def flipped(layer, x, g):
        layer.weight.grad -= x.T @ g

    assert _weight_diagnosis(_broken_linear(flipped), mode="projected").startswith("sign flip")


def test_factor_of_n_from_a_forgotten_batch_mean():
    class SumNotMeanLoss(nn.MSELoss):
        """forward is a mean over rows, backward forgot the 1/N."""

        def backward(self, grad=1.0):
            return 2.0 * self._diff * grad

    pred = np.random.default_rng(0).normal(size=(7, 1))
    report = nn.check_gradients(nn.Identity(), pred, np.zeros((7, 1)), loss_fn=SumNotMeanLoss(), rng=0)
    assert "too large by a factor of N = 7" in report["input"].diagnosis, report


def test_factor_of_n_too_small():
    def divided(layer, x, g):
        layer.weight.grad += x.T @ g / x.shape[0]

    assert "too small by a factor of N = 6" in _weight_diagnosis(_broken_linear(divided))


def test_factor_of_two():
    def doubled(layer, x, g):
        layer.weight.grad += 2 * (x.T @ g)

    assert "too large by a factor of 2" in _weight_diagnosis(_broken_linear(doubled))


def test_transposed_weight_gradient():
    def transposed(layer, x, g):
        layer.weight.grad += g.T @ x

    assert _weight_diagnosis(_broken_linear(transposed, size=(4, 4))).startswith("transposed weight gradient")


def test_transposed_non_square_weight_gradient_via_reshape():
    def transposed(layer, x, g):
        layer.weight.grad += (g.T @ x).reshape(layer.weight.value.shape)

    assert _weight_diagnosis(_broken_linear(transposed, size=(4, 3))).startswith("transposed weight gradient")


def test_missing_gradient_is_zero():
    def forgotten(layer, x, g):
        pass

    assert _weight_diagnosis(_broken_linear(forgotten)).startswith("the analytic gradient is zero")


def test_unrecognized_bug_has_no_diagnosis():
    noise = np.random.default_rng(5).normal(size=(4, 3))

    def noisy(layer, x, g):
        layer.weight.grad += x.T @ g + noise

    assert _weight_diagnosis(_broken_linear(noisy)) is None


def test_diagnose_directly():
    n = np.arange(1.0, 7.0)
    assert diagnose(-n, n, (6,)).startswith("sign flip")
    assert "factor of N = 3" in diagnose(3 * n, n, (6,), batch=3)
    assert "1.5 times" in diagnose(1.5 * n, n, (6,))
    assert diagnose(np.full(6, n.sum()), n, (6,)).startswith("summed over the wrong axis (all axes")
    grid = n.reshape(2, 3)
    assert "axis 0" in diagnose(np.broadcast_to(grid.sum(axis=0), (2, 3)).ravel(), n, (2, 3))
    assert diagnose(n.reshape(2, 3).T.ravel(), n, (2, 3)).startswith("transposed")
    prefill = np.ones(6)
    assert diagnose(n - prefill, n, (6,), prefill=prefill).startswith("overwritten")
    assert diagnose(n + 0.01 * np.sin(7 * n), n, (6,)) is None
