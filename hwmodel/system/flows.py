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
(:mod:`hwmodel.system.engine`) runs the weight transfers as flows, computing the rates only when
the next payload end cannot be told without them (:func:`flows_arrival`; the results are those
of rates recomputed at every start and end); :func:`transfer_times` runs a
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
STALE = 5            # 1: the rates predate the last flow starts or ends (flows_arrival)
RERATES = 6          # max-min computations of the run (flows_rerate)


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


# rows of FlowState's packed tables (one array per kind of item and dtype: a compiled function
# pays an atomic reference count per array of the state it receives, so the state has few)
L_RATE, L_BUSY, L_QUEUE, L_CAP, L_SHARE = range(5)                   # links_f (float64)
L_HOP, L_N, L_MAX, L_ROUTES, L_UNFIXED, L_USED, L_AT = range(7)      # links_i (int64)
F_REMAINING, F_RATE = range(2)                                       # flows_f (float64)
F_SRC, F_DST, F_TAIL, F_NEXT_N, F_KIND, F_KIND1, F_PRIO, F_ACTIVE = range(8)  # flows_i
R_N, R_LIST, R_SLOT, R_FIXED = range(4)                              # routes_i (int64)


class FlowState(NamedTuple):
    """The flows of a run, indexed by the chain that owns them (one flow per chain at a time),
    and the links' accounting, in a few packed tables (rows named by the ``L_``, ``F_`` and
    ``R_`` constants; the properties give Python readers each row by name). Made by
    :func:`new_flow_state`."""
    links_f: np.ndarray     # (5, links) float64: rate (bytes/ns), busy_ns and queue_ns (run
                            # totals), max-min scratch (capacity left; the share of the i-th
                            # link in use, at i)
    links_i: np.ndarray     # (7, links) int64: hop latency, flows crossing the link now, most
                            # flows at once, active routes listed (link_c), max-min scratch
                            # (unfixed flows, the links in use in index order, a link's
                            # position among them)
    flows_f: np.ndarray     # (2, flows) float64: bytes still to send, rate (bytes/ns)
    flows_i: np.ndarray     # (8, flows) int64: route source and destination die, route's hop
                            # latencies, chain events to create on arrival (count, two
                            # kinds), chain priority; ids of the active flows in start order
    route_rate: np.ndarray  # (routes,) float64 max-min rate of a route's flows
    routes_i: np.ndarray    # (4, routes) int64: active flows on route s x dies + d; the
                            # routes with active flows (first N_ROUTES); a route's position
                            # there; max-min scratch (rate fixed)
    lists: np.ndarray       # (2, links x routes) int64: link i's active routes, first
                            # link_c[i] entries from i x routes in no particular order; where
                            # route r's j-th link lists r, at r x links + j
    scalars: np.ndarray     # int64 (N_ACTIVE, FLOWS_STARTED, NEXT_NS, NEXT_POS, N_ROUTES,
                            # STALE, RERATES)
    clock: np.ndarray       # (3,) float64 time the flows were last advanced to; the fastest
                            # link's rate (bytes/ns); at most the fewest bytes an active flow
                            # has left (flows_advance sets it, a start lowers it)

    # rows by name, for Python readers
    link_rate = property(lambda fs: fs.links_f[L_RATE])
    busy_ns = property(lambda fs: fs.links_f[L_BUSY])
    queue_ns = property(lambda fs: fs.links_f[L_QUEUE])
    hop_ns = property(lambda fs: fs.links_i[L_HOP])
    link_n = property(lambda fs: fs.links_i[L_N])
    max_flows = property(lambda fs: fs.links_i[L_MAX])
    link_c = property(lambda fs: fs.links_i[L_ROUTES])
    remaining = property(lambda fs: fs.flows_f[F_REMAINING])
    rate = property(lambda fs: fs.flows_f[F_RATE])
    src = property(lambda fs: fs.flows_i[F_SRC])
    dst = property(lambda fs: fs.flows_i[F_DST])
    tail_ns = property(lambda fs: fs.flows_i[F_TAIL])
    active = property(lambda fs: fs.flows_i[F_ACTIVE])
    route_n = property(lambda fs: fs.routes_i[R_N])
    link_routes = property(lambda fs: fs.lists[0])
    route_at = property(lambda fs: fs.lists[1])


