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
from numba import njit

__all__ = ["FlowState", "LinkNetwork", "grown", "link_network", "new_flow_state",
           "transfer_phase", "transfer_times"]

# slots of FlowState.scalars (int64)
N_ACTIVE = 0         # flows in FlowState.active
FLOWS_STARTED = 1    # flows of the run


class LinkNetwork(NamedTuple):
    """Per mesh link: its payload rate and its hop latency (from the wafer's D2D links)."""
    rate: np.ndarray              # (links,) bytes/ns: bandwidth_GBps x efficiency
    hop_ns: np.ndarray            # (links,) int64


def link_network(wafer) -> LinkNetwork:
    """The links of ``wafer`` (``wafer.links[i]`` is mesh link ``i``), read from each link's
    own parameters, as :mod:`hwmodel.system.lowering` reads them for the paper's latencies."""
    return LinkNetwork(
        rate=np.array([link.params.bandwidth_GBps * link.params.efficiency
                       for link in wafer.links], np.float64),
        hop_ns=np.array([int(link.params.hop_latency_ns) for link in wafer.links], np.int64))


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
    fixed: np.ndarray             # (flows,) bool scratch of max-min
    cap_left: np.ndarray          # (links,) float64 scratch of max-min
    unfixed: np.ndarray           # (links,) int64 scratch of max-min
    scalars: np.ndarray           # int64 counts (N_ACTIVE, FLOWS_STARTED)
    clock: np.ndarray             # (1,) float64 time the flows were last advanced to


def new_flow_state(network: LinkNetwork | None, flows: int) -> FlowState:
    """Room for ``flows`` flows on ``network`` (None: an empty state, links shared off)."""
    links = 0 if network is None else len(network.rate)
    flows = 0 if network is None else flows
    z = lambda n, dtype=np.int64: np.zeros(n, dtype)
    return FlowState(
        link_rate=z(links, np.float64) if network is None else network.rate,
        hop_ns=z(links) if network is None else network.hop_ns,
        link_n=z(links), busy_ns=z(links, np.float64), queue_ns=z(links, np.float64),
        max_flows=z(links), src=z(flows), dst=z(flows), remaining=z(flows, np.float64),
        rate=z(flows, np.float64), tail_ns=z(flows), next_n=z(flows),
        next_kind=np.zeros((flows, 2), np.int64), prio=z(flows), active=z(flows),
        fixed=z(flows, np.bool_), cap_left=z(links, np.float64), unfixed=z(links),
        scalars=z(2), clock=z(1, np.float64))


def grown(fs: FlowState, flows: int) -> FlowState:
    """``fs`` with room for ``flows`` flows, keeping the links' run totals (no flow is active
    between layers)."""
    fresh = new_flow_state(LinkNetwork(fs.link_rate, fs.hop_ns), flows)
    return fresh._replace(busy_ns=fs.busy_ns, queue_ns=fs.queue_ns, max_flows=fs.max_flows,
                          scalars=fs.scalars, clock=fs.clock)


# ------------------------------------------------------------- flows inside the kernel
@njit(cache=True)
def flows_advance(fs, t):
    """Move the active flows' bytes and the links' busy and queue times on to ``t``."""
    dt = t - fs.clock[0]
    if dt > 0:
        n_act = fs.scalars[N_ACTIVE]
        for i in range(n_act):
            f = fs.active[i]
            fs.remaining[f] -= fs.rate[f] * dt
        for link in range(fs.link_n.shape[0]):
            n = fs.link_n[link]
            if n > 0:
                fs.busy_ns[link] += dt
                fs.queue_ns[link] += (n - 1) * dt
    fs.clock[0] = t


