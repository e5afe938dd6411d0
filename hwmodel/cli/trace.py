"""``hwmodel trace``: convert, analyse, synthesise and export recorded expert-selection traces.

Every action checks its output before reading anything (:mod:`hwmodel.cli.outputs`) and writes
it atomically; the output is the positional argument or ``-o/--out``.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path, PurePosixPath

from . import trace_record
from .outputs import add_force_option, check_output_dir, check_output_file, output_dir

_FORMATTER = argparse.ArgumentDefaultsHelpFormatter


def _add_output(parser, what: str) -> None:
    """The output as a positional argument or ``-o/--out`` (one of them, not both)."""
    parser.add_argument("output", nargs="?", default=None, help=what)
    parser.add_argument("-o", "--out", dest="out", default=None, metavar="PATH",
                        help="same as the positional output")
    add_force_option(parser)


def _output(args) -> Path:
    if args.output and args.out and args.output != args.out:
        raise ValueError(f"output given twice ({args.output!r} and --out {args.out!r}); "
                         "expected one")
    chosen = args.output or args.out
    if not chosen:
        raise ValueError(f"trace {args.trace_command}: no output; expected a path as the last "
                         "argument or -o PATH")
    return Path(chosen)


def _positive(option: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise ValueError(f"{option} {value}: expected a number >= 1")


def register(subparsers) -> None:
    """Add ``trace`` and its actions to the ``hwmodel`` command line."""
    parser = subparsers.add_parser("trace", help="convert, analyse and synthesise traces")
    commands = parser.add_subparsers(dest="trace_command", metavar="ACTION", required=True)

    convert = commands.add_parser("convert", help="read a trace source into a binary store",
                                  formatter_class=_FORMATTER)
    convert.add_argument("source", help="request file, subject/benchmark/tree folder, .tar.gz "
                                        "subject archive, or a list file of request paths")
    _add_output(convert, "store file to write")
    convert.add_argument("--model", default=None,
                         help="model preset or YAML (None: inferred from <org>/<model>)")
    convert.add_argument("--limit", type=int, default=None,
                         help="read only the first N requests (None: all)")
    convert.add_argument("--format", default=None,
                         choices=["deepseek-csv", "vllm-jsonl", "flame-csv", "switch-csv",
                                  "gpt-oss-json"],
                         help="read another public format (None: detected from the first "
                              "line or, for JSON, an object being gpt-oss-json; the dataset's "
                              "JSON otherwise)")
    convert.add_argument("--prefill", default=None, choices=["from-decode", "synth"],
                         help="decode-only gpt-oss-json: replay each request from its first "
                              "decode step, or synthesise its prompt's rows from the batch's "
                              "decode statistics (None: from-decode); noted in the store")
    convert.set_defaults(func=_convert)

    analyze = commands.add_parser("analyze", help="the paper's trace statistics "
                                  "(docs/traces.md#analyses): JSON + PNG",
                                  formatter_class=_FORMATTER)
    analyze.add_argument("source", help="store file or any trace source")
    _add_output(analyze, "folder for summary.json and the plots")
    analyze.add_argument("--model", default=None, help="model preset or YAML (for JSON sources)")
    analyze.add_argument("--no-plots", action="store_true", help="write summary.json only")
    analyze.set_defaults(func=_analyze)

    synth = commands.add_parser("synth", help="sample a synthetic batch (seeded)",
                                formatter_class=_FORMATTER)
    _add_output(synth, "store file to write")
    synth.add_argument("--like", default=None,
                       help="store or trace source to fit (None: built-in parameters)")
    synth.add_argument("--model", default=None,
                       help="target model preset or YAML (None: the fitted trace's shape)")
    synth.add_argument("--requests", type=int, default=256, help="requests to sample")
    synth.add_argument("--seed", type=int, default=0, help="random seed")
    synth.add_argument("--fit", default="auto", choices=["auto", "leader", "per-slot"],
                       help="how --like is fitted: leader (slot 0's chains + co-selection, for "
                            "top-k > 1), per-slot (every slot alike); auto: leader for a "
                            "top-k > 1 trace, per-slot for top-1")
    synth.set_defaults(func=_synth)

    export = commands.add_parser("export", help="write a store's requests back as dataset JSON",
                                 formatter_class=_FORMATTER)
    export.add_argument("store", help="store file")
    _add_output(export, "folder; request i goes to <output>/<request id>")
    export.set_defaults(func=_export)

    trace_record.add_parser(commands, _add_output, _FORMATTER)


def _convert(args) -> int:
    from ..traces import open_batch
    output = check_output_file(_output(args), "output", args.force)
    _positive("--limit", args.limit)
    store = open_batch(args.source, model=args.model, limit=args.limit, progress=True,
                       format=args.format, prefill=args.prefill)
    store.save(output)
    print(f"{output}: {len(store)} requests, {store.num_rows} rows, model "
          f"{store.model or 'unknown'}, {store.cut_steps} decode steps past iteration 127 "
          f"kept aside in {store.cut_requests} requests")
    if store.notes:
        print(f"notes: {store.notes}")
    return 0


def _analyze(args) -> int:
    from ..traces import open_batch
    from ..traces.analysis import write_report
    output = check_output_dir(_output(args), "output", args.force)
    store = open_batch(args.source, model=args.model)
    if len(store) == 0:
        raise ValueError(f"{args.source}: holds no requests; expected at least one")
    with output_dir(output) as tmp:
        summary = write_report(store, tmp, plots=not args.no_plots)
    rho = summary["prefill_vs_decode"]["mean_spearman"]
    rho = "n/a (no prefill or no decode rows)" if math.isnan(rho) else f"{rho:.2f}"
    print(f"{output}/summary.json: layer-level top-20% coverage "
          f"{summary['layer_level']['mean_coverage']:.2f}, token-level "
          f"{summary['token_level']['mean_coverage']:.2f}, prefill/decode rho {rho}, "
          f"hottest/mean {summary['popularity']['max']:.1f}")
    return 0


def _synth(args) -> int:
    from ..traces import open_batch
    from ..traces.synth import synthesize
    output = check_output_file(_output(args), "output", args.force)
    _positive("--requests", args.requests)
    if args.fit != "auto" and not args.like:
        raise ValueError(f"--fit {args.fit} needs --like STORE (a trace to fit)")
    like = open_batch(args.like) if args.like else None
    store = synthesize(like, model=args.model, requests=args.requests, seed=args.seed,
                       progress=True, fit_method=args.fit)
    store.save(output)
    print(f"{output}: {len(store)} synthetic requests of {store.model}, "
          f"{store.num_rows} rows")
    return 0


def export_name(request_id: str, store: str) -> str:
    """The file name of ``request_id`` inside the export folder: a relative path without
    ``..``, so every request lands inside the folder the user named.

    Raises
    ------
    ValueError
        An absolute id or one with ``..`` or an empty part.
    """
    name = request_id if request_id.endswith(".json") else f"{request_id}.json"
    parts = PurePosixPath(name).parts
    if (name.startswith("/") or "\\" in name or any(p in ("", ".", "..") for p in parts)):
        raise ValueError(f"{store}: request id {request_id!r} would leave the export folder; "
                         "expected a relative path without '..'")
    return name


def _export(args) -> int:
    from ..traces import TraceStore
    out = check_output_dir(_output(args), "output", args.force)
    store = TraceStore.load(args.store)
    names = [export_name(request_id, args.store) for request_id in store.request_ids]
    seen = set()
    for name in names:
        if name in seen:
            raise ValueError(f"{args.store}: two requests would both be written to {name!r}; "
                             "expected distinct request ids")
        seen.add(name)
    with output_dir(out) as tmp:
        for index, name in enumerate(names):
            path = tmp / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(store.request_json(index))
    print(f"{out}: {len(store)} request files", file=sys.stdout)
    return 0