def new_flow_state(network: LinkNetwork | None, flows: int) -> FlowState:
    """Room for ``flows`` flows on ``network`` (None: an empty state, links shared off)."""
    links = 0 if network is None else len(network.rate)
    flows = 0 if network is None else flows
    routes = 0 if network is None else network.dies ** 2
    links_f = np.zeros((5, links))
    links_i = np.zeros((7, links), np.int64)
    if network is not None:
        links_f[L_RATE] = network.rate
        links_i[L_HOP] = network.hop_ns
    return FlowState(links_f=links_f, links_i=links_i, flows_f=np.zeros((2, flows)),
                     flows_i=np.zeros((8, flows), np.int64), route_rate=np.zeros(routes),
                     routes_i=np.zeros((4, routes), np.int64),
                     lists=np.zeros((2, links * routes), np.int64),
                     scalars=np.array([0, 0, -1, -1, 0, 0, 0], np.int64),
                     clock=np.array([0.0, links_f[L_RATE].max(initial=0.0), np.inf]))


def grown(fs: FlowState, flows: int) -> FlowState:
    """``fs`` with room for ``flows`` flows, keeping the links' run totals (no flow is active
    between layers, so the links' and routes' tables are kept as they are)."""
    return fs._replace(flows_f=np.zeros((2, flows)),
                       flows_i=np.zeros((8, flows), np.int64))


# ------------------------------------------------------------- flows inside the kernel
@njit(cache=True, error_model="numpy", inline="always")
def flows_advance(fs, t):
    """Move the active flows' bytes and the links' busy and queue times on to ``t``."""
    clock = fs.clock
    dt = t - clock[0]
    if dt > 0:
        flows_f, flows_i, links_f, links_i = fs.flows_f, fs.flows_i, fs.links_f, fs.links_i
        least = np.inf
        for i in range(fs.scalars[N_ACTIVE]):
            f = flows_i[F_ACTIVE, i]
            remaining = flows_f[F_REMAINING, f] - flows_f[F_RATE, f] * dt
            flows_f[F_REMAINING, f] = remaining
            least = min(least, remaining)
        clock[2] = least
        for link in range(links_i.shape[1]):
            n = links_i[L_N, link]
            if n > 0:
                links_f[L_BUSY, link] += dt
                links_f[L_QUEUE, link] += (n - 1) * dt
    clock[0] = t


@njit(cache=True, error_model="numpy", inline="always")
def flows_rerate(fs, route_start, route_flat, route_len, num_dies):
    """Max-min rates of the active flows (progressive filling over the kernel's routes), then
    the next payload end (:func:`flows_next`).

    The flows of one route cross the same links, so they are fixed in the same round at the
    same rate: the filling runs over the active routes, each counting its flows, and takes a
    route's share from each of its links once per flow (the same subtractions, in the same
    number, as flow by flow). Each link keeps the list of its active routes as flows start and
    end (``fs.lists``), so a round touches only the bottleneck's routes; their order in the
    list does not matter, as every route fixed in a round takes the same share from its links.
    The shares of the links in use sit in one row in link index order; a link whose flows all
    have a rate shows an infinite share, so the bottleneck is the first smallest entry of the
    row (ties to the lowest link). A link's share is worked out anew after each route fixed on
    it (its last value is the division of the round's final numbers, as flow by flow)."""
    links_f, links_i, routes_i, route_rate, lists = (fs.links_f, fs.links_i, fs.routes_i,
                                                     fs.route_rate, fs.lists)
    fs.scalars[STALE] = 0
    fs.scalars[RERATES] += 1
    n_routes = fs.scalars[N_ROUTES]
    num_links = links_i.shape[1]
    num_routes = routes_i.shape[1]
    n_used = 0
    for link in range(num_links):                 # the links in use, in index order
        n = links_i[L_N, link]
        if n > 0:
            links_f[L_CAP, link] = links_f[L_RATE, link]
            links_i[L_UNFIXED, link] = n
            links_f[L_SHARE, n_used] = links_f[L_CAP, link] / n
            links_i[L_AT, link] = n_used
            links_i[L_USED, n_used] = link
            n_used += 1
    for q in range(n_routes):
        routes_i[R_FIXED, routes_i[R_LIST, q]] = 0
    left = n_routes
    while left > 0:
        best = np.inf                             # the bottleneck: first smallest share
        at = 0
        for u in range(n_used):
            share = links_f[L_SHARE, u]
            if share < best:
                best = share
                at = u
        bottleneck = links_i[L_USED, at]
        first = bottleneck * num_routes
        for m in range(first, first + links_i[L_ROUTES, bottleneck]):
            r = lists[0, m]
            if routes_i[R_FIXED, r]:
                continue
            routes_i[R_FIXED, r] = 1
            left -= 1
            route_rate[r] = best
            n = routes_i[R_N, r]
            for j in range(route_start[r], route_start[r + 1]):
                link = route_flat[j]
                cap = links_f[L_CAP, link]
                for _ in range(n):
                    cap -= best
                links_f[L_CAP, link] = cap
                unfixed = links_i[L_UNFIXED, link] - n
                links_i[L_UNFIXED, link] = unfixed
                links_f[L_SHARE, links_i[L_AT, link]] = cap / unfixed if unfixed > 0 else np.inf
    _find_next(fs, num_dies)