@njit(cache=True)
def flows_rerate(fs, route_start, route_flat, route_len, num_dies):
    """Max-min rates of the active flows (progressive filling over the kernel's routes).

    Each link's flows are listed once (positions in ``fs.active``), so a round touches only
    the bottleneck's flows."""
    n_act = fs.scalars[N_ACTIVE]
    cap, unfixed, fixed = fs.cap_left, fs.unfixed, fs.fixed
    num_links = cap.shape[0]
    first_of = np.empty(num_links + 1, np.int64)
    total = 0
    for link in range(num_links):
        cap[link] = fs.link_rate[link]
        unfixed[link] = fs.link_n[link]
        first_of[link] = total
        total += fs.link_n[link]
    first_of[num_links] = total
    fill = first_of[:num_links].copy()
    members = np.empty(total, np.int64)
    for i in range(n_act):
        fixed[i] = False
        f = fs.active[i]
        s, d = fs.src[f], fs.dst[f]
        first = route_start[s * num_dies + d]
        for j in range(route_len[s, d]):
            link = route_flat[first + j]
            members[fill[link]] = i
            fill[link] += 1
    # the links in use and their fair shares; a round updates only the links its flows cross
    used = np.empty(num_links, np.int64)
    n_used = 0
    share = np.empty(num_links, np.float64)
    for link in range(num_links):
        if unfixed[link] > 0:
            used[n_used] = link
            n_used += 1
            share[link] = cap[link] / unfixed[link]
    left = n_act
    while left > 0:
        best = np.inf
        bottleneck = -1
        for u in range(n_used):
            link = used[u]
            if unfixed[link] > 0 and share[link] < best:
                best = share[link]
                bottleneck = link
        for m in range(first_of[bottleneck], first_of[bottleneck + 1]):
            i = members[m]
            if fixed[i]:
                continue
            f = fs.active[i]
            fs.rate[f] = best
            fixed[i] = True
            left -= 1
            s, d = fs.src[f], fs.dst[f]
            first = route_start[s * num_dies + d]
            for j in range(route_len[s, d]):
                link = route_flat[first + j]
                cap[link] -= best
                unfixed[link] -= 1
                if unfixed[link] > 0:
                    share[link] = cap[link] / unfixed[link]


@njit(cache=True)
def flows_next(fs):
    """``(ns, position in active)`` of the flow whose payload ends first (-1, -1: none)."""
    n_act = fs.scalars[N_ACTIVE]
    best = np.inf
    pos = -1
    for i in range(n_act):
        f = fs.active[i]
        left = fs.remaining[f] / fs.rate[f] if fs.remaining[f] > 1e-6 else 0.0
        if left < best:
            best = left
            pos = i
    if pos < 0:
        return -1, -1
    return math.ceil(fs.clock[0] + best), pos


@njit(cache=True)
def flows_start(fs, route_start, route_flat, route_len, num_dies, f, s, d, nbytes, t):
    """Start flow ``f`` of ``nbytes`` from die ``s`` to die ``d`` at ``t``; rates anew."""
    flows_advance(fs, t)
    fs.src[f] = s
    fs.dst[f] = d
    fs.remaining[f] = nbytes
    first = route_start[s * num_dies + d]
    tail = 0
    for j in range(route_len[s, d]):
        link = route_flat[first + j]
        tail += fs.hop_ns[link]
        fs.link_n[link] += 1
        fs.max_flows[link] = max(fs.max_flows[link], fs.link_n[link])
    fs.tail_ns[f] = tail
    fs.active[fs.scalars[N_ACTIVE]] = f
    fs.scalars[N_ACTIVE] += 1
    fs.scalars[FLOWS_STARTED] += 1
    flows_rerate(fs, route_start, route_flat, route_len, num_dies)


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
    first = route_start[s * num_dies + d]
    for j in range(route_len[s, d]):
        fs.link_n[route_flat[first + j]] -= 1
    flows_rerate(fs, route_start, route_flat, route_len, num_dies)
    return f


# ------------------------------------------------------------- a set of transfers on its own
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
            flows_start(fs, route_start, route_flat, route_len, num_dies, k, src[k], dst[k],
                        nbytes[k], start[k])
            k += 1
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
