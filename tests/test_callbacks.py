"""Callbacks: EarlyStopping (Keras semantics), ModelCheckpoint, TerminateOnNaN, progress bar, schedules."""

import io
import math
import re

import numpy as np
import pytest

import nanonet as nn
from nanonet.datasets import make_regression
from nanonet.training import FitContext, History


def problem(n=96):
    x, y, _, _ = make_regression(n_train=n, n_test=8, n_features=4, rng=0)
    return x, y


def small_model(seed=0):
    return nn.Sequential(nn.Linear(4, 8, rng=seed), nn.ReLU(), nn.Linear(8, 1, rng=seed + 1))


def scripted(values):
    """A metric returning the given values in turn (one call per epoch in validation)."""
    it = iter(values)
    calls = {"n": 0}

    def score(pred, target):
        calls["n"] += 1
        return next(it) if calls["n"] % 2 == 0 else 0.0  # odd calls: training (1 batch), even: validation
    return score


def fit_with(callbacks, epochs=8, metrics=None, loss_fn=None, **kwargs):
    x, y = problem()
    model = small_model()
    opt = nn.optim.SGD(model.parameters(), lr=0.01)
    kwargs.setdefault("batch_size", 96)
    h = nn.fit(model, loss_fn or nn.MSELoss(), opt, x, y, epochs=epochs, callbacks=callbacks, metrics=metrics,
               verbose=kwargs.pop("verbose", 0), rng=0, **kwargs)
    return model, opt, h


def drive(cb, values, monitor="val_loss"):
    """Feed EarlyStopping a sequence of monitored values; return the epoch it stopped at."""
    ctx = FitContext(small_model(), None, None, np.random.default_rng(0), len(values), 0, 1, 1, 0, History(),
                     ["loss", monitor])
    cb.set_context(ctx)
    cb.on_train_begin({})
    for epoch, v in enumerate(values):
        cb.on_epoch_end(epoch, {"loss": 1.0, monitor: v})
        if ctx.stop_training:
            return epoch
    return None


# -- EarlyStopping --------------------------------------------------------------------
def test_early_stopping_waits_patience_epochs_without_improvement():
    values = [5, 4, 4.5, 3.9, 4.0, 4.1, 4.2]
    assert drive(nn.EarlyStopping(patience=2), values) == 5   # epochs 4 and 5 did not improve on 3.9
    assert drive(nn.EarlyStopping(patience=1), values) == 2
    assert drive(nn.EarlyStopping(patience=0), values) == 2
    assert drive(nn.EarlyStopping(patience=10), values) is None


def test_early_stopping_min_delta_and_mode():
    values = [5, 4, 3.95, 3.9, 3.85, 3.8]
    assert drive(nn.EarlyStopping(patience=2, min_delta=0.1), values) == 3   # 3.95 and 3.9 are not "better"
    assert drive(nn.EarlyStopping(patience=2), values) is None
    accs = [0.5, 0.6, 0.55, 0.58]
    assert drive(nn.EarlyStopping(monitor="val_acc", patience=1), accs, monitor="val_acc") == 2  # auto -> max
    assert drive(nn.EarlyStopping(monitor="val_acc", patience=1, mode="min"), accs, monitor="val_acc") == 1


def test_early_stopping_baseline_must_be_beaten():
    # Keras: an epoch that improves never stops training, but the wait only resets below the baseline
    values = [3, 2, 1.5, 1.6]
    assert drive(nn.EarlyStopping(patience=2, baseline=1.0), values) == 3
    assert drive(nn.EarlyStopping(patience=2), values) is None


def test_early_stopping_in_fit_restores_the_best_weights():
    snapshots = []
    snap = nn.LambdaCallback(on_epoch_end=lambda epoch, logs: snapshots.append(model_ref[0].state_dict()))
    stop = nn.EarlyStopping(monitor="val_score", patience=2, restore_best_weights=True)
    x, y = problem()
    model = small_model()
    model_ref = [model]
    h = nn.fit(model, nn.MSELoss(), nn.optim.SGD(model.parameters(), lr=0.01), x[:64], y[:64], epochs=20,
               batch_size=64, validation_data=(x[64:], y[64:]), callbacks=[snap, stop], verbose=0, rng=0,
               metrics={"score": scripted([3.0, 2.0, 1.0, 1.5, 1.2, 0.5, 0.4])})
    # epoch numbers count from 1 everywhere a user reads them; the hooks get 0-based indices
    assert h.epoch == [1, 2, 3, 4, 5] and h.stopped_epoch == stop.stopped_epoch == 5 and stop.best_epoch == 3
    assert "val_score did not improve for 2 epoch(s) (best 1 at epoch 3); stopped at epoch 5" in h.stop_reason
    for key, value in model.state_dict().items():
        assert np.array_equal(value, snapshots[2][key]), key
    assert not np.array_equal(snapshots[4]["0.weight"], snapshots[2]["0.weight"])


