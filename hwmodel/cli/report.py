"""``hwmodel report RESULTS -o DIR``: the reproduction report of a sweep's results store."""

from __future__ import annotations

import shlex

__all__ = ["register"]


def _main(args) -> int:
    from ..sweep.report import write_report
    from .outputs import check_output_dir
    check_output_dir(args.out, "--out", args.force)
    command = shlex.join(["hwmodel", "report", args.results, "-o", args.out])
    for path in write_report(args.results, args.out, command=command):
        print(f"wrote {path}")
    return 0


def register(subparsers) -> None:
    """Add ``report`` to the ``hwmodel`` command line."""
    from .helpformat import HelpFormatter
    from .outputs import add_force_option
    p = subparsers.add_parser(
        "report", formatter_class=HelpFormatter, help="write the HTML reproduction report (and PNGs) of a sweep's results",
        description="Fig. 12 (throughput over base), hop reduction, Fig. 14 (DRAM by kind), "
                    "scaling with batch size and link heat maps from a results store of "
                    "'hwmodel sweep', each beside the published numbers (docs/sweep.md).")
    p.add_argument("results", help="SQLite results store written by 'hwmodel sweep'")
    p.add_argument("-o", "--out", default="report", metavar="DIR",
                   help="folder for report.html and PNGs")
    add_force_option(p)
    p.set_defaults(func=_main)
