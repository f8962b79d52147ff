"""``nanonet demo``: the seed's whole exercise in a few lines.

Build the 3-layer ReLU regression network, check every gradient (each row
named, PASS or FAIL), train it with ``nn.fit`` on full batches for 100 epochs
(plain gradient descent by default, or Adam) printing the loss, and report
the test loss. ``--plot loss.png`` saves the loss curve (needs matplotlib).
"""

import importlib

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


# other demos: ``nanonet demo <name> [options]``, each a module with add_arguments(parser) and main(args)
DEMOS = {
    "text": ("nanonet.demo_text", "a character-level language model of Shakespeare (a Transformer or an LSTM)"),
}


def add_arguments(parser):
    sub = parser.add_subparsers(dest="demo", metavar="demo",
                                help="another demo (without one: the regression network of the seed)")
    for name, (module_name, help_text) in DEMOS.items():
        module = importlib.import_module(module_name)
        demo_parser = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(demo_parser)
        demo_parser.set_defaults(_demo_main=module.main)
    parser.add_argument("--epochs", type=int, default=100, help="training epochs (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="seed for data, weights and checks (default 0)")
    parser.add_argument("--hidden", default="64,64", help="hidden widths, comma separated (default 64,64)")
    parser.add_argument("--lr", type=float, default=None,
                        help="learning rate (default 0.05 for sgd, 0.01 for adam)")
    parser.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="sgd",
                        help="sgd (plain gradient descent, the seed's) or adam (default sgd)")
    parser.add_argument("--plot", metavar="PATH", default=None,
                        help="save the loss curve as a PNG at PATH (needs matplotlib: pip install nanonet[plot])")


def main(args):
    if getattr(args, "_demo_main", None) is not None:
        return args._demo_main(args)
    try:
        hidden = tuple(int(h) for h in args.hidden.split(",") if h.strip())
    except ValueError:
        raise SystemExit(f"nanonet demo: --hidden expects comma-separated ints, got {args.hidden!r}")
    if args.epochs < 1:
        raise SystemExit(f"nanonet demo: --epochs must be at least 1, got {args.epochs}")
    if args.lr is not None and not args.lr > 0:
        raise SystemExit(f"nanonet demo: --lr must be positive, got {args.lr}")
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise SystemExit("nanonet demo: --plot needs matplotlib, nanonet's `plot` extra: pip install nanonet[plot]")
    report, _, _ = run(epochs=args.epochs, seed=args.seed, hidden=hidden, lr=args.lr, optimizer=args.optimizer,
                       plot=args.plot)
    return 0 if report.ok else 1
