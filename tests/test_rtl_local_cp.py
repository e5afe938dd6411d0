# amaranth: UnusedElaboratable=no
"""Local CP: one suite on both the RTL and the twin, a Hypothesis agreement property."""

import pytest
from amaranth.back import verilog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwmodel.components.local_cp import LocalCP, LocalCPStats, LocalCPTwin, TaskDescriptor
from hwmodel.components.local_cp.sim import run_local_cp_twin, simulate_local_cp


def rtl(layers, **kwargs):
    stats, sm_tasks, _ = simulate_local_cp(layers, **kwargs)
    return stats, sm_tasks


LEVELS = pytest.mark.parametrize("run", [run_local_cp_twin, rtl], ids=["twin", "rtl"])


@LEVELS
def test_layer_statistics_and_duplications(run):
    # die 3: expert 5 is local; 7 comes from die 0 with cp_en (copied once, then local);
    # 9 is remote but already local; 2 is remote with cp_en (copied).
    layer = ([(5, 40, 3), (7, 12, 0), (7, 3, 1), (9, 1, 3), (9, 2, 0), (2, 8, 2)], [7, 2], [9])
    stats, sm_tasks = run([layer], die=3, num_sm_slots=2, num_experts=16)
    assert stats == [LocalCPStats(die=3, tasks=6, tokens=66, remote_tasks=4, duplications=2,
                                  duplicated_experts=(7, 2))]
    # Round-robin: tasks 0, 2, 4 on slot 0; 1, 3, 5 on slot 1.
    assert [t.expert for t in sm_tasks[0]] == [5, 7, 9]
    assert [(t.expert, t.remote, t.copy) for t in sm_tasks[1]] == [
        (7, True, True), (9, False, False), (2, True, True)]


@LEVELS
def test_each_layer_reconfigures_the_pdu_and_restarts_counters(run):
    layers = [([(1, 1, 0)], [1], None), ([], None, None), ([(1, 4, 0), (1, 4, 0)], [1], None)]
    stats, _ = run(layers, die=2, num_sm_slots=3, num_experts=8)
    assert [(s.tasks, s.tokens, s.duplications) for s in stats] == [(1, 1, 1), (0, 0, 0),
                                                                   (2, 8, 1)]


def test_rtl_waits_for_busy_slots():
    layer = ([(e, 1, 0) for e in range(8)], None, None)
    _, _, fast = simulate_local_cp([layer], num_sm_slots=4, num_experts=8, sm_latency=1)
    _, _, slow = simulate_local_cp([layer], num_sm_slots=4, num_experts=8, sm_latency=40)
    # 8 tasks on 4 slots: the second round waits for slot 0 (busy 40 cycles).
    assert slow - fast >= 39


def test_twin_refuses_to_report_before_all_tasks_complete():
    cp = LocalCPTwin(die=0, num_sm_slots=2, num_experts=8)
    cp.configure_pdu()
    cp.dispatch(TaskDescriptor(1, 1, 0))
    with pytest.raises(ValueError, match="1 dispatched tasks have not completed"):
        cp.finish()
    with pytest.raises(ValueError, match="slot 1 has no task outstanding"):
        cp.complete(1)


@pytest.mark.parametrize("task, error", [((9, 1, 0), r"tasks\[0\]\.expert must be in"),
                                         ((1, -1, 0), "TaskDescriptor.tokens"),
                                         ((1, 1, 64),
                                          r"tasks\[0\]\.source_die must be in \[0, 64\)")])
def test_twin_rejects_bad_tasks_naming_the_field(task, error):
    with pytest.raises(ValueError, match=error):
        LocalCPTwin(die=0, num_experts=8).run_layer([task])


task = st.tuples(st.integers(0, 15), st.integers(0, 1000), st.integers(0, 3))
layer = st.tuples(st.lists(task, max_size=8), st.sets(st.integers(0, 15)),
                  st.sets(st.integers(0, 15)))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(layer, min_size=1, max_size=3), st.integers(1, 3), st.integers(0, 3))
def test_rtl_equals_twin_on_random_layers(layers, slots, die):
    layers = [(tasks, sorted(cp), sorted(loc)) for tasks, cp, loc in layers]
    kwargs = {"die": die, "num_sm_slots": slots, "num_experts": 16}
    assert rtl(layers, **kwargs) == run_local_cp_twin(layers, **kwargs)


def test_verilog_export_through_yosys():
    assert "module local_cp" in verilog.convert(LocalCP(2, 16), name="local_cp")


