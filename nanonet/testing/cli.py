"""``nanonet gradcheck my_pkg.layers:make_layer --input-shape 8,16``: the conformance suite from the shell.

Imports ``make_layer`` (a layer or loss instance, or a factory returning
one), runs ``check_layer`` on it, prints the report, and exits 0 when every
check passed, 1 when one failed, 2 when the layer could not be loaded: the
module cannot be found or raises while imported, the name is missing, is
neither a layer nor callable, needs arguments, raises when called or returns
something else. Each of those is one line on stderr, never a traceback.
"""

import importlib
import sys

from .._checks import one_line
from . import check_layer
from .arguments import source_problem
from .checks import ALL_CHECKS, LayerSpec


class LoadError(Exception):
    """The target could not be turned into a layer; the message says why, on one line."""


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
    """Import ``module:attribute`` (the current directory is importable); ``LoadError`` says what went wrong."""
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise LoadError(f"expected MODULE:NAME, e.g. my_pkg.layers:make_layer, got {target!r}")
    if "" not in sys.path:
        sys.path.insert(0, "")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise LoadError(f"there is no module {module_name!r} (run from the folder that holds it, or install "
                            f"it)") from None
        raise LoadError(f"importing {module_name!r} failed: ModuleNotFoundError: {exc}") from None
    except BaseException as exc:  # SyntaxError, an error raised at import, even SystemExit
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise LoadError(f"importing {module_name!r} raised {type(exc).__name__}: {exc}") from None
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise LoadError(f"{module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


def resolve(target, obj):
    """A layer or loss instance, or a zero-argument factory; ``LoadError`` otherwise."""
    problem = source_problem(obj, repr(target))
    if problem:
        raise LoadError(problem)
    return obj


def main(args):
    try:
        shape = _parse_shape(args.input_shape)
        if args.seed < 0:
            raise ValueError(f"--seed expected an int >= 0, got {args.seed}")
    except ValueError as exc:
        print(f"nanonet gradcheck: {exc}", file=sys.stderr)
        return 2
    try:
        layer = resolve(args.target, load(args.target))
        spec = LayerSpec(layer, shape, rng=args.seed, expected_failures=args.expected_failure)
    except LoadError as exc:
        print(f"nanonet gradcheck: cannot load {args.target!r}: {one_line(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:  # the factory raised, returned no layer, or an argument is wrong
        print(f"nanonet gradcheck: cannot use {args.target!r}: {type(exc).__name__}: {one_line(exc)}",
              file=sys.stderr)
        return 2
    report = check_layer(spec, shape, raise_on_failure=False)
    print(report)
    return 0 if report.ok else 1
