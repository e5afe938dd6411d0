# amaranth: UnusedElaboratable=no
"""Allocation engine of Algorithm 1 (RTL) against GlobalCPTwin.allocate, bit for bit; the
predictor RTL on the real-trace window; the allocator's cycle model against pysim."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwmodel.components.global_cp import CostROM, GlobalCPTwin
from hwmodel.components.global_cp.allocator_rtl import Allocator, allocator_cycle_model
from hwmodel.components.global_cp.sim import simulate_allocator, simulate_predict


def small_rom(hbm, base, per_hop, compute):
    return CostROM(hbm_read=hbm, transfer_base=base, transfer_per_hop=per_hop,
                   compute=np.asarray(compute, dtype=np.int64), frac_bits=8)


def test_hand_worked_1x3_splits_the_last_block_to_a_remote_neighbour():
    # Experts 0..2 live on dies 0..2 (a line). hbm 10, transfer(h) = 5 + h, compute(t) = 4t,
    # blocks of 2. Expert 2 (6 tokens): candidates die 1 (remote, estimate 0 + 6) before die 2
    # (local, estimate dl = 10); keep = min(max(2, 6 // 2), 2) = 2. Blocks of 2, 2, 2:
    #   die 2 costs max(0 + 8, 10) = 10, then max(16, 10) = 16, then 24;
    #   die 1 costs max(t_data = 10 + 10, t_exec = 6 + 8) = 20 each time -> takes block 3.
    rom = small_rom(10, 5, 1, [4 * t for t in range(4)])
    counts = [0, 0, 6]
    expected = [(2, 1, 2), (2, 2, 4)]
    twin = GlobalCPTwin.for_mesh(1, 3, 1, 3, rom, block_size=2, min_candidates=2)
    assert twin.allocate(0, counts) == expected
    plans, cycles = simulate_allocator([counts], mesh_x=1, mesh_y=3, num_experts=3, costs=rom,
                                       block_size=2, min_candidates=2)
    assert plans == [expected]
    # 1 item, no sort pass, 1 setup; scan max(2 candidates, split 3) + 2; 3 blocks of 3; write
    # 2; emit 2 rows: 1 + 1 + (2 + 3 + 9 + 2) + 2 = 20.
    assert cycles == [20]


def test_a_cost_tie_goes_to_the_local_die_in_the_rtl_as_in_the_twin():
    """The twin's hand case (tests/test_components_global_cp.py): a line of 3 dies, free
    transfers, compute 6t, one block of 4 tokens of expert 1 (home die 1). Local die 1 costs
    max(24, 10) = 24; remote die 0 costs max(10 + 10, 0 + 24) = 24: a tie, die 0 first in
    candidate order (estimate 0 < 10), and the tie goes to the local die."""
    rom = CostROM(hbm_read=10, transfer_base=0, transfer_per_hop=0,
                  compute=np.arange(8, dtype=np.int64) * 6, frac_bits=0)
    plans, _ = simulate_allocator([[0, 4, 0]], mesh_x=1, mesh_y=3, num_experts=3, costs=rom,
                                  block_size=4)
    assert plans == [[(1, 1, 4)]]


def test_hand_worked_2x2_keeps_one_candidate_and_breaks_estimate_ties_by_die():
    # 2x2: die (x, y) = y + 2x; expert e on die e. Expert 1 (2 tokens) on die 1: candidates
    # die 0 and die 3 (one hop, estimate 0 + 6 each: die 0 first) and die 1 (local, 10).
    # min_candidates 1 and split 2 // 4 = 0 keep only die 0, which takes the expert.
    rom = small_rom(10, 4, 2, [3 * t for t in range(8)])
    twin = GlobalCPTwin.for_mesh(2, 2, 1, 4, rom, block_size=4, min_candidates=1)
    layers = [[0, 2, 0, 0], [0, 2, 0, 0], [1, 2, 0, 0]]
    presence = [[1 << e for e in range(4)]] * 3
    presence[1] = [1, 0b1010, 4, 8]          # a replica of expert 1 on die 3: local, estimate 0
    plans, _ = simulate_allocator(layers, mesh_x=2, mesh_y=2, num_experts=4, costs=rom,
                                  block_size=4, min_candidates=1, presence=presence)
    assert plans[0] == [(1, 0, 2)]
    assert plans[1] == [(1, 3, 2)]
    # Expert 0 (1 token, first: ascending count): die 2 (one hop, 0 + 6) beats its home die 0
    # (dl = 10) and die 1 (10 + 6); keep 1 -> die 2. Expert 1: die 3 (6) beats die 1 (10) and
    # die 0 (now dl + dr = 20, + 6).
    assert plans[2] == [(0, 2, 1), (1, 3, 2)]
    for layer, (counts, bits) in enumerate(zip(layers, presence)):
        for e, b in enumerate(bits):
            for d in range(4):
                if b >> d & 1:
                    twin.edt_set_present(0, e, d)
        assert twin.allocate(0, counts) == plans[layer]
        twin.edt_clear_replicas()


@st.composite
def scenarios(draw):
    mesh = draw(st.sampled_from([(1, 3), (2, 2), (2, 3), (3, 2)]))
    n_dies = mesh[0] * mesh[1]
    num_experts = draw(st.integers(2, 9))
    block = draw(st.integers(1, 4))
    # small integer costs: estimate ties are frequent, so the tie rules are exercised
    compute = sorted(draw(st.lists(st.integers(0, 30), min_size=2 * block,
                                   max_size=2 * block)))
    rom = small_rom(draw(st.integers(0, 20)), draw(st.integers(0, 10)),
                    draw(st.integers(0, 5)), compute)
    knobs = {"block_size": block, "min_candidates": draw(st.integers(1, 6)),
             "candidate_distance": draw(st.integers(0, 2))}
    layers, presence = [], []
    for _ in range(draw(st.integers(1, 3))):
        counts = draw(st.lists(st.sampled_from([0, 0, 1, 2, 3, 5, 8, 13]),
                               min_size=num_experts, max_size=num_experts))
        if not any(counts):
            counts[0] = 1
        layers.append(counts)
        presence.append([draw(st.integers(0, (1 << n_dies) - 1)) for _ in range(num_experts)])
    return mesh, num_experts, rom, knobs, layers, presence


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_allocator_equals_twin_and_cycle_model_on_random_layers(scenario):
    mesh, num_experts, rom, knobs, layers, extra = scenario
    twin = GlobalCPTwin.for_mesh(*mesh, 1, num_experts, rom, **knobs)
    home = [twin.edt_home(e) for e in range(num_experts)]
    presence = [[bits | 1 << home[e] for e, bits in enumerate(layer)] for layer in extra]
    plans, cycles = simulate_allocator(layers, mesh_x=mesh[0], mesh_y=mesh[1],
                                       num_experts=num_experts, costs=rom,
                                       presence=presence, **knobs)
    for counts, bits, plan, cyc in zip(layers, presence, plans, cycles):
        twin.edt_clear_replicas()
        for e, b in enumerate(bits):
            for d in range(mesh[0] * mesh[1]):
                if b >> d & 1:
                    twin.edt_set_present(0, e, d)
        assert plan == twin.allocate(0, counts)
        assert cyc == allocator_cycle_model(counts, plan, mesh_x=mesh[0], mesh_y=mesh[1],
                                            presence=bits, **knobs)


def test_allocator_rejects_float_rom_and_presence_without_home():
    rom = small_rom(1, 1, 1, [0, 1])
    with pytest.raises(ValueError, match="fixed-point"):
        Allocator(1, 3, 3, CostROM(1.0, 1.0, 1.0, np.zeros(2), frac_bits=None), block_size=1)
    with pytest.raises(ValueError, match="home die 1"):
        simulate_allocator([[0, 1, 0]], mesh_x=1, mesh_y=3, num_experts=3, costs=rom,
                           block_size=1, presence=[[1, 1, 4]])


@pytest.mark.slow
def test_real_trace_window_allocator_and_predictor_equal_the_twins(llama4_traces):
    """Decode iterations 1 and 2 of all 24 MoE layers of the shared Llama-4 trace on tsmc-sow
    (3 x 8): RTL allocator plans == twin plans, RTL predictor bits == twin/replay bits."""
    from hwmodel.models import load_model
    from hwmodel.params import load_wafer
    from hwmodel.system import Replay
    from hwmodel.system.prediction import PredictionUnits
    from hwmodel.topologies.wafer import build_wafer
    from hwmodel.traces import open_batch

    replay = Replay(wafer=build_wafer(load_wafer("tsmc-sow")),
                    model=load_model("llama4-maverick"), store=open_batch(llama4_traces))
    gcp = replay.global_cp()
    pred_cp = replay.global_cp()   # the replay's predictor path, on an EDT without the replicas
    units = PredictionUnits(replay, pred_cp)
    wl = replay.workload
    assert (replay.mesh.x_dies, replay.mesh.y_dies, replay.E) == (3, 8, 128)
    # a few seeded replicas, so the local-replica path of the allocator is exercised too
    rng = np.random.default_rng(0)
    for layer in range(wl.L):
        for e, d in zip(rng.integers(0, 128, 12).tolist(), rng.integers(0, 24, 12).tolist()):
            gcp.edt_set_present(layer, e, d)
    window = []     # per layer: twin plan, heatmap rows per die, replay's cp_en bits
    prev = None
    layers, presence = [], []
    for it in (0, 1, 2):
        rows, requests = wl.rows(it)
        pairs = (wl.prefill_pairs(rows, requests) if it == 0
                 else wl.decode_pairs(it, rows, requests, *prev) if it == 2 else None)
        if pairs is not None:
            gcp.heatmap_add_pairs(*pairs)
            pred_cp.heatmap_add_pairs(*pairs)
        prev = (rows, requests)
        if it == 0:
            continue
        counts_all = wl.counts(rows)      # the replay's own counting
        for layer in range(wl.L):
            if not counts_all[layer].any():
                continue
            layers.append(counts_all[layer])
            presence.append([gcp.edt_presence(layer, e) for e in range(gcp.num_experts)])
            plan = gcp.allocate(layer, counts_all[layer])
            task_e = np.array([e for e, _, _ in plan])
            task_d = np.array([d for _, d, _ in plan])
            task_t = np.array([t for _, _, t in plan])
            units.launch(layer, task_e, task_d, task_t, True, False)   # the replay's path
            groups = {}
            for d in range(24):
                mine = task_e[task_d == d]
                if len(mine):
                    bits = gcp.predict(layer, mine)
                    # the cp_en bits die d's Local CP wrote into its PDU
                    assert bits == sum(1 << j for j in range(128) if units.pdus[d].query(j)[0])
                    groups[d] = ([gcp.heatmap_row(layer, int(e)).tolist() for e in mine], bits)
            window.append((plan, groups))
    assert len(layers) == 48
    plans, cycles = simulate_allocator(layers, mesh_x=3, mesh_y=8, num_experts=128,
                                       costs=gcp.costs, presence=presence)
    rows_in, expected = [], []
    for (plan, groups), got, counts, bits, cyc in zip(window, plans, layers, presence, cycles):
        assert got == plan
        assert cyc == allocator_cycle_model(counts, plan, mesh_x=3, mesh_y=8, presence=bits)
        for d in sorted(groups):
            rows_in.append(groups[d][0])
            expected.append(groups[d][1])
    bitmaps, _ = simulate_predict(rows_in, 128, gcp.top_n_count)
    assert bitmaps == expected
    assert any(len(group) > 1 for group in rows_in)   # some dies OR several rows


@pytest.mark.parametrize("mesh", [(4, 6), (5, 5), (8, 8)])
def test_allocator_at_paper_and_64_die_sizes_equals_the_twin(mesh):
    # 24 and 25 dies (5-bit die fields), 64 dies (6 bits): replicas on the top dies, whose ids
    # need the last bit of the field, must come back in the plan as the twin's.
    num_dies = mesh[0] * mesh[1]
    num_experts = num_dies + 6          # p = 1: six experts past p * N wrap to dies 0..5
    rom = small_rom(10, 5, 2, [3 * t for t in range(8)])
    rng = np.random.default_rng(num_dies)
    counts = rng.choice([0, 1, 2, 3, 5, 8], size=num_experts).tolist()
    counts[num_experts - 1] = 7
    twin = GlobalCPTwin.for_mesh(*mesh, 1, num_experts, rom, block_size=4)
    for expert, die in [(num_experts - 1, num_dies - 1), (num_dies - 1, num_dies - 2),
                        (0, num_dies - 1)]:
        twin.edt_set_present(0, expert, die)
    presence = [[twin.edt_presence(0, e) for e in range(num_experts)]]
    plans, _ = simulate_allocator([counts], mesh_x=mesh[0], mesh_y=mesh[1],
                                  num_experts=num_experts, costs=rom, block_size=4,
                                  presence=presence)
    expected = twin.allocate(0, counts)
    assert plans[0] == expected
    assert any(d == num_dies - 1 for _, d, _ in expected)
