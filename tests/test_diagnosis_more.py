"""The diagnoses added for the other common mistakes, each caught on a deliberately broken layer.

Also: a correct model whose hidden units sit exactly at a kink passes, and a
layer that silently computes in float32 inside a float64 model is caught.
"""

import numpy as np
import pytest
from scipy import special

import nanonet as nn
from nanonet.gradcheck.diagnosis import diagnose

X = np.random.default_rng(1).normal(size=(6, 4))


def _failed(model, x=X, **kwargs):
    report = nn.check_gradients(model, x, rng=0, **kwargs)
    assert not report.ok, report
    return report


# -- mask errors ----------------------------------------------------------------------------
class ReLUMask(nn.Module):
    """ReLU whose backward takes its mask from ``mask_of(x, grad_out)``."""

    kinks = (0.0,)
    batch_independent = True

    def __init__(self, mask_of):
        self.mask_of = mask_of

    def forward(self, x):
        self._x = x
        return np.maximum(x, 0)

    def backward(self, grad_out):
        return grad_out * self.mask_of(self._x, grad_out)


@pytest.mark.parametrize("mask_of, fragment", [
    (lambda x, g: x > 0.4, "is zero and the numeric one is not: backward blocks active units"),
    (lambda x, g: x > -0.4, "is nonzero and the numeric one is zero: backward lets the gradient through inactive"),
    (lambda x, g: g > 0, "zero where the numeric one is not"),
    (lambda x, g: x <= 0, "the mask is inverted"),
], ids=["threshold-too-high", "threshold-too-low", "mask-from-grad_out", "inverted"])
def test_mask_errors(mask_of, fragment):
    diagnosis = _failed(ReLUMask(mask_of))["input"].diagnosis
    assert diagnosis.startswith("mask error") and fragment in diagnosis, diagnosis
    assert "ReLU/LeakyReLU mask taken from the wrong array" in diagnosis


class LeakyWrongThreshold(nn.Module):
    kinks = (0.0,)
    batch_independent = True

    def forward(self, x):
        self._x = x
        return np.where(x > 0, x, 0.1 * x)

    def backward(self, grad_out):
        return grad_out * np.where(self._x > 0.5, 1.0, 0.1)  # units in (0, 0.5] get the slope


def test_leaky_relu_slope_on_active_units():
    diagnosis = _failed(LeakyWrongThreshold())["input"].diagnosis
    assert diagnosis.startswith("mask error") and "0.1 times the numeric one" in diagnosis, diagnosis


# -- stale caches ---------------------------------------------------------------------------------
class StaleScale(nn.Module):
    """y = x * w; refreshes its cached input only when the shape changes (a buffer-reuse bug)."""

    batch_independent = True

    def __init__(self, features):
        self.w = nn.Parameter(np.linspace(0.5, 1.5, features))
        self._x = None

    def forward(self, x):
        if self._x is None or self._x.shape != x.shape:
            self._x = x.copy()
        return x * self.w.value

    def backward(self, grad_out):
        self.w.grad += (grad_out * self._x).sum(axis=0)
        return grad_out * self.w.value


class StaleTanh(nn.Module):
    """Caches its output on the first forward only."""

    batch_independent = True

    def __init__(self):
        self._y = None

    def forward(self, x):
        y = np.tanh(x)
        if self._y is None:
            self._y = y
        return y

    def backward(self, grad_out):
        return grad_out * (1 - self._y ** 2)


def test_stale_cache_of_a_single_layer_equals_the_gradient_at_the_previous_input():
    report = _failed(StaleScale(4))
    assert [row.name for row in report.failed] == ["w"]
    diagnosis = report["w"].diagnosis
    assert diagnosis.startswith("stale cache: backward used values from an earlier forward"), diagnosis
    assert "and right" in diagnosis and "equals the analytic gradient at that earlier input" in diagnosis


def test_stale_cache_inside_a_model():
    model = nn.Sequential(nn.Linear(4, 3, rng=0), StaleTanh(), nn.Linear(3, 2, rng=1))
    report = _failed(model, mode="full")
    assert {row.name for row in report.failed} == {"input", "0.weight", "0.bias"}
    for row in report.failed:
        assert row.diagnosis.startswith("stale cache"), report


# -- missing chain-rule factors -----------------------------------------------------------------------
class Elementwise(nn.Module):
    batch_independent = True

    def __init__(self, f, backward_of):
        self.f, self.backward_of = f, backward_of

    def forward(self, x):
        self._x, self._y = x, self.f(x)
        return self._y

    def backward(self, grad_out):
        return grad_out * self.backward_of(self._x, self._y)


