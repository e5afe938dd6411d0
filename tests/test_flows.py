"""Links shared by bandwidth (``shared_links``) and the time of token dispatch and combine
(``dispatch_time``), issue 17: hand-worked cases of the flow model and of the switches.

The flow cases run on a hand-made line of 4 dies (link i joins dies i and i+1), 200 ns per hop;
every expected time is worked out in its test's docstring.
"""

import math
from types import SimpleNamespace

import numpy as np
import pytest
from test_physical import comparable, run
from test_system_replay import _tiny_store

from hwmodel.params import load_wafer
from hwmodel.system.flows import (
    RERATES,
    STALE,
    LinkNetwork,
    flows_finish,
    flows_finish_told,
    flows_next,
    flows_settle,
    flows_start,
    flows_start_told,
    link_network,
    new_flow_state,
    transfer_times,
)
from hwmodel.system.lowering import lower
from hwmodel.topologies.wafer import build_wafer

HOP = 200


def line(rates):
    """Route tables of dies 0..n on a line (link i: dies i and i+1) and a flow state."""
    n = len(rates) + 1
    start, flat, length = [0], [], np.zeros((n, n), np.int64)
    for s in range(n):
        for d in range(n):
            links = list(range(min(s, d), max(s, d)))
            flat += links
            start.append(len(flat))
            length[s, d] = len(links)
    tables = SimpleNamespace(route_start=np.array(start, np.int64),
                             route_flat=np.array(flat, np.int64), route_len=length)
    network = LinkNetwork(rate=np.array(rates, np.float64),
                          hop_ns=np.full(len(rates), HOP, np.int64), dies=n)
    return tables, new_flow_state(network, 8)


def times(transfers, rates=(1000.0,), shared=True):
    """Arrivals of ``transfers`` = [(start, src, dst, bytes)] on a line of ``rates``."""
    tables, fs = line(rates)
    start, src, dst, nbytes = zip(*transfers)
    return transfer_times(start, src, dst, nbytes, tables, fs, shared=shared).tolist(), fs


def test_a_transfer_alone_takes_the_paper_time():
    """1,000,000 B over one 1,000 B/ns link: 1,000 ns of payload + 200 ns of hop."""
    assert times([(0, 0, 1, 1e6)])[0] == [1200]
    assert times([(0, 0, 1, 1e6)], shared=False)[0] == [1200]


def test_two_transfers_on_one_link_each_get_half_its_bandwidth():
    """Each gets 500 B/ns: payloads end at 2,000 ns, arrivals 2,200. Held whole (the
    paper), the second waits for the first: 1,200 and 2,400."""
    both = [(0, 0, 1, 1e6), (0, 0, 1, 1e6)]
    arrivals, fs = times(both)
    assert arrivals == [2200, 2200]
    assert fs.busy_ns[0] == 2000 and fs.queue_ns[0] == 2000 and fs.max_flows[0] == 2
    assert times(both, shared=False)[0] == [1200, 2400]


def test_a_third_transfer_starting_later_slows_both():
    """A and B (1e6 B each) from 0 ns, C (1e6 B) from 500 ns, one 1,000 B/ns link. Until 500
    ns A and B send 250,000 B each; then three share: A and B send their last 750,000 B at
    1000/3 B/ns in 2,250 ns (payload ends 2,750, arrival 2,950, instead of 2,200 without C);
    C has sent 750,000 B by then and its last 250,000 B take 250 ns alone: 3,000 + 200."""
    arrivals, fs = times([(0, 0, 1, 1e6), (0, 0, 1, 1e6), (500, 0, 1, 1e6)])
    assert arrivals == [2950, 2950, 3200]
    assert fs.busy_ns[0] == 3000
    assert fs.queue_ns[0] == 500 * 1 + 2250 * 2          # two flows, then three


