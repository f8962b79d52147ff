"""Data-parallel training on real processes: ``mpiexec -n 2`` / ``-n 3`` runs, each with a timeout.

The tests launch the scripts in tests/mpi_scripts/ (a few launches, each
checking several things) and skip only where mpi4py or mpiexec cannot be
found (the ``test`` extra installs both).
"""

import json
import pathlib
import re

import numpy as np
import pytest

import nanonet as nn
from mpi_scripts import faults, runs
from nanonet.distributed import launch

SCRIPTS = pathlib.Path(__file__).parent / "mpi_scripts"
TIMEOUT = 120  # seconds; a hang is a failure, never a wait forever

pytestmark = pytest.mark.skipif(launch.unavailable_reason() is not None,
                                reason=f"multi-process tests need MPI: {launch.unavailable_reason()}")


def mpirun(n, *argv, timeout=TIMEOUT):
    done = launch.run(n, [str(SCRIPTS / argv[0]), *argv[1:]], timeout=timeout, yield_cpu=True)  # a busy machine
    assert not done.timed_out, f"mpiexec -n {n} {argv} hung (killed after {timeout} s):\n{done.stderr[-3000:]}"
    return done


@pytest.mark.parametrize("world", [2, 3])
def test_data_parallel_training_equals_one_process(world, tmp_path):
    """The acceptance criterion: same weights to 1e-12 (float64), every rank bit-identical, resume exact."""
    out = tmp_path / "result.npz"
    argv = ["runs.py", "exact", str(out)] + ([str(tmp_path)] if world == 2 else [])
    done = mpirun(world, *argv)
    assert done.returncode == 0, done.stderr[-3000:]
    result = np.load(out)
    for name in runs.CONFIGS:
        model, _, history = runs.train(name, 100, distributed=False, model=runs.reference_model(name, 100))
        diff = max(float(np.abs(v - result[f"{name}/state/{k}"]).max()) for k, v in model.state_dict().items())
        steps, last_batch = runs.steps(name)
        assert steps >= 50 and last_batch > 0, f"{name}: {steps} steps, a last batch of {last_batch} rows"
        assert float(result[f"{name}/rank_difference"]) == 0.0, f"{name}: the ranks' weights differ"
        if name == "sgd_batchnorm_per_rank":  # the control: per-rank statistics are not the batch's
            assert diff > 1e-6, f"{name}: plain BatchNorm1d should differ from one process ({diff})"
            continue
        assert diff <= 1e-12, f"{name} on {world} processes: max abs weight difference {diff}"
        for key, values in history.history.items():
            np.testing.assert_allclose(result[f"{name}/history/{key}"], values, rtol=1e-12, atol=0)
    if world == 2:
        assert bool(result["resume/bit_identical"]) and bool(result["resume/history_identical"])
        assert list(result["resume/files"]) == ["ckpt-1.npz", "ckpt-2.npz"]   # written once, by rank 0


def test_errors_all_ranks_raise_together_are_clear_and_catchable(tmp_path):
    out = tmp_path / "found.json"
    done = mpirun(2, "faults.py", "collective", str(out))
    assert done.returncode == 1, done.stderr[-3000:]       # the last one is left uncaught
    assert done.stderr.count("ranks disagree at start") == 1 and "Linear(4 -> 7)" in done.stderr
    assert "Abort" not in done.stderr and "BAD TERMINATION" not in done.stderr
    found = json.loads(out.read_text())
    assert found["ranks_agree"]
    assert "model parameter '0.weight': rank 0 has float64(4, 8), rank 1 has float64(4, 9)" in found["model"]
    assert "optimizer param_groups.0.lr: rank 0 has 0.1, rank 1 has 0.2" in found["optimizer_lr"]
    assert "optimizer: rank 0 has 'SGD', rank 1 has 'Adam'" in found["optimizer_type"]
    assert "optimizer state.0.exp_avg: rank 0 has float64(4, 8), rank 1 has (missing)" in found["optimizer_state"]
    assert "load a checkpoint (nn.load) on every rank" in found["optimizer_state"]
    assert "shuffling rng: rank 0 has" in found["rng"] and "same rng= seed on every rank" in found["rng"]
    assert "data y: rank 0 has float64(90, 1) checksum" in found["data"]
    assert found["on_train_begin"].startswith("ValueError: EarlyStopping monitors 'val_loss'")
    assert found["nan"].startswith("FloatingPointError: fit: the loss became nan at epoch 1, batch 3 "
                                   "(non-finite on rank(s) 1 of 2)")
    assert found["nan_weights_kept"]
    epoch, batch, reason, epochs_run = found["terminate_on_nan"]
    assert (epoch, batch, epochs_run) == (1, 3, 1) and reason  # numbers a user reads count from 1.startswith("TerminateOnNaN: the loss became nan")


