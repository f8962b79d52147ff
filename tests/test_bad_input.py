"""Bad input: a clear error that names the module, what it expected and what it got."""

import numpy as np
import pytest

import nanonet as nn


def test_wrong_input_width():
    layer = nn.Linear(10, 64, rng=0)
    with pytest.raises(ValueError, match=r"^Linear\(10 -> 64\) expected input of shape \(N, 10\), got \(32, 12\)$"):
        layer(np.ones((32, 12)))


def test_wrong_number_of_dimensions():
    layer = nn.Linear(10, 64, rng=0)
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 10\) or \(N, \.\.\., 10\), got \(10\)"):
        layer(np.ones(10))
    assert layer(np.ones((2, 3, 10))).shape == (2, 3, 64)  # any leading shape, as torch
    with pytest.raises(ValueError, match=r"\(N, \.\.\., 10\), got \(2, 3, 11\)"):
        layer(np.ones((2, 3, 11)))


def test_error_comes_before_any_state_change():
    layer = nn.Linear(3, 2, rng=0)
    good = np.ones((4, 3))
    layer(good)
    with pytest.raises(ValueError):
        layer(np.ones((4, 5)))
    assert layer._x is good  # the cache of the last good forward survives


def test_target_shape_must_match_pred_exactly():
    loss = nn.MSELoss()
    with pytest.raises(ValueError, match=r"MSELoss\(reduction='mean'\) expected target of the same shape as pred \(5, 1\), got \(5,\)"):
        loss(np.ones((5, 1)), np.ones(5))


def test_integer_input_is_rejected_not_cast():
    with pytest.raises(TypeError, match=r"Linear\(2 -> 2\) expected a floating-point input, got dtype int64"):
        nn.Linear(2, 2, rng=0)(np.ones((3, 2), dtype=np.int64))
    with pytest.raises(TypeError, match="ReLU.*floating-point"):
        nn.ReLU()(np.ones((3, 2), dtype=np.int32))
    with pytest.raises(TypeError, match="MSELoss.*floating-point target"):
        nn.MSELoss()(np.ones((3, 1)), np.ones((3, 1), dtype=int))


def test_dtype_mismatch_is_rejected_not_upcast():
    with pytest.raises(TypeError, match=r"Linear\(2 -> 2\) expected input of dtype float64, got float32"):
        nn.Linear(2, 2, rng=0)(np.ones((3, 2), dtype=np.float32))
    with pytest.raises(TypeError, match="expected target of dtype float32, got float64"):
        nn.MSELoss()(np.ones((3, 1), dtype=np.float32), np.ones((3, 1)))


def test_non_array_input_is_rejected():
    with pytest.raises(TypeError, match=r"Linear\(2 -> 2\) expected input to be a numpy.ndarray, got list"):
        nn.Linear(2, 2, rng=0)([[1.0, 2.0]])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_input_is_rejected_at_the_call(bad):
    x = np.ones((3, 2))
    x[1, 0] = bad
    with pytest.raises(FloatingPointError, match=r"Linear\(2 -> 2\) got a non-finite input: 1 NaN/Inf value\(s\), the first at index \(1, 0\)"):
        nn.Linear(2, 2, rng=0)(x)
    model = nn.Sequential(nn.Linear(2, 2, rng=0))
    with pytest.raises(FloatingPointError, match="Sequential"):
        model(x)
    with pytest.raises(FloatingPointError, match="MSELoss.*non-finite target"):
        nn.MSELoss()(np.ones((3, 2)), x)


def test_huge_finite_input_is_not_mistaken_for_inf():
    x = np.full((4, 2), 1e308)  # the sum overflows, the values do not
    out = nn.ReLU()(x)
    assert np.isfinite(out).all()


def test_backward_grad_shape_is_checked():
    layer = nn.Linear(3, 2, rng=0)
    layer(np.ones((4, 3)))
    with pytest.raises(ValueError, match=r"Linear\(3 -> 2\) expected grad_out of shape \(4, 2\), got \(4, 1\)"):
        layer.backward(np.ones((4, 1)))
    assert not layer.weight.grad.any()


def test_load_state_dict_errors():
    model = nn.Sequential(nn.Linear(2, 3, rng=0))
    with pytest.raises(ValueError, match="missing key '0.bias'"):
        model.load_state_dict({"0.weight": np.zeros((2, 3))})
    with pytest.raises(ValueError, match="unexpected key 'x'"):
        model.load_state_dict({**model.state_dict(), "x": np.zeros(1)})
    with pytest.raises(ValueError, match=r"'0.weight': expected shape \(2, 3\), got \(3, 2\)"):
        model.load_state_dict({**model.state_dict(), "0.weight": np.zeros((3, 2))})


def test_backward_grad_dtype_is_checked_not_upcast():
    layer = nn.Linear(3, 2, rng=0)
    layer(np.ones((4, 3)))
    with pytest.raises(TypeError, match=r"Linear\(3 -> 2\) expected grad_out of dtype float64, got float32"):
        layer.backward(np.ones((4, 2), dtype=np.float32))
    assert not layer.weight.grad.any()
