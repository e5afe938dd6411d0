"""Ablation of the physical switches (issue 17): what each idealisation of the paper is worth.

:func:`ablation_grid` builds a sweep grid (:class:`~hwmodel.sweep.grid.Grid`) whose runs are
every strategy in paper mode, under each physical switch alone and under all of them together.
The switches come from :data:`~hwmodel.system.physical.PHYSICAL_SWITCHES`, so a switch added
there joins the ablation. The grid runs on the sweep's runner into its results store, like any
other grid.

:func:`ablation` reads a results store back. It pairs each run with the paper-mode run of the
same model, trace, batch, wafer, strategy and other replay parameters, and gives its throughput
and hops relative to that paper run. It also gives each strategy's gain over ``base`` within one
mode. :func:`summary_rows` averages these per mode and strategy, and :func:`findings` states
the result in plain words with the summary's own numbers.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections import defaultdict
from statistics import mean

import attrs

from .grid import Grid, Run, parse_grid

__all__ = ["DEFAULT_BATCHES", "DEFAULT_MODELS", "DEFAULT_WAFERS", "PAPER", "AblationRun",
           "ablation", "ablation_grid", "figure", "findings", "from_records", "is_refusal", "markdown",
           "mode_label", "report_section", "run_csv", "summary_rows", "switch_settings"]

#: The issue's ablation grid: four models, two batches, both meshes.
DEFAULT_MODELS = ("deepseek-v3", "qwen3-235b", "kimi-k2", "llama4-maverick")
DEFAULT_BATCHES = (4096, 16384)
DEFAULT_WAFERS = ("dojo", "tsmc-sow")

#: The label of paper mode (no switch on).
PAPER = "paper"


def _registry() -> dict:
    from ..system.physical import PHYSICAL_SWITCHES
    return PHYSICAL_SWITCHES


def check_switches(switches) -> tuple[str, ...]:
    """``switches`` in the registry's order, or ValueError naming the unknown or repeated one."""
    known = list(_registry())
    for name in switches:
        if name not in known:
            raise ValueError(f"--switches: unknown switch {name!r}; expected one of "
                             f"{', '.join(known)}")
    if len(set(switches)) != len(switches):
        raise ValueError(f"--switches: a switch is listed twice in {','.join(switches)}; "
                         "expected each once")
    if not switches:
        raise ValueError(f"--switches: expected at least one of {', '.join(known)}")
    return tuple(name for name in known if name in switches)


def switch_settings(switches) -> list[tuple[str, ...]]:
    """The switch sets of an ablation: none (paper mode), each switch alone, then all of them
    together (left out when there is only one switch: it is that switch alone)."""
    switches = check_switches(switches)
    settings = [()] + [(name,) for name in switches]
    if len(switches) > 1:
        settings.append(switches)
    return settings


def mode_label(switches_on) -> str:
    """``paper``, the switch's name, or the switches joined with ``+``."""
    return "+".join(switches_on) if switches_on else PAPER


def ablation_grid(models=DEFAULT_MODELS, batches=DEFAULT_BATCHES, wafers=DEFAULT_WAFERS,
                  strategies=None, switches=None, params: dict | None = None, seed: int = 0,
                  ignore_capacity: bool = True, where: str = "hwmodel ablate") -> Grid:
    """The ablation's runs on synthetic batches: each strategy under each setting of
    :func:`switch_settings`.

    ``params`` are further ReplayParams fields, the same in every run (e.g. ``max_iterations``
    for a quick run). ``ignore_capacity`` runs a model whose experts exceed a wafer's HBM, as
    the paper grid does for Kimi-K2 in BF16; under ``hbm_budget`` such a run is refused and
    stored as failed with the reason.

    Raises
    ------
    ConfigError, ValueError
        An unknown model, wafer, strategy, switch or parameter (one line).
    """
    from ..system import STRATEGIES
    settings = switch_settings(list(_registry()) if switches is None else list(switches))
    clash = sorted(set(params or {}) & set(_registry()))
    if clash:
        raise ValueError(f"--params: {clash[0]!r} is a physical switch; the ablation sets "
                         "the switches itself (--switches)")
    section = {"models": list(models), "batches": list(batches), "wafers": list(wafers),
               "strategies": list(strategies or STRATEGIES), "seed": seed,
               "ignore_capacity": ignore_capacity, "params": dict(params or {})}
    grid = parse_grid({"sweep": section}, where)
    runs = tuple(Run(run.trace, run.wafer, run.strategy,
                     tuple(sorted(run.params + tuple((name, True) for name in setting))))
                 for run in grid.runs for setting in settings)
    return attrs.evolve(grid, runs=runs)


