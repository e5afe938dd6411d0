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


@pytest.mark.parametrize("seed", range(6))
def test_deferred_pairs_read_as_if_added_at_once(seed):
    """Batches deferred (``defer_pairs``) and added (``add_pairs``) in turn, with reads of
    every kind in between, against a twin that adds every batch at once: each read sees the
    same counts (16-bit and narrow counters that saturate, empty batches, one-token rows,
    ties in the top-n). Fails if a read path does not count what is deferred, if a batch is
    counted twice or lost, or if a batch is fetched before it is counted."""
    rng = np.random.default_rng(100 + seed)
    layers, experts = int(rng.integers(1, 4)), int(rng.choice([3, 17, 256]))
    count_bits = int(rng.choice([2, 4, 16]))
    lazy = PredictorTwin(layers, experts, count_bits=count_bits, top_n_share=0.2)
    eager = PredictorTwin(layers, experts, count_bits=count_bits, top_n_share=0.2)
    fetched = []
    for step in range(8):
        tokens = int(rng.choice([1, 2, 30]))
        rows = _random_rows(rng, tokens, layers, int(rng.choice([1, 8])), experts,
                            np.uint16 if experts > 255 else np.uint8, hot=bool(step % 2))
        pairs = int(rng.choice([0, 1, 50]))
        batch = (rows, rng.integers(0, tokens, pairs), rows, rng.integers(0, tokens, pairs))
        eager.add_pairs(*batch)
        if rng.integers(0, 3):
            lazy.defer_pairs(lambda b=batch, s=step: fetched.append(s) or b)
        else:
            lazy.add_pairs(*batch)
        layer, expert = int(rng.integers(0, layers)), int(rng.integers(0, experts))
        read = int(rng.integers(0, 6))
        if read == 0:
            assert lazy.row(layer, expert).tolist() == eager.row(layer, expert).tolist()
        elif read == 1:
            assert lazy.top_n(layer, expert) == eager.top_n(layer, expert)
        elif read == 2:
            assert (lazy.top_n_matrix(layer) == eager.top_n_matrix(layer)).all()
        elif read == 3:
            assert lazy.predict(layer, [expert, 0]) == eager.predict(layer, [expert, 0])
        elif read == 4:
            assert (lazy.top_n_rows(layer, [expert]) == eager.top_n_rows(layer, [expert])).all()
        if read < 5:                                # a read counted everything deferred
            assert not lazy._deferred and (lazy._heatmap == eager._heatmap).all()
        assert fetched == sorted(fetched)                      # oldest first, once each
    for layer in range(layers):
        assert (lazy.top_n_matrix(layer) == eager.top_n_matrix(layer)).all()
        for e in range(experts):
            assert lazy.row(layer, e).tolist() == eager.row(layer, e).tolist()
    assert len(fetched) == len(set(fetched))


def test_deferred_pairs_are_not_fetched_until_read():
    """A deferred batch is fetched by the first read, not before (the replay's rows of an
    iteration whose heatmap nobody reads are never read again)."""
    twin = PredictorTwin(1, 4)
    rows = np.array([[[1]], [[2]]], np.uint8)
    calls = []
    twin.defer_pairs(lambda: calls.append(1) or (rows, [0], rows, [1]))
    twin.add(0, 3, 3)
    assert calls == []
    assert twin.row(0, 1).tolist() == [0, 0, 1, 0] and calls == [1]
    assert twin.row(0, 1).tolist() == [0, 0, 1, 0] and calls == [1]


@pytest.mark.parametrize("layers", [1, 7, 8, 9, 17])
def test_gather_in_tiles_equals_a_plain_transposition(layers):
    """The tiled gathers (one word per (token, layer), and the general one) against numpy's
    ``rows[index].transpose``, at sizes around the 8 x 8 tile (1, 7, 8, 9 and 17 layers; 1,
    8, 9 and 19 pairs), with repeated and unordered indices."""
    rng = np.random.default_rng(layers)
    for pairs in (1, 8, 9, 19):
        tokens = int(rng.integers(1, 12))
        index = rng.integers(0, tokens, pairs)
        for width, dtype in ((1, np.uint64), (3, np.uint8)):
            rows = rng.integers(0, 200, (tokens, layers, width)).astype(dtype)
            expected = rows[index].transpose(1, 0, 2)
            for gather in (predictor._gather, predictor._gather_by_layer):
                out = np.full((layers, pairs, width), 255, dtype)
                gather(rows, index, out)
                assert (out == expected).all()


