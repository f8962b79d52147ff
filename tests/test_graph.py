"""Graph: running, gradients, multiple inputs/outputs, weight sharing, names."""

import copy

import numpy as np
import pytest

import nanonet as nn
from nanonet.testing.graph_strategies import SmoothTanh, check_graph_gradients


def residual_net(seed=0, width=4, features=3):
    """The issue's example network, small."""
    gen = np.random.default_rng(seed)
    x = nn.Input(features)
    h = SmoothTanh()(nn.Linear(features, width, rng=gen)(x))
    r = nn.Add()(nn.Linear(width, width, rng=gen)(h), h)
    out = nn.Linear(2 * width, 2, rng=gen)(nn.Concat()(r, h))
    return nn.Graph(inputs=x, outputs=out)


def data(*shape, seed=1):
    return np.random.default_rng(seed).normal(size=shape)


def test_issue_example_runs():
    x = nn.Input(10)
    h = nn.ReLU()(nn.Linear(10, 64, rng=0)(x))
    r = nn.Add()(nn.Linear(64, 64, rng=1)(h), h)
    out = nn.Linear(128, 1, rng=2)(nn.Concat()(r, h))
    net = nn.Graph(inputs=x, outputs=out)
    y = net(np.ones((32, 10)))
    assert y.shape == (32, 1)
    assert net.backward(np.ones((32, 1))).shape == (32, 10)
    assert isinstance(net, nn.Module)


def test_check_gradients_full_covers_input_and_every_parameter():
    net = residual_net()
    report = nn.check_gradients(net, data(5, 3), rng=0, mode="full")
    assert report.ok, str(report)
    assert [r.name for r in report.rows] == ["input"] + [n for n, _ in net.named_parameters()]
    assert len(report.rows) == 7


def test_check_gradients_with_a_loss():
    net = residual_net(seed=3)
    report = nn.check_gradients(net, data(6, 3), data(6, 2, seed=2), loss_fn=nn.MSELoss(), mode="full")
    assert report.ok, str(report)


def test_chain_graph_equals_sequential_outputs_and_gradients():
    layers = [nn.Linear(4, 8, rng=0), nn.ReLU(), nn.Linear(8, 8, rng=1), SmoothTanh(), nn.Linear(8, 3, rng=2)]
    seq = nn.Sequential(*copy.deepcopy(layers))
    node = x = nn.Input(4)
    for layer in layers:
        node = layer(node)
    net = nn.Graph(x, node)
    xs, g = data(7, 4), data(7, 3, seed=5)
    np.testing.assert_array_equal(net(xs), seq(xs))
    np.testing.assert_array_equal(net.backward(g), seq.backward(g))
    for (_, p1), (_, p2) in zip(net.named_parameters(), seq.named_parameters()):
        np.testing.assert_array_equal(p1.grad, p2.grad)
        assert p1.grad.any()


def test_fan_out_gradients_are_summed():
    lin = nn.Linear(3, 2, rng=0)
    ref = copy.deepcopy(lin)
    x = nn.Input(3)
    h = lin(x)
    net = nn.Graph(x, nn.Add()(h, nn.Add()(h, h)))   # y = 3 h
    xs, g = data(4, 3), data(4, 2, seed=2)
    np.testing.assert_allclose(net(xs), 3 * ref.forward(xs))
    dx = net.backward(g)
    np.testing.assert_allclose(dx, ref.backward(3 * g))
    np.testing.assert_allclose(lin.weight.grad, ref.weight.grad)


def test_fan_out_to_different_consumers_passes_check():
    x = nn.Input(3, name="x")
    h = SmoothTanh()(x)
    a = nn.Linear(3, 2, rng=0)(h)
    b = nn.Linear(3, 2, rng=1)(h)
    net = nn.Graph(x, nn.Multiply()(a, nn.Add()(b, a)))
    assert nn.check_gradients(net, data(4, 3), rng=1, mode="full").ok


def two_input_net():
    a, b = nn.Input(3, name="a"), nn.Input(2, name="b")
    ha = nn.Linear(3, 4, rng=0)(a)
    hb = nn.Linear(2, 4, rng=1)(b)
    s = nn.Add()(ha, hb, name="sum")
    out1 = nn.Linear(4, 1, rng=2)(SmoothTanh()(s), name="score")
    left, right = nn.Split([1, 3])(s, name="parts")
    return nn.Graph([a, b], [out1, right])


