"""The study's Fig. 15 (Algorithm 1 on the host CPU instead of the Global CP) and the Global
CP's cost per model and mesh (prints tables with run time and peak memory; not a test).

    python benchmarks/bench_fig15.py                        # Fig. 15: dojo, dojo-enhanced, 4096
    python benchmarks/bench_fig15.py --requests 1024 --plot docs/img/fig15.png
    python benchmarks/bench_fig15.py --cp-table             # CP latency: 4 models x 2 meshes

Batches are ``hwmodel.traces.synth.default_batch(model, requests, seed=0)``, saved once under
``--cache`` and memory-mapped by every run; runs go to ``--jobs`` processes. The overhead of
a control mode is its decode time over the decode time of the reference mode, minus one (the
throughput lost): host-cpu over global-cp is the study's Fig. 15.
"""

import argparse
import json
import resource
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

#: The study's Fig. 15 overheads of host-CPU allocation (docs/rtl.md), percent.
PAPER = {("dojo", "deepseek-v3"): (5.2, 6.4), ("dojo", "qwen3-235b"): (11.1, 14.2),
         ("dojo-enhanced", "deepseek-v3"): (19.3, 23.8),
         ("dojo-enhanced", "qwen3-235b"): (42.0, 51.6)}
CONTROLS = ("free", "global-cp", "host-cpu")


def cached_store(model: str, requests: int, cache: Path) -> Path:
    """Path of ``default_batch(model, requests, seed=0)``, made once."""
    path = cache / f"default-{model}-{requests}-seed0.store"
    if not path.exists():
        from hwmodel.traces.synth import default_batch
        cache.mkdir(parents=True, exist_ok=True)
        default_batch(model, requests=requests, seed=0).save(path)
    return path


def run_one(job) -> dict:
    """One replay: (store path, model, wafer, strategy, control) -> its figures."""
    store_path, model, wafer, strategy, control = job
    from hwmodel.models import load_model
    from hwmodel.params import load_wafer
    from hwmodel.system import Replay, ReplayParams
    from hwmodel.topologies.wafer import build_wafer
    from hwmodel.traces import open_batch
    replay = Replay(wafer=build_wafer(load_wafer(wafer)), model=load_model(model),
                    store=open_batch(str(store_path)), params=ReplayParams(control=control))
    r = replay.run(strategy)
    decode = [layer for layer in r.per_layer if layer["stage"] == "decode"]
    return {"model": model, "wafer": wafer, "strategy": strategy, "control": control,
            "decode_ns": r.decode_ns, "time_ns": r.time_ns, "throughput": r.throughput,
            "decode_layers": len(decode), "layers": len(r.per_layer), "clock_MHz": replay.clock_MHz,
            "wall_s": r.wall_s, **{k: v for k, v in r.counts.items()
                                   if k.startswith(("cp_", "control_"))}}


def run_all(jobs, workers: int) -> list[dict]:
    """Every job, in order (deterministic), on ``workers`` processes."""
    if workers <= 1:
        return [run_one(job) for job in jobs]
    with ProcessPoolExecutor(workers) as pool:
        return list(pool.map(run_one, jobs))


def overhead(results, key, control, reference) -> float:
    """Percent more decode time under ``control`` than under ``reference``."""
    by = {(r["wafer"], r["model"], r["strategy"], r["control"]): r for r in results}
    return 100 * (by[(*key, control)]["decode_ns"] / by[(*key, reference)]["decode_ns"] - 1)


def fig15_table(results) -> str:
    header = (f"{'wafer':>13} {'model':>11} {'strategy':>9} {'free tok/s':>10} "
              f"{'CP/free':>8} {'host/free':>9} {'host/CP':>8} {'paper':>11}")
    lines = [header]
    keys = dict.fromkeys((r["wafer"], r["model"], r["strategy"]) for r in results)
    by = {(r["wafer"], r["model"], r["strategy"], r["control"]): r for r in results}
    for key in keys:
        low, high = PAPER.get(key[:2], (float("nan"),) * 2)
        lines.append(f"{key[0]:>13} {key[1]:>11} {key[2]:>9} "
                     f"{by[(*key, 'free')]['throughput']:10.0f} "
                     f"{overhead(results, key, 'global-cp', 'free'):7.2f}% "
                     f"{overhead(results, key, 'host-cpu', 'free'):8.2f}% "
                     f"{overhead(results, key, 'host-cpu', 'global-cp'):7.2f}% "
                     f"{low:5.1f}-{high:4.1f}%")
    return "\n".join(lines)


