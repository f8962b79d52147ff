"""``nanonet bench --quick`` runs and writes valid JSON; a missing peer is named as skipped.

The harness is never a timed test: nothing here asserts a speed.
"""

import json
import sys

import pytest

from nanonet import cli


@pytest.fixture
def no_torch(monkeypatch):
    """Make ``import torch`` fail as if torch were not installed."""
    monkeypatch.setitem(sys.modules, "torch", None)


def test_quick_bench_writes_valid_json(tmp_path, capsys, no_torch):
    path = tmp_path / "out" / "bench.json"
    code = cli.main(["bench", "--quick", "--peers", "nanonet,seed,numpy-inplace,torch", "--json", str(path)])
    assert code == 0
    result = json.loads(path.read_text())
    assert result["meta"]["quick"] is True
    steps = result["steps"]
    assert [(s["size"], s["dtype"]) for s in steps][:2] == [("500x10x64", "float64"), ("500x10x64", "float32")]
    for step in steps:
        assert set(step["peers"]) == {"nanonet", "seed", "numpy-inplace"}
        assert step["peers"]["seed"]["ratio"] == 1.0
        for peer in step["peers"].values():
            assert peer["median"] > 0 and peer["p25"] <= peer["median"] <= peer["p75"]
            assert peer["ratio"] > 0 and peer["gflops"] > 0
    assert result["gemm_ceiling"]["float64"]["gflops"] > 0
    assert result["seed_run"]["epochs"] == 100 and "nanonet" in result["seed_run"]["peers"]
    assert {row["phase"] for row in result["layers"]} == {"forward", "backward"}
    assert result["gradcheck"]["peers"]["nanonet projected"]["passed"] is True
    assert result["memory"][0]["peers"]["nanonet"]["peak_bytes"] >= 0
    # the missing peer is named, with the reason, in the JSON and in the table
    assert "torch" in result["skipped"] and "not installed" in result["skipped"]["torch"]
    out = capsys.readouterr().out
    assert "Skipped peers: torch" in out and "| 500×10×64 f64" in out


def test_unknown_peer_is_an_error():
    with pytest.raises(SystemExit, match="unknown peer"):
        cli.main(["bench", "--quick", "--peers", "nanonet,tensorflow"])


def test_numpy_peers_and_nanonet_take_the_same_step():
    """Same weights in, same weights out: the peers time the same maths."""
    import numpy as np

    from nanonet.bench import peers

    problem = peers.Problem.make(16, 3, 5, np.float64, rng=1)
    problem.lr = 0.5
    before = problem.copy_params()
    after = {}
    for name in ("seed", "numpy-inplace", "nanonet"):
        step = peers.make_step(name, problem)
        step()
        step()
        after[name] = step.params()
    for name in ("numpy-inplace", "nanonet"):
        for a, b, old in zip(after[name], after["seed"], before):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
            assert not np.array_equal(b, old) or not b.any()


def test_isolated_steps_run_each_peer_in_its_own_process():
    from nanonet.bench import cli as bench_cli

    result = bench_cli.run_suite(quick=True, names=["seed", "nanonet", "numpy-inplace"], parts=["steps"],
                                 sizes=[(16, 3, 4)], dtypes=("float64",), isolate=True, log=lambda s: None)
    (row,) = result["steps"]
    assert result["meta"]["isolated_steps"] is True
    assert set(row["peers"]) == {"seed", "nanonet", "numpy-inplace"}
    assert row["peers"]["seed"]["ratio"] == 1.0 and row["peers"]["nanonet"]["median"] > 0


def test_conv_peers_take_the_same_step_and_the_conv_part_reports():
    import numpy as np

    from nanonet.bench import conv

    for name in conv.PROBLEMS:
        problem = conv.ConvProblem.make(name, np.float64, rng=0)
        steps = {peer: make(problem) for peer, make in conv.MAKERS.items() if peer in ("numpy-ref", "nanonet")}
        for step in steps.values():
            step()
            step()
        for got, want, old in zip(steps["nanonet"].params(), steps["numpy-ref"].params(), problem.params):
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
            assert not np.array_equal(want, old)
    from nanonet.bench.workloads import Skips

    skips = Skips()
    rows = conv.conv_steps(["nanonet"], skips, dtypes=("float32",), repeats=1, min_time=0.0, problems=("digits",),
                           log=lambda s: None)
    (row,) = rows
    assert set(row["peers"]) == {"numpy-ref", "nanonet"} and row["peers"]["numpy-ref"]["ratio"] == 1.0
    assert {p["phase"] for p in row["nanonet_profile"]} == {"forward", "backward"}
    from nanonet.bench.report import conv_table

    text = conv_table(rows)
    assert "digits (64×1×8×8) f32" in text and "where the time goes" in text
