"""The compiled event kernel against a plain-Python event simulation of the same rules, on
random layers with contention for links, HBMs and LLC ports (issue 18).

The reference below keeps events as the study's simulator does: Python objects in CPython's
``heapq``, compared by their *current* attributes (an admitted event's raised time is seen in
the wait queues it is lazily removed from), wait queues ordered by (priority descending, time,
arrival), the pending queue by time alone, the released resources' head waiters tried in time
order (docs/replay.md, "Choices the paper leaves open"; the engine's module docstring). The
kernel keeps the same orders packed into integers and hand-inlined heaps; any difference in a
sift, a tie or a lazy removal changes an end time, a span or a counter here.
"""

import heapq
import itertools
import random
from collections import defaultdict

import numpy as np
import pytest
from kernel_tables import make_tables

from hwmodel.system.engine import (
    WQ_SHIFT,
    Counter,
    LayerKernel,
    Prediction,
    Tasks,
    _hpop,
    _hpush,
    _wait_key,
    _wpush,
)
from hwmodel.system.flows import (
    FLOWS_STARTED,
    RERATES,
    LinkNetwork,
    flows_finish,
    flows_next,
    flows_start,
    new_flow_state,
)

(LOOKUP, LOCAL_READ, REQ, RLLC_READ, RHBM_READ, DATA, COMPUTE, LLC_STORE, RLLC_STORE,
 DONE, NET) = range(11)
STORES = (LLC_STORE, RLLC_STORE)


class _Event:
    __slots__ = ("admitted", "chain", "kind", "res", "time")

    def __init__(self, time, kind, chain, res):
        self.time, self.kind, self.chain, self.res = time, kind, chain, res
        self.admitted = False


class _Waiting:
    """A wait-queue entry: (priority descending, current time, arrival)."""
    __slots__ = ("ev", "seq")

    def __init__(self, ev, seq):
        self.ev, self.seq = ev, seq

    def __lt__(self, other):
        a, b = self.ev, other.ev
        if a.chain["prio"] != b.chain["prio"]:
            return a.chain["prio"] > b.chain["prio"]
        if a.time != b.time:
            return a.time < b.time
        return self.seq < other.seq


class _Pending:
    """A pending-queue entry: the time it was pushed with, alone."""
    __slots__ = ("ev", "t")

    def __init__(self, t, ev):
        self.t, self.ev = t, ev

    def __lt__(self, other):
        return self.t < other.t


class _Head:
    """A released resource's head waiter: compared by the event's current time."""
    __slots__ = ("ev",)

    def __init__(self, ev):
        self.ev = ev

    def __lt__(self, other):
        return self.ev.time < other.ev.time