def test_max_min_on_a_three_link_line():
    """Links of 1,000, 1,000 and 600 B/ns. Flows A 0->3 (links 0,1,2), B 0->1 (link 0), C
    1->2 (link 1), D 2->3 (link 2), E 1->3 (links 1,2). Link 2 is the bottleneck, 600/3 =
    200 for A, D, E; then link 0 leaves 1,000 - 200 = 800 for B and link 1 leaves 1,000 -
    200 - 200 = 600 for C."""
    tables, fs = line((1000.0, 1000.0, 600.0))
    for f, (s, d) in enumerate([(0, 3), (0, 1), (1, 2), (2, 3), (1, 3)]):
        flows_start(fs, tables.route_start, tables.route_flat, tables.route_len, 4, f, s, d,
                    1e6, 0)
    assert fs.rate[:5].tolist() == pytest.approx([200.0, 800.0, 600.0, 200.0, 200.0],
                                                 rel=1e-12)


def test_a_flow_alone_equals_the_paper_latency_on_every_route():
    """On tsmc-sow, one slice (or one request message) alone on any route arrives exactly
    when the paper's formula says: lowering's 200 x hops + ceil(bytes / (1741 x 0.9))."""
    wafer = build_wafer(load_wafer("tsmc-sow"))
    from hwmodel.models import load_model
    tables = lower(wafer, load_model("llama4-maverick"), max_tokens=1)
    n = len(tables.route_len)
    for nbytes, paper in ((tables.slice_bytes, tables.data_ns),
                          (float(tables.request_bytes[0]), tables.request_ns)):
        for s in range(n):
            for d in range(n):
                if s == d:
                    continue
                fs = new_flow_state(link_network(wafer), 1)
                got = transfer_times([0], [s], [d], [nbytes], tables, fs, shared=True)
                assert got[0] == paper[s, d], (s, d)


# ------------------------------------------------ the kernel's update against a full max-min
def max_min(routes, capacity):
    """Max-min fair rates of flows crossing ``routes[k]`` (lists of links), from the
    definition, by progressive filling one flow at a time: the link with the smallest equal
    share of what is left (lowest index on ties) fixes its unfixed flows at that share, which
    is taken from every link each of them crosses."""
    left = list(capacity)
    rate = [None] * len(routes)
    while None in rate:
        on = {link: [k for k, r in enumerate(routes) if rate[k] is None and link in r]
              for link in range(len(capacity))}
        shares = [(left[link] / len(ks), link) for link, ks in on.items() if ks]
        share, bottleneck = min(shares)
        for k in on[bottleneck]:
            rate[k] = share
            for link in routes[k]:
                left[link] -= share
    return rate


def random_network(rng, links=None, longest=4):
    """Random dies and links (``links`` of them, else 1 to 6), each ordered pair of dies a
    random route (1 to ``longest`` distinct links); link rates from a short list, so that
    shares tie."""
    dies, links = int(rng.integers(2, 6)), links or int(rng.integers(1, 7))
    start, flat = [0], []
    length = np.zeros((dies, dies), np.int64)
    for s in range(dies):
        for d in range(dies):
            route = [] if s == d else sorted(rng.choice(links, int(rng.integers(
                1, min(links, longest) + 1)), replace=False).tolist())
            flat += route
            start.append(len(flat))
            length[s, d] = len(route)
    tables = SimpleNamespace(route_start=np.array(start, np.int64),
                             route_flat=np.array(flat, np.int64), route_len=length)
    network = LinkNetwork(rate=rng.choice([600.0, 1000.0, 1000.0, 1566.9], links),
                          hop_ns=np.full(links, HOP, np.int64), dies=dies)
    return dies, tables, network


def test_flow_updates_equal_a_full_max_min_each_time():
    """Random networks, random flows started and ended in random order (several at one
    nanosecond, same routes, routes sharing no link): after each start and each end, every
    active flow's rate is exactly the full recomputation's, and the next payload end (time and
    position, first started on ties) and the links' busy and queue times are exactly those
    the active flows' bytes give, moved on with those rates."""
    rng = np.random.default_rng(17)
    for _ in range(150):
        _updates_against_the_definition(rng, random_network(rng), 40,
                                        [1e3, 5e4, 1e6, 123457.0])


