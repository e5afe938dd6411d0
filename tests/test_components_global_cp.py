"""Global CP twin (SPEC sections 3 and 6): EDT, heatmap top-n with ties, predictor, Algorithm 1
on a hand-worked 1 x 3 mesh, and the fixed-point cost ROM against float64."""

import attrs
import numpy as np
import pytest

from hwmodel.components.global_cp import (
    FRAC_BITS,
    CostROM,
    GlobalCPTwin,
    build_cost_rom,
    home_dies,
)
from hwmodel.components.global_cp.predictor import PredictorTwin
from hwmodel.models import load_model

# Hand-workable costs (frac_bits=0: integer ns): an expert read costs 10, a transfer over h
# hops 2h + 5, a block of t tokens 3t (compute) - or 6t where stated.
ROM = CostROM(hbm_read=10, transfer_base=5, transfer_per_hop=2,
              compute=np.arange(8, dtype=np.int64) * 3, frac_bits=0)


def _line(rom=ROM, **kw):
    """Dies 0, 1, 2 in a line (mesh 1 x 3), 3 experts: expert e lives on die e."""
    kw.setdefault("block_size", 4)
    return GlobalCPTwin.for_mesh(1, 3, 1, 3, rom, **kw)


# ------------------------------------------------------------------------------- EDT
def test_home_dies_follow_the_placement_rule():
    # p = floor(10 / 4) = 2: experts 0-7 on dies 0..3; 8 and 9 past p*N - 1 -> e mod 4
    assert home_dies(10, 4).tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 0, 1]
    assert home_dies(3, 5).tolist() == [0, 1, 2]               # fewer experts than dies
    assert home_dies(128, 24)[[0, 4, 5, 119, 120, 127]].tolist() == [0, 0, 1, 23, 0, 7]


def test_edt_updates():
    cp = _line()
    assert [cp.edt_presence(0, e) for e in range(3)] == [0b001, 0b010, 0b100]
    cp.edt_set_present(0, 1, 0)
    cp.edt_set_present(0, 1, 2)
    assert cp.edt_presence(0, 1) == 0b111
    assert cp.presence_matrix(0).tolist() == [[True, False, False], [True, True, True],
                                              [False, False, True]]
    cp.edt_clear_present(0, 1, 0)
    assert cp.edt_presence(0, 1) == 0b110
    with pytest.raises(ValueError, match="home"):
        cp.edt_clear_present(0, 1, 1)
    with pytest.raises(ValueError, match="die"):
        cp.edt_set_present(0, 1, 3)
    with pytest.raises(ValueError, match="expert"):
        cp.edt_presence(0, 3)
    cp.edt_clear_replicas()
    assert cp.presence_matrix(0).tolist() == [[True, False, False], [False, True, False],
                                              [False, False, True]]
    cp.edt_set_present_many(0, [0, 2], 1)              # one die's report of two copies
    assert [cp.edt_presence(0, e) for e in range(3)] == [0b011, 0b010, 0b110]
    with pytest.raises(ValueError, match=r"experts\[1\] must be in \[0, 3\)"):
        cp.edt_set_present_many(0, [1, 3], 0)
    with pytest.raises(ValueError, match="die"):
        cp.edt_set_present_many(0, [1], 3)
    assert [cp.edt_presence(0, e) for e in range(3)] == [0b011, 0b010, 0b110]
    with pytest.raises(ValueError):
        cp.presence_matrix(0)[0, 1] = True              # read-only view


# ------------------------------------------------------------------ heatmap, predictor
def test_top_n_ties_by_count_then_expert_id():
    cp = GlobalCPTwin.for_mesh(1, 2, 1, 5, ROM, block_size=4, top_n_share=0.4)   # n = ceil(2.0) = 2
    assert cp.top_n_count == 2
    for successor, count in ((0, 3), (1, 5), (2, 5), (4, 3)):
        cp.heatmap_add(0, 0, successor, count)
    assert cp.top_n(0, 0) == (1, 2)                     # 5, 5: ids ascending
    cp.heatmap_add(0, 0, 4, 2)                          # 0:3 1:5 2:5 4:5
    assert cp.top_n(0, 0) == (1, 2)
    cp.heatmap_add(0, 0, 4, 1)                          # 4:6 leads
    assert cp.top_n(0, 0) == (4, 1)
    assert cp.top_n(0, 3) == (0, 1)                     # an all-zero row: lowest ids
    matrix = cp.top_n_matrix(0)
    assert matrix[0].tolist() == [False, True, False, False, True]
    assert matrix.sum(axis=1).tolist() == [2] * 5
    assert all(set(np.flatnonzero(matrix[i])) == set(cp.top_n(0, i)) for i in range(5))


