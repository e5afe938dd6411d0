"""``hwmodel params`` (alias ``show``): print a built system's parameters as YAML.

Also holds the ``--preset``/``--wafer`` options other subcommands share
(:func:`add_wafer_options`, :func:`wafer_from_args`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..params import WAFER_PRESETS, load_wafer
from .helpformat import HelpFormatter
from .outputs import add_force_option, atomic_file, check_output_file

if TYPE_CHECKING:  # the wafer model (numba, Amaranth) is imported when a wafer is built
    from ..topologies.wafer import Wafer

__all__ = ["DEFAULT_PRESET", "add_wafer_options", "register", "tree_text", "wafer_from_args"]

#: The wafer used when neither ``--preset`` nor ``--wafer`` is given.
DEFAULT_PRESET = "tsmc-sow"


def add_wafer_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--wafer NAME|FILE`` (and ``--preset NAME``, its older, hidden spelling)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--wafer", metavar="NAME|FILE", default=DEFAULT_PRESET,
                       help=f"wafer preset ({', '.join(WAFER_PRESETS)}) or YAML file with a "
                            "top-level 'wafer:' mapping (e.g. examples/mesh-8x8.yaml, or the "
                            "output of 'hwmodel params')")
    group.add_argument("--preset", choices=WAFER_PRESETS, default=None, help=argparse.SUPPRESS)


def wafer_from_args(args: argparse.Namespace) -> Wafer:
    """Build the wafer named by ``--wafer`` (or ``--preset``; default :data:`DEFAULT_PRESET`).

    Raises
    ------
    FileNotFoundError
        If ``--wafer`` names a missing file.
    ConfigError
        On a bad value in the file (naming file, YAML path and value).
    """
    from ..topologies.wafer import build_wafer
    wafer = getattr(args, "preset", None) or getattr(args, "wafer", None) or DEFAULT_PRESET
    if wafer not in WAFER_PRESETS and not Path(wafer).exists():
        raise FileNotFoundError(f"wafer file {wafer!r} does not exist; expected a preset "
                                f"({', '.join(WAFER_PRESETS)}) or a YAML file")
    return build_wafer(load_wafer(wafer))


def tree_text(wafer: Wafer) -> str:
    """One line per component of one die and the wafer level: path, kind, ports, sizes."""
    header = (f"# {wafer.params.name}: {wafer.mesh.x_dies} x {wafer.mesh.y_dies} mesh, "
              f"{wafer.num_dies} dies, {len(wafer.links)} D2D links, "
              f"{len(wafer.command_links)} command links")
    lines = [header]
    shown = [wafer, *wafer.dies[0].flatten(), wafer.global_cp]
    for component in shown:
        extra = []
        for attr in ("size_bytes", "edt_bytes", "heatmap_bytes", "heatmap_cache_bytes"):
            if hasattr(component, attr):
                extra.append(f"{attr}={getattr(component, attr)}")
        ports = ", ".join(f"{p.name}({p.direction.value} {p.kind})"
                          for p in component.ports.values())
        if component is wafer:
            ports = "-"
        elif component.kind == "global_cp":
            ports = f"{len(component.ports)} x (inout cmd), one per die"
        lines.append(f"#   {component.path:<24} {component.kind:<15} ports: {ports}"
                     + (f"  [{', '.join(extra)}]" if extra else ""))
    lines.append(f"#   (every die has the units of {wafer.dies[0].name})")
    return "\n".join(lines) + "\n"


def _run(args: argparse.Namespace) -> int:
    if args.output is not None:
        check_output_file(args.output, "--output", args.force)
    wafer = wafer_from_args(args)
    text = wafer.dump_params()
    if args.tree:
        text = tree_text(wafer) + text
    if args.output is not None:
        with atomic_file(args.output) as tmp:
            tmp.write_text(text)
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def register(subparsers) -> None:
    """Add ``params`` (alias ``show``) to the ``hwmodel`` command line."""
    parser = subparsers.add_parser(
        "params", aliases=["show"],
        help="print a wafer's parameters as YAML, read back from its component graph",
        formatter_class=HelpFormatter,
        description="Build the wafer's component graph and print its parameters as YAML, read "
                    "back from the graph's components. The output loads again with --wafer "
                    "and builds an identical system.")
    add_wafer_options(parser)
    parser.add_argument("-o", "--output", "--out", type=Path, metavar="FILE", default=None,
                        help="write the YAML to FILE instead of standard output (None: "
                             "standard output)")
    add_force_option(parser)
    parser.add_argument("--tree", action="store_true",
                        help="precede the YAML with comment lines listing the component tree "
                             "(one die and the wafer level), ports and unit sizes")
    parser.set_defaults(func=_run)
