"""The Local CP owns replica replacement (issue 21, point 7): its twin keeps each die's
replicas in LRU order and names what a bounded region evicts; the prediction path keeps no
order of its own and applies the Local CP's decision; the control path pays for the copies
the Local CPs report, not for what the data path moved."""

import numpy as np
import pytest
from test_system_prediction import COPYING, LAYER, _pred_run
from test_system_replay import _tiny_store

from hwmodel.components.local_cp.twin import LocalCPTwin
from hwmodel.models import load_model
from hwmodel.params import load_wafer
from hwmodel.system import Replay, ReplayParams
from hwmodel.system.engine import LayerKernel
from hwmodel.system.prediction import PredictionUnits
from hwmodel.topologies.wafer import build_wafer


def test_the_local_cps_replica_lru_by_hand():
    """Two slots: copies 5 and 6 of layer 0 fit; a hit on 5 makes 6 the least recently used,
    so copy 7 evicts 6; one slot then evicts 5 (older than 7). Unbounded, no order is kept."""
    cp = LocalCPTwin(die=1, num_experts=16, num_dies=4)
    assert cp.keep_copies(0, [5, 6]) == [] and cp.replicas_lru() == []   # unbounded
    assert cp.bound_replicas(2) == []
    assert cp.keep_copies(0, [5, 6]) == []
    cp.replicas_used(0, [5])
    assert cp.keep_copies(0, [7]) == [(0, 6)]
    assert cp.replicas_lru() == [(0, 5), (0, 7)]
    assert cp.bound_replicas(1) == [(0, 5)]
    assert cp.keep_copies(1, [5]) == [(0, 7)]          # another layer's expert 5 is its own
    assert (cp.replicas_lru(), cp.evictions, cp.replica_slots) == ([(1, 5)], 3, 1)
    assert cp.bound_replicas(0) == [(1, 5)]
    with pytest.raises(ValueError, match="slots"):
        cp.bound_replicas(-1)


def _units(capacity_experts=1):
    model = load_model("llama4-maverick")
    replay = Replay(wafer=build_wafer(load_wafer("tsmc-sow")), model=model,
                    store=_tiny_store([([0], [])]),
                    params=ReplayParams(artefact_quirks=False,
                                        replica_capacity_bytes=capacity_experts
                                        * model.expert_bytes))
    return PredictionUnits(replay, replay.global_cp())


def _copy_0_and_1_on_die_1(units):
    """Die 1 copies experts 0 and 1 (home die 0, both in cp_en), in that order."""
    units.launch(LAYER, np.array([0, 1, 5]), np.array([1, 1, 1]), np.ones(3, np.int64), True,
                 False)
    assert units.reports[1].duplicated_experts == (0, 1)
    units.report(LAYER)


def test_the_prediction_path_applies_the_local_cps_eviction():
    """With one slot the Local CP evicts expert 0 (least recently used). Told instead to drop
    expert 1, the ATU, the EDT and the PDU follow that decision: the order lives in the Local
    CP, not in the prediction path."""
    units = _units()
    _copy_0_and_1_on_die_1(units)
    assert not hasattr(units, "lru")
    assert units.local_cps[1].replicas_lru() == [(LAYER, 1)]
    assert [e for e, _, _ in units.atus[(1, LAYER)].valid_entries()] == [1]

    units = _units()
    regions = units.replica_regions     # the Local CPs' regions, every die's row at once

    def drop_1_of_die_1(dies, layer, experts):
        assert (dies.tolist(), experts.tolist()) == ([1, 1], [0, 1])
        return np.array([1]), np.array([layer]), np.array([1])
    regions.keep_copies = drop_1_of_die_1
    _copy_0_and_1_on_die_1(units)
    assert [e for e, _, _ in units.atus[(1, LAYER)].valid_entries()] == [0]
    assert units.pdus[1].query(1) == (True, False) and units.pdus[1].query(0) == (True, True)
    presence = units.gcp.presence_matrix(LAYER)
    assert presence[0, 1] and not presence[1, 1]


def test_set_capacity_asks_each_local_cp():
    """Physical mode's HBM budget shrinks each die's region: die 1's Local CP drops its
    least recently used replica (expert 0), the other dies hold none."""
    units = _units(capacity_experts=2)
    _copy_0_and_1_on_die_1(units)
    units.set_capacity(np.array([1] * units.N))
    assert units.local_cps[1].replicas_lru() == [(LAYER, 1)]
    assert units.evictions == 1
    assert [cp.replica_slots for cp in units.local_cps] == [1] * units.N


def test_the_control_path_counts_the_local_cps_reports(monkeypatch):
    """The launch delays of a copying pred run under the Global CP do not change when the
    data path's copy rows are dropped: the SET_PRESENT cycles follow the Local CPs' reports
    (before, they followed the kernel's rows and the cycles went missing)."""
    def delays():
        result = _pred_run(COPYING, control="global-cp", max_iterations=3)
        return result.counts, [layer["start_ns"] for layer in result.per_layer]
    counts, starts = delays()
    assert counts["replicas"] > 0 and counts["cp_decode_report_cycles"] > 0
    real_run = LayerKernel.run

    def without_rows(self, *args, **kwargs):
        end, stalled, dups = real_run(self, *args, **kwargs)
        return end, stalled, dups[:0]
    monkeypatch.setattr(LayerKernel, "run", without_rows)
    dropped_counts, dropped_starts = delays()
    assert dropped_starts == starts
    assert dropped_counts["cp_decode_report_cycles"] == counts["cp_decode_report_cycles"]
