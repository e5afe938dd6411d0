# amaranth: UnusedElaboratable=no
"""Bulk payloads of the compiled simulator (issue 18): columns of integers packed with numpy
give the words the per-payload packer gives; straps held on input ports; the optimisation
level of a block of simulations."""

import numpy as np
import pytest
from amaranth.hdl import unsigned
from amaranth.lib import data
from hypothesis import given, settings
from hypothesis import strategies as st

from hwmodel import rtlsim
from hwmodel.components.global_cp.sim import simulate_predict
from hwmodel.components.local_cp.rtl import LocalCP
from hwmodel.components.pdu.rtl import PDU, PDUOp
from hwmodel.components.pdu.sim import simulate_pdu
from hwmodel.rtlsim import StreamSink, StreamSource, build, run_streams


@st.composite
def layouts_and_rows(draw):
    """A struct layout of 1 to 5 fields (1 to 40 bits each: totals from 1 to 200 bits, across
    the 32- and 64-bit word edges) and rows of values, the largest of each field included."""
    widths = draw(st.lists(st.integers(1, 40), min_size=1, max_size=5))
    layout = data.StructLayout({f"f{i}": unsigned(w) for i, w in enumerate(widths)})
    row = st.fixed_dictionaries({f"f{i}": st.integers(0, (1 << w) - 1)
                                 for i, w in enumerate(widths)})
    rows = draw(st.lists(row, min_size=1, max_size=6))
    rows.append({f"f{i}": (1 << w) - 1 for i, w in enumerate(widths)})
    return layout, rows


@settings(max_examples=150, deadline=None)
@given(layouts_and_rows())
def test_columns_pack_to_the_words_of_the_per_payload_packer(case):
    layout, rows = case
    chunks = (layout.size + 31) // 32
    columns = {name: np.array([row[name] for row in rows], dtype=np.uint64) for name in rows[0]}
    slow = rtlsim._pack(rtlsim._packer(layout), rows, chunks)
    fast = rtlsim._pack_columns(layout, columns, chunks)
    assert fast.dtype == slow.dtype and fast.shape == slow.shape == (len(rows), chunks)
    assert (fast == slow).all()


def test_columns_may_leave_fields_out_and_hold_enums_as_their_values():
    layout = data.StructLayout({"op": PDUOp, "index": 5, "word": 16})
    rows = [{"op": PDUOp.SET_LOCAL, "index": 31}, {"op": PDUOp.CLEAR}]
    slow = rtlsim._pack(rtlsim._packer(layout), rows, 1)
    fast = rtlsim._pack_columns(layout, {"op": [PDUOp.SET_LOCAL.value, PDUOp.CLEAR.value],
                                         "index": [31, 0]}, 1)
    assert (fast == slow).all() and fast[:, 0].tolist() == [2 | 31 << 2, 3]


def test_a_value_too_wide_for_its_field_is_named_with_its_index():
    layout = data.StructLayout({"count": 16, "last": 1})
    with pytest.raises(ValueError, match=r"^payload field 'count'\[2\] must be in \[0, 65536\), "
                                         r"not 65536$"):
        rtlsim._pack_columns(layout, {"count": [0, 1, 65536], "last": [0, 0, 1]}, 1)
    with pytest.raises(ValueError, match="payload field 'lats'"):
        rtlsim._pack_columns(layout, {"lats": [0]}, 1)
    with pytest.raises(ValueError, match=r"^payload\[1\] must be in \[0, 8\), not 8$"):
        rtlsim._pack_columns(unsigned(3), np.array([7, 8]), 1)


def test_bulk_and_per_payload_sources_run_alike_on_the_compiled_pdu():
    rng = np.random.default_rng(18)
    ops = rng.integers(0, 3, 300)      # write, query, set_local (no clear)
    index, word = rng.integers(0, 4, 300), rng.integers(0, 1 << 16, 300)
    index[ops != PDUOp.WRITE.value] = rng.integers(0, 32, int((ops != 0).sum()))
    rows = [{"op": PDUOp(int(o)), "index": int(i), "word": int(w) if o == 0 else 0}
            for o, i, w in zip(ops, index, word)]
    queries = int((ops == PDUOp.QUERY.value).sum())
    sink = [StreamSink("resp", queries, initial_wait=1, gap=1)]
    slow = run_streams(PDU(32), [StreamSource("cmd", rows)], sink)
    fast = run_streams(PDU(32), [StreamSource("cmd", {
        "op": ops, "index": index, "word": np.where(ops == 0, word, 0)})], sink)
    assert fast.cycles == slow.cycles and fast.received == slow.received
    assert fast.sent_edges == slow.sent_edges and fast.received_edges == slow.received_edges


