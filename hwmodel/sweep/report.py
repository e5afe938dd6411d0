"""The reproduction report of a sweep: PNG figures and one self-contained HTML page.

Figures (docs/sweep.md#the-report is the source of the published numbers each is set beside):

* Fig. 12: throughput over ``base`` per model and mesh, with the averages;
* hop reduction over ``base``;
* Fig. 14: DRAM reads and writes by kind (local read, remote read, local write);
* throughput against batch size;
* link heat maps (bytes per D2D link) of one scenario per mesh.

A *scenario* is every input of a run but its strategy (model, trace, batch, wafer, replay
parameters); ratios over ``base`` are taken within a scenario.
"""

from __future__ import annotations

import base64
import html
import json
import math
import sqlite3
from collections import defaultdict
from pathlib import Path
from statistics import mean

from .store import ResultsStore

__all__ = ["PUBLISHED", "comparisons", "load_results", "write_report"]

MODEL_LABELS = {"deepseek-v3": "DeepSeek", "kimi-k2": "Kimi", "llama4-maverick": "Llama-4",
                "qwen3-235b": "Qwen"}

#: docs/sweep.md#the-report (paper v5, real traces, batches 4096/8192/16384): quantity -> value.
PUBLISHED = {
    ("speedup", "allo+pred", None): 6.63, ("speedup", "allo", None): 6.3,
    ("speedup", "pred", None): 3.0,
    ("speedup", "allo+pred", "deepseek-v3"): 7.0, ("speedup", "allo+pred", "kimi-k2"): 8.2,
    ("speedup", "allo+pred", "llama4-maverick"): 7.3,
    ("speedup", "allo+pred", "qwen3-235b"): 4.1,
    ("speedup", "allo+pred", "dojo"): 6.0, ("speedup", "allo+pred", "tsmc-sow"): 7.5,
    ("hop_reduction", "pred", None): 4.5, ("hop_reduction", "allo", None): 142.0,
    ("hop_reduction", "allo+pred", None): 213.0,
    ("over_ep", "allo+pred", 16384): 1.44, ("over_ep", "allo+pred", 4096): 1.0,
}


