"""Replay performance and reproduction figures (prints them; not a test).

    python benchmarks/bench_replay.py                 # 235 Llama-4 requests, 5 strategies x 2 meshes
    python benchmarks/bench_replay.py --synth 4096 --model deepseek-v3      # reproduction runs
    python benchmarks/bench_replay.py --synth 4096 --model qwen3-235b --json qwen.json
    python benchmarks/bench_replay.py --synth 256,1024,4096,16384 --strategy allo \\
        --wafer tsmc-sow --jobs 1                     # run time vs batch, events/s, peak RSS
    python benchmarks/bench_replay.py --replica-GB 50 --strategy pred --wafer tsmc-sow
    python benchmarks/bench_replay.py --synth 16384 --strategy allo+pred --wafer tsmc-sow \
        --vs /tmp/base --pairs 2                      # A B A B against another checkout

With ``--vs`` each run is its own ``hwmodel replay ... --jobs 1 --quiet --no-plots`` process,
this checkout (A) and the other (B) in turn after one warm-up run each, timed from outside
by the OS: medians of CPU seconds (user + system) and peak resident memory, and the A / B
ratio pair by pair (min-max).

Synthetic batches are fitted to the shared Llama-4 trace and reshaped to the model
(``hwmodel.traces.synth.synthesize(like=..., model=..., requests=..., seed=0)``), saved once
under ``--cache`` and memory-mapped by every run.
"""

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

from hwmodel.cli.replay import replay_strategies, summary_table
from hwmodel.system import STRATEGIES, ReplayParams

LLAMA = (Path(__file__).resolve().parents[1].parent / "shared" / "traces" / "profiling_result"
         / "meta-llama" / "Llama-4-Maverick-17B-128E-Instruct" / "mmlu")


def synthetic_store(model: str, requests: int, cache: Path, seed: int = 0) -> Path:
    """Path of a saved synthetic batch (made once, fitted to the shared Llama-4 trace)."""
    path = cache / f"{model}-{requests}-seed{seed}.store"
    if not path.exists():
        from hwmodel.traces import open_batch
        from hwmodel.traces.synth import synthesize
        t0 = time.perf_counter()
        store = synthesize(like=open_batch(str(LLAMA)), model=model, requests=requests,
                           seed=seed)
        cache.mkdir(parents=True, exist_ok=True)
        store.save(path)
        print(f"synthesised {model} x {requests} in {time.perf_counter() - t0:.1f} s -> {path}",
              flush=True)
    return path


def reproduction_table(results) -> str:
    """Per mesh and strategy: throughput speedup and hop reduction over base."""
    lines = [(f"{'mesh':>5} {'strategy':>10} {'tok/s':>9} {'speedup':>8} {'hops':>11} "
              f"{'hop red.':>9} {'wall s':>7} {'M events':>9}")]
    base = {(r.mesh_x, r.mesh_y): r for r in results if r.strategy == "base"}
    for r in results:
        b = base.get((r.mesh_x, r.mesh_y))
        speed = f"{r.throughput / b.throughput:.2f}x" if b else "-"
        red = (f"{b.hops / r.hops:.1f}x" if r.hops else "inf") if b else "-"
        lines.append(f"{r.mesh_x}x{r.mesh_y:<3} {r.strategy:>10} {r.throughput:9.0f} "
                     f"{speed:>8} {r.hops:11d} {red:>9} {r.wall_s:7.1f} "
                     f"{r.events / 1e6:9.1f}")
    return "\n".join(lines)


def versus(trace: str, model: str | None, wafers, strategies, other: Path,
           pairs: int) -> None:
    """Time each (wafer, strategy) run as whole processes, this checkout and ``other`` in
    turn (``bench_startup``'s A B A B loop), and print one line per run."""
    from bench_startup import compare, report
    here = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory(prefix="hwmodel-trace-cache-") as cache:
        for wafer in wafers:
            for strategy in strategies:
                command = ["-m", "hwmodel", "replay", "--trace", trace, "--wafer", wafer,
                           "--strategy", strategy, "--jobs", "1", "--quiet", "--no-plots"]
                command += ["--model", model] if model else []
                runs = compare(here, other.resolve(), command, pairs, cache)
                print(report(f"{wafer} {strategy}", runs), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--synth", default="",
                    help="comma list of synthetic batch sizes (default: the shared Llama-4 "
                         "trace, 235 requests)")
    ap.add_argument("--model", default="deepseek-v3",
                    help="model preset of the synthetic batches (deepseek-v3, qwen3-235b, ...)")
    ap.add_argument("--strategy", default="all",
                    help="comma list of strategies, or 'all' (base, ep, allo, pred, allo+pred)")
    ap.add_argument("--wafer", default="tsmc-sow,dojo", help="comma list of wafer presets")
    ap.add_argument("--jobs", type=int, default=2, help="processes")
    ap.add_argument("--replica-GB", type=float, default=None,
                    help="bound the replica region of each die (GB = 1e9 bytes; LRU)")
    ap.add_argument("--cache", default="/tmp/hwmodel-bench",
                    help="folder where synthetic batches are saved and reused")
    ap.add_argument("--json", default=None, help="also write the run summaries to this file")
    ap.add_argument("--vs", default=None, metavar="CHECKOUT",
                    help="time each run as its own process against this other checkout "
                         "(A B A B; the replica bound and --json do not apply)")
    ap.add_argument("--pairs", type=int, default=2, help="with --vs: A B pairs per run")
    args = ap.parse_args()
    strategies = STRATEGIES if args.strategy == "all" else tuple(args.strategy.split(","))
    wafers = args.wafer.split(",")
    params = ReplayParams(replica_capacity_bytes=None if args.replica_GB is None
                          else int(args.replica_GB * 1e9))
    sizes = [int(s) for s in args.synth.split(",")] if args.synth else [None]
    summaries = []
    for size in sizes:
        if size is None:
            trace, label = str(LLAMA), "235 Llama-4 requests"
        else:
            trace = str(synthetic_store(args.model, size, Path(args.cache)))
            label = f"synthetic {args.model} batch {size}"
        if args.vs:
            print(f"== {label}: A = this checkout, B = {args.vs}, medians of {args.pairs} "
                  "pairs", flush=True)
            versus(trace, args.model if size else None, wafers, strategies, Path(args.vs),
                   args.pairs)
            continue
        t0 = time.perf_counter()
        results = replay_strategies(trace, wafers, strategies, params=params, jobs=args.jobs)
        wall = time.perf_counter() - t0
        events = sum(r.events for r in results)
        rss = max(resource.getrusage(who).ru_maxrss
                  for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)) / 1024
        print(f"\n== {label}: {len(results)} runs on {args.jobs} process(es): {wall:.1f} s "
              f"wall, {events / 1e6:.1f} M events, "
              f"{events / sum(r.wall_s for r in results) / 1e6:.2f} M events/s per process, "
              f"peak RSS {rss:.0f} MB")
        print(reproduction_table(results), flush=True)
        if size is None:
            print(summary_table(results))
        summaries += [dict(r.summary(), label=label, requests=size) for r in results]
    if args.json:
        Path(args.json).write_text(json.dumps(summaries, indent=1))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))      # bench_startup
    main()
