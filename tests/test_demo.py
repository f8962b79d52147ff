"""The main job: ``nanonet demo`` reproduces the seed's exercise."""

import os
import subprocess
import sys

import numpy as np

from nanonet import cli, demo
from nanonet.datasets import make_regression


def test_demo_checks_every_row_and_trains():
    lines = []
    report, losses, test_loss = demo.run(epochs=100, seed=0, out=lines.append)
    assert report.ok
    text = "\n".join(lines)
    for name in ("input", "0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"):
        assert any(line.startswith(name + " ") and line.endswith("PASS") for line in text.splitlines()), name
    assert len(losses) == 100
    assert losses[0] / losses[-1] >= 10
    assert np.isfinite(test_loss) and test_loss < losses[0]
    assert "99: loss is" in text and "Test loss is" in text


def test_demo_is_deterministic():
    a = demo.run(epochs=5, seed=3, out=lambda s: None)[1]
    b = demo.run(epochs=5, seed=3, out=lambda s: None)[1]
    assert a == b
    assert a != demo.run(epochs=5, seed=4, out=lambda s: None)[1]


def test_cli_options(capsys):
    assert cli.main(["demo", "--epochs", "3", "--seed", "1", "--hidden", "8", "--lr", "0.01"]) == 0
    out = capsys.readouterr().out
    assert "Linear(10 -> 8)" in out and "2: loss is" in out and "3: loss is" not in out


def test_python_dash_m_entry_point():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-m", "nanonet", "demo", "--epochs", "2"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "all rows passed" in done.stdout and "1: loss is" in done.stdout


def test_dataset_is_deterministic_and_documented_shape():
    a, b = make_regression(rng=0), make_regression(rng=0)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    x, y, _, _ = a
    assert x.shape == (500, 10) and y.shape == (500, 1)