@settings(max_examples=40, deadline=None)
@given(layer, st.integers(1, 3), st.integers(0, 3))
def test_run_layer_arrays_equals_the_per_transaction_calls(one_layer, slots, die):
    import numpy as np
    tasks, cp, loc = one_layer
    cp, loc = sorted(cp), sorted(loc)
    (expected,), _ = run_local_cp_twin([(tasks, cp, loc)], die=die, num_sm_slots=slots,
                                       num_experts=16)
    reference = LocalCPTwin(die, slots, 16)
    reference.run_layer(tasks, cp, loc)
    bulk = LocalCPTwin(die, slots, 16)
    cp_bits = np.isin(np.arange(16), cp)
    loc_bits = np.isin(np.arange(16), loc)
    table = np.array(tasks, np.int64).reshape(-1, 3)
    got = bulk.run_layer_arrays(table[:, 0], table[:, 1], table[:, 2], cp_bits, loc_bits)
    assert got == expected == reference.finish()
    assert bulk.pdu.words == reference.pdu.words     # copies set is_local in the PDU too


@settings(max_examples=40, deadline=None)
@given(layer, st.integers(1, 3), st.integers(0, 3))
def test_dispatch_layer_on_a_given_pdu_equals_the_per_transaction_calls(one_layer, slots, die):
    """A Local CP handed its die's PDU, written register by register beforehand, dispatches
    in arrival order and leaves the state and report of configure_pdu + dispatch/complete
    per task + finish; the PDU it was handed is the one it changed."""
    import numpy as np

    from hwmodel.components.pdu import PDUTwin, pack_words
    tasks, cp, loc = one_layer
    reference = LocalCPTwin(die, slots, 16)
    reference.configure_pdu(sorted(cp), sorted(loc))
    for t in tasks:
        reference.complete(reference.dispatch(TaskDescriptor(*t)).slot)
    pdu = PDUTwin(16)
    for i, word in enumerate(pack_words(sorted(cp), sorted(loc), 16)):
        pdu.write_word(i, word)
    shared = LocalCPTwin(die, slots, pdu=pdu)
    table = np.array(tasks, np.int64).reshape(-1, 3)
    stats, order = shared.dispatch_layer(table[:, 0], table[:, 1], table[:, 2])
    assert stats == reference.finish()
    assert order.tolist() == list(range(len(tasks)))
    assert shared.pdu is pdu and pdu.words == reference.pdu.words


def test_run_layer_arrays_validates_before_changing_anything():
    cp = LocalCPTwin(die=0, num_sm_slots=2, num_experts=8)
    cp.run_layer([(1, 4, 2)], cp_en=[1])
    words = cp.pdu.words
    with pytest.raises(ValueError, match=r"source_dies\[1\] must be in \[0, 64\)"):
        cp.run_layer_arrays([1, 2], [3, 3], [0, 64], cp_en=[2])
    with pytest.raises(ValueError, match="tokens must have 2 entries"):
        cp.run_layer_arrays([1, 2], [3], [0, 1])
    assert cp.pdu.words == words and cp.finish().duplicated_experts == (1,)


def test_graph_node_ports_have_the_rtl_widths():
    # SM task: expert 9 + tokens 24 + remote 1 + copy 1 = 35 bits (512 experts); the PDU port
    # carries the PDU's 27-bit command (see test_rtl_pdu).
    from hwmodel.components.local_cp.node import LocalCPUnit
    from hwmodel.components.pdu import PDU

    node = LocalCPUnit(num_dies=1024, experts=512)
    rtl = LocalCP(4, 512, num_dies=1024)
    sm = rtl.signature.members["sm"].signature.members["payload"].shape.size
    pdu = PDU(512).signature.members["cmd"].signature.members["payload"].shape.size
    assert node.ports["sm"].width == sm == 35
    assert node.ports["pdu"].width == pdu == 27
    cmd = rtl.signature.members["cmd"].signature.members["payload"].shape.size
    assert cmd == 2 + 9 + 24 + 10 + 16       # kind, index, tokens, source die (1024), word
    assert len(rtl.die) == 10                 # the die strap numbers 1024 dies, like the field


def test_twin_and_rtl_at_64_dies_agree_on_a_remote_task_from_die_63():
    # die 63 needs the sixth bit of the source-die field: with 5 bits it would read as die 31
    # (this die: local, no copy).
    tasks = [TaskDescriptor(5, 40, 63), TaskDescriptor(7, 12, 31)]
    layers = [(tasks, [5, 7], None)]
    twin_stats, twin_sm = run_local_cp_twin(layers, die=31, num_experts=16, num_dies=64)
    assert twin_stats[0].duplicated_experts == (5,) and twin_stats[0].remote_tasks == 1
    stats, sm, _ = simulate_local_cp(layers, die=31, num_experts=16, num_dies=64)
    assert (stats, sm) == (twin_stats, twin_sm)
