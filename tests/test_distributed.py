"""Data-parallel training: one process here, real ``mpiexec -n 2`` / ``-n 3`` runs as subprocesses.

The multi-process tests launch the scripts in tests/mpi_scripts/ (a few
launches, each checking several things) with a timeout, and skip only where
mpi4py or mpiexec cannot be found (the ``test`` extra installs both).
"""

import importlib.util
import json
import math
import pathlib
import re
import sys

import numpy as np
import pytest

import nanonet as nn
from nanonet import distributed as dist
from nanonet.data import batches, shard_bounds
from nanonet.distributed import launch, runtime
from nanonet.distributed.consistency import describe_model, describe_optimizer
from nanonet.distributed.trainer import Trainer

SCRIPTS = pathlib.Path(__file__).parent / "mpi_scripts"
TIMEOUT = 120  # seconds; a hang is a failure, never a wait forever


def _script(name):
    spec = importlib.util.spec_from_file_location(f"mpi_script_{name}", SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


runs, faults = _script("runs"), _script("faults")
needs_mpi = pytest.mark.skipif(launch.unavailable_reason() is not None,
                               reason=f"multi-process tests need MPI: {launch.unavailable_reason()}")


def mpirun(n, *argv, timeout=TIMEOUT):
    done = launch.run(n, [str(SCRIPTS / argv[0]), *argv[1:]], timeout=timeout, yield_cpu=True)  # a busy machine
    assert not done.timed_out, f"mpiexec -n {n} {argv} hung (killed after {timeout} s):\n{done.stderr[-3000:]}"
    return done


# -- one process ----------------------------------------------------------------------------------------
def test_world_of_one_without_a_launcher_imports_no_mpi4py(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # any import of mpi4py now fails
    assert not dist.launched()
    assert (dist.init().size, dist.rank(), dist.world_size(), dist.is_main()) == (1, 0, 1, True)
    dist.barrier()
    x, y = runs.regression(40)
    model = runs.mlp(0)
    nn.fit(model, nn.MSELoss(), nn.optim.SGD(model.parameters(), lr=0.1), x, y, epochs=1, batch_size=8,
           verbose=0, rng=0, distributed=True)


def test_launcher_is_recognised_by_its_environment(monkeypatch):
    for name in runtime.LAUNCHER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert not runtime.launched()
    monkeypatch.setenv("PMI_RANK", "0")
    assert runtime.launched()


@pytest.mark.parametrize("name", list(runs.CONFIGS))
def test_distributed_fit_on_one_process_equals_fit_bit_for_bit(name):
    a, _, ha = runs.train(name, 100, distributed=False)
    b, _, hb = runs.train(name, 100, distributed=True)
    assert ha.history == hb.history
    for (key, u), v in zip(a.state_dict().items(), b.state_dict().values()):
        assert np.array_equal(u, v), key


@pytest.mark.parametrize("world", [2, 3, 5])
@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("drop_last", [False, True])
def test_the_shards_of_a_batch_are_exactly_the_batch(world, shuffle, drop_last):
    x = np.arange(46.0).reshape(23, 2)
    y = np.arange(23.0).reshape(23, 1)
    whole = list(batches(x, y, 7, shuffle=shuffle, rng=3, drop_last=drop_last))
    shards = [list(batches(x, y, 7, shuffle=shuffle, rng=3, drop_last=drop_last, rank=r, world_size=world))
              for r in range(world)]
    assert all(len(s) == len(whole) for s in shards)
    for b, (xb, yb) in enumerate(whole):
        assert np.array_equal(np.concatenate([s[b][0] for s in shards]), xb)
        assert np.array_equal(np.concatenate([s[b][1] for s in shards]), yb)
        sizes = [len(s[b][0]) for s in shards]
        assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)


def test_shard_bounds_cover_the_rows_once():
    for n in range(0, 12):
        for world in range(1, 6):
            bounds = [shard_bounds(n, r, world) for r in range(world)]
            assert bounds[0][0] == 0 and bounds[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))