@attrs.frozen
class AblationRun:
    """One run of a results store, seen by the ablation.

    ``scenario`` is every input but the strategy and the switches; ``mode`` the switches on
    (:func:`mode_label`). ``throughput`` and ``hops`` (the weights' link crossings) are None
    for a failed run, whose ``error`` says why. ``dispatch_hops`` are the link crossings of
    the tokens' activations, counted under ``token_dispatch`` (None otherwise).
    """

    model: str
    batch: int
    wafer: str
    strategy: str
    mode: str
    scenario: tuple
    throughput: float | None
    hops: int | None
    error: str | None = None
    dispatch_hops: int | None = None
    trace: str = ""
    key: str = ""


def _from_record(record: dict, summary: dict | None) -> AblationRun:
    params = json.loads(record["params"] or "{}")
    switches = [name for name in _registry() if params.get(name)]
    if summary is not None and summary.get("physical"):
        switches = list(summary["physical"])      # the run's own record of its switches
    others = {k: v for k, v in params.items() if k not in _registry()}
    scenario = (record["model"], record["trace_sha256"], record["batch"], record["wafer"],
                json.dumps(others, sort_keys=True))
    if summary is None:
        return AblationRun(record["model"], record["batch"], record["wafer"],
                           record["strategy"], mode_label(switches), scenario, None, None,
                           record.get("error") or "failed", trace=record["trace"],
                           key=record["key"])
    return AblationRun(record["model"], record["batch"], record["wafer"], record["strategy"],
                       mode_label(switches), scenario, summary["throughput"], summary["hops"],
                       dispatch_hops=summary.get("counts", {}).get("dispatch_hops"),
                       trace=record["trace"], key=record["key"])


def ablation(results, grid: Grid | None = None, keys=None) -> list[AblationRun]:
    """Every run of the results store ``results`` (a path), ok or failed, as an
    :class:`AblationRun`, in a fixed order; only the runs of ``grid`` if given (a store may
    hold other sweeps' runs too), and only those whose key is in ``keys`` if given (the keys
    :func:`~hwmodel.sweep.runner.run_sweep` gave the grid's runs: a run stored before a
    model preset or wafer changed has another key, and would count its scenario twice)."""
    from .report import load_results
    ok, failed, _ = load_results(results)
    runs = from_records(ok, failed)
    if keys is not None:
        runs = [r for r in runs if r.key in keys]
    if grid is None:
        return runs
    wanted = _grid_keys(grid)
    return [r for r in runs if (r.trace, r.wafer, r.strategy, r.mode, r.scenario[4]) in wanted]


def _grid_keys(grid: Grid) -> set:
    """(trace label, wafer name, strategy, mode, other parameters) of each run of ``grid``."""
    from ..params import load_wafer
    names = {}
    keys = set()
    for run in grid.runs:
        if run.wafer not in names:
            names[run.wafer] = load_wafer(run.wafer).name
        params = run.params_dict()
        on = [name for name in _registry() if params.get(name)]
        others = {k: v for k, v in params.items() if k not in _registry()}
        keys.add((run.trace.label(), names[run.wafer], run.strategy, mode_label(on),
                  json.dumps(others, sort_keys=True)))
    return keys


def from_records(ok, failed) -> list[AblationRun]:
    """The runs of :func:`~hwmodel.sweep.report.load_results`'s ``ok`` (their summary merged
    in) and ``failed`` records, as :class:`AblationRun`, in a fixed order."""
    runs = [_from_record(r, r) for r in ok] + [_from_record(r, None) for r in failed]
    return sorted(runs, key=_order)


