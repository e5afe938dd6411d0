"""Synthesis: determinism, shapes, and statistics against a held-out real subject."""

import numpy as np
import pytest

from hwmodel.traces import TraceStore, open_batch
from hwmodel.traces.analysis import summarize
from hwmodel.traces.synth import builtin_model, default_batch, sample, synthesize


def test_default_batch_is_seeded_and_needs_no_shared(tmp_path):
    one = default_batch("llama4-maverick", requests=8, seed=3)
    two = default_batch("llama4-maverick", requests=8, seed=3)
    assert one.save(tmp_path / "a").read_bytes() == two.save(tmp_path / "b").read_bytes()
    other = default_batch("llama4-maverick", requests=8, seed=4)
    assert not np.array_equal(one.prefill_len, other.prefill_len) or \
        not np.array_equal(one.ids, other.ids)
    assert one.model == "llama4-maverick" and one.moe_layers.tolist() == list(range(1, 48, 2))
    assert one.decode_len.max() <= 127 and one.ids.max() < 128


def test_top_k_rows_are_distinct_in_a_deepseek_shape(tmp_path):
    store = default_batch("deepseek-v3", requests=4, seed=0)
    assert store.ids.shape[1:] == (58, 8) and store.ids.dtype == np.uint8
    ordered = np.sort(store.ids, axis=2)
    assert not np.any(ordered[:, :, 1:] == ordered[:, :, :-1])
    loaded = TraceStore.load(store.save(tmp_path / "ds.hwt"))
    assert loaded.model == "deepseek-v3" and len(loaded) == 4


# Tolerances of a synthetic batch fitted on one subject against another subject (documented in
# docs/traces.md): absolute for shares and correlations, relative for hottest/mean.
TOLERANCES = {"layer_coverage": 0.05, "token_coverage": 0.05, "token_diagonal": 0.05,
              "spearman": 0.08, "overlap": 0.10, "max_over_mean": 0.15}


def _figures(summary):
    pvd = summary["prefill_vs_decode"]
    return {"layer_coverage": summary["layer_level"]["mean_coverage"],
            "token_coverage": summary["token_level"]["mean_coverage"],
            "token_diagonal": summary["token_level"]["mean_diagonal"],
            "spearman": pvd["mean_spearman"],
            **{f"overlap{n}": pvd["mean_top_overlap"][n] for n in ("5", "10", "20")},
            "max_over_mean": summary["popularity"]["max"]}


def test_fit_on_one_subject_matches_another(llama4_traces):
    trace = open_batch(llama4_traces / "mmlu")
    fitted_on = trace.select(range(100))                       # abstract_algebra
    held_out = _figures(summarize(trace.select(range(100, 235))))   # anatomy
    for seed in (1, 2):
        batch = synthesize(fitted_on, requests=135, seed=seed)
        synthetic = _figures(summarize(batch))
        for name, real in held_out.items():
            tolerance = TOLERANCES["overlap" if name.startswith("overlap") else name]
            if name == "max_over_mean":
                assert synthetic[name] == pytest.approx(real, rel=tolerance), name
            else:
                assert synthetic[name] == pytest.approx(real, abs=tolerance), name
        # Before the per-stage tables and the fitted repeat share: 0.93 and 0.21.
        assert synthetic["spearman"] < 0.8 and synthetic["token_diagonal"] > 0.3
        # Prompt lengths are resampled from the subject fitted on (median 28 tokens; anatomy's
        # is 12, a workload difference no model fitted on abstract_algebra can predict).
        fit_median = np.median(fitted_on.prefill_len)
        assert np.median(batch.prefill_len) == pytest.approx(fit_median, rel=0.15)
        assert batch.prefill_len.mean() == pytest.approx(fitted_on.prefill_len.mean(), rel=0.1)
        assert set(batch.prefill_len.tolist()) <= set(fitted_on.prefill_len.tolist())


