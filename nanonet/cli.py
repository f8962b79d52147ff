"""The ``nanonet`` command line: ``nanonet <command> [options]``.

Each command lives in its own module, which provides ``add_arguments(parser)``
and ``main(args) -> exit code``. A command whose module is absent is not
offered.
"""

import argparse
import importlib
import sys

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


def build_parser():
    parser = argparse.ArgumentParser(prog="nanonet", description="nanonet: hand-written backprop you can trust")
    sub = parser.add_subparsers(dest="command", metavar="command")
    sub.required = True
    for name, module, help_text in _available():
        p = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(p)
        p.set_defaults(_main=module.main)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args._main(args)


if __name__ == "__main__":
    sys.exit(main())
