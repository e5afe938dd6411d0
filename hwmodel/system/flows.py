"""Links shared by bandwidth: a flow-level network model (physical mode's ``shared_links``).

In the paper a transfer holds every link of its path for its whole duration, so two transfers
that cross one link run one after the other. Here, as in SimGrid's flow model and ASTRA-sim's
analytical network back end, the transfers that cross a link at the same time share its
bandwidth **max-min fairly**, and the rates are recomputed whenever a transfer starts or ends.

A transfer of ``b`` bytes over a route is one *flow*. Its payload streams at the rate the
max-min allocation gives it; once its last byte has left, it arrives after its route's hop
latencies (the sum over its links, 200 ns each on the paper's meshes). Alone on its route, a
flow therefore takes ``ceil(b / slowest link rate) + sum(hop latency)`` ns, the paper's time.
Times are whole nanoseconds: a flow's payload ends at the first nanosecond at or after the
exact instant its remaining bytes reach zero.

Max-min by progressive filling: among the links crossed by flows whose rate is not yet fixed,
take the one whose remaining capacity divided by its unfixed flows is smallest (the
bottleneck; ties to the lowest link index); every unfixed flow crossing it gets that share and
its share is taken from every link it crosses; repeat until every flow has a rate.

Reported per link: ``busy_ns``, the time at least one flow crossed it, and ``queue_ns``, the
time integral of the flows beyond the first (two flows for 10 ns: 10 ns busy, 10 ns queued),
i.e. how long transfers waited on each other there. The event kernel
(:mod:`hwmodel.system.engine`) runs the weight transfers as flows; :func:`transfer_times` runs a
set of transfers on their own (token dispatch and combine, :mod:`hwmodel.system.dispatch`, whose
transfers all start together), with shared links or with the paper's link holding.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ..jit import njit

__all__ = ["FlowState", "LinkNetwork", "grown", "link_network", "new_flow_state",
           "transfer_phase", "transfer_times"]

# slots of FlowState.scalars (int64)
N_ACTIVE = 0         # flows in FlowState.active
FLOWS_STARTED = 1    # flows of the run
NEXT_NS = 2          # when the first payload of the active flows ends (-1: no flow)
NEXT_POS = 3         # its position in FlowState.active (-1: no flow)
N_ROUTES = 4         # routes in FlowState.routes (routes with an active flow)


class LinkNetwork(NamedTuple):
    """Per mesh link: its payload rate and its hop latency (from the wafer's D2D links); and
    the number of dies (routes are numbered ``source x dies + destination``)."""
    rate: np.ndarray              # (links,) bytes/ns: bandwidth_GBps x efficiency
    hop_ns: np.ndarray            # (links,) int64
    dies: int


def link_network(wafer) -> LinkNetwork:
    """The links of ``wafer`` (``wafer.links[i]`` is mesh link ``i``), read from each link's
    own parameters, as :mod:`hwmodel.system.lowering` reads them for the paper's latencies."""
    return LinkNetwork(
        rate=np.array([link.params.bandwidth_GBps * link.params.efficiency
                       for link in wafer.links], np.float64),
        hop_ns=np.array([int(link.params.hop_latency_ns) for link in wafer.links], np.int64),
        dies=wafer.num_dies)


class FlowState(NamedTuple):
    """The flows of a run, indexed by the chain that owns them (one flow per chain at a time),
    and the links' accounting. Made by :func:`new_flow_state`."""
    link_rate: np.ndarray         # (links,) bytes/ns
    hop_ns: np.ndarray            # (links,) int64
    link_n: np.ndarray            # (links,) flows crossing the link now
    busy_ns: np.ndarray           # (links,) float64, run total
    queue_ns: np.ndarray          # (links,) float64, run total
    max_flows: np.ndarray         # (links,) int64, most flows at once
    src: np.ndarray               # (flows,) route source die
    dst: np.ndarray               # (flows,) route destination die
    remaining: np.ndarray         # (flows,) float64 bytes still to send
    rate: np.ndarray              # (flows,) float64 bytes/ns
    tail_ns: np.ndarray           # (flows,) route's hop latencies
    next_n: np.ndarray            # (flows,) chain events to create when the flow arrives
    next_kind: np.ndarray         # (flows, 2)
    prio: np.ndarray              # (flows,) chain priority
    active: np.ndarray            # (flows,) ids of the active flows, first scalars[N_ACTIVE]
    route_n: np.ndarray           # (routes,) active flows on route s * dies + d
    routes: np.ndarray            # (routes,) the routes with active flows, first N_ROUTES
    route_slot: np.ndarray        # (routes,) a route's position in routes
    link_c: np.ndarray            # (links,) routes in routes that cross the link
    route_rate: np.ndarray        # (routes,) float64 max-min rate of a route's flows
    route_fixed: np.ndarray       # (routes,) bool scratch of max-min
    link_routes: np.ndarray       # (links x routes,) link i's active routes: first link_c[i]
                                  # entries from i x routes, in no particular order
    route_at: np.ndarray          # (routes x links,) where route r's j-th link lists r: at
                                  # r x links + j
    cap_left: np.ndarray          # (links,) float64 scratch of max-min
    unfixed: np.ndarray           # (links,) int64 scratch of max-min
    share: np.ndarray             # (links,) float64 scratch of max-min
    stale: np.ndarray             # (links,) bool scratch of max-min: share to work out anew
    used: np.ndarray              # (links,) int64 scratch of max-min
    scalars: np.ndarray           # int64 (N_ACTIVE, FLOWS_STARTED, NEXT_NS, NEXT_POS, N_ROUTES)
    clock: np.ndarray             # (1,) float64 time the flows were last advanced to


def new_flow_state(network: LinkNetwork | None, flows: int) -> FlowState:
    """Room for ``flows`` flows on ``network`` (None: an empty state, links shared off)."""
    links = 0 if network is None else len(network.rate)
    flows = 0 if network is None else flows
    routes = 0 if network is None else network.dies ** 2
    z = lambda n, dtype=np.int64: np.zeros(n, dtype)
    return FlowState(
        link_rate=z(links, np.float64) if network is None else network.rate,
        hop_ns=z(links) if network is None else network.hop_ns,
        link_n=z(links), busy_ns=z(links, np.float64), queue_ns=z(links, np.float64),
        max_flows=z(links), src=z(flows), dst=z(flows), remaining=z(flows, np.float64),
        rate=z(flows, np.float64), tail_ns=z(flows), next_n=z(flows),
        next_kind=np.zeros((flows, 2), np.int64), prio=z(flows), active=z(flows),
        route_n=z(routes), routes=z(routes), route_slot=z(routes), link_c=z(links),
        route_rate=z(routes, np.float64), route_fixed=z(routes, np.bool_),
        link_routes=z(links * routes), route_at=z(routes * links),
        cap_left=z(links, np.float64), unfixed=z(links), share=z(links, np.float64),
        stale=z(links, np.bool_), used=z(links),
        scalars=np.array([0, 0, -1, -1, 0], np.int64), clock=z(1, np.float64))


def grown(fs: FlowState, flows: int) -> FlowState:
    """``fs`` with room for ``flows`` flows, keeping the links' run totals (no flow is active
    between layers)."""
    dies = math.isqrt(len(fs.route_n))
    fresh = new_flow_state(LinkNetwork(fs.link_rate, fs.hop_ns, dies), flows)
    return fresh._replace(busy_ns=fs.busy_ns, queue_ns=fs.queue_ns, max_flows=fs.max_flows,
                          scalars=fs.scalars, clock=fs.clock)


# ------------------------------------------------------------- flows inside the kernel
@njit(cache=True, error_model="numpy", inline="always")
def flows_advance(fs, t):
    """Move the active flows' bytes and the links' busy and queue times on to ``t``."""
    dt = t - fs.clock[0]
    if dt > 0:
        active, remaining, rate = fs.active, fs.remaining, fs.rate
        for i in range(fs.scalars[N_ACTIVE]):
            f = active[i]
            remaining[f] -= rate[f] * dt
        link_n, busy, queue = fs.link_n, fs.busy_ns, fs.queue_ns
        for link in range(link_n.shape[0]):
            n = link_n[link]
            if n > 0:
                busy[link] += dt
                queue[link] += (n - 1) * dt
    fs.clock[0] = t


@njit(cache=True, error_model="numpy", inline="always")
def flows_rerate(fs, route_start, route_flat, route_len, num_dies):
    """Max-min rates of the active flows (progressive filling over the kernel's routes), then
    the next payload end (:func:`flows_next`).

    The flows of one route cross the same links, so they are fixed in the same round at the
    same rate: the filling runs over the active routes, each counting its flows, and takes a
    route's share from each of its links once per flow (the same subtractions, in the same
    number, as flow by flow). Each link keeps the list of its active routes as flows start and
    end (``fs.link_routes``), so a round touches only the bottleneck's routes; their order in
    the list does not matter, as every route fixed in a round takes the same share from its
    links. A link's share is worked out once per round it changed in, when the next round
    looks for the bottleneck (the same division of the same numbers as after each of its
    routes). The links in use stay in index order (ties to the lowest link) and a round drops
    those whose flows all have a rate."""
    cap, unfixed, share, stale, used = fs.cap_left, fs.unfixed, fs.share, fs.stale, fs.used
    routes, route_n, route_rate, fixed = fs.routes, fs.route_n, fs.route_rate, fs.route_fixed
    link_n, link_c, link_routes = fs.link_n, fs.link_c, fs.link_routes
    n_routes = fs.scalars[N_ROUTES]
    num_links = cap.shape[0]
    num_routes = route_n.shape[0]
    n_used = 0
    for link in range(num_links):
        n = link_n[link]
        if n > 0:
            cap[link] = fs.link_rate[link]
            unfixed[link] = n
            share[link] = cap[link] / n
            stale[link] = False
            used[n_used] = link
            n_used += 1
    for q in range(n_routes):
        fixed[routes[q]] = False
    left = n_routes
    while left > 0:
        best = np.inf
        bottleneck = -1
        kept = 0
        for u in range(n_used):
            link = used[u]
            if unfixed[link] > 0:
                used[kept] = link
                kept += 1
                if stale[link]:
                    share[link] = cap[link] / unfixed[link]
                    stale[link] = False
                if share[link] < best:
                    best = share[link]
                    bottleneck = link
        n_used = kept
        first = bottleneck * num_routes
        for m in range(first, first + link_c[bottleneck]):
            r = link_routes[m]
            if fixed[r]:
                continue
            fixed[r] = True
            left -= 1
            route_rate[r] = best
            n = route_n[r]
            for j in range(route_start[r], route_start[r + 1]):
                link = route_flat[j]
                for _ in range(n):
                    cap[link] -= best
                unfixed[link] -= n
                stale[link] = True
    _find_next(fs, num_dies)


@njit(cache=True, error_model="numpy", inline="always")
def _find_next(fs, num_dies):
    """Give each active flow its route's rate and store in ``fs.scalars`` when the first
    payload ends and its position in ``fs.active`` (-1, -1: none)."""
    active, remaining, rate, route_rate = fs.active, fs.remaining, fs.rate, fs.route_rate
    src, dst = fs.src, fs.dst
    best = np.inf
    pos = -1
    for i in range(fs.scalars[N_ACTIVE]):
        f = active[i]
        rate[f] = route_rate[src[f] * num_dies + dst[f]]
        left = remaining[f] / rate[f] if remaining[f] > 1e-6 else 0.0
        if left < best:
            best = left
            pos = i
    fs.scalars[NEXT_NS] = -1 if pos < 0 else math.ceil(fs.clock[0] + best)
    fs.scalars[NEXT_POS] = pos


@njit(cache=True)
def flows_next(fs):
    """``(ns, position in active)`` of the flow whose payload ends first (-1, -1: none), as
    the last start or end of a flow left it."""
    return fs.scalars[NEXT_NS], fs.scalars[NEXT_POS]


@njit(cache=True)
def flows_start(fs, route_start, route_flat, route_len, num_dies, f, s, d, nbytes, t):
    """Start flow ``f`` of ``nbytes`` from die ``s`` to die ``d`` at ``t``; rates anew."""
    _add_flow(fs, route_start, route_flat, route_len, num_dies, f, s, d, nbytes, t)
    flows_rerate(fs, route_start, route_flat, route_len, num_dies)


@njit(cache=True, inline="always")
def _add_flow(fs, route_start, route_flat, route_len, num_dies, f, s, d, nbytes, t):
    """:func:`flows_start` but the rates."""
    flows_advance(fs, t)
    fs.src[f] = s
    fs.dst[f] = d
    fs.remaining[f] = nbytes
    r = s * num_dies + d
    new_route = fs.route_n[r] == 0
    if new_route:                                 # the route joins the active ones
        fs.route_slot[r] = fs.scalars[N_ROUTES]
        fs.routes[fs.scalars[N_ROUTES]] = r
        fs.scalars[N_ROUTES] += 1
    fs.route_n[r] += 1
    tail = 0
    num_links = fs.link_n.shape[0]
    for j in range(route_len[s, d]):
        link = route_flat[route_start[r] + j]
        tail += fs.hop_ns[link]
        fs.link_n[link] += 1
        if new_route:                             # list the route on the link
            fs.link_routes[link * len(fs.route_n) + fs.link_c[link]] = r
            fs.route_at[r * num_links + j] = fs.link_c[link]
            fs.link_c[link] += 1
        fs.max_flows[link] = max(fs.max_flows[link], fs.link_n[link])
    fs.tail_ns[f] = tail
    fs.active[fs.scalars[N_ACTIVE]] = f
    fs.scalars[N_ACTIVE] += 1
    fs.scalars[FLOWS_STARTED] += 1


@njit(cache=True)
def flows_finish(fs, route_start, route_flat, route_len, num_dies, pos, t):
    """End the payload of the active flow at ``pos`` at ``t``; rates anew. Returns its id."""
    flows_advance(fs, t)
    f = fs.active[pos]
    n_act = fs.scalars[N_ACTIVE] - 1
    for i in range(pos, n_act):                  # keep the start order (deterministic ties)
        fs.active[i] = fs.active[i + 1]
    fs.scalars[N_ACTIVE] = n_act
    s, d = fs.src[f], fs.dst[f]
    r = s * num_dies + d
    fs.route_n[r] -= 1
    gone = fs.route_n[r] == 0
    if gone:                                      # the route leaves the active ones
        last = fs.routes[fs.scalars[N_ROUTES] - 1]
        fs.routes[fs.route_slot[r]] = last
        fs.route_slot[last] = fs.route_slot[r]
        fs.scalars[N_ROUTES] -= 1
    for j in range(route_len[s, d]):
        link = route_flat[route_start[r] + j]
        fs.link_n[link] -= 1
        if gone:
            _unlist(fs, route_start, route_flat, route_len, num_dies, r, j, link)
    flows_rerate(fs, route_start, route_flat, route_len, num_dies)
    return f


@njit(cache=True, inline="always")
def _unlist(fs, route_start, route_flat, route_len, num_dies, r, j, link):
    """Take route ``r`` (its ``j``-th link is ``link``) off the link's list of active routes:
    the list's last route moves into its place."""
    num_links = fs.link_n.shape[0]
    first = link * len(fs.route_n)
    at = fs.route_at[r * num_links + j]
    fs.link_c[link] -= 1
    last = fs.link_routes[first + fs.link_c[link]]
    fs.link_routes[first + at] = last
    s, d = last // num_dies, last % num_dies
    for k in range(route_len[s, d]):              # where the moved route lists this link
        if route_flat[route_start[last] + k] == link:
            fs.route_at[last * num_links + k] = at
            break


# ------------------------------------------------------------- a set of transfers on its own
@njit(cache=True)
def _together(start, nbytes, fs, k):
    """End (exclusive) of the transfers from ``k`` that may start as one: on idle links, at
    ``start[k]``, none of them able to end in that nanosecond. Between their starts no flow
    can end (each has its bytes left, at most the fastest link's rate), so the loop of
    :func:`_transfers` would start them one after the other, and only the last rates count."""
    if fs.scalars[N_ACTIVE] > 0:
        return k + 1
    t0 = start[k]
    fastest = fs.link_rate.max()
    last = k
    while (last < start.shape[0] and start[last] == t0 and nbytes[last] > 1e-6
           and t0 + nbytes[last] / fastest > t0):
        last += 1
    return max(last, k + 1)


@njit(cache=True)
def _transfers(start, src, dst, nbytes, route_start, route_flat, route_len, num_dies, fs,
               shared, arrival):
    n = src.shape[0]
    if not shared:
        # the paper's link holding, in list order: a transfer starts when every link of its
        # route is free and holds them all for its whole time
        release = np.zeros(fs.link_rate.shape[0], np.int64)
        for k in range(n):
            s, d = src[k], dst[k]
            first = route_start[s * num_dies + d]
            begin = start[k]
            tail = 0
            slowest = np.inf
            for j in range(route_len[s, d]):
                link = route_flat[first + j]
                begin = max(begin, release[link])
                tail += fs.hop_ns[link]
                slowest = min(slowest, fs.link_rate[link])
            arrival[k] = begin + tail + math.ceil(nbytes[k] / slowest)
            for j in range(route_len[s, d]):
                release[route_flat[first + j]] = arrival[k]
        return
    fs.clock[0] = start[0]
    k = 0
    while k < n or fs.scalars[N_ACTIVE] > 0:
        t, pos = flows_next(fs)
        if k < n and (pos < 0 or start[k] < t):
            last = _together(start, nbytes, fs, k)
            for j in range(k, last):
                _add_flow(fs, route_start, route_flat, route_len, num_dies, j, src[j], dst[j],
                          nbytes[j], start[j])
            flows_rerate(fs, route_start, route_flat, route_len, num_dies)
            k = last
        else:
            f = flows_finish(fs, route_start, route_flat, route_len, num_dies, pos, t)
            arrival[f] = t + fs.tail_ns[f]


def transfer_times(start, src, dst, nbytes, tables, fs: FlowState, *,
                   shared: bool) -> np.ndarray:
    """Arrival time (ns) of each transfer ``k``: ``nbytes[k]`` bytes from die ``src[k]`` to die
    ``dst[k]`` (different dies), sent at ``start[k]`` (non-decreasing), on the routes of
    ``tables`` (:class:`~hwmodel.system.lowering.Tables`).

    With ``shared``, flows share the links max-min (their busy and queue times are added to
    ``fs``, which needs room for ``len(src)`` flows); else the paper's link holding, in list
    order.
    """
    src = np.asarray(src, np.int64)
    arrival = np.zeros(len(src), np.int64)
    if len(src):
        _transfers(np.asarray(start, np.int64), src, np.asarray(dst, np.int64),
                   np.asarray(nbytes, np.float64), tables.route_start, tables.route_flat,
                   tables.route_len, len(tables.route_len), fs, shared, arrival)
    return arrival


def transfer_phase(t0: int, src, dst, nbytes, tables, fs: FlowState, *, shared: bool) -> int:
    """When the last of a set of transfers that all start at ``t0`` arrives
    (:func:`transfer_times`); ``t0`` when there are none."""
    arrival = transfer_times(np.full(len(src), t0), src, dst, nbytes, tables, fs,
                             shared=shared)
    return int(max(t0, arrival.max(initial=t0)))
