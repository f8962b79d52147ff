"""The fit loop, batches, History and its plot, determinism, bad input, the demo's new options."""

import re
import sys

import numpy as np
import pytest

import nanonet as nn
from nanonet import demo
from nanonet.data import batches
from nanonet.datasets import make_regression


def problem(n=96, seed=0):
    x, y, xt, yt = make_regression(n_train=n, n_test=32, n_features=4, rng=seed)
    return x, y, xt, yt


def small_model(seed=0):
    return nn.Sequential(nn.Linear(4, 8, rng=seed), nn.ReLU(), nn.Linear(8, 1, rng=seed + 1))


def train(seed=0, epochs=4, opt_cls=nn.optim.Adam, **kwargs):
    x, y, _, _ = problem()
    model = small_model()
    opt = opt_cls(model.parameters(), lr=0.01)
    kwargs.setdefault("batch_size", 16)
    history = nn.fit(model, nn.MSELoss(), opt, x, y, epochs=epochs, verbose=0, rng=seed, **kwargs)
    return model, opt, history


# -- batches --------------------------------------------------------------------------
def test_batches_cover_every_row_once_with_a_smaller_last_batch():
    x = np.arange(22.0).reshape(11, 2)
    y = np.arange(11.0).reshape(11, 1)
    got = list(batches(x, y, batch_size=4, rng=0))
    assert [len(b[0]) for b in got] == [4, 4, 3]
    rows = np.concatenate([b[1] for b in got]).ravel()
    assert sorted(rows.tolist()) == list(range(11)) and rows.tolist() != list(range(11))
    for xb, yb in got:  # x and y stay paired
        np.testing.assert_array_equal(xb[:, 0], 2 * yb[:, 0])
    assert [len(b[0]) for b in batches(x, y, 4, rng=0, drop_last=True)] == [4, 4]
    assert [len(b[0]) for b in batches(x, y, 50, shuffle=False)] == [11]
    ordered = np.concatenate([yb for _, yb in batches(x, y, 4, shuffle=False)]).ravel()
    assert ordered.tolist() == list(range(11))


def test_batches_are_deterministic_per_seed():
    x, y, _, _ = problem()
    a = [yb for _, yb in batches(x, y, 10, rng=3)]
    b = [yb for _, yb in batches(x, y, 10, rng=3)]
    c = [yb for _, yb in batches(x, y, 10, rng=4)]
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    assert not all(np.array_equal(u, v) for u, v in zip(a, c))


@pytest.mark.parametrize("args, error, match", [
    ((np.ones((4, 2)), np.ones((4, 1)), 0), ValueError, r"batches expected batch_size to be an int >= 1, got 0"),
    ((np.ones((4, 2)), np.ones((3, 1)), 2), ValueError, r"same number of samples, got 4 and 3"),
    ((np.ones((0, 2)), np.ones((0, 1)), 2), ValueError, r"empty data"),
    (([[1.0]], np.ones((1, 1)), 2), TypeError, r"expected x to be a numpy.ndarray, got list"),
])
def test_batches_bad_input(args, error, match):
    with pytest.raises(error, match=match):
        list(batches(*args))


# -- fit ------------------------------------------------------------------------------
def test_fit_reduces_the_loss_and_records_history():
    model, _, history = train(epochs=15, validation_split=0.25)
    loss, val = history.history["loss"], history.history["val_loss"]
    assert list(history.history) == ["loss", "val_loss"] and len(loss) == len(val) == 15
    assert history.epoch == list(range(1, 16))  # epochs count from 1, as in the progress line
    assert loss[-1] < loss[0] / 2 and val[-1] < val[0]
    assert all(isinstance(v, float) for v in loss)


def test_same_seed_gives_bit_identical_history_and_weights():
    m1, _, h1 = train(seed=7, validation_split=0.2)
    m2, _, h2 = train(seed=7, validation_split=0.2)
    m3, _, h3 = train(seed=8, validation_split=0.2)
    assert h1.history == h2.history
    assert all(np.array_equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values()))
    assert h1.history != h3.history


def test_epoch_loss_is_the_size_weighted_mean_of_batch_losses():
    seen = []
    cb = nn.LambdaCallback(on_batch_end=lambda b, logs: seen.append((logs["loss"], logs["size"])))
    _, _, history = train(epochs=1, batch_size=40, callbacks=[cb])  # 96 rows: 40, 40, 16
    assert [s for _, s in seen] == [40, 40, 16]
    expected = sum(l * s for l, s in seen) / 96
    assert history.history["loss"][0] == pytest.approx(expected, rel=1e-15)


