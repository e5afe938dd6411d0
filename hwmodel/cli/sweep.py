"""``hwmodel sweep GRID.yaml``: run a grid of replays into a resumable results store."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

__all__ = ["register"]


def _main(args) -> int:
    from concurrent.futures.process import BrokenProcessPool

    from ..sweep import load_grid, run_sweep
    if args.force:
        raise ValueError("--force: sweep keeps its results store and adds to it; to run the "
                         "stored runs again pass --rerun")
    if args.jobs is not None and args.jobs < 1:
        raise ValueError(f"--jobs: expected a process count >= 1, not {args.jobs!r}")
    grid = load_grid(args.grid)
    out = Path(args.out)
    if out.exists() and not out.is_file():
        raise ValueError(f"--out: {str(out)!r} exists and is not a results file")
    cache = Path(args.cache) if args.cache else out.parent / "trace-cache"
    command = shlex.join(["hwmodel", "sweep", args.grid, "-o", str(out)]
                         + [flag for flag, on in (("--rerun", args.rerun),
                                                  ("--retry-failed", args.retry_failed)) if on]
                         + (["--ray", args.ray] if args.ray else []))
    try:
        outcome = run_sweep(grid, out, cache, jobs=args.jobs, ray_address=args.ray,
                            rerun=args.rerun, retry_failed=args.retry_failed, command=command,
                            log=None if args.quiet else sys.stderr)
    except KeyboardInterrupt:
        print(f"hwmodel sweep: interrupted; finished runs are in {out}, rerun the same "
              f"command to do the rest", file=sys.stderr)
        return 130
    except BrokenProcessPool:
        print(f"hwmodel sweep: a worker process died (killed, or out of memory); finished "
              f"runs are in {out}, rerun the same command to do the rest", file=sys.stderr)
        return 1
    print(outcome.summary())
    print(f"results: {out}")
    return 1 if outcome.failures else 0


def register(subparsers) -> None:
    """Add ``sweep`` to the ``hwmodel`` command line."""
    from .helpformat import HelpFormatter
    p = subparsers.add_parser(
        "sweep", formatter_class=HelpFormatter, help="run a grid of replays (models x traces x batches x wafers x params x "
                      "strategies) into a resumable SQLite results store",
        description="Expand GRID.yaml into runs, build each trace store once (cached by "
                    "content), run what the results store lacks on a local process pool or "
                    "on Ray, committing each run as it ends. Exit code 1 if a run failed.")
    p.add_argument("grid", help="grid YAML with a top-level 'sweep:' mapping (docs/sweep.md)")
    p.add_argument("-o", "--out", default="sweep/results.sqlite", metavar="FILE",
                   help="SQLite results store, created or resumed")
    p.add_argument("--cache", default=None, metavar="DIR",
                   help="trace-store cache folder (None: trace-cache beside --out)")
    p.add_argument("--jobs", type=int, default=None,
                   help=f"local worker processes (None: all {os.cpu_count()} cores)")
    p.add_argument("--ray", default=None, metavar="auto|local|ADDRESS",
                   help="run on a Ray cluster: 'auto' (the running one), 'local' (start one) "
                        "or an address such as 10.0.0.1:6379; needs hwmodel[ray] (None: "
                        "the local process pool)")
    p.add_argument("--rerun", action="store_true", help="run again the runs already stored")
    # the old spelling of --rerun: refused with a line naming --rerun (--force means
    # "overwrite the output" in every other command)
    p.add_argument("--force", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--retry-failed", action="store_true", help="rerun runs stored as failed")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=_main)
