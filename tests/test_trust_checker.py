"""The checker's own arguments: a check that checked nothing must never say PASS."""

import numpy as np
import pytest

import nanonet as nn


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
