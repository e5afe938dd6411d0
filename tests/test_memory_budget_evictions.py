"""The HBM budget's evictions, every die at once (``PredictionUnits._evict_pairs``), against the
one-by-one path it replaces (``_evict``, which ``record`` keeps) and the die-by-die twins
(``test_prediction_wafer._DieByDie``): the same ATU entries, EDT presence, PDU registers and
Local CP orders, on random launches and at the edges (nothing to evict, a region that fits
exactly, one PDU word cleared twice, evictions of the layer just launched)."""

import numpy as np
import pytest
from test_prediction_wafer import _DieByDie, _random_plan
from test_system_replay import _tiny_store

from hwmodel.components.pdu.params import EXPERTS_PER_WORD, WORD_BITS
from hwmodel.models import load_model
from hwmodel.params import load_wafer
from hwmodel.system import Replay, ReplayParams
from hwmodel.system.prediction import PredictionUnits
from hwmodel.topologies.wafer import build_wafer


def _replay(capacity_experts=None):
    model = load_model("llama4-maverick")
    cap = None if capacity_experts is None else capacity_experts * model.expert_bytes
    return Replay(wafer=build_wafer(load_wafer("tsmc-sow")), model=model,
                  store=_tiny_store([([0], [])]), params=ReplayParams(replica_capacity_bytes=cap))


def _state(units):
    """Everything an eviction may change: ATU entries, EDT presence, PDU registers, each
    Local CP's replica order and eviction count."""
    return (units.atu_tables[0].copy(), units.atu_tables[1].copy(), units.atu_tables[2].copy(),
            units.gcp.edt._presence.copy(), units.registers.copy(),
            [(cp.replicas_lru(), cp.evictions) for cp in units.local_cps])


def _same(a, b):
    return (all((x == y).all() for x, y in zip(a[:5], b[:5])) and a[5] == b[5])


@pytest.mark.parametrize("seed, capacity", [(0, 0), (1, 1), (2, 3), (3, None)])
def test_bulk_evictions_equal_the_die_by_die_twins(seed, capacity):
    """60 random launches and reports under budgets that shrink and grow (0-3 replicas a die,
    some dies at exactly the replicas they hold): at every layer the same registers, and at
    the end the same ATU entries, EDT presence and evictions as the die-by-die path."""
    rng = np.random.default_rng(seed)
    replay = _replay(capacity)
    N, E, L = replay.N, replay.E, 4
    gcps = [replay.global_cp(), replay.global_cp()]
    heat = rng.integers(0, 3, (L, E, E))
    for gcp in gcps:
        for layer in range(L):
            gcp.heatmap_add_matrix(layer, heat[layer])
    fast = PredictionUnits(replay, gcps[0])                 # record off: the bulk path
    slow = _DieByDie(replay, gcps[1], record=True)
    assert fast.streams is None
    for step in range(60):
        if step % 7 == 0:
            held = np.array([len(cp.replicas_lru()) for cp in fast.local_cps])
            slots = np.where(rng.random(N) < 0.3, held, rng.integers(0, 4, N))  # exact fit
            fast.set_capacity(slots)
            slow.set_capacity(slots)
        layer = int(rng.integers(0, L))
        plan = _random_plan(rng, N, E, empty=step % 13 == 3)
        copy_ok, quirks = bool(rng.random() < 0.9), bool(rng.random() < 0.5)
        order = fast.launch(layer, *plan, copy_ok, quirks)
        assert order.tolist() == slow.launch(layer, *plan, copy_ok, quirks).tolist()
        assert (fast.copy == slow.copy).all() and (fast.redirect == slow.redirect).all()
        fast.report(layer)
        slow.report(layer)
        assert (fast.registers == slow.registers).all()
    assert {k: a.valid_entries() for k, a in fast.atus.items()} == {
        k: a.valid_entries() for k, a in slow.atus.items()}
    assert all((gcps[0].presence_matrix(x) == gcps[1].presence_matrix(x)).all()
               for x in range(L))
    assert fast.evictions == sum(cp.evictions for cp in slow.local_cps)
    assert fast.evictions > 0