def test_a_strap_input_is_checked_by_name_and_width():
    layer = [{"kind": 1, "index": 3, "tokens": 5, "source_die": 2}, {"kind": 2}]
    dut = LocalCP(1, 16, num_dies=4)
    sinks = [StreamSink("stats", 1), StreamSink("sm__0", None, gap=2, pulse=("sm_done", 0))]
    with pytest.raises(ValueError, match=r"^input die must be in \[0, 4\), not 4$"):
        run_streams(dut, [StreamSource("cmd", layer)], sinks, inputs={"die": 4})
    with pytest.raises(AttributeError):
        run_streams(dut, [StreamSource("cmd", layer)], sinks, inputs={"dye": 1})
    # source die 2: local on die 2, remote on die 3
    for die, remote in ((2, 0), (3, 1)):
        run = run_streams(dut, [StreamSource("cmd", layer)], sinks, inputs={"die": die})
        assert run.received["stats"][0].remote_tasks == remote


def test_predictor_takes_array_groups_and_names_a_bad_count():
    rng = np.random.default_rng(7)
    groups = [rng.integers(0, 9, (2, 12)), rng.integers(0, 9, (1, 12))]
    lists = [group.tolist() for group in groups]
    assert simulate_predict(groups, 12, engine="cxxrtl") == simulate_predict(lists, 12)
    lists[1][0][5] = 1 << 16
    for engine in ("pysim", "cxxrtl"):
        with pytest.raises(ValueError, match=r"^groups\[1\]\[0\]\[5\] must be in \[0, 65536\)"):
            simulate_predict(lists, 12, engine=engine)
    with pytest.raises(TypeError, match=r"^groups\[0\]\[0\]\[0\] must be an integer"):
        simulate_predict([[[0.5] * 12]], 12)


def test_optimisation_level_of_a_block_and_the_environment_over_it(monkeypatch):
    monkeypatch.delenv(build.OPT_ENV, raising=False)
    assert "-O0" in build._cxxflags()
    with rtlsim.optimisation("-O2"):
        assert "-O2" in build._cxxflags()
        with rtlsim.optimisation("-O1"):
            assert "-O1" in build._cxxflags() and "-O2" not in build._cxxflags()
        assert "-O2" in build._cxxflags()
        monkeypatch.setenv(build.OPT_ENV, "-O0")       # the user's choice wins
        assert "-O0" in build._cxxflags() and "-O2" not in build._cxxflags()
    assert "-O0" in build._cxxflags()
    with (pytest.raises(ValueError, match="optimisation level '-O7': expected one of -O0"),
          rtlsim.optimisation("-O7")):
        pass


def test_a_stream_with_no_answer_to_take_ends_with_its_last_command():
    # A die's PDU stream in a window can hold writes and no query: the response sink then
    # waits for nothing (pysim's consumer takes 0 payloads). Handed to the driver as a sink of
    # 0 payloads it never finished: the run hit the watchdog.
    tx = [("clear",), ("write_word", 0, 5), ("set_local", 1)]
    assert simulate_pdu(tx, 32, engine="cxxrtl") == simulate_pdu(tx, 32) == ([], 3)


_INDEX = st.integers(-1, 13)        # 12 experts, 2 registers: both ends and past them
PDU_TRANSACTIONS = st.one_of(
    st.tuples(st.just("write_word"), st.integers(-1, 2), st.integers(-1, 1 << 16)),
    st.tuples(st.just("query"), _INDEX), st.tuples(st.just("set_local"), _INDEX),
    st.just(("clear",)),
    st.sampled_from([("query",), ("clear", 1), ("nope", 1), ("query", True), ("query", 1.0),
                     ["query", 1]]))


@settings(max_examples=300, deadline=None)
@given(st.lists(PDU_TRANSACTIONS, max_size=8))
def test_pdu_command_columns_equal_the_per_transaction_commands(transactions):
    """The PDU's bulk commands: the values of the per-transaction commands, or the same
    error (type and message) for the first bad transaction."""
    from hwmodel.components.pdu.sim import _command, _command_columns
    try:
        slow = [_command(t, 12) for t in transactions]
    except (TypeError, ValueError) as error:
        with pytest.raises(type(error)) as caught:
            _command_columns(transactions, 12)
        assert str(caught.value) == str(error)
        return
    fast = _command_columns(transactions, 12)
    assert fast["op"].tolist() == [c["op"].value for c in slow]
    assert fast["index"].tolist() == [c["index"] for c in slow]
    assert fast["word"].tolist() == [c["word"] for c in slow]


def test_columns_of_python_ints_past_64_bits_keep_every_bit():
    # numpy would read [2**70 - 1, 2**63, 0] as floats (or [2**63, -1] as floats): the packer
    # and pysim's rows must keep Python ints.
    from hwmodel.components.global_cp.sim import simulate_edt
    layout = data.StructLayout({"a": 70, "b": 3})
    rows = [{"a": (1 << 70) - 1, "b": 7}, {"a": 1 << 63, "b": 0}, {"a": 0, "b": 1}]
    columns = {"a": [row["a"] for row in rows], "b": [row["b"] for row in rows]}
    assert (rtlsim._pack_columns(layout, columns, 3)
            == rtlsim._pack(rtlsim._packer(layout), rows, 3)).all()
    top = (1 << 63) | 1                 # dies 63 and 0 of a 64-die EDT
    reads, _ = simulate_edt([("write", 2, 0, top), ("read", 2)], 4, num_dies=64)
    assert reads == [(0, top)]
