"""``hwmodel replay``: replay a trace batch on a wafer under the paper's strategies.

Also the functions the default job and scripts call: :func:`replay_strategies` (several
strategies, optionally on two processes), :func:`write_outputs` (CSV, JSON, Fig. 12-style plot,
link heat map) and :func:`run_default`.
"""

from __future__ import annotations

import json
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

__all__ = ["register", "replay_strategies", "run_default", "write_outputs"]


def _open(trace, batch, model_name):
    from ..models import load_model
    from ..traces import open_batch
    if trace is None:
        from ..traces.synth import default_batch
        store = default_batch(model_name or "llama4-maverick", requests=batch or 64)
    else:
        store = open_batch(trace, model=model_name, limit=batch)
    name = model_name or store.model
    if not name:
        raise ValueError(f"the trace {trace} names no model preset; pass --model")
    return store, load_model(name)


def _one(job):
    trace, batch, model_name, wafer_name, strategy, params = job
    from ..params import load_wafer
    from ..system import Replay
    from ..topologies.wafer import build_wafer
    store, model = _open(trace, batch, model_name)
    replay = Replay(wafer=build_wafer(load_wafer(wafer_name)), model=model, store=store,
                    params=params)
    return replay.run(strategy)


def replay_strategies(trace, wafers, strategies, *, batch=None, model=None, params=None,
                      jobs: int = 1, progress: bool = False):
    """Run every (wafer, strategy) pair; results in that order (deterministic).

    ``jobs > 1`` runs them on that many processes (each reopens the trace).
    """
    work = [(trace, batch, model, w, s, params) for w in wafers for s in strategies]
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(work), desc="replay", unit="run", file=sys.stderr)
    results = []
    if jobs > 1 and len(work) > 1:
        # heaviest runs first (prediction runs drive the twins layer by layer), so that the
        # processes finish together; results come back in the requested order.
        order = sorted(range(len(work)), key=lambda i: "pred" not in work[i][4])
        done = {}
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = {pool.submit(_one, work[i]): i for i in order}
            for future in as_completed(futures):
                done[futures[future]] = future.result()
                if bar:
                    bar.update()
        results = [done[i] for i in range(len(work))]
    else:
        for job in work:
            results.append(_one(job))
            if bar:
                bar.update()
    if bar:
        bar.close()
    return results


def summary_table(results) -> str:
    """One screen: per run, time, throughput, hops, and speedup/hop reduction over base."""
    base = {(r.mesh_x, r.mesh_y): r for r in results if r.strategy == "base"}
    lines = [(f"{'wafer':>6} {'strategy':>10} {'time ms':>10} {'decode ms':>10} "
             f"{'tok/s':>8} {'hops':>9} {'speedup':>8} {'hop red.':>9}")]
    for r in results:
        b = base.get((r.mesh_x, r.mesh_y))
        speed = f"{r.throughput / b.throughput:.2f}x" if b and b.throughput else "-"
        red = (f"{b.hops / r.hops:.0f}x" if b and r.hops else ("inf" if b else "-"))
        lines.append(f"{r.mesh_x}x{r.mesh_y:<4} {r.strategy:>10} {r.time_ns / 1e6:10.2f} "
                     f"{r.decode_ns / 1e6:10.2f} {r.throughput:8.0f} {r.hops:9d} {speed:>8} "
                     f"{red:>9}")
    return "\n".join(lines)


def write_outputs(results, out_dir, plots: bool = True) -> list[Path]:
    """Write ``replay.csv`` (artefact columns), ``replay.json`` (breakdowns), and with
    ``plots`` a Fig. 12-style plot and one link-traffic heat map per run."""
    from ..system.replay import ReplayResult
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = [out / "replay.csv", out / "replay.json"]
    files[0].write_text(ReplayResult.CSV_HEADER + "\n"
                        + "".join(r.row() + "\n" for r in results))
    files[1].write_text(json.dumps([r.to_json() for r in results], indent=1))
    if plots and any(r.strategy == "base" for r in results):
        files.append(_fig12(results, out / "speedup.png"))
    if plots:
        files.extend(_heat_maps(results, out))
    return files