def test_heatmap_counters_saturate():
    cp = GlobalCPTwin.for_mesh(1, 2, 1, 4, ROM, block_size=4, count_bits=2)
    cp.heatmap_add(0, 1, 2, 2)
    cp.heatmap_add(0, 1, 2, 5)
    cp.heatmap_add_matrix(0, np.full((4, 4), 9))
    assert cp.heatmap_row(0, 1).tolist() == [3, 3, 3, 3]


def test_predict_is_the_union_of_top_n_rows():
    cp = GlobalCPTwin.for_mesh(1, 2, 1, 5, ROM, block_size=4, top_n_share=0.2)     # n = 1
    cp.heatmap_add(0, 0, 3, 4)
    cp.heatmap_add(0, 2, 1, 4)
    assert cp.predict(0, [0]) == 1 << 3
    assert cp.predict(0, [0, 2]) == (1 << 3) | (1 << 1)
    assert cp.predict(0, []) == 0


# ------------------------------------------------------------------------ Algorithm 1
def test_allocation_blocks_by_hand():
    """Expert 1 (home die 1) with 12 tokens, blocks of 4 (compute 12 each); the home die is
    charged 10 for the expert's read. Candidates by estimate: die 0 (0 + transfer 7), die 2
    (7), die 1 (10); keep max(5, 12 // 4) -> all 3.

    block 1: local die 1 costs max(0 + 12, 10) = 12; remote die 0 costs max(data die:
      10 + 10 = 20, executing die: 7 + 12 = 19) = 20 -> die 1 (compute_local[1] = 12);
    block 2: die 1 costs 24, die 0 and die 2 20 -> die 0 (first in candidate order);
      remote read charged to die 1 (dram_remote[1] = 10), die 0: compute_remote 12, d2d 7;
    block 3: die 0 costs (7 + 7) + (12 + 12) = 38; die 2 max(10 + 20, 7 + 12) = 30;
      die 1 max(12 + 12, 10 + 10) = 24 -> die 1.
    Plan (expert order, then candidate order): die 0 gets 4 tokens, die 1 gets 8.
    """
    assert _line().allocate(0, [0, 12, 0]) == [(1, 0, 4), (1, 1, 8)]


def test_allocation_ties_go_to_a_local_die():
    """Free transfers, compute 6t: one block of 4 tokens (24). Local die 1: max(24, 10) = 24;
    remote die 0: max(10 + 10, 0 + 24) = 24: a tie, and die 0 comes first in candidate order
    (estimate 0 < 10), but the tie goes to the local die."""
    rom = CostROM(hbm_read=10, transfer_base=0, transfer_per_hop=0,
                  compute=np.arange(8, dtype=np.int64) * 6, frac_bits=0)
    assert _line(rom).allocate(0, [0, 4, 0]) == [(1, 1, 4)]
    # with compute 3t the local die wins outright (12 < 20) ...
    assert _line().allocate(0, [0, 4, 0]) == [(1, 1, 4)]


def test_candidate_limit():
    """keep = max(min_candidates, tokens // block): with min_candidates 1 and 4 tokens only
    the best-estimated candidate (die 0, estimate 7 < 10) may take the block, although the
    local die would finish sooner; with 3 candidates the local die is chosen."""
    assert _line(min_candidates=1).allocate(0, [0, 4, 0]) == [(1, 0, 4)]
    assert _line(min_candidates=3).allocate(0, [0, 4, 0]) == [(1, 1, 4)]
    # candidate_distance 0: only dies holding the expert are candidates
    assert _line(candidate_distance=0).allocate(0, [0, 12, 0]) == [(1, 1, 12)]


def test_last_block_absorbs_a_remainder_smaller_than_a_block():
    """6 tokens with blocks of 4: one block of 6 (compute 18) on the home die (18 < 20)."""
    assert _line().allocate(0, [0, 6, 0]) == [(1, 1, 6)]