def test_fitted_tables_are_per_stage_and_keep_the_repeat_share(llama4_traces):
    from hwmodel.traces.analysis import layer_counts, token_transition_counts
    from hwmodel.traces.synth import fit
    trace = open_batch(llama4_traces / "mmlu" / "anatomy", model="llama4-maverick")
    synth = fit(trace)
    decode = layer_counts(trace, "decode")
    assert np.allclose(synth.decode_popularity, decode / decode.sum(axis=1, keepdims=True))
    pairs = token_transition_counts(trace, 5, "prefill")
    assert synth.token_repeat[0, 5] == pytest.approx(np.trace(pairs) / pairs.sum())
    # Prefill and decode tables differ (they were one table before).
    assert not np.allclose(synth.layer_transition[0, 5], synth.layer_transition[1, 5])


def test_token_chains_follow_the_previous_token_exactly():
    # Token weight 1: every non-first row is drawn from the lazy token table of the previous
    # row's expert. Empirical conditionals must equal the table (an approximation that draws
    # from an earlier ancestor would not).
    import attrs

    from hwmodel.traces.analysis import token_transition_counts
    from hwmodel.traces.synth import builtin_model, mixture, sample
    synth = attrs.evolve(builtin_model("deepseek-v2-lite", seed=0), token_weight=1.0,
                         layer_weight=0.0, top_k=1)
    token_share, _, lazy = mixture(synth)
    assert np.all(token_share == 1.0)
    batch = sample(synth, requests=400, seed=5)
    counts = token_transition_counts(batch, 3, "decode").astype(np.float64)
    seen = counts.sum(axis=1) >= 1000
    assert seen.sum() >= 3
    total = counts[seen].sum(axis=1, keepdims=True)
    expected = lazy[1, 3][seen]
    # 5 binomial standard deviations, plus the tables' 1/4096 resolution.
    bound = 5 * np.sqrt(expected * (1 - expected) / total) + 1 / 2048
    assert np.all(np.abs(counts[seen] / total - expected) <= bound)
    # The repeat share is met: lazy diagonal weighted by popularity = the fitted 0.3.
    pop = synth.decode_popularity[3]
    assert float(pop @ np.diag(lazy[1, 3])) == pytest.approx(0.3, abs=1e-9)


@pytest.mark.slow
def test_builtin_batch_has_the_papers_prefill_decode_relation():
    # SPEC section 8: prefill/decode Spearman mostly >= 0.7, top-n overlaps well above chance;
    # built-in repeat share 0.3 per slot (top-8: diagonal about 0.3 / 8).
    summary = summarize(default_batch("deepseek-v3", requests=64, seed=0))
    pvd = summary["prefill_vs_decode"]
    assert 0.7 <= pvd["mean_spearman"] <= 0.9
    assert all(0.6 <= v <= 0.9 for v in pvd["mean_top_overlap"].values())
    assert summary["token_level"]["mean_diagonal"] == pytest.approx(0.3 / 8, abs=0.01)


@pytest.mark.slow
def test_rank_mapping_to_a_larger_model(llama4_traces):
    trace = open_batch(llama4_traces / "mmlu" / "anatomy", model="llama4-maverick")
    batch = synthesize(trace, model="kimi-k2", requests=6, seed=0)
    assert batch.ids.shape[1:] == (60, 8) and batch.ids.dtype == np.uint16
    assert batch.ids.max() < 384
    assert set(batch.prefill_len.tolist()) <= set(trace.prefill_len.tolist())


