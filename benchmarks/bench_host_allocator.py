"""Host time of Algorithm 1: wall time of the allocator twin per MoE layer on this machine
(prints the fit that gives ``wafer.host.allocator_ns_per_layer`` / ``allocator_ns_per_expert``;
not a test).

    python benchmarks/bench_host_allocator.py                        # DeepSeek-V3, Qwen3, 1024
    python benchmarks/bench_host_allocator.py --requests 4096 --iterations 16

Every (iteration, MoE layer) of a synthetic batch (``default_batch(model, requests, seed=0)``)
is allocated ``--repeats`` times by ``GlobalCPTwin.allocate_arrays`` (the compiled twin, the
best a host could do with the same algorithm); the minimum wall time of each layer is kept and
a least-squares line ``ns = per_layer + per_expert x active experts`` is fitted over all of
them. The replay never measures: it reads the fitted figures from the wafer's YAML, so its
results stay deterministic.
"""

import argparse
import resource
import time

import numpy as np

from hwmodel.models import load_model
from hwmodel.params import load_wafer
from hwmodel.system import Replay
from hwmodel.topologies.wafer import build_wafer
from hwmodel.traces.synth import default_batch


def layer_times(model: str, wafer: str, requests: int, iterations: int, repeats: int):
    """(active experts, minimum wall ns) of every allocated (iteration, MoE layer)."""
    replay = Replay(wafer=build_wafer(load_wafer(wafer)), model=load_model(model),
                    store=default_batch(model, requests=requests, seed=0))
    gcp, wl = replay.global_cp(), replay.workload
    active, wall = [], []
    for it in range(min(iterations, wl.num_iterations)):
        counts_all = wl.counts(wl.rows(it)[0])
        for layer in range(replay.L):
            counts = counts_all[layer]
            if not counts.any():
                continue
            best = float("inf")
            for _ in range(repeats):
                t0 = time.perf_counter_ns()
                gcp.allocate_arrays(layer, counts)
                best = min(best, time.perf_counter_ns() - t0)
            active.append(int(np.count_nonzero(counts)))
            wall.append(best)
    return np.asarray(active, float), np.asarray(wall, float)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="deepseek-v3,qwen3-235b", help="comma list")
    ap.add_argument("--wafer", default="dojo")
    ap.add_argument("--requests", type=int, default=1024, help="synthetic batch size")
    ap.add_argument("--iterations", type=int, default=8, help="iterations timed (0 = prefill)")
    ap.add_argument("--repeats", type=int, default=5, help="timings per layer (minimum kept)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    xs, ys = [], []
    print(f"{'model':>12} {'layers':>7} {'active':>11} {'median ns':>10} {'ns/expert':>10}")
    for model in args.models.split(","):
        # a first call compiles the kernel: time it apart from the measurement
        layer_times(model, args.wafer, 8, 1, 1)
        active, wall = layer_times(model, args.wafer, args.requests, args.iterations,
                                   args.repeats)
        xs.append(active)
        ys.append(wall)
        print(f"{model:>12} {len(wall):7d} {active.min():5.0f}-{active.max():<5.0f} "
              f"{np.median(wall):10.0f} {np.median(wall / active):10.1f}")
    x, y = np.concatenate(xs), np.concatenate(ys)
    slope, intercept = np.polyfit(x, y, 1)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"fit over {len(y)} layers: allocator_ns_per_layer {intercept:.0f}, "
          f"allocator_ns_per_expert {slope:.1f}")
    print(f"{time.perf_counter() - t0:.1f} s wall, peak RSS {rss:.0f} MB")


if __name__ == "__main__":
    main()
