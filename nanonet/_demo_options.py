"""The option checks the ``nanonet demo`` commands share: one line each, a ``ValueError`` the command prints.

Each demo's ``check_arguments(args)`` calls these for the options it has;
``main`` prints the message in one line and exits with status 2.
"""

import math

from ._extras import missing


def at_least_one(name, value):
    if value < 1:
        raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {value}")


def learning_rate(value):
    """``None`` (the demo's default) or a finite number > 0."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise ValueError(f"--lr must be a finite number > 0, got {value}")


def seed(value):
    if value < 0:
        raise ValueError(f"--seed must be an int >= 0, got {value}")


def plot_possible(path):
    """``--plot PATH`` needs matplotlib (the ``plot`` extra)."""
    if path:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise ValueError(missing("--plot", "matplotlib", "plot")) from None