def _fig12(results, path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    meshes = sorted({(r.mesh_x, r.mesh_y) for r in results})
    strategies = [s for s in ("base", "ep", "allo", "pred", "allo+pred")
                  if any(r.strategy == s for r in results)]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    width = 0.8 / max(1, len(meshes))
    for m, mesh in enumerate(meshes):
        runs = {r.strategy: r for r in results if (r.mesh_x, r.mesh_y) == mesh}
        base = runs.get("base")
        if base is None:
            continue
        xs = [i + m * width for i in range(len(strategies))]
        speed = [runs[s].throughput / base.throughput if s in runs else 0 for s in strategies]
        hop = [base.hops / max(1, runs[s].hops) if s in runs else 0 for s in strategies]
        axes[0].bar(xs, speed, width, label=f"{mesh[0]}x{mesh[1]}")
        axes[1].bar(xs, hop, width, label=f"{mesh[0]}x{mesh[1]}")
    for ax, title in zip(axes, ("throughput speedup over base", "hop reduction over base")):
        ax.set_xticks([i + width * (len(meshes) - 1) / 2 for i in range(len(strategies))])
        ax.set_xticklabels(strategies)
        ax.set_title(title)
        ax.legend()
    axes[1].set_yscale("log")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def _heat_maps(results, out) -> list[Path]:
    from ..diagrams import draw_wafer
    from ..params import load_wafer
    from ..topologies.wafer import build_wafer
    files = []
    for r in results:
        name = {(3, 8): "tsmc-sow", (5, 5): "dojo"}.get((r.mesh_x, r.mesh_y))
        if name is None:
            continue
        wafer = build_wafer(load_wafer(name))
        values = {i: link["bytes"] for i, link in enumerate(r.per_link)}
        if not any(values.values()):
            continue
        path = out / f"links-{name}-{r.strategy.replace('+', '-')}.svg"
        files.append(draw_wafer(wafer, path, link_values=values))
    return files


def run_default(out_dir="hwmodel-out", stream=None) -> list[Path]:
    """The README's main job: all five strategies on tsmc-sow on the built-in synthetic
    Llama-4 batch (64 requests); prints the summary table, writes outputs to ``out_dir``."""
    stream = sys.stdout if stream is None else stream
    from ..system import STRATEGIES
    results = replay_strategies(None, ["tsmc-sow"], STRATEGIES, batch=64,
                                model="llama4-maverick")
    print(summary_table(results), file=stream)
    return write_outputs(results, out_dir)


def _main(args) -> int:
    import attrs

    from ..config import load_yaml
    from ..system import STRATEGIES, ReplayParams
    strategies = list(STRATEGIES) if args.strategy == "all" else args.strategy.split(",")
    for s in strategies:
        if s not in STRATEGIES:
            raise ValueError(f"--strategy: unknown strategy {s!r}; expected 'all' or a "
                             f"comma list of {', '.join(STRATEGIES)}")
    params = (load_yaml(ReplayParams, args.params, path="replay") if args.params
              else ReplayParams())
    if args.replica_GB is not None:
        if args.replica_GB < 0:
            raise ValueError(f"--replica-GB: expected a size >= 0, not {args.replica_GB!r}")
        params = attrs.evolve(params, replica_capacity_bytes=int(args.replica_GB * 1e9))
    results = replay_strategies(args.trace, args.wafer.split(","), strategies,
                                batch=args.batch, model=args.model, params=params,
                                jobs=args.jobs, progress=not args.quiet)
    print(summary_table(results))
    print()
    print("\n".join(r.row() for r in results))
    if args.out:
        for f in write_outputs(results, args.out, plots=not args.no_plots):
            print(f"wrote {f}")
    return 0


def register(subparsers) -> None:
    """Add ``replay`` to the ``hwmodel`` command line."""
    p = subparsers.add_parser(
        "replay", help="replay expert-selection traces on a wafer (the paper's strategies)",
        description="Trace replay of SPEC section 6: per-layer barrier, prefill plus decode, "
                    "strategies base, ep, allo, pred, allo+pred; prints the artefact's CSV "
                    "columns and a summary table.")
    p.add_argument("--trace", default=None,
                   help="trace source: store file, request JSON, subject/benchmark folder, "
                        ".tar.gz or list file (default: built-in synthetic Llama-4 batch)")
    p.add_argument("--wafer", default="tsmc-sow",
                   help="wafer preset(s) or YAML, comma separated (default tsmc-sow)")
    p.add_argument("--strategy", default="all",
                   help="'all' or comma list of base,ep,allo,pred,allo+pred (default all)")
    p.add_argument("--batch", type=int, default=None,
                   help="use the first BATCH requests in batch order (default: all)")
    p.add_argument("--model", default=None,
                   help="model preset or YAML (default: inferred from the trace)")
    p.add_argument("--params", default=None,
                   help="YAML file with a 'replay:' mapping of ReplayParams fields")
    p.add_argument("--replica-GB", type=float, default=None,
                   help="bound each die's replica region to this many GB (1e9 bytes; LRU "
                        "eviction; default unbounded, as in the paper)")
    p.add_argument("--jobs", type=int, default=2,
                   help="processes for several runs (default 2; results are identical)")
    p.add_argument("--out", default=None,
                   help="folder for replay.csv, replay.json, speedup.png and link heat maps")
    p.add_argument("--no-plots", action="store_true", help="skip the plots with --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_main)
