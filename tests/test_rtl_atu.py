# amaranth: UnusedElaboratable=no
"""ATU: one suite on both the RTL and the twin, a Hypothesis agreement property, export."""

import numpy as np
import pytest
from amaranth.back import verilog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwmodel.components.atu import ATU, AddressMap, ATUTwin, hbm_address, split_address
from hwmodel.components.atu.rtl import LOOKUP_LATENCY
from hwmodel.components.atu.sim import run_atu_twin, simulate_atu


def rtl(transactions, num_entries=512):
    return simulate_atu(transactions, num_entries)[0]


LEVELS = pytest.mark.parametrize("run", [run_atu_twin, rtl], ids=["twin", "rtl"])


@LEVELS
def test_insert_then_lookup_hits_only_on_the_same_remote_address(run):
    results = run([("insert", 3, hbm_address(2, 100), 4242),
                   ("lookup", 3, hbm_address(2, 100)),
                   ("lookup", 3, hbm_address(2, 101)),   # same entry, other address: miss
                   ("lookup", 4, hbm_address(2, 100))])  # other entry: never written
    assert results == [(True, 4242), (False, 0), (False, 0)]


@LEVELS
def test_invalidate_one_and_all(run):
    results = run([("insert", 0, 7, 1), ("insert", 511, 8, 2), ("insert", 5, 9, 3),
                   ("invalidate", 0), ("lookup", 0, 7), ("lookup", 511, 8),
                   ("invalidate_all",), ("lookup", 511, 8), ("lookup", 5, 9),
                   ("insert", 5, 9, 30), ("lookup", 5, 9)])
    assert results == [(False, 0), (True, 2), (False, 0), (False, 0), (True, 30)]


@LEVELS
def test_reinsert_overwrites_the_translation(run):
    results = run([("insert", 1, 50, 60), ("insert", 1, 51, 61),
                   ("lookup", 1, 50), ("lookup", 1, 51)])
    assert results == [(False, 0), (True, 61)]


def test_rtl_does_one_lookup_per_cycle_with_fixed_latency():
    lookups = [("lookup", i, i) for i in range(40)]
    results, cycles = simulate_atu([("insert", i, i, i + 1) for i in range(40)] + lookups)
    assert results == [(True, i + 1) for i in range(40)]
    # 80 commands accepted on 80 consecutive edges; the last response transfers
    # LOOKUP_LATENCY edges after its command.
    assert cycles == 80 + LOOKUP_LATENCY


def test_rtl_stalls_under_response_back_pressure_without_losing_results():
    transactions = [("insert", 2, 5, 6)] + [("lookup", 2, 5), ("lookup", 2, 4)] * 5
    slow, slow_cycles = simulate_atu(transactions, back_pressure=3)
    fast, fast_cycles = simulate_atu(transactions)
    assert slow == fast == [(True, 6), (False, 0)] * 5
    assert slow_cycles > fast_cycles + 20


transaction = st.one_of(
    st.tuples(st.just("insert"), st.integers(0, 7), st.integers(0, 3),
              st.integers(0, (1 << 31) - 1)),
    st.tuples(st.just("lookup"), st.integers(0, 7), st.integers(0, 3)),
    st.tuples(st.just("invalidate"), st.integers(0, 7)),
    st.just(("invalidate_all",)))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(transaction, max_size=30), st.integers(0, 2))
def test_rtl_equals_twin_on_random_sequences(transactions, back_pressure):
    assert simulate_atu(transactions, 8, back_pressure=back_pressure)[0] == \
        run_atu_twin(transactions, 8)


@pytest.mark.parametrize("bad, error", [
    (lambda t: t.insert(512, 0, 0), "index must be in"),
    (lambda t: t.insert(0, 1 << 36, 0), "remote_addr"),
    (lambda t: t.insert(0, 0, 1 << 31), "local_addr"),
    (lambda t: t.lookup(-1, 0), "index"),
])
def test_twin_rejects_out_of_range_arguments_naming_them(bad, error):
    with pytest.raises(ValueError, match=error):
        bad(ATUTwin())


def test_twin_rejects_non_integers():
    with pytest.raises(TypeError, match="remote_addr must be an integer, not '7'"):
        ATUTwin().lookup(0, "7")


def test_entry_is_68_bits_and_table_is_4_25_kB():
    twin = ATUTwin()
    twin.insert(9, hbm_address(31, (1 << 31) - 1), 5)
    assert twin.entry_bits == 68 and twin.storage_bytes == 4.25 * 1024
    assert twin.entry(9) == (1 << 67) | (((1 << 36) - 1) << 31) | 5
    assert split_address(hbm_address(17, 1234)) == (17, 1234)


def test_address_map_places_experts_as_the_spec_says():
    # Llama-4 on 24 dies: p = 128 // 24 = 5; experts 120..127 go to die e % 24.
    amap = AddressMap(num_dies=24, num_experts=128, num_layers=48, slice_bytes=5120 * 8192 * 2)
    assert amap.home(0) == (0, 0) and amap.home(119) == (23, 4)
    assert amap.home(127) == (7, 5) and amap.slots_per_die == 6
    # 80 MiB per matrix = 20480 pages; matrix 1 of expert 6 (die 1, slot 1) of layer 0.
    assert amap.home_address(0, 6, 1) == hbm_address(1, (1 * 3 + 1) * 20480)
    assert amap.replica_address(0, 0, 0) == 1 << 30