def test_flow_updates_equal_a_full_max_min_in_hard_cases():
    """As above, on the cases a faster update could get wrong: zero-byte flows (they end in the
    nanosecond they start, often together), up to 60 flows at once on a line of dies, whose
    middle links most routes cross (many routes fixed in one round, shares that tie), and
    networks of many links where routes often share none (disjoint groups of routes)."""
    rng = np.random.default_rng(170)
    for case in range(120):
        if case % 3 == 0:
            dies = int(rng.integers(2, 6))
            tables, _ = line([1000.0] * (dies - 1))
            rates = rng.choice([600.0, 1000.0], dies - 1)
            network = (dies, tables, LinkNetwork(rate=rates,
                                                 hop_ns=np.full(dies - 1, HOP, np.int64),
                                                 dies=dies))
        elif case % 3 == 1:
            network = random_network(rng, links=int(rng.integers(6, 13)), longest=2)
        else:
            network = random_network(rng)
        _updates_against_the_definition(rng, network, 60, [0.0, 0.0, 16.0, 1e3, 1e6])


def _updates_against_the_definition(rng, network_case, flows, sizes):
    """Start ``flows`` flows of sizes drawn from ``sizes`` at random times and end them in
    random order; after each start and end compare ``fs`` with the definition (:func:`_check`,
    :func:`_check_link_lists`)."""
    dies, tables, network = network_case
    pairs = [(s, d) for s in range(dies) for d in range(dies) if s != d]
    fs = new_flow_state(network, flows)
    args = (tables.route_start, tables.route_flat, tables.route_len, dies)
    active, routes, remaining, busy, queue = [], {}, {}, np.zeros(len(network.rate)), \
        np.zeros(len(network.rate))
    rates, t, routes_of = {}, 0, {}
    for f in range(flows):
        ends = (len(active) > 0 and rng.random() < 0.45) or f == flows - 1
        while ends and active:
            t_end, pos = flows_next(fs)
            _advance(active, remaining, rates, routes, busy, queue, t_end - t)
            t = t_end
            assert flows_finish(fs, *args, pos, t) == active.pop(pos)
            rates = _expected_rates(active, routes, network)
            _check(fs, t, active, rates, remaining, busy, queue)
            _check_link_lists(fs, active, routes_of, tables, dies)
            ends = rng.random() < 0.3 or (f == flows - 1)
        dt = int(rng.choice([0, 0, 1, 7, 300, 2000]))
        _advance(active, remaining, rates, routes, busy, queue, dt)
        t += dt
        s, d = pairs[int(rng.integers(len(pairs)))]
        nbytes = float(rng.choice(sizes))
        flows_start(fs, *args, f, s, d, nbytes, t)
        active.append(f)
        routes[f] = [int(x) for x in tables.route_flat[
            tables.route_start[s * dies + d]:tables.route_start[s * dies + d + 1]]]
        remaining[f] = nbytes
        routes_of[f] = s * dies + d
        rates = _expected_rates(active, routes, network)
        _check(fs, t, active, rates, remaining, busy, queue)
        _check_link_lists(fs, active, routes_of, tables, dies)


def _check_link_lists(fs, active, routes_of, tables, dies):
    """Each link lists (in ``fs.link_routes``, any order) exactly the routes with an active
    flow that cross it, once each, and ``fs.route_at`` says where each route is listed."""
    links = len(fs.link_n)
    links_of = lambda r: tables.route_flat[
        tables.route_start[r]:tables.route_start[r + 1]].tolist()
    for link in range(links):
        listed = fs.link_routes[link * dies ** 2:][:fs.link_c[link]].tolist()
        crossing = {routes_of[f] for f in active if link in links_of(routes_of[f])}
        assert sorted(listed) == sorted(crossing)
        for at, r in enumerate(listed):
            assert fs.route_at[r * links + links_of(r).index(link)] == at


