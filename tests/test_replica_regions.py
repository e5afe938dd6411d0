"""The Local CPs' replica regions, every die at once (``ReplicaRegions``, compiled) and one die
at a time (``LocalCPTwin``'s views of one row), against a small OrderedDict reference of the
replacement rule (issue 17): random copies, ATU hits and bounds on several dies."""

from collections import OrderedDict

import numpy as np
import pytest

from hwmodel.components.local_cp.replicas import ReplicaRegions
from hwmodel.components.local_cp.twin import LocalCPTwin


class _Reference:
    """One die's region as an OrderedDict of ``(layer, expert)``, least recently used first:
    a copy joins at the end unless already held (then it keeps its place), after each copy
    the oldest are dropped while over; a hit moves a held replica to the end; unbounded
    (None), nothing changes."""

    def __init__(self):
        self.slots, self.held, self.evictions = None, OrderedDict(), 0

    def _over(self):
        out = []
        while self.slots is not None and len(self.held) > self.slots:
            out.append(self.held.popitem(last=False)[0])
        self.evictions += len(out)
        return out

    def bound(self, slots):
        self.slots = slots
        return self._over()

    def copies(self, layer, experts):
        out = []
        if self.slots is None:
            return out
        for e in experts:
            self.held[(layer, e)] = None
            out += self._over()
        return out

    def hits(self, layer, experts):
        if self.slots is not None:
            for e in experts:
                self.held.move_to_end((layer, e))


def _random_step(rng, refs, layers, experts):
    """A random step for some dies: ('bound', {die: slots or None}), ('copy', layer,
    {die: experts}) or ('hit', layer, {die: held experts of that layer, repeats allowed})."""
    kind = rng.choice(["bound", "copy", "copy", "copy", "hit", "hit"])
    dies = rng.choice(len(refs), int(rng.integers(1, len(refs) + 1)), replace=False).tolist()
    if kind == "bound":
        return ("bound", {d: None if rng.random() < 0.1 else int(rng.integers(0, 5))
                          for d in sorted(dies)})
    layer = int(rng.integers(0, layers))
    if kind == "copy":      # a die's copies of a layer are distinct, but may be held already
        return ("copy", layer, {d: rng.choice(experts, int(rng.integers(0, 5)),
                                              replace=False).tolist() for d in sorted(dies)})
    mine = {}
    for d in sorted(dies):
        held = [e for held_layer, e in refs[d].held if held_layer == layer]
        if held:
            mine[d] = rng.choice(held, int(rng.integers(1, 4))).tolist()
    return ("hit", layer, mine)


def _apply_wafer(regions, step):
    """The step as the replay makes it: one call for every die (dies ascending); returns the
    evictions per die, in order."""
    if step[0] == "bound":
        dies = np.array(list(step[1]), np.int64)
        counts = np.array([-1 if c is None else c for c in step[1].values()], np.int64)
        evicted = regions.bound(dies, counts)
    else:
        _, layer, per_die = step
        dies = np.array([d for d, es in per_die.items() for _ in es], np.int64)
        experts = np.array([e for es in per_die.values() for e in es], np.int64)
        if step[0] == "hit":
            regions.use(dies, layer, experts)
            return {}
        evicted = regions.keep_copies(dies, layer, experts)
    out = {}
    for d, layer, e in zip(*(a.tolist() for a in evicted)):
        out.setdefault(d, []).append((layer, e))
    return out


def _apply_reference(refs, step):
    out = {}
    if step[0] == "bound":
        for d, slots in step[1].items():
            out[d] = refs[d].bound(slots)
    else:
        _, layer, per_die = step
        for d, experts in per_die.items():
            if step[0] == "hit":
                refs[d].hits(layer, experts)
            else:
                out[d] = refs[d].copies(layer, experts)
    return {d: ev for d, ev in out.items() if ev}


@pytest.mark.parametrize("seed", range(8))
def test_wafer_calls_equal_the_reference_on_random_steps(seed):
    """300 random steps on 5 dies, 3 layers of 6 experts (the same expert of different layers,
    copies of replicas already held, repeated hits, bounds of 0 and unbounded spells): after
    every step the same evictions in the same order, and the same LRU order per die."""
    rng = np.random.default_rng(seed)
    dies, layers, experts = 5, 3, 6
    regions = ReplicaRegions(dies, experts, layers)
    refs = [_Reference() for _ in range(dies)]
    evicted = 0
    for _ in range(300):
        step = _random_step(rng, refs, layers, experts)
        assert _apply_wafer(regions, step) == _apply_reference(refs, step), step
        assert [regions.lru(d) for d in range(dies)] == [list(r.held) for r in refs]
        assert [regions.slots_of(d) for d in range(dies)] == [r.slots for r in refs]
    evicted = regions.evictions.tolist()
    assert evicted == [r.evictions for r in refs] and sum(evicted) > 0