def test_validation_split_holds_out_the_last_rows_and_val_loss_is_eval_loss():
    x, y, _, _ = problem()
    model = small_model()
    opt = nn.optim.SGD(model.parameters(), lr=0.01)
    h = nn.fit(model, nn.MSELoss(), opt, x, y, epochs=2, batch_size=32, validation_split=0.25, verbose=0, rng=0)
    expected = nn.evaluate(model, nn.MSELoss(), x[72:], y[72:])["loss"]
    assert h.history["val_loss"][-1] == pytest.approx(expected, rel=1e-12)
    model2 = small_model()
    h2 = nn.fit(model2, nn.MSELoss(), nn.optim.SGD(model2.parameters(), lr=0.01), x[:72], y[:72], epochs=1,
                batch_size=32, validation_data=(x[72:], y[72:]), verbose=0, rng=0)
    assert list(h2.history) == ["loss", "val_loss"]


class ModeProbe(nn.Module):
    """Identity that records the training flag it saw."""

    def __init__(self):
        self.seen = []

    def forward(self, x):
        self.seen.append(self.training)
        return x

    def backward(self, grad_out):
        return grad_out


def test_fit_trains_in_train_mode_validates_in_eval_mode_and_restores_the_mode():
    probe = ModeProbe()
    model = nn.Sequential(nn.Linear(4, 1, rng=0), probe)
    x, y, _, _ = problem()
    model.eval()
    nn.fit(model, nn.MSELoss(), nn.optim.SGD(model.parameters(), lr=0.01), x, y, epochs=2, batch_size=48,
           validation_split=0.5, verbose=0, rng=0)
    # per epoch: one training batch (48 rows), then one validation batch
    assert probe.seen == [True, False, True, False]
    assert model.training is False


def test_metrics_are_logged_for_training_and_validation():
    def mae(pred, target):
        return float(np.abs(pred - target).mean())

    _, _, h = train(epochs=2, validation_split=0.25, metrics=[mae])
    assert list(h.history) == ["loss", "mae", "val_loss", "val_mae"]
    assert all(v > 0 for v in h.history["val_mae"])


def test_clip_grad_norm_in_fit_keeps_a_huge_learning_rate_finite():
    x, y, _, _ = problem()
    model = small_model()
    opt = nn.optim.SGD(model.parameters(), lr=0.5)
    h = nn.fit(model, nn.MSELoss(), opt, x, y, epochs=3, batch_size=16, clip_grad_norm=0.1, verbose=0, rng=0)
    assert np.isfinite(h.history["loss"]).all()
    with pytest.raises(ValueError, match="fit expected clip_grad_norm > 0, got 0"):
        nn.fit(model, nn.MSELoss(), opt, x, y, epochs=1, batch_size=16, clip_grad_norm=0, verbose=0)


def test_initial_epoch_continues_the_epoch_count():
    _, _, h = train(epochs=5, initial_epoch=3)
    assert h.epoch == [4, 5]  # 3 epochs were done: this run is epochs 4 and 5