@njit(cache=True, error_model="numpy", inline="always")
def _find_next(fs, num_dies):
    """Give each active flow its route's rate and store in ``fs.scalars`` when the first
    payload ends and its position in the active flows (-1, -1: none)."""
    flows_f, flows_i, route_rate, scalars = fs.flows_f, fs.flows_i, fs.route_rate, fs.scalars
    best = np.inf
    pos = -1
    for i in range(scalars[N_ACTIVE]):
        f = flows_i[F_ACTIVE, i]
        rate = route_rate[flows_i[F_SRC, f] * num_dies + flows_i[F_DST, f]]
        flows_f[F_RATE, f] = rate
        remaining = flows_f[F_REMAINING, f]
        left = remaining / rate if remaining > 1e-6 else 0.0
        if left < best:
            best = left
            pos = i
    scalars[NEXT_NS] = -1 if pos < 0 else math.ceil(fs.clock[0] + best)
    scalars[NEXT_POS] = pos


@njit(cache=True)
def flows_next(fs):
    """``(ns, position in the active flows)`` of the flow whose payload ends first (-1, -1:
    none), as the last start or end of a flow left it."""
    return fs.scalars[NEXT_NS], fs.scalars[NEXT_POS]


@njit(cache=True)
def flows_start(fs, route_start, route_flat, route_len, num_dies, f, s, d, nbytes, t):
    """Start flow ``f`` of ``nbytes`` from die ``s`` to die ``d`` at ``t``; rates anew."""
    _add_flow(fs, route_start, route_flat, route_len, num_dies, f, s, d, nbytes, t)
    flows_rerate(fs, route_start, route_flat, route_len, num_dies)


@njit(cache=True)
def flows_start_told(fs, route_start, route_flat, route_len, num_dies, f, s, d, nbytes, t):
    """:func:`flows_start`, with the rates deferred when :func:`flows_arrival` can tell the
    next payload end without them; returns that end."""
    _add_flow(fs, route_start, route_flat, route_len, num_dies, f, s, d, nbytes, t)
    return flows_arrival(fs, route_start, route_flat, route_len, num_dies, True)


@njit(cache=True, inline="always")
def flows_arrival(fs, route_start, route_flat, route_len, num_dies, soon):
    """After flows started or ended at the clock's time ``t``: when the first payload ends
    (-1: no flow), exactly the time :func:`flows_rerate` would find, re-rating only when that
    time cannot be told without the rates. Else the rates are left as they were (``STALE``)
    and :func:`flows_settle` must run before the clock moves on; until then
    :func:`flows_next` gives the time, and the position when the time is ``t``.

    Two cases need no rates (the rates change how long a payload takes, never whether it has
    ended):

    * a flow is due (its bytes are sent, :func:`_find_next`): the time is ``t`` and the
      position is the first due flow's, whatever the rates;
    * with ``soon``, no flow is due, none could end within ``t`` even at the fastest link's
      rate (the most max-min gives), and one flow's bytes take at most a quarter of a
      nanosecond at its route's smallest equal share of a link (rate over flows crossing it;
      max-min gives no flow less than that): the time is ``t + 1``."""
    flows_f, flows_i, links_f, links_i, scalars = (fs.flows_f, fs.flows_i, fs.links_f,
                                                   fs.links_i, fs.scalars)
    clock = fs.clock[0]
    fastest = fs.clock[1]
    bound = fs.clock[2]
    if bound > 1e-6 and (not soon or bound > 0.25 * fastest):
        flows_rerate(fs, route_start, route_flat, route_len, num_dies)   # no case can hold
        return scalars[NEXT_NS]
    least = np.inf                                # fewest bytes left of a flow not due
    found = False                                 # a flow ends within t + 1
    for i in range(scalars[N_ACTIVE]):
        f = flows_i[F_ACTIVE, i]
        remaining = flows_f[F_REMAINING, f]
        if not remaining > 1e-6:
            scalars[NEXT_NS] = math.ceil(clock)
            scalars[NEXT_POS] = i
            scalars[STALE] = 1
            return scalars[NEXT_NS]
        least = min(least, remaining)
        if soon and not found and remaining <= 0.25 * fastest:
            r = flows_i[F_SRC, f] * num_dies + flows_i[F_DST, f]
            share = np.inf
            for j in range(route_start[r], route_start[r + 1]):
                link = route_flat[j]
                share = min(share, links_f[L_RATE, link] / links_i[L_N, link])
            found = remaining <= 0.25 * share
    if found and clock + least / fastest > clock:
        scalars[NEXT_NS] = math.ceil(clock) + 1
        scalars[NEXT_POS] = -1
        scalars[STALE] = 1
        return scalars[NEXT_NS]
    flows_rerate(fs, route_start, route_flat, route_len, num_dies)
    return scalars[NEXT_NS]