def cp_table(results) -> str:
    """Global CP cycles per decode layer (allo+pred; means over the decode layers) and the
    decode time it adds."""
    header = (f"{'model':>15} {'wafer':>9} {'alloc cyc':>9} {'pred cyc':>9} {'cmd cyc':>8} "
              f"{'all cyc':>8} {'us/layer':>8} {'decode +%':>9}")
    lines = [header]
    for r in results:
        if r["control"] != "global-cp":
            continue
        key = (r["wafer"], r["model"], r["strategy"])
        n = r["decode_layers"]
        part = {p: r.get(f"cp_decode_{p}_cycles", 0) / n
                for p in ("allocator", "predictor", "command", "report")}
        lines.append(f"{r['model']:>15} {r['wafer']:>9} {part['allocator']:9.0f} "
                     f"{part['predictor']:9.0f} {part['command']:8.0f} "
                     f"{sum(part.values()):8.0f} "
                     f"{r['control_decode_delay_ns'] / n / 1e3:8.2f} "
                     f"{overhead(results, key, 'global-cp', 'free'):8.2f}%")
    return "\n".join(lines)


def plot(results, path: Path) -> None:
    """Host-CPU overhead over the Global CP next to the study's range, per wafer and model."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    keys = list(PAPER)
    fig, ax = plt.subplots(figsize=(7, 3.6))
    width = 0.27
    for i, strategy in enumerate(("allo", "allo+pred")):
        ours = [overhead(results, (*k, strategy), "host-cpu", "global-cp") for k in keys]
        ax.bar([x + (i - 1) * width for x in range(len(keys))], ours, width,
               label=f"ours, {strategy}")
    low = [PAPER[k][0] for k in keys]
    high = [PAPER[k][1] for k in keys]
    ax.bar([x + width for x in range(len(keys))], [h - lo for lo, h in zip(low, high)],
           width, bottom=low, color="grey", alpha=0.6, label="paper (range)")
    ax.set_xticks(range(len(keys)), [f"{w}\n{m}" for w, m in keys], fontsize=8)
    ax.set_ylabel("host-CPU allocation overhead (%)")
    ax.set_title("Fig. 15: Algorithm 1 on the host vs on the Global CP", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, metadata={"Software": None})
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=4096, help="synthetic batch size")
    ap.add_argument("--cp-table", action="store_true",
                    help="the Global CP's cost (allo+pred, 4 models x tsmc-sow, dojo) instead")
    ap.add_argument("--jobs", type=int, default=2, help="processes")
    ap.add_argument("--cache", default="/tmp/hwmodel-bench", help="synthetic batch cache")
    ap.add_argument("--plot", default=None, help="PNG of the Fig. 15 comparison")
    ap.add_argument("--json", default=None, help="write every run's figures there")
    args = ap.parse_args()
    t0 = time.perf_counter()
    if args.cp_table:
        models = ("llama4-maverick", "deepseek-v3", "qwen3-235b", "kimi-k2")
        wafers, strategies, controls = ("tsmc-sow", "dojo"), ("allo+pred",), CONTROLS[:2]
    else:
        models = ("deepseek-v3", "qwen3-235b")
        wafers, strategies, controls = ("dojo", "dojo-enhanced"), ("allo", "allo+pred"), CONTROLS
    stores = {m: cached_store(m, args.requests, Path(args.cache)) for m in models}
    jobs = [(stores[m], m, w, s, c) for m in models for w in wafers for s in strategies
            for c in controls]
    results = run_all(jobs, args.jobs)
    print(cp_table(results) if args.cp_table else fig15_table(results))
    if args.plot and not args.cp_table:
        plot(results, Path(args.plot))
        print(f"wrote {args.plot}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    rss = max(resource.getrusage(who).ru_maxrss
              for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)) / 1024
    print(f"{len(jobs)} runs of batch {args.requests}: {time.perf_counter() - t0:.1f} s wall on "
          f"{args.jobs} processes, peak RSS {rss:.0f} MB (largest process)")


if __name__ == "__main__":
    main()
