# amaranth: UnusedElaboratable=no
"""PDU: one suite on both the RTL and the twin, a Hypothesis agreement property, export."""

import numpy as np
import pytest
from amaranth.back import verilog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwmodel.components.pdu import PDU, PDUTwin, pack_words
from hwmodel.components.pdu.sim import run_pdu_twin, simulate_pdu


def rtl(transactions, num_experts=512):
    return simulate_pdu(transactions, num_experts)[0]


LEVELS = pytest.mark.parametrize("run", [run_pdu_twin, rtl], ids=["twin", "rtl"])


@LEVELS
def test_bulk_configuration_then_queries(run):
    words = pack_words(cp_en=[0, 9, 511], is_local=[9, 10])
    results = run([("write_word", i, w) for i, w in enumerate(words)]
                  + [("query", e) for e in (0, 9, 10, 11, 511)])
    assert results == [(True, False), (True, True), (False, True), (False, False),
                       (True, False)]


@LEVELS
def test_set_local_then_clear_for_a_new_layer(run):
    results = run([("write_word", 0, 0b01), ("query", 0), ("set_local", 0), ("query", 0),
                   ("clear",), ("query", 0)])
    assert results == [(True, False), (True, True), (False, False)]


def test_register_layout_is_interleaved_16_bit_words():
    # expert 9 is register 1, bits 2-3; expert 511 is register 63, bits 14-15.
    words = pack_words(cp_en=[9, 511], is_local=[9])
    assert len(words) == 64 and words[1] == 0b1100 and words[63] == 1 << 14
    assert sum(w != 0 for w in words) == 2
    assert PDUTwin().storage_bytes == 128


def test_bool_sequence_and_id_list_configure_the_same_table():
    bools = [e % 3 == 0 for e in range(512)]
    assert pack_words(bools, None) == pack_words([e for e in range(512) if e % 3 == 0], None)


@pytest.mark.parametrize("call, kind, error", [
    (lambda p: p.query(512), ValueError, "expert must be in"),
    (lambda p: p.configure([True] * 5), ValueError, "must have 512 entries"),
    (lambda p: p.configure([3, 600]), ValueError, r"cp_en\[1\] \(expert id\)"),
    (lambda p: p.configure("abc"), TypeError, "cp_en must be a sequence"),
    (lambda p: p.write_word(0, 1 << 16), ValueError, "word must be in"),
])
def test_twin_rejects_bad_input_naming_it(call, kind, error):
    with pytest.raises(kind, match=error):
        call(PDUTwin())


transaction = st.one_of(
    st.tuples(st.just("write_word"), st.integers(0, 3), st.integers(0, 0xFFFF)),
    st.tuples(st.just("query"), st.integers(0, 31)),
    st.tuples(st.just("set_local"), st.integers(0, 31)),
    st.just(("clear",)))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(transaction, max_size=30), st.integers(0, 2))
def test_rtl_equals_twin_on_random_sequences(transactions, back_pressure):
    assert simulate_pdu(transactions, 32, back_pressure=back_pressure)[0] == \
        run_pdu_twin(transactions, 32)


def test_verilog_export_through_yosys():
    assert "module pdu" in verilog.convert(PDU(32), name="pdu")


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 0xFFFF)), max_size=12),
       st.lists(st.booleans(), min_size=32, max_size=32),
       st.lists(st.booleans(), min_size=32, max_size=32))
def test_bulk_writes_equal_one_write_word_per_register(pairs, cp_en, is_local):
    import numpy as np
    one, bulk = PDUTwin(32), PDUTwin(32)
    for index, word in pairs:
        one.write_word(index, word)
    bulk.write_words(np.array([i for i, _ in pairs], np.int64),
                     np.array([w for _, w in pairs], np.int64))
    assert bulk.words == one.words
    # configure (numpy bool arrays or lists) == one write_word per packed register
    words = pack_words(cp_en, is_local, 32)
    for index, word in enumerate(words):
        one.write_word(index, word)
    assert bulk.configure(np.array(cp_en), np.array(is_local)) == words
    assert bulk.words == one.words
    bulk.clear()
    bulk.load_words(words)
    assert bulk.words == one.words