@pytest.mark.parametrize("rank, world, match", [(2, 2, "rank < world_size"), (-1, 2, "rank to be an int >= 0"),
                                                (0, 0, "world_size to be an int >= 1"),
                                                (0, True, "world_size to be an int")])
def test_batches_refuses_bad_rank_arguments(rank, world, match):
    with pytest.raises(ValueError, match=match):
        next(batches(np.zeros((4, 1)), np.zeros((4, 1)), 2, rank=rank, world_size=world))


def test_bad_options_are_refused_before_training():
    model = runs.mlp(0)
    opt = nn.optim.SGD(model.parameters(), lr=0.1)
    x, y = runs.regression(10)
    before = model.state_dict()
    with pytest.raises(TypeError, match="distributed to be True, False or a nanonet.distributed.DataParallel"):
        nn.fit(model, nn.MSELoss(), opt, x, y, epochs=1, batch_size=4, distributed="yes")
    assert all(np.array_equal(v, model.state_dict()[k]) for k, v in before.items())
    with pytest.raises(ValueError, match="bucket_cap_mb"):
        dist.DataParallel(bucket_cap_mb=0)
    with pytest.raises(ValueError, match="bucket_cap_mb"):
        dist.DataParallel(bucket_cap_mb=math.nan)
    with pytest.raises(TypeError, match="overlap to be True or False"):
        dist.DataParallel(overlap=1)


# -- the gradient buckets -------------------------------------------------------------------------------
class RecordingGroup(runtime.LocalComm):
    """One process that records each bucket it is asked to sum (and when), and doubles it (a fake 2 ranks)."""

    def __init__(self):
        self.log = []

    def allreduce_sum(self, array):
        self.log.append(("blocking", array.size))
        array *= 2
        return array

    def iallreduce_sum(self, array):
        self.log.append(("started", array.size))
        array *= 2
        return "request"

    def wait_all(self, requests):
        self.log.append(("waited", len(requests)))


def _grads(model, x, y):
    loss_fn = nn.MSELoss()
    model.zero_grad()
    loss_fn(model(x), y)
    model.backward(loss_fn.backward())
    return [p.grad.copy() for p in model.parameters()]


def test_buckets_follow_the_cap_in_reverse_parameter_order():
    model = runs.mlp(0)   # 6*16+16, 16*16+16, 16*2+2 numbers
    params = model.parameters()
    one = dist.GradientReducer(params, RecordingGroup())
    assert len(one.buckets) == 1 and one.buckets[0].params == params[::-1]
    small = dist.GradientReducer(params, RecordingGroup(), bucket_cap_mb=300 * 8 / 2**20)
    assert [[params.index(p) for p in b.params] for b in small.buckets] == [[5, 4, 3], [2, 1], [0]]
    assert repr(small) == "GradientReducer(6 parameters in 3 buckets, 3344 bytes, overlap=False)"


@pytest.mark.parametrize("as_view", [False, True])
def test_allreduce_sums_every_gradient_in_place(as_view):
    model = runs.mlp(0)
    x, y = runs.regression(9)
    expected = _grads(model, x, y)
    keep = [p.grad for p in model.parameters()]
    group = RecordingGroup()
    reducer = dist.GradientReducer(model.parameters(), group, bucket_cap_mb=1e-3,
                                   gradient_as_bucket_view=as_view)
    assert all(np.array_equal(p.grad, e) for p, e in zip(model.parameters(), expected))
    reducer.allreduce(scale=0.25)
    for p, e in zip(model.parameters(), expected):
        np.testing.assert_array_equal(p.grad, e * 0.5)
    assert [kind for kind, _ in group.log] == ["blocking"] * len(reducer.buckets)
    views = [np.shares_memory(p.grad, b.flat) for b in reducer.buckets for p in b.params]
    assert all(views) if as_view else not any(views)
    if not as_view:
        assert all(p.grad is g for p, g in zip(model.parameters(), keep))   # their own arrays, written in place


