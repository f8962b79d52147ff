"""``nanonet demo``: the seed's whole exercise in a few lines.

Build the 3-layer ReLU regression network, check every gradient (each row
named, PASS or FAIL), train it with ``nn.fit`` on full batches for 100 epochs
(plain gradient descent by default, or Adam) printing the loss, and report
the test loss. ``--plot loss.png`` saves the loss curve (needs matplotlib).
"""

import math
import sys

import numpy as np

import nanonet as nn
from nanonet.datasets import make_regression


def build_model(n_features, hidden, rng):
    """``in -> hidden[0] -> ReLU -> ... -> 1`` as a Sequential."""
    layers, width = [], n_features
    for h in hidden:
        layers += [nn.Linear(width, h, rng=rng), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, 1, rng=rng))
    return nn.Sequential(*layers)


OPTIMIZERS = {"sgd": (nn.optim.SGD, 0.05), "adam": (nn.optim.Adam, 0.01)}


def run(epochs=100, seed=0, hidden=(64, 64), lr=None, optimizer="sgd", plot=None, out=print):
    """Run the demo; returns ``(report, losses, test_loss)``.

    ``optimizer`` is ``"sgd"`` (default lr 0.05) or ``"adam"`` (default lr
    0.01); training uses full batches (``batch_size`` = all rows, no
    shuffling), so with SGD it is the seed's plain gradient descent.
    ``plot``: a path for the loss-curve PNG (needs matplotlib).
    """
    cls, default_lr = OPTIMIZERS[optimizer]
    rng = np.random.default_rng(seed)
    x, y, x_test, y_test = make_regression(rng=rng)
    model = build_model(x.shape[1], hidden, rng)
    loss_fn = nn.MSELoss()
    out(f"data: {x.shape[0]} training and {x_test.shape[0]} test samples, {x.shape[1]} features")
    out(f"model:\n{model}")

    report = nn.check_gradients(model, x, y, loss_fn=loss_fn, rng=rng)
    out(str(report))

    opt = cls(model.parameters(), lr=default_lr if lr is None else lr)
    out(f"optimizer: {opt!r}")
    printer = nn.LambdaCallback(on_epoch_end=lambda epoch, logs: out(f"{epoch}: loss is {logs['loss']}"))
    history = nn.fit(model, loss_fn, opt, x, y, epochs=epochs, batch_size=len(x), shuffle=False,
                     callbacks=[printer], verbose=0, rng=rng)
    model.eval()
    test_loss = loss_fn(model(x_test), y_test)
    out(f"Test loss is {test_loss}")
    if plot:
        history.plot(plot, title=f"nanonet demo ({optimizer})")
        out(f"loss curve saved to {plot}")
    return report, history.history["loss"], test_loss


def add_arguments(parser):
    parser.add_argument("--epochs", type=int, default=100, help="training epochs (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="seed for data, weights and checks (default 0)")
    parser.add_argument("--hidden", default="64,64", help="hidden widths, comma separated (default 64,64)")
    parser.add_argument("--lr", type=float, default=None,
                        help="learning rate (default 0.05 for sgd, 0.01 for adam)")
    parser.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="sgd",
                        help="sgd (plain gradient descent, the seed's) or adam (default sgd)")
    parser.add_argument("--plot", metavar="PATH", default=None,
                        help="save the loss curve as a PNG at PATH (needs matplotlib: pip install nanonet[plot])")


def _parse_hidden(text):
    try:
        hidden = tuple(int(h) for h in text.split(",") if h.strip())
    except ValueError:
        hidden = None
    if hidden is None or any(h < 1 for h in hidden):
        raise ValueError(f"--hidden expects comma-separated positive ints (e.g. 64,64), got {text!r}")
    return hidden


def check_arguments(args):
    """The hidden widths, after checking every option; ValueError (one line) for a bad one."""
    hidden = _parse_hidden(args.hidden)
    if args.epochs < 1:
        raise ValueError(f"--epochs must be at least 1, got {args.epochs}")
    if args.lr is not None and not (math.isfinite(args.lr) and args.lr > 0):
        raise ValueError(f"--lr must be a finite number > 0, got {args.lr}")
    if args.seed < 0:
        raise ValueError(f"--seed must be an int >= 0, got {args.seed}")
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise ValueError("--plot needs matplotlib, nanonet's `plot` extra: pip install nanonet[plot]") from None
    return hidden


def main(args):
    try:
        hidden = check_arguments(args)
    except ValueError as exc:
        print(f"nanonet demo: {exc}", file=sys.stderr)
        return 2
    report, _, _ = run(epochs=args.epochs, seed=args.seed, hidden=hidden, lr=args.lr, optimizer=args.optimizer,
                       plot=args.plot)
    return 0 if report.ok else 1
