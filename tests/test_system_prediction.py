"""The replay's prediction path at a layer launch, worked by hand: the Global CP's top-n
(share 0.2 of the experts), the per-die union with the artefact's quirk, the PDU tables."""

import math

import numpy as np
import pytest
from test_system_replay import _tiny_store

from hwmodel.models import load_model
from hwmodel.params import load_wafer
from hwmodel.system import Replay, ReplayParams
from hwmodel.system.prediction import PredictionUnits
from hwmodel.topologies.wafer import build_wafer

LAYER = 0


def _launch(quirks: bool):
    """Die 1 runs experts 0, 1 and 5 (plan order); the heatmap says 0 -> 100, 1 -> 101,
    5 -> 105 (one count each)."""
    replay = Replay(wafer=build_wafer(load_wafer("tsmc-sow")),
                    model=load_model("llama4-maverick"), store=_tiny_store([([0], [])]),
                    params=ReplayParams(artefact_quirks=quirks))
    gcp = replay.global_cp()
    for prev, nxt in ((0, 100), (1, 101), (5, 105)):
        gcp.heatmap_add(LAYER, prev, nxt)
    units = PredictionUnits(replay, gcp)
    task_e = np.array([0, 1, 5], np.int64)
    task_d = np.array([1, 1, 1], np.int64)
    units.launch(LAYER, task_e, task_d, np.ones(3, np.int64), True, quirks)
    return units


def _pdu_bits(units, die):
    """``(cp_en, is_local)`` of every expert as die ``die``'s PDU answers its queries."""
    answers = np.array([units.pdus[die].query(e) for e in range(units.E)], bool)
    return answers[:, 0], answers[:, 1]


def test_top_n_is_a_fifth_of_the_experts_with_ties_by_id():
    """n = ceil(0.2 x 128) = 26: the counted successor, then the 25 lowest ids of count 0."""
    units = _launch(quirks=False)
    n = math.ceil(0.2 * 128)
    assert n == 26
    cp_en = _pdu_bits(units, 1)[0]
    assert cp_en[[100, 101, 105]].all()
    assert cp_en[:n - 1].all() and not cp_en[n - 1:100].any()
    assert not _pdu_bits(units, 0)[0].any()           # a die without tasks copies nothing


def test_artefact_quirk_stops_a_dies_list_at_the_expert_equal_to_its_id():
    """With the quirk, die 1's list stops growing once it holds expert 1: 5's successor is
    left out."""
    units = _launch(quirks=True)
    cp_en = _pdu_bits(units, 1)[0]
    assert cp_en[[100, 101]].all()
    assert not cp_en[105]