def test_gradients_already_back_to_back_are_summed_without_copies():
    model = runs.mlp(0)
    params = model.parameters()
    flat = np.zeros(sum(p.value.size for p in params))
    offset = 0
    for p in params:                     # one flat array in forward order, as a flat-parameter layout has
        p.grad = flat[offset:offset + p.value.size].reshape(p.value.shape)
        offset += p.value.size
    reducer = dist.GradientReducer(params, RecordingGroup())
    assert np.shares_memory(reducer.buckets[0].flat, flat) and reducer.buckets[0].zero_copy()
    flat[:] = 1.0
    reducer.allreduce()
    assert np.all(flat == 2.0)
    params[0].grad = np.zeros_like(params[0].value)   # rebound: the bucket copies again, and stays right
    reducer.allreduce()
    assert np.all(params[0].grad == 0.0) and np.all(params[1].grad == 4.0)


def test_overlap_starts_each_bucket_during_backward_in_order():
    model = runs.residual_graph(0)
    x, y = runs.regression(9)
    expected = _grads(model, x, y)
    group = RecordingGroup()
    reducer = dist.GradientReducer(model.parameters(), group, bucket_cap_mb=1e-4)
    reducer.attach(model)
    order = []
    first = model.modules()[1]   # the first Linear: its backward runs last
    assert isinstance(first, nn.Linear) and first.weight.shape == (6, 12)
    original = first.backward    # the reducer's hook
    first.backward = lambda g: (order.append(list(group.log)), original(g))[1]
    reducer.begin()
    model.zero_grad()
    loss_fn = nn.MSELoss()
    loss_fn(model(x), y)
    model.backward(loss_fn.backward())
    reducer.finish()
    started_before_first_layer = [e for e in order[0] if e[0] == "started"]
    assert 0 < len(started_before_first_layer) < len(reducer.buckets)   # the later layers' buckets are out
    assert [e[0] for e in group.log] == ["started"] * len(reducer.buckets) + ["waited"]
    for p, e in zip(model.parameters(), expected):
        np.testing.assert_allclose(p.grad, 2 * e, rtol=0, atol=0)
    first.backward = original
    reducer.detach()
    assert not any("backward" in vars(m) for m in model.modules()) and not reducer.overlap


# -- agreement at start -----------------------------------------------------------------------------------
class TwoRanks(runtime.LocalComm):
    """Rank 0 of a fake pair whose rank 1 described ``other``."""

    size = 2

    def __init__(self, other):
        self.other = other

    def allgather_text(self, text):
        if len(text) == 32 and not text.startswith("{"):        # the digests
            return [text, "0" * 32]
        return [text, self.other]


def test_ranks_that_disagree_get_one_clear_error():
    mine = {**describe_model(runs.mlp(0)), **describe_optimizer(nn.optim.SGD(runs.mlp(0).parameters(), lr=0.1))}
    theirs = {**describe_model(nn.Sequential(nn.Linear(6, 16, rng=0), nn.Tanh(), nn.Linear(16, 8, rng=1))),
              **describe_optimizer(nn.optim.SGD(runs.mlp(0).parameters(), lr=0.2))}
    with pytest.raises(ValueError) as info:
        dist.check_same(TwoRanks(json.dumps(theirs, sort_keys=True)), mine, "fit(distributed=True)")
    text = str(info.value)
    assert runtime.is_collective(info.value)
    assert "the 2 ranks disagree at start" in text
    assert "optimizer param_groups.0.lr: rank 0 has 0.1, rank 1 has 0.2" in text
    assert "model parameter '2.weight': rank 0 has float64(16, 16), rank 1 has float64(16, 8)" in text
    assert "model parameter '4.bias': rank 0 has float64(2,), rank 1 has (missing)" in text
    assert "Fix: build the same model on every rank" in text and "Fix: create the same optimizer" in text


