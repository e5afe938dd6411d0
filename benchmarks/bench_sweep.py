"""Time and peak memory of a sweep grid (prints them; not a test).

    python benchmarks/bench_sweep.py examples/sweep-paper.yaml --out /tmp/paper   # 120 runs
    python benchmarks/bench_sweep.py examples/sweep-small.yaml --out /tmp/small --jobs 2
    python benchmarks/bench_sweep.py GRID --out /tmp/stores --stores-only   # trace stores only

Runs the grid into ``OUT/results.sqlite`` (trace stores cached in ``OUT/trace-cache``) and prints
the wall time of trace preparation and of the runs, CPU seconds, the peak RSS of the driver and
of the largest worker, and per-run wall times from the store's ``costs`` table. A second call
with the same ``--out`` measures a resume (nothing to do) unless ``--rerun``.
"""

import argparse
import inspect
import os
import resource
import statistics
import sys
import time
from pathlib import Path

from hwmodel.sweep import ResultsStore, load_grid
from hwmodel.sweep.runner import prepare, run_sweep


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("grid")
    parser.add_argument("--out", default="/tmp/bench-sweep")
    parser.add_argument("--jobs", type=int, default=os.cpu_count())
    parser.add_argument("--ray", default=None, help="Ray address (or 'local')")
    parser.add_argument("--rerun", action="store_true")
    parser.add_argument("--stores-only", action="store_true",
                        help="build the trace stores, print their time and stop (works with an "
                             "older checkout on PYTHONPATH too: it then builds them in turn)")
    args = parser.parse_args()
    out = Path(args.out)
    grid = load_grid(args.grid)
    t0, cpu0 = time.perf_counter(), _cpu_seconds()
    # builds the trace stores once, side by side on the workers (none with Ray)
    jobs = {"jobs": 1 if args.ray else args.jobs}
    if "jobs" not in inspect.signature(prepare).parameters:
        jobs = {}   # a checkout from before issue 18 builds them in turn
    prepare(grid, out / "trace-cache", log=sys.stderr, **jobs)
    t1 = time.perf_counter()
    if args.stores_only:
        kib = 1024
        print(f"trace stores ({len({run.trace for run in grid.runs})}, jobs "
              f"{jobs.get('jobs', 1)}): {t1 - t0:.1f} s wall, {_cpu_seconds() - cpu0:.1f} CPU-s; "
              f"peak RSS driver {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / kib:.0f} "
              f"MiB, largest worker "
              f"{resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / kib:.0f} MiB")
        return
    outcome = run_sweep(grid, out / "results.sqlite", out / "trace-cache", jobs=args.jobs,
                        ray_address=args.ray, rerun=args.rerun,
                        command=" ".join(sys.argv), log=sys.stderr)
    t2 = time.perf_counter()
    with ResultsStore(out / "results.sqlite") as store:
        walls = [c["wall_s"] for c in store.costs().values()]
    kib = 1024
    print(outcome.summary())
    print(f"grid {args.grid}: {len(grid.runs)} runs, jobs {args.jobs}, ray {args.ray}")
    print(f"trace stores: {t1 - t0:.1f} s wall; runs: {t2 - t1:.1f} s wall; total "
          f"{t2 - t0:.1f} s wall, {_cpu_seconds() - cpu0:.1f} CPU-s")
    print(f"peak RSS: driver {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / kib:.0f} "
          f"MiB, largest worker "
          f"{resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / kib:.0f} MiB")
    if walls:
        print(f"per-run wall s (all stored runs): median {statistics.median(walls):.2f}, "
              f"max {max(walls):.2f}, sum {sum(walls):.1f}")


if __name__ == "__main__":
    main()
