"""Sequential: order, indexing, errors that name the child."""

import numpy as np
import pytest

import nanonet as nn


class Recorder(nn.Module):
    def __init__(self, log, tag):
        self.log, self.tag = log, tag

    def forward(self, x):
        self.log.append(("forward", self.tag))
        return x

    def backward(self, grad_out):
        self.log.append(("backward", self.tag))
        return grad_out


def test_forward_in_order_backward_in_reverse():
    log = []
    model = nn.Sequential(Recorder(log, "a"), Recorder(log, "b"), Recorder(log, "c"))
    model(np.ones((1, 1)))
    model.backward(np.ones((1, 1)))
    assert log == [("forward", "a"), ("forward", "b"), ("forward", "c"),
                   ("backward", "c"), ("backward", "b"), ("backward", "a")]


def test_indexing_len_iteration_slicing():
    layers = [nn.Linear(2, 3, rng=0), nn.ReLU(), nn.Linear(3, 1, rng=1)]
    model = nn.Sequential(*layers)
    assert len(model) == 3
    assert model[0] is layers[0] and model[-1] is layers[2]
    assert list(model) == layers
    head = model[:2]
    assert isinstance(head, nn.Sequential) and len(head) == 2 and head[0] is layers[0]


def test_rejects_non_modules():
    with pytest.raises(TypeError, match="position 1"):
        nn.Sequential(nn.ReLU(), "relu")


def test_forward_error_names_child_position_and_repr():
    model = nn.Sequential(nn.Linear(10, 64, rng=0), nn.ReLU(), nn.Linear(32, 1, rng=1))
    with pytest.raises(ValueError) as info:
        model(np.ones((5, 10)))
    text = str(info.value)
    assert "Sequential[2] Linear(32 -> 1)" in text
    assert "Linear(32 -> 1) expected input of shape (N, 32), got (5, 64)" in text


def test_backward_error_names_child():
    model = nn.Sequential(nn.Linear(3, 4, rng=0), nn.ReLU())
    model(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"Sequential\[1\] ReLU\(\) failed in backward.*\(2, 4\), got \(2, 5\)"):
        model.backward(np.ones((2, 5)))


def test_nested_errors_name_both_levels():
    inner = nn.Sequential(nn.Linear(4, 4, rng=0), nn.Linear(5, 2, rng=1))
    model = nn.Sequential(nn.Linear(3, 4, rng=2), inner)
    with pytest.raises(ValueError) as info:
        model(np.ones((2, 3)))
    assert "Sequential[1] Sequential(2 children)" in str(info.value)
    assert "Sequential[1] Linear(5 -> 2)" in str(info.value)


def test_detect_anomaly_names_the_module_that_made_nan():
    class Log(nn.Module):
        def forward(self, x):
            return np.log(x)

        def backward(self, grad_out):
            return grad_out

    model = nn.Sequential(nn.Linear(2, 2, rng=0), Log(), nn.Linear(2, 1, rng=1))
    x = np.array([[1.0, -1.0], [2.0, 0.5]])
    with np.errstate(invalid="ignore", divide="ignore"):
        assert not np.isfinite(model(x)).all()  # without the context: NaN flows
        with nn.detect_anomaly():
            with pytest.raises(FloatingPointError, match=r"Sequential\[1\] Log\(\).*non-finite output"):
                model(x)