@pytest.mark.parametrize("layer, fragment", [
    (Elementwise(np.tanh, lambda x, y: 1 - x ** 2), "evaluated at the input where its formula is in terms of the out"),
    (Elementwise(special.expit, lambda x, y: x * (1 - x)), "evaluated at the input where its formula is in terms of"),
    (Elementwise(np.tanh, lambda x, y: 1 - np.tanh(y) ** 2), "evaluated at the output y where it belongs at the input"),
    (Elementwise(special.expit, lambda x, y: special.expit(y) * (1 - special.expit(y))), "at the output y"),
    (Elementwise(np.tanh, lambda x, y: 1.0), "the analytic input gradient is grad_out itself"),
], ids=["tanh-1-x2", "sigmoid-x(1-x)", "tanh-at-output", "sigmoid-at-output", "no-derivative"])
def test_missing_chain_rule_factor(layer, fragment):
    diagnosis = _failed(layer)["input"].diagnosis
    assert diagnosis.startswith("missing chain-rule factor") and fragment in diagnosis, diagnosis


def _layer_norm_without(term):
    class Broken(nn.LayerNorm):
        def backward(self, grad_out):
            xhat, rstd = self._cache
            self.weight.grad += (grad_out * xhat).sum(axis=0)
            self.bias.grad += grad_out.sum(axis=0)
            d = grad_out * self.weight.value
            mean_d = 0 if term == "mean" else d.mean(axis=1, keepdims=True)
            mean_dx = 0 if term == "variance" else (d * xhat).mean(axis=1, keepdims=True)
            return rstd * (d - mean_d - xhat * mean_dx)

    return Broken(5)


def _batch_norm_without_both():
    class Broken(nn.BatchNorm1d):
        def backward(self, grad_out):
            xhat, rstd, _ = self._cache
            self.weight.grad += (grad_out * xhat).sum(axis=0)
            self.bias.grad += grad_out.sum(axis=0)
            return grad_out * self.weight.value * rstd  # the eval-mode formula in training

    return Broken(5)


@pytest.mark.parametrize("layer, fragment", [
    (_layer_norm_without("mean"), "along axis 1 the error is, slice by slice, a constant: the path through the mean"),
    (_layer_norm_without("variance"), "a multiple of the normalized input: the path through the variance"),
    (_batch_norm_without_both(), "along axis 0 the error is, slice by slice, a constant plus a multiple of the"),
], ids=["layernorm-mean", "layernorm-variance", "batchnorm-both"])
def test_missing_normalization_term(layer, fragment):
    x = np.random.default_rng(2).normal(size=(6, 5)) * 2 + 1
    diagnosis = _failed(layer, x)["input"].diagnosis
    assert diagnosis.startswith("a missing term of a normalization's backward") and fragment in diagnosis, diagnosis


# -- W for W.T, a sum over the wrong single axis --------------------------------------------------------
class UntransposedLinear(nn.Linear):
    def backward(self, grad_out):
        self.weight.grad += self._x.T @ grad_out
        self.bias.grad += grad_out.sum(axis=0)
        return grad_out @ self.weight.value  # W where W.T was meant


def test_w_instead_of_w_transposed():
    report = _failed(UntransposedLinear(4, 4, rng=0))
    assert [row.name for row in report.failed] == ["input"]
    assert report["input"].diagnosis.startswith("W instead of W.T: the analytic input gradient is grad_out @ weight")


class BiasOnly(nn.Module):
    """y = x + b for x of shape (N, F); backward sums over the wrong axis (hidden when N == F)."""

    batch_independent = True

    def __init__(self, features):
        self.b = nn.Parameter(np.zeros(features))

    def forward(self, x):
        return x + self.b.value

    def backward(self, grad_out):
        self.b.grad += grad_out.sum(axis=1)
        return grad_out


def test_sum_over_the_wrong_single_axis():
    x = np.random.default_rng(3).normal(size=(4, 4))
    diagnosis = _failed(BiasOnly(4), x)["b"].diagnosis
    assert diagnosis.startswith("summed over the wrong axis: the analytic gradient is grad_out summed over axis 1 "
                                "where axis 0 was meant"), diagnosis


# -- factors of the number of features or elements -------------------------------------------------------
class MeanOverRowsMSE(nn.MSELoss):
    """forward averages over all N*F elements, backward divides by N only."""

    def backward(self, grad=1.0):
        return 2.0 * self._diff * grad / self._diff.shape[0]