class Reference:
    """The paper path of the event kernel (prediction off), one layer per :meth:`run`; with a
    ``network``, links shared by bandwidth: a request or data transfer holds no link and is a
    flow, re-rated after every flow start and end (:func:`flows_start`,
    :func:`flows_finish`), and the network's next payload end is one pending entry, pushed
    whenever that time changes, skipped when popped after it changed again."""

    def __init__(self, tables, num_links, network=None):
        self.tb = tables
        self.n = len(tables.llc_sets)
        self.network = network
        self.fs = None if network is None else new_flow_state(network, 4096)
        self.avail = [True] * (3 * self.n + num_links)
        self.rtime = [0] * (3 * self.n + num_links)
        self.lines = defaultdict(list)              # (die, set) -> tags, oldest first
        self.counts = defaultdict(int)

    def _route(self, s, d):
        first = int(self.tb.route_start[s * self.n + d])
        return [int(x) for x in self.tb.route_flat[first:first + int(self.tb.route_len[s, d])]]

    def _resources(self, kind, d, h):
        n = self.n
        return {LOOKUP: [d], LOCAL_READ: [n + d], RHBM_READ: [n + h], COMPUTE: [2 * n + d],
                LLC_STORE: [d], RLLC_READ: [h], RLLC_STORE: [h],
                REQ: [3 * n + x for x in self._route(d, h)],
                DATA: [3 * n + x for x in self._route(h, d)], DONE: []}[kind] \
            if self.network is None or kind not in (REQ, DATA) else []

    def _hit(self, die, expert, tag):
        return tag in self.lines[(die, expert % int(self.tb.llc_sets[die]))]

    def _store(self, die, expert, tag):
        line = self.lines[(die, expert % int(self.tb.llc_sets[die]))]
        if tag in line:
            line.remove(tag)
        elif len(line) >= int(self.tb.llc_ways[die]):
            line.pop(0)
        line.append(tag)

    def run(self, t0, layer, tasks, num_experts, slices):
        tb, n = self.tb, self.n
        pend, queues, seq = [], defaultdict(list), itertools.count()
        self.pending = self.waiting = 0
        span_lo, span_hi = [-1] * n, [-1] * n

        def add(ev):
            if all(self.avail[r] for r in ev.res):
                for r in ev.res:
                    self.avail[r] = False
                    ev.time = max(ev.time, self.rtime[r])
                ev.admitted = True
                heapq.heappush(pend, _Pending(ev.time, ev))
            else:
                for r in ev.res:
                    heapq.heappush(queues[r], _Waiting(ev, next(seq)))
                    self.waiting += 1

        chains = []
        for e, d, tok, prio in zip(*(c.tolist() for c in tasks)):
            for s in range(slices):
                chain = {"d": d, "e": e, "s": s, "tok": tok, "h": int(tb.home[e]),
                         "prio": prio, "id": len(chains)}
                chains.append(chain)
                self.pending += 1
                add(_Event(t0, LOOKUP, chain, [d]))
        cur, done = t0, False
        net, net_time, fs = _Event(-1, NET, None, []), -1, self.fs
        flow_args = (tb.route_start, tb.route_flat, tb.route_len, n)
        while pend:
            entry = heapq.heappop(pend)
            ev = entry.ev
            if ev is net and entry.t != net_time:
                continue                                  # superseded
            if ev is net:
                ev.time = entry.t
            self.counts["events"] += 1
            prev, t = cur, ev.time
            if ev is net:                                 # a flow's payload has ended
                net_time = -1
                f = flows_finish(fs, *flow_args, flows_next(fs)[1], t)
                ev.chain = chains[f]
            ch = ev.chain
            d, e, h = ch["d"], ch["e"], ch["h"]
            tag = (layer * num_experts + e) * slices + ch["s"]
            lat, new = 0, []
            if ev.kind == LOOKUP:
                ch["start"] = t
                if d == h:
                    ch["kind"] = "hit" if self._hit(d, e, tag) else "local"
                else:
                    ch["kind"] = "rllc" if self._hit(h, e, tag) else "rhbm"
                lat = int(tb.llc_hit_ns[d] if ch["kind"] == "hit" else tb.llc_miss_ns[d])
                new = [{"hit": COMPUTE, "local": LOCAL_READ}.get(ch["kind"], REQ)]
                self.counts["hits"] += ch["kind"] == "hit"
            elif ev.kind == REQ:
                self.counts["hops"] += int(tb.route_len[d, h])
                lat = int(tb.request_ns[d, h])
                new = [RLLC_READ if ch["kind"] == "rllc" else RHBM_READ]
            elif ev.kind == RLLC_READ:
                lat, new = int(tb.llc_hit_ns[h]), [DATA]
                self.counts["remote_llc"] += 1
            elif ev.kind == RHBM_READ:
                lat, new = int(tb.hbm_slice_ns[h]), [RLLC_STORE, DATA]
                self.counts["remote_hbm"] += 1
            elif ev.kind == DATA:
                lat, new = int(tb.data_ns[h, d]), [COMPUTE]
            elif ev.kind == LOCAL_READ:
                lat = int(tb.local_read_ns[tb.hbm_of_die[d], ch["tok"]])
                new = [LLC_STORE, COMPUTE]
                self.counts["local_hbm"] += 1
            elif ev.kind == COMPUTE:
                lat, new = int(tb.compute_ns[tb.compute_of_die[d], ch["tok"]]), [DONE]
            elif ev.kind in STORES:
                die = d if ev.kind == LLC_STORE else h
                self._store(die, e, tag)
                lat, new = int(tb.llc_write_ns[die]), [DONE]
            elif ev is net:
                lat, new = int(self.network.hop_ns[ch["route"]].sum()), ch["after"]
            else:
                if span_lo[d] < 0 or ch["start"] < span_lo[d]:
                    span_lo[d] = ch["start"]
                span_hi[d] = max(span_hi[d], t)
                self.pending -= 1
                done = self.pending == 0 and self.waiting == 0 and (
                    not pend or self.network is not None)
            if self.network is not None and (ev.kind in (REQ, DATA) or ev is net):
                if ev is not net:                         # the transfer becomes a flow
                    s, dst = (d, h) if ev.kind == REQ else (h, d)
                    size = tb.request_bytes[d] if ev.kind == REQ else tb.slice_bytes
                    ch["route"], ch["after"] = self._route(s, dst), new
                    flows_start(fs, *flow_args, ch["id"], s, dst, size, t)
                    lat, new = 0, []
                if flows_next(fs)[0] >= 0 and flows_next(fs)[0] != net_time:
                    net_time = int(flows_next(fs)[0])
                    heapq.heappush(pend, _Pending(net_time, net))
            for kind in new:
                self.pending += kind in STORES
                add(_Event(t + lat, kind, ch, self._resources(kind, d, h)))
            if done:
                cur = t
                break
            sys_t = t + lat
            cur = max(sys_t, prev)
            for r in ev.res:
                self.avail[r] = True
                self.rtime[r] = max(self.rtime[r], sys_t)
            heads = []
            for r in ev.res:
                while queues[r]:
                    w = queues[r][0].ev
                    if w.admitted:
                        heapq.heappop(queues[r])
                        self.waiting -= 1
                        continue
                    heapq.heappush(heads, _Head(w))
                    break
            while heads:
                w = heapq.heappop(heads).ev
                if w.admitted or not all(self.avail[r] for r in w.res):
                    continue
                for r in w.res:
                    self.avail[r] = False
                    w.time = max(w.time, self.rtime[r])
                w.admitted = True
                w.time = max(w.time, sys_t)
                heapq.heappush(pend, _Pending(w.time, w))
        return cur, not done, span_lo, span_hi