def test_transfer_times_equal_a_flow_by_flow_simulation():
    """Random sets of transfers (many starting in the same nanosecond, some of a fraction of
    a byte, some at a time so large that a tiny transfer ends in the nanosecond it starts)
    arrive exactly when a plain event loop says: the next event is the next start unless a
    payload ends before it, and every start and end recomputes the full max-min."""
    rng = np.random.default_rng(18)
    for case in range(150):
        dies, tables, network = random_network(rng)
        pairs = [(s, d) for s in range(dies) for d in range(dies) if s != d]
        n = int(rng.integers(1, 12))
        t0 = 2 ** 43 if case % 5 == 0 else 0
        start = t0 + np.sort(rng.choice([0, 0, 0, 1, 50, 900], n))
        chosen = [pairs[int(i)] for i in rng.integers(len(pairs), size=n)]
        nbytes = rng.choice([1e-3, 0.5, 3e3, 1e5, 1e5], n)
        fs = new_flow_state(network, n)
        got = transfer_times(start, [s for s, _ in chosen], [d for _, d in chosen], nbytes,
                             tables, fs, shared=True)
        routes = {k: [int(x) for x in tables.route_flat[
            tables.route_start[s * dies + d]:tables.route_start[s * dies + d + 1]]]
            for k, (s, d) in enumerate(chosen)}
        assert got.tolist() == _flow_by_flow(start, routes, nbytes, network)


def _flow_by_flow(start, routes, nbytes, network):
    active, remaining, rates, arrival = [], {}, {}, [0] * len(start)
    busy, queue = np.zeros(len(network.rate)), np.zeros(len(network.rate))
    clock, k = float(start[0]), 0
    while k < len(start) or active:
        if active:
            left = [remaining[f] / rates[f] if remaining[f] > 1e-6 else 0.0 for f in active]
            end, pos = math.ceil(clock + min(left)), left.index(min(left))
        if k < len(start) and (not active or start[k] < end):
            _advance(active, remaining, rates, routes, busy, queue, start[k] - clock)
            clock = float(start[k])
            active.append(k)
            remaining[k] = nbytes[k]
            k += 1
        else:
            _advance(active, remaining, rates, routes, busy, queue, end - clock)
            clock = float(end)
            f = active.pop(pos)
            arrival[f] = end + HOP * len(routes[f])
        rates = _expected_rates(active, routes, network)
    return arrival


def _expected_rates(active, routes, network):
    return dict(zip(active, max_min([routes[f] for f in active], network.rate.tolist())))


def _advance(active, remaining, rates, routes, busy, queue, dt):
    """Every active flow sends ``rate x dt`` bytes; a link crossed by n flows is busy dt and
    queued (n - 1) dt."""
    if dt <= 0:
        return
    for f in active:
        remaining[f] -= rates[f] * dt
    crossing = np.bincount([link for f in active for link in routes[f]],
                           minlength=len(busy))
    busy += np.where(crossing > 0, dt, 0)
    queue += np.where(crossing > 0, (crossing - 1) * dt, 0)


def _check(fs, t, active, rates, remaining, busy, queue):
    assert [fs.rate[f] for f in active] == [rates[f] for f in active]
    left = [remaining[f] / rates[f] if remaining[f] > 1e-6 else 0.0 for f in active]
    expected = (-1, -1) if not active else (math.ceil(t + min(left)), left.index(min(left)))
    assert tuple(flows_next(fs)) == expected
    assert fs.busy_ns.tolist() == busy.tolist() and fs.queue_ns.tolist() == queue.tolist()