def test_address_map_widens_the_page_field_for_a_model_that_needs_it():
    # 2**32 B per matrix = 2**20 pages; replica region 100 x 512 x 3 x 2**20 pages needs
    # 18 + 20 = 38 bits (153600 < 2**18), so pages get 39 bits and the region starts at 2**38.
    amap = AddressMap(num_dies=1, num_experts=512, num_layers=100, slice_bytes=1 << 32)
    assert amap.layout.page_bits == 39 and amap.layout.die_bits == 1
    assert amap.replica_address(0, 0, 0) == 1 << 38
    assert amap.home_address(99, 511, 2) == ((99 * 512 + 511) * 3 + 2) << 20


@pytest.mark.parametrize("num_dies, die_bits", [(64, 6), (256, 8), (1024, 10)])
def test_address_map_die_field_grows_with_the_wafer(num_dies, die_bits):
    # 3 experts per die: the last expert (3 * N - 1) is slot 2 of die N - 1; one page per
    # matrix, 3 slots per layer, so matrix 0 of layer 1 sits at page (1 * 3 + 2) * 3 = 15.
    amap = AddressMap(num_dies=num_dies, num_experts=3 * num_dies, num_layers=2,
                      slice_bytes=4096)
    assert amap.layout.die_bits == die_bits and amap.layout.remote_addr_bits == die_bits + 31
    assert amap.home(3 * num_dies - 1) == (num_dies - 1, 2)
    addr = amap.home_address(1, 3 * num_dies - 1, 0)
    assert addr == ((num_dies - 1) << 31) | 15
    assert amap.layout.split_address(addr) == (num_dies - 1, 15)
    # replica of (layer 1, expert 3N - 1): 2**30 + (1 * 3N + 3N - 1) * 3 matrices
    replica = (1 << 30) + (6 * num_dies - 1) * 3
    assert amap.replica_address(1, 3 * num_dies - 1) == replica
    twin = ATUTwin(3 * num_dies, num_dies=num_dies)
    twin.insert(3 * num_dies - 1, addr, replica)
    assert twin.lookup(3 * num_dies - 1, addr) == (True, replica)
    assert twin.lookup(3 * num_dies - 1, addr ^ (1 << 31)) == (False, 0)   # another die


def test_rtl_with_a_6_bit_die_field_equals_the_twin():
    # 64 dies: die 63 needs the sixth bit; a 5-bit field would alias it to die 31.
    near, far = (31 << 31) | 7, (63 << 31) | 7
    transactions = [("insert", 3, far, 99), ("lookup", 3, far), ("lookup", 3, near)]
    twin = run_atu_twin(transactions, 8, num_dies=64)
    assert twin == [(True, 99), (False, 0)]
    assert simulate_atu(transactions, 8, num_dies=64)[0] == twin


def test_verilog_export_through_yosys():
    text = verilog.convert(ATU(16), name="atu")
    assert "module atu" in text and "cmd__payload" in text


def _payload_bits(component, port):
    return component.signature.members[port].signature.members["payload"].shape.size


@pytest.mark.parametrize("mesh, command_bits", [((5, 5), 78), ((8, 8), 79), ((32, 32), 83)])
def test_graph_node_ports_have_the_rtl_widths(mesh, command_bits):
    # 512 entries: op 2 + index 9 + remote (die bits + 31) + local 31; dies 25 -> 5 bits,
    # 64 -> 6, 1024 -> 10.
    from hwmodel.params import WaferParams
    from hwmodel.topologies.wafer import build_wafer

    die = build_wafer(WaferParams(mesh_x=mesh[0], mesh_y=mesh[1])).dies[-1]
    rtl = ATU(die.atu.entries, num_dies=mesh[0] * mesh[1])
    assert die.atu.ports["insert"].width == _payload_bits(rtl, "cmd") == command_bits
    assert die.pdu.ports["insert"].width == command_bits
    assert die.atu.layout == rtl.layout


# 64 dies: remote addresses that differ only in the sixth die bit (die 31 vs 63), so a level
# that dropped it would hit where the other misses.
_WIDE_REMOTES = [(31 << 31) | 5, (63 << 31) | 5, (63 << 31) | ((1 << 31) - 1), 5]
wide_transaction = st.one_of(
    st.tuples(st.just("insert"), st.integers(0, 7), st.sampled_from(_WIDE_REMOTES),
              st.integers(0, (1 << 31) - 1)),
    st.tuples(st.just("lookup"), st.integers(0, 7), st.sampled_from(_WIDE_REMOTES)),
    st.tuples(st.just("invalidate"), st.integers(0, 7)))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(wide_transaction, max_size=20))
def test_rtl_equals_twin_at_64_dies_on_random_sequences(transactions):
    assert simulate_atu(transactions, 8, num_dies=64)[0] == \
        run_atu_twin(transactions, 8, num_dies=64)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 7), st.integers(0, 1000), st.integers(0, 1000)),
                max_size=12))
def test_insert_many_equals_insert_of_each_in_order(triples):
    # an index inserted twice keeps its later translation, as two inserts would
    one, bulk = ATUTwin(8), ATUTwin(8)
    for index, remote, local in triples:
        one.insert(index, remote, local)
    bulk.insert_many(*(np.array(column, np.int64).reshape(-1) for column in zip(*triples))
                     if triples else ([], [], []))
    assert [bulk.entry(i) for i in range(8)] == [one.entry(i) for i in range(8)]
    with pytest.raises(ValueError, match=r"indices\[1\] must be in \[0, 8\)"):
        bulk.insert_many([0, 8], [1, 1], [1, 1])
    assert [bulk.entry(i) for i in range(8)] == [one.entry(i) for i in range(8)]