def _line_tables(rng, dies):
    """A line of ``dies`` dies, links i -> i+1 (index i) and i+1 -> i (dies - 1 + i), small
    latencies drawn from few values so that times tie often; two-way LLCs."""
    routes = {(s, d): (list(range(s, d)) if d > s else
                       [dies - 1 + i - 1 for i in range(s, d, -1)])
              for s in range(dies) for d in range(dies)}
    hops = dies
    return make_tables(
        dies, routes, home=rng.integers(0, dies, 12),
        llc_hit=int(rng.choice([3, 5])), llc_miss=int(rng.choice([4, 5])), llc_write=2,
        request_by_hops=tuple(int(x) for x in np.cumsum(rng.choice([1, 2], hops)) - 1),
        data_by_hops=tuple(int(x) for x in np.cumsum(rng.choice([5, 10], hops)) - 5),
        hbm_slice=int(rng.choice([8, 10])), local_read=tuple(rng.choice([8, 12], 8)),
        compute=tuple(rng.choice([3, 6], 8)), llc_sets=int(rng.choice([1, 2])), llc_ways=2)


def _run_random_layers(rng, kernel, ref, tables, dies, experts, slices):
    """Six random layers, each run by ``kernel`` and ``ref`` from the same start: equal end,
    stall and per-die spans."""
    off = Prediction(False, False, np.zeros((dies, experts), np.bool_),
                     np.zeros((dies, experts), np.bool_))
    t = 0
    for layer in range(6):
        k = int(rng.integers(1, 30))
        e = rng.integers(0, experts, k)
        d = rng.integers(0, dies, k)
        tasks = Tasks(e, d, rng.integers(1, 8, k), (d != tables.home[e]).astype(np.int64))
        end, stalled, _ = kernel.run(t, layer % 3, tasks, off, num_experts=experts,
                                     slices=slices)
        ref_end, ref_stalled, lo, hi = ref.run(t, layer % 3, tasks, experts, slices)
        assert (end, stalled) == (ref_end, ref_stalled)
        assert kernel.outputs.span_lo.tolist() == lo
        assert kernel.outputs.span_hi.tolist() == hi
        t = end


@pytest.mark.parametrize("seed", range(12))
def test_kernel_equals_the_heapq_reference_on_random_layers(seed):
    rng = np.random.default_rng(seed)
    dies, experts, slices = int(rng.integers(2, 6)), 12, int(rng.integers(1, 4))
    tables = _line_tables(rng, dies)
    links = 2 * (dies - 1)
    kernel, ref = LayerKernel(tables, links), Reference(tables, links)
    _run_random_layers(rng, kernel, ref, tables, dies, experts, slices)
    c = kernel.counters
    assert c[Counter.EVENTS] == ref.counts["events"]
    assert c[Counter.HOPS] == ref.counts["hops"]
    assert c[Counter.LOCAL_LLC_HITS] == ref.counts["hits"]
    assert c[Counter.REMOTE_LLC_HITS] == ref.counts["remote_llc"]
    assert c[Counter.REMOTE_HBM_READS] == ref.counts["remote_hbm"]
    assert c[Counter.LOCAL_HBM_READS] == ref.counts["local_hbm"]
    assert kernel.release_ns.tolist() == ref.rtime


