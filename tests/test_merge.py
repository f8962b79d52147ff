"""Add, Multiply, Concat, Split: values, hand-written backward against finite differences, errors."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import nanonet as nn
from nanonet.testing.strategies import SEEDS


def rand(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape)


def input_jacobians(module, xs):
    """For each input i: (analytic, numeric) Jacobians of module.forward w.r.t. xs[i]."""
    out = module.forward(*xs)
    pairs = []
    for i in range(len(xs)):
        def f(xi, i=i):
            args = list(xs)
            args[i] = xi
            return module.forward(*args)

        numeric = nn.numerical_jacobian(f, xs[i])
        module.forward(*xs)
        analytic = np.empty((out.size, xs[i].size))
        for k in range(out.size):
            basis = np.zeros(out.size)
            basis[k] = 1.0
            analytic[k] = module.backward(basis.reshape(out.shape))[i].reshape(-1)
        pairs.append((analytic, numeric))
    return pairs


@given(seed=SEEDS, n_inputs=st.integers(2, 4), batch=st.integers(1, 3), width=st.integers(1, 4))
def test_add_and_multiply_backward_match_finite_differences(seed, n_inputs, batch, width):
    xs = [rand(batch, width, seed=seed + i) for i in range(n_inputs)]
    for module in (nn.Add(), nn.Multiply()):
        for analytic, numeric in input_jacobians(module, xs):
            np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)


@given(seed=SEEDS, widths=st.lists(st.integers(1, 4), min_size=2, max_size=4), batch=st.integers(1, 3))
def test_concat_backward_matches_finite_differences(seed, widths, batch):
    xs = [rand(batch, w, seed=seed + i) for i, w in enumerate(widths)]
    for analytic, numeric in input_jacobians(nn.Concat(), xs):
        np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)


@given(seed=SEEDS, sizes=st.lists(st.integers(1, 4), min_size=2, max_size=4), batch=st.integers(1, 3))
def test_split_backward_matches_finite_differences(seed, sizes, batch):
    split = nn.Split(sizes)
    x = rand(batch, sum(sizes), seed=seed)
    probes = [rand(batch, s, seed=seed + 1 + i) for i, s in enumerate(sizes)]

    def objective(v):
        return np.array([sum(float(np.vdot(p, o)) for p, o in zip(probes, split.forward(v)))])

    numeric = nn.numerical_jacobian(objective, x).reshape(x.shape)
    split.forward(x)
    np.testing.assert_allclose(split.backward(tuple(probes)), numeric, rtol=1e-6, atol=1e-8)


def test_values():
    a, b, c = rand(2, 3, seed=1), rand(2, 3, seed=2), rand(2, 3, seed=3)
    np.testing.assert_allclose(nn.Add()(a, b, c), a + b + c)
    np.testing.assert_allclose(nn.Multiply()(a, b, c), a * b * c)
    np.testing.assert_array_equal(nn.Concat()(a, b[:, :1]), np.hstack([a, b[:, :1]]))
    pieces = nn.Split([1, 2])(a)
    np.testing.assert_array_equal(pieces[0], a[:, :1])
    np.testing.assert_array_equal(pieces[1], a[:, 1:])


def test_multiply_gradient_is_exact_at_zero():
    a, b = np.array([[0.0, 2.0]]), np.array([[3.0, 0.0]])
    mul = nn.Multiply()
    mul(a, b)
    ga, gb = mul.backward(np.ones((1, 2)))
    np.testing.assert_array_equal(ga, b)
    np.testing.assert_array_equal(gb, a)


def test_concat_and_split_on_another_axis():
    x, y = rand(2, 3, 4, seed=1), rand(2, 1, 4, seed=2)
    cat = nn.Concat(axis=1)
    out = cat(x, y)
    assert out.shape == (2, 4, 4)
    gx, gy = cat.backward(np.ones_like(out))
    assert gx.shape == x.shape and gy.shape == y.shape
    assert cat.output_shape((3, 4), (1, 4)) == (4, 4)
    split = nn.Split([3, 1], axis=1)
    back = split(out)
    np.testing.assert_array_equal(back[0], x)
    assert split.output_shape((4, 4)) == [(3, 4), (1, 4)]


def test_output_shapes():
    assert nn.Add().output_shape((3,), (3,)) == (3,)
    assert nn.Multiply().output_shape((2, 5), (2, 5), (2, 5)) == (2, 5)
    assert nn.Concat().output_shape((3,), (1,), (2,)) == (6,)
    assert nn.Split([2, 3]).output_shape((5,)) == [(2,), (3,)]


def test_graph_nodes_of_merges():
    x = nn.Input(5)
    a, b = nn.Split([2, 3])(x)
    assert (a.shape, b.shape) == ((2,), (3,))
    assert nn.Concat()(a, b, x).shape == (10,)


def test_bad_inputs_name_the_module():
    with pytest.raises(ValueError, match=r"Add\(\) expected inputs of the same shape \(no broadcasting\): "
                                         r"input 0 is \(2, 3\), input 1 is \(2, 1\)"):
        nn.Add()(np.ones((2, 3)), np.ones((2, 1)))
    with pytest.raises(TypeError, match=r"Multiply\(\) expected input 1 of dtype float64, got float32"):
        nn.Multiply()(np.ones((2, 3)), np.ones((2, 3), dtype=np.float32))
    with pytest.raises(TypeError, match=r"Add\(\) expected at least 2 input arrays, got 1"):
        nn.Add()(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"Concat\(\) expected inputs equal in every axis but -1"):
        nn.Concat()(np.ones((2, 3)), np.ones((3, 3)))
    with pytest.raises(ValueError, match=r"Split\(sizes=\[1, 2\]\) expected input of size 3 along axis -1, "
                                         r"got shape \(2, 4\)"):
        nn.Split([1, 2])(np.ones((2, 4)))
    with pytest.raises(ValueError, match="cannot use axis -1 on arrays of 1 dimensions"):
        nn.Concat()(np.ones(3), np.ones(3))
    with pytest.raises(FloatingPointError, match=r"Add\(\) got a non-finite input 1"):
        nn.Add()(np.ones((1, 2)), np.array([[0.0, np.nan]]))


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="Concat expected axis to be a nonzero int"):
        nn.Concat(axis=0)
    with pytest.raises(ValueError, match="Split expected sizes to be at least 2 positive ints"):
        nn.Split([3])
    with pytest.raises(ValueError, match="Split expected sizes"):
        nn.Split([2, 0])


def test_backward_checks():
    for module in (nn.Add(), nn.Multiply(), nn.Concat(), nn.Split([1, 1])):
        with pytest.raises(RuntimeError, match="backward called before forward"):
            module.backward(np.ones((1, 2)))
    add = nn.Add()
    add(np.ones((2, 3)), np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"expected grad_out of shape \(2, 3\), got \(2, 4\)"):
        add.backward(np.ones((2, 4)))
    split = nn.Split([1, 2])
    split(np.ones((2, 3)))
    with pytest.raises(TypeError, match="expected a tuple of 2 gradients.*got ndarray"):
        split.backward(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"grad_out 1 of shape \(2, 2\), got \(2, 1\)"):
        split.backward((np.ones((2, 1)), np.ones((2, 1))))


def test_reprs():
    assert repr(nn.Add()) == "Add()"
    assert repr(nn.Concat()) == "Concat()"
    assert repr(nn.Concat(axis=1)) == "Concat(axis=1)"
    assert repr(nn.Split([1, 2])) == "Split(sizes=[1, 2])"
