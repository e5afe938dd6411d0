"""``hwmodel trace``: convert, analyse, synthesise and export recorded expert-selection traces."""

from __future__ import annotations

from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser("trace", help="convert, analyse and synthesise traces")
    commands = parser.add_subparsers(dest="trace_command", metavar="ACTION", required=True)

    convert = commands.add_parser("convert", help="read a trace source into a binary store")
    convert.add_argument("source", help="request file, subject/benchmark/tree folder, .tar.gz "
                                        "subject archive, or a list file of request paths")
    convert.add_argument("output", help="store file to write")
    convert.add_argument("--model", default=None,
                         help="model preset or YAML (default: inferred from <org>/<model>)")
    convert.add_argument("--limit", type=int, default=None, help="read only the first N requests")
    convert.add_argument("--format", default=None,
                         choices=["deepseek-csv", "vllm-jsonl", "flame-csv", "switch-csv"],
                         help="read another public format (default: detected from the first "
                              "line; the dataset's JSON otherwise)")
    convert.set_defaults(func=_convert)

    analyze = commands.add_parser("analyze", help="statistics of SPEC section 8: JSON + PNG")
    analyze.add_argument("source", help="store file or any trace source")
    analyze.add_argument("output", help="folder for summary.json and the plots")
    analyze.add_argument("--model", default=None, help="model preset or YAML (for JSON sources)")
    analyze.add_argument("--no-plots", action="store_true", help="write summary.json only")
    analyze.set_defaults(func=_analyze)

    synth = commands.add_parser("synth", help="sample a synthetic batch (seeded)")
    synth.add_argument("output", help="store file to write")
    synth.add_argument("--like", default=None,
                       help="store or trace source to fit (default: built-in parameters)")
    synth.add_argument("--model", default=None,
                       help="target model preset or YAML (default: the fitted trace's shape)")
    synth.add_argument("--requests", type=int, default=256, help="requests to sample")
    synth.add_argument("--seed", type=int, default=0, help="random seed")
    synth.set_defaults(func=_synth)

    export = commands.add_parser("export", help="write a store's requests back as dataset JSON")
    export.add_argument("store", help="store file")
    export.add_argument("output", help="folder; request i goes to <output>/<request id>")
    export.set_defaults(func=_export)


def _convert(args) -> int:
    from ..traces import open_batch
    store = open_batch(args.source, model=args.model, limit=args.limit, progress=True,
                       format=args.format)
    store.save(args.output)
    print(f"{args.output}: {len(store)} requests, {store.num_rows} rows, model "
          f"{store.model or 'unknown'}, {store.cut_steps} decode steps past iteration 127 "
          f"kept aside in {store.cut_requests} requests")
    if store.notes:
        print(f"notes: {store.notes}")
    return 0


def _analyze(args) -> int:
    from ..traces import open_batch
    from ..traces.analysis import write_report
    summary = write_report(open_batch(args.source, model=args.model), args.output,
                           plots=not args.no_plots)
    print(f"{args.output}/summary.json: layer-level top-20% coverage "
          f"{summary['layer_level']['mean_coverage']:.2f}, token-level "
          f"{summary['token_level']['mean_coverage']:.2f}, prefill/decode rho "
          f"{summary['prefill_vs_decode']['mean_spearman']:.2f}, hottest/mean "
          f"{summary['popularity']['max']:.1f}")
    return 0


def _synth(args) -> int:
    from ..traces import open_batch
    from ..traces.synth import synthesize
    like = open_batch(args.like) if args.like else None
    store = synthesize(like, model=args.model, requests=args.requests, seed=args.seed,
                       progress=True)
    store.save(args.output)
    print(f"{args.output}: {len(store)} synthetic requests of {store.model}, "
          f"{store.num_rows} rows")
    return 0


def _export(args) -> int:
    from ..traces import TraceStore
    store = TraceStore.load(args.store)
    out = Path(args.output)
    for index, request_id in enumerate(store.request_ids):
        name = request_id if request_id.endswith(".json") else f"{request_id}.json"
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(store.request_json(index))
    print(f"{out}: {len(store)} request files")
    return 0