def report_section(ok, failed, out) -> tuple[str, list]:
    """The sweep report's ablation section (HTML) and the figure it wrote into the folder
    ``out``: findings, summary table and ``ablation.png``. Empty when no run is physical."""
    import base64
    import html
    runs = from_records(ok, failed)
    if all(r.mode == PAPER for r in runs):
        return "", []
    path = figure(runs, out / "ablation.png")
    image = ""
    if path is not None:
        data = base64.b64encode(path.read_bytes()).decode()
        image = f"<img alt='ablation' src='data:image/png;base64,{data}'>"
    section = (f"<h2>Physical switches: ablation</h2><p>{html.escape(findings(runs))}</p>"
               f"{html_table(runs)}{image}")
    return section, [path] if path is not None else []


def _modes(runs) -> list[str]:
    """The modes present: paper first, the single switches in the registry's order, then the
    combinations (shortest first)."""
    present = {r.mode for r in runs}
    order = [PAPER] + list(_registry())
    return ([m for m in order if m in present]
            + sorted(present - set(order), key=lambda m: (m.count("+"), m)))


def _order(run: AblationRun):
    from ..system import strategy_names
    names = strategy_names()
    rank = names.index(run.strategy) if run.strategy in names else len(names)
    mode = [PAPER, *_registry()].index(run.mode) if run.mode in [PAPER, *_registry()] else 99
    return (run.model, run.batch, run.wafer, run.scenario, rank, run.strategy, mode, run.mode)


def relative(value, paper) -> float:
    """``value / paper``; 1 when both are zero (a strategy with no hops keeps none), infinite
    when only the paper value is zero."""
    if paper == 0:
        return 1.0 if value == 0 else math.inf
    return value / paper


def _index(runs) -> dict:
    return {(r.scenario, r.strategy, r.mode): r for r in runs}


def run_rows(runs) -> list[dict]:
    """Per run: its throughput and hops relative to paper mode, and its gain over ``base`` in
    its mode and in paper mode (None where a run is missing or failed)."""
    index = _index(runs)
    rows = []
    for run in runs:
        paper = index.get((run.scenario, run.strategy, PAPER))
        base = index.get((run.scenario, "base", run.mode))
        paper_base = index.get((run.scenario, "base", PAPER))
        ok = run.throughput is not None
        row = {"model": run.model, "batch": run.batch, "wafer": run.wafer,
               "strategy": run.strategy, "mode": run.mode,
               "status": "ok" if ok else "failed", "throughput": run.throughput,
               "hops": run.hops, "dispatch_hops": run.dispatch_hops,
               "throughput_vs_paper": None, "hops_vs_paper": None,
               "x_base": None, "x_base_paper": None, "error": run.error}
        if ok and paper is not None and paper.throughput is not None:
            row["throughput_vs_paper"] = run.throughput / paper.throughput
            row["hops_vs_paper"] = relative(run.hops, paper.hops)
        if ok and base is not None and base.throughput is not None:
            row["x_base"] = run.throughput / base.throughput
        if paper is not None and paper.throughput is not None and paper_base is not None \
                and paper_base.throughput is not None:
            row["x_base_paper"] = paper.throughput / paper_base.throughput
        rows.append(row)
    return rows


def summary_rows(runs) -> list[dict]:
    """Per mode and strategy, means over the scenarios where the run and its paper-mode run
    both succeeded: throughput and hops relative to paper mode, and the gain over ``base`` in
    this mode and in paper mode (over the scenarios that also have both ``base`` runs).
    ``failed`` counts the mode's failed runs of the strategy."""
    rows = run_rows(runs)
    groups = defaultdict(list)
    for row in rows:
        groups[(row["mode"], row["strategy"])].append(row)
    out = []
    strategies = _strategy_order(rows)
    for mode in _modes(runs):
        for strategy in strategies:
            group = groups.get((mode, strategy))
            if not group:
                continue
            paired = [r for r in group if r["throughput_vs_paper"] is not None]
            gains = [r for r in paired if r["x_base"] is not None
                     and r["x_base_paper"] is not None]
            out.append({
                "mode": mode, "strategy": strategy, "scenarios": len(paired),
                "failed": sum(r["status"] == "failed" for r in group),
                "throughput_vs_paper": _mean([r["throughput_vs_paper"] for r in paired]),
                "hops_vs_paper": _mean([r["hops_vs_paper"] for r in paired]),
                "x_base": _mean([r["x_base"] for r in gains]),
                "x_base_paper": _mean([r["x_base_paper"] for r in gains]),
                "dispatch_hops": _mean([r["dispatch_hops"] for r in paired
                                        if r["dispatch_hops"] is not None])})
    return out


