"""``hwmodel place``: expert placement on GPU clusters (docs/cluster.md).

Replays a trace's decode in batches through a cluster and placement policies, prints the table
and writes ``place.csv``, ``place.json`` and Fig. 17-style plots to ``--out``. ``--diagram``
draws the cluster graph; ``--params`` prints the cluster's parameters as YAML.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

__all__ = ["register", "write_outputs"]

DEFAULT_CLUSTER = "dgx-h100"
DEFAULT_BATCHES = "64,256,1024,4096,16384"
#: Most requests synthesised when no ``--trace`` is given: four times the largest batch of
#: Fig. 17 (16,384 tokens, one decode token per request), so a typo such as ``--batch
#: 100000000000`` is refused before numpy is asked for the memory.
MAX_SYNTH_REQUESTS = 65536


def _batches(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        raise ValueError(f"--batch: expected comma-separated integers, not {text!r}") from None
    if min(values) < 1:
        raise ValueError(f"--batch: batch sizes must be positive, not {text!r}")
    return values


def _check_counts(args, batches) -> None:
    """Refuse ``--requests``/``--replicas`` values that would be ignored or meaningless, and a
    synthetic trace beyond :data:`MAX_SYNTH_REQUESTS`."""
    if args.requests is not None and args.requests < 1:
        raise ValueError(f"--requests {args.requests}: expected a number of requests >= 1")
    if args.replicas < 1:
        raise ValueError(f"--replicas {args.replicas}: expected extra expert slots per GPU "
                         ">= 1 (with none, dup would equal default)")
    if args.trace is None:
        requests = args.requests if args.requests is not None else max(batches)
        option = "--requests" if args.requests is not None else "--batch"
        if requests > MAX_SYNTH_REQUESTS:
            raise ValueError(f"{option} {requests}: a synthetic trace of {requests:,} requests "
                             f"is too large; expected at most {MAX_SYNTH_REQUESTS:,}")


def _check_batches_fit(store, batches, source) -> None:
    """Refuse a batch larger than the trace's decode tokens: the table would print the batch
    asked for beside fewer tokens actually replayed."""
    have = int(store.decode_len.sum())
    if max(batches) > have:
        raise ValueError(f"--batch {max(batches)}: {source} holds only {have:,} decode "
                         f"tokens; expected batches of at most {have:,}")


def _policies(text: str) -> list[str]:
    from ..cluster.placement import POLICIES
    names = list(POLICIES) if text == "all" else [p.strip() for p in text.split(",")]
    for name in names:
        if name not in POLICIES:
            raise ValueError(f"--policy: unknown placement policy {name!r}; expected 'all' or "
                             f"a comma-separated list of {', '.join(POLICIES)}")
    return names


def _open_trace(args, batches):
    from ..cluster.replay import split_prefill
    from ..models import load_model
    from ..traces import open_batch
    from ..traces.adapters import detect_format, read_format
    if args.trace is None:
        from ..traces.synth import synthesize
        requests = args.requests if args.requests is not None else max(batches)
        store = synthesize(None, model=args.model or "qwen3-235b", requests=requests,
                           seed=args.seed)
    else:
        if not Path(args.trace).exists():
            raise FileNotFoundError(f"--trace: {args.trace!r} does not exist")
        fmt = detect_format(args.trace)
        store = read_format(args.trace, fmt, model=args.model) if fmt else \
            open_batch(args.trace, model=args.model)
    name = args.model or store.model
    if not name:
        raise ValueError(f"--trace {args.trace} names no model preset; pass --model")
    if not store.prefill_len.any():   # a decode-only trace: no guide for the policies
        raise ValueError(f"--trace {args.trace}: no request has prefill rows (a decode-only "
                         "trace); placement is guided by the prefill: convert it with "
                         "'hwmodel trace convert --prefill synth' for a synthetic guide")
    if not store.decode_len.any():
        store = split_prefill(store)
    _check_batches_fit(store, batches, f"the trace {args.trace}" if args.trace else
                       "the synthetic trace")
    return store, load_model(name)


def write_outputs(table, out_dir, title: str = "") -> list[Path]:
    """Write ``place.csv``, ``place.json`` and ``place.png`` (Fig. 17 style) to ``out_dir``.

    The files are written into a temporary folder and moved in when all are complete
    (:func:`hwmodel.cli.outputs.output_dir`)."""
    from ..cluster.replay import COLUMNS
    from .outputs import output_dir
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(table)
    names = ("place.csv", "place.json", "place.png")
    with output_dir(out_dir) as tmp:
        (tmp / names[0]).write_text(buffer.getvalue())
        (tmp / names[1]).write_text(json.dumps(table, indent=1))
        _plot(table, tmp / names[2], title)
    return [Path(out_dir) / name for name in names]


def _plot(table, path, title) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    batches = sorted({row["batch"] for row in table})
    policies = list(dict.fromkeys(row["policy"] for row in table))
    value = {(row["batch"], row["policy"]): row for row in table}
    # Multi-node: the inter-node bytes (what locality placement cuts); one node: NVLink bytes.
    link = "inter" if any(row["inter_bytes"] for row in table) else "intra"
    first = {b: value[(b, policies[0])][f"{link}_bytes"] or 1.0 for b in batches}
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    width = 0.8 / len(policies)
    for p, policy in enumerate(policies):
        xs = [b + p * width for b in range(len(batches))]
        axes[0].bar(xs, [value[(b, policy)]["speedup_vs_default"] for b in batches], width,
                    label=policy)
        axes[1].bar(xs, [value[(b, policy)][f"{link}_bytes"] / first[b] for b in batches],
                    width, label=policy)
    titles = ("MoE-time speedup over default",
              f"{link}-node all-to-all bytes / {policies[0]}'s")
    for ax, label in zip(axes, titles):
        ax.set_xticks([b + width * (len(policies) - 1) / 2 for b in range(len(batches))])
        ax.set_xticklabels([str(b) for b in batches])
        ax.set_xlabel("decode batch (tokens)")
        ax.set_title(label)
    axes[0].axhline(1.0, color="grey", linewidth=0.8)
    axes[1].set_ylim(bottom=0)   # bars start at zero, so their heights compare
    # one legend below both panels: inside a panel it covers bars
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, fontsize=8, ncol=min(len(policies), 8), loc="lower center")
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.12 if len(policies) > 8 else 0.08, 1, 1))
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)


def _format_table(table) -> str:
    head = (f"{'batch':>6} {'policy':<9} {'MoE us':>10} {'speedup':>8} {'max/mean':>8} "
            f"{'intra GB':>9} {'inter GB':>9} {'intra us':>9} {'inter us':>9}")
    lines = [head]
    for row in table:
        lines.append(f"{row['batch']:>6} {row['policy']:<9} {row['moe_time_us']:>10.1f} "
                     f"{row['speedup_vs_default']:>8.3f} {row['max_over_mean']:>8.3f} "
                     f"{row['intra_bytes'] / 1e9:>9.3f} {row['inter_bytes'] / 1e9:>9.3f} "
                     f"{row['intra_time_us']:>9.1f} {row['inter_time_us']:>9.1f}")
    return "\n".join(lines)


def _main(args) -> int:
    from ..cluster import build_cluster, load_cluster
    from ..cluster.replay import replay
    from ..config import dump_yaml
    from .outputs import check_output_dir
    policies = _policies(args.policy)
    batches = _batches(args.batch)
    _check_counts(args, batches)
    if args.out is not None:
        check_output_dir(args.out, "--out", args.force)
    cluster = build_cluster(load_cluster(args.cluster))
    if args.params:
        sys.stdout.write(dump_yaml(cluster.params, root="cluster"))
        return 0
    if args.diagram is not None:
        from ..cluster.diagram import draw_cluster
        print(draw_cluster(cluster, args.diagram))
        return 0
    store, model = _open_trace(args, batches)
    table = replay(store, cluster, model, policies, batches, replicas_per_gpu=args.replicas,
                   seed=args.seed, progress=not args.quiet and sys.stderr.isatty())
    print(_format_table(table))
    if args.out is not None:
        title = f"{model.name} on {cluster.params.name}"
        for path in write_outputs(table, args.out, title):
            print(path)
    return 0


def register(subparsers) -> None:

    from .helpformat import HelpFormatter
    from .outputs import add_force_option
    parser = subparsers.add_parser(
        "place", help="expert placement on GPU clusters (Remap, Dup, EPLB, locality ...)",
        formatter_class=HelpFormatter,
        description="Replay a trace's decode batches through a GPU cluster and placement "
                    "policies: MoE time, GPU load, all-to-all bytes and time.")
    parser.add_argument("--cluster", default=DEFAULT_CLUSTER, metavar="NAME|FILE",
                        help="cluster preset (dgx-h100, dgx-h100-8node) or YAML file with a "
                             "top-level 'cluster:' mapping")
    parser.add_argument("--policy", default="all",
                        help="'all' or a comma-separated list of policies")
    parser.add_argument("--batch", default=DEFAULT_BATCHES,
                        help="decode batch sizes in tokens, comma separated")
    parser.add_argument("--trace", default=None,
                        help="any trace source hwmodel reads (store, JSON tree, DeepSeek CSV "
                             "folder ...) (None: a synthetic batch of --model)")
    parser.add_argument("--model", default=None,
                        help="model preset or YAML (None: the trace's; qwen3-235b when "
                             "synthesising)")
    parser.add_argument("--requests", type=int, default=None,
                        help="synthetic requests (None: the largest batch)")
    parser.add_argument("--replicas", type=int, default=1,
                        help="extra expert slots per GPU for Dup (R)")
    parser.add_argument("--seed", type=int, default=0, help="seed (synthesis, random, k-means)")
    parser.add_argument("-o", "--out", type=Path, default=None, metavar="DIR",
                        help="folder for place.csv, place.json and place.png (None: print "
                             "only)")
    add_force_option(parser)
    parser.add_argument("--diagram", type=Path, default=None, metavar="FILE",
                        help="draw the cluster graph to FILE (.svg or .png) and stop")
    parser.add_argument("--params", action="store_true",
                        help="print the cluster's parameters as YAML and stop")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bar (it shows on a terminal)")
    parser.set_defaults(func=_main)
