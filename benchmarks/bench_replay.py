"""Replay performance figures (prints them; not a test).

    python benchmarks/bench_replay.py            # 235 Llama-4 requests, 5 strategies x 2 meshes
    python benchmarks/bench_replay.py --synth 256,1024,4096 --strategy allo
"""

import argparse
import resource
import time
from pathlib import Path

from hwmodel.cli.replay import replay_strategies, summary_table
from hwmodel.models import load_model
from hwmodel.params import load_wafer
from hwmodel.system import STRATEGIES, Replay
from hwmodel.topologies.wafer import build_wafer

LLAMA = (Path(__file__).resolve().parents[1].parent / "shared" / "traces" / "profiling_result"
         / "meta-llama" / "Llama-4-Maverick-17B-128E-Instruct" / "mmlu")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--synth", default="", help="comma list of synthetic DeepSeek-V3 batch sizes")
    ap.add_argument("--strategy", default="allo")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    if not args.synth:
        t0 = time.perf_counter()
        results = replay_strategies(str(LLAMA), ["tsmc-sow", "dojo"], STRATEGIES,
                                    jobs=args.jobs)
        wall = time.perf_counter() - t0
        print(summary_table(results))
        events = sum(r.events for r in results)
        print(f"\n10 runs (235 Llama-4 requests, 5 strategies x 2 meshes, {args.jobs} processes):"
              f" {wall:.1f} s wall, {events / 1e6:.1f} M events, "
              f"{events / sum(r.wall_s for r in results) / 1e6:.2f} M events/s per process")
        for r in results:
            print(f"  {r.mesh_x}x{r.mesh_y} {r.strategy:>9}: {r.wall_s:6.1f} s, "
                  f"{r.events / r.wall_s / 1e6:.2f} M events/s")
        return
    from hwmodel.traces.synth import default_batch
    model = load_model("deepseek-v3")
    wafer = build_wafer(load_wafer("tsmc-sow"))
    for size in (int(s) for s in args.synth.split(",")):
        t0 = time.perf_counter()
        store = default_batch("deepseek-v3", requests=size)
        t1 = time.perf_counter()
        result = Replay(wafer=wafer, model=model, store=store).run(args.strategy)
        t2 = time.perf_counter()
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"deepseek-v3 synthetic batch {size:6d}: synth {t1 - t0:6.1f} s, replay "
              f"{args.strategy} {t2 - t1:7.1f} s, {result.events / 1e6:7.1f} M events, "
              f"{result.events / (t2 - t1) / 1e6:.2f} M events/s, peak RSS {rss:.0f} MB, "
              f"throughput {result.throughput:.0f} tok/s", flush=True)


if __name__ == "__main__":
    main()