@pytest.mark.parametrize("quirks", [False, True])
def test_pdu_registers_hold_the_prediction(quirks):
    """Die 1's PDU words pack cp_en (bit 0) and is_local (bit 1) of 8 experts per 16-bit
    register: expert e in word e // 8 at bits 2 (e mod 8) and 2 (e mod 8) + 1. By hand:
    cp_en = the top-n rows of 0, 1 (and 5 without the quirk): ids 0-24, 100, 101 (105);
    is_local = die 1's own experts 5-9 (128 // 24 = 5 per die) and 121 (experts 120-127 go
    to die e mod 24), and the two its Local CP copied at the launch (0 and 1: remote, cp_en
    set, not local)."""
    units = _launch(quirks)
    words = units.pdus[1].words
    cp_en = set(range(25)) | {100, 101} | (set() if quirks else {105})
    is_local = set(range(5, 10)) | {121} | {0, 1}
    for expert in range(128):
        bits = words[expert // 8] >> (2 * (expert % 8))
        assert bits & 1 == (expert in cp_en), expert
        assert (bits >> 1) & 1 == (expert in is_local), expert
    assert units.reports[1].duplicated_experts == (0, 1)
    assert np.flatnonzero(units.copy[1]).tolist() == [0, 1]


# ------------------------------------------------------------- the units decide (system level)
def _pred_run(store_requests, **params):
    replay = Replay(wafer=build_wafer(load_wafer("tsmc-sow")),
                    model=load_model("llama4-maverick"), store=_tiny_store(store_requests),
                    params=ReplayParams(**{"max_iterations": 6, **params}))
    return replay.run("pred")


# base runs the first expert met on die 7: expert 100 (home die 20 = 100 // 5) on die 7. The
# prompt's pairs 100 -> 100 put 100 in its own top-n, so die 7's PDU has cp_en for 100: the
# first decode step copies it, and later steps read the replica through die 7's ATU.
COPYING = [([100, 100, 100], [100] * 5)]


def test_copies_and_redirects_happen_by_hand():
    """Decode step 1 copies 3 slices per MoE layer (24 layers); steps 2-5 read them back from
    the replica (die 7's 2-way LLC cycles through 72 lines, so it never hits)."""
    result = _pred_run(COPYING)
    assert result.counts["replicas"] == 3 * 24
    assert result.counts["replica_reads"] == 4 * 3 * 24
    assert result.per_die["replicas_held"][7] == 24


def test_the_copy_decision_is_the_pdus(monkeypatch):
    """A PDU whose registers never take the Local CP's writes copies nothing: the kernel asks
    the PDU, not the predictor's arrays."""
    from hwmodel.components.pdu.twin import PDUTwin
    monkeypatch.setattr(PDUTwin, "load_tables", staticmethod(lambda registers, dies, words: None))
    result = _pred_run(COPYING)
    assert result.counts["replicas"] == 0 and result.counts["replica_reads"] == 0


def test_a_redirected_read_uses_the_page_the_atu_returns(monkeypatch):
    """An ATU that returns the page after the right one makes the replay stop: the data there
    is not the expert's."""
    from hwmodel.components.atu.twin import ATUTwin
    lookup = ATUTwin.look_up
    monkeypatch.setattr(ATUTwin, "look_up", staticmethod(lambda *args: (
        lookup(*args)[0], lookup(*args)[1] + 1)))
    with pytest.raises(AssertionError, match="ATU of die .* redirects expert .* to page"):
        _pred_run(COPYING)


def test_an_atu_that_misses_changes_the_answer(monkeypatch):
    """The ATU decides redirects: an ATU that never hits leaves the copies (3 slices x 24
    layers at decode step 1, the PDU's decision) but no read is served by them; steps 2-5
    read expert 100 from its home die again, so the run takes longer."""
    from hwmodel.components.atu.twin import ATUTwin
    normal = _pred_run(COPYING)
    monkeypatch.setattr(ATUTwin, "look_up", staticmethod(lambda *args: (
        np.zeros(len(args[4]), bool), np.zeros(len(args[4]), np.int64))))
    missing = _pred_run(COPYING)
    assert missing.counts["replicas"] == 3 * 24
    assert missing.counts["replica_reads"] == 0
    assert missing.counts["remote_hbm_reads"] + missing.counts["remote_llc_hits"] == (
        normal.counts["remote_hbm_reads"] + normal.counts["remote_llc_hits"] + 4 * 3 * 24)
    assert missing.time_ns > normal.time_ns


def test_the_kernel_copies_what_the_local_cp_decides(monkeypatch):
    """A Local CP whose PDU answers "no copy" to every arrival decides no copy, and the data
    path makes none although die 7's PDU registers hold cp_en for expert 100."""
    from hwmodel.components.pdu.twin import PDUTwin
    monkeypatch.setattr(PDUTwin, "arrivals", staticmethod(
        lambda registers, dies, experts: np.zeros(len(experts), bool)))
    result = _pred_run(COPYING)
    assert result.counts["replicas"] == 0 and result.counts["replica_reads"] == 0


def test_the_kernel_runs_each_die_in_its_local_cps_dispatch_order(monkeypatch):
    """30 experts in one prompt: base puts the i-th on die (i + 7) mod 24, so dies 7-12 get
    two tasks. A Local CP that dispatches its tasks last first makes the kernel run each die's
    tasks reversed, in the plan's positions of that die."""
    from hwmodel.components.local_cp.twin import LocalCPTwin
    from hwmodel.system.engine import LayerKernel
    run = LayerKernel.run
    seen = []

    def spy(self, t0, layer, tasks, prediction, **kw):
        seen.append((tasks.expert.tolist(), tasks.die.tolist()))
        return run(self, t0, layer, tasks, prediction, **kw)
    monkeypatch.setattr(LayerKernel, "run", spy)
    store = [(list(range(30)), [])]
    _pred_run(store, max_iterations=1)
    plan_order, seen[:] = list(seen), []
    dispatch = LocalCPTwin.dispatch_tasks

    def last_first(registers, rows, dies, experts, sources):
        copied, order = dispatch(registers, rows, dies, experts, sources)
        reversed_order = order.copy()
        for d in np.unique(dies):
            mine = np.flatnonzero(dies == d)
            reversed_order[mine] = order[mine][::-1]
        return copied, reversed_order
    monkeypatch.setattr(LocalCPTwin, "dispatch_tasks", staticmethod(last_first))
    _pred_run(store, max_iterations=1)
    assert len(seen) == len(plan_order) == 24
    for (experts, dies), (got_experts, got_dies) in zip(plan_order, seen):
        assert got_dies == dies
        for d in range(24):
            mine = [e for e, x in zip(experts, dies) if x == d]
            assert [e for e, x in zip(got_experts, got_dies) if x == d] == mine[::-1]
        assert sorted(np.bincount(dies).tolist())[-6:] == [2] * 6     # dies 7-12


def _units_of_run(monkeypatch, store_requests, **params):
    """The :class:`PredictionUnits` a ``pred`` replay built, after the run."""
    made = []
    init = PredictionUnits.__init__

    def keep(self, *args, **kw):
        init(self, *args, **kw)
        made.append(self)
    monkeypatch.setattr(PredictionUnits, "__init__", keep)
    result = _pred_run(store_requests, **params)
    return made[0], result


def test_each_replica_sits_at_its_address_map_page_by_hand(monkeypatch):
    """Die 7's ATU after the copying run: one valid entry per MoE layer, expert 100, worked
    out from the address map's rules (not from the map): 4 KiB pages, a weight matrix is
    5120 x 8192 x 2 B = 20480 pages; 31-bit pages (the regions need under 2**30) under a
    5-bit die id. Expert 100's home is die 20 (128 // 24 = 5 per die), slot 0 of 6 (dies
    0-7 also hold one of experts 120-127), so its home page in MoE layer m is (6 m + 0) x 3 x
    20480; its replica on die 7 is in the upper half, at 2**30 + (128 m + 100) x 3 x 20480."""
    units, _ = _units_of_run(monkeypatch, COPYING)
    matrix_pages = 5120 * 8192 * 2 // 4096
    assert matrix_pages == 20480
    for index, moe_layer in enumerate(range(1, 48, 2)):
        home_page = (6 * moe_layer + 0) * 3 * matrix_pages
        replica_page = (1 << 30) + (128 * moe_layer + 100) * 3 * matrix_pages
        assert units.atus[(7, index)].valid_entries() == [
            (100, (20 << 31) | home_page, replica_page)]


def test_an_eviction_clears_the_pdus_is_local_and_keeps_cp_en():
    """A replica region of one expert: die 1's Local CP copies experts 0 and 1 (remote, home
    die 0, both in the predictor's cp_en); after the report the least recently used copy
    (expert 0, copied first) is evicted: the PDU keeps cp_en = 1 but is_local = 0 for it,
    its ATU entry is invalid and the EDT drops die 1 from its presence; expert 1 stays."""
    model = load_model("llama4-maverick")
    replay = Replay(wafer=build_wafer(load_wafer("tsmc-sow")), model=model,
                    store=_tiny_store([([0], [])]),
                    params=ReplayParams(artefact_quirks=False,
                                        replica_capacity_bytes=model.expert_bytes))
    gcp = replay.global_cp()
    units = PredictionUnits(replay, gcp)
    units.launch(LAYER, np.array([0, 1, 5]), np.array([1, 1, 1]), np.ones(3, np.int64), True,
                 False)
    assert units.reports[1].duplicated_experts == (0, 1)
    units.report(LAYER)
    assert units.evictions == 1
    assert units.pdus[1].query(0) == (True, False)
    assert units.pdus[1].query(1) == (True, True)
    home_addr, page = units.amap.home_address(1, 1), units.amap.replica_address(1, 1)
    assert units.atus[(1, LAYER)].valid_entries() == [(1, home_addr, page)]
    assert gcp.edt_presence(LAYER, 0) == 1 << 0            # home die 0 only
    assert gcp.edt_presence(LAYER, 1) == (1 << 0) | (1 << 1)


def test_rtl_answers_the_replays_own_unit_streams():
    """The PDU and ATU RTL, fed the transactions die 7's twins took in a replay, give the
    twins' answers (a window: the whole copying run, 6 iterations x 24 layers)."""
    from hwmodel.components.atu.sim import simulate_atu
    from hwmodel.components.pdu.sim import simulate_pdu
    replay = Replay(wafer=build_wafer(load_wafer("tsmc-sow")),
                    model=load_model("llama4-maverick"), store=_tiny_store(COPYING),
                    params=ReplayParams(max_iterations=6))
    streams = replay.run("pred", record_units=True).unit_streams
    pdu = streams[("pdu", 7)]
    assert {t[0] for t in pdu} == {"write_word", "query", "set_local"}
    answers = [t[2] for t in pdu if t[0] == "query"]
    rtl, _ = simulate_pdu([t[:2] if t[0] == "query" else t for t in pdu],
                          num_experts=replay.wafer.die(7).pdu.experts)
    assert rtl == answers
    assert {(False, False), (True, False), (True, True)} <= set(answers)   # copy, then redirect
    atu = streams[("atu", 7, 0)]
    # every remote read asks the ATU: the prefill's and the first decode step's miss, the
    # copy is inserted after that step, the 4 later steps hit
    assert [t[0] for t in atu] == ["lookup", "lookup", "insert"] + ["lookup"] * 4
    assert [t[3][0] for t in atu if t[0] == "lookup"] == [False, False] + [True] * 4
    page_bits = PredictionUnits(replay, replay.global_cp()).amap.layout.page_bits
    rtl, _ = simulate_atu([t[:3] if t[0] == "lookup" else t for t in atu],
                          num_entries=replay.wafer.die(7).atu.entries, num_dies=24,
                          page_bits=page_bits)
    assert rtl == [t[3] for t in atu if t[0] == "lookup"]


# ------------------------------------------------------------- ATU addresses on a faulty wafer
def test_address_map_homes_spread_over_the_live_dies_by_hand():
    """6 experts on dies 0, 1, 3 of 4 (die 2 dead): 2 per live die, in id order; slots count
    up within a die."""
    from hwmodel.components.atu import AddressMap
    amap = AddressMap(num_dies=4, num_experts=6, num_layers=1, slice_bytes=4096,
                      live_dies=(0, 1, 3))
    assert [amap.home(e) for e in range(6)] == [(0, 0), (0, 1), (1, 0), (1, 1), (3, 0), (3, 1)]
    assert amap.slots_per_die == 2


def test_redirects_on_a_faulty_wafer_address_the_live_home_die():
    """The ATU's remote address names the home die the replay uses (never the dead die)."""
    import attrs
    wafer = build_wafer(attrs.evolve(load_wafer("tsmc-sow"), dead_dies=("die_0_3",)))
    replay = Replay(wafer=wafer, model=load_model("llama4-maverick"),
                    store=_tiny_store([([0], [])]))
    units = PredictionUnits(replay, replay.global_cp())
    dead = wafer.mesh.die_id(0, 3)
    homes = [units.amap.home(e)[0] for e in range(replay.E)]
    assert homes == replay.home.tolist() and dead not in homes
    die_bits, page_bits = units.amap.layout.die_bits, units.amap.layout.page_bits
    for e in (0, 17, 127):
        address = units.amap.home_address(5, e)
        assert address >> page_bits == replay.home[e] and die_bits == 5