def load_results(path) -> tuple[list[dict], list[dict], list[dict]]:
    """(successful runs with their summary and per-link data, failed runs, sweep records)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such results store")
    try:
        with ResultsStore(path) as store:
            ok, failed, sweeps = store.runs("ok"), store.runs("failed"), store.sweeps()
    except sqlite3.DatabaseError as error:
        raise ValueError(f"{path}: not a sweep results store ({error})") from None
    for run in ok:
        run.update(json.loads(run["summary"]))  # adds mesh_x, throughput, hops, ...
        run["per_link"] = json.loads(run["per_link"])
        run["scenario"] = (run["model"], run["trace_sha256"], run["batch"], run["wafer"],
                           run["params"])
    return ok, failed, sweeps


def _by_scenario(runs) -> dict:
    scenarios = defaultdict(dict)
    for run in runs:
        scenarios[run["scenario"]][run["strategy"]] = run
    return scenarios


def _ratios(runs, value, key=None) -> dict:
    """strategy -> list of (run, value(run, base_run)) over the scenarios that have a base."""
    out = defaultdict(list)
    for group in _by_scenario(runs).values():
        base = group.get(key or "base")
        for strategy, run in group.items():
            if base is not None:
                out[strategy].append((run, value(run, base)))
    return out


def speedups(runs) -> dict:
    return _ratios(runs, lambda r, b: r["throughput"] / b["throughput"])


def comparisons(runs) -> list[tuple[str, float, float | None]]:
    """(what, published, measured) for every published number the results can speak to.

    Throughput ratios are arithmetic means over scenarios. Hop reductions come two ways, each
    labelled: the ratio of the summed hops (a run with zero hops makes it infinite), and the
    mean of the per-run ratios ``base hops / max(1, hops)`` that ``hops.png`` draws (the one
    the paper's bars most likely use, see :data:`HOP_AVERAGES`).
    """
    rows = []
    speed = speedups(runs)
    for (kind, strategy, where), published in PUBLISHED.items():
        measured = None
        if kind == "speedup":
            values = [v for r, v in speed.get(strategy, [])
                      if where is None or where in (r["model"], r["wafer"])]
            measured = mean(values) if values else None
            label = f"throughput {strategy} / base" + (f", {where}" if where else ", average")
        elif kind == "hop_reduction":
            pairs = _ratios(runs, lambda r, b: (b["hops"], r["hops"])).get(strategy, [])
            base_hops, hops = sum(p[1][0] for p in pairs), sum(p[1][1] for p in pairs)
            measured = (base_hops / hops if hops else float("inf")) if pairs else None
            label = f"hop reduction {strategy}, summed (all base hops / all {strategy} hops)"
            rows.append((label, published, measured))
            per_run = [v for _, v in _hop_ratios(runs).get(strategy, [])]
            measured = mean(per_run) if per_run else None
            label = (f"hop reduction {strategy}, mean of per-run ratios (base hops / "
                     f"{strategy} hops, as hops.png)")
        else:
            pairs = _ratios(runs, lambda r, b: r["throughput"] / b["throughput"], "ep")
            values = [v for r, v in pairs.get(strategy, []) if r["batch"] == where]
            measured = mean(values) if values else None
            label = f"throughput {strategy} / ep at batch {where}"
        rows.append((label, published, measured))
    return rows


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _strategies(runs) -> list[str]:
    """The strategies of ``runs`` in the registry's order (the paper's five first, then
    plug-ins); a strategy the registry does not know (a plug-in not installed here) last, by
    name."""
    from ..system import strategy_names
    present = {r["strategy"] for r in runs}
    known = [s for s in strategy_names() if s in present]
    return known + sorted(present - set(known))


def _rank(strategy: str) -> int:
    """The strategy's place in the registry (a stable marker and dash per strategy)."""
    from ..system import strategy_names
    names = strategy_names()
    return names.index(strategy) if strategy in names else len(names)


def _save(fig, path, legend_below: bool = False) -> Path:
    # a legend below the panels needs a strip kept free at the bottom
    fig.tight_layout(rect=(0, 0.08 if legend_below else 0, 1, 1))
    # no timestamps in the PNG, so that the same results give the same bytes
    fig.savefig(path, dpi=110, metadata={"Software": None})
    _pyplot().close(fig)
    return Path(path)


def _ratio_bars(runs, ratios, path, title, log=False) -> Path | None:
    """Grouped bars: one group per (model, mesh) plus 'average', one bar per strategy; None
    when no scenario has a base run and another strategy."""
    strategies = [s for s in _strategies(runs) if s != "base" and ratios.get(s)]
    if not strategies:
        return None
    plt = _pyplot()
    groups = sorted({(r["model"], r["wafer"]) for s in strategies for r, _ in ratios[s]})
    labels = [f"{MODEL_LABELS.get(m, m)}\n{w}" for m, w in groups] + ["average"]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(labels)), 3.9))
    width = 0.8 / max(1, len(strategies))
    bars = {}
    for strategy in strategies:
        values = [mean([v for r, v in ratios[strategy] if (r["model"], r["wafer"]) == g] or [0])
                  for g in groups]
        bars[strategy] = values + [mean([v for _, v in ratios[strategy]] or [0])]
    finite = [v for values in bars.values() for v in values if math.isfinite(v) and v > 0]
    top = max(finite, default=1.0) * 4
    for i, strategy in enumerate(strategies):
        xs = [x + i * width for x in range(len(labels))]
        values = bars[strategy]
        ax.bar(xs, [v if math.isfinite(v) else 0 for v in values], width, label=strategy,
               color=f"C{i}")
        for x, value in zip(xs, values):
            if not math.isfinite(value):
                _no_hops_bar(ax, x, top, width, f"C{i}")
    ax.set_xticks([x + width * (len(strategies) - 1) / 2 for x in range(len(labels))])
    ax.set_xticklabels(labels, fontsize=8)
    ax.axhline(1.0, color="grey", linewidth=0.8)
    if log:
        ax.set_yscale("log")
    ax.set_title(title)
    # below the axes: inside, it hides the tallest bars
    fig.legend(*ax.get_legend_handles_labels(), loc="lower center", ncol=len(strategies),
               fontsize=8)
    return _save(fig, path, legend_below=True)