def test_early_stopping_without_the_monitored_key_is_a_clear_error():
    with pytest.raises(ValueError, match=r"EarlyStopping monitors 'val_loss', but fit logs only \['loss'\]; pass "
                                         r"validation_data or validation_split"):
        fit_with([nn.EarlyStopping()])
    with pytest.raises(ValueError, match="patience to be an int >= 0"):
        nn.EarlyStopping(patience=-1)
    with pytest.raises(ValueError, match="mode 'auto', 'min' or 'max'"):
        nn.EarlyStopping(mode="up")


# -- ModelCheckpoint ------------------------------------------------------------------
def test_model_checkpoint_saves_every_epoch_with_a_formatted_path(tmp_path):
    cb = nn.ModelCheckpoint(str(tmp_path / "ckpt-{epoch:02d}-{loss:.2f}.npz"), save_best_only=False)
    model, opt, h = fit_with([cb], epochs=3)
    assert len(cb.saved) == 3 and [p.split("/")[-1][:7] for p in cb.saved] == ["ckpt-01", "ckpt-02", "ckpt-03"]
    fresh = small_model(seed=5)
    fresh_opt = nn.optim.SGD(fresh.parameters(), lr=0.3)
    meta = nn.load(cb.saved[-1], fresh, fresh_opt)
    assert fresh_opt.param_groups[0]["lr"] == opt.param_groups[0]["lr"] == 0.01
    assert meta["epoch"] == 3 and meta["logs"]["loss"] == h.history["loss"][-1]
    assert meta["rng_state"]["bit_generator"] == "PCG64"
    for key, value in model.state_dict().items():
        assert np.array_equal(value, fresh.state_dict()[key])


def test_model_checkpoint_save_best_only(tmp_path):
    path = tmp_path / "best.npz"
    cb = nn.ModelCheckpoint(path, monitor="val_score", save_best_only=True)
    x, y = problem()
    model = small_model()
    nn.fit(model, nn.MSELoss(), nn.optim.SGD(model.parameters(), lr=0.01), x[:64], y[:64], epochs=5,
           batch_size=64, validation_data=(x[64:], y[64:]), callbacks=[cb], verbose=0, rng=0,
           metrics={"score": scripted([3.0, 2.0, 2.5, 1.0, 1.1])})
    assert len(cb.saved) == 3  # epochs 1, 2 and 4 improved
    meta = nn.load(path, small_model())
    assert meta["epoch"] == 4 and meta["best"] == 1.0
    with pytest.raises(ValueError, match="ModelCheckpoint monitors 'val_loss'"):
        fit_with([nn.ModelCheckpoint(tmp_path / "x.npz", save_best_only=True)])


# -- TerminateOnNaN -------------------------------------------------------------------
class NaNAtCall(nn.MSELoss):
    """MSE that returns NaN on its ``at``-th call."""

    def __init__(self, at):
        super().__init__()
        self.calls, self.at = 0, at

    def forward(self, pred, target):
        self.calls += 1
        loss = super().forward(pred, target)
        return math.nan if self.calls == self.at else loss


def test_terminate_on_nan_reports_epoch_and_batch_and_keeps_the_weights(capsys):
    before = []
    keep = nn.LambdaCallback(on_batch_end=lambda b, logs: before.append(model_ref[0].state_dict()))
    cb = nn.TerminateOnNaN()
    x, y = problem()
    model = small_model()
    model_ref = [model]
    h = nn.fit(model, NaNAtCall(5), nn.optim.SGD(model.parameters(), lr=0.01), x, y, epochs=4, batch_size=32,
               callbacks=[keep, cb], verbose=0, rng=0)   # 3 batches per epoch: call 5 is epoch 2, batch 2
    assert (cb.epoch, cb.batch) == (2, 2)
    assert h.stopped_epoch == 2 and h.epoch == [1, 2] and math.isnan(h.history["loss"][1])
    assert h.stop_reason.startswith("TerminateOnNaN: the loss became nan at epoch 2, batch 2")
    for key, value in model.state_dict().items():  # the NaN batch was not stepped on
        assert np.array_equal(value, before[-2][key])
    assert capsys.readouterr() == ("", "")  # verbose=0 is silent


