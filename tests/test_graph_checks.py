"""Build-time checks: each error names the offending node and module."""

import numpy as np
import pytest

import nanonet as nn


def test_linear_fed_96_features_when_it_expects_64_fails_at_build_time():
    x = nn.Input(10)
    h = nn.Linear(10, 96, rng=0)(x)
    with pytest.raises(ValueError) as info:
        nn.Linear(64, 64, rng=1)(h)
    text = str(info.value)
    assert text.startswith("Linear(64 -> 64) cannot take the output of Linear(10 -> 96) (feature shape (96,))")
    assert "expected input of shape (N, 64)" in text


def test_shape_error_uses_the_names_given():
    x = nn.Input(10, name="features")
    h = nn.Linear(10, 96, rng=0)(x, name="encoder")
    with pytest.raises(ValueError, match=r"\(named 'head'\) cannot take the output of 'encoder'"):
        nn.Linear(64, 1, rng=1)(h, name="head")
    with pytest.raises(ValueError, match=r"Linear\(3 -> 1\) cannot take Input 'features' \(feature shape \(10,\)\)"):
        nn.Linear(3, 1, rng=1)(x)


def test_merge_shape_mismatch_fails_at_build_time():
    x = nn.Input(4)
    a = nn.Linear(4, 3, rng=0)(x)
    b = nn.Linear(4, 5, rng=1)(x)
    with pytest.raises(ValueError, match=r"^Add\(\) cannot take .*\(3,\).*\(5,\).*no broadcasting"):
        nn.Add()(a, b)
    with pytest.raises(ValueError, match=r"Split\(sizes=\[2, 2\]\) cannot take .*size 4 along axis -1"):
        nn.Split([2, 2])(b)


def test_cycles_are_rejected():
    x = nn.Input(2)
    a = nn.Linear(2, 2, rng=0)(x)
    b = nn.ReLU()(a)
    a.call.inputs = (b,)          # the call API cannot make a cycle; rewiring can
    with pytest.raises(ValueError, match=r"cycle.*Linear\(2 -> 2\).*ReLU\(\)"):
        nn.Graph(x, b)


def test_self_loop_is_a_cycle():
    x = nn.Input(2)
    a = nn.ReLU()(x)
    a.call.inputs = (a,)
    with pytest.raises(ValueError, match=r"the output of ReLU\(\) depends on itself"):
        nn.Graph(x, a)


def test_unconnected_input_is_rejected():
    x, z = nn.Input(2, name="x"), nn.Input(2, name="z")
    out = nn.Add()(nn.Linear(2, 2, rng=0)(x), nn.Linear(2, 2, rng=1)(z))
    with pytest.raises(ValueError, match=r"connected to Input 'z' .* not among its inputs "
                                         r"\(Linear\(2 -> 2\) uses it\)"):
        nn.Graph(x, out)


def test_unused_input_is_rejected():
    x, z = nn.Input(2, name="x"), nn.Input(2, name="z")
    with pytest.raises(ValueError, match=r"input Input 'z' \(feature shape \(2,\)\) is unused"):
        nn.Graph([x, z], nn.ReLU()(x))


def test_output_that_does_not_depend_on_the_inputs_is_rejected():
    x, z = nn.Input(2, name="x"), nn.Input(2, name="z")
    with pytest.raises(ValueError, match=r"output 1, the output of ReLU\(\) .* does not depend on the graph's inputs"):
        nn.Graph(x, [nn.Linear(2, 1, rng=0)(x), nn.ReLU()(z)])


def test_inputs_must_be_input_nodes():
    x = nn.Input(2)
    h = nn.ReLU()(x)
    with pytest.raises(TypeError, match=r"inputs\[0\] is the output of ReLU\(\).*not an nn.Input"):
        nn.Graph(h, nn.ReLU()(h))
    with pytest.raises(TypeError, match="expected outputs to hold Node nodes, got ndarray"):
        nn.Graph(x, np.ones(2))
    with pytest.raises(ValueError, match="lists .* twice"):
        nn.Graph([x, x], h)


def test_duplicate_names_are_rejected():
    x = nn.Input(2, name="x")
    with pytest.raises(ValueError, match="name 'x' twice"):
        nn.Graph(x, nn.ReLU()(x, name="x"))


def test_given_names_win_and_auto_names_skip_them():
    x = nn.Input(2)
    a = nn.ReLU()(x, name="relu_0")
    b = nn.ReLU()(a)
    net = nn.Graph(x, b)
    assert [n for n, _ in net.named_children()] == ["relu_0", "relu_1"]
    assert net.input_names == ["input_0"]


def test_bad_input_and_name_arguments():
    with pytest.raises(ValueError, match="Input expected shape to be a positive int"):
        nn.Input(0)
    with pytest.raises(ValueError, match="Input expected shape"):
        nn.Input((2, -1))
    with pytest.raises(TypeError, match="Input expected name to be a non-empty str"):
        nn.Input(2, name="")
    with pytest.raises(TypeError, match="expected name to be a non-empty str"):
        nn.ReLU()(nn.Input(2), name=3)
