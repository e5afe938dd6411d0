"""Physical mode against paper mode: what each switch does to each strategy (prints; not a test).

    python benchmarks/bench_physical.py                       # 235 Llama-4 requests, both meshes
    python benchmarks/bench_physical.py --synth 4096 --model deepseek-v3 --wafer tsmc-sow
    python benchmarks/bench_physical.py --strategy base,pred --attention data-parallel
    python benchmarks/bench_physical.py --budget      # where each model's HBM goes, per die
    python benchmarks/bench_physical.py --modes paper,dispatch_time,dispatch_time+micro_batches
    python benchmarks/bench_physical.py --modes paper,prefetch    # paper and one switch only
    python benchmarks/bench_physical.py --modes paper,prefetch,prefetch+unbounded

Every strategy runs in paper mode, then with each physical switch alone, then with all of them
(``--mode physical``). Per run: throughput, its speedup over ``base`` of the same mode, request
hops, replicas held at the end and evictions, the run's wall time against the paper run's
(physical mode must stay within 2x), the time of token dispatch and combine (``dispatch_time``)
and the links' queue time over their busy time (``shared_links``; 1.0: on average one transfer
waited beside each one sending), the time the two micro-batches' overlap hid
(``micro_batches``), and the prefetched slices used of those read ahead with the HBM read
time they saved (``prefetch``; its buffer is each die's LLC, or no bound with the word
``unbounded`` in the mode label). A mode the HBM budget refuses is reported with its reason.
Paper-mode notes (replicas or KV cache beyond the HBM) are printed at the end.
"""

import argparse
import time

import attrs
from bench_replay import LLAMA, synthetic_store

from hwmodel.cli.replay import replay_strategies
from hwmodel.system import STRATEGIES, ReplayParams
from hwmodel.system.physical import PHYSICAL_SWITCHES, all_switches_on


def modes(attention: str, chosen: str | None = None) -> dict:
    """Mode label -> ReplayParams: paper, each switch alone, all switches; or the ``chosen``
    labels (comma list of 'paper', 'physical' and switches joined by '+'), after paper mode,
    which every comparison column needs."""
    paper = ReplayParams(attention_placement=attention)
    if chosen:
        labels = ["paper"] + [label for label in chosen.split(",") if label != "paper"]
        return {label: mode_params(paper, label) for label in labels}
    out = {"paper": paper}
    for name in PHYSICAL_SWITCHES:
        out[name] = attrs.evolve(paper, **{name: True})
    if len(PHYSICAL_SWITCHES) > 1:
        out["physical"] = all_switches_on(paper)
    return out


def mode_params(paper, label: str):
    """The ReplayParams of one mode label: 'paper', 'physical', or switches joined by '+',
    where the word 'unbounded' lifts the prefetch buffer's bound (default: each die's LLC)."""
    words = label.split("+")
    params = (paper if label == "paper" else all_switches_on(paper) if "physical" in words
              else attrs.evolve(paper, **dict.fromkeys(set(words) - {"unbounded"}, True)))
    return (attrs.evolve(params, prefetch_buffer_bytes="unbounded") if "unbounded" in words
            else params)


def links_columns(r) -> str:
    """Dispatch and combine time (dispatch_time) and the links' summed queue time over their
    summed busy time (shared_links), or '-'."""
    phases = r.counts.get("dispatch_ns", 0) + r.counts.get("combine_ns", 0)
    busy = sum(link.get("busy_ns", 0.0) for link in r.per_link)
    queue = sum(link.get("queue_ns", 0.0) for link in r.per_link)
    hidden = r.counts.get("micro_hidden_ns", float("nan"))
    return (f"{phases / 1e6 if 'dispatch_ns' in r.counts else float('nan'):12.2f} "
            f"{queue / busy if busy else float('nan'):10.2f} {hidden / 1e6:9.2f}")


def prefetch_columns(r) -> str:
    """Prefetched slices used / read ahead and the HBM read time saved (prefetch), or '-'."""
    if "prefetches" not in r.counts:
        return f"{'-':>13} {'-':>9}"
    c = r.counts
    return (f"{c['prefetches_used']:>6d}/{c['prefetches']:<6d} "
            f"{c['prefetch_saved_ns'] / 1e6:9.2f}")


def table(runs, wafers, strategies) -> str:
    """One line per (wafer, strategy, mode)."""
    lines = [(f"{'wafer':<9} {'strategy':>10} {'mode':>11} {'tok/s':>9} {'x base':>7} "
             f"{'vs paper':>9} {'hops':>10} {'held':>7} {'evicted':>8} {'wall s':>7} "
             f"{'wall/paper':>10} {'disp+comb ms':>12} {'queue/busy':>10} {'hidden ms':>9} "
             f"{'pf used/read':>13} {'saved ms':>9}")]
    for wafer in wafers:
        for strategy in strategies:
            paper = runs[("paper", wafer, strategy)]
            for mode in runs.modes:
                r = runs.get((mode, wafer, strategy))
                if isinstance(r, str):
                    lines.append(f"{wafer:<9} {strategy:>10} {mode:>11} refused: {r}")
                    continue
                base = runs.get((mode, wafer, "base"))
                gain = (f"{r.throughput / base.throughput:.2f}x"
                        if not isinstance(base, (str, type(None))) else "-")
                lines.append(
                    f"{wafer:<9} {strategy:>10} {mode:>11} {r.throughput:9.0f} {gain:>7} "
                    f"{r.throughput / paper.throughput:9.3f} {r.hops:10d} "
                    f"{sum(r.per_die['replicas_held']):7d} "
                    f"{r.counts['replica_evictions']:8d} {r.wall_s:7.1f} "
                    f"{r.wall_s / paper.wall_s:10.2f} {links_columns(r)} "
                    f"{prefetch_columns(r)}")
    return "\n".join(lines)


