"""Command-line entry point: ``ier <command> ...``.

Each subcommand lives in its own module under :mod:`ier.commands` and exposes
``register(subparsers)``, which adds an ``argparse`` sub-parser whose ``handler`` default is a thin
function ``(args) -> int`` that builds a config and calls one library function.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil

import ier.commands as pkg
from ier import __version__
from ier.allocator import keep_freed_memory
from ier.errors import IerError
from ier.progress import console, console_line

# Display order in ``ier --help``; modules not listed here follow alphabetically.
_ORDER = ["demo", "localize", "scenes", "train", "evaluate", "bench", "prepare", "features"]


def _command_modules() -> list[str]:

    names = [m.name for m in pkgutil.iter_modules(pkg.__path__) if not m.name.startswith("_")]
    return sorted(names, key=lambda n: (_ORDER.index(n) if n in _ORDER else len(_ORDER), n))


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="ier",
        description="Interference Eraser: class-aware visual sound localization in the wild.",
    )
    parser.add_argument("--version", action="version", version=f"ier {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _command_modules():
        importlib.import_module(f"ier.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit code (0 on success)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    keep_freed_memory()
    with console(verbose=args.verbose):  # log and error lines never share a progress bar's line
        try:
            return int(args.handler(args) or 0)
        except IerError as err:
            console_line(f"ier {args.command}: error: {err}")
            return 2
        except KeyboardInterrupt:
            console_line(f"ier {args.command}: interrupted")
            return 130
