"""Wafers far beyond the paper's: every strategy on 8x8, 16x16 and 32x32 meshes (prints a
table with run time and peak memory; not a test).

    python benchmarks/bench_meshes.py                               # DeepSeek-V3, Kimi-K2, 1024
    python benchmarks/bench_meshes.py --models deepseek-v3 --requests 4096 --meshes 16

Synthetic batches are cached as in ``bench_replay.py``; each run is one process of the pool.
"""

import argparse
import resource
import time
from pathlib import Path

from bench_replay import synthetic_store

from hwmodel.cli.replay import replay_strategies
from hwmodel.system import STRATEGIES

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="deepseek-v3,kimi-k2", help="comma list of models")
    ap.add_argument("--requests", type=int, default=1024, help="synthetic batch size")
    ap.add_argument("--meshes", default="8,16,32", help="comma list of square mesh sizes")
    ap.add_argument("--strategy", default="all", help="'all' or a comma list")
    ap.add_argument("--jobs", type=int, default=2, help="processes")
    ap.add_argument("--cache", default="/tmp/hwmodel-bench", help="synthetic batch cache")
    args = ap.parse_args()
    strategies = STRATEGIES if args.strategy == "all" else tuple(args.strategy.split(","))
    print(f"{'model':>12} {'mesh':>6} {'strategy':>10} {'tok/s':>10} {'hops':>11} "
          f"{'run s':>7}", flush=True)
    for model in args.models.split(","):
        trace = str(synthetic_store(model, args.requests, Path(args.cache)))
        for size in args.meshes.split(","):
            wafer = str(EXAMPLES / f"mesh-{size}x{size}.yaml")
            t0 = time.perf_counter()
            results = replay_strategies(trace, [wafer], strategies, jobs=args.jobs)
            wall = time.perf_counter() - t0
            for r in results:
                print(f"{model:>12} {size + 'x' + size:>6} {r.strategy:>10} "
                      f"{r.throughput:10.0f} {r.hops:11d} {r.wall_s:7.1f}", flush=True)
            rss = max(resource.getrusage(who).ru_maxrss
                      for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)) / 1024
            print(f"{'':>12} {size + 'x' + size:>6} {'all':>10}: {wall:.1f} s wall on "
                  f"{args.jobs} processes, peak RSS so far {rss:.0f} MB", flush=True)


if __name__ == "__main__":
    main()