def _strategy_order(rows) -> list[str]:
    from ..system import strategy_names
    present = {r["strategy"] for r in rows}
    known = [s for s in strategy_names() if s in present]
    return known + sorted(present - set(known))


def _mean(values):
    return mean(values) if values else None


# ------------------------------------------------------------------ formatting


def ratio_text(value) -> str:
    """A ratio as the table and the findings print it (3 decimals; ``-`` for none)."""
    if value is None:
        return "-"
    return "inf" if math.isinf(value) else f"{value:.3f}"


def gain_text(value) -> str:
    """A gain over ``base`` as the table and the findings print it (``3.49x``)."""
    return "-" if value is None else f"{value:.2f}x"


def hops_text(value) -> str:
    """A mean hop count as the table and the findings print it (``1,234``)."""
    return "-" if value is None else f"{value:,.0f}"


_SUMMARY_COLUMNS = ("mode", "strategy", "scenarios", "failed", "throughput / paper",
                    "hops / paper", "x base", "x base in paper mode", "dispatch hops")


def _summary_cells(row) -> list[str]:
    return [row["mode"], row["strategy"], str(row["scenarios"]), str(row["failed"]),
            ratio_text(row["throughput_vs_paper"]), ratio_text(row["hops_vs_paper"]),
            gain_text(row["x_base"]), gain_text(row["x_base_paper"]),
            hops_text(row["dispatch_hops"])]


def markdown(runs) -> str:
    """The summary table (:func:`summary_rows`) in Markdown."""
    lines = ["| " + " | ".join(_SUMMARY_COLUMNS) + " |",
             "|" + "---|" * len(_SUMMARY_COLUMNS)]
    lines += ["| " + " | ".join(_summary_cells(row)) + " |" for row in summary_rows(runs)]
    return "\n".join(lines)


def html_table(runs) -> str:
    """The summary table in HTML (for the sweep report)."""
    import html
    head = "".join(f"<th>{html.escape(c)}</th>" for c in _SUMMARY_COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in _summary_cells(r))
                   + "</tr>" for r in summary_rows(runs))
    return f"<table><tr>{head}</tr>{body}</table>"


_RUN_COLUMNS = ("model", "batch", "wafer", "strategy", "mode", "status", "throughput", "hops",
                "dispatch_hops", "throughput_vs_paper", "hops_vs_paper", "x_base", "x_base_paper", "error")


def run_csv(runs) -> str:
    """One line per run (:func:`run_rows`); ratios at full precision, empty where none."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(_RUN_COLUMNS)
    for row in run_rows(runs):
        writer.writerow(["" if row[c] is None else (repr(row[c]) if isinstance(row[c], float)
                                                     else row[c]) for c in _RUN_COLUMNS])
    return out.getvalue()


def _scope(runs) -> str:
    models = sorted({r.model for r in runs})
    batches = sorted({r.batch for r in runs})
    wafers = sorted({r.wafer for r in runs})
    return (f"{', '.join(models)}; batch {', '.join(f'{b:,}' for b in batches)}; "
            f"{' and '.join(wafers)}")


def _mode_sentence(mode, rows) -> str:
    """One sentence on ``mode``: what each strategy keeps of its paper gain, what it costs
    ``base``, and the runs it refused."""
    parts = []
    for row in rows:
        if row["strategy"] == "base" or row["x_base"] is None:
            continue
        parts.append(f"`{row['strategy']}` keeps {gain_text(row['x_base'])} of its "
                     f"{gain_text(row['x_base_paper'])}")
    text = f"Under `{mode}`, " + (", ".join(parts) if parts else "no strategy has a gain over "
                                  "`base` to compare")
    base = next((r for r in rows if r["strategy"] == "base"), None)
    if base is not None and base["throughput_vs_paper"] is not None:
        cost = (1 - base["throughput_vs_paper"]) * 100
        text += (f"; `base` runs at {ratio_text(base['throughput_vs_paper'])} of its paper "
                 f"throughput (costs it {cost:.1f} %) with {ratio_text(base['hops_vs_paper'])}"
                 f" of its hops")
        if base["dispatch_hops"] is not None:
            text += (f"; the tokens' trips to their experts and back add "
                     f"{hops_text(base['dispatch_hops'])} hops to a `base` run")
    changed = [r for r in rows if r["strategy"] != "base" and r["hops_vs_paper"] is not None
               and r["hops_vs_paper"] != 1.0]
    if changed:
        text += "; hops relative to paper mode: " + ", ".join(
            f"`{r['strategy']}` {ratio_text(r['hops_vs_paper'])}" for r in changed)
    return text + "."


def _refusals(runs, mode) -> str:
    failed = [r for r in runs if r.mode == mode and r.error is not None]
    if not failed:
        return ""
    by_model = defaultdict(list)
    for run in failed:
        by_model[run.model].append(run)
    parts = [f"{model} ({len(group)} runs; the first: {_reason(group[0].error)})"
             for model, group in sorted(by_model.items())]
    return f" It failed {len(failed)} runs: {', '.join(parts)}."


def is_refusal(error: str) -> bool:
    """Whether a failed run's ``error`` is a physical switch refusing the run (its message
    starts with the switch's name, as ``hbm_budget: the batch ... does not fit``), not a fault."""
    _, _, message = error.partition(": ")
    return any(message.startswith(f"{name}: ") for name in _registry())


