"""The checker's own arguments: a check that checked nothing must never say PASS."""

import numpy as np
import pytest

import nanonet as nn
from nanonet.testing import check_layer


class TripledWeightGrad(nn.Linear):
    """The weight gradient is 3x too large."""

    def backward(self, grad_out):
        self.weight.grad += 3 * (self._x.T @ grad_out)
        self.bias.grad += grad_out.sum(axis=0)
        return grad_out @ self.weight.value.T


X = np.random.default_rng(0).normal(size=(5, 3))


def test_n_directions_zero_is_refused_not_passed():
    layer = TripledWeightGrad(3, 2, rng=0)
    assert not nn.check_gradients(layer, X, rng=0).ok
    with pytest.raises(ValueError, match="check_gradients expected n_directions to be an int >= 1, got 0"):
        nn.check_gradients(layer, X, rng=0, n_directions=0)
    with pytest.raises(ValueError, match="eps_sweep expected n_directions to be an int >= 1, got 0"):
        nn.eps_sweep(layer, X, rng=0, n_directions=0)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(eps=0.0), ValueError, r"eps > 0, got 0.0"),
    (dict(eps=-1e-6), ValueError, r"eps > 0, got -1e-06"),
    (dict(eps=float("nan")), ValueError, r"a finite eps, got nan"),
    (dict(eps=float("inf")), ValueError, r"a finite eps, got inf"),
    (dict(rtol=-1e-5), ValueError, r"rtol >= 0"),
    (dict(atol=float("nan")), ValueError, r"a finite atol"),
    (dict(rtol="1e-5"), TypeError, r"rtol to be a real number"),
    (dict(n_directions=2.5), TypeError, r"n_directions to be an int"),
    (dict(mode="exact"), ValueError, r"mode in \('full', 'projected', 'fast'\)"),
    (dict(diagnose=None), TypeError, r"diagnose to be True or False"),
])
def test_check_gradients_settings(kwargs, error, match):
    with pytest.raises(error, match="check_gradients expected " + match):
        nn.check_gradients(nn.Tanh(), X, rng=0, **kwargs)


def test_non_finite_input_or_parameter_is_refused_by_name():
    bad = X.copy()
    bad[2, 1] = np.nan
    with pytest.raises(FloatingPointError, match=r"check_gradients got a non-finite x: 1 NaN/Inf .* \(2, 1\)"):
        nn.check_gradients(nn.Tanh(), bad, rng=0)
    model = nn.Sequential(nn.Linear(3, 2, rng=0), nn.Tanh(), nn.Linear(2, 1, rng=0))
    model[2].bias.value[0] = np.inf
    with pytest.raises(FloatingPointError, match=r"non-finite parameter '2.bias'"):
        nn.check_gradients(model, X, rng=0)
    bn = nn.BatchNorm1d(3).eval()
    bn.running_var.value[1] = np.nan
    with pytest.raises(FloatingPointError, match=r"non-finite buffer 'running_var'"):
        nn.check_gradients(bn, X, rng=0)
    with pytest.raises(FloatingPointError, match=r"non-finite y"):
        nn.check_gradients(nn.Identity(), X, np.full((5, 3), np.inf), loss_fn=nn.MSELoss())


def test_empty_or_non_numeric_data_is_refused():
    with pytest.raises(ValueError, match=r"check_gradients got an empty x \(0, 3\): there is nothing to check"):
        nn.check_gradients(nn.Tanh(), np.ones((0, 3)), rng=0)
    with pytest.raises(TypeError, match=r"check_gradients expected x to be a numpy.ndarray, got list"):
        nn.check_gradients(nn.Tanh(), [[1.0]], rng=0)
    with pytest.raises(TypeError, match=r"check_gradients expected a numeric \(real\) x, got dtype <U1"):
        nn.check_gradients(nn.Tanh(), np.array([["a"]]), rng=0)
    with pytest.raises(ValueError, match=r"needs both y and loss_fn"):
        nn.check_gradients(nn.Tanh(), X, X)
    with pytest.raises(TypeError, match=r"loss_fn to be a loss instance, got the class MSELoss"):
        nn.check_gradients(nn.Tanh(), X, X, loss_fn=nn.MSELoss)
    with pytest.raises(TypeError, match=r"expected a module instance, got the class Tanh"):
        nn.check_gradients(nn.Tanh, X)


def test_eps_sweep_and_jacobian_arguments():
    with pytest.raises(ValueError, match=r"eps_sweep got no eps_values"):
        nn.eps_sweep(nn.Tanh(), X, eps_values=[])
    with pytest.raises(ValueError, match=r"eps_sweep expected eps_values\[1\] > 0, got 0"):
        nn.eps_sweep(nn.Tanh(), X, eps_values=[1e-3, 0])
    with pytest.raises(ValueError, match=r"numerical_jacobian expected a finite eps, got nan"):
        nn.numerical_jacobian(np.tanh, X, eps=float("nan"))
    with pytest.raises(FloatingPointError, match=r"numerical_jacobian got a non-finite x"):
        nn.numerical_jacobian(np.tanh, [1.0, np.inf])
    with pytest.raises(TypeError, match=r"numerical_jacobian expected a callable f\(x\), got int"):
        nn.numerical_jacobian(3, X)
    with pytest.raises(TypeError, match=r"analytic_jacobian expected x to be a numpy.ndarray, got NoneType"):
        nn.analytic_jacobian(nn.Tanh(), None)


@pytest.mark.parametrize("args, kwargs, error, match", [
    ((nn.Tanh, (4, 0)), {}, ValueError, r"input_shape\[1\] to be an int >= 1, got 0"),
    ((nn.Tanh, (4, 2.5)), {}, TypeError, r"input_shape\[1\] to be an int, got 2.5"),
    ((nn.Tanh, ()), {}, ValueError, r"input_shape with at least one axis"),
    ((nn.Tanh, "4,3"), {}, TypeError, r"input_shape to be a tuple of positive ints"),
    ((nn.Linear, (4, 3)), {}, TypeError, r"needs argument\(s\) in_features, out_features"),
    ((lambda: 3, (4, 3)), {}, TypeError, r"returned int, not a layer or a loss"),
    ((3, (4, 3)), {}, TypeError, r"expected a layer, a loss or a factory, got int"),
    ((nn.Tanh, (4, 3)), dict(expected_failures="dtype"), TypeError, r"expected_failures to be a tuple"),
    ((nn.Tanh, (4, 3)), dict(expected_failures=("dtypes",)), ValueError, r"unknown expected_failures"),
])
def test_check_layer_arguments(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        check_layer(*args, **kwargs)
