"""``hwmodel diagram``: render the wafer, one die or one component with Graphviz."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..diagrams import FORMATS
from .helpformat import HelpFormatter
from .outputs import add_force_option, check_output_file
from .params import add_wafer_options, wafer_from_args

__all__ = ["register"]

VIEWS = ("wafer", "die", "component")


def _output(args: argparse.Namespace) -> tuple[Path, str]:
    """The image file and format: ``-o DIR/`` (or an existing folder) writes
    ``DIR/<view>.<format>`` inside it."""
    default_name = f"{args.view}.{args.format or 'svg'}"
    output = Path(args.output or default_name)
    if (args.output or "").endswith(("/", os.sep)) or output.is_dir():
        output = output / default_name
    fmt = args.format
    if fmt is None:
        suffix = output.suffix.lstrip(".").lower()
        fmt = suffix if suffix in FORMATS else "svg"
    if output.suffix.lower() != f".{fmt}":
        output = output.with_name(output.name + f".{fmt}")
    check_output_file(output, "--output", args.force)
    return output, fmt


def _run(args: argparse.Namespace) -> int:
    from ..diagrams import draw_component, draw_die, draw_wafer
    output, fmt = _output(args)
    wafer = wafer_from_args(args)
    if args.view == "wafer":
        path = draw_wafer(wafer, output, fmt)
    elif args.view == "die":
        name = args.die or "die_0_0"
        try:
            die = wafer.die(int(name) if name.isdigit() else name)
        except KeyError as error:
            raise ValueError(f"--die {name!r}: {error.args[0]}") from None
        path = draw_die(die, output, fmt)
    else:
        name = args.component or "die_0_0.d2d"
        try:
            component = wafer.lookup(name)
        except KeyError as error:
            raise ValueError(f"--component {name!r}: {error.args[0]}") from None
        path = draw_component(component, output, fmt)
    print(f"wrote {path} (and {path.with_suffix('.dot')})")
    return 0


def register(subparsers) -> None:
    """Add ``diagram`` to the ``hwmodel`` command line."""
    parser = subparsers.add_parser(
        "diagram", help="draw the wafer, a die or a component (Graphviz SVG or PNG)",
        formatter_class=HelpFormatter,
        description="Draw an architecture diagram from the component graph with Graphviz. "
                    "The DOT source is kept next to the image (same name, .dot).")
    add_wafer_options(parser)
    parser.add_argument("--view", choices=VIEWS, default="wafer",
                        help="wafer: dies on their grid with D2D links and the Global CP; "
                             "die: one die's units, ports and links; component: one "
                             "component's ports and what they link to")
    parser.add_argument("--die", metavar="DIE", default=None,
                        help="die for --view die, by name (die_1_2) or id (None: die_0_0)")
    parser.add_argument("--component", metavar="NAME", default=None,
                        help="component for --view component, by hierarchical name relative "
                             "to the wafer, e.g. die_1_2.hbm or die_0_0.d2d.atu or global_cp "
                             "(None: die_0_0.d2d)")
    parser.add_argument("--format", choices=FORMATS, default=None,
                        help="image format (None: from the -o suffix, else svg)")
    parser.add_argument("-o", "--output", "--out", metavar="FILE", default=None,
                        help="image file to write, or a folder (ending in /) to write "
                             "<view>.<format> into (None: <view>.<format> in the current "
                             "directory)")
    add_force_option(parser)
    parser.set_defaults(func=_run)