def test_replica_makes_a_die_a_local_candidate():
    """Die 0 holds a copy of expert 1: it is local there (no transfer, no remote read)."""
    cp = _line(min_candidates=1)
    cp.edt_set_present(0, 1, 0)
    assert cp.allocate(0, [0, 4, 0]) == [(1, 0, 4)]
    plan = cp.allocate(0, [5, 4, 3])
    assert sum(t for _, _, t in plan) == 12
    assert [e for e, _, _ in plan] == sorted(e for e, _, _ in plan)


def test_bad_counts_are_refused():
    cp = _line()
    with pytest.raises(ValueError, match="shape"):
        cp.allocate(0, [1, 2])
    with pytest.raises(ValueError, match="zero or more"):
        cp.allocate(0, [1, -2, 0])


@pytest.mark.parametrize("mesh_x, mesh_y", [(8, 8), (16, 16), (32, 32)])
def test_wide_wafer_edt_and_allocation(mesh_x, mesh_y):
    # One expert per die (expert e on die e); only the last expert has tokens (one block of 4).
    # Its home estimate is the read, 10; its 1-hop neighbours 2 + 5 = 7. A block costs 12 at
    # home (max(12, 10)) and max(7 + 12, 10 + 10) = 20 on a neighbour: home wins. A replica
    # on die 0 (the bit farthest from the last die's, beyond any 64-bit word) costs 12 there
    # too and sorts first (estimate 0): it takes the block.
    last = mesh_x * mesh_y - 1
    cp = GlobalCPTwin.for_mesh(mesh_x, mesh_y, 1, last + 1, ROM, block_size=4)
    counts = [0] * last + [4]
    assert cp.edt_home(last) == last and cp.edt_presence(0, last) == 1 << last
    assert cp.allocate(0, counts) == [(last, last, 4)]
    cp.edt_set_present(0, last, 0)
    assert cp.edt_presence(0, last) == (1 << last) | 1
    assert np.flatnonzero(cp.presence_matrix(0)[last]).tolist() == [0, last]
    assert cp.replicas_per_die() == [1] + [0] * last
    assert cp.allocate(0, counts) == [(last, 0, 4)]
    cp.edt_clear_present(0, last, 0)
    assert cp.replicas_per_die() == [0] * (last + 1)


# --------------------------------------------------------------------- fixed point
def _rom_args(model):
    m = load_model(model)
    return {"expert_bytes": m.expert_bytes, "hidden_dim": m.hidden_dim,
            "expert_ffn_dim": m.expert_ffn_dim, "matrices_per_expert": 3,
            "hbm_bandwidth_GBps": 3350, "hbm_latency_ns": 300, "link_bandwidth_GBps": 1741,
            "hop_latency_ns": 200, "peak_TFLOPS": 1000}


@pytest.mark.parametrize("model", ["deepseek-v3", "qwen3-235b", "llama4-maverick"])
def test_fixed_point_constants_within_half_an_lsb(model):
    """Each ROM constant is within 2**-(FRAC_BITS+1) ns of float64 (documented bound)."""
    fixed = build_cost_rom(**_rom_args(model))
    flt = build_cost_rom(**_rom_args(model), frac_bits=None)
    scale = 2**FRAC_BITS
    for name in ("hbm_read", "transfer_base", "transfer_per_hop"):
        assert isinstance(getattr(fixed, name), int)
        assert abs(getattr(fixed, name) / scale - getattr(flt, name)) <= 2.0 ** -(FRAC_BITS + 1)
    assert (fixed.compute == flt.compute * scale).all()        # whole ns: exact
    assert len(fixed.compute) == 2 * 512
    # hand value: DeepSeek expert read 300 + 88,080,384 / 3015 = 29,513.726 ns
    if model == "deepseek-v3":
        assert flt.hbm_read == pytest.approx(300 + 88_080_384 / 3015)
        assert fixed.hbm_read == round((300 + 88_080_384 / 3015) * 256)


def test_fixed_point_plans_equal_float_on_random_counts():
    """Estimates after k charges differ by at most k * 2**-9 ns: far below the gaps between
    real candidates, so plans agree (random DeepSeek-V3-sized layers on a 3 x 8 mesh)."""
    fixed = GlobalCPTwin.for_mesh(3, 8, 1, 256, build_cost_rom(**_rom_args("deepseek-v3")))
    flt = GlobalCPTwin.for_mesh(3, 8, 1, 256, build_cost_rom(**_rom_args("deepseek-v3"),
                                                     frac_bits=None))
    rng = np.random.default_rng(7)
    for scale in (5, 60, 400, 3000):
        counts = rng.poisson(scale * rng.dirichlet(np.full(256, 0.3)) * 256 / 8)
        assert fixed.allocate(0, counts) == flt.allocate(0, counts)


