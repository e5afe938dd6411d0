"""``hwmodel replay``: replay a trace batch on a wafer under the paper's strategies.

Also the functions the default job and scripts call: :func:`replay_strategies` (several
strategies, optionally on two processes), :func:`write_outputs` (CSV, JSON, Fig. 12-style plot,
link heat map) and :func:`run_default`.
"""

from __future__ import annotations

import contextlib
import json
import sys
from concurrent.futures import as_completed
from pathlib import Path

from .runs import DEFAULT_BATCH, ReplayJob, _labels, open_trace, summary_table, wafer_params_of

__all__ = ["DEFAULT_BATCH", "check_inputs", "register", "replay_strategies", "run_default",
           "summary_table", "write_outputs"]

#: The trace a pool worker opened, keyed by :attr:`ReplayJob.trace_key`: a worker runs several
#: jobs of one trace and reads it once (the pool ends with the call, so it never goes stale).
_WORKER_TRACE: dict = {}


@contextlib.contextmanager
def _errors_of(job: ReplayJob):
    """Any input error of ``job`` as a plain, picklable one-line ValueError naming its run."""
    try:
        yield
    except (ValueError, OSError, EOFError) as error:
        raise ValueError(f"replay on {job.wafer_name} ({job.strategy}): {error}") from None


def _one(job: ReplayJob, opened=None, built=None):
    """One (wafer, strategy) run (errors: :func:`_errors_of`). ``opened``: the trace's
    ``(store, model)``, ``built``: the wafer, if the caller has them already."""
    with _errors_of(job):
        return job.run(opened, built)


def _open_for(job: ReplayJob):
    """The ``(store, model)`` of ``job``'s trace (errors: :func:`_errors_of`)."""
    with _errors_of(job):
        return job.open()


def _worker_one(job: ReplayJob):
    """:func:`_one` in a pool worker, which opens the job's trace once for all its jobs."""
    if job.trace_key not in _WORKER_TRACE:
        _WORKER_TRACE.clear()
        _WORKER_TRACE[job.trace_key] = _open_for(job)
    return _one(job, _WORKER_TRACE[job.trace_key])


def _ignore_interrupt() -> None:
    """Worker initializer: Ctrl-C is the parent's to handle (one line, exit 130), so the
    workers print no traceback of their own."""
    import signal
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def replay_jobs(trace, wafers: dict, strategies, *, batch=None, model=None,
                params=None) -> list[ReplayJob]:
    """The jobs of every (wafer, strategy) pair, in that order; ``wafers``:
    ``{name: WaferParams}``."""
    return [ReplayJob(trace, batch, model, name, wafer, strategy, params)
            for name, wafer in wafers.items() for strategy in strategies]


def replay_strategies(trace, wafers, strategies, *, batch=None, model=None, params=None,
                      jobs: int = 1, progress: bool = False, opened=None):
    """Run every (wafer, strategy) pair; results in that order (deterministic).

    ``wafers``: names (presets or YAML files), or ``{name: Wafer}`` as :func:`check_inputs`
    built them. A wafer is built once: runs in this process share it, a pool worker builds
    each job's wafer from the parameters the job carries. ``jobs > 1`` runs them on that many
    processes (each opens the trace once). ``opened``: the trace's ``(store, model)`` as
    :func:`check_inputs` opened it, for runs in this process (else it is opened once here).
    """
    from ..params import load_wafer
    from ..topologies.wafer import build_wafer
    built = dict(wafers) if isinstance(wafers, dict) else {}
    work = replay_jobs(trace, {name: wafer_params_of(built[name]) if name in built
                               else load_wafer(name) for name in wafers},
                       strategies, batch=batch, model=model, params=params)
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(work), desc="replay", unit="run", file=sys.stderr)
    try:
        if jobs > 1 and len(work) > 1:
            return _run_pool(work, jobs, bar)
        results = []
        for job in work:
            opened = opened or _open_for(job)
            if job.wafer_name not in built:
                built[job.wafer_name] = build_wafer(job.wafer)
            results.append(_one(job, opened, built[job.wafer_name]))
            if bar:
                bar.update()
        return results
    finally:
        if bar:
            bar.close()   # before any error line, never after it


