"""The help formatter of every ``hwmodel`` subcommand.

Shows an option's default after its help (``(default: 64)``), except where the default says
nothing: a flag (off unless given), a required option, or ``None`` (the help text says what
happens then, e.g. ``(None: print only)``).
"""

from __future__ import annotations

import argparse

__all__ = ["HelpFormatter"]


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """:class:`argparse.ArgumentDefaultsHelpFormatter` without ``(default: None)``,
    ``(default: False)`` and defaults of required options."""

    def _get_help_string(self, action):
        if action.required or action.default is None or isinstance(action.default, bool):
            return action.help
        return super()._get_help_string(action)
