"""The predictor twin's compiled heat map counting and top-n (issue 18's fast paths) against
straightforward references on random inputs: a pair-by-pair, increment-by-increment count
that saturates at every step, and a stable sort of each row by count descending (the
documented tie rule: count descending, expert id ascending)."""

import numpy as np
import pytest

from hwmodel.components.global_cp import predictor
from hwmodel.components.global_cp.predictor import PredictorTwin


def _reference_counts(layers, experts, count_bits, batches):
    """Every pair of every batch, one saturating increment at a time."""
    top = (1 << count_bits) - 1
    heat = [[[0] * experts for _ in range(experts)] for _ in range(layers)]
    for prev_rows, prev_index, cur_rows, cur_index in batches:
        for p, c in zip(prev_index.tolist(), cur_index.tolist()):
            for layer in range(layers):
                for a in prev_rows[p, layer].tolist():
                    for b in cur_rows[c, layer].tolist():
                        heat[layer][a][b] = min(heat[layer][a][b] + 1, top)
    return np.array(heat, np.int64)


def _random_rows(rng, tokens, layers, top_k, experts, dtype, *, hot=False):
    """Token rows of ids (tokens, layers, top-k); ``hot`` draws from a few experts only, so
    that cells fill and saturate and rows tie."""
    high = min(experts, 3) if hot else experts
    rows = rng.integers(0, high, (tokens, layers, top_k)).astype(dtype)
    return rows


@pytest.mark.parametrize("seed", range(8))
def test_add_pairs_equals_a_pair_by_pair_saturating_count(seed):
    """Random shapes, id types (uint8 ids that are words of 1, 2, 4 or 8 bytes, wider types
    and a strided view, which take the per-id gather), repeated and empty indices, counters
    narrow enough to saturate, several calls in a row."""
    rng = np.random.default_rng(seed)
    layers = int(rng.integers(1, 5))
    experts = int(rng.choice([1, 3, 17, 256]))
    count_bits = int(rng.choice([2, 5, 16]))
    twin = PredictorTwin(layers, experts, count_bits=count_bits)
    batches = []
    for call in range(3):
        kp, kc = int(rng.choice([1, 2, 3, 4, 8])), int(rng.choice([1, 2, 8]))
        dtype = [np.uint8, np.int64, np.int16, np.uint16][(seed + call) % 4]
        if experts > 255 and dtype == np.uint8:
            dtype = np.uint16
        hot = bool(rng.integers(0, 2))
        prev_rows = _random_rows(rng, int(rng.integers(1, 40)), layers, kp, experts, dtype,
                                 hot=hot)
        cur_rows = _random_rows(rng, int(rng.integers(1, 40)), layers, kc, experts, dtype,
                                hot=hot)
        if call == 1:                           # not contiguous: every other token
            cur_rows = np.concatenate([cur_rows, cur_rows])[::2]
        pairs = [0, int(rng.integers(1, 200))][call != 2 or seed % 2]
        prev_index = rng.integers(0, len(prev_rows), pairs)
        cur_index = rng.integers(0, len(cur_rows), pairs)
        twin.add_pairs(prev_rows, prev_index, cur_rows, cur_index)
        batches.append((prev_rows, prev_index, cur_rows, cur_index))
    expected = _reference_counts(layers, experts, count_bits, batches)
    got = np.array([[twin.row(layer, e) for e in range(experts)] for layer in range(layers)])
    assert (got == expected).all()


def test_add_pairs_saturates_16_bit_counters_across_chunks(monkeypatch):
    """More pairs than one chunk gathers (the chunk made small here), each adding 64 to one
    cell: 1,100 pairs make 70,400, held at 65,535; a cell reached 8 x 1,100 = 8,800 times
    keeps its count, one never reached stays 0."""
    monkeypatch.setattr(predictor, "PAIRS_PER_CHUNK", 100)
    twin = PredictorTwin(2, 4)                  # the paper's 16-bit counters
    prev_rows = np.zeros((1, 2, 8), np.uint8)   # expert 0, eight times, in both layers
    cur_rows = np.zeros((1, 2, 8), np.uint8)
    cur_rows[0, 1, 0] = 2                       # layer 1: 0 -> 2 once and 0 -> 0 seven times
    index = np.zeros(1100, np.int64)
    twin.add_pairs(prev_rows, index, cur_rows, index)
    assert twin.row(0, 0).tolist() == [65535, 0, 0, 0]
    assert twin.row(1, 0).tolist() == [61600, 0, 8800, 0]
    assert twin.row(0, 1).tolist() == [0, 0, 0, 0]


def test_add_pairs_refuses_ids_out_of_range_in_every_id_type():
    """The check that names a bad id runs for every type that can hold one (uint8 ids of
    17 experts can; of 256 experts cannot)."""
    twin = PredictorTwin(1, 17)
    for dtype in (np.uint8, np.int16, np.int64):
        rows = np.array([[[1, 2]], [[3, 17]]], dtype)
        with pytest.raises(ValueError, match="expert id 17, outside 0..16"):
            twin.add_pairs(rows, [0], rows, [1])
    assert twin.row(0, 1).tolist() == [0] * 17              # nothing counted
    with pytest.raises(ValueError, match="expert id -1, outside 0..16"):
        twin.add_pairs(np.array([[[-1]]]), [0], np.array([[[0]]]), [0])


def test_negative_counts_are_refused():
    """The counters only grow (the top-n reads them as count_bits-bit values)."""
    twin = PredictorTwin(1, 3)
    with pytest.raises(ValueError, match="count must be >= 0, not -1"):
        twin.add(0, 1, 2, -1)
    with pytest.raises(ValueError, match="counts must be >= 0, not -2"):
        twin.add_matrix(0, np.array([[0, 0, 0], [0, -2, 0], [0, 0, 0]]))
    assert twin.row(0, 1).tolist() == [0, 0, 0]


@pytest.mark.parametrize("seed", range(10))
def test_top_n_equals_a_stable_sort_at_every_counter_width(seed):
    """The binary search of the n-th count against a stable sort, at counter widths from 1 to
    62 bits (int32 and int64 counters), on rows with every count saturated, rows of ties,
    an all-zero row, n = 1 and n = E (the whole row)."""
    rng = np.random.default_rng(seed)
    count_bits = [1, 8, 9, 16, 17, 30, 62, 16, 9, 62][seed]
    experts = int(rng.choice([1, 2, 5, 64, 256]))
    share = float(rng.choice([1 / experts, 0.2, 0.5, 1.0]))
    twin = PredictorTwin(1, experts, top_n_share=share, count_bits=count_bits)
    top = (1 << count_bits) - 1
    spread = int(rng.choice([2, 5, top + 1])) if count_bits < 62 else 1 << 61
    counts = rng.integers(0, min(spread, 1 << 62), (experts, experts), dtype=np.int64)
    counts[0] = 0
    if experts > 2:
        counts[1] = top                             # saturated
        counts[2, ::2] = top
    twin.add_matrix(0, counts)
    heat = np.minimum(counts, top)
    n = twin.top_n_count
    matrix = twin.top_n_matrix(0)
    for i in range(experts):
        expected = np.argsort(-heat[i], kind="stable")[:n]
        assert np.flatnonzero(matrix[i]).tolist() == sorted(expected.tolist())
        assert twin.top_n(0, i) == tuple(expected.tolist())