def _run_pool(work, jobs, bar):
    """``work`` on ``jobs`` processes; results in the order of ``work``."""
    from concurrent.futures import ProcessPoolExecutor  # its module only with --jobs > 1

    # heaviest runs first (prediction runs drive the twins layer by layer), so that the
    # processes finish together; results come back in the requested order.
    from ..system import get_strategy
    order = sorted(range(len(work)), key=lambda i: not get_strategy(work[i].strategy).predicts)
    done = {}
    pool = ProcessPoolExecutor(max_workers=jobs, initializer=_ignore_interrupt)
    try:
        futures = {pool.submit(_worker_one, work[i]): i for i in order}
        for future in as_completed(futures):
            done[futures[future]] = future.result()
            if bar:
                bar.update()
    except BaseException:
        # Ctrl-C or a failed run: stop the other runs now instead of waiting for them.
        # The pool has no public way to end its workers; they hold no state worth saving.
        for process in list(getattr(pool, "_processes", {}).values()):
            process.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return [done[i] for i in range(len(work))]


def write_outputs(results, out_dir, plots: bool = True, names=None, title: str = "",
                  progress: bool = False, wafers=None) -> list[Path]:
    """Write ``replay.csv`` (artefact columns), ``replay.json`` (breakdowns), and with
    ``plots`` a Fig. 12-style plot (PNG + SVG) and one link-traffic heat map per run
    (``wafers``: ``{name: Wafer}`` already built; the others are built from their names).

    The files are written into a temporary folder beside ``out_dir`` and moved in when all are
    complete (:func:`hwmodel.cli.outputs.output_dir`).
    """
    from ..system.results import csv_lines
    from .outputs import output_dir
    labels = _labels(results, names)
    with output_dir(out_dir) as tmp:
        (tmp / "replay.csv").write_text("".join(line + "\n" for line in csv_lines(results)))
        records = [dict(r.to_json(), wafer=w) for w, r in zip(labels, results)]
        (tmp / "replay.json").write_text(json.dumps(records, indent=1))
        if plots and any(r.strategy == "base" for r in results):
            _fig12(results, labels, tmp / "speedup", title)
        if plots:
            _heat_maps(results, labels, tmp, progress, wafers)
        names_written = sorted(p.relative_to(tmp) for p in tmp.rglob("*") if p.is_file())
    return [Path(out_dir) / n for n in names_written]