@pytest.mark.parametrize("count_bits", [2, 16, 62])
def test_top_n_matrix_equals_row_by_row_top_n(count_bits):
    """The batched top-n (a partition on unique keys) equals :meth:`top_n` on every row, on
    heatmaps full of ties."""
    cp = GlobalCPTwin.for_mesh(1, 2, 1, 40, ROM, block_size=4, count_bits=count_bits)
    rng = np.random.default_rng(count_bits)
    cp.heatmap_add_matrix(0, rng.integers(0, 4, (40, 40)))
    matrix = cp.top_n_matrix(0)
    for i in range(40):
        assert set(np.flatnonzero(matrix[i])) == set(cp.top_n(0, i))


def test_dead_dies_hold_no_home_and_are_never_allocated():
    """3 x 3 mesh, the centre die 4 dead: the 256 experts' homes spread over the 8 live dies
    (256 // 8 = 32 each, in id order), and Algorithm 1 with heavy counts, which does spread
    work to the neighbours of a home (die 4 neighbours every edge die), never picks die 4."""
    rom = build_cost_rom(**_rom_args("deepseek-v3"))
    live = [0, 1, 2, 3, 5, 6, 7, 8]
    counts = np.full(256, 4000, np.int64)
    healthy = GlobalCPTwin.for_mesh(3, 3, 1, 256, rom)
    faulty = GlobalCPTwin.for_mesh(3, 3, 1, 256, rom, live_dies=live)
    assert [faulty.edt_home(e) for e in (0, 31, 32, 127, 128, 255)] == [0, 0, 1, 3, 5, 8]
    assert 4 in set(healthy.allocate_arrays(0, counts)[1].tolist())
    _, dies, tokens = faulty.allocate_arrays(0, counts)
    assert 4 not in set(dies.tolist())
    assert tokens.sum() == counts.sum()


# ------------------------------------------------------------------------ check_fits
def test_check_fits_names_the_yaml_path_the_value_and_the_size_that_would_hold():
    from hwmodel.components.global_cp.params import check_fits
    from hwmodel.config import ConfigError
    from hwmodel.params import load_wafer

    wafer = load_wafer("tsmc-sow")                  # paper sizes: 512 entries, 100 layers
    check_fits(wafer, num_experts=384, num_moe_layers=60)      # Kimi-K2 fits
    check_fits(wafer, num_experts=512, num_moe_layers=100)     # exactly full
    with pytest.raises(ConfigError) as error:
        check_fits(wafer, num_experts=513, num_moe_layers=60, source="w.yaml")
    assert str(error.value) == ("w.yaml: wafer.die.atu_entries: 512 is too small: a model of "
                                "513 experts per layer needs at least 513")
    small = attrs.evolve(wafer, die=attrs.evolve(wafer.die, pdu_experts=128))
    with pytest.raises(ConfigError, match=r"^wafer\.die\.pdu_experts: 128 .* at least 256$"):
        check_fits(small, num_experts=256, num_moe_layers=58)
    few = attrs.evolve(wafer, global_cp=attrs.evolve(wafer.global_cp, heatmap_layers=40))
    with pytest.raises(ConfigError, match=r"^wafer\.global_cp\.heatmap_layers: 40 .* 58 MoE"):
        check_fits(few, num_experts=256, num_moe_layers=58)
    edt = attrs.evolve(wafer, global_cp=attrs.evolve(wafer.global_cp, edt_entries=300))
    with pytest.raises(ConfigError, match=r"^wafer\.global_cp\.edt_entries: 300 "):
        check_fits(edt, num_experts=384, num_moe_layers=60)


