"""``nanonet demo text``: a reduced run trains and beats the unigram baseline; cached generation is exact."""

import re

import numpy as np
import pytest

from nanonet import cli, demo_text
from nanonet.datasets import load_text


def test_shipped_text_loads_without_download():
    text = load_text()
    assert len(text) == 249_547 and text.startswith("First Citizen:") and len(set(text)) == 62
    with pytest.raises(ValueError, match="load_text expected a name in"):
        load_text("moby-dick")


@pytest.mark.parametrize("model", ["transformer", "lstm"])
def test_reduced_run_beats_the_unigram_baseline(model):
    lines = []
    report, history, val_bits, baseline = demo_text.run(
        model, epochs=1, context=32, batch_size=16, train_chars=30_000, seed=0, length=40, verbose=0,
        out=lines.append)
    text = "\n".join(lines)
    assert report.ok and "all rows passed" in text
    assert all(row.endswith("PASS") for row in text.splitlines() if row.startswith(("tok.", "head.")))
    assert baseline > 4.5 and val_bits < baseline - 0.8, (val_bits, baseline)
    assert "epoch 1/1: training" in text and "bits per character" in text
    assert "sample (temperature 0.8, seed 0):\nROMEO:" in text


@pytest.mark.parametrize("kind", ["transformer", "lstm"])
def test_cached_generation_equals_the_full_forward(kind):
    net = demo_text.build(kind, 11, 6, seed=0)
    net.to(np.float64).eval()
    tokens = np.random.default_rng(0).integers(0, 11, size=(2, 10))
    begin = 0
    state, logits = net.start(tokens[:, :3])
    for t in range(3, 10):
        np.testing.assert_allclose(logits, net(tokens[:, begin:t])[:, -1], rtol=1e-10, atol=1e-12)
        if kind == "transformer" and t - begin == net.context:  # full: it re-primes on the last half
            begin = t + 1 - net.context // 2
        state, logits = net.advance(state, tokens[:, t], tokens[:, :t + 1])
    assert kind == "lstm" or begin > 0


def test_sampling_is_seeded_and_starts_with_the_prompt():
    net = demo_text.build("lstm", 62, 16, seed=0)
    vocab = demo_text.Vocabulary(load_text())
    a = demo_text.sample(net, vocab, "ROMEO:", 30, 0.8, rng=1)
    assert a == demo_text.sample(net, vocab, "ROMEO:", 30, 0.8, rng=1)
    assert a.startswith("ROMEO:") and len(a) == 36 and a != demo_text.sample(net, vocab, "ROMEO:", 30, 0.8, rng=2)


@pytest.mark.parametrize("argv, message", [
    (["--prompt", "ROMEO€"], r"--prompt: characters \['€'\] are not in the vocabulary"),
    (["--temperature", "0"], "--temperature must be a positive number"),
    (["--lr", "nan"], "--lr must be a positive number"),
    (["--epochs", "0"], "--epochs must be at least 1"),
    (["--context", "100000"], r"--context must be in \[2, 2048\]"),
    (["--prompt", ""], "--prompt must not be empty"),
    (["--seed", "-1"], "--seed must be an int >= 0"),
])
def test_cli_refuses_bad_options_without_a_traceback(argv, message, capsys):
    assert cli.main(["demo", "text", *argv]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err) and len(err.splitlines()) == 1, err
