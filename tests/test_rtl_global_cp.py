# amaranth: UnusedElaboratable=no
"""Global CP RTL (EDT, top-n predictor) against H3's twin (hwmodel.components.global_cp)."""

import math

import numpy as np
from amaranth.back import verilog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwmodel.components.global_cp import GlobalCPTwin, build_cost_rom
from hwmodel.components.global_cp.rtl import EDT, simulate_edt, simulate_predict, simulate_top_n


def twin(num_experts, mesh=(2, 2)):
    rom = build_cost_rom(expert_bytes=1 << 20, hidden_dim=64, expert_ffn_dim=64,
                         matrices_per_expert=3, hbm_bandwidth_GBps=3350, hbm_latency_ns=300,
                         link_bandwidth_GBps=1741, hop_latency_ns=200, peak_TFLOPS=1000,
                         block_size=4)
    return GlobalCPTwin(mesh[0], mesh[1], 1, num_experts, rom, block_size=4)


def test_predictor_breaks_ties_by_lower_expert_id():
    # n = ceil(0.2 * 10) = 2; experts 3, 5 and 7 tie on 9: the lower ids win.
    row = [0, 1, 0, 9, 0, 9, 0, 9, 0, 0]
    assert simulate_top_n([row], 10)[0] == [(3, 5)]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(st.integers(0, 5), min_size=12, max_size=12), min_size=1, max_size=3))
def test_predictor_equals_twin_top_n(rows):
    model = twin(12)
    for j, row in enumerate(rows):
        model.heatmap_add_matrix(0, np.array([row if i == j else [0] * 12 for i in range(12)]))
    expected = [tuple(sorted(model.top_n(0, j))) for j in range(len(rows))]
    assert model.top_n_count == math.ceil(0.2 * 12)
    assert simulate_top_n(rows, 12)[0] == expected


def test_edt_set_present_matches_twin_presence():
    model = twin(8)
    tx = [("write", e, model.edt_home(e), model.edt_presence(0, e)) for e in range(8)]
    for expert, die in [(1, 3), (1, 2), (6, 0), (1, 3)]:
        model.edt_set_present(0, expert, die)
        tx.append(("set_present", expert, die))
    tx += [("read", e) for e in range(8)]
    results, _ = simulate_edt(tx, 8)
    assert results == [(model.edt_home(e), model.edt_presence(0, e)) for e in range(8)]
    assert results[1][1] == (1 << model.edt_home(1)) | 0b1100


def test_edt_verilog_export():
    assert "module edt" in verilog.convert(EDT(16), name="edt")


def test_predictor_at_512_experts_equals_twin_predict_union():
    # Full paper size (512 experts, n = ceil(0.2 * 512) = 103): two rows OR-ed for one die;
    # counts 0..40 so ties straddle the cut.
    model = twin(512)
    rng = np.random.default_rng(1)
    matrix = np.zeros((512, 512), dtype=np.int64)
    matrix[7] = rng.integers(0, 40, 512)
    matrix[300] = rng.integers(0, 40, 512)
    model.heatmap_add_matrix(0, matrix)
    expected = model.predict(0, [7, 300])
    (bitmap,), _ = simulate_predict([[matrix[7].tolist(), matrix[300].tolist()]], 512)
    assert model.top_n_count == 103
    assert bitmap == expected
    assert 103 < bitmap.bit_count() <= 206
