"""The ``hwmodel`` command line.

Each module of this package that defines ``register(subparsers)`` adds its own subcommands
(``diagram``, ``params``, ``trace``, ``replay``, ``rtl`` ...), so an area of the library keeps its
command next to nothing but itself. ``hwmodel`` with no subcommand runs the main job on a
built-in default (:func:`hwmodel.cli.default.run`).
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from ..config import ConfigError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hwmodel",
        description="Model wafer-scale GPUs serving Mixture-of-Experts LLMs: replay recorded "
                    "expert-selection traces, simulate the added units' RTL, draw diagrams. "
                    "With no subcommand, runs the main job on a built-in default.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(subparsers)
    return parser


def _one_line(error: BaseException) -> str:
    """The user-facing line of ``error``: OS errors name their path, the rest their message."""
    if isinstance(error, OSError) and error.filename is not None:
        return f"{error.filename}: {error.strerror or error}"
    if isinstance(error, EOFError):
        return f"truncated input: {error}"
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command is None:
            from .default import run
            return run() or 0
        return args.func(args) or 0
    except KeyboardInterrupt:
        print("hwmodel: interrupted", file=sys.stderr)
        return 130
    except (ConfigError, ValueError, OSError, EOFError) as error:
        # Bad input is the user's to fix: one clear line, no traceback.
        print(f"hwmodel: error: {_one_line(error)}", file=sys.stderr)
        return 2