def test_two_inputs_two_outputs_as_tuples_and_dicts():
    net = two_input_net()
    assert net.input_names == ["a", "b"]
    assert net.output_names == ["score", "parts:1"]
    xa, xb = data(5, 3), data(5, 2, seed=2)
    out = net(xa, xb)
    assert isinstance(out, tuple) and [o.shape for o in out] == [(5, 1), (5, 3)]
    grads = (data(5, 1, seed=3), data(5, 3, seed=4))
    ga, gb = net.backward(grads)
    assert ga.shape == (5, 3) and gb.shape == (5, 2)

    out_d = net({"b": xb, "a": xa})
    assert set(out_d) == {"score", "parts:1"}
    np.testing.assert_array_equal(out_d["score"], out[0])
    g_d = net.backward({"parts:1": grads[1], "score": grads[0]})
    assert set(g_d) == {"a", "b"}
    np.testing.assert_array_equal(g_d["a"], ga)
    np.testing.assert_array_equal(g_d["b"], gb)


def test_two_input_two_output_gradients_match_finite_differences():
    report = check_graph_gradients(two_input_net(), [data(4, 3), data(4, 2, seed=2)], rng=0)
    assert report.ok, str(report)
    assert {"input a", "input b"} <= {r.name for r in report.rows}


def test_unused_split_piece_gets_a_zero_gradient():
    x = nn.Input(5)
    first, _ = nn.Split([2, 3])(x)
    lin = nn.Linear(2, 1, rng=0)
    net = nn.Graph(x, lin(first))
    xs = data(3, 5)
    net(xs)
    dx = net.backward(np.ones((3, 1)))
    assert not dx[:, 2:].any()
    np.testing.assert_allclose(dx[:, :2], np.ones((3, 1)) @ lin.weight.value.T)


def test_chain_of_5000_nodes():
    layers = [SmoothTanh() if i % 2 else nn.Linear(2, 2, rng=i, init="glorot") for i in range(5000)]
    node = x = nn.Input(2)
    for layer in layers:
        node = layer(node)
    net = nn.Graph(x, node)
    assert len(net) == 5000
    seq = nn.Sequential(*layers)
    xs = data(3, 2)
    y_seq = seq(xs)
    g_seq = seq.backward(np.ones_like(y_seq))
    np.testing.assert_array_equal(net(xs), y_seq)
    np.testing.assert_array_equal(net.backward(np.ones_like(y_seq)), g_seq)
    twin = copy.deepcopy(net)            # no recursion through the chain
    np.testing.assert_array_equal(twin(xs), y_seq)


def test_shared_copy_shares_parameters_and_sums_gradients():
    a = nn.Linear(3, 3, rng=0)
    b = nn.shared_copy(a)
    x = nn.Input(3)
    net = nn.Graph(x, b(SmoothTanh()(a(x))))
    assert b.weight is a.weight and b is not a
    assert [n for n, _ in net.named_parameters()] == ["linear_0.weight", "linear_0.bias"]
    assert len(net.parameters()) == 2
    report = nn.check_gradients(net, data(4, 3), rng=0, mode="full")
    assert report.ok, str(report)
    # the gradient is the sum of both uses: compare with two unshared copies
    a1, a2 = copy.deepcopy(a), copy.deepcopy(a)
    net_unshared = nn.Graph(x2 := nn.Input(3), a2(SmoothTanh()(a1(x2))))
    xs, g = data(4, 3), data(4, 3, seed=7)
    net.zero_grad()
    net(xs)
    net.backward(g)
    net_unshared(xs)
    net_unshared.backward(g)
    np.testing.assert_allclose(a.weight.grad, a1.weight.grad + a2.weight.grad)


def test_same_parameter_passed_to_two_modules():
    a = nn.Linear(3, 3, rng=0)
    b = nn.Linear(3, 3, rng=1)
    b.weight = a.weight                      # shared weight, own bias
    x = nn.Input(3)
    net = nn.Graph(x, nn.Add()(a(x), b(SmoothTanh()(x))))
    names = [n for n, _ in net.named_parameters()]
    assert names == ["linear_0.weight", "linear_0.bias", "linear_1.bias"]
    assert nn.check_gradients(net, data(4, 3), rng=0, mode="full").ok