@pytest.mark.parametrize("mode, world", [("abort-start", 2), ("abort-mid", 3), ("kill", 2)])
def test_a_rank_that_fails_alone_ends_every_rank(mode, world, tmp_path):
    done = mpirun(world, "faults.py", mode, str(tmp_path), timeout=60)
    assert done.returncode not in (0, None), done.stderr[-3000:]
    assert "finished: the failure did not happen" not in done.stdout
    if mode == "kill":
        pid = re.search(r"rank 1 pid (\d+)", done.stdout).group(1)   # the ranks' lines may interleave
        said = done.stdout + done.stderr
        assert f"PID {pid} " in said and "Killed (signal 9)" in said   # the launcher names it
    else:
        assert done.stderr.count("nanonet.distributed: rank") == 1 == done.stderr.count("Abort(1)")  # once
    if mode == "abort-start":
        assert "rank 1 of 2 failed in the script" in done.stderr and "non-finite x" in done.stderr
        assert not (tmp_path / "ckpt.npz").exists()
        return
    if mode == "abort-mid":
        assert "rank 1 of 3 failed in fit (epoch 3, batch 3)" in done.stderr
        assert "bad data in rank 1's share" in done.stderr
    model = nn.Sequential(nn.Linear(4, 8), faults.PoisonOnRank(1, -1), nn.Tanh(), nn.Linear(8, 1))
    meta = nn.load(tmp_path / "ckpt.npz", model)
    assert meta["epoch"] == 2        # the last good checkpoint, intact
    assert all(np.isfinite(v).all() for v in model.state_dict().values())


def test_demo_under_mpiexec_trains_data_parallel_and_prints_once():
    done = launch.run(2, ["-m", "nanonet", "demo", "--epochs", "4"], timeout=TIMEOUT, yield_cpu=True)
    assert done.returncode == 0 and not done.timed_out, done.stderr[-3000:]
    assert done.stdout.count("Training loss is") == 1 and "data-parallel on 2 processes" in done.stdout
    from nanonet import demo

    printed = []
    demo.run(epochs=4, out=printed.append)  # one process: the same lines, to the last printed digit
    got = [line for line in done.stdout.splitlines() if ": loss is" in line]
    assert len(got) == 4 and got == [line for line in printed if ": loss is" in line]


# -- the benchmark's launches (no speed is asserted) --------------------------------------------------------
def test_bench_cases_launch_and_report():
    from nanonet.bench import distributed as bench

    tiny = {"batch": 8, "sizes": (4, 8, 8, 2), "name": "tiny"}
    # one nanonet case (the torch peer is left to the bench itself: importing torch takes seconds)
    got = bench._launch(2, {"peer": "nanonet-overlap", "workload": tiny, "steps": 3, "warmup": 1}, timeout=TIMEOUT)
    assert got["step_s"] > 0 and got["p25"] <= got["step_s"] <= got["p75"]
    rows = [{"workload": "tiny", "peer": "nanonet", "world": 1, "samples_per_s": 100.0},
            {"workload": "tiny", "peer": "nanonet-overlap", "world": 2, "samples_per_s": got["samples_per_s"]}]
    sweep = bench._launch(2, {"peer": "sweep", "workload": dict(tiny, widths=(4, 16)), "steps": 2, "warmup": 1},
                          timeout=TIMEOUT)["rows"]
    assert [r["params"] for r in sweep] == [4 * 4 + 4 + 4 * 4 + 4 + 4 * 2 + 2, 4 * 16 + 16 + 16 * 16 + 16 + 16 * 2 + 2]
    assert all(0 < r["share"] < 1 and r["bytes"] == 8 * r["params"] for r in sweep)
    text = bench.render({"rows": rows, "sweep": sweep, "repeats": 1})
    assert "| tiny     | nanonet-overlap | (" in text and "reduction share of the step" in text
