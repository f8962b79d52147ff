"""Containers pass the same conformance suite as any layer (check_layer)."""

import numpy as np

import nanonet as nn
from nanonet.testing import check_layer


def residual_graph(rng=0):
    x = nn.Input(6)
    h = nn.Tanh()(nn.Linear(6, 8, rng=rng)(x))
    r = nn.Add()(nn.Linear(8, 8, rng=rng + 1)(h), h)
    out = nn.Linear(16, 3, rng=rng + 2)(nn.Concat()(r, h))
    return nn.Graph(inputs=x, outputs=out)


def test_residual_graph_passes_check_layer():
    report = check_layer(residual_graph, (5, 6))
    assert report.ok, report
    assert "Graph(" in str(report)


def test_sequential_passes_check_layer():
    report = check_layer(lambda: nn.Sequential(nn.Linear(4, 5, rng=0), nn.Tanh(), nn.Linear(5, 2, rng=1)), (3, 4))
    assert report.ok, report


def test_a_broken_child_fails_the_graphs_check():
    class SeedBugLinear(nn.Linear):
        def backward(self, grad_out):
            self.weight.grad += self._x.T @ grad_out
            self.bias.grad += np.sum(grad_out)
            return grad_out @ self.weight.value.T

    def broken():
        x = nn.Input(4)
        h = nn.Tanh()(SeedBugLinear(4, 6, rng=0)(x))
        return nn.Graph(inputs=x, outputs=nn.Linear(6, 2, rng=1)(h))

    report = check_layer(broken, (5, 4), raise_on_failure=False)
    assert not report.ok
    assert "gradients" in str(report) and "FAIL" in str(report)