def test_inverse_cdf_tables_equal_searchsorted():
    # The loop-free table build against the direct definition: entry q of a row is the
    # expert whose cumulative interval holds (q + 0.5) / 4096.
    from hwmodel.traces.synth import _Tables, builtin_model, mixture
    synth = builtin_model("deepseek-v2-lite", seed=2)
    tables = _Tables(synth)
    layers = len(synth.moe_layers)
    lazy = mixture(synth)[2]
    grid = (np.arange(_Tables.RESOLUTION) + 0.5) / _Tables.RESOLUTION
    decode_row_3 = tables.pop_base + layers + 3   # decode rows follow prefill
    for name, base, matrix in (("pop", decode_row_3, synth.decode_popularity[3]),
                               ("layer", tables.layer_base + 5 * 64 + 7,
                                synth.layer_transition[0, 5, 7]),
                               ("decode layer", tables.layer_base + (layers + 5) * 64 + 7,
                                synth.layer_transition[1, 5, 7]),
                               ("token", tables.token_base + (layers + 25) * 64 + 63,
                                lazy[1, 25, 63])):
        cumulative = np.cumsum(matrix) / matrix.sum()
        expected = np.minimum(np.searchsorted(cumulative, grid, side="right"), 63)
        got = tables.flat[base * _Tables.RESOLUTION:(base + 1) * _Tables.RESOLUTION]
        assert np.array_equal(got, expected), name


def test_chunked_sampling_is_byte_deterministic(tmp_path, monkeypatch):
    from hwmodel.traces import synth
    monkeypatch.setattr(synth, "CHUNK_ROWS", 150)   # several chunks for a small batch
    one = default_batch("deepseek-v3", requests=5, seed=7)
    two = default_batch("deepseek-v3", requests=5, seed=7)
    assert one.save(tmp_path / "a").read_bytes() == two.save(tmp_path / "b").read_bytes()
    ordered = np.sort(one.ids, axis=2)
    assert not np.any(ordered[:, :, 1:] == ordered[:, :, :-1])


def test_stage_filtered_transition_counts_by_hand():
    # One request: prompt tokens [0, 1] then decode steps [1, 2] at MoE layer 0, and
    # [3, 3, 0, 0] at layer 1 (2 MoE layers, top-1, 4 experts).
    from hwmodel.traces.analysis import layer_transition_counts, token_transition_counts
    ids = np.array([[[0], [3]], [[1], [3]], [[1], [0]], [[2], [0]]], np.uint8)
    store = TraceStore(model="", num_layers=2, moe_layers=[0, 1], top_k=1, num_experts=4,
                       request_ids=["r"], source_paths=["r"], prefill_len=[2], decode_len=[2],
                       token_offset=[0, 4], ids=ids)
    prefill = token_transition_counts(store, 0, "prefill")
    assert prefill.sum() == 1 and prefill[0, 1] == 1            # token 0 -> 1
    decode = token_transition_counts(store, 0, "decode")        # 1 -> 1 (prompt end), 1 -> 2
    assert decode.sum() == 2 and decode[1, 1] == 1 and decode[1, 2] == 1
    assert np.array_equal(prefill + decode, token_transition_counts(store, 0))
    layer = layer_transition_counts(store, 0, "decode")         # rows 2, 3: 1 -> 0, 2 -> 0
    assert layer.sum() == 2 and layer[1, 0] == 1 and layer[2, 0] == 1
    assert layer_transition_counts(store, 0, "prefill")[[0, 1], [3, 3]].tolist() == [1, 1]
    with pytest.raises(ValueError, match="stage 'warmup'"):
        token_transition_counts(store, 0, "warmup")


def test_sample_with_two_seeds_draws_two_batches():
    """``sample`` itself takes the seed: the same seed gives the same batch, another seed
    another batch (expert ids and request lengths), from one fitted model."""
    synth = builtin_model("llama4-maverick")
    first, again, other = (sample(synth, 8, seed=s) for s in (0, 0, 1))
    assert np.array_equal(first.ids, again.ids)
    assert np.array_equal(first.prefill_len, again.prefill_len)
    assert not (np.array_equal(first.ids, other.ids)
                and np.array_equal(first.prefill_len, other.prefill_len))


# ---------------------------------------------- the leader fit's compiled follower sampler
def _plackett_luce(weight, length):
    """Exact probability of every ordered tuple of ``length`` distinct indices drawn one after
    the other, each in proportion to the weights not yet drawn (the law of Gumbel top-k)."""
    from itertools import permutations
    total = weight.sum()
    law = {}
    for picks in permutations(range(len(weight)), length):
        p, left = 1.0, total
        for x in picks:
            p *= weight[x] / left if left > 0 else 0.0
            left -= weight[x]
        law[picks] = p
    return law


