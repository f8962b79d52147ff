"""``nanonet bench --quick`` runs and writes valid JSON; a missing peer is named as skipped.

The harness is never a timed test: nothing here asserts a speed.
"""

import json
import sys

import pytest

from nanonet import cli
from nanonet.bench import report, timing, workloads


@pytest.fixture
def no_torch(monkeypatch, tmp_path):
    """Make ``import torch`` fail as if torch were not installed, here and in the peers' worker processes.

    ``--quick`` runs each peer in a spawned process, which starts from this
    process's ``sys.path``, not its ``sys.modules``: a ``torch`` package first
    on the path that raises ImportError stands in for a missing torch there.
    """
    monkeypatch.setitem(sys.modules, "torch", None)
    fake = tmp_path / "no_torch" / "torch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError(\"No module named 'torch'\")\n")
    monkeypatch.syspath_prepend(str(fake.parent))


def test_quick_bench_writes_valid_json(tmp_path, capsys, no_torch):
    path = tmp_path / "out" / "bench.json"
    code = cli.main(["bench", "--quick", "--peers", "nanonet,seed,numpy-inplace,torch", "--json", str(path),
                     "--only", "steps,seed-run,layers,gradcheck,memory", "--budget", "0"])
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
        assert step["peers"]["nanonet"]["ratio_spread"] >= 0 and isinstance(step["peers"]["nanonet"]["noisy"], bool)
    assert "gemm_ceiling" not in result  # --quick measures no ceiling: a few-ms one would not be one
    assert result["seed_run"]["epochs"] == 100 and "nanonet" in result["seed_run"]["peers"]
    assert {row["phase"] for row in result["layers"]} == {"forward", "backward"}
    assert result["gradcheck"]["peers"]["nanonet projected"]["passed"] is True
    assert result["memory"][0]["peers"]["nanonet"]["peak_bytes"] >= 0
    # the missing peer is named, with the reason, in the JSON and in the table
    assert "torch" in result["skipped"] and "not installed" in result["skipped"]["torch"]
    out = capsys.readouterr().out
    assert "Skipped peers: torch" in out and "| 500×10×64 f64" in out
    assert out.count("torch is not installed") == 1 and out.index("Skipped peers") < out.index("| N×in×H")


def test_quick_runs_the_steps_within_its_budget_and_names_what_it_left_out(capsys, no_torch):
    assert cli.main(["bench", "--quick", "--peers", "nanonet,seed,torch", "--budget", "1e-9"]) == 0
    out = capsys.readouterr().out
    head = out.split("\n\n")[0].splitlines()
    assert head[1].startswith("Skipped peers: torch (torch is not installed")
    # the first case always runs; every later one is named as not run
    assert head[2] == ("Not run: training step 500x10x64 float32 (the 1e-09 s budget was spent); "
                       "training step 64x32x32 float64 (the 1e-09 s budget was spent); "
                       "training step 64x32x32 float32 (the 1e-09 s budget was spent)")
    assert "| 500×10×64 f64" in out and "Whole seed run" not in out and "% of ceiling" not in out


def _peer(median, p25, p75):
    return timing.Stats(median, p25, p75, p25, 5, 1)


def test_a_ratio_within_its_spread_of_one_prints_as_noisy():
    stats = {"seed": _peer(1.0, 0.9, 1.1), "nanonet": _peer(1.05, 0.95, 1.15), "torch": _peer(2.0, 1.9, 2.1)}
    rows = workloads.with_ratios(stats)
    assert rows["nanonet"]["noisy"] and not rows["torch"]["noisy"] and "noisy" not in rows["seed"]
    assert rows["torch"]["ratio_spread"] == pytest.approx(2.0 * (0.1 + 0.2) / 2)
    result = {"meta": {"quick": True, "date": "today", "machine": {"cpu": "cpu", "cores": 2}},
              "steps": [{"size": "8x2x4", "dtype": "float64", "peers": rows}],
              "seed_run": {"epochs": 100, "size": "8x2x4", "dtype": "float64", "peers": rows}}
    text = report.render(result)
    assert "| 8×2×4 f64     | noisy   | 1.00 (1 s) | 2.00 ±0.30 |" in text
    assert "| 100 epochs | nanonet | 1.05 s | 19 %   | noisy |" in text
    assert "1.05" not in text.replace("| 1.05 s |", "")  # the noisy ratio's number is printed nowhere
    assert "Skipped peers" not in text and "Not run" not in text


def test_bad_budget_is_an_error():
    with pytest.raises(SystemExit, match="--budget must be >= 0 seconds, got -1"):
        cli.main(["bench", "--quick", "--budget", "-1"])


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


@pytest.fixture
def no_threadpoolctl(monkeypatch, tmp_path):
    """Make ``import threadpoolctl`` fail here and in the workers, as after a plain ``pip install .``."""
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)
    fake = tmp_path / "no_threadpoolctl" / "threadpoolctl.py"
    fake.parent.mkdir(parents=True)
    fake.write_text("raise ImportError(\"No module named 'threadpoolctl'\")\n")
    monkeypatch.syspath_prepend(str(fake.parent))


def test_quick_runs_without_threadpoolctl(capsys, no_torch, no_threadpoolctl):
    # the workers take their one BLAS thread from the environment; the run must not need the bench extra
    assert cli.main(["bench", "--quick", "--peers", "nanonet,seed", "--sizes", "64x32x32", "--dtypes", "float64",
                     "--budget", "0"]) == 0
    out = capsys.readouterr().out
    assert "| 64×32×32 f64" in out and "threadpoolctl" not in out


def test_asked_for_threads_without_threadpoolctl_is_a_one_line_error(no_threadpoolctl):
    with pytest.raises(SystemExit, match="--threads.*threadpoolctl"):
        cli.main(["bench", "--threads", "1", "--only", "steps", "--sizes", "16x3x4"])


def test_workers_start_with_the_thread_limit_in_their_environment(monkeypatch):
    import os

    from nanonet.bench import isolated, peers

    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    with isolated._thread_env(1):
        assert all(os.environ[k] == "1" for k in isolated.THREAD_VARIABLES)
        monkeypatch.setitem(sys.modules, "threadpoolctl", None)
        assert peers.blas_threads() == 1  # without threadpoolctl, the count a worker reports
    assert os.environ["OMP_NUM_THREADS"] == "7" and "OPENBLAS_NUM_THREADS" not in os.environ  # restored


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