def test_heatmap_add_pairs_counts_every_pair_of_every_layer_and_saturates():
    """Two tokens, top-2, two layers: token 0 chose (1, 2) and (0, 3), token 1 chose (2, 2)
    and (3, 0). Pairs 0 -> 1 add 1 -> 2, 1 -> 2 (x 2: the id appears twice), 2 -> 2 (x 2) in
    layer 0; 0 -> 3, 0 -> 0, 3 -> 3, 3 -> 0 in layer 1. With 2-bit counters, adding the same
    pair twice more saturates 1 -> 2 at 3."""
    rom = build_cost_rom(**_rom_args("deepseek-v3"))
    cp = GlobalCPTwin.for_mesh(2, 2, 2, 4, rom, count_bits=2)
    rows = np.array([[[1, 2], [0, 3]], [[2, 2], [3, 0]]], np.uint8)
    cp.heatmap_add_pairs(rows, [0], rows, [1])
    assert cp.heatmap_row(0, 1).tolist() == [0, 0, 2, 0]
    assert cp.heatmap_row(0, 2).tolist() == [0, 0, 2, 0]
    assert cp.heatmap_row(1, 0).tolist() == [1, 0, 0, 1]
    assert cp.heatmap_row(1, 3).tolist() == [1, 0, 0, 1]
    cp.heatmap_add_pairs(rows, [0, 0], rows, [1, 1])
    assert cp.heatmap_row(0, 1).tolist() == [0, 0, 3, 0]      # 2 + 4 saturates at 3
    with pytest.raises(ValueError, match="expert id 5, outside 0..3"):
        cp.heatmap_add_pairs(rows + 4, [0], rows, [1])
    # a bad id in the second pair: the first pair is not counted either (nothing changes)
    before = [cp.heatmap_row(layer, e).tolist() for layer in (0, 1) for e in range(4)]
    bad = np.concatenate([rows, rows + 4])
    with pytest.raises(ValueError, match="expert id 5, outside 0..3"):
        cp.heatmap_add_pairs(bad, [0, 2], rows, [1, 1])
    assert [cp.heatmap_row(layer, e).tolist() for layer in (0, 1) for e in range(4)] == before


def test_the_twins_defaults_are_the_papers_and_the_replays():
    """Algorithm 1 hands out blocks of 512 tokens to at least 5 candidates within 1 hop of the
    home die, and the predictor keeps the top ceil(0.2 E) successors (SPEC section 6) with
    16-bit counters (Table II): the defaults of each part, of the composition and of
    ReplayParams are these values."""
    import inspect

    from hwmodel.components.global_cp import AllocatorTwin, PredictorTwin
    from hwmodel.system import ReplayParams
    paper = {"block_size": 512, "candidate_distance": 1, "min_candidates": 5,
             "top_n_share": 0.2, "count_bits": 16}

    def defaults(function):
        return {name: p.default for name, p in inspect.signature(function).parameters.items()
                if name in paper}
    assert defaults(GlobalCPTwin.for_mesh) == paper
    assert {**defaults(AllocatorTwin), **defaults(PredictorTwin)} == paper
    replay = ReplayParams()
    assert {name: getattr(replay, name) for name in paper if name != "count_bits"} == {
        name: value for name, value in paper.items() if name != "count_bits"}
    rom = attrs.evolve(ROM, compute=np.zeros(1024, np.int64))
    twin = GlobalCPTwin.for_mesh(1, 3, 1, 3, rom)
    assert (twin.block_size, twin.candidate_distance, twin.min_candidates) == (512, 1, 5)
    assert (twin.top_n_count, twin.count_bits) == (1, 16)       # ceil(0.2 x 3) = 1


@pytest.mark.parametrize("seed", range(5))
def test_top_n_rows_equals_the_whole_matrix_and_row_by_row_top_n(seed):
    """The rows the prefetch asks for (:meth:`PredictorTwin.top_n_rows`, any subset in any
    order) equal those rows of the whole top-n matrix and each row's :meth:`top_n`, on
    heatmaps full of ties and saturated counters."""
    rng = np.random.default_rng(seed)
    experts = int(rng.integers(2, 50))
    twin = PredictorTwin(3, experts, top_n_share=float(rng.uniform(0.01, 1.0)), count_bits=3)
    for layer in range(3):
        twin.add_matrix(layer, rng.integers(0, 6, (experts, experts)))
    for layer in range(3):
        whole = twin.top_n_matrix(layer)
        rows = rng.permutation(experts)[: int(rng.integers(0, experts + 1))]
        some = twin.top_n_rows(layer, rows)
        assert some.shape == (len(rows), experts)
        assert (some == whole[rows]).all()
        for i, e in enumerate(rows):
            assert set(np.flatnonzero(some[i])) == set(twin.top_n(layer, int(e)))


def test_top_n_rows_refuses_an_expert_out_of_range():
    twin = PredictorTwin(1, 4)
    with pytest.raises(ValueError, match=r"experts\[1\] must be in \[0, 4\), not 4"):
        twin.top_n_rows(0, np.array([0, 4]))