@pytest.fixture(scope="module")
def small_batch():
    """24 synthetic Llama-4 requests (the built-in model, seed 3)."""
    from hwmodel.traces.synth import synthesize
    return synthesize(model="llama4-maverick", requests=24, seed=3)


@pytest.mark.parametrize("replica_bytes", [None, 6 * 10**8])
def test_replay_with_deferred_heatmap_pairs_changes_no_result(small_batch, replica_bytes):
    """``pred`` with the heatmap's pairs counted when it is read (and the store's rows of the
    last two iterations kept) against the path that counts them as they come (which
    recording the units selects): the same results, field by field, with an unbounded and
    a bounded replica region (whose evictions make copies needed again)."""
    from hwmodel.models import load_model
    from hwmodel.params import load_wafer
    from hwmodel.system import Replay, ReplayParams
    from hwmodel.topologies.wafer import build_wafer
    replay = Replay(wafer=build_wafer(load_wafer("tsmc-sow")),
                    model=load_model("llama4-maverick"), store=small_batch,
                    params=ReplayParams(max_iterations=10,
                                        replica_capacity_bytes=replica_bytes))
    fast = replay.run("pred").to_json()
    exact = replay.run("pred", record_units=True).to_json()
    for run in (fast, exact):
        run.pop("wall_s"), run.pop("unit_streams", None)
    assert fast == exact
    assert fast["counts"]["replicas"] > 0            # copies were made
    assert (fast["counts"]["replica_evictions"] > 0) == (replica_bytes is not None)


def test_launches_skip_the_predictor_only_where_no_copy_reads_it(small_batch):
    """Random layer launches on two sets of units, one working cp_en out only where a copy
    decision reads it (``lazy_cp_en``), one always: the same copies, redirects and task
    order at every launch, over launches that read the predictor and launches whose remote
    tasks all have their replicas already (which skip it). Fails if the skip rule misses a
    task whose copy reads cp_en."""
    from hwmodel.components.global_cp.predictor import PredictorTwin as Twin
    from hwmodel.models import load_model
    from hwmodel.params import load_wafer
    from hwmodel.system import Replay
    from hwmodel.system.prediction import PredictionUnits
    from hwmodel.topologies.wafer import build_wafer
    rng = np.random.default_rng(7)
    replay = Replay(wafer=build_wafer(load_wafer("tsmc-sow")),
                    model=load_model("llama4-maverick"), store=small_batch)
    N, E = replay.N, replay.E
    sides = [PredictionUnits(replay, replay.global_cp(), lazy_cp_en=lazy)
             for lazy in (True, False)]
    for units in sides:
        for layer in range(2):
            units.gcp.heatmap_add_matrix(layer, np.random.default_rng(layer).integers(
                0, 4, (E, E)))
    reads, skipped, copies = [], 0, 0
    for step in range(60):
        layer = int(rng.integers(0, 2))
        experts = np.sort(rng.choice(E, int(rng.integers(1, 12)), replace=False))
        home = replay.home[experts]
        copied = sides[0].gcp.presence_matrix(layer)        # (experts, dies)
        if step % 2:    # remote only where a replica exists already (or at home)
            dies = np.array([int(rng.choice(np.flatnonzero(copied[e]))) for e in experts])
        else:
            dies = np.where(rng.random(len(experts)) < 0.6, rng.integers(0, N, len(experts)),
                            home)
        tokens = np.ones(len(experts), np.int64)
        seen = []
        for units in sides:
            before = len(reads)
            original = Twin.top_n_rows
            Twin.top_n_rows = lambda self, *a, _o=original: reads.append(1) or _o(self, *a)
            try:
                order = units.launch(layer, experts, dies, tokens, True, False)
            finally:
                Twin.top_n_rows = original
            seen.append((order.tolist(), units.copy.copy(), units.redirect.copy(),
                         len(reads) - before))
            units.report(layer)
        (order_a, copy_a, redirect_a, read_a), (order_b, copy_b, redirect_b, _) = seen
        assert order_a == order_b
        assert (copy_a == copy_b).all() and (redirect_a == redirect_b).all()
        skipped += read_a == 0
        copies += int(copy_a.sum())
    assert skipped >= 20 and copies > 0
