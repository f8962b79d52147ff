"""``nanonet gradcheck my_pkg.layers:make_layer --input-shape 8,16``: the conformance suite from the shell.

Imports ``make_layer`` (a layer or loss instance, or a factory returning
one), runs ``check_layer`` on it, prints the report, and exits 0 when every
check passed, 1 when one failed, 2 when the layer could not be loaded.
"""

import importlib
import sys

from . import check_layer
from .checks import ALL_CHECKS


def add_arguments(parser):
    parser.add_argument("target", metavar="MODULE:NAME",
                        help="where the layer is: a module path and an attribute, e.g. my_pkg.layers:make_layer")
    parser.add_argument("--input-shape", required=True,
                        help="the input (for a loss: pred) shape, comma-separated, e.g. 8,16")
    parser.add_argument("--seed", type=int, default=0, help="seed for the random inputs (default 0)")
    parser.add_argument("--expected-failure", action="append", default=[], choices=ALL_CHECKS, metavar="CHECK",
                        help="a check the layer is known to fail (repeatable)")


def _parse_shape(text):
    try:
        shape = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        shape = ()
    if not shape or any(d < 1 for d in shape):
        raise ValueError(f"--input-shape expected positive integers separated by commas, e.g. 8,16; got {text!r}")
    return shape


def load(target):
    """Import ``module:attribute`` (the current directory is importable)."""
    if ":" not in target:
        raise ValueError(f"expected MODULE:NAME, e.g. my_pkg.layers:make_layer, got {target!r}")
    module_name, attr = target.split(":", 1)
    if "" not in sys.path:
        sys.path.insert(0, "")
    module = importlib.import_module(module_name)
    obj = module
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def main(args):
    try:
        shape = _parse_shape(args.input_shape)
        layer = load(args.target)
    except (ImportError, AttributeError, ValueError) as exc:
        print(f"nanonet gradcheck: cannot load {args.target!r}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    report = check_layer(layer, shape, rng=args.seed, expected_failures=args.expected_failure,
                         raise_on_failure=False)
    print(report)
    return 0 if report.ok else 1
