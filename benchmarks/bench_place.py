"""Placement benchmark: one decode batch through every policy on the 8-node cluster.

    python benchmarks/bench_place.py                       # DeepSeek-V3, 16,384 requests
    python benchmarks/bench_place.py --model qwen3-235b --cluster dgx-h100 --batch 4096

Synthesises (built-in parameters, seed 0) ``--batch`` requests of ``--model``, then times the
replay of one decode batch of that many tokens (step 1 of every request) through all policies,
printing the table, the wall time of synthesis and of placement, and the peak RSS.
"""

import argparse
import resource
import time

from hwmodel.cli.place import _format_table
from hwmodel.cluster import build_cluster, load_cluster
from hwmodel.cluster.placement import POLICIES
from hwmodel.cluster.replay import replay
from hwmodel.models import load_model
from hwmodel.traces.synth import synthesize


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="deepseek-v3")
    parser.add_argument("--cluster", default="dgx-h100-8node")
    parser.add_argument("--batch", type=int, default=16384)
    args = parser.parse_args()
    t0 = time.perf_counter()
    store = synthesize(None, model=args.model, requests=args.batch, seed=0)
    t1 = time.perf_counter()
    cluster = build_cluster(load_cluster(args.cluster))
    table = replay(store, cluster, load_model(args.model), list(POLICIES), [args.batch])
    t2 = time.perf_counter()
    print(_format_table(table))
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{args.model} x {args.batch} requests on {args.cluster}: synthesis {t1 - t0:.1f} s, "
          f"placement of {len(POLICIES)} policies {t2 - t1:.1f} s, peak RSS {peak_mib:.0f} MiB")


if __name__ == "__main__":
    main()
