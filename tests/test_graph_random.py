"""Random DAGs (depth, fan-out, merges, splits, shared weights) against finite differences,
and random chains against Sequential."""

import copy

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import nanonet as nn
from nanonet.testing.graph_strategies import SmoothTanh, build_dag, check_graph_gradients, dag_specs
from nanonet.testing.strategies import SEEDS, mlp_widths


@given(spec=dag_specs(), seed=SEEDS, batch=st.integers(1, 3))
def test_random_dag_gradients_match_finite_differences(spec, seed, batch):
    net = build_dag(spec, rng=seed)
    gen = np.random.default_rng(seed)
    xs = [gen.uniform(-1.5, 1.5, size=(batch, w)) for w in spec["inputs"]]
    report = check_graph_gradients(net, xs, rng=seed, atol=1e-6)
    assert report.ok, f"{spec}\n{report}"
    assert len(report.rows) == len(spec["inputs"]) + len(net.parameters())


@given(spec=dag_specs(), seed=SEEDS)
def test_random_dag_is_rebuilt_with_the_same_names(spec, seed):
    one, two = build_dag(spec, rng=seed), build_dag(spec, rng=seed + 1)
    assert list(one.state_dict()) == list(two.state_dict())
    assert one.output_names == two.output_names
    two.load_state_dict(one.state_dict())
    xs = [np.ones((2, w)) for w in spec["inputs"]]
    for a, b in zip(_as_tuple(one(*xs)), _as_tuple(two(*xs))):
        np.testing.assert_array_equal(a, b)


@given(spec=dag_specs())
def test_shared_parameters_are_listed_once(spec):
    net = build_dag(spec, rng=0)
    by_module = [p for m in net.children() for p in m.parameters()]
    assert len(net.parameters()) == len({id(p) for p in by_module})
    shared_ops = [op for op in spec["ops"] if op["kind"] == "shared"]
    if shared_ops:
        assert len(by_module) > len(net.parameters())


def _as_tuple(out):
    return out if isinstance(out, tuple) else (out,)


@given(widths=mlp_widths(1, 4), seed=SEEDS, batch=st.integers(1, 5))
def test_random_chain_graph_equals_sequential(widths, seed, batch):
    gen = np.random.default_rng(seed)
    layers = []
    for i in range(len(widths) - 1):
        layers += [nn.Linear(widths[i], widths[i + 1], rng=gen), SmoothTanh()]
    seq = nn.Sequential(*copy.deepcopy(layers))
    node = x = nn.Input(widths[0])
    for layer in layers:
        node = layer(node)
    net = nn.Graph(x, node)
    xs = gen.normal(size=(batch, widths[0]))
    g = gen.normal(size=(batch, widths[-1]))
    np.testing.assert_array_equal(net(xs), seq(xs))
    np.testing.assert_array_equal(net.backward(g), seq.backward(g))
    for p, q in zip(net.parameters(), seq.parameters()):
        np.testing.assert_array_equal(p.grad, q.grad)