def _no_hops_bar(ax, x, top, width, colour) -> None:
    """An infinite reduction (the strategy sent nothing): a hatched bar to the top of the
    axis, marked "0 hops" upright inside it."""
    ax.bar([x], [top], width, color="white", edgecolor=colour, hatch="//")
    ax.text(x, top / 1.3, "0 hops", ha="center", va="top", rotation=90, fontsize=7,
            bbox={"facecolor": "white", "edgecolor": "none", "pad": 1})


def fig12(runs, path) -> Path:
    return _ratio_bars(runs, speedups(runs), path,
                       "Fig. 12: throughput over base (mean over batches)")


def _hop_ratios(runs) -> dict:
    """Per-run hop reductions; a run with zero hops counts as one hop (base hops / 1)."""
    return _ratios(runs, lambda r, b: b["hops"] / max(1, r["hops"]))


def hop_reduction(runs, path) -> Path:
    # a run with zero hops has an infinite reduction: drawn as a hatched "0 hops" bar
    ratios = _ratios(runs, lambda r, b: b["hops"] / r["hops"] if r["hops"] else math.inf)
    return _ratio_bars(runs, ratios, path, "hop reduction over base (log scale)", log=True)


def fig14(runs, path) -> Path:
    """Stacked DRAM traffic by kind per strategy, one panel per model (mean over scenarios)."""
    plt = _pyplot()
    models = sorted({r["model"] for r in runs})
    strategies = _strategies(runs)
    kinds = (("local_dram_read_GiB", "local read"), ("remote_dram_read_GiB", "remote read"),
             ("local_dram_write_GiB", "local write"))
    fig, axes = plt.subplots(1, len(models), figsize=(3.2 * len(models), 3.4), squeeze=False)
    for ax, model in zip(axes[0], models):
        bottom = [0.0] * len(strategies)
        for field, label in kinds:
            values = [mean([r[field] for r in runs if r["model"] == model
                            and r["strategy"] == s] or [0]) for s in strategies]
            ax.bar(strategies, values, bottom=bottom, label=label)
            bottom = [b + v for b, v in zip(bottom, values)]
        ax.set_title(f"{MODEL_LABELS.get(model, model)}: DRAM GiB", fontsize=9)
        ax.tick_params(axis="x", labelrotation=45, labelsize=8)
    fig.legend(*axes[0][0].get_legend_handles_labels(), loc="lower center", ncol=3,
               fontsize=8)
    return _save(fig, path, legend_below=True)