@pytest.mark.parametrize("kwargs, match", [
    (dict(batch_size=0), r"fit expected batch_size to be an int >= 1, got 0"),
    (dict(y=np.ones((95, 1))), r"fit expected x and y to have the same number of samples, got 96 and 95"),
    (dict(x=np.ones((0, 4)), y=np.ones((0, 1))), r"fit got empty data"),
    (dict(validation_split=0.999), r"validation_split=0.999 leaves no training data \(96 samples -> 0 for training"),
    (dict(validation_split=1.5), r"validation_split in \(0, 1\), got 1.5"),
    (dict(validation_split=0.2, validation_data=(np.ones((2, 4)), np.ones((2, 1)))), r"not both"),
    (dict(epochs=0), r"epochs to be an int >= 1, got 0"),
    (dict(initial_epoch=9), r"initial_epoch <= epochs"),
    (dict(verbose=3), r"verbose to be 0, 1 or 2"),
])
def test_fit_bad_input_is_a_clear_error_before_training(kwargs, match):
    x, y, _, _ = problem()
    model = small_model()
    before = model.state_dict()
    args = dict(x=x, y=y, epochs=2, batch_size=16, verbose=0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        nn.fit(model, nn.MSELoss(), nn.optim.SGD(model.parameters(), lr=0.1), args.pop("x"), args.pop("y"), **args)
    assert all(np.array_equal(before[k], v) for k, v in model.state_dict().items())


def test_fit_rejects_non_finite_data_and_wrong_types():
    x, y, _, _ = problem()
    x = x.copy()
    x[5, 2] = np.nan
    model = small_model()
    with pytest.raises(FloatingPointError, match=r"fit got a non-finite x: 1 NaN/Inf value\(s\), the first at index \(5, 2\)"):
        nn.fit(model, nn.MSELoss(), nn.optim.SGD(model.parameters(), lr=0.1), x, y, epochs=1, batch_size=8)
    with pytest.raises(TypeError, match="fit expected an optimizer"):
        nn.fit(model, nn.MSELoss(), None, x, y, epochs=1, batch_size=8)
    with pytest.raises(TypeError, match="fit expected callbacks with at least one of"):
        nn.fit(model, nn.MSELoss(), nn.optim.SGD(model.parameters(), lr=0.1), problem()[0], y, epochs=1,
               batch_size=8, callbacks=[object()])


def test_verbose_0_is_silent_and_verbose_2_prints_a_line_per_epoch(capsys):
    train(epochs=2)
    assert capsys.readouterr() == ("", "")
    x, y, _, _ = problem()
    model = small_model()
    nn.fit(model, nn.MSELoss(), nn.optim.SGD(model.parameters(), lr=0.01), x, y, epochs=2, batch_size=32,
           verbose=2, rng=0)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].startswith("epoch 1/2 - loss ") and lines[1].startswith("epoch 2/2")


# -- History.plot -------------------------------------------------------------------
def test_history_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    _, _, h = train(epochs=3, validation_split=0.25)
    path = tmp_path / "loss.png"
    fig = h.plot(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 1000
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert labels == ["training loss", "validation loss"]
    np.testing.assert_array_equal(fig.axes[0].get_lines()[0].get_ydata(), h.history["loss"])


def test_history_plot_without_matplotlib_names_the_plot_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    _, _, h = train(epochs=1)
    with pytest.raises(ImportError, match=r"`plot` extra: pip install \"\.\[plot\]\" \(in the nanonet checkout\)"):
        h.plot(tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


# -- the demo's new options -----------------------------------------------------------
def test_demo_with_adam_trains_and_keeps_its_output():
    lines = []
    report, losses, test_loss = demo.run(epochs=30, seed=0, optimizer="adam", out=lines.append)
    text = "\n".join(lines)
    assert report.ok and "optimizer: Adam(lr=0.003" in text and "epoch 30/30: loss is" in text
    assert losses[-1] < losses[0] / 5 and "and test loss is" in text


def test_demo_sgd_is_the_seed_gradient_descent():
    """Full batch, no shuffling, p -= lr * grad: the same numbers as the hand-written loop."""
    _, losses, _ = demo.run(epochs=5, seed=2, out=lambda s: None)
    rng = np.random.default_rng(2)
    x, y, _, _ = make_regression(rng=rng)
    model = demo.build_model(10, (64, 64), rng)
    loss_fn = nn.MSELoss()
    nn.check_gradients(model, x, y, loss_fn=loss_fn, rng=rng)
    expected = []
    for _ in range(5):
        model.zero_grad()
        expected.append(loss_fn(model(x), y))
        model.backward(loss_fn.backward())
        for p in model.parameters():
            p.value -= 0.03 * p.grad
    assert losses == expected


def test_demo_plot_option(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    path = tmp_path / "loss.png"
    from nanonet import cli

    assert cli.main(["demo", "--epochs", "3", "--optimizer", "sgd", "--plot", str(path)]) == 0
    assert path.read_bytes()[:4] == b"\x89PNG" and f"loss curve saved to {path}" in capsys.readouterr().out


def test_demo_plot_without_matplotlib_is_a_clear_exit(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    from nanonet import cli

    assert cli.main(["demo", "--epochs", "2", "--plot", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert re.search(r"--plot needs matplotlib.*pip install \"\.\[plot\]\"", err) and len(err.splitlines()) == 1
