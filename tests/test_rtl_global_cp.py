# amaranth: UnusedElaboratable=no
"""Global CP RTL (EDT, top-n predictor) against H3's twin (hwmodel.components.global_cp)."""

import math

import numpy as np
import pytest
from amaranth.back import verilog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwmodel.components.global_cp import GlobalCPTwin, build_cost_rom
from hwmodel.components.global_cp.rtl import EDT, EDTOp
from hwmodel.components.global_cp.sim import simulate_edt, simulate_predict, simulate_top_n
from hwmodel.tb import run_command_stream


def twin(num_experts, mesh=(2, 2)):
    rom = build_cost_rom(expert_bytes=1 << 20, hidden_dim=64, expert_ffn_dim=64,
                         matrices_per_expert=3, hbm_bandwidth_GBps=3350, hbm_latency_ns=300,
                         link_bandwidth_GBps=1741, hop_latency_ns=200, peak_TFLOPS=1000,
                         block_size=4)
    return GlobalCPTwin.for_mesh(mesh[0], mesh[1], 1, num_experts, rom, block_size=4)


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


def load_layer(model, layer=0):
    """``write`` transactions that load the twin's EDT entries of ``layer`` into the RTL."""
    return [("write", e, model.edt_home(e), model.edt_presence(layer, e))
            for e in range(model.num_experts)]


def test_edt_clear_present_matches_twin_hand_worked():
    # 2 x 2 dies, 8 experts: homes floor(e / 2) = 0 0 1 1 2 2 3 3.
    model = twin(8)
    tx = load_layer(model)
    ops = [("set_present", 1, 3), ("set_present", 1, 2), ("clear_present", 1, 3),
           ("clear_present", 6, 0),            # not present: stays clear
           ("set_present", 6, 1), ("clear_present", 6, 1), ("set_present", 7, 0)]
    for op, expert, die in ops:
        getattr(model, f"edt_{op}")(0, expert, die)
        tx.append((op, expert, die))
    tx += [("read", e) for e in range(8)]
    results, _ = simulate_edt(tx, 8)
    assert results == [(model.edt_home(e), model.edt_presence(0, e)) for e in range(8)]
    # by hand: expert 1 = home die 0 + die 2; expert 6 = home die 3 only; expert 7 = 3 and 0
    assert [p for _, p in results] == [0b1, 0b101, 0b10, 0b10, 0b100, 0b100, 0b1000, 0b1001]


def test_edt_clear_present_of_home_die_is_refused_like_the_twin():
    model = twin(8)
    with pytest.raises(ValueError, match="home of expert 5") as twin_error:
        model.edt_clear_present(0, 5, 2)
    with pytest.raises(ValueError, match="home of expert 5") as rtl_error:
        simulate_edt(load_layer(model) + [("clear_present", 5, 2)], 8)
    assert str(rtl_error.value) == str(twin_error.value)
    # an entry never written has home 0 (the table's reset content)
    with pytest.raises(ValueError, match="home of expert 3"):
        simulate_edt([("clear_present", 3, 0)], 8)
    with pytest.raises(ValueError, match="clear_present"):
        simulate_edt([("evict", 3, 1)], 8)


def test_edt_rtl_keeps_home_bit_on_clear_of_home_die():
    # The table itself, driven without simulate_edt's check: clearing the home die's bit
    # leaves it set, clearing a replica's bit clears it.
    dut = EDT(4)
    commands = [{"op": EDTOp.WRITE, "expert": 2, "home": 5, "presence": 0b110_0000},
                {"op": EDTOp.CLEAR_PRESENT, "expert": 2, "die": 5},
                {"op": EDTOp.READ, "expert": 2},
                {"op": EDTOp.CLEAR_PRESENT, "expert": 2, "die": 6},
                {"op": EDTOp.READ, "expert": 2}]
    results, _ = run_command_stream(dut, commands, 2, lambda e: (int(e.home), int(e.presence)),
                                    cycles_per_command=3)
    assert results == [(5, 0b110_0000), (5, 0b010_0000)]


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(["set_present", "clear_present", "read"]),
                          st.integers(0, 7), st.integers(0, 3)), min_size=1, max_size=40))
def test_edt_equals_twin_on_random_sequences(ops):
    model = twin(8)
    tx = load_layer(model)
    expected = []
    for op, expert, die in ops:
        if op == "read":
            tx.append(("read", expert))
            expected.append((model.edt_home(expert), model.edt_presence(0, expert)))
            continue
        try:
            getattr(model, f"edt_{op}")(0, expert, die)
        except ValueError as error:
            # the twin refuses (home die): so does the RTL's command builder, same message
            with pytest.raises(ValueError) as rtl_error:
                simulate_edt(tx + [(op, expert, die)], 8)
            assert str(rtl_error.value) == str(error)
            continue
        tx.append((op, expert, die))
    tx += [("read", e) for e in range(8)]
    expected += [(model.edt_home(e), model.edt_presence(0, e)) for e in range(8)]
    assert simulate_edt(tx, 8)[0] == expected


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


@pytest.mark.parametrize("mesh, home_bits, entry_bits", [((4, 6), 5, 32), ((5, 5), 5, 32),
                                                         ((8, 8), 6, 72)])
def test_edt_widths_derive_from_the_wafer_and_equal_the_twin(mesh, home_bits, entry_bits):
    # 24 and 25 dies: 5-bit home + 24/25 presence bits, stored in 32; 64 dies: 6 + 64 in 72.
    num_dies = mesh[0] * mesh[1]
    dut = EDT(8, num_dies=num_dies)
    assert dut.layout.home_bits == home_bits and dut.layout.entry_bits == entry_bits
    assert dut.signature.members["resp"].signature.members["payload"].shape.size == entry_bits
    model = twin(8, mesh)
    tx = load_layer(model)
    last = num_dies - 1
    for expert, die in [(1, last), (1, last - 1), (6, 0), (2, last)]:
        model.edt_set_present(0, expert, die)
        tx.append(("set_present", expert, die))
    model.edt_clear_present(0, 2, last)
    tx += [("clear_present", 2, last)] + [("read", e) for e in range(8)]
    results, _ = simulate_edt(tx, 8, num_dies=num_dies)
    assert results == [(model.edt_home(e), model.edt_presence(0, e)) for e in range(8)]
    # fewer experts than dies: expert e lives on die e; expert 1 has its home bit and the top two
    assert results[1] == (1, (1 << 1) | (1 << last) | (1 << (last - 1)))
    with pytest.raises(ValueError, match=rf"die must be in \[0, {num_dies}\)"):
        simulate_edt([("set_present", 0, num_dies)], 8, num_dies=num_dies)


@pytest.mark.parametrize("num_experts, mesh", [(128, (4, 6)), (384, (5, 5))])
def test_edt_at_model_sizes_equals_the_twin(num_experts, mesh):
    # Llama-4 (128 experts) on 24 dies, Kimi-K2 (384) on 25: a whole layer loaded, replicas
    # reported on the top die, every entry read back equal to the twin's EDT.
    model = twin(num_experts, mesh)
    tx = load_layer(model)
    last = mesh[0] * mesh[1] - 1
    for expert in range(0, num_experts, 7):
        if model.edt_home(expert) != last:
            model.edt_set_present(0, expert, last)
            tx.append(("set_present", expert, last))
    tx += [("read", e) for e in range(num_experts)]
    results, _ = simulate_edt(tx, num_experts, num_dies=last + 1)
    assert results == [(model.edt_home(e), model.edt_presence(0, e)) for e in range(num_experts)]