def budget_table(wafer_name: str) -> str:
    """Per model: the fullest die's routed experts, the non-expert weights of the whole model
    and of the fullest die under layer-sharded attention, the KV cache of a 1,000-token
    context, and what every die has left for KV cache and replicas, at least."""
    import numpy as np

    from hwmodel.components.global_cp.twin import home_placement
    from hwmodel.models import load_model
    from hwmodel.topologies.wafer import wafer_from
    wafer = wafer_from(wafer_name)
    live = wafer.mesh.live_dies
    usable = min(wafer.dies[d].hbm.usable_bytes for d in live)
    lines = [("| model | routed experts, fullest die (GB) | non-expert weights, whole model "
             "(GB) | of them on the fullest die, layer-sharded (GB) | KV cache of a 1,000-token "
             "context (MB) | left for KV cache and replicas, every die, at least (GB) |"),
             "|---|---|---|---|---|---|"]
    for name in ("deepseek-v3", "kimi-k2", "qwen3-235b", "llama4-maverick"):
        m = load_model(name)
        home = np.bincount(home_placement(m.num_experts, live), minlength=wafer.num_dies)
        experts = int(home.max()) * m.num_moe_layers * m.expert_bytes
        layers = m.layer_weight_bytes()
        hosted = max(sum(layers[i::len(live)]) for i in range(len(live)))
        kv = 1000 * m.num_layers * m.kv_bytes_per_token_layer
        lines.append(f"| {name} | {experts / 1e9:.1f} | {sum(layers) / 1e9:.1f} | "
                     f"{hosted / 1e9:.2f} | {kv / 1e6:.1f} | "
                     f"{(usable - experts - hosted) / 1e9:.1f} |")
    return "\n".join(lines)


class Runs(dict):
    modes: tuple = ()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--synth", type=int, default=None,
                    help="synthetic batch size (default: the shared Llama-4 trace)")
    ap.add_argument("--model", default="deepseek-v3", help="model of the synthetic batch")
    ap.add_argument("--strategy", default="all", help="comma list of strategies, or 'all'")
    ap.add_argument("--wafer", default="tsmc-sow,dojo", help="comma list of wafer presets")
    ap.add_argument("--attention", default="layer-sharded",
                    help="attention_placement: layer-sharded or data-parallel")
    ap.add_argument("--modes", default=None,
                    help="comma list of modes: paper, physical, or switches joined by '+' "
                         "(default: paper, each switch alone, physical)")
    ap.add_argument("--jobs", type=int, default=2, help="processes")
    ap.add_argument("--cache", default="/tmp/hwmodel-bench",
                    help="folder where synthetic batches are saved and reused")
    ap.add_argument("--budget", action="store_true",
                    help="print where each model's HBM goes on the first --wafer, and stop")
    args = ap.parse_args()
    from pathlib import Path
    if args.budget:
        print(budget_table(args.wafer.split(",")[0]))
        return
    strategies = STRATEGIES if args.strategy == "all" else tuple(args.strategy.split(","))
    wafers = args.wafer.split(",")
    trace = (str(LLAMA) if args.synth is None
             else str(synthetic_store(args.model, args.synth, Path(args.cache))))
    known = {"paper", "physical", "unbounded", *PHYSICAL_SWITCHES}
    unknown = {s for label in (args.modes or "").split(",") if label
               for s in label.split("+")} - known
    if unknown:
        ap.error(f"--modes: unknown {', '.join(sorted(unknown))}; expected some of "
                 f"{', '.join(sorted(known))}")
    chosen = modes(args.attention, args.modes)
    runs = Runs()
    runs.modes = tuple(chosen)
    notes = []
    for mode, params in chosen.items():
        t0 = time.perf_counter()
        try:
            results = replay_strategies(trace, wafers, strategies, params=params,
                                        jobs=args.jobs)
        except ValueError as error:
            for w in wafers:
                for s in strategies:
                    runs[(mode, w, s)] = str(error).split(": ", 1)[-1]
            continue
        print(f"{mode}: {len(results)} runs, {time.perf_counter() - t0:.1f} s wall",
              flush=True)
        for w, r in zip([w for w in wafers for _ in strategies], results):
            runs[(mode, w, r.strategy)] = r
            notes += [f"{w} {r.strategy} ({mode}): {n}" for n in r.notes]
    print(table(runs, wafers, strategies))
    for note in notes:
        print("note:", note)


if __name__ == "__main__":
    main()