# ------------------------------------------- rates deferred to the end of a nanosecond
def test_deferred_rates_tell_every_payload_end_as_rates_after_each_update():
    """Twin flow states driven as the event kernel drives them: one re-rated after every start
    and end (:func:`flows_start`, :func:`flows_finish`), the other told the next payload end
    by :func:`flows_start_told` and :func:`flows_finish_told` (rates deferred when the
    time needs none, :func:`hwmodel.system.flows.flows_arrival`) and settled
    (:func:`flows_settle`) before its clock moves. After every start and end both give the
    same next payload end, and the same position when it is the current nanosecond; whenever
    the clock moves, rates, bytes left and the links' busy and queue times are bit-identical.
    The cases a wrong shortcut would miss: many flows starting and ending in one nanosecond,
    zero-byte flows due at once (ties: the first started ends first), 16-byte flows that end
    within the next nanosecond (the time told without rates) next to slower ones that do not,
    a tiny remainder that ends in the nanosecond it starts at times near 2**43, and chains of
    ends with no time between them. Both shortcuts must be taken often, and a due flow always
    (else a shortcut is lost: slower, same results)."""
    rng = np.random.default_rng(19)
    told = {"due": 0, "next": 0}
    for case in range(100):
        dies, tables, network = random_network(rng)
        if case % 2:                                  # slow links: 16 bytes take > 1/4 ns
            network = network._replace(rate=network.rate / 40)
        t0 = 2 ** 43 if case % 5 == 0 else 0
        _deferred_against_eager(rng, dies, tables, network, t0, told)
    assert told["due"] > 500 and told["next"] > 500, told


def _deferred_against_eager(rng, dies, tables, network, t0, told):
    pairs = [(s, d) for s in range(dies) for d in range(dies) if s != d]
    flows = 50
    eager, lazy = new_flow_state(network, flows), new_flow_state(network, flows)
    args = (tables.route_start, tables.route_flat, tables.route_len, dies)
    t, f = t0, 0
    while f < flows or eager.scalars[0] > 0:
        end, pos = flows_next(eager)
        if f < flows and (pos < 0 or rng.random() < 0.5):
            when = t + int(rng.choice([0, 0, 0, 1, 2, 300]))
            if pos >= 0 and when > end:
                when = max(t, end)
        else:
            when = end
        if when > t:                                  # the clock moves: rates settled first
            flows_settle(lazy, *args)
            assert lazy.scalars[STALE] == 0
            _same_state(eager, lazy)
        rerates = lazy.scalars[RERATES]
        if when == end and pos >= 0 and (f == flows or when > t or rng.random() < 0.6):
            assert flows_finish_told(lazy, *args, flows_next(lazy)[1], when) == \
                flows_finish(eager, *args, pos, when)
        else:
            s, d = pairs[int(rng.integers(len(pairs)))]
            nbytes = float(rng.choice([0.0, 16.0, 16.0, 0.5, 1e-3, 1e3, 1e5]))
            flows_start(eager, *args, f, s, d, nbytes, when)
            arrival = flows_start_told(lazy, *args, f, s, d, nbytes, when)
            assert arrival == flows_next(lazy)[0]
            f += 1
        t = when
        arrival, expected = flows_next(lazy)[0], flows_next(eager)
        assert arrival == expected[0]
        if arrival == t:
            assert flows_next(lazy)[1] == expected[1]
        due = (lazy.remaining[lazy.active[:lazy.scalars[0]]] <= 1e-6).any()
        if due:                                       # a due flow never costs the rates
            assert lazy.scalars[RERATES] == rerates
        if lazy.scalars[RERATES] == rerates:          # told without rates
            told["due" if arrival == t else "next"] += 1
    flows_settle(lazy, *args)
    _same_state(eager, lazy)


def _same_state(eager, lazy):
    """Rates and bytes left of the active flows, the next payload end and the links' busy and
    queue times, bit for bit."""
    active = eager.active[:eager.scalars[0]]
    assert lazy.active[:lazy.scalars[0]].tolist() == active.tolist()
    assert lazy.rate[active].tolist() == eager.rate[active].tolist()
    assert lazy.remaining[active].tolist() == eager.remaining[active].tolist()
    assert tuple(flows_next(lazy)) == tuple(flows_next(eager))
    assert lazy.busy_ns.tolist() == eager.busy_ns.tolist()
    assert lazy.queue_ns.tolist() == eager.queue_ns.tolist()