def _fig12(results, labels, stem, title) -> list[Path]:
    """Fig. 12-style bars: throughput speedup and hop reduction over base, per wafer.

    A run with zero hops (``ep`` keeps every token on its expert's die) has no finite
    reduction: it is drawn as a hatched bar at the top of the axis labelled "0 hops".
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    wafers = list(dict.fromkeys(labels))
    from ..system import strategy_names
    strategies = [s for s in strategy_names() if any(r.strategy == s for r in results)]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    width = 0.8 / max(1, len(wafers))
    finite = [1.0]
    zero_hops = []
    for m, wafer in enumerate(wafers):
        runs = {r.strategy: r for w, r in zip(labels, results) if w == wafer}
        base = runs.get("base")
        if base is None:
            continue
        xs = [i + m * width for i in range(len(strategies))]
        speed = [runs[s].throughput / base.throughput if s in runs and base.throughput
                 else 0 for s in strategies]
        hop = []
        for x, s in zip(xs, strategies):
            if s in runs and runs[s].hops == 0:
                hop.append(0)
                zero_hops.append((x, m))
            else:
                hop.append(base.hops / runs[s].hops if s in runs else 0)
        finite += [h for h in hop if h]
        colour = f"C{m}"
        axes[0].bar(xs, speed, width, label=wafer, color=colour)
        axes[1].bar(xs, hop, width, label=wafer, color=colour)
    axes[0].set_ylim(0, max(1.0, *(r.throughput / b.throughput for r, b in _with_base(
        results, labels) if b.throughput)) * 1.1)
    axes[1].set_yscale("log")
    top = max(finite) * 4
    for x, m in zero_hops:
        axes[1].bar([x], [top], width, color="white", edgecolor=f"C{m}", hatch="//")
        # upright inside its own bar: side by side labels of several wafers never collide
        axes[1].text(x, top / 1.3, "0 hops", ha="center", va="top", rotation=90, fontsize=7,
                     bbox={"facecolor": "white", "edgecolor": "none", "pad": 1})
    axes[1].set_ylim(0.5, top * 1.5)
    centres = [i + width * (len(wafers) - 1) / 2 for i in range(len(strategies))]
    for ax, label in zip(axes, ("throughput speedup over base (x)",
                                "hop reduction over base (x, log)")):
        ax.set_xticks(centres)
        ax.set_xticklabels(strategies)
        ax.set_xlabel("strategy")
        ax.set_ylabel(label)
    # one legend below both panels: inside a panel it covers bars
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, title="wafer", loc="lower center", ncol=max(1, len(wafers)),
               fontsize=8)
    fig.suptitle(title or "replay: speedup and hop reduction over base")
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    paths = []
    for suffix in (".png", ".svg"):
        path = Path(str(stem) + suffix)
        # a fixed hash salt makes the SVG's element ids, hence its bytes, the same every run
        with matplotlib.rc_context({"svg.hashsalt": "hwmodel"}):
            fig.savefig(path, dpi=120, metadata={"Date": None} if suffix == ".svg" else None)
        paths.append(path)
    plt.close(fig)
    return paths


def _with_base(results, labels):
    """``(run, base run of the same wafer)`` for every run whose wafer has a base run."""
    base = {w: r for w, r in zip(labels, results) if r.strategy == "base"}
    return [(r, base[w]) for w, r in zip(labels, results) if w in base]


def _heat_maps(results, labels, out, progress=False, wafers=None) -> list[Path]:
    """One link-traffic heat map per run with traffic, PNG and SVG, named by wafer name
    (``wafers``: ``{name: Wafer}`` already built)."""
    from ..diagrams import draw_wafer
    from ..topologies.wafer import wafer_from
    files = []
    built = dict(wafers or {})
    runs = list(zip(labels, results))
    if progress:
        from tqdm import tqdm
        runs = tqdm(runs, desc="heat maps", unit="map", file=sys.stderr)
    for wafer_name, r in runs:
        values = {i: link["bytes"] for i, link in enumerate(r.per_link)}
        if not any(values.values()):
            continue
        if wafer_name not in built:
            built[wafer_name] = wafer_from(wafer_name)
        stem = f"links-{Path(wafer_name).stem}-{r.strategy.replace('+', '-')}"
        title = f"{wafer_name}: D2D link traffic, {r.strategy} (bytes per link)"
        for suffix in (".svg", ".png"):
            files.append(draw_wafer(built[wafer_name], out / (stem + suffix),
                                    link_values=values, title=title))
    return files


def run_default(out_dir="hwmodel-out", stream=None, progress: bool = True) -> list[Path]:
    """The README's main job: all five strategies on tsmc-sow on the built-in synthetic
    Llama-4 batch (64 requests); prints the summary table, writes outputs to ``out_dir``."""
    stream = sys.stdout if stream is None else stream
    from ..system import STRATEGIES
    results = replay_strategies(None, ["tsmc-sow"], STRATEGIES, batch=DEFAULT_BATCH,
                                model="llama4-maverick", progress=progress)
    names = ["tsmc-sow"] * len(results)
    print(summary_table(results, names), file=stream)
    _print_notes(results, names)
    title = f"built-in synthetic Llama-4 batch of {DEFAULT_BATCH} requests on tsmc-sow"
    return write_outputs(results, out_dir, names=names, title=title, progress=progress)


def _split_list(text: str, option: str) -> list[str]:
    items = [item.strip() for item in text.split(",")]
    if any(not item for item in items):
        raise ValueError(f"{option} {text!r}: empty entry; expected a comma list of names")
    duplicates = sorted({item for item in items if items.count(item) > 1})
    if duplicates:
        raise ValueError(f"{option} {text!r}: {duplicates[0]!r} given twice; expected each "
                         "once")
    return items


def check_inputs(args):
    """Validate everything in the parent, before any worker starts.

    Returns ``(wafers, strategies, batch, opened)``: ``{name: built Wafer}``, the strategies,
    the batch
    size (the built-in batch's size when no trace is given) and the trace's ``(store, model)``
    as opened for the checks (the runs in this process reuse it).

    Raises
    ------
    ValueError, ConfigError
        One line naming the option, the bad value and what was expected.
    """
    from ..models import load_model
    from ..system import strategy_names
    from ..system.capacity import check_experts_fit, check_run
    from ..topologies.wafer import wafer_from
    known = strategy_names()
    strategies = (list(known) if args.strategy == "all"
                  else _split_list(args.strategy, "--strategy"))
    for s in strategies:
        if s not in known:
            raise ValueError(f"--strategy: unknown strategy {s!r}; expected 'all' or a "
                             f"comma list of {', '.join(known)}")
    if args.jobs < 1:
        raise ValueError(f"--jobs {args.jobs}: expected a number of processes >= 1")
    if args.batch is not None and args.batch <= 0:
        raise ValueError(f"--batch {args.batch}: expected a number of requests >= 1")
    wafers = _split_list(args.wafer, "--wafer")
    built = {name: wafer_from(name) for name in wafers}
    if args.model and not args.ignore_capacity:
        # a named model is checked before the trace is read (that can take a while)
        for wafer in built.values():
            check_experts_fit(load_model(args.model), wafer)
    store, model = open_trace(args.trace, args.batch, args.model)
    for wafer in built.values():
        check_run(model, wafer, store, args.batch, args.trace, "--batch", args.ignore_capacity)
    batch = args.batch or (DEFAULT_BATCH if args.trace is None else None)
    return built, strategies, batch, (store, model)


def _main(args) -> int:
    import attrs

    from ..config import load_yaml
    from ..system import ReplayParams
    from ..system.physical import switches_on
    from ..system.results import csv_lines
    from .outputs import check_output_dir
    if args.out:
        check_output_dir(args.out, "--out", args.force)
    wafers, strategies, batch, opened = check_inputs(args)
    params = (load_yaml(ReplayParams, args.params, path="replay") if args.params
              else ReplayParams())
    if args.replica_GB is not None:
        if not 0 <= args.replica_GB < float("inf"):
            raise ValueError(f"--replica-GB: expected a finite size >= 0, not "
                             f"{args.replica_GB!r}")
        params = attrs.evolve(params, replica_capacity_bytes=int(args.replica_GB * 1e9))
    if args.control is not None:
        params = attrs.evolve(params, control=args.control)
    params = _physical_mode(args, params, wafers, opened)
    if args.rtl is not None:
        from .cosim import run_cosim
        return run_cosim(args, wafers, strategies, params, opened)
    if args.window is not None or args.vcd is not None:
        raise ValueError("--window and --vcd go with --rtl UNITS")
    results = replay_strategies(args.trace, wafers, strategies, batch=batch,
                                model=args.model, params=params, jobs=args.jobs,
                                progress=not args.quiet, opened=opened)
    names = [name for name in wafers for _ in strategies]
    if switches_on(params):
        print(f"physical mode: switches on: {', '.join(switches_on(params))}")
    print(summary_table(results, names))
    print()
    print("\n".join(csv_lines(results)[1:]))
    _print_notes(results, names)
    if args.out:
        title = (f"{args.trace or 'built-in synthetic batch'}: batch {results[0].batch} on "
                 f"{', '.join(wafers)}")
        for f in write_outputs(results, args.out, plots=not args.no_plots, names=names,
                               title=title, progress=not args.quiet, wafers=wafers):
            print(f"wrote {f}")
    return 0


def _physical_mode(args, params, wafers, opened):
    """``--mode physical`` turns every physical switch on; a run the switches refuse (a batch
    whose weights and KV cache do not fit) is refused here, before any run starts."""
    from ..system import Replay
    from ..system.attention import require_attention_shape
    from ..system.physical import all_switches_on, run_budget, switches_on
    if args.mode == "physical":
        params = all_switches_on(params)
    elif args.mode != "paper":
        raise ValueError(f"--mode {args.mode!r}: expected 'paper' or 'physical'")
    if switches_on(params):
        store, model = opened
        if params.attention_time:
            require_attention_shape(model)
        for wafer in wafers.values():
            run_budget(Replay(wafer=wafer, model=model, store=store, params=params))
    return params


def _print_notes(results, names) -> None:
    """Each run's notes (paper mode holding more than the HBM ...), one line each, on stderr
    so that the summary and the CSV lines stay the paper's."""
    for wafer, r in zip(_labels(results, names), results):
        for note in r.notes:
            print(f"warning: {wafer} {r.strategy}: {note}", file=sys.stderr)


def register(subparsers) -> None:
    """Add ``replay`` to the ``hwmodel`` command line."""

    from .helpformat import HelpFormatter
    from .outputs import add_force_option
    p = subparsers.add_parser(
        "replay", help="replay expert-selection traces on a wafer (the paper's strategies)",
        formatter_class=HelpFormatter,
        description="Trace replay (docs/replay.md): per-layer barrier, prefill plus decode, "
                    "strategies base, ep, allo, pred, allo+pred; prints the artefact's CSV "
                    "columns and a summary table.")
    p.add_argument("--trace", default=None,
                   help="trace source: store file, request JSON, subject/benchmark folder, "
                        ".tar.gz or list file (None: built-in synthetic Llama-4 batch)")
    p.add_argument("--wafer", default="tsmc-sow",
                   help="wafer preset(s) or YAML file(s), comma separated")
    p.add_argument("--strategy", default="all",
                   help="'all' (every registered strategy, plug-ins included) or a comma "
                        "list of names: base,ep,allo,pred,allo+pred or a plug-in's")
    p.add_argument("--batch", type=int, default=None,
                   help=f"use the first BATCH requests in batch order (None: the whole trace, "
                        f"or {DEFAULT_BATCH} requests of the built-in batch)")
    p.add_argument("--model", default=None,
                   help="model preset or YAML (None: inferred from the trace)")
    p.add_argument("--params", default=None,
                   help="YAML file with a 'replay:' mapping of ReplayParams fields")
    p.add_argument("--replica-GB", type=float, default=None,
                   help="bound each die's replica region to this many GB (1e9 bytes; LRU "
                        "eviction; None: unbounded, as in the paper)")
    p.add_argument("--mode", default="paper",
                   help="paper (the study's idealised wafer) or physical (every physical "
                        "switch on; see docs/physical.md)")
    p.add_argument("--control", default=None,
                   help="what each MoE layer's launch waits for: free (the paper), global-cp "
                        "(the Global CP's cycles) or host-cpu (Algorithm 1 on the host over "
                        "PCIe; the study's Fig. 15) (None: the --params file's, else free)")
    p.add_argument("--ignore-capacity", action="store_true",
                   help="replay even if the model's experts exceed the wafer's usable HBM")
    p.add_argument("--jobs", type=int, default=2,
                   help="processes for several runs (results are identical)")
    p.add_argument("-o", "--out", default=None, metavar="DIR",
                   help="folder for replay.csv, replay.json, speedup.png/.svg and link heat "
                        "maps (None: print only)")
    add_force_option(p)
    p.add_argument("--no-plots", action="store_true", help="skip the plots with --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    from .cosim import add_cosim_options
    add_cosim_options(p)
    p.set_defaults(func=_main)
