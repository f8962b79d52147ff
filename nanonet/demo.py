"""``nanonet demo``: the seed's whole exercise in a few lines.

Build the 3-layer ReLU regression network, check every gradient (each row
named, PASS or FAIL), train it with full-batch gradient descent for 100
epochs printing the loss, and report the test loss.
"""

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


def run(epochs=100, seed=0, hidden=(64, 64), lr=0.05, out=print):
    """Run the demo; returns ``(report, losses, test_loss)``."""
    rng = np.random.default_rng(seed)
    x, y, x_test, y_test = make_regression(rng=rng)
    model = build_model(x.shape[1], hidden, rng)
    loss_fn = nn.MSELoss()
    out(f"data: {x.shape[0]} training and {x_test.shape[0]} test samples, {x.shape[1]} features")
    out(f"model:\n{model}")

    report = nn.check_gradients(model, x, y, loss_fn=loss_fn, rng=rng)
    out(str(report))

    losses = []
    params = model.parameters()
    for epoch in range(epochs):
        model.zero_grad()
        loss = loss_fn(model(x), y)
        model.backward(loss_fn.backward())
        for p in params:
            p.value -= lr * p.grad
        losses.append(loss)
        out(f"{epoch}: loss is {loss}")
    test_loss = loss_fn(model(x_test), y_test)
    out(f"Test loss is {test_loss}")
    return report, losses, test_loss


def add_arguments(parser):
    parser.add_argument("--epochs", type=int, default=100, help="training epochs (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="seed for data, weights and checks (default 0)")
    parser.add_argument("--hidden", default="64,64", help="hidden widths, comma separated (default 64,64)")
    parser.add_argument("--lr", type=float, default=0.05, help="learning rate (default 0.05)")


def main(args):
    try:
        hidden = tuple(int(h) for h in args.hidden.split(",") if h.strip())
    except ValueError:
        raise SystemExit(f"nanonet demo: --hidden expects comma-separated ints, got {args.hidden!r}")
    if args.epochs < 1:
        raise SystemExit(f"nanonet demo: --epochs must be at least 1, got {args.epochs}")
    if not args.lr > 0:
        raise SystemExit(f"nanonet demo: --lr must be positive, got {args.lr}")
    report, _, _ = run(epochs=args.epochs, seed=args.seed, hidden=hidden, lr=args.lr)
    return 0 if report.ok else 1