@pytest.mark.parametrize("call, kind, error", [
    (lambda p: p.write_words([0, 4], [1, 2]), ValueError, r"indices\[1\] must be in \[0, 4\)"),
    (lambda p: p.write_words([0, 1], [1, 1 << 16]), ValueError, r"words\[1\] must be in"),
    (lambda p: p.write_words([0, 1], [1]), ValueError, "words must have 2 entries"),
    (lambda p: p.write_words([0, True], [1, 1]), TypeError, r"indices\[1\] must be an integer"),
    (lambda p: p.load_words([0, 0, 0]), ValueError, "words must have 4 entries"),
    (lambda p: p.configure(__import__("numpy").zeros(5, bool)), ValueError, "32 entries"),
])
def test_bulk_writes_reject_bad_input_and_leave_the_table(call, kind, error):
    pdu = PDUTwin(32)
    pdu.write_word(0, 7)
    with pytest.raises(kind, match=error):
        call(pdu)
    assert pdu.words == (7, 0, 0, 0)


TABLES_AND_EXPERTS = given(st.lists(st.integers(0, 0xFFFF), min_size=4, max_size=4),
                           st.lists(st.integers(0, 31), max_size=20))


def _two_twins(words):
    """Two 32-expert PDU twins holding ``words``: one driven per item, one in bulk."""
    one, bulk = PDUTwin(32), PDUTwin(32)
    one.load_words(words)
    bulk.load_words(words)
    return one, bulk


@settings(max_examples=40, deadline=None)
@TABLES_AND_EXPERTS
def test_copy_arrivals_equals_should_copy_then_set_local(words, arrivals):
    one, bulk = _two_twins(words)
    expected = []
    for e in arrivals:
        if one.should_copy(e):
            one.set_local(e)
            expected.append(e)
    assert bulk.copy_arrivals(arrivals) == expected
    assert bulk.words == one.words


def test_graph_node_table_port_has_the_rtl_command_width():
    # 512 experts: op 2 + expert index 9 + register word 16 = 27 bits; 384 experts also 9.
    from hwmodel.components.pdu.node import PDUUnit

    for experts, bits in [(512, 27), (384, 27), (1024, 28)]:
        rtl = PDU(experts)
        width = rtl.signature.members["cmd"].signature.members["payload"].shape.size
        assert PDUUnit(experts=experts).ports["table"].width == width == bits


@settings(max_examples=40, deadline=None)
@TABLES_AND_EXPERTS
def test_set_local_many_equals_set_local_of_each(words, experts):
    # two experts of one register word must both be set (a plain fancy |= keeps one)
    one, bulk = _two_twins(words)
    for e in experts:
        one.set_local(e)
    bulk.set_local_many(np.array(experts, np.int64))
    assert bulk.words == one.words
    with pytest.raises(ValueError, match=r"experts\[1\] must be in \[0, 32\)"):
        bulk.set_local_many([0, 32])
    assert bulk.words == one.words          # refused whole: nothing changed


def test_pack_registers_packs_each_die_row_alone_with_a_zero_tail():
    from hwmodel.components.pdu.compiled import pack_registers
    # 20 experts fill 2.5 registers; row 1 is expert 19's is_local only: register 2, bit 7
    cp_en = np.zeros((2, 20), np.bool_)
    is_local = np.zeros((2, 20), np.bool_)
    cp_en[0, [0, 9]] = True
    is_local[0, 9] = True
    is_local[1, 19] = True
    out = pack_registers(cp_en, is_local, np.full((2, 4), -1, np.int64))
    assert out.tolist() == [[0b1, 0b1100, 0, 0], [0, 0, 1 << 7, 0]]
