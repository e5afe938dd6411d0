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


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The command line's parser. With ``command`` (the first word of the command line), only
    the module of that name is imported, if it registers that command: the parser then
    parses that command exactly as the whole one does, without importing every other
    command's module (issue 18). Otherwise every module registers its commands."""
    if command is not None and not command.startswith("-"):
        single, commands = _parser_of(_modules(only=command))
        if command in commands.choices:
            return single
    return _parser_of(_modules())[0]


def _modules(only: str | None = None) -> list[str]:
    """Names of this package's modules (sorted), or just ``only`` if it is one of them."""
    names = sorted(info.name for info in pkgutil.iter_modules(__path__))
    return [name for name in names if name == only] if only is not None else names


def _parser_of(module_names: list[str]) -> tuple[argparse.ArgumentParser, argparse.Action]:
    """The parser with the commands of ``module_names``, and its subparsers' action."""
    parser = argparse.ArgumentParser(
        prog="hwmodel",
        description="Model wafer-scale GPUs serving Mixture-of-Experts LLMs: replay recorded "
                    "expert-selection traces, simulate the added units' RTL, draw diagrams. "
                    "With no subcommand, runs the main job on a built-in default.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in module_names:
        module = importlib.import_module(f"{__name__}.{name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(subparsers)
    return parser, subparsers


def _one_line(error: BaseException) -> str:
    """The user-facing line of ``error``: OS errors name their path, the rest their message."""
    if isinstance(error, OSError) and error.filename is not None:
        return f"{error.filename}: {error.strerror or error}"
    if isinstance(error, EOFError):
        return f"truncated input: {error}"
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv[0] if argv else None)
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