def batch_scaling(runs, path) -> Path | None:
    """Throughput (tokens/s) against batch size per strategy: a row of panels per model, a
    column per mesh. None when the results hold a single batch size."""
    if len({r["batch"] for r in runs}) < 2:
        return None
    plt = _pyplot()
    models, wafers = sorted({r["model"] for r in runs}), sorted({r["wafer"] for r in runs})
    fig, axes = plt.subplots(len(models), len(wafers), squeeze=False,
                             figsize=(4.0 * len(wafers), 2.8 * len(models)))
    for row, model in enumerate(models):
        for col, wafer in enumerate(wafers):
            ax = axes[row][col]
            for strategy in _strategies(runs):
                index = _rank(strategy)
                points = defaultdict(list)
                for r in runs:
                    if (r["model"], r["wafer"], r["strategy"]) == (model, wafer, strategy):
                        points[r["batch"]].append(r["throughput"])
                xs = sorted(points)
                # strategies often coincide: distinct markers and dashes keep each visible
                ax.plot(xs, [mean(points[x]) for x in xs], label=strategy,
                        marker="os^vD"[index % 5], markerfacecolor="none",
                        linestyle=("-", "--", "-.", ":", "-")[index % 5])
            ax.set_xscale("log", base=2)
            batches = sorted({r["batch"] for r in runs})
            ax.set_xticks(batches, [str(b) for b in batches])
            ax.minorticks_off()
            ax.set_title(f"{MODEL_LABELS.get(model, model)}, {wafer}", fontsize=9)
            ax.set_ylabel("tokens/s", fontsize=8)
    for ax in axes[-1]:
        ax.set_xlabel("batch (requests)", fontsize=8)
    axes[0][0].legend(fontsize=7)
    return _save(fig, path)


def _scenario_for_heat_maps(runs, wafer):
    """The largest-batch scenario of the first model on ``wafer`` with base and allo+pred."""
    candidates = [(key, group) for key, group in _by_scenario(runs).items()
                  if key[3] == wafer and group.get("base")]
    if not candidates:
        return None
    return max(candidates, key=lambda kg: (kg[0][2], [-ord(c) for c in kg[0][0]]))[1]


def link_heat_maps(runs, path) -> Path | None:
    """Bytes per D2D link on each mesh, base against the best strategy present."""
    plt = _pyplot()
    from matplotlib import cm, colors
    rows = []
    for wafer in sorted({r["wafer"] for r in runs}):
        group = _scenario_for_heat_maps(runs, wafer)
        if group:
            shown = [group[s] for s in ("base", "ep", "allo+pred") if s in group]
            # one colour scale per mesh, so the strategies' panels compare at a glance
            peak = max(link["bytes"] for run in shown for link in run["per_link"]) / 2**30
            rows.append([(run, colors.Normalize(vmin=0, vmax=peak or 1.0)) for run in shown])
    if not rows:
        return None
    columns = max(len(row) for row in rows)
    fig, axes = plt.subplots(len(rows), columns, figsize=(3.6 * columns, 4.2 * len(rows)),
                             squeeze=False)
    for axes_row, row in zip(axes, rows):
        for ax in axes_row[len(row):]:
            ax.axis("off")
        for ax, (run, norm) in zip(axes_row, row):
            _draw_links(ax, run, cm.viridis, norm)
    return _save(fig, path)


def _draw_links(ax, run, cmap, norm):
    # die ids are x * mesh_y + y (hwmodel.topologies.mesh.Mesh.coords)
    mesh_y = run["mesh_y"]
    for link in run["per_link"]:
        (xa, ya), (xb, yb) = (divmod(d, mesh_y) for d in link["dies"])
        ax.plot([xa, xb], [ya, yb], color=cmap(norm(link["bytes"] / 2**30)), linewidth=5,
                solid_capstyle="butt", zorder=1)
    xs, ys = zip(*(divmod(d, mesh_y) for d in range(run["mesh_x"] * mesh_y)))
    ax.scatter(xs, ys, s=60, color="white", edgecolors="black", zorder=2)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"{MODEL_LABELS.get(run['model'], run['model'])} {run['batch']}, "
                 f"{run['wafer']}: {run['strategy']}", fontsize=10)
    ax.figure.colorbar(_mappable(cmap, norm), ax=ax, shrink=0.7, label="GiB per link")


def _mappable(cmap, norm):
    from matplotlib.cm import ScalarMappable
    return ScalarMappable(norm=norm, cmap=cmap)


_CSS = """body{font-family:sans-serif;max-width:1100px;margin:1.5em auto;color:#222}
table{border-collapse:collapse;margin:.5em 0;font-size:13px}
td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}
td:first-child,th:first-child{text-align:left}
img{max-width:100%;border:1px solid #ddd}code,pre{background:#f4f4f4;padding:2px 4px}
pre{white-space:pre-wrap}.far{background:#fde2e2}.near{background:#e2f5e2}"""