def _filled(seed):
    """Units whose dies hold random replicas of layers 0-2 (ATU entries, EDT bits; 20 experts
    a die and layer, so that two share a PDU word), layer 2 launched last (random PDU
    registers); and the replicas held, ``(die, layer, expert)``. The same for a same seed."""
    rng = np.random.default_rng(seed)
    replay = _replay()
    units = PredictionUnits(replay, replay.global_cp())
    N, E = units.N, units.E
    held = [(d, layer, e) for d in range(N) for layer in range(3)
            for e in rng.choice(E, 20, replace=False).tolist() if units.home[e] != d]
    dies, layers, experts = np.array(held, np.int64).T
    units.atu_tables[0][layers * N + dies, experts] = True
    for layer in range(3):
        mine = layers == layer
        units.gcp.edt_set_present_pairs(layer, experts[mine], dies[mine])
    units.layer = 2
    units.registers[:] = rng.integers(0, 1 << WORD_BITS, units.registers.shape)
    return units, held, rng


def _evict_all(units, decided):
    """``units._evict_pairs`` of the evictions as die-by-die Local CPs name them: ``decided``
    lists ``(die, [(layer, expert), ...])``, dies ascending."""
    evictions = [(d, layer, e) for d, pairs in decided for layer, e in pairs]
    units._evict_pairs(*np.array(evictions, np.int64).reshape(-1, 3).T)


@pytest.mark.parametrize("seed", range(6))
def test_evict_all_equals_one_eviction_at_a_time(seed):
    """Random evictions of held replicas, each die's in random order, with two of the layer
    just launched on one PDU word of a die and one replica held on two dies evicted from
    both: the bulk path leaves every unit as ``_evict`` one at a time does."""
    units, held, rng = _filled(seed)
    slow = _filled(seed)[0]
    chosen = [held[i] for i in rng.choice(len(held), 40, replace=False).tolist()]
    by_word = {}
    for d, layer, e in held:
        if layer == 2:
            by_word.setdefault((d, e // EXPERTS_PER_WORD), []).append((d, layer, e))
    chosen += next(group[:2] for group in by_word.values() if len(group) >= 2)
    by_replica = {}
    for d, layer, e in held:
        by_replica.setdefault((layer, e), []).append((d, layer, e))
    chosen += next(group[:2] for group in by_replica.values() if len(group) >= 2)
    decided = {}
    for d, layer, e in chosen:
        if (layer, e) not in decided.setdefault(d, []):
            decided[d].append((layer, e))
    decided = sorted(decided.items())
    _evict_all(units, decided)
    for d, pairs in decided:
        for layer, e in pairs:
            slow._evict(d, layer, e)
    assert _same(_state(units), _state(slow))
    assert not _same(_state(units), _state(_filled(seed)[0]))    # something was evicted
    assert (units.registers != _filled(seed)[0].registers).any()  # ... also from a PDU


def test_nothing_to_evict_changes_nothing():
    units, _, _ = _filled(0)
    before = _state(units)
    _evict_all(units, [])
    _evict_all(units, [(0, []), (5, [])])
    assert _same(_state(units), before)


def test_evicting_a_home_copy_is_refused_as_one_at_a_time():
    units, _, _ = _filled(0)
    e = 3
    home = int(units.home[e])
    with pytest.raises(ValueError, match=f"die {home} is the home of expert {e}"):
        _evict_all(units, [(home, [(0, e)])])
    with pytest.raises(ValueError, match=f"die {home} is the home of expert {e}"):
        units._evict(home, 0, e)


def test_a_region_that_fits_exactly_evicts_nothing_and_one_less_evicts_the_oldest():
    """Die 1 holds copies of experts 0 and 1 (in that order): a bound of 2 evicts nothing; a
    bound of 1 evicts expert 0 (least recently used) from the ATU and the EDT."""
    units = PredictionUnits(_replay(2), _replay(2).global_cp())
    units.launch(0, np.array([0, 1, 5]), np.array([1, 1, 1]), np.ones(3, np.int64), True, False)
    assert units.reports[1].duplicated_experts == (0, 1)
    units.report(0)
    before = _state(units)
    units.set_capacity(np.full(units.N, 2))
    assert _same(_state(units), before) and units.evictions == 0
    units.set_capacity(np.full(units.N, 1))
    assert units.evictions == 1
    presence = units.gcp.presence_matrix(0)
    assert not presence[0, 1] and presence[1, 1]
    assert not units.atu_tables[0][0 * units.N + 1, 0] and units.atu_tables[0][1, 1]