def _reason(error: str) -> str:
    """A failed run's error without its exception type and its advice (after ``; expected``)."""
    kind, _, message = error.partition(": ")
    return (message or kind).split("; expected")[0]


def findings(runs) -> str:
    """The ablation's result in plain words, one sentence per mode, with the numbers of the
    summary table (:func:`markdown`): each strategy's gain over ``base`` under the switch
    against its gain in paper mode, and what the switch costs ``base``."""
    if not runs:
        return "The results store holds no run."
    rows = summary_rows(runs)
    modes = [m for m in _modes(runs) if m != PAPER]
    text = [(f"Ablation over {_scope(runs)} (gains over `base` and ratios to paper mode are "
             f"means over the scenarios where both runs succeeded).")]
    if PAPER not in {r.mode for r in runs}:
        text.append("The store holds no paper-mode run: nothing is relative to paper mode.")
    for mode in modes:
        text.append(_mode_sentence(mode, [r for r in rows if r["mode"] == mode])
                    + _refusals(runs, mode))
    paper_failed = _refusals(runs, PAPER)
    if paper_failed:
        text.append("Paper mode" + paper_failed.replace(" It", ""))
    return " ".join(text)


# ------------------------------------------------------------------ figure


def figure(runs, path):
    """Throughput and hops relative to paper mode, per strategy, one bar per switch setting
    (means over the scenarios; the grey line is paper mode, 1). None when no run has a
    paper-mode counterpart."""
    from .report import _pyplot, _save
    rows = [r for r in summary_rows(runs) if r["mode"] != PAPER and r["scenarios"]]
    if not rows:
        return None
    plt = _pyplot()
    modes = [m for m in _modes(runs) if any(r["mode"] == m for r in rows)]
    strategies = [s for s in _strategy_order(rows)]
    fig, axes = plt.subplots(1, 2, figsize=(max(7.0, 1.6 * len(strategies) * 2), 3.8))
    width = 0.8 / len(modes)
    for ax, field, title in ((axes[0], "throughput_vs_paper", "throughput / paper mode"),
                             (axes[1], "hops_vs_paper", "hops / paper mode")):
        values = {(r["mode"], r["strategy"]): r[field] for r in rows}
        finite = [v for v in values.values() if v is not None and math.isfinite(v)]
        top = max(finite + [1.0]) * 1.15
        for i, mode in enumerate(modes):
            xs = [x + i * width for x in range(len(strategies))]
            heights = [values.get((mode, s)) for s in strategies]
            ax.bar(xs, [0 if h is None else min(h, top) for h in heights], width,
                   label=mode, color=f"C{i}")
            for x, h in zip(xs, heights):
                if h is not None and not math.isfinite(h):
                    ax.text(x, top, "inf", ha="center", va="top", fontsize=7, rotation=90)
        ax.axhline(1.0, color="grey", linewidth=0.8)
        ax.set_xticks([x + width * (len(modes) - 1) / 2 for x in range(len(strategies))])
        ax.set_xticklabels(strategies, fontsize=8)
        ax.set_title(title, fontsize=10)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=len(modes),
               fontsize=8)
    return _save(fig, path, legend_below=True)