def test_follower_kernel_draws_the_weights_law():
    """Many tokens with hand-set tables: the frequency of every ordered pair of followers
    matches the exact successive-draw probabilities of co x (sum of row_layer over the previous
    row) x row_token (unless first), within 4.5 binomial sigmas; a weight-0 expert never
    appears."""
    from hwmodel.traces.synth import _draw_followers
    experts, top_k, n = 5, 3, 60_000
    rng = np.random.default_rng(7)
    co, row_layer, row_token = (rng.uniform(0.2, 2.0, (2, experts, experts)) for _ in range(3))
    co[:, :, 4] = 0.0                      # expert 4: never seen as a follower
    stage = np.tile(np.array([0, 1], np.int32), n // 2)
    first = np.tile(np.array([True, False]), n // 2)   # odd tokens follow token t - 1
    chosen = np.empty((n, top_k), np.int32)
    chosen[:, 0] = np.tile(np.array([2, 0], np.int32), n // 2)
    previous = np.tile(np.array([[1, 3], [3, 3]], np.int32), (n // 2, 1))
    _draw_followers(co, row_layer, row_token, stage, previous, first,
                    rng.random((n, top_k - 1)), chosen)
    for kind in (0, 1):    # the two kinds of token, hand-weighted independently
        s, lead, prev = kind, chosen[kind, 0], previous[kind]
        weight = co[s, lead] * (row_layer[s, prev[0]] + row_layer[s, prev[1]])
        if kind:
            weight = weight * row_token[s, chosen[kind - 1, 0]]
        weight[lead] = 0.0
        rows = chosen[kind::2, 1:]
        count = len(rows)
        assert not np.any(rows == 4) and not np.any(rows == lead)
        for pair, p in _plackett_luce(weight, top_k - 1).items():
            seen = np.count_nonzero((rows[:, 0] == pair[0]) & (rows[:, 1] == pair[1]))
            assert abs(seen / count - p) <= 4.5 * np.sqrt(p * (1 - p) / count) + 1e-12, \
                (kind, pair, seen / count, p)


def test_follower_kernel_takes_zero_weights_last_when_k_is_every_expert():
    """k = E: every row holds every expert once; the weight-0 experts (never seen) come after
    every positive one, lowest id first."""
    from hwmodel.traces.synth import _draw_followers
    experts = 6
    co = np.ones((2, experts, experts))
    co[:, :, [1, 4]] = 0.0
    chosen = np.zeros((500, experts), np.int32)
    chosen[:, 0] = 2
    _draw_followers(co, co, co, np.zeros(500, np.int32), np.zeros((500, 0), np.int32),
                    np.ones(500, bool), np.random.default_rng(0).random((500, experts - 1)),
                    chosen)
    assert (np.sort(chosen, axis=1) == np.arange(experts)).all()
    assert (chosen[:, 4:] == [1, 4]).all()
    assert {tuple(row) for row in chosen[:, 1:4].tolist()} == \
        {(0, 3, 5), (0, 5, 3), (3, 0, 5), (3, 5, 0), (5, 0, 3), (5, 3, 0)}


def _top2_store():
    """A hand-made top-2 trace of 4 experts: expert 0 leads, followed by 1 or 2, never 3."""
    from hwmodel.traces.reader import stack_requests
    rng = np.random.default_rng(0)
    rows = np.zeros((400, 2, 2), np.int64)
    rows[:, :, 1] = rng.choice([1, 2], size=(400, 2))
    requests = [(f"{i}", "x", rows[i * 40:i * 40 + 4], rows[i * 40 + 4:(i + 1) * 40])
                for i in range(10)]
    return stack_requests(requests, model_name="", num_layers=2, moe_layers=[0, 1],
                          num_experts=4, top_k=2)


def test_leader_sampling_of_one_request_and_for_any_thread_count(tmp_path):
    """One request draws whole rows of the hand-made model; same seed -> byte-identical
    stores, with 1 thread or all of them (parallel spans of tokens must not share scratch)."""
    import numba

    from hwmodel.traces.synth import fit_leader
    synth = fit_leader(_top2_store(), smoothing=0.0)
    one = sample(synth, 1, seed=5)
    assert one.ids.shape[0] == one.prefill_len[0] + one.decode_len[0] > 0
    assert (one.ids[:, :, 0] == 0).all() and np.isin(one.ids[:, :, 1], [1, 2]).all()
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        serial = sample(synth, 300, seed=5).save(tmp_path / "a").read_bytes()
    finally:
        numba.set_num_threads(threads)
    assert sample(synth, 300, seed=5).save(tmp_path / "b").read_bytes() == serial


def _chains_in_rounds(flat, chained, entry, token_row, table, resolution):
    """The sampler's former token-chain pass, the reference: slots resolved in rounds by their
    distance from the chain's last fresh draw (numpy, no compiled code)."""
    index = np.arange(len(flat))
    last_fresh = np.maximum.accumulate(np.where(chained, -1, index))
    slots = np.flatnonzero(chained)
    depth = slots - last_fresh[slots]
    for level in range(1, int(depth.max(initial=0)) + 1):
        part = slots[depth == level]
        flat[part] = table[(token_row[part] + flat[part - 1].astype(np.int64)) * resolution
                           + entry[part]]


@pytest.mark.parametrize("seed", range(4))
def test_compiled_token_chains_equal_the_rounds_on_random_chains(seed):
    from hwmodel.traces.synth import _follow_chains_in_order
    rng = np.random.default_rng(seed)
    experts, resolution, n = 7, 16, 5000
    rows = 3 * experts
    table = rng.integers(0, experts, rows * resolution).astype(np.uint8)
    flat = rng.integers(0, experts, n).astype(np.uint8)
    chained = rng.random(n) < [0.0, 0.5, 0.9, 0.999][seed]   # up to chains of thousands
    chained[rng.integers(0, n, 40)] = False                   # requests' first tokens
    chained[0] = False
    entry = rng.integers(0, resolution, n).astype(np.int32)
    token_row = (rng.integers(0, 3, n) * experts).astype(np.int32)
    expected = flat.copy()
    _chains_in_rounds(expected, chained, entry, token_row, table, resolution)
    _follow_chains_in_order(flat, chained, entry, token_row, table, resolution)
    assert np.array_equal(flat, expected)


@pytest.mark.parametrize("top_k", [1, 2, 8])
def test_compiled_duplicate_mask_equals_pairwise_comparison(top_k):
    from hwmodel.traces.synth import _duplicates
    block = np.random.default_rng(top_k).integers(0, 5, (top_k, 3000)).astype(np.uint8)
    expected = np.zeros(block.shape, bool)
    for slot in range(top_k):
        for earlier in range(slot):
            expected[slot] |= block[slot] == block[earlier]
    assert np.array_equal(_duplicates(block), expected)
    assert np.array_equal(_duplicates(block[:, ::3]), expected[:, ::3])   # a strided view


def test_synthesize_lets_the_model_go_before_sampling(monkeypatch):
    # The transition matrices (122 MB for DeepSeek-V3) are in the sampling tables once those
    # are built; holding the model through the sampling would keep them to the peak.
    import weakref

    from hwmodel.traces import synth as module
    models, alive = [], []
    build = module._Tables.__init__

    def tables(self, synth):
        build(self, synth)
        models.append(weakref.ref(synth))

    sample_chunk = module._sample_chunk

    def chunk(*args):
        alive.append(models[-1]() is not None)
        return sample_chunk(*args)

    monkeypatch.setattr(module._Tables, "__init__", tables)
    monkeypatch.setattr(module, "_sample_chunk", chunk)
    module.synthesize(None, model="llama4-maverick", requests=4, seed=0)
    assert alive == [False]
