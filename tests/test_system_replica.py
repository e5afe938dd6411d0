"""Bounded replica region (SPEC sections 6 and 9): LRU eviction per die, worked by hand on a
one-request Llama-4 trace."""

import pytest
from test_system_replay import _replay, _tiny_store

from hwmodel.config import ConfigError
from hwmodel.models import load_model
from hwmodel.system import ReplayParams

EXPERT_BYTES = load_model("llama4-maverick").expert_bytes      # 251,658,240


@pytest.fixture(scope="module")
def store():
    """One request: a 2-token prompt and 3 decode steps, all on expert 0 (home die 0) in each
    of the 24 MoE layers. Under ``pred`` (base allocation) expert 0 runs on die 7, 7 hops from
    its home; with an empty heatmap the predictor's top-26 of every row is experts 0..25, so
    die 7 copies expert 0 of every layer at the first decode step."""
    return _tiny_store([([0, 0], [0, 0, 0])])


def _run(store, capacity):
    result = _replay(store, replica_capacity_bytes=capacity).run("pred")
    assert not result.stalled
    return result


def test_unbounded_copies_once_then_reads_replicas(store):
    r = _run(store, None)
    assert r.counts["replicas"] == 24 * 3             # slices; step 1: one expert a layer
    assert r.counts["replica_evictions"] == 0
    assert r.counts["replica_reads"] == 2 * 24 * 3    # steps 2, 3: 3 slices per layer
    assert r.per_die["replicas_held"][7] == 24
    assert sum(r.per_die["replicas_held"]) == 24


def test_region_holding_every_copy_changes_nothing(store):
    a = _run(store, None).to_json()
    b = _run(store, 24 * EXPERT_BYTES).to_json()
    for result in (a, b):
        result.pop("wall_s")
    assert a == b


def test_one_expert_region_keeps_only_the_last_copy(store):
    """Capacity 1: each layer's copy evicts the previous layer's; at the next step every layer
    misses again (24 copies and 24 evictions per step, 23 at the first)."""
    r = _run(store, EXPERT_BYTES + EXPERT_BYTES // 2)   # whole experts only: 1.5 -> 1
    assert r.counts["replicas"] == 3 * 24 * 3        # slices copied
    assert r.counts["replica_evictions"] == 23 + 24 + 24
    assert r.counts["replica_reads"] == 0
    assert r.per_die["replicas_held"][7] == 1
    assert r.throughput < _run(store, None).throughput


def test_lru_thrashes_on_a_cycle_one_longer_than_the_region(store):
    """Capacity 23 and a cycle of 24 layers: the first step evicts layer 0's copy when layer
    23's arrives; at the next step layer 0 misses and evicts layer 1's (least recently
    used), and so on: LRU never hits. 72 copies, 72 - 23 = 49 evictions."""
    r = _run(store, 23 * EXPERT_BYTES)
    assert r.counts["replicas"] == 72 * 3
    assert r.counts["replica_evictions"] == 49
    assert r.counts["replica_reads"] == 0
    assert r.per_die["replicas_held"][7] == 23


def test_zero_region_writes_copies_that_never_serve(store):
    r = _run(store, 0)
    assert r.counts["replicas"] == 72 * 3 and r.counts["replica_evictions"] == 72
    assert r.counts["replica_reads"] == 0
    assert r.per_die["replicas_held"] == [0] * 24


def test_bad_capacity_is_refused():
    with pytest.raises(ConfigError, match="replica_capacity_bytes"):
        ReplayParams(replica_capacity_bytes=-1)
    with pytest.raises(ConfigError, match="replica_capacity_bytes"):
        ReplayParams(replica_capacity_bytes="50GB")
