"""``hwmodel ablate``: each strategy under each physical switch, relative to paper mode.

A thin command over the sweep: it builds the ablation grid (:mod:`hwmodel.sweep.ablation`),
runs what its results store lacks with :func:`~hwmodel.sweep.run_sweep`, and writes the table,
the figure and the findings of the store's runs.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

__all__ = ["register"]


def _names(text: str, option: str) -> list[str]:
    names = [part.strip() for part in text.split(",")]
    if not all(names):
        raise ValueError(f"{option}: expected a comma-separated list of names, not {text!r}")
    return names


def _batches(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        raise ValueError(f"--batches: expected comma-separated integers, not {text!r}") from None
    if any(v <= 0 for v in values):
        raise ValueError(f"--batches: expected positive request counts, not {text!r}")
    return values


def _grid(args):
    from ..sweep.ablation import ablation_grid
    if args.max_iterations is not None and args.max_iterations < 1:
        raise ValueError(f"--max-iterations: expected an integer >= 1, not "
                         f"{args.max_iterations!r}")
    params = {} if args.max_iterations is None else {"max_iterations": args.max_iterations}
    return ablation_grid(
        models=_names(args.models, "--models"), batches=_batches(args.batches),
        wafers=_names(args.wafers, "--wafers"),
        strategies=None if args.strategies is None else _names(args.strategies, "--strategies"),
        switches=None if args.switches is None else _names(args.switches, "--switches"),
        params=params, seed=args.seed, where="hwmodel ablate")


def _command(args) -> str:
    words = ["hwmodel", "ablate", "--models", args.models, "--batches", args.batches,
             "--wafers", args.wafers]
    for flag, value in (("--strategies", args.strategies), ("--switches", args.switches),
                        ("--max-iterations", args.max_iterations)):
        if value is not None:
            words += [flag, str(value)]
    return shlex.join(words + ["--store", args.store, "-o", args.out])


def write_outputs(results, out, command: str, grid=None, keys=None) -> list[Path]:
    """Write ``ablation.csv`` (per run), ``ablation.md`` (summary table and findings) and
    ``ablation.png`` of the store ``results`` (only the runs of ``grid`` and ``keys`` if
    given: :func:`hwmodel.sweep.ablation.ablation`) into the folder ``out``, atomically."""
    from ..sweep import ablation as ab
    from .outputs import output_dir
    runs = ab.ablation(results, grid, keys)
    if not runs:
        raise ValueError(f"{results}: no run to report")
    text = (f"# Physical switches: ablation\n\nMade by `{command}`.\n\n{ab.markdown(runs)}\n\n"
            f"{ab.findings(runs)}\n")
    with output_dir(out) as tmp:
        (tmp / "ablation.csv").write_text(ab.run_csv(runs))
        (tmp / "ablation.md").write_text(text)
        names = ["ablation.csv", "ablation.md"]
        if ab.figure(runs, tmp / "ablation.png") is not None:
            names.append("ablation.png")
    return [Path(out) / name for name in names]


def _main(args) -> int:
    from ..sweep import run_sweep
    from ..sweep.ablation import ablation, findings, is_refusal
    from .outputs import check_output_dir
    if args.jobs is not None and args.jobs < 1:
        raise ValueError(f"--jobs: expected a process count >= 1, not {args.jobs!r}")
    grid = _grid(args)
    check_output_dir(args.out, "--out", args.force)
    store = Path(args.store)
    if store.exists() and not store.is_file():
        raise ValueError(f"--store: {str(store)!r} exists and is not a results file")
    if store.resolve().is_relative_to(Path(args.out).resolve()):
        raise ValueError(f"--store {str(store)!r} is inside --out {args.out!r}; expected it "
                         "outside (the output folder is replaced as a whole)")
    command = _command(args)
    try:
        outcome = run_sweep(grid, store, store.parent / "trace-cache", jobs=args.jobs,
                            command=command, log=None if args.quiet else sys.stderr)
    except KeyboardInterrupt:
        print(f"hwmodel ablate: interrupted; finished runs are in {store}, rerun the same "
              "command to do the rest", file=sys.stderr)
        return 130
    print(outcome.summary())
    for path in write_outputs(store, args.out, command, grid, outcome.keys):
        print(f"wrote {path}")
    print(findings(ablation(store, grid, outcome.keys)))
    # a switch refusing a run is a finding; any other failure is a fault (exit 1, as sweep)
    return 1 if any(not is_refusal(error) for _, error in outcome.failures) else 0


def register(subparsers) -> None:
    """Add ``ablate`` to the ``hwmodel`` command line."""
    from ..sweep.ablation import DEFAULT_BATCHES, DEFAULT_MODELS, DEFAULT_WAFERS
    from .helpformat import HelpFormatter
    from .outputs import add_force_option
    p = subparsers.add_parser(
        "ablate", formatter_class=HelpFormatter,
        help="run each strategy under each physical switch alone, all together and in paper "
             "mode; write a table, a figure and the findings (docs/physical.md)",
        description="Build the ablation grid on synthetic batches, run what the results store "
                    "lacks (as 'hwmodel sweep'), and write ablation.csv, ablation.md and "
                    "ablation.png: throughput and hops relative to paper mode, each "
                    "strategy's gain over base under each switch against its paper gain. "
                    "Runs a model whose experts exceed the HBM as the paper grid does "
                    "(ignore_capacity); under hbm_budget such a run is refused and listed.")
    p.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated models")
    p.add_argument("--batches", default=",".join(map(str, DEFAULT_BATCHES)),
                   help="comma-separated batch sizes (synthetic requests)")
    p.add_argument("--wafers", "--meshes", default=",".join(DEFAULT_WAFERS),
                   help="comma-separated wafer presets or YAMLs")
    p.add_argument("--strategies", default=None, help="comma-separated (None: all five)")
    p.add_argument("--switches", default=None,
                   help="comma-separated physical switches (None: every switch of "
                        "hwmodel.system.physical.PHYSICAL_SWITCHES)")
    p.add_argument("--max-iterations", type=int, default=None,
                   help="cap each run's iterations, for a quick run (None: the whole batch)")
    p.add_argument("--seed", type=int, default=0, help="synthesis seed")
    p.add_argument("--store", default="ablation/results.sqlite", metavar="FILE",
                   help="SQLite results store, created or resumed (as 'hwmodel sweep -o')")
    p.add_argument("-o", "--out", default="ablation/out", metavar="DIR",
                   help="folder for ablation.csv, ablation.md and ablation.png")
    p.add_argument("--jobs", type=int, default=None,
                   help=f"local worker processes (None: all {os.cpu_count()} cores)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    add_force_option(p)
    p.set_defaults(func=_main)