@njit(cache=True)
def flows_settle(fs, route_start, route_flat, route_len, num_dies):
    """The rates :func:`flows_arrival` left stale, anew (nothing when they are not); checks
    that the first payload end is the time it told."""
    if fs.scalars[STALE]:
        told = fs.scalars[NEXT_NS]
        flows_rerate(fs, route_start, route_flat, route_len, num_dies)
        if fs.scalars[NEXT_NS] != told:
            raise AssertionError("flows_arrival told a payload end the rates do not give")


@njit(cache=True, inline="always")
def _add_flow(fs, route_start, route_flat, route_len, num_dies, f, s, d, nbytes, t):
    """:func:`flows_start` but the rates."""
    flows_advance(fs, t)
    links_i, flows_i, routes_i, lists, scalars = (fs.links_i, fs.flows_i, fs.routes_i,
                                                  fs.lists, fs.scalars)
    flows_i[F_SRC, f] = s
    flows_i[F_DST, f] = d
    fs.flows_f[F_REMAINING, f] = nbytes
    fs.clock[2] = min(fs.clock[2], nbytes)
    r = s * num_dies + d
    new_route = routes_i[R_N, r] == 0
    if new_route:                                 # the route joins the active ones
        routes_i[R_SLOT, r] = scalars[N_ROUTES]
        routes_i[R_LIST, scalars[N_ROUTES]] = r
        scalars[N_ROUTES] += 1
    routes_i[R_N, r] += 1
    tail = 0
    num_links = links_i.shape[1]
    num_routes = routes_i.shape[1]
    for j in range(route_len[s, d]):
        link = route_flat[route_start[r] + j]
        tail += links_i[L_HOP, link]
        links_i[L_N, link] += 1
        if new_route:                             # list the route on the link
            lists[0, link * num_routes + links_i[L_ROUTES, link]] = r
            lists[1, r * num_links + j] = links_i[L_ROUTES, link]
            links_i[L_ROUTES, link] += 1
        links_i[L_MAX, link] = max(links_i[L_MAX, link], links_i[L_N, link])
    flows_i[F_TAIL, f] = tail
    flows_i[F_ACTIVE, scalars[N_ACTIVE]] = f
    scalars[N_ACTIVE] += 1
    scalars[FLOWS_STARTED] += 1


@njit(cache=True)
def flows_finish(fs, route_start, route_flat, route_len, num_dies, pos, t):
    """End the payload of the active flow at ``pos`` at ``t``; rates anew. Returns its id."""
    f = _remove_flow(fs, route_start, route_flat, route_len, num_dies, pos, t)
    flows_rerate(fs, route_start, route_flat, route_len, num_dies)
    return f


@njit(cache=True)
def flows_finish_told(fs, route_start, route_flat, route_len, num_dies, pos, t):
    """:func:`flows_finish`, with the rates deferred as by :func:`flows_start_told`; the
    next payload end is then in ``fs.scalars[NEXT_NS]``."""
    f = _remove_flow(fs, route_start, route_flat, route_len, num_dies, pos, t)
    flows_arrival(fs, route_start, route_flat, route_len, num_dies, True)
    return f