def test_rank_other_than_0_drops_main_only_callbacks_and_prints_nothing():
    class Rank1(runtime.LocalComm):
        rank, size = 1, 2

        def bcast(self, array, root=0):
            array[...] = 12345          # rank 0's shuffling seed
            return array

    trainer = Trainer(dist.DataParallel(), Rank1())
    keep, printer = nn.EarlyStopping(monitor="loss"), nn.LambdaCallback(main_only=True, on_epoch_end=print)
    callbacks, verbose, rng = trainer.local_view([keep, nn.ProgressBar(), nn.ModelCheckpoint("x.npz"), printer],
                                                 verbose=1, rng=None)
    assert callbacks == [keep] and verbose == 0 and rng == 12345
    with pytest.raises(TypeError, match="main_only to be True or False"):
        nn.LambdaCallback(main_only="yes")


# -- SyncBatchNorm ----------------------------------------------------------------------------------------
def test_sync_batchnorm_on_one_process_is_batchnorm():
    x = np.random.default_rng(0).standard_normal((7, 3))
    g = np.random.default_rng(1).standard_normal((7, 3))
    plain, sync = nn.BatchNorm1d(3), dist.SyncBatchNorm(3)
    np.testing.assert_allclose(sync(x), plain(x), rtol=1e-15, atol=1e-15)
    np.testing.assert_allclose(sync.backward(g), plain.backward(g), rtol=1e-13, atol=1e-14)
    for key, value in plain.state_dict().items():
        np.testing.assert_allclose(sync.state_dict()[key], value, rtol=1e-15, atol=1e-15)
    with pytest.raises(ValueError, match="at least 2 rows over all 1 rank"):
        sync(x[:1])


def test_convert_sync_batchnorm_keeps_the_instances():
    bn = nn.BatchNorm1d(4)
    model = nn.Sequential(nn.Linear(3, 4, rng=0), bn)
    opt = nn.optim.SGD(model.parameters(), lr=0.1)
    assert dist.convert_sync_batchnorm(model) is model and model[1] is bn and isinstance(bn, dist.SyncBatchNorm)
    assert opt.parameters() == model.parameters()

    class MyNorm(nn.BatchNorm1d):
        pass

    with pytest.raises(TypeError, match="MyNorm is a subclass of BatchNorm1d"):
        dist.convert_sync_batchnorm(nn.Sequential(MyNorm(3)))


# -- several processes ------------------------------------------------------------------------------------
@needs_mpi
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


@needs_mpi
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
    assert found["nan"].startswith("FloatingPointError: fit: the loss became nan at epoch 0, batch 2 "
                                   "(non-finite on rank(s) 1 of 2)")
    assert found["nan_weights_kept"]
    epoch, batch, reason, epochs_run = found["terminate_on_nan"]
    assert (epoch, batch, epochs_run) == (0, 2, 1) and reason.startswith("TerminateOnNaN: the loss became nan")


@needs_mpi
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
        assert "rank 1 of 3 failed in fit (epoch 2, batch 2)" in done.stderr
        assert "bad data in rank 1's share" in done.stderr
    model = nn.Sequential(nn.Linear(4, 8), faults.PoisonOnRank(1, -1), nn.Tanh(), nn.Linear(8, 1))
    meta = nn.load(tmp_path / "ckpt.npz", model)
    assert meta["epoch"] == 2        # the last good checkpoint, intact
    assert all(np.isfinite(v).all() for v in model.state_dict().values())


@needs_mpi
def test_demo_under_mpiexec_trains_data_parallel_and_prints_once():
    done = launch.run(2, ["-m", "nanonet", "demo", "--epochs", "4"], timeout=TIMEOUT, yield_cpu=True)
    assert done.returncode == 0 and not done.timed_out, done.stderr[-3000:]
    assert done.stdout.count("Test loss is") == 1 and "data-parallel on 2 processes" in done.stdout
    from nanonet import demo

    _, losses, test_loss = demo.run(epochs=4, out=lambda s: None)
    got = [float(line.split()[-1]) for line in done.stdout.splitlines() if ": loss is" in line]
    np.testing.assert_allclose(got, losses, rtol=1e-12)


# -- the benchmark's launches (no speed is asserted) --------------------------------------------------------
@needs_mpi
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
