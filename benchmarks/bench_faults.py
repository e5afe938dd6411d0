"""Wafer faults: each strategy's throughput and hops with 0, 1, 2 and 4 dead dies and with one
dead link on the busiest route (prints a table; not a test;
docs/replay.md#overrides-and-faults, no paper result).

    python benchmarks/bench_faults.py                          # tsmc-sow, DeepSeek-V3 4096
    python benchmarks/bench_faults.py --requests 512 --wafer dojo

The dead dies are fixed, spread over the mesh (centre first); the dead link is the one that
carried the most bytes under ``base`` on the healthy wafer. Synthetic batches are cached as in
``bench_replay.py``.
"""

import argparse
import resource
import tempfile
import time
from pathlib import Path

import yaml
from bench_replay import synthetic_store

from hwmodel.cli.replay import replay_strategies
from hwmodel.config import to_dict
from hwmodel.params import load_wafer
from hwmodel.system import STRATEGIES

#: Dies killed in order (x, y), chosen to spread over a 3 x 8 or 5 x 5 mesh.
DEAD_ORDER = ((1, 4), (0, 1), (2, 6), (1, 2))


def faulty_wafer(preset: str, folder: Path, label: str, **faults) -> str:
    """A wafer YAML of ``preset`` with ``faults`` (dead_dies, dead_links) laid over it."""
    data = to_dict(load_wafer(preset))
    data.update(name=f"{preset}-{label}", **{k: list(v) for k, v in faults.items()})
    path = folder / f"{preset}-{label}.yaml"
    path.write_text(yaml.safe_dump({"wafer": data}, sort_keys=False))
    return str(path)


def busiest_link(trace: str, preset: str) -> str:
    """Name of the link that carries the most bytes under base on the healthy wafer."""
    (result,) = replay_strategies(trace, [preset], ["base"])
    best = max(result.per_link, key=lambda link: link["bytes"])
    a, b = best["dies"]
    return f"link_{a}_{b}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wafer", default="tsmc-sow", help="wafer preset")
    ap.add_argument("--model", default="deepseek-v3", help="model preset of the batch")
    ap.add_argument("--requests", type=int, default=4096, help="synthetic batch size")
    ap.add_argument("--jobs", type=int, default=2, help="processes")
    ap.add_argument("--cache", default="/tmp/hwmodel-bench", help="synthetic batch cache")
    args = ap.parse_args()
    trace = str(synthetic_store(args.model, args.requests, Path(args.cache)))
    y_dies = load_wafer(args.wafer).mesh_y
    folder = Path(tempfile.mkdtemp(prefix="hwmodel-faults-"))
    wafers = {"healthy": args.wafer}
    for count in (1, 2, 4):
        dead = [f"die_{x}_{y % y_dies}" for x, y in DEAD_ORDER[:count]]
        wafers[f"{count} dead dies"] = faulty_wafer(args.wafer, folder, f"dead{count}",
                                                    dead_dies=dead)
    link = busiest_link(trace, args.wafer)
    wafers[f"dead {link}"] = faulty_wafer(args.wafer, folder, "deadlink", dead_links=[link])
    t0 = time.perf_counter()
    rows = []
    for label, wafer in wafers.items():
        results = replay_strategies(trace, [wafer], STRATEGIES, jobs=args.jobs)
        rows += [(label, r) for r in results]
    wall = time.perf_counter() - t0
    rss = max(resource.getrusage(who).ru_maxrss
              for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)) / 1024
    print(f"{args.model} x {args.requests} on {args.wafer}: {len(rows)} runs, {wall:.1f} s "
          f"wall on {args.jobs} processes, peak RSS {rss:.0f} MB")
    healthy = {r.strategy: r for label, r in rows if label == "healthy"}
    print(f"{'wafer':>22} {'strategy':>10} {'tok/s':>9} {'vs healthy':>10} {'hops':>11} "
          f"{'vs healthy':>10}")
    for label, r in rows:
        h = healthy[r.strategy]
        hop_ratio = f"{r.hops / h.hops:.3f}" if h.hops else ("=" if r.hops == 0 else "inf")
        print(f"{label:>22} {r.strategy:>10} {r.throughput:9.0f} "
              f"{r.throughput / h.throughput:10.3f} {r.hops:11d} {hop_ratio:>10}")


if __name__ == "__main__":
    main()
