"""LLC model (SPEC section 3): geometry, a hand-worked LRU eviction sequence, and the compiled
kernel's tag store against the Python one."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwmodel.components.llc import LLC, SetAssociativeLRU
from hwmodel.models import load_model
from hwmodel.params import LLCParams
from hwmodel.system.engine import Counter, LayerKernel, Prediction, Tasks, _llc_check, _llc_store
from hwmodel.system.lowering import Tables

MiB = 2**20


@pytest.mark.parametrize(("model", "sets"), [
    ("llama4-maverick", 1),     # 80 MiB slice: 64 MiB // (2 x 80 MiB) = 0 -> at least 1
    ("deepseek-v3", 1),         # 28 MiB: 64 // 56 = 1
    ("kimi-k2", 1),
    ("qwen3-235b", 2),          # 12 MiB: 64 // 24 = 2
    ("deepseek-v2-lite", 5),    # 5.5 MiB: 64 // 11 = 5
])
def test_sets_from_capacity_ways_and_slice(model, sets):
    slice_bytes = load_model(model).slice_bytes
    assert LLC(params=LLCParams()).num_sets(slice_bytes) == sets


def test_hand_worked_lru_sequence():
    """2 sets x 2 ways, set = expert mod 2. Stores of (expert, tag):

    a=(0,'a') b=(2,'b') -> set 0 holds [a, b]; c=(1,'c') goes to set 1;
    store a again refreshes it -> [b, a]; d=(4,'d') evicts b (least recently stored) ->
    [a, d]; e=(6,'e') evicts a -> [d, e]. Lookups never refresh: checking d before storing
    f=(8,'f') still evicts d.
    """
    llc = SetAssociativeLRU(2, 2)
    hits = []
    assert llc.store(0, "a") is None
    assert llc.store(2, "b") is None
    assert llc.store(1, "c") is None
    assert llc.lines(0) == ("a", "b") and llc.lines(1) == ("c",)
    assert llc.store(0, "a") is None                   # refresh, no eviction
    assert llc.lines(0) == ("b", "a")
    assert llc.store(4, "d") == "b"
    assert llc.lines(0) == ("a", "d")
    for expert, tag in ((0, "a"), (2, "b"), (1, "c"), (4, "d")):
        hits.append(llc.check(expert, tag))
    assert hits == [True, False, True, True]
    assert llc.store(6, "e") == "a"
    assert llc.check(4, "d")                          # a lookup: does not refresh d
    assert llc.store(8, "f") == "d"
    assert llc.lines(0) == ("e", "f") and llc.lines(1) == ("c",)
    with pytest.raises(ValueError, match="ways"):
        SetAssociativeLRU(1, 0)


def test_kernel_tag_store_is_lru_by_hand():
    """The compiled kernel's own tag store on the hand case above (tags a..f = 1..6): storing
    a again refreshes it, so d evicts b (LRU), where first-in-first-out would evict a; a lookup
    refreshes nothing, so f evicts d."""
    tags = np.full((1, 2, 2), -1, np.int64)
    fill = np.zeros((1, 2), np.int64)
    sets, ways = np.array([2]), np.array([2])

    def store(expert, tag):
        _llc_store(tags, fill, sets, ways, 0, tag, expert)

    def lines(s):
        return tuple(tags[0, s, :fill[0, s]].tolist())
    a, b, c, d, e, f = range(1, 7)
    store(0, a)
    store(2, b)
    store(1, c)
    assert lines(0) == (a, b) and lines(1) == (c,)
    store(0, a)
    assert lines(0) == (b, a)
    store(4, d)
    assert lines(0) == (a, d)
    assert [_llc_check(tags, sets, ways, 0, t, x) for x, t in ((0, a), (2, b), (4, d))] == [
        True, False, True]
    store(6, e)
    assert lines(0) == (d, e)
    assert _llc_check(tags, sets, ways, 0, d, 4)
    store(8, f)
    assert lines(0) == (e, f) and lines(1) == (c,)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 9), st.integers(0, 5)), max_size=60),
       st.integers(1, 3), st.integers(1, 3))
def test_kernel_tag_store_equals_python_lru(ops, num_sets, ways):
    """The compiled kernel's LLC (one die) and :class:`SetAssociativeLRU` agree on any
    sequence of stores and lookups (tag = expert x 10 + slice)."""
    python = SetAssociativeLRU(num_sets, ways)
    tags = np.full((1, num_sets, ways), -1, np.int64)
    fill = np.zeros((1, num_sets), np.int64)
    for is_store, expert, piece in ops:
        tag = expert * 10 + piece
        if is_store:
            python.store(expert, tag)
            _llc_store(tags, fill, np.array([num_sets]), np.array([ways]), 0, tag, expert)
        else:
            assert _llc_check(tags, np.array([num_sets]), np.array([ways]), 0, tag,
                              expert) == python.check(expert, tag)
    for s in range(num_sets):
        assert tuple(tags[0, s, :fill[0, s]]) == python.lines(s)


def _two_die_tables(home: int) -> Tables:
    """Hand-made tables of two dies joined by link 0: LLC hit 100, miss 110, write 30 ns;
    HBM slice 40 ns; compute 7 ns; request 5 ns and data 50 ns over the link; one LLC set of
    two ways per die; every expert homed on ``home``."""
    two = np.ones(2, np.int64)
    route_len = np.array([[0, 1], [1, 0]], np.int64)
    return Tables(llc_hit_ns=100 * two, llc_miss_ns=110 * two, llc_write_ns=30 * two,
                  llc_sets=two, llc_ways=2 * two, hbm_slice_ns=40 * two,
                  local_read_ns=np.full((1, 4), 40), compute_ns=np.full((1, 4), 7),
                  hbm_of_die=np.zeros(2, np.int64), compute_of_die=np.zeros(2, np.int64),
                  route_start=np.array([0, 0, 1, 2, 2]), route_flat=np.zeros(2, np.int32),
                  route_len=route_len, request_ns=5 * route_len, data_ns=50 * route_len,
                  request_bytes=np.full(2, 16.0), home=np.full(1, home, np.int64),
                  slice_bytes=10.0, act_bytes_per_token=0.0)


def _run_twice(tables):
    kernel = LayerKernel(tables, num_links=1)
    one = np.ones(1, np.int64)
    off = Prediction(False, False, np.zeros((2, 1), np.bool_), np.zeros((2, 1), np.bool_))
    remote = (one * 0 != tables.home).astype(np.int64)
    ends = []
    t = 0
    for _ in range(2):
        t, stalled, _ = kernel.run(t, 0, Tasks(one * 0, one * 0, one, remote), off,
                                   num_experts=1, slices=1)
        assert not stalled
        ends.append(t)
    return ends, kernel


def test_second_read_of_a_slice_hits_in_the_local_llc():
    """Die 0 runs its own expert twice: first a miss (110) + HBM read (40) + compute (7), with
    an LLC fill; then a local hit (100) + compute (7)."""
    ends, kernel = _run_twice(_two_die_tables(home=0))
    assert ends == [110 + 40 + 30, 180 + 100 + 7]   # the 30 ns fill outlasts the 7 ns compute
    assert kernel.counters[Counter.LOCAL_LLC_HITS] == 1
    assert kernel.counters[Counter.LOCAL_HBM_READS] == 1


def test_second_remote_read_hits_in_the_home_dies_llc():
    """Die 0 runs die 1's expert twice. First: miss (110), request (5), home HBM read (40),
    then the home's LLC fill (30) beside the data (50) and compute (7): ends at 212. Second:
    miss (110), request (5), home LLC hit (100), data (50), compute (7): 272 more."""
    ends, kernel = _run_twice(_two_die_tables(home=1))
    assert ends == [110 + 5 + 40 + 50 + 7, 212 + 110 + 5 + 100 + 50 + 7]
    assert kernel.counters[Counter.REMOTE_HBM_READS] == 1
    assert kernel.counters[Counter.REMOTE_LLC_HITS] == 1
    assert kernel.counters[Counter.HOPS] == 2