@pytest.mark.parametrize("seed", range(6))
def test_pending_heap_pops_as_heapq_does_with_ties(seed):
    """The pending queue: times only, equal times leave in heapq's order, not in id order."""
    rng = random.Random(seed)
    ht, hi = np.zeros(200, np.int64), np.zeros(200, np.int64)
    n, ref, popped, ref_popped = 0, [], [], []
    for i in range(400):
        if ref and rng.random() < 0.45:
            ev, n = _hpop(ht, hi, n)
            popped.append(int(ev))
            ref_popped.append(heapq.heappop(ref).ev)
        elif n < 200:
            t = rng.randrange(4)                      # few distinct times: many ties
            n = _hpush(ht, hi, n, t, i)
            heapq.heappush(ref, _Pending(t, i))
    assert popped == ref_popped
    assert len({p for p in popped}) == len(popped)


def test_wait_key_orders_priority_then_time():
    """Priority 1 (remote) before 0, then earlier times; and a waiter's entries sort as
    (key, event, place in its resource list)."""
    times = [0, 1, 5, 5, 10**15]
    keys = sorted((_wait_key(p, t), -p, t) for p in (0, 1) for t in times)
    assert [k[1:] for k in keys] == sorted((-p, t) for p in (0, 1) for t in times)
    ev_key = np.array([_wait_key(0, 7), _wait_key(1, 9), _wait_key(0, 7)], np.int64)
    wq_e, wq_n = np.zeros((1, 8), np.int64), np.zeros(1, np.int64)
    for ev in (2, 0, 1):
        _wpush(ev_key, wq_e, wq_n, 0, ev << WQ_SHIFT)
    assert wq_e[0, 0] >> WQ_SHIFT == 1                # priority 1 heads the queue
    assert sorted(wq_e[0, :3].tolist(), key=lambda x: (ev_key[x >> WQ_SHIFT], x)) == [
        1 << WQ_SHIFT, 0, 2 << WQ_SHIFT]


def test_priorities_other_than_0_and_1_are_refused():
    tables = make_tables(2, {(0, 1): [0], (1, 0): [1]}, home=[0, 1], request_by_hops=(0, 1),
                         data_by_hops=(0, 1))
    kernel = LayerKernel(tables, 2)
    off = Prediction(False, False, np.zeros((2, 2), np.bool_), np.zeros((2, 2), np.bool_))
    tasks = Tasks(np.array([0]), np.array([1]), np.array([1]), np.array([2]))
    with pytest.raises(ValueError, match="0 or 1"):
        kernel.run(0, 0, tasks, off, num_experts=2, slices=1)


@pytest.mark.parametrize("seed", range(10))
def test_shared_links_kernel_equals_a_reference_rerating_every_update(seed):
    """Links shared by bandwidth (issue 17): the kernel re-rates the flows at most once per
    nanosecond when it can tell the next payload end without the rates, yet it pops, times
    and counts exactly as the reference, which re-rates after every flow start and end and
    pushes the network's entry after each. Slow and fast links, zero- and 16-byte requests,
    small slices and hop latencies of 0 to 2 ns: many flows start and end in one nanosecond,
    requests end within the next one, zero-byte ones at once. A push deferred (the pending
    heap's shape, hence the order of its ties, changes), a re-rate after the clock moved, or
    a wrong shortcut changes an end, a span, a count or a link's busy or queue time here."""
    rng = np.random.default_rng(100 + seed)
    dies, experts, slices = int(rng.integers(2, 6)), 12, int(rng.integers(1, 4))
    tables = _line_tables(rng, dies)._replace(
        request_bytes=rng.choice([0.0, 16.0, 16.0], dies),
        slice_bytes=float(rng.choice([0.0, 40.0, 1e3])))
    links = 2 * (dies - 1)
    network = LinkNetwork(rate=rng.choice([8.0, 64.0, 1000.0], links),
                          hop_ns=rng.choice([0, 1, 2], links).astype(np.int64), dies=dies)
    kernel, ref = LayerKernel(tables, links, network), Reference(tables, links, network)
    _run_random_layers(rng, kernel, ref, tables, dies, experts, slices)
    c, fs = kernel.counters, kernel.flows
    assert c[Counter.EVENTS] == ref.counts["events"]
    assert c[Counter.HOPS] == ref.counts["hops"]
    assert c[Counter.REMOTE_LLC_HITS] == ref.counts["remote_llc"]
    assert c[Counter.REMOTE_HBM_READS] == ref.counts["remote_hbm"]
    assert kernel.release_ns.tolist() == ref.rtime
    assert fs.busy_ns.tolist() == ref.fs.busy_ns.tolist()
    assert fs.queue_ns.tolist() == ref.fs.queue_ns.tolist()
    assert fs.max_flows.tolist() == ref.fs.max_flows.tolist()
    assert fs.scalars[FLOWS_STARTED] == ref.fs.scalars[FLOWS_STARTED] > 0
    assert fs.scalars[RERATES] < ref.fs.scalars[RERATES]     # the shortcut was taken
