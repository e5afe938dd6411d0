"""The command line's parser built for one command (issue 18): ``hwmodel COMMAND ...`` imports
only COMMAND's module, and must parse, print help and fail exactly as the whole parser does."""

import contextlib
import io
import subprocess
import sys

import pytest
from conftest import subprocess_env

from hwmodel.cli import build_parser

WHOLE = build_parser()
SUBPARSERS = next(a for a in WHOLE._actions if a.__class__.__name__ == "_SubParsersAction")
#: Every command and alias the whole parser knows (``params`` and its alias ``show`` ...).
COMMANDS = sorted(SUBPARSERS.choices)


def _nested(command: str) -> list[str]:
    """The second-level commands of ``command`` (``trace convert`` ...), if it has any."""
    parser = SUBPARSERS.choices[command]
    found = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    return sorted(found[0].choices) if found else []


def _argvs() -> list[list[str]]:
    """Command lines for every command: help, an unknown option, no arguments, a stray word;
    and the same for each second-level command."""
    argvs = []
    for command in COMMANDS:
        for prefix in [[command]] + [[command, sub] for sub in _nested(command)]:
            argvs += [[*prefix, "--help"], [*prefix, "--no-such-option"], prefix,
                      [*prefix, "stray", "words"], [*prefix, "-o"]]
    return argvs


def _outcome(parser, argv: list[str]) -> tuple:
    """(exit code or None, parsed namespace or None, stdout, stderr) of parsing ``argv``."""
    out, err = io.StringIO(), io.StringIO()
    code, parsed = None, None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            parsed = vars(parser.parse_args(argv))
        except SystemExit as stop:
            code = stop.code
    return code, parsed, out.getvalue(), err.getvalue()


def test_the_commands_are_all_there():
    # a parser of one command must exist for each command of its own name; the list is the
    # whole parser's, read at run time, checked here against the README's commands
    assert {"replay", "trace", "params", "show", "diagram", "rtl", "sweep", "place",
            "report", "ablate"} <= set(COMMANDS)


@pytest.mark.parametrize("argv", _argvs(), ids=" ".join)
def test_one_command_parser_behaves_as_the_whole_one(argv, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")        # the same help width for both
    lazy = build_parser(argv[0])
    assert _outcome(lazy, argv) == _outcome(WHOLE, argv)


@pytest.mark.parametrize("first", ["show", "no-such-command", "outputs", "helpformat", "-h",
                                   "--help", "default", "Replay"])
def test_anything_but_a_module_of_that_command_gets_the_whole_parser(first, monkeypatch):
    # an alias, an unknown word, a helper module without commands, an option: the full list
    # of commands must be in the parser (its errors and help name them all)
    monkeypatch.setenv("COLUMNS", "100")
    parser = build_parser(first)
    assert _outcome(parser, [first]) == _outcome(WHOLE, [first])
    assert parser.format_help() == WHOLE.format_help()


@pytest.mark.parametrize("command", ["trace", "replay"])
def test_a_command_imports_no_other_commands_module(command):
    code = ("import sys\nimport hwmodel.cli\nhwmodel.cli.build_parser(sys.argv[1])\n"
            "print(' '.join(m for m in sys.modules if m.startswith('hwmodel.cli.')))\n")
    result = subprocess.run([sys.executable, "-c", code, command], capture_output=True,
                            text=True, env=subprocess_env(), check=True)
    loaded = set(result.stdout.split())
    assert f"hwmodel.cli.{command}" in loaded
    others = {f"hwmodel.cli.{c}" for c in COMMANDS if c != command}
    assert not loaded & others, sorted(loaded & others)
