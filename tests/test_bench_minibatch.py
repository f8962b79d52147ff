"""The mini-batch steps family of ``nanonet bench``, its tracer and ``--profile``. No speed is asserted."""

import numpy as np
import pytest

from nanonet import cli
from nanonet.bench import minibatch, trace
from nanonet.bench.minibatch_problem import Config, grid

NUMPY_BASED = ("numpy", "numpy-inplace", "nanonet-fit", "nanonet-loop", "nanonet-graph")


@pytest.mark.parametrize("config", [Config(m, loss, opt, "float64", 4) for m in ("mlp", "residual", "norm")
                                    for loss in ("ce", "mse") for opt in ("sgd", "adam")],
                         ids=lambda c: c.label)
def test_every_numpy_based_peer_takes_the_same_steps(config):
    """Same data, weights, batches and dropout masks in; the same weights out, eight epochs later."""
    after = {}
    for name in NUMPY_BASED:
        try:
            epoch = minibatch.make_peer(name, config)
        except minibatch.PeerUnavailable:
            continue
        for _ in range(8 * 32 // epoch.batches):  # eight epochs each (fit runs several per call)
            epoch()
        after[name] = [np.array(p) for p in epoch.params()]
    assert {"numpy", "nanonet-fit", "nanonet-loop"} <= set(after)
    start = minibatch.MiniProblem.make(config).params
    for name, params in after.items():
        for ours, ref, old in zip(params, after["numpy"], start):
            np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-12, err_msg=name)
    assert not all(np.array_equal(a, b) for a, b in zip(after["numpy"], start))


def test_the_grid_covers_the_issue():
    configs = grid()
    mlp = [c for c in configs if c.model == "mlp"]
    assert {(c.loss, c.optimizer, c.dtype, c.batch) for c in mlp} == {
        (loss, opt, dt, b) for loss in ("ce", "mse") for opt in ("sgd", "adam") for dt in ("float64", "float32")
        for b in (1, 8, 32, 128, 512)}
    assert {c.model for c in configs} == {"mlp", "residual", "norm"}


def test_isolated_run_gives_per_batch_ratios_to_numpy():
    from nanonet.bench import isolated
    from nanonet.bench.workloads import Skips

    names = ["numpy", "nanonet-fit", "numpy-inplace"]
    with isolated.Workers(names, family="minibatch", threads=1) as workers:
        rows = minibatch.minibatch_steps(names, [Config("mlp", "ce", "adam", "float64", 2)], Skips(),
                                         repeats=2, min_time=0.001, workers=workers, log=lambda s: None)
    (row,) = rows
    assert row["batches"] == 32 and set(row["peers"]) == set(names)
    assert row["peers"]["numpy"]["ratio"] == 1.0
    assert all(p["median"] > 0 and p["ratio"] > 0 for p in row["peers"].values())
    assert "nanonet-fit" in minibatch.table(rows)


def test_trace_counts_numpy_operations_and_python_calls():
    if not trace.SUPPORTED:
        pytest.skip("operations are read from CPython 3.11's value stack")
    a = np.ones(4)

    def helper(v):
        return v * 2.0

    def work():
        np.add(a, 1.0, out=a)   # a ufunc call
        b = helper(a) + a       # an operator in helper, and one here
        b[0] = 3.0              # an indexing
        return float(b.sum())   # a method

    t = trace.trace(work)
    assert [op.name for op in t.ops] == ["add", "*", "+", "[]=", "sum"]
    assert t.python_calls >= 2 and t.python_where[("test_bench_minibatch.py", "helper")] == 1
    before = a.copy()
    trace.replay(t.ops[:1])()  # the recorded np.add runs again
    assert np.array_equal(a, before + 1.0)


def test_profile_prints_counts_phases_layers_and_memory(capsys):
    code = cli.main(["bench", "--profile", "--quick", "--models", "mlp", "--batches", "2", "--losses", "ce",
                     "--optimizers", "adam", "--dtypes", "float64"])
    out = capsys.readouterr().out
    assert code == 0
    assert "## mlp ce adam f64 B=2" in out and "| nanonet fit" in out and "numpy (the reference)" in out
    assert "| optimizer" in out and "Overhead per layer" in out and "| Linear(64 -> 128)" in out
    assert "Memory per step" in out