def test_without_terminate_on_nan_a_non_finite_loss_raises_where_it_happened():
    with pytest.raises(FloatingPointError, match=r"the loss became nan at epoch 3, batch 1;.*TerminateOnNaN"):
        fit_with([], epochs=5, loss_fn=NaNAtCall(3))


def test_terminate_on_nan_catches_a_real_divergence():
    cb = nn.TerminateOnNaN()
    with np.errstate(over="ignore", invalid="ignore"):
        x, y = problem()
        model = small_model()
        h = nn.fit(model, nn.MSELoss(), nn.optim.SGD(model.parameters(), lr=1e3), x, y, epochs=50, batch_size=8,
                   callbacks=[cb], verbose=0, rng=0)
    assert cb.epoch is not None and h.stopped_epoch == cb.epoch
    assert all(np.isfinite(v).all() for v in model.state_dict().values())


# -- progress bar ---------------------------------------------------------------------
def test_plain_progress_line_per_epoch_when_not_a_terminal():
    out = io.StringIO()
    fit_with([nn.ProgressBar(file=out, use_tqdm=False)], epochs=3, batch_size=32)
    lines = out.getvalue().splitlines()
    assert [line.split(" - ")[0] for line in lines] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert "\r" not in out.getvalue()
    for line in lines:  # each epoch's line ends with its wall time
        assert re.fullmatch(r"epoch \d/3 - loss [0-9.e+-]+ - \d+(\.\d)? (ms|s)", line), line


def test_plain_progress_bar_rewrites_one_line_in_a_terminal():
    out = io.StringIO()
    fit_with([nn.ProgressBar(file=out, use_tqdm=False, dynamic=True, min_interval=0)], epochs=2, batch_size=32)
    text = out.getvalue()
    assert text.count("\r[") >= 6 and text.endswith("\n") and text.count("\n") == 2  # one kept line per epoch
    assert "6/6 epoch 2/2 loss" in text and re.search(r"3/6 epoch 1/2 loss [0-9.e+-]+ - \d+(\.\d)? (ms|s)", text)


def test_tqdm_progress_bar():
    pytest.importorskip("tqdm")
    out = io.StringIO()
    fit_with([nn.ProgressBar(file=out, use_tqdm=True)], epochs=2, batch_size=32)
    assert "6/6" in out.getvalue() and "epoch 2/2" in out.getvalue()


# -- schedules as callbacks -----------------------------------------------------------
def test_a_schedule_in_callbacks_sets_the_rate_of_each_epoch():
    seen = []
    x, y = problem()
    model = small_model()
    opt = nn.optim.SGD(model.parameters(), lr=0.1)
    sched = nn.optim.StepLR(opt, step_size=2, gamma=0.5)
    record = nn.LambdaCallback(on_epoch_end=lambda e, logs: seen.append(opt.param_groups[0]["lr"]))
    nn.fit(model, nn.MSELoss(), opt, x, y, epochs=5, batch_size=32, callbacks=[sched, record], verbose=0, rng=0)
    assert seen == [0.1, 0.1, 0.05, 0.05, 0.025]


# -- one epoch numbering --------------------------------------------------------------
def test_every_epoch_number_a_user_reads_agrees(tmp_path, capsys):
    """Keras' convention: the progress line, the stop message, History, checkpoints: all count from 1."""
    x, y = problem()
    model = small_model()
    stop = nn.EarlyStopping(monitor="val_score", patience=1)
    ckpt = nn.ModelCheckpoint(str(tmp_path / "ckpt-{epoch}.npz"), verbose=1)
    h = nn.fit(model, nn.MSELoss(), nn.optim.SGD(model.parameters(), lr=0.01), x[:64], y[:64], epochs=10,
               batch_size=64, validation_data=(x[64:], y[64:]), callbacks=[stop, ckpt], verbose=2, rng=0,
               metrics={"score": scripted([3.0, 2.0, 2.5, 2.4])})
    out, err = capsys.readouterr()
    shown = [int(m) for m in re.findall(r"^epoch (\d+)/10 - ", out, re.M)]
    saved = [int(re.search(r"ckpt-(\d+)\.npz", p).group(1)) for p in ckpt.saved]
    logged = [int(m) for m in re.findall(r"ModelCheckpoint: saved \S+ \(epoch (\d+)\)", err)]
    assert shown == h.epoch == saved == logged == [1, 2, 3]
    assert h.stopped_epoch == stop.stopped_epoch == 3 and stop.best_epoch == 2
    assert h.stop_reason.endswith("(best 2 at epoch 2); stopped at epoch 3")
    assert nn.load(ckpt.saved[-1], small_model())["epoch"] == 3  # = initial_epoch to resume after epoch 3
