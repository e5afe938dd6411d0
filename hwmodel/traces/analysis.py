"""Trace statistics of SPEC section 8 (the paper's observations), a JSON summary and plots.

Definitions (all on the rows replay uses, iterations 0..127; a row's top-k slots all count):

* **layer-level heatmap** of MoE layer ``j``: counts of (expert i at layer j, expert x at layer
  j+1) over every token and every pair of slots; its conditional is the row-normalised matrix.
* **token-level heatmap** of layer ``j``: counts of (expert i at token t, expert x at token t+1)
  over consecutive rows of the same request (prompt tokens in order, then decode steps, the last
  prompt token followed by the first decode step); ``diagonal`` is the share of the same expert
  re-chosen.
* **top-20% coverage** of a heatmap: for each source expert, the share of its row's mass held by
  its ``ceil(0.2 E)`` largest entries, averaged weighted by the row's total (random choice: 0.2).
* **prefill vs decode** of layer ``j``: Spearman's rho between the expert frequency vectors of
  prompt rows and decode rows (average ranks for ties), and for n in 5, 10, 20 the share of the
  top-n prefill experts that are among the top-n decode experts (ties broken by expert id).
* **popularity**: per-layer expert frequency; ``max_over_mean`` = hottest expert's count over the
  mean count of the layer's experts.
* **pairs** (top-k > 1 only): co-activation counts of unordered expert pairs chosen by the same
  token at the same layer, normalised by the random-pair probability ``2 / (E (E-1))`` (share of
  all co-activations divided by it); ``top10_share`` = share of co-activations carried by the 10%
  most frequent of the ``E (E-1) / 2`` pairs.
* **hot experts per subject**: requests grouped by the folder of their request id; per subject,
  the 5 hottest experts of each layer, and the mean overlap of those sets with the whole trace's.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..jit import njit
from .store import TraceStore

__all__ = ["HEADLINE", "add_layer_transitions", "coverage", "headline", "layer_counts",
           "layer_transition_counts", "pair_counts", "spearman", "summarize",
           "token_transition_counts", "top_overlap", "write_report"]


def _stage_mask(store: TraceStore) -> np.ndarray:
    """True for decode rows, False for prompt rows."""
    starts = np.repeat(store.token_offset[:-1], store.prefill_len + store.decode_len)
    position = np.arange(store.num_rows) - starts
    return position >= np.repeat(store.prefill_len, store.prefill_len + store.decode_len)


def layer_counts(store: TraceStore, stage: str = "all") -> np.ndarray:
    """Expert counts per MoE layer ``(L, E)``; ``stage`` is ``all``, ``prefill`` or ``decode``."""
    ids = np.asarray(store.ids)
    _check_stage(stage)
    if stage != "all":
        decode = _stage_mask(store)
        ids = ids[decode if stage == "decode" else ~decode]
    experts = store.num_experts
    layers = ids.shape[1]
    flat = ids.transpose(1, 0, 2).reshape(layers, -1).astype(np.int64)
    flat += np.arange(layers)[:, None] * experts
    return np.bincount(flat.reshape(-1), minlength=layers * experts).reshape(layers, experts)


def _pair_bincount(first, second, experts):
    index = first[:, :, None].astype(np.int64) * experts + second[:, None, :]
    return np.bincount(index.reshape(-1), minlength=experts * experts).reshape(experts, experts)


def _check_stage(stage):
    if stage not in ("all", "prefill", "decode"):
        raise ValueError(f"stage {stage!r}: expected 'all', 'prefill' or 'decode'")


@njit(cache=True)
def add_layer_transitions(ids, out):
    """Add the layer-level heatmap's counts of token rows ``ids`` (tokens, MoE layers, top-k)
    to ``out`` (MoE layers - 1, E, E): ``out[j, i, x]`` gains one for every token and every
    pair of its slots with expert ``i`` at layer ``j`` and expert ``x`` at layer ``j + 1``.
    The one definition of the statistic: ``hwmodel trace analyze`` reports it, and the
    physical switch ``prefetch`` (hwmodel.system.prefetch) predicts from it."""
    k = ids.shape[2]
    for j in range(ids.shape[1] - 1):
        table = out[j]
        for t in range(ids.shape[0]):
            for a in range(k):
                row = table[ids[t, j, a]]
                for b in range(k):
                    row[ids[t, j + 1, b]] += 1


def layer_transition_counts(store: TraceStore, layer: int, stage: str = "all") -> np.ndarray:
    """Counts ``(E, E)``: expert i at MoE layer ``layer`` -> expert x at ``layer + 1``
    (:func:`add_layer_transitions` of the two layers' rows).

    ``stage`` (``all``, ``prefill`` or ``decode``) keeps only prompt rows or decode rows.
    """
    _check_stage(stage)
    ids = np.asarray(store.ids[:, layer:layer + 2])
    if stage != "all":
        decode = _stage_mask(store)
        ids = ids[np.flatnonzero(decode if stage == "decode" else ~decode)]
    out = np.zeros((1, store.num_experts, store.num_experts), np.int64)
    add_layer_transitions(np.ascontiguousarray(ids), out)
    return out[0]


def token_transition_counts(store: TraceStore, layer: int, stage: str = "all") -> np.ndarray:
    """Counts ``(E, E)``: expert i at a token -> expert x at the request's next token.

    ``stage`` (``all``, ``prefill`` or ``decode``) keeps only the pairs whose *later* token is a
    prompt token or a decode step (the last prompt token -> first decode step pair is decode).
    """
    _check_stage(stage)
    ids = store.ids[:, layer]
    follows = np.ones(store.num_rows, bool)
    follows[store.token_offset[:-1][store.token_offset[:-1] < store.num_rows]] = False
    if stage != "all":
        decode = _stage_mask(store)
        follows &= decode if stage == "decode" else ~decode
    after = np.flatnonzero(follows)
    return _pair_bincount(ids[after - 1], ids[after], store.num_experts)


def coverage(counts: np.ndarray, share: float = 0.2) -> float:
    """Row-total-weighted share of each row's mass in its top ``ceil(share E)`` entries."""
    counts = np.asarray(counts, np.float64)
    total = counts.sum()
    if total == 0:
        return float("nan")
    top = math.ceil(share * counts.shape[1])
    return float(np.sort(counts, axis=1)[:, -top:].sum() / total)


def _ranks(values):
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    sorted_values = np.asarray(values)[order]
    # Average ranks over ties.
    _, first, counts = np.unique(sorted_values, return_index=True, return_counts=True)
    average = first + (counts - 1) / 2.0
    ranks[order] = np.repeat(average, counts)
    return ranks


def spearman(a, b) -> float:
    """Spearman's rho of two vectors (Pearson of average ranks); NaN if either is constant."""
    ra, rb = _ranks(np.asarray(a)), _ranks(np.asarray(b))
    ra -= ra.mean()
    rb -= rb.mean()
    norm = math.sqrt(float((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum() / norm) if norm else float("nan")


def _top(counts, n):
    return set(np.lexsort((np.arange(len(counts)), -np.asarray(counts)))[:n].tolist())


def top_overlap(prefill_counts, decode_counts, n: int) -> float:
    """Share of the top-``n`` prefill experts found among the top-``n`` decode experts."""
    return len(_top(prefill_counts, n) & _top(decode_counts, n)) / n


def pair_counts(store: TraceStore, layer: int) -> np.ndarray:
    """Upper-triangular ``(E, E)`` counts of unordered expert pairs in the same row."""
    ids = np.sort(np.asarray(store.ids[:, layer], np.int64), axis=1)
    experts = store.num_experts
    k = ids.shape[1]
    first, second = np.triu_indices(k, 1)
    index = ids[:, first] * experts + ids[:, second]
    return np.bincount(index.reshape(-1), minlength=experts * experts).reshape(experts, experts)


def _subject(request_id: str) -> str:
    parent = request_id.rsplit("/", 1)[0] if "/" in request_id else ""
    return parent.rsplit("/", 1)[-1] or "(root)"


def summarize(store: TraceStore, share: float = 0.2) -> dict:
    """The statistics of the module docstring as plain data (a JSON-ready dict)."""
    layers, experts = len(store.moe_layers), store.num_experts
    prefill, decode = layer_counts(store, "prefill"), layer_counts(store, "decode")
    counts = prefill + decode
    layer_cov = [coverage(layer_transition_counts(store, j), share) for j in range(layers - 1)]
    token = [token_transition_counts(store, j) for j in range(layers)]
    token_cov = [coverage(m, share) for m in token]
    diagonal = [float(np.trace(m) / m.sum()) if m.sum() else float("nan") for m in token]
    rho = [spearman(prefill[j], decode[j]) for j in range(layers)]
    overlap = {str(n): [top_overlap(prefill[j], decode[j], n) for j in range(layers)]
               for n in (5, 10, 20) if n <= experts}
    mean = counts.mean(axis=1)
    max_over_mean = (counts.max(axis=1) / np.where(mean > 0, mean, 1)).tolist()
    summary = {
        "model": store.model, "requests": len(store), "rows": store.num_rows,
        "moe_layers": store.moe_layers.tolist(), "num_experts": experts, "top_k": store.top_k,
        "cut_decode_steps": store.cut_steps,
        "layer_level": {"top_share": share, "coverage": layer_cov,
                        "mean_coverage": _mean(layer_cov)},
        "token_level": {"top_share": share, "coverage": token_cov,
                        "mean_coverage": _mean(token_cov), "diagonal": diagonal,
                        "mean_diagonal": _mean(diagonal)},
        "prefill_vs_decode": {"spearman": rho, "mean_spearman": _mean(rho),
                              "layers_rho_ge_0_7": int(np.sum(np.asarray(rho) >= 0.7)),
                              "top_overlap": overlap,
                              "mean_top_overlap": {n: _mean(v) for n, v in overlap.items()}},
        "popularity": {"max_over_mean": max_over_mean, "max": float(max(max_over_mean)),
                       "counts": counts.tolist()},
    }
    if store.top_k > 1:
        pairs_total = experts * (experts - 1) // 2
        top_n = max(1, pairs_total // 10)
        upper = np.triu_indices(experts, 1)
        brightest, top10 = [], []
        for j in range(layers):
            pairs = pair_counts(store, j)[upper].astype(np.float64)
            total = pairs.sum()
            normalised = pairs / total / (2 / (experts * (experts - 1))) if total else pairs
            brightest.append(float(normalised.max()))
            top10.append(float(np.sort(pairs)[-top_n:].sum() / total) if total else math.nan)
        summary["pairs"] = {"max_normalised": brightest, "top10_share": top10,
                            "mean_top10_share": _mean(top10)}
    else:
        summary["pairs"] = None  # top-1: a token never co-activates two experts
    subjects = {}
    for index, request_id in enumerate(store.request_ids):
        subjects.setdefault(_subject(request_id), []).append(index)
    hot = {}
    whole = [_top(counts[j], 5) for j in range(layers)]
    for name, members in subjects.items():
        sub = layer_counts(store.select(members))
        tops = [_top(sub[j], 5) for j in range(layers)]
        hot[name] = {"requests": len(members), "top5": [sorted(t) for t in tops],
                     "overlap_with_all": _mean([len(t & w) / 5 for t, w in
                                                zip(tops, whole, strict=True)])}
    summary["subjects"] = hot
    return summary


#: The headline statistics of :func:`headline`, with what each is, in table order.
HEADLINE = {
    "layer_coverage": "layer-level top-20% coverage (mean over layer pairs)",
    "token_coverage": "token-level top-20% coverage (mean over layers)",
    "token_diagonal": "token-level diagonal: same expert re-chosen (mean over layers)",
    "hottest_over_mean": "hottest expert / mean, worst layer",
    "slot0_hottest_over_mean": "hottest expert / mean in slot 0 alone, worst layer",
    "pairs_top10_share": "co-activations carried by the top 10% of pairs (mean over layers)",
    "pairs_brightest": "brightest pair / random-pair probability (mean over layers)",
}


def headline(store: TraceStore) -> dict:
    """The SPEC section 8 statistics that top-k routing changes, one number each (:data:`HEADLINE`)."""
    summary = summarize(store)
    slot0 = layer_counts(_first_slot(store)).astype(np.float64)
    pairs = summary["pairs"] or {}
    return {
        "layer_coverage": summary["layer_level"]["mean_coverage"],
        "token_coverage": summary["token_level"]["mean_coverage"],
        "token_diagonal": summary["token_level"]["mean_diagonal"],
        "hottest_over_mean": summary["popularity"]["max"],
        "slot0_hottest_over_mean": float((slot0.max(axis=1) / slot0.mean(axis=1)).max()),
        "pairs_top10_share": pairs.get("mean_top10_share", math.nan),
        "pairs_brightest": _mean(pairs.get("max_normalised", [math.nan])),
    }


def _first_slot(store):
    from .synth import _slot_zero
    return _slot_zero(store)


def _mean(values):
    values = [v for v in values if not math.isnan(v)]
    return float(np.mean(values)) if values else float("nan")


def write_report(store: TraceStore, out_dir, plots: bool = True) -> dict:
    """Write ``summary.json`` and PNG plots into ``out_dir``; return the summary."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(store)
    (out / "summary.json").write_text(json.dumps(_finite(summary), indent=1) + "\n")
    if plots:
        _plots(store, summary, out)
    return summary


def _finite(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _plots(store, summary, out):
    """The four PNG plots of the report, each with labelled axes and colour bars, MoE layers
    named by their real layer numbers."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = [int(layer) for layer in store.moe_layers]
    middle = len(layers) // 2
    before = max(0, middle - 1)
    heatmaps = [("layer_heatmap.png", layer_transition_counts(store, before),
                 f"P(expert at layer {layers[middle]} | expert at layer {layers[before]})",
                 f"expert at layer {layers[middle]}", f"expert at layer {layers[before]}"),
                ("token_heatmap.png", token_transition_counts(store, middle),
                 f"P(next token's expert | token's expert), layer {layers[middle]}",
                 "next token's expert", "token's expert")]
    for name, counts, title, xlabel, ylabel in heatmaps:
        fig, ax = plt.subplots(figsize=(5.5, 4.8))
        total = counts.sum(axis=1, keepdims=True)
        image = ax.imshow(counts / np.where(total > 0, total, 1), cmap="magma",
                          interpolation="nearest")
        ax.set_title(f"{title}\ntop-20% coverage {coverage(counts):.2f}", fontsize=9)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        fig.colorbar(image, ax=ax, label="conditional probability")
        fig.tight_layout()
        fig.savefig(out / name, dpi=90)
        plt.close(fig)
    _layer_bars(plt, layers, summary, out)
    fig, ax = plt.subplots(figsize=(7, max(4, 0.12 * len(layers) + 1.5)))
    counts = np.asarray(summary["popularity"]["counts"], np.float64)
    shares = counts / np.where(counts.sum(axis=1, keepdims=True) > 0,
                               counts.sum(axis=1, keepdims=True), 1)
    image = ax.imshow(shares, aspect="auto", cmap="viridis", interpolation="nearest")
    ax.set_title("expert popularity per MoE layer", fontsize=9)
    ax.set_xlabel("expert")
    ax.set_ylabel("layer")
    ax.set_yticks(range(len(layers)))
    ax.set_yticklabels(layers, fontsize=6 if len(layers) > 30 else 8)
    fig.colorbar(image, ax=ax, label="share of the layer's selections")
    fig.tight_layout()
    fig.savefig(out / "popularity.png", dpi=90)
    plt.close(fig)


def _layer_bars(plt, layers, summary, out):
    """Per MoE layer: prefill/decode Spearman rho and hottest/mean, every layer ticked."""
    fig, axes = plt.subplots(1, 2, figsize=(max(10, 0.22 * len(layers) * 2), 3.8))
    positions = range(len(layers))
    rho = [v if v is not None else 0 for v in summary["prefill_vs_decode"]["spearman"]]
    axes[0].bar(positions, rho)
    axes[0].set_title("prefill vs decode popularity, per layer", fontsize=9)
    axes[0].set_ylabel("Spearman rho")
    if all(v is None or math.isnan(v) for v in summary["prefill_vs_decode"]["spearman"]):
        axes[0].text(0.5, 0.5, "not defined: the trace has no prefill rows\nor no decode rows",
                     transform=axes[0].transAxes, ha="center", va="center", fontsize=9)
    axes[1].bar(positions, summary["popularity"]["max_over_mean"])
    axes[1].set_title("hottest expert over the mean, per layer", fontsize=9)
    axes[1].set_ylabel("hottest / mean selections")
    for ax in axes:
        ax.set_xlabel("layer")
        ax.set_xticks(list(positions))
        ax.set_xticklabels(layers, rotation=90, fontsize=6 if len(layers) > 30 else 8)
    fig.tight_layout()
    fig.savefig(out / "prefill_decode_popularity.png", dpi=90)
    plt.close(fig)