def test_same_module_twice_is_an_error_pointing_to_weight_sharing():
    lin = nn.Linear(3, 3, rng=0)
    x = nn.Input(3)
    with pytest.raises(ValueError) as info:
        nn.Graph(x, lin(SmoothTanh()(lin(x))))
    text = str(info.value)
    assert "Linear(3 -> 3) twice" in text and "'linear_0'" in text and "'linear_1'" in text
    assert "nn.shared_copy" in text


def build_named(seed):
    gen = np.random.default_rng(seed)
    x = nn.Input(3, name="x")
    h = nn.Linear(3, 4, rng=gen)(x, name="encoder")
    h = nn.ReLU()(h)
    a = nn.Linear(4, 4, rng=gen)(h)
    b = nn.Linear(4, 4, rng=gen)(h)
    return nn.Graph(x, nn.Linear(8, 1, rng=gen)(nn.Concat()(a, b)))


def test_names_are_stable_and_state_dict_loads_across_builds():
    one, two = build_named(0), build_named(1)
    names = [n for n, _ in one.named_parameters()]
    assert names == [n for n, _ in two.named_parameters()]
    assert names[:2] == ["encoder.weight", "encoder.bias"]
    assert names[2:] == ["linear_0.weight", "linear_0.bias", "linear_1.weight", "linear_1.bias",
                         "linear_2.weight", "linear_2.bias"]
    xs = data(5, 3)
    assert not np.allclose(one(xs), two(xs))
    two.load_state_dict(one.state_dict())
    np.testing.assert_array_equal(one(xs), two(xs))


def test_getitem_len_and_repr():
    net = build_named(0)
    assert net["encoder"] is net.children()[0] is net[0]
    assert net[-1] is net.children()[-1] and len(net) == 6
    with pytest.raises(KeyError, match="no layer named 'nope'"):
        net["nope"]
    assert "inputs=['x']" in repr(net) and "(encoder): Linear(3 -> 4)" in repr(net)


def test_nested_graph_is_a_layer():
    inner = residual_net(seed=4)
    x = nn.Input(3)
    out = nn.Linear(2, 1, rng=0)(inner(SmoothTanh()(x)))
    net = nn.Graph(x, out)
    assert "graph_0.linear_0.weight" in dict(net.named_parameters())
    assert nn.check_gradients(net, data(4, 3), rng=0, mode="full").ok


def test_input_checks_name_the_input():
    net = two_input_net()
    with pytest.raises(ValueError, match=r"expected input 'a' of shape \(N, 3\), got \(5, 4\)"):
        net(np.ones((5, 4)), np.ones((5, 2)))
    with pytest.raises(TypeError, match=r"expected 2 input array\(s\) \['a', 'b'\], got 1"):
        net(np.ones((5, 3)))
    with pytest.raises(ValueError, match="same batch size.*'a' has 5, 'b' has 4"):
        net(np.ones((5, 3)), np.ones((4, 2)))
    with pytest.raises(KeyError, match="expected inputs keyed"):
        net({"a": np.ones((5, 3))})
    with pytest.raises(TypeError, match="floating-point input 'b'"):
        net(np.ones((5, 3)), np.ones((5, 2), dtype=int))
    with pytest.raises(FloatingPointError, match="input 1"):
        net(np.ones((5, 3)), np.full((5, 2), np.nan))


def test_backward_checks():
    net = two_input_net()
    with pytest.raises(RuntimeError, match="backward called before forward"):
        net.backward((np.ones((5, 1)), np.ones((5, 3))))
    net(np.ones((5, 3)), np.ones((5, 2)))
    with pytest.raises(TypeError, match="expected a tuple of 2 output gradients"):
        net.backward(np.ones((5, 1)))
    with pytest.raises(ValueError, match=r"grad_out 'parts:1' of shape \(5, 2\)"):
        net.backward((np.ones((5, 1)), np.ones((5, 2))))


def test_runtime_errors_name_the_node():
    class Broken(nn.Module):
        def forward(self, x):
            raise ArithmeticError("boom")

        def backward(self, grad_out):
            return grad_out

        def output_shape(self, shape):
            return shape

    x = nn.Input(2)
    net = nn.Graph(x, Broken()(nn.ReLU()(x), name="bad"))
    with pytest.raises(ArithmeticError, match=r"Graph\[bad\] Broken\(\) failed in forward.*: boom"):
        net(np.ones((3, 2)))


