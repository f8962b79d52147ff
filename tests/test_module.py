"""The Module / Parameter contract."""

import numpy as np
import pytest

import nanonet as nn


class Scale(nn.Module):
    """A user's module: registers by plain assignment, no super().__init__()."""

    def __init__(self, n):
        self.scale = nn.Parameter(np.full(n, 2.0))
        self.inner = nn.Linear(n, n, rng=0)

    def forward(self, x):
        self._x = x
        return self.inner.forward(x * self.scale.value)

    def backward(self, grad_out):
        g = self.inner.backward(grad_out)
        self.scale.grad += (g * self._x).sum(axis=0)
        return g * self.scale.value


def test_parameter_grad_starts_at_zero_with_same_shape_and_dtype():
    p = nn.Parameter(np.ones((3, 2), dtype=np.float32))
    assert p.grad.shape == (3, 2) and p.grad.dtype == np.float32
    assert not p.grad.any()


def test_parameter_rejects_integer_arrays():
    with pytest.raises(TypeError, match="floating-point"):
        nn.Parameter(np.ones(3, dtype=int))


def test_user_module_registers_by_plain_assignment():
    m = Scale(3)
    names = [n for n, _ in m.named_parameters()]
    assert names == ["scale", "inner.weight", "inner.bias"]
    assert m.training is True
    report = nn.check_gradients(m, np.random.default_rng(0).normal(size=(4, 3)), mode="full", rng=0)
    assert report.ok, report


def test_named_parameters_dotted_in_definition_order():
    model = nn.Sequential(nn.Linear(2, 3, rng=0), nn.ReLU(), nn.Sequential(nn.Linear(3, 1, rng=1)))
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias", "2.0.weight", "2.0.bias"]


def test_shared_parameter_listed_once():
    a, b = nn.Linear(3, 3, rng=0), nn.Linear(3, 3, rng=1)
    b.weight = a.weight
    model = nn.Sequential(a, b)
    params = model.parameters()
    assert len(params) == 3
    assert sum(p is a.weight for p in params) == 1
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias", "1.bias"]


def test_shared_parameter_gradient_is_sum_of_both_uses():
    a, b = nn.Linear(3, 3, rng=0), nn.Linear(3, 3, rng=1)
    b.weight = a.weight
    model = nn.Sequential(a, b)
    x = np.random.default_rng(2).normal(size=(4, 3))
    report = nn.check_gradients(model, x, mode="full", rng=0)
    assert report.ok, report


def test_backward_accumulates_and_zero_grad_resets():
    layer = nn.Linear(3, 2, rng=0)
    x = np.random.default_rng(1).normal(size=(4, 3))
    g = np.ones((4, 2))
    layer(x)
    layer.backward(g)
    once = layer.weight.grad.copy()
    layer.backward(g)  # the cache is kept: a second backward accumulates again
    np.testing.assert_allclose(layer.weight.grad, 2 * once)
    layer.zero_grad()
    assert not layer.weight.grad.any() and not layer.bias.grad.any()


def test_backward_before_forward_is_a_clear_error():
    for module in (nn.Linear(2, 2, rng=0), nn.ReLU(), nn.Sequential(nn.Linear(2, 2, rng=0))):
        with pytest.raises(RuntimeError, match="backward called before forward"):
            module.backward(np.ones((1, 2)))
    with pytest.raises(RuntimeError, match="MSELoss.*backward called before forward"):
        nn.MSELoss().backward()


def test_train_eval_propagate_to_children():
    model = nn.Sequential(nn.Linear(2, 2, rng=0), nn.Sequential(nn.ReLU()))
    assert model.eval() is model
    assert all(m.training is False for m in model.modules())
    model.train()
    assert all(m.training is True for m in model.modules())


def test_state_dict_round_trip_copies():
    a = nn.Sequential(nn.Linear(3, 4, rng=0), nn.ReLU(), nn.Linear(4, 1, rng=1))
    b = nn.Sequential(nn.Linear(3, 4, rng=5), nn.ReLU(), nn.Linear(4, 1, rng=6))
    state = a.state_dict()
    assert list(state) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    state["0.weight"] += 0  # a copy: editing it must not touch the model
    weight_obj = b[0].weight
    b.load_state_dict(state)
    assert b[0].weight is weight_obj  # loaded in place: optimizers keep their keys
    for (_, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(p.value, q.value)
    state["0.weight"][0, 0] = 123.0
    assert a[0].weight.value[0, 0] != 123.0


def test_load_state_dict_lists_every_problem_and_changes_nothing():
    model = nn.Sequential(nn.Linear(3, 4, rng=0), nn.Linear(4, 1, rng=1))
    before = model.state_dict()
    bad = dict(before)
    del bad["0.bias"]
    bad["extra"] = np.zeros(2)
    bad["1.weight"] = np.zeros((1, 4))
    bad["1.bias"] = np.zeros(1, dtype=np.float32)
    bad["0.weight"] = np.zeros((3, 4))
    with pytest.raises(ValueError) as info:
        model.load_state_dict(bad)
    text = str(info.value)
    assert "4 problem(s)" in text
    assert "missing key '0.bias'" in text
    assert "unexpected key 'extra'" in text
    assert "'1.weight': expected shape (4, 1), got (1, 4)" in text
    assert "'1.bias': expected dtype float64, got float32" in text
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[name])


def test_repr_shows_configuration():
    assert repr(nn.Linear(10, 64, rng=0)) == "Linear(10 -> 64)"
    assert repr(nn.Linear(3, 2, bias=False, rng=0, dtype=np.float32)) == "Linear(3 -> 2, bias=False, dtype=float32)"
    assert repr(nn.ReLU()) == "ReLU()"
    assert repr(nn.MSELoss(reduction="sum")) == "MSELoss(reduction='sum')"
    text = repr(nn.Sequential(nn.Linear(2, 3, rng=0), nn.ReLU()))
    assert text == "Sequential(\n  (0): Linear(2 -> 3)\n  (1): ReLU()\n)"


def test_to_changes_dtype_in_place_keeping_parameter_objects():
    model = nn.Sequential(nn.Linear(3, 2, rng=0))
    p = model[0].weight
    model.to(np.float32)
    assert model[0].weight is p and p.value.dtype == np.float32 and p.grad.dtype == np.float32
    out = model(np.ones((2, 3), dtype=np.float32))
    assert out.dtype == np.float32


def test_rng_seed_zero_is_a_seed_and_generators_are_accepted():
    a = nn.Linear(4, 4, rng=0).weight.value
    b = nn.Linear(4, 4, rng=0).weight.value
    np.testing.assert_array_equal(a, b)
    c = nn.Linear(4, 4, rng=np.random.default_rng(0)).weight.value
    np.testing.assert_array_equal(a, c)
    assert not np.array_equal(a, nn.Linear(4, 4, rng=1).weight.value)
    with pytest.raises(TypeError, match="rng must be"):
        nn.Linear(2, 2, rng="zero")


def test_nothing_touches_numpy_global_random_state():
    state = np.random.get_state()[1].copy()
    nn.Linear(5, 5, rng=0)
    nn.check_gradients(nn.Linear(2, 2, rng=0), np.ones((2, 2)), rng=0)
    np.testing.assert_array_equal(np.random.get_state()[1], state)