class MeanOverElementsCE(nn.CrossEntropyLoss):
    """forward averages over the N rows, backward divides by all N*C elements."""

    def backward(self, grad=1.0):
        g = super().backward(grad)
        return g / g.shape[1]  # the mean over rows, divided again by the C columns


@pytest.mark.parametrize("loss, target, fragment", [
    (MeanOverRowsMSE(), np.zeros((6, 3)), "too large by a factor of F = 3, the number of output features"),
    (MeanOverElementsCE(), np.array([0, 1, 2, 0, 1, 2]), "too small by a factor of F = 3, the number of output"),
])
def test_factor_of_features_instead_of_batch(loss, target, fragment):
    pred = np.random.default_rng(4).normal(size=(6, 3))
    report = nn.check_gradients(nn.Identity(), pred, target, loss_fn=loss, rng=0)
    assert fragment in report["input"].diagnosis, report


def test_factor_of_elements_directly():
    n = np.arange(1.0, 13.0)
    sizes = {"batch": 4, "input features": 3}
    assert "too large by a factor of N*F = 12, the number of input elements" in diagnose(12 * n, n, (4, 3),
                                                                                         sizes=sizes)
    assert "too small by a factor of F = 3" in diagnose(n / 3, n, (4, 3), sizes=sizes)


# -- float32 inside a float64 model ------------------------------------------------------------------
class Float32Linear(nn.Linear):
    """A correct backward, computed in float32 and cast back: relative error about 1e-7."""

    def backward(self, grad_out):
        g = grad_out.astype(np.float32)
        self.weight.grad += (self._x.astype(np.float32).T @ g).astype(np.float64)
        self.bias.grad += g.sum(axis=0).astype(np.float64)
        return (g @ self.weight.value.astype(np.float32).T).astype(np.float64)


def test_a_layer_computing_in_float32_is_caught_by_the_default_check():
    model = nn.Sequential(nn.Linear(4, 5, rng=0), nn.Tanh(), Float32Linear(5, 5, rng=1), nn.Tanh(),
                          nn.Linear(5, 2, rng=2))
    report = nn.check_gradients(model, X, rng=0)
    assert not report.ok
    assert max(row.rel_error for row in report.rows) < 1e-6  # within every tolerance: only the probe sees it
    assert {row.name for row in report.failed} == {"input", "0.weight", "0.bias", "2.weight", "2.bias"}
    assert report["2.weight"].diagnosis.startswith("computed in float32 inside a float64 check")
    assert report["4.weight"].passed
    assert not nn.check_gradients(model, X, rng=0, mode="fast").ok
    assert nn.check_gradients(nn.Sequential(nn.Linear(4, 5, rng=0), nn.Tanh(), nn.Linear(5, 5, rng=1)), X,
                              rng=0).ok


# -- kinks of children count inside containers ------------------------------------------------------------
def _kinked_linear(rng):
    layer = nn.Linear(4, 5, rng=rng)
    layer.weight.value[:, 1] = 0.0  # hidden unit 1 is exactly 0 for every input: at ReLU's kink
    return layer


def _kinked_models():
    inp = nn.Input(4)
    hidden = nn.ReLU()(_kinked_linear(0)(inp))
    graph = nn.Graph(inp, nn.Linear(5, 2, rng=1)(hidden))
    return {
        "sequential": nn.Sequential(_kinked_linear(0), nn.ReLU(), nn.Linear(5, 2, rng=1)),
        "nested": nn.Sequential(nn.Sequential(_kinked_linear(0), nn.ReLU()), nn.Linear(5, 3, rng=1), nn.ReLU(),
                                nn.Linear(3, 2, rng=2)),
        "graph": graph,
    }


@pytest.mark.parametrize("kind", ["sequential", "nested", "graph"])
@pytest.mark.parametrize("mode", ["projected", "full", "fast"])
def test_a_correct_model_with_hidden_units_at_a_kink_passes(kind, mode):
    model = _kinked_models()[kind]
    x = X.copy()
    x[2] = 0.0  # a zero row through zero biases: every first-layer unit of that row sits at the kink
    y = np.random.default_rng(5).normal(size=(6, 2))
    for args in ((x,), (x, y, nn.MSELoss())):
        report = nn.check_gradients(model, *args[:2], loss_fn=args[2] if len(args) > 2 else None, rng=0, mode=mode)
        assert report.ok, report