# ------------------------------------------------------------------ the switches in a replay
def test_shared_links_cannot_act_without_transfers():
    """Invariance: ep on a request whose experts are all home makes no transfer, so every
    output equals paper mode's but the flow count (0) and the links' zero busy times."""
    store = _tiny_store([([0, 10], [0, 10])])
    paper = comparable(run(store, strategy="ep", max_iterations=2))
    shared = comparable(run(store, strategy="ep", max_iterations=2, shared_links=True))
    assert shared["counts"].pop("flows") == 0
    for link in shared["per_link"]:
        assert (link.pop("busy_ns"), link.pop("queue_ns"), link.pop("max_flows")) == (0, 0, 0)
    assert shared == paper


def test_shared_links_act_on_concurrent_transfers():
    """base sends a remote expert's three slices over one route at once: shared, they are
    flows (2 per slice: request and data) and the run's links report their busy time."""
    store = _tiny_store([([0], [])])
    paper = run(store, strategy="base", max_iterations=1)
    shared = run(store, strategy="base", max_iterations=1, shared_links=True)
    assert shared.counts["flows"] == 24 * 3 * 2
    assert shared.hops == paper.hops and shared.time_ns != paper.time_ns
    busy = [link["busy_ns"] for link in shared.per_link]
    assert max(busy) > 0 and "busy_ns" not in paper.per_link[0]


def _layer_phase(wafer, pairs, shared):
    """A phase of two 10,240 B transfers (one token, hidden 5120, BF16) on tsmc-sow, by hand.
    Alone, a transfer takes 200 x hops + ceil(10240 / 1566.9) = 200 x hops + 7 ns. Two whose
    routes share a link: held whole, the second waits for the first (sum of both); shared,
    each gets 783.45 B/ns there, payload ceil(13.07) = 14 ns, then its hops."""
    hops = [len(wafer.mesh.route_links(s, d)) for s, d in pairs]
    overlap = set(wafer.mesh.route_links(*pairs[0])) & set(wafer.mesh.route_links(*pairs[1]))
    if not overlap:
        return max(HOP * h + 7 for h in hops)
    return 14 + HOP * max(hops) if shared else sum(HOP * h + 7 for h in hops)


@pytest.mark.parametrize("shared", [False, True])
def test_dispatch_and_combine_times_by_hand(shared):
    """ep, one 2-token prompt on experts 0 and 10 (homes 0 and 2), prefill only,
    layer-sharded: MoE layer l's tokens start on die h = l mod 24, go h -> 0 and h -> 2
    before the experts (dispatch) and 0 -> h, 2 -> h after them (combine). ep makes no other
    transfer, so the run is longer than paper mode's by exactly the phases' times."""
    store = _tiny_store([([0, 10], [])])
    paper = run(store, strategy="ep", max_iterations=1)
    timed = run(store, strategy="ep", max_iterations=1, dispatch_time=True,
                shared_links=shared)
    wafer = build_wafer(load_wafer("tsmc-sow"))
    hosts = [layer % 24 for layer in range(1, 48, 2)]
    dispatch = sum(_layer_phase(wafer, [(h, 0), (h, 2)], shared) for h in hosts)
    combine = sum(_layer_phase(wafer, [(0, h), (2, h)], shared) for h in hosts)
    assert timed.counts["dispatch_ns"] == dispatch
    assert timed.counts["combine_ns"] == combine
    assert timed.time_ns - paper.time_ns == dispatch + combine
    assert timed.hops == paper.hops == 0


def test_dispatch_time_on_one_die_takes_no_time():
    """Data-parallel with one request served on die 0 whose experts live there (expert 0,
    home 0): dispatch and combine cross no link, so the run keeps paper mode's times."""
    store = _tiny_store([([0, 0], [0])])
    paper = run(store, strategy="ep", max_iterations=2)
    timed = run(store, strategy="ep", max_iterations=2, dispatch_time=True,
                attention_placement="data-parallel")
    assert timed.counts["dispatch_ns"] == timed.counts["combine_ns"] == 0
    assert timed.time_ns == paper.time_ns and timed.per_layer == paper.per_layer