FIGURES = (
    ("fig12.png", "Fig. 12: throughput over base", fig12,
     ("Published (docs/sweep.md#the-report): allo+pred 6.63x on average (DeepSeek 7.0, Kimi 8.2, "
     "Llama-4 7.3, Qwen 4.1; dojo 6.0, tsmc-sow 7.5), allo 6.3x, pred 3.0x.")),
    ("hops.png", "Hop reduction over base", hop_reduction,
     ("Published: pred 4.5x, allo 142x, allo+pred more than 213x. The bars and their "
      "'average' are means of per-run ratios; the table gives that mean and the ratio of "
      "summed hops. The paper's bars most likely use per-run ratios: its Fig. 12 "
      "'average' bar is the mean of the per-configuration bars, while a ratio of summed "
      "hops is dominated by the runs with the most hops (the largest batches).")),
    ("fig14.png", "Fig. 14: DRAM reads and writes by kind", fig14,
     "docs/sweep.md#the-report gives no DRAM figures to compare against; shown for inspection."),
    ("batch.png", "Scaling with batch size", batch_scaling,
     "Published: allo+pred is 1.44x ep at batch 16384 and about equal to ep at 4096."),
    ("links.png", "Link heat maps", link_heat_maps,
     ("Bytes carried per D2D link (GiB) in base, ep and allo+pred, one colour scale per "
     "mesh, largest batch of the first model on each mesh.")),
)

_NOT_DRAWN = {"batch.png": "the results hold a single batch size",
              "links.png": "no scenario has a base run",
              "fig12.png": "no scenario has both a base run and another strategy",
              "hops.png": "no scenario has both a base run and another strategy"}


def _fmt(value) -> str:
    if value is None:
        return "-"
    return "inf" if value == float("inf") else f"{value:.2f}"


def _comparison_table(runs) -> str:
    lines = [("<table><tr><th>quantity</th><th>published</th><th>measured</th>"
             "<th>measured / published</th></tr>")]
    for label, published, measured in comparisons(runs):
        ratio = measured / published if measured is not None else None
        css = "" if ratio is None else (" class='near'" if 0.8 <= ratio <= 1.25 else
                                        " class='far'")
        lines.append(f"<tr{css}><td>{html.escape(label)}</td><td>{published:g}</td>"
                     f"<td>{_fmt(measured)}</td><td>{_fmt(ratio)}</td></tr>")
    return "\n".join(lines) + "</table>"


def _paper_runs(ok) -> tuple[list[dict], str]:
    """The runs the figures and the published comparison use, and a paragraph on the others:
    physical-mode runs (issue 17) are never compared with the paper's numbers while the store
    holds paper-mode runs; a store of physical runs only is reported as such."""
    physical = [r for r in ok if r.get("physical")]
    if not physical:
        return ok, ""
    switches = sorted({s for r in physical for s in r["physical"]})
    paper = [r for r in ok if not r.get("physical")]
    where = ("left out of the figures and of the published comparison (they are listed in "
             "the last table)" if paper else "the only runs: every figure and comparison "
             "below is of physical mode, not of the paper's idealised wafer")
    note = (f"<p><b>{len(physical)} physical-mode runs</b> (switches "
            f"{html.escape(', '.join(switches))}, docs/physical.md) are {where}.</p>")
    return paper or ok, note


def _runs_table(runs) -> str:
    from ..system import ReplayResult
    physical = any(r.get("physical") for r in runs)
    columns = ReplayResult.CSV_HEADER.split(",") + (["physical"] if physical else [])
    header = "".join(f"<th>{h}</th>" for h in columns)
    cells = lambda r: r["row"].split(",") + (["+".join(r.get("physical") or ())]
                                             if physical else [])
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells(r))
                   + "</tr>" for r in sorted(runs, key=lambda r: (r["row"],
                                                                  r.get("physical") or [])))
    return f"<div style='overflow-x:auto'><table><tr>{header}</tr>{rows}</table></div>"


