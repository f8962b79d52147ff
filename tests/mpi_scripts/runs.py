"""Training runs that tests/test_distributed.py launches with ``mpiexec -n 2`` / ``-n 3``.

``python runs.py exact OUT.npz`` trains every CONFIG data-parallel and (rank
0) writes the final weights, buffers and History of each, plus how far each
rank's weights are from rank 0's. The test runs the same CONFIGS in one
process, without ``distributed``, and compares. ``--resume DIR`` also checks
that resuming from a checkpoint equals the uninterrupted run.
"""

import os
import sys

import numpy as np

import nanonet as nn
from nanonet import distributed as dist
from nanonet.serialization import generator_from_state


def regression(n, features=6, seed=0):
    gen = np.random.default_rng(seed)
    x = gen.standard_normal((n, features))
    y = np.tanh(x @ gen.standard_normal((features, 2))) + 0.1 * gen.standard_normal((n, 2))
    return x, y


def classification(n, features=6, classes=3, seed=1):
    gen = np.random.default_rng(seed)
    x = gen.standard_normal((n, features))
    return x, gen.integers(0, classes, n)


def mlp(seed, norm=None):
    layers = [nn.Linear(6, 16, rng=seed), nn.Tanh()] + ([norm(16)] if norm else []) + \
             [nn.Linear(16, 16, rng=seed + 1), nn.ReLU(), nn.Linear(16, 2, rng=seed + 2)]
    return nn.Sequential(*layers)


def images(n, seed=2):
    """Small 2-channel 6x6 images and a regression target of 2 values."""
    gen = np.random.default_rng(seed)
    x = gen.standard_normal((n, 2, 6, 6))
    return x, np.tanh(x.reshape(n, -1) @ gen.standard_normal((72, 2)) / 8)


def cnn(seed, norm=None):
    """conv -> (Sync)BatchNorm2d -> ReLU -> max pool -> linear: the conv family under data parallelism."""
    norm = norm or dist.SyncBatchNorm2d
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1, rng=seed), norm(4), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(36, 2, rng=seed + 1))


def tokens(n, length=6, vocab=9, seed=3):
    """Integer sequences (N, L) and a class each: the sum of its tokens, mod 3."""
    x = np.random.default_rng(seed).integers(0, vocab, (n, length))
    return x, x.sum(axis=1) % 3


def sequence_graph(seed, norm=None):
    """Embedding -> Transformer encoder layer -> LSTM, whose last state (h_n) feeds the head: the sequence family.

    The head's SyncBatchNorm is collective: a rank with an empty share still runs forward and backward
    (a batch of 0 through every sequence layer) to join its reductions.
    """
    norm = norm or dist.SyncBatchNorm
    tok = nn.Input(6, name="tokens")
    h = nn.Embedding(9, 8, rng=seed)(tok)
    h = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True, rng=seed + 1)(h)
    _, h_n, _ = nn.LSTM(8, 8, batch_first=True, return_state=True, rng=seed + 2)(h)
    return nn.Graph(tok, nn.Linear(8, 3, rng=seed + 3)(norm(8)(nn.Flatten()(h_n), name="norm")))


def classifier(seed):
    return nn.Sequential(nn.Linear(6, 12, rng=seed), nn.ELU(), nn.Linear(12, 3, rng=seed + 1))


def residual_graph(seed):
    inp = nn.Input(6)
    h = nn.Linear(6, 12, rng=seed)(inp)
    a = nn.Tanh()(h)
    b = nn.Linear(12, 12, rng=seed + 1)(nn.ReLU()(h))
    joined = nn.Concat()(nn.Add()(a, b), inp)
    return nn.Graph(inp, nn.Linear(18, 2, rng=seed + 2)(joined))


def mae(pred, target):
    return float(np.abs(pred - target).mean())


def accuracy(pred, target):
    return float((pred.argmax(axis=1) == target).mean())


# name -> (model(seed), optimizer(params), loss, data (x, y), fit options, distributed options).
# Every run has >= 50 steps, shuffling and a short last batch; global batches that 2 and 3 do not divide.
# The last batch of adam_graph_overlap has 1 row (empty shares on 2 and 3 ranks), sgd_syncbatchnorm's and
# adam_sequence_graph's 2 rows (an empty share on 3 ranks, whose SyncBatchNorm still joins the reductions).
CONFIGS = {
    "sgd_momentum_sequential": (
        mlp, lambda p: nn.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True), nn.MSELoss,
        lambda: regression(203), dict(epochs=5, batch_size=20, metrics={"mae": mae, "r2": "r2"}, clip_grad_norm=5.0,
                                      validation_data=regression(31, seed=7)),
        dict(gradient_as_bucket_view=False)),
    "adam_sequential_ce": (
        classifier, lambda p: nn.optim.Adam(p, lr=0.01), nn.CrossEntropyLoss, lambda: classification(211),
        dict(epochs=5, batch_size=20, metrics={"acc": accuracy, "accuracy": "accuracy"},
             validation_split=0.1), {}),
    "adam_graph_overlap": (
        residual_graph, lambda p: nn.optim.Adam(p, lr=0.005, weight_decay=1e-3), lambda: nn.MSELoss("sum"),
        lambda: regression(155), dict(epochs=4, batch_size=11), dict(overlap=True, bucket_cap_mb=0.001)),
    "sgd_syncbatchnorm": (
        lambda seed: mlp(seed, norm=dist.SyncBatchNorm), lambda p: nn.optim.SGD(p, lr=0.05, momentum=0.9),
        nn.MSELoss, lambda: regression(184), dict(epochs=4, batch_size=13), dict(overlap=True)),
    "sgd_cnn_syncbatchnorm2d": (
        cnn, lambda p: nn.optim.SGD(p, lr=0.02, momentum=0.9), nn.MSELoss, lambda: images(157),
        dict(epochs=4, batch_size=12), dict(overlap=True)),
    # integer inputs through Embedding, a Transformer encoder layer and an LSTM; global batches of 7, the last of
    # 2 rows: an empty share on 3 ranks, which SyncBatchNorm makes run a batch of 0 through the sequence layers
    "adam_sequence_graph": (
        sequence_graph, lambda p: nn.optim.Adam(p, lr=0.01), nn.CrossEntropyLoss, lambda: tokens(93),
        dict(epochs=4, batch_size=7, metrics={"accuracy": "accuracy"}, validation_data=tokens(17, seed=4)),
        dict(overlap=True)),
    # the control: plain BatchNorm1d normalizes each rank's share by its own statistics, so this one differs
    "sgd_batchnorm_per_rank": (
        lambda seed: mlp(seed, norm=nn.BatchNorm1d), lambda p: nn.optim.SGD(p, lr=0.05, momentum=0.9),
        nn.MSELoss, lambda: regression(189), dict(epochs=4, batch_size=13), {}),
}


