"""The ``nanonet`` command line: ``nanonet <command> [options]``.

Each command lives in its own module, which provides ``add_arguments(parser)``
and ``main(args) -> exit code``. A command whose module is absent is not
offered.

The command line never prints a traceback: a usage error is one line and exit
status 2 (as argparse's, without the usage block), and an exception that a
command did not handle itself is one line naming its type and exit status 1
(130 for Ctrl-C).
"""

import argparse
import importlib
import sys

from ._checks import one_line

COMMANDS = {
    "demo": ("nanonet.demo", "reproduce the seed: gradient check, 100 epochs of training, test loss"),
    "gradcheck": ("nanonet.testing.cli", "run the layer conformance suite on your layer"),
    "bench": ("nanonet.bench.cli", "benchmark nanonet against hand-written numpy and its peers"),
}


def _available():
    for name, (module_name, help_text) in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and (exc.name == module_name or module_name.startswith(exc.name + ".")):
                continue
            raise
        yield name, module, help_text


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the subcommands inherit it)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser():
    parser = _Parser(prog="nanonet", description="nanonet: hand-written backprop you can trust")
    sub = parser.add_subparsers(dest="command", metavar="command")
    sub.required = True
    for name, module, help_text in _available():
        p = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(p)
        p.set_defaults(_main=module.main)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args._main(args)
    except KeyboardInterrupt:
        print(f"nanonet {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # the last line of defence: one line, never a traceback
        print(f"nanonet {args.command}: error: {type(exc).__name__}: {one_line(exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
