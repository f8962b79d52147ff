"""Failures that tests/test_distributed.py launches with ``mpiexec``: none may hang.

``python faults.py collective OUT.json``: errors every rank raises together
(ranks that disagree at start, a NaN loss on one rank), each caught on every
rank and recorded, then one left uncaught (exit status 1, printed once).

``python faults.py abort-start DIR`` / ``abort-mid DIR`` / ``kill DIR``: rank 1
fails alone (bad data before training; an exception in its share of epoch 2;
SIGKILL in epoch 2) while ``ModelCheckpoint`` writes ``DIR/ckpt.npz`` after
each epoch: every rank must end, non-zero, within seconds.
"""

import json
import os
import signal
import sys

import numpy as np

import nanonet as nn
from nanonet import distributed as dist


def data(n=90, seed=0):
    gen = np.random.default_rng(seed)
    x = gen.standard_normal((n, 4))
    return x, np.sin(x[:, :1])


def model(hidden=8, seed=0):
    return nn.Sequential(nn.Linear(4, hidden, rng=seed), nn.Tanh(), nn.Linear(hidden, 1, rng=seed + 1))


def fit(m, opt=None, x=None, y=None, **options):
    x, y = (x, y) if x is not None else data()
    opt = opt or nn.optim.SGD(m.parameters(), lr=0.1)
    return nn.fit(m, nn.MSELoss(), opt, x, y, **{"epochs": 2, "batch_size": 16, "verbose": 0, "rng": 0,
                                                  "distributed": True, **options})


class PoisonOnRank(nn.Module):
    """Identity, except on ``rank`` at its ``at``-th training forward: NaN in its output, or raise."""

    def __init__(self, rank, at, raise_error=False):
        self.rank, self.at, self.raise_error, self.calls = rank, at, raise_error, 0

    def forward(self, x):
        self.calls += self.training
        if dist.rank() == self.rank and self.calls == self.at and self.training:
            if self.raise_error:
                raise ValueError(f"bad data in rank {self.rank}'s share (forward call {self.calls})")
            x = x.copy()
            x[0, 0] = np.nan
        return x

    def backward(self, grad_out):
        return grad_out


def caught(fn):
    try:
        fn()
    except (ValueError, FloatingPointError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def run_collective(out_path):
    r = dist.rank()
    found = {}
    found["model"] = caught(lambda: fit(model(hidden=8 if r == 0 else 9)))
    m = model()
    found["optimizer_lr"] = caught(lambda: fit(m, nn.optim.SGD(m.parameters(), lr=0.1 if r == 0 else 0.2)))
    m = model()
    found["optimizer_type"] = caught(lambda: fit(m, nn.optim.SGD(m.parameters(), lr=0.1) if r == 0
                                                 else nn.optim.Adam(m.parameters(), lr=0.1)))
    m = model()
    adam = nn.optim.Adam(m.parameters(), lr=0.01)
    if r == 0:   # optimizer state on rank 0 only (a checkpoint loaded on one rank)
        fit(m, adam, distributed=False, epochs=1)
    found["optimizer_state"] = caught(lambda: fit(m, adam))
    found["rng"] = caught(lambda: fit(model(), rng=None if r == 0 else 7))   # None on one rank only: no hang
    x, y = data()
    found["data"] = caught(lambda: fit(model(), x=x, y=y + (r == 1)))
    found["on_train_begin"] = caught(lambda: fit(model(), callbacks=[nn.EarlyStopping(monitor="val_loss")]))
    poisoned = nn.Sequential(nn.Linear(4, 8, rng=0), PoisonOnRank(rank=1, at=3), nn.Tanh(), nn.Linear(8, 1, rng=1))
    before = {}
    found["nan"] = caught(lambda: fit(poisoned, callbacks=[nn.LambdaCallback(
        on_batch_end=lambda b, logs: before.update(poisoned.state_dict()))]))
    found["nan_weights_kept"] = all(np.array_equal(v, poisoned.state_dict()[k]) for k, v in before.items())
    poisoned = nn.Sequential(nn.Linear(4, 8, rng=0), PoisonOnRank(rank=1, at=3), nn.Tanh(), nn.Linear(8, 1, rng=1))
    stop = nn.TerminateOnNaN()
    history = fit(poisoned, callbacks=[stop])
    found["terminate_on_nan"] = [stop.epoch, stop.batch, history.stop_reason, len(history.epoch)]
    everyone = dist.init().allgather_text(json.dumps(found, sort_keys=True))
    if dist.is_main():
        with open(out_path, "w") as f:
            json.dump({"ranks_agree": len(set(everyone)) == 1, **found}, f)
    fit(model(hidden=8 if r == 0 else 7))   # uncaught, on every rank: status 1, printed by rank 0 only


def run_failure(mode, folder):
    x, y = data()
    if mode == "abort-start" and dist.rank() == 1:
        x = x.copy()
        x[5, 2] = np.nan        # rank 1 alone has bad data: it fails before any collective
    poison = PoisonOnRank(rank=1, at=6 * 2 + 3 if mode == "abort-mid" else -1, raise_error=True)
    m = nn.Sequential(nn.Linear(4, 8, rng=0), poison, nn.Tanh(), nn.Linear(8, 1, rng=1))
    callbacks = [nn.ModelCheckpoint(os.path.join(folder, "ckpt.npz"), monitor="loss")]
    if mode == "kill":
        callbacks.append(nn.LambdaCallback(on_batch_end=lambda b, logs: _kill_rank_1(m, b)))
    print(f"rank {dist.rank()} pid {os.getpid()}", flush=True)
    fit(m, x=x, y=y, epochs=5, callbacks=callbacks)
    print("finished: the failure did not happen", flush=True)


def _kill_rank_1(m, batch):
    if dist.rank() == 1 and m[1].calls == 6 * 2 + 3:   # epoch 2 (6 batches an epoch), batch 2
        os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    mode, target = sys.argv[1], sys.argv[2]
    dist.init()
    if mode == "collective":
        run_collective(target)
    elif mode in ("abort-start", "abort-mid", "kill"):
        run_failure(mode, target)
    else:
        raise SystemExit(f"faults.py: unknown mode {mode!r}")
