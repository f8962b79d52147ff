"""The shipped digits data and ``nanonet demo digits`` (a reduced run; the full one is in docs/conv.md)."""

import numpy as np
import pytest

from nanonet import cli, demo_digits
from nanonet.datasets import load_digits


def test_digits_are_shipped_and_load_without_scikit_learn(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "sklearn", None)  # importing sklearn would fail
    images, labels = load_digits()
    assert images.shape == (1797, 1, 8, 8) and images.dtype == np.float64
    assert labels.shape == (1797,) and labels.dtype == np.int64
    assert images.min() == 0.0 and images.max() == 1.0
    assert np.bincount(labels).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    assert load_digits(dtype=np.float32)[0].dtype == np.float32


def test_digits_match_scikit_learn_where_it_is_installed():
    datasets = pytest.importorskip("sklearn.datasets")
    theirs = datasets.load_digits()
    images, labels = load_digits()
    np.testing.assert_array_equal(images[:, 0] * 16, theirs.images)
    np.testing.assert_array_equal(labels, theirs.target)


def test_the_split_is_fixed_stratified_and_disjoint():
    labels = load_digits()[1]
    train, val, test = demo_digits.stratified_split(labels)
    assert len(set(train) | set(val) | set(test)) == len(labels) == len(train) + len(val) + len(test)
    for part, fraction in zip((train, val, test), demo_digits.FRACTIONS):
        counts = np.bincount(labels[part], minlength=10)
        np.testing.assert_allclose(counts / np.bincount(labels), fraction, atol=0.01)
    again = demo_digits.stratified_split(labels)
    assert all(np.array_equal(a, b) for a, b in zip((train, val, test), again))


def test_a_short_digits_run_checks_every_row_and_learns():
    lines = []
    report, history, accuracy = demo_digits.run(epochs=2, limit=400, out=lines.append)
    text = "\n".join(lines)
    assert report.ok and all(row.passed and row.kinks == 0 for row in report.rows)
    assert [row.name for row in report.rows] == ["input", "0.weight", "0.bias", "3.weight", "3.bias",
                                                 "7.weight", "7.bias", "9.weight", "9.bias"]
    assert "0 (Conv2d)     (None, 16, 8, 8)  160" in text and "Total params: 13,706" in text
    assert "epoch  2: loss" in text and "val_accuracy" in text and "Test accuracy is" in text
    assert history.history["loss"][1] < history.history["loss"][0]
    assert accuracy > 0.5  # 2 epochs on 400 images; the full run reaches >= 98 % (docs/conv.md)


def test_cli_demo_digits_options(capsys):
    assert cli.main(["demo", "digits", "--epochs", "1", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "all rows passed" in out and "epoch  1:" in out and "epoch  2:" not in out
    for argv in (["--optimizer", "sgd"], ["--hidden", "8"]):  # the regression demo's options
        with pytest.raises(SystemExit) as info:
            cli.main(["demo", "digits", *argv])
        err = capsys.readouterr().err
        assert info.value.code == 2 and "unrecognized arguments" in err and len(err.splitlines()) == 1, err
    for argv, fragment in ((["--lr", "nan"], "--lr must be a finite number > 0"),
                           (["--seed", "-1"], "--seed must be an int >= 0")):
        assert cli.main(["demo", "digits", *argv]) == 2
        err = capsys.readouterr().err
        assert fragment in err and len(err.splitlines()) == 1, err


def test_plot_saves_the_curves(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "digits.png"
    demo_digits.run(epochs=1, limit=100, plot=str(path), out=lambda s: None)
    assert path.stat().st_size > 1000