def _provenance(results, ok, failed, sweeps, command) -> str:
    versions = json.loads(sweeps[-1]["versions"]) if sweeps else {}
    made = sorted({s["command"] for s in sweeps if s["command"]})
    items = [(f"<li>results store <code>{html.escape(str(results))}</code>: {len(ok)} runs "
             f"succeeded, {len(failed)} failed</li>"),
             "<li>made by " + ", ".join(f"<code>{html.escape(c)}</code>" for c in made)
             + "</li>" if made else "",
             f"<li>this report: <code>{html.escape(command)}</code></li>",
             "<li>versions: " + ", ".join(f"{k} {html.escape(str(v))}"
                                          for k, v in sorted(versions.items())) + "</li>"]
    return "<ul>" + "".join(items) + "</ul>"


def _failures(failed) -> str:
    if not failed:
        return ""
    rows = "".join(f"<tr><td>{html.escape(r['trace'])} {html.escape(r['wafer'])} "
                   f"{html.escape(r['strategy'])}</td><td>{html.escape(r['error'] or '')}</td>"
                   f"</tr>" for r in failed)
    return f"<h2>Failed runs</h2><table><tr><th>run</th><th>error</th></tr>{rows}</table>"


def write_report(results, out_dir, command: str = "hwmodel report") -> list[Path]:
    """Write the PNG figures and ``report.html`` (figures embedded) into ``out_dir``.

    The files are written into a temporary folder and moved in when all are complete
    (:func:`hwmodel.cli.outputs.output_dir`).

    Raises
    ------
    ValueError
        The store holds no successful run, or is not a results store.
    """
    from ..cli.outputs import output_dir
    ok, failed, sweeps = load_results(results)
    if not ok:
        raise ValueError(f"{results}: no successful run to report ({len(failed)} failed)")
    with output_dir(out_dir) as tmp:
        names = _write_pages(results, tmp, ok, failed, sweeps, command)
    return [Path(out_dir) / name for name in names]


def _write_pages(results, out: Path, ok, failed, sweeps, command) -> list[str]:
    """Write the figures and ``report.html`` into ``out``; their names."""
    from .ablation import report_section
    files, sections = [], []
    runs, physical_note = _paper_runs(ok)
    ablation_html, ablation_files = report_section(ok, failed, out)
    files += ablation_files
    for name, title, draw, published in FIGURES:
        path = draw(runs, out / name)
        if path is None:
            sections.append(f"<h2>{title}</h2><p>Not drawn: {_NOT_DRAWN[name]}. "
                            f"{html.escape(published)}</p>")
            continue
        files.append(path)
        data = base64.b64encode(path.read_bytes()).decode()
        sections.append(f"<h2>{title}</h2><p>{html.escape(published)}</p>"
                        f"<img alt='{title}' src='data:image/png;base64,{data}'>")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>hwmodel reproduction "
            f"report</title><style>{_CSS}</style></head><body>"
            f"<h1>hwmodel reproduction report</h1>{_provenance(results, ok, failed, sweeps, command)}"
            f"{physical_note}{ablation_html}"
            f"<h2>Published numbers against this sweep</h2>{_comparison_table(runs)}"
            f"<p>Throughput ratios: arithmetic mean over scenarios (model, trace, batch, mesh, "
            f"replay parameters). Hop reductions: summed base hops over summed strategy hops. "
            f"Green: within 0.8-1.25x of the published value.</p>"
            + "".join(sections) + _failures(failed)
            + f"<h2>All runs (the study artefact's CSV columns)</h2>{_runs_table(ok)}"
            "</body></html>")
    files.append(out / "report.html")
    files[-1].write_text(page)
    return [path.name for path in files]