@njit(cache=True, inline="always")
def _remove_flow(fs, route_start, route_flat, route_len, num_dies, pos, t):
    """:func:`flows_finish` but the rates."""
    flows_advance(fs, t)
    links_i, flows_i, routes_i, lists, scalars = (fs.links_i, fs.flows_i, fs.routes_i,
                                                  fs.lists, fs.scalars)
    f = flows_i[F_ACTIVE, pos]
    n_act = scalars[N_ACTIVE] - 1
    for i in range(pos, n_act):                  # keep the start order (deterministic ties)
        flows_i[F_ACTIVE, i] = flows_i[F_ACTIVE, i + 1]
    scalars[N_ACTIVE] = n_act
    s, d = flows_i[F_SRC, f], flows_i[F_DST, f]
    r = s * num_dies + d
    routes_i[R_N, r] -= 1
    gone = routes_i[R_N, r] == 0
    if gone:                                      # the route leaves the active ones
        last = routes_i[R_LIST, scalars[N_ROUTES] - 1]
        routes_i[R_LIST, routes_i[R_SLOT, r]] = last
        routes_i[R_SLOT, last] = routes_i[R_SLOT, r]
        scalars[N_ROUTES] -= 1
    num_links = links_i.shape[1]
    num_routes = routes_i.shape[1]
    for j in range(route_len[s, d]):
        link = route_flat[route_start[r] + j]
        links_i[L_N, link] -= 1
        if gone:
            # take r off the link's list of active routes: the list's last route moves into
            # its place, and so does where that route lists this link
            first = link * num_routes
            at = lists[1, r * num_links + j]
            links_i[L_ROUTES, link] -= 1
            moved = lists[0, first + links_i[L_ROUTES, link]]
            lists[0, first + at] = moved
            for k in range(route_start[moved], route_start[moved + 1]):
                if route_flat[k] == link:
                    lists[1, moved * num_links + k - route_start[moved]] = at
                    break
    return f


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
    fastest = fs.links_f[L_RATE].max()
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
        release = np.zeros(fs.links_f.shape[1], np.int64)
        links_f, links_i = fs.links_f, fs.links_i
        for k in range(n):
            s, d = src[k], dst[k]
            first = route_start[s * num_dies + d]
            begin = start[k]
            tail = 0
            slowest = np.inf
            for j in range(route_len[s, d]):
                link = route_flat[first + j]
                begin = max(begin, release[link])
                tail += links_i[L_HOP, link]
                slowest = min(slowest, links_f[L_RATE, link])
            arrival[k] = begin + tail + math.ceil(nbytes[k] / slowest)
            for j in range(route_len[s, d]):
                release[route_flat[first + j]] = arrival[k]
        return
    fs.clock[0] = start[0]
    k = 0
    while k < n or fs.scalars[N_ACTIVE] > 0:
        t, pos = flows_next(fs)
        if k < n and (pos < 0 or start[k] < t):
            flows_settle(fs, route_start, route_flat, route_len, num_dies)
            last = _together(start, nbytes, fs, k)
            for j in range(k, last):
                _add_flow(fs, route_start, route_flat, route_len, num_dies, j, src[j], dst[j],
                          nbytes[j], start[j])
            flows_rerate(fs, route_start, route_flat, route_len, num_dies)
            k = last
        else:
            f = _remove_flow(fs, route_start, route_flat, route_len, num_dies, pos, t)
            flows_arrival(fs, route_start, route_flat, route_len, num_dies, False)
            arrival[f] = t + fs.flows_i[F_TAIL, f]


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


@njit(cache=True)
def transfer_phase(t0, src, dst, nbytes, route_start, route_flat, route_len, num_dies, fs,
                   shared):
    """When the last of a set of transfers that all start at ``t0`` arrives
    (:func:`transfer_times`, on the route tables of a
    :class:`~hwmodel.system.lowering.Tables` and its ``num_dies``); ``t0`` when there are
    none. Compiled whole: a dispatch or combine phase is a few transfers, and numpy's calls
    on them would cost more than the phase."""
    n = src.shape[0]
    if n == 0:
        return t0
    arrival = np.zeros(n, np.int64)
    _transfers(np.full(n, t0, np.int64), src, dst, nbytes, route_start, route_flat, route_len,
               num_dies, fs, shared, arrival)
    return max(t0, arrival.max())
