"""Data-parallel training in one process: the parts, and ``fit(distributed=True)`` at world size 1.

The real multi-process runs (``mpiexec -n 2`` / ``-n 3``) are in test_distributed_mpi.py.
"""

import json
import math
import sys

import numpy as np
import pytest

import nanonet as nn
from nanonet import distributed as dist
from nanonet.data import batches, shard_bounds
from nanonet.distributed import runtime
from nanonet.distributed.consistency import describe_model, describe_optimizer
from nanonet.distributed.trainer import Trainer
from mpi_scripts import runs  # tests/mpi_scripts: the configurations that both test files train


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
    with pytest.raises((ValueError, TypeError), match=match):  # a bool is a TypeError (check_number)
        next(batches(np.zeros((4, 1)), np.zeros((4, 1)), 2, rank=rank, world_size=world))


def test_bad_options_are_refused_before_training():
    model = runs.mlp(0)
    opt = nn.optim.SGD(model.parameters(), lr=0.1)
    x, y = runs.regression(10)
    before = model.state_dict()
    with pytest.raises(TypeError, match="gradient_as_bucket_view to be None, True or False"):
        dist.DataParallel(gradient_as_bucket_view=1)
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


@pytest.mark.parametrize("as_view", [False, True, None])
def test_allreduce_sums_every_gradient_in_place(as_view):
    model = runs.mlp(0)
    for p in model.parameters():  # each gradient its own array (Sequential lays them out in one block)
        p.grad = p.grad.copy()
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
    assert all(views) if as_view is not False else not any(views)        # None: rebound, as they were theirs
    if as_view is False:
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


def test_gradients_that_are_views_of_a_foreign_array_are_never_rebound():
    model = runs.mlp(0)
    params = model.parameters()
    foreign = np.zeros((2, params[0].value.size))
    params[0].grad = foreign[0].reshape(params[0].value.shape)        # someone else's memory, not back to back
    reducer = dist.GradientReducer(params, RecordingGroup())
    assert np.shares_memory(params[0].grad, foreign) and not reducer.buckets[0].zero_copy()
    params[0].grad[...] = 3.0
    reducer.allreduce()
    assert np.all(foreign[0] == 6.0)


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


def test_a_graph_infers_sync_batchnorm_shapes_without_a_collective():
    group = RecordingGroup()
    inp = nn.Input(3)
    out = nn.Linear(4, 2, rng=0)(dist.SyncBatchNorm(4, group=group)(nn.Linear(3, 4, rng=0)(inp)))
    graph = nn.Graph(inp, out)
    assert group.log == []                                  # building the graph summed nothing
    graph(np.ones((5, 3)))
    assert [kind for kind, _ in group.log] == ["blocking", "blocking"]   # the mean, then the variance
    with pytest.raises(ValueError, match=r"expected inputs of shape \(N, 4\), got feature shape \(3,\)"):
        dist.SyncBatchNorm(4).output_shape((3,))


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