def test_a_module_that_breaks_its_inferred_shape_is_caught():
    class Liar(nn.Module):
        def forward(self, x):
            return x[:, :1]

        def backward(self, grad_out):
            return grad_out

        def output_shape(self, shape):
            return shape

    x = nn.Input(2)
    net = nn.Graph(x, Liar()(x))
    with pytest.raises(ValueError, match=r"returned \(3, 1\) for node 'liar_0'; its inferred shape is \(3, 2\)"):
        net(np.ones((3, 2)))


def test_detect_anomaly_names_the_node():
    class Log(nn.Module):
        def forward(self, x):
            with np.errstate(invalid="ignore"):
                return np.log(x)

        def backward(self, grad_out):
            return grad_out

    x = nn.Input(2)
    net = nn.Graph(x, Log()(nn.Linear(2, 2, rng=0)(x), name="log"))
    with nn.detect_anomaly():
        with pytest.raises(FloatingPointError, match=r"Graph\[log\] .*non-finite output"):
            net(np.array([[1.0, -1.0], [-2.0, 0.5]]))


def test_shape_inference_falls_back_to_a_probe_for_user_modules():
    class Double(nn.Module):
        """x: (N, F) -> (N, 2F), no output_shape method."""

        def forward(self, x):
            self.calls = getattr(self, "calls", 0) + 1
            return np.concatenate([x, x], axis=1)

        def backward(self, grad_out):
            half = grad_out.shape[1] // 2
            return grad_out[:, :half] + grad_out[:, half:]

    double = Double()
    x = nn.Input(3)
    node = double(x)
    assert node.shape == (6,)
    assert not hasattr(double, "calls")      # the probe ran on a copy
    with pytest.raises(ValueError, match=r"Linear\(5 -> 1\) cannot take the output of .*Double.*\(6,\)"):
        nn.Linear(5, 1)(node)


def test_probe_shares_parameters_without_touching_them():
    lin = nn.Linear(3, 2, rng=0)
    before = lin.weight.value.copy()
    lin.forward(np.ones((4, 3)))
    cache = lin._x
    nn.Graph(x := nn.Input(3), lin(x))
    assert lin._x is cache
    np.testing.assert_array_equal(lin.weight.value, before)
    assert not lin.weight.grad.any()


def test_float32_graph():
    net = residual_net().to(np.float32)
    y = net(np.ones((2, 3), dtype=np.float32))
    assert y.dtype == np.float32
    assert net.backward(np.ones((2, 2), dtype=np.float32)).dtype == np.float32
    with pytest.raises(ValueError, match="dtype float64 .* expected .* dtype float32"):
        net.backward(np.ones((2, 2)))


def test_module_call_dispatch():
    lin = nn.Linear(2, 2, rng=0)
    with pytest.raises(TypeError, match="name='h'.*called on arrays"):
        lin(np.ones((1, 2)), name="h")
    with pytest.raises(TypeError, match="graph nodes mixed with a ndarray"):
        nn.Add()(nn.Input(2), np.ones((1, 2)))
    with pytest.raises(TypeError, match="unexpected keyword"):
        lin(nn.Input(2), nme="h")
    # the single-array path is unchanged: forward's own errors and the NaN check
    with pytest.raises(TypeError, match="expected input to be a numpy.ndarray, got list"):
        lin([[1.0, 2.0]])
    with pytest.raises(FloatingPointError, match=r"Linear\(2 -> 2\) got a non-finite input"):
        lin(np.array([[np.inf, 0.0]]))


def test_a_wrong_input_gradient_is_caught_not_broadcast():
    class SumsOverBatch(nn.Module):
        def forward(self, x):
            return x

        def backward(self, grad_out):
            return grad_out.sum(axis=0)          # (F,) would broadcast silently into (N, F)

        def output_shape(self, shape):
            return shape

    class Downcasts(SumsOverBatch):
        def backward(self, grad_out):
            return grad_out.astype(np.float32)

    for bad, what in ((SumsOverBatch(), r"shape \(2,\) and dtype float64"), (Downcasts(), r"shape \(3, 2\) and dtype float32")):
        x = nn.Input(2)
        h = nn.Linear(2, 2, rng=0)(x)
        net = nn.Graph(x, nn.Add()(h, bad(h, name="bad")))
        net(np.ones((3, 2)))
        with pytest.raises(ValueError, match=rf"Graph\[bad\] .* gave an input gradient of {what} for node 'linear_0', "
                                             r"expected shape \(3, 2\) and dtype float64"):
            net.backward(np.ones((3, 2)))
