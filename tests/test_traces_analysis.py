"""Trace statistics (SPEC section 8) on a hand-worked trace, and the report files."""

import json

import numpy as np
import pytest

from hwmodel.traces.analysis import (
    coverage,
    layer_counts,
    layer_transition_counts,
    pair_counts,
    spearman,
    summarize,
    token_transition_counts,
    top_overlap,
    write_report,
)
from hwmodel.traces.reader import stack_requests


def hand_store():
    """Two requests, 2 MoE layers, 4 experts, top-1.

    A: prompt (0,1) (0,1), decode (2,3) (2,3); B: prompt (1,1), decode (1,0).
    """
    a = (np.array([[[0], [1]], [[0], [1]]]), np.array([[[2], [3]], [[2], [3]]]))
    b = (np.array([[[1], [1]]]), np.array([[[1], [0]]]))
    return stack_requests([("s1/A", "A", *a), ("s2/B", "B", *b)], model_name="", num_layers=2,
                          moe_layers=(0, 1), num_experts=4, top_k=1)


def test_layer_level_heatmap_and_coverage_by_hand():
    store = hand_store()
    counts = layer_transition_counts(store, 0)
    assert counts.tolist() == [[0, 2, 0, 0], [1, 1, 0, 0], [0, 0, 0, 2], [0, 0, 0, 0]]
    # top ceil(0.2 * 4) = 1 entry per row: 2 + 1 + 2 of 6.
    assert coverage(counts) == pytest.approx(5 / 6)


def test_token_level_heatmap_diagonal_and_coverage_by_hand():
    counts = token_transition_counts(hand_store(), 0)
    # A: 0->0, 0->2, 2->2; B: 1->1 (the last prompt token is followed by the first decode step).
    assert counts.tolist() == [[1, 0, 1, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    assert coverage(counts) == pytest.approx(3 / 4)
    summary = summarize(hand_store())
    assert summary["token_level"]["diagonal"][0] == pytest.approx(3 / 4)


def test_prefill_decode_spearman_and_overlap_by_hand():
    store = hand_store()
    prefill, decode = layer_counts(store, "prefill"), layer_counts(store, "decode")
    assert prefill[0].tolist() == [2, 1, 0, 0] and decode[0].tolist() == [0, 1, 2, 0]
    # Average ranks [3, 2, .5, .5] and [.5, 2, 3, .5]: rho = -1.75 / 4.5.
    assert spearman(prefill[0], decode[0]) == pytest.approx(-1.75 / 4.5)
    assert spearman([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert top_overlap(prefill[0], decode[0], 2) == 0.5      # {0, 1} vs {2, 1}
    summary = summarize(store)
    assert summary["popularity"]["max_over_mean"][0] == pytest.approx(2 / 1.5)
    assert summary["pairs"] is None


def test_pairs_by_hand():
    rows = np.array([[[0, 1]], [[0, 1]], [[2, 3]], [[1, 0]]])
    store = stack_requests([("r", "r", rows, rows[:0])], model_name="", num_layers=1,
                           moe_layers=(0,), num_experts=4, top_k=2)
    counts = pair_counts(store, 0)
    assert counts[0, 1] == 3 and counts[2, 3] == 1 and counts.sum() == 4
    pairs = summarize(store)["pairs"]
    # (3/4) / (2 / (4 * 3)) = 4.5; the top 10% of 6 pairs is one pair holding 3 of 4.
    assert pairs["max_normalised"][0] == pytest.approx(4.5)
    assert pairs["top10_share"][0] == pytest.approx(0.75)


def test_report_writes_json_and_plots(tmp_path):
    summary = write_report(hand_store(), tmp_path / "out")
    data = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert data["layer_level"]["coverage"] == pytest.approx([5 / 6])
    assert sorted(data["subjects"]) == ["s1", "s2"] == sorted(summary["subjects"])
    for name in ("layer_heatmap.png", "token_heatmap.png", "popularity.png",
                 "prefill_decode_popularity.png"):
        assert (tmp_path / "out" / name).read_bytes()[:4] == b"\x89PNG"
