# amaranth: UnusedElaboratable=no
"""Compiled (CXXRTL) against pysim: same results and same cycle counts per unit, on seeded random
streams, and both against the unit's twin; the driver's protocol on hand-worked cases."""

import numpy as np
import pytest

from hwmodel.components.atu.params import ATULayout
from hwmodel.components.atu.rtl import LOOKUP_LATENCY
from hwmodel.components.atu.sim import run_atu_twin, simulate_atu
from hwmodel.components.global_cp import GlobalCPTwin, build_cost_rom
from hwmodel.components.global_cp.sim import (
    simulate_allocator,
    simulate_edt,
    simulate_predict,
    simulate_top_n,
)
from hwmodel.components.local_cp.sim import run_local_cp_twin, simulate_local_cp
from hwmodel.components.pdu.sim import run_pdu_twin, simulate_pdu
from hwmodel.rtlsim import stimuli


def both(simulate, *args, **kwargs):
    """``simulate`` on both engines; asserts they agree exactly and returns pysim's answer."""
    reference = simulate(*args, **kwargs)
    compiled = simulate(*args, engine="cxxrtl", **kwargs)
    assert compiled == reference
    return reference


def rom(block_size=4):
    return build_cost_rom(expert_bytes=1 << 20, hidden_dim=64, expert_ffn_dim=64,
                          matrices_per_expert=3, hbm_bandwidth_GBps=3350, hbm_latency_ns=300,
                          link_bandwidth_GBps=1741, hop_latency_ns=200, peak_TFLOPS=1000,
                          block_size=block_size)


@pytest.mark.parametrize("back_pressure", [0, 2])
def test_atu_engines_agree_with_each_other_and_the_twin(back_pressure):
    layout = ATULayout(entries=64)
    tx = stimuli.atu_transactions(np.random.default_rng(1), 150, layout)
    results, _ = both(simulate_atu, tx, 64, back_pressure=back_pressure)
    assert results == run_atu_twin(tx, 64)


def test_atu_compiled_does_one_lookup_per_cycle_with_fixed_latency():
    # 80 commands accepted on 80 consecutive edges; the last response LOOKUP_LATENCY later.
    tx = [("insert", i, i, i + 1) for i in range(40)] + [("lookup", i, i) for i in range(40)]
    results, cycles = simulate_atu(tx, 64, engine="cxxrtl")
    assert results == [(True, i + 1) for i in range(40)]
    assert cycles == 80 + LOOKUP_LATENCY


@pytest.mark.parametrize("back_pressure", [0, 3])
def test_pdu_engines_agree_with_each_other_and_the_twin(back_pressure):
    tx = stimuli.pdu_transactions(np.random.default_rng(2), 150, 32)
    results, _ = both(simulate_pdu, tx, 32, back_pressure=back_pressure)
    assert results == run_pdu_twin(tx, 32)


def test_edt_engines_agree_with_each_other_and_the_twin():
    num_experts = 16
    tx = stimuli.edt_transactions(np.random.default_rng(3), 120, num_experts, 6)
    reads, _ = both(simulate_edt, tx, num_experts, num_dies=6)
    # The twin: entries start as home 0, presence 0; a write replaces both.
    home, presence, expected = [0] * num_experts, [0] * num_experts, []
    for op, expert, *rest in tx:
        if op == "write":
            home[expert], presence[expert] = rest
        elif op == "read":
            expected.append((home[expert], presence[expert]))
        else:
            bit = 1 << rest[0]
            presence[expert] = presence[expert] | bit if op == "set_present" else (
                presence[expert] & ~bit)
    assert reads == expected


def test_predictor_engines_agree_with_each_other_and_the_twin():
    num_experts = 24
    groups = stimuli.predictor_groups(np.random.default_rng(4), 5, num_experts)
    bitmaps, _ = both(simulate_predict, groups, num_experts)
    assert bitmaps == stimuli.predictor_twin_bitmaps(groups, num_experts, rom())


def test_top_n_engines_agree_on_a_hand_worked_row():
    # 24 experts: n = ceil(0.2 * 24) = 5. The two 9s, the two 5s, then the lowest-id 2.
    row = [0] * 24
    row[3] = row[20] = 9
    row[1] = row[7] = 5
    row[10] = row[11] = 2
    chosen, _ = both(simulate_top_n, [row], 24)
    assert chosen == [(1, 3, 7, 10, 20)]


def test_allocator_engines_agree_with_each_other_and_the_twin():
    num_experts, costs = 12, rom()
    layers = stimuli.allocator_layers(np.random.default_rng(5), 3, num_experts, active=5,
                                      max_tokens=20)
    plans, _ = both(simulate_allocator, layers, mesh_x=2, mesh_y=2, num_experts=num_experts,
                    costs=costs, block_size=4)
    twin = GlobalCPTwin.for_mesh(2, 2, 1, num_experts, costs, block_size=4)
    assert plans == [twin.allocate(0, counts) for counts in layers]


def test_local_cp_engines_agree_with_each_other_and_the_twin():
    layers = stimuli.local_cp_layers(np.random.default_rng(6), 3, 16, 4, tasks_per_layer=9)
    stats, sm_tasks, _ = both(simulate_local_cp, layers, die=2, num_sm_slots=3, num_experts=16,
                              num_dies=4)
    assert (stats, sm_tasks) == run_local_cp_twin(layers, die=2, num_sm_slots=3,
                                                  num_experts=16, num_dies=4)


def test_local_cp_compiled_waits_for_busy_slots():
    # 6 tasks on 3 slots: the second round waits for slot 0 (busy sm_latency cycles).
    layer = ([(e, 1, 0) for e in range(6)], None, None)
    kwargs = {"die": 2, "num_sm_slots": 3, "num_experts": 16, "num_dies": 4, "engine": "cxxrtl"}
    _, _, fast = simulate_local_cp([layer], sm_latency=1, **kwargs)
    _, _, slow = simulate_local_cp([layer], sm_latency=40, **kwargs)
    assert slow - fast >= 39
