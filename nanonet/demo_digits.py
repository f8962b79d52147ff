"""``nanonet demo digits``: a small CNN on the 8x8 handwritten digits, checked and trained in seconds.

Loads the digits shipped with nanonet (``nanonet.datasets.load_digits``),
splits them once, stratified by class with a fixed seed (70 % train, 10 %
validation, 20 % test), prints the model summary and a gradient-check table
of the whole CNN (every row must PASS), trains with Adam printing the loss
and the validation accuracy per epoch, and reports the test accuracy.
``--plot PATH`` saves the loss and accuracy curves (needs matplotlib).
"""

import sys
import time

import numpy as np

import nanonet as nn
from nanonet import _demo_options as options
from nanonet._extras import install_hint
from nanonet._rng import as_generator
from nanonet.datasets import load_digits

SPLIT_SEED = 0  # the split is fixed whatever --seed is: --seed moves the weights and the batches
FRACTIONS = (0.7, 0.1, 0.2)  # train, validation, test


def stratified_split(labels, fractions=FRACTIONS, rng=SPLIT_SEED):
    """Index arrays ``(train, val, test)``: each class divided in ``fractions``, after a seeded shuffle.

    >>> train, val, test = stratified_split(np.repeat(np.arange(2), 10))
    >>> len(train), len(val), len(test)
    (14, 2, 4)
    """
    gen = as_generator(rng)
    parts = ([], [], [])
    for label in np.unique(labels):
        members = gen.permutation(np.flatnonzero(labels == label))
        cut_train = int(round(fractions[0] * len(members)))
        cut_val = cut_train + int(round(fractions[1] * len(members)))
        for part, chunk in zip(parts, (members[:cut_train], members[cut_train:cut_val], members[cut_val:])):
            part.append(chunk)
    return tuple(np.sort(np.concatenate(part)) for part in parts)


def build_cnn(rng=0, dtype=np.float64):
    """``1x8x8 -> conv 16 -> pool -> conv 32 -> pool -> 64 -> 10`` (13.7k parameters)."""
    gen = as_generator(rng)
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, rng=gen, dtype=dtype), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1, rng=gen, dtype=dtype), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 2 * 2, 64, rng=gen, dtype=dtype), nn.ReLU(),
        nn.Linear(64, 10, rng=gen, dtype=dtype),
    )


def accuracy(logits, labels):
    """The fraction of rows whose largest logit is the label."""
    return float(np.mean(np.argmax(logits, axis=1) == labels))


def predict_accuracy(model, x, labels, batch_size=256):
    model.eval()
    logits = np.concatenate([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])
    return accuracy(logits, labels)


def run(epochs=12, seed=0, lr=3e-3, batch_size=32, plot=None, limit=None, out=print):
    """Run the demo; returns ``(report, history, test_accuracy)``.

    ``limit`` keeps only the first ``limit`` training rows (a quick run for tests).
    """
    start = time.perf_counter()
    images, labels = load_digits()
    train, val, test = stratified_split(labels)
    if limit is not None:
        train = train[:limit]
    x, y = images[train], labels[train]
    out(f"data: {len(train)} training, {len(val)} validation and {len(test)} test images of 1x8x8 "
        f"(UCI digits, stratified split, seed {SPLIT_SEED})")
    model = build_cnn(rng=seed)
    loss_fn = nn.CrossEntropyLoss()
    out("model:")
    model.summary(input_shape=(1, 8, 8), print_fn=out)

    # The blank margins of the digits are exact zeros: with zero biases they sit exactly on ReLU's kink
    # and tie in every pooling window, where only subgradients can be checked. A little noise moves
    # the checked point off the kinks, so every row is a real finite-difference comparison.
    probe = x[:8] + 0.01 * as_generator(seed).standard_normal(x[:8].shape)
    out("gradient check of the whole CNN on 8 training images plus N(0, 0.01^2) noise:")
    report = nn.check_gradients(model, probe, y[:8], loss_fn=loss_fn, rng=seed)
    out(str(report))

    opt = nn.optim.Adam(model.parameters(), lr=lr)
    out(f"optimizer: {opt!r}, batch size {batch_size}")

    def on_epoch_end(epoch, logs):
        out(f"epoch {epoch + 1:2d}: loss {logs['loss']:.4f}, val_loss {logs['val_loss']:.4f}, "
            f"val_accuracy {logs['val_accuracy']:.4f}")

    history = nn.fit(model, loss_fn, opt, x, y, epochs=epochs, batch_size=batch_size,
                     validation_data=(images[val], labels[val]), metrics={"accuracy": accuracy},
                     callbacks=[nn.LambdaCallback(on_epoch_end=on_epoch_end)], verbose=0, rng=seed)
    test_accuracy = predict_accuracy(model, images[test], labels[test])
    out(f"Test accuracy is {test_accuracy:.4f} ({int(round(test_accuracy * len(test)))}/{len(test)} images), "
        f"in {time.perf_counter() - start:.1f} s")
    if plot:
        _plot(history, plot)
        out(f"curves saved to {plot}")
    return report, history, test_accuracy


def _plot(history, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [e + 1 for e in history.epoch]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(epochs, history.history["loss"], label="training loss")
    left.plot(epochs, history.history["val_loss"], "--", label="validation loss")
    left.set_yscale("log")
    left.set_xlabel("epoch")
    left.legend()
    right.plot(epochs, history.history["accuracy"], label="training accuracy")
    right.plot(epochs, history.history["val_accuracy"], "--", label="validation accuracy")
    right.set_xlabel("epoch")
    right.legend()
    fig.suptitle("nanonet demo digits: a CNN on the 8x8 UCI digits")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def add_arguments(parser):
    """The options of ``nanonet demo digits`` (the CNN is fixed and trains with Adam)."""
    parser.add_argument("--epochs", type=int, default=12, help="training epochs (default 12)")
    parser.add_argument("--seed", type=int, default=0, help="seed for the split, weights and batches (default 0)")
    parser.add_argument("--lr", type=float, default=3e-3, help="Adam's learning rate (default 3e-3)")
    parser.add_argument("--plot", metavar="PATH", default=None,
                        help=f"save the loss and accuracy curves as a PNG at PATH (needs matplotlib: "
                             f"{install_hint('plot')})")


def check_arguments(args):
    """``(epochs, lr)`` after checking every option; ValueError (one line) for a bad one."""
    options.at_least_one("epochs", args.epochs)
    options.learning_rate(args.lr)
    options.seed(args.seed)
    options.plot_possible(args.plot)
    return args.epochs, args.lr


def main(args):
    """``nanonet demo digits``; bad options: one line, exit 2."""
    try:
        epochs, lr = check_arguments(args)
    except ValueError as exc:
        print(f"nanonet demo digits: {exc}", file=sys.stderr)
        return 2
    report, _, _ = run(epochs=epochs, seed=args.seed, lr=lr, plot=args.plot)
    return 0 if report.ok else 1