@pytest.mark.parametrize("seed", range(4))
def test_each_local_cp_is_a_view_of_its_row(seed):
    """The same random steps through each die's LocalCPTwin (one row of the shared regions):
    its answers, order, slots and evictions equal the reference, and its row of the wafer's
    regions is what it reads."""
    rng = np.random.default_rng(100 + seed)
    dies, layers, experts = 4, 2, 5
    regions = ReplicaRegions(dies, experts, layers)
    cps = [LocalCPTwin(die=d, num_experts=experts, num_dies=dies, replicas=regions)
           for d in range(dies)]
    refs = [_Reference() for _ in range(dies)]
    for _ in range(200):
        step = _random_step(rng, refs, layers, experts)
        expected = _apply_reference(refs, step)
        got = {}
        if step[0] == "bound":
            for d, slots in step[1].items():
                got[d] = cps[d].bound_replicas(slots)
        else:
            _, layer, per_die = step
            for d, chosen in per_die.items():
                if step[0] == "hit":
                    cps[d].replicas_used(layer, chosen)
                else:
                    got[d] = cps[d].keep_copies(layer, chosen)
        assert {d: ev for d, ev in got.items() if ev} == expected
        assert [cp.replicas_lru() for cp in cps] == [list(r.held) for r in refs]
    assert [cp.evictions for cp in cps] == [r.evictions for r in refs]
    assert [cp.replica_slots for cp in cps] == [r.slots for r in refs]
    assert [regions.lru(d) for d in range(dies)] == [cp.replicas_lru() for cp in cps]


def test_each_copy_evicts_before_the_next_joins():
    """One slot, copies 1 then 2 in one call: 1 joins, 2 joins and evicts 1 (after each copy,
    not once at the end, which would evict 1 and keep 2 as well, but after all copies of a
    longer list would also drop the copies in a different order): copies 1, 2, 3 evict 1 then
    2, leaving 3."""
    regions = ReplicaRegions(2, 8)
    regions.bound(np.array([0, 1]), np.array([1, 1]))
    rows, layers, experts = regions.keep_copies(np.array([1, 1, 1]), 0, np.array([1, 2, 3]))
    assert (rows.tolist(), layers.tolist(), experts.tolist()) == ([1, 1], [0, 0], [1, 2])
    assert regions.lru(1) == [(0, 3)] and regions.lru(0) == []


def test_a_copy_of_a_held_replica_keeps_its_place():
    """Two slots holding 1 then 2: a second copy of 1 does not make it the most recently used
    (the OrderedDict assignment of a held key), so copy 3 evicts 1."""
    cp = LocalCPTwin(die=0, num_experts=8, num_dies=1)
    cp.bound_replicas(2)
    assert cp.keep_copies(0, [1, 2]) == [] and cp.keep_copies(0, [1]) == []
    assert cp.keep_copies(0, [3]) == [(0, 1)]
    assert cp.replicas_lru() == [(0, 2), (0, 3)]


def test_a_bound_of_zero_evicts_each_copy_at_once():
    cp = LocalCPTwin(die=0, num_experts=8, num_dies=1)
    cp.bound_replicas(0)
    assert cp.keep_copies(2, [4, 5]) == [(2, 4), (2, 5)]
    assert cp.replicas_lru() == [] and cp.evictions == 2


def test_the_same_expert_of_two_layers_are_two_replicas():
    """Expert 3 of layers 0 and 1 are distinct keys: a hit on layer 1's makes layer 0's the
    least recently used."""
    cp = LocalCPTwin(die=0, num_experts=8, num_dies=1)
    cp.bound_replicas(2)
    cp.keep_copies(0, [3])
    cp.keep_copies(1, [3])
    cp.replicas_used(0, [3])
    assert cp.bound_replicas(1) == [(1, 3)]


def test_unbounded_keeps_the_order_it_had():
    """Unbounding a region freezes its order (no copy or hit changes it); bounding it again
    evicts from that order."""
    cp = LocalCPTwin(die=0, num_experts=8, num_dies=1)
    cp.bound_replicas(3)
    cp.keep_copies(0, [1, 2, 3])
    cp.bound_replicas(None)
    assert cp.keep_copies(0, [4]) == [] and cp.replica_slots is None
    cp.replicas_used(0, [1, 7])             # not held, but nothing is kept while unbounded
    assert cp.replicas_lru() == [(0, 1), (0, 2), (0, 3)]
    assert cp.bound_replicas(1) == [(0, 1), (0, 2)]


def test_a_hit_of_a_replica_not_held_is_an_error_as_before():
    """A bounded region asked to use a replica it does not hold raises KeyError naming it
    (the OrderedDict's move_to_end did); the uses before it were made."""
    regions = ReplicaRegions(2, 8)
    regions.bound(np.array([0, 1]), np.array([2, 2]))
    regions.keep_copies(np.array([0, 0]), 0, np.array([1, 2]))
    with pytest.raises(KeyError, match=r"\(0, 5\)"):
        regions.use(np.array([0, 0]), 0, np.array([1, 5]))
    assert regions.lru(0) == [(0, 2), (0, 1)]


def test_a_later_layer_grows_the_key_space():
    """A twin of its own sized for one layer takes copies of layer 3 (its columns made then)
    and keeps the earlier layers' replicas in order."""
    cp = LocalCPTwin(die=0, num_experts=4, num_dies=1)
    cp.bound_replicas(3)
    cp.keep_copies(0, [3])
    cp.keep_copies(3, [0, 3])
    assert cp.replicas_lru() == [(0, 3), (3, 0), (3, 3)]
    assert cp.keep_copies(1, [2]) == [(0, 3)]


def test_bad_keys_and_bounds_are_refused():
    cp = LocalCPTwin(die=0, num_experts=4, num_dies=1)
    cp.bound_replicas(1)
    with pytest.raises(ValueError, match="experts"):
        cp.keep_copies(0, [4])
    with pytest.raises(ValueError, match="layer"):
        cp.keep_copies(-1, [0])
    with pytest.raises(ValueError, match="slots"):
        cp.bound_replicas(-1)
    with pytest.raises(TypeError, match="ReplicaRegions"):
        LocalCPTwin(die=0, num_experts=4, num_dies=1, replicas=object())
    assert cp.replicas_lru() == [] and cp.evictions == 0