def steps(name):
    """How many optimizer steps CONFIGS[name] takes (the training rows, after any validation split)."""
    _, _, _, data, options, _ = CONFIGS[name]
    rows = len(data()[0])
    if "validation_split" in options:
        rows = int(rows * (1 - options["validation_split"]))
    return -(-rows // options["batch_size"]) * options["epochs"], rows % options["batch_size"]


def reference_model(name, seed):
    """The model of CONFIGS[name] as one process trains it (plain BatchNorm1d for SyncBatchNorm)."""
    if name == "sgd_syncbatchnorm":
        return mlp(seed, norm=nn.BatchNorm1d)
    if name == "sgd_cnn_syncbatchnorm2d":
        return cnn(seed, norm=nn.BatchNorm2d)
    if name == "adam_sequence_graph":
        return sequence_graph(seed, norm=nn.BatchNorm1d)
    return CONFIGS[name][0](seed)


def train(name, seed, distributed, model=None, **overrides):
    build, make_opt, make_loss, data, fit_options, options = CONFIGS[name]
    model = model or CONFIGS[name][0](seed)
    opt = make_opt(model.parameters())
    x, y = data()
    kwargs = {**fit_options, **overrides}
    history = nn.fit(model, make_loss(), opt, x, y, verbose=0, rng=5,
                     distributed=dist.DataParallel(**options) if distributed else False, **kwargs)
    return model, opt, history


def state_of(model):
    return {k: v for k, v in model.state_dict().items()}


def max_rank_difference(model):
    """max |w - w_rank0| over every parameter and buffer, the max over the ranks (on every rank)."""
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    worst = 0.0
    for value in state_of(model).values():
        mine = np.ascontiguousarray(value)
        root = mine.copy()
        comm.Bcast(root, root=0)
        worst = max(worst, float(np.abs(mine - root).max()))
    return comm.allreduce(worst, op=MPI.MAX)


def run_exact(out_path, resume_dir=None):
    results = {}
    for name in CONFIGS:
        # different initial weights on each rank: broadcast from rank 0 must make them equal
        model, _, history = train(name, seed=100 + dist.rank(), distributed=True)
        results.update({f"{name}/state/{k}": v for k, v in state_of(model).items()})
        results.update({f"{name}/history/{k}": np.array(v) for k, v in history.history.items()})
        results[f"{name}/rank_difference"] = np.array(max_rank_difference(model))
    if resume_dir:
        results.update(run_resume(resume_dir))
    if dist.is_main():
        np.savez(out_path, **results)


def run_resume(folder):
    """Stop after 2 epochs, resume to 5 from the checkpoint: bit-identical to 5 epochs straight."""
    name = "sgd_momentum_sequential"
    straight, _, h_straight = train(name, 100, True)
    path = os.path.join(folder, "ckpt-{epoch}.npz")
    train(name, 100, True, epochs=2, callbacks=[nn.ModelCheckpoint(path, monitor="loss")])
    model = CONFIGS[name][0](200 + dist.rank())                   # other weights: all come from the file
    opt = CONFIGS[name][1](model.parameters())
    meta = nn.load(path.format(epoch=2), model, opt)
    x, y = CONFIGS[name][3]()
    h_resumed = nn.fit(model, nn.MSELoss(), opt, x, y, verbose=0, epochs=5, initial_epoch=meta["epoch"],
                       rng=generator_from_state(meta["rng_state"]), distributed=dist.DataParallel(
                           gradient_as_bucket_view=False),
                       **{k: v for k, v in CONFIGS[name][4].items() if k != "epochs"})
    same = all(np.array_equal(a, b) for a, b in zip(state_of(straight).values(), state_of(model).values()))
    same_history = h_straight.history["loss"][2:] == h_resumed.history["loss"]
    return {"resume/bit_identical": np.array(same), "resume/history_identical": np.array(same_history),
            "resume/files": np.array(sorted(os.listdir(folder)))}


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "exact":
        run_exact(sys.argv[2], resume_dir=sys.argv[3] if len(sys.argv) > 3 else None)
    else:
        raise SystemExit(f"runs.py: unknown mode {mode!r}")
