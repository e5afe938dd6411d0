"""Compiled event kernel of the replay: one MoE layer (one barrier interval) per call.

The Python layer (:mod:`hwmodel.system.replay`) owns strategies, twins and statistics; this
module owns the discrete-event simulation of the per-slice chains of docs/replay.md over flat
arrays, compiled with numba. Semantics (chosen to agree event for event with the study's
artefact, see docs/replay.md):

* An *event* is the start of a step that holds a set of resources (a die's LLC port, HBM or
  compute unit; every D2D link of a path). It is *admitted* when all its resources are free:
  they are marked busy and its start time is raised to every resource's release time. When it
  is processed, its step's latency ``L`` is computed, the next events of the chain are created
  at ``t + L``, and its resources are released with release time ``t + L``.
* A non-admitted event waits on every resource it needs, in queues ordered by (priority
  descending, time, arrival); remote chains have priority 1. After an event is processed, the
  head waiter of each resource it held is collected; these are tried in time order.
* The pending-event queue is a binary heap on time alone with CPython ``heapq``'s exact sift
  rules, so events of equal time come out in the same order as in the artefact.
* The layer ends (barrier) when the last chain, including LLC and HBM stores, completes.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

if TYPE_CHECKING:
    from .lowering import Tables

from ..jit import njit
from .flows import (
    F_KIND,
    F_KIND1,
    F_NEXT_N,
    F_PRIO,
    F_TAIL,
    NEXT_NS,
    NEXT_POS,
    STALE,
    FlowState,
    flows_finish_told,
    flows_settle,
    flows_start_told,
    grown,
    new_flow_state,
)

__all__ = ["EV_NAMES", "Counter", "DieStat", "LayerKernel", "LayerStat", "Prediction", "Prefetched",
           "Tasks"]

# event kinds
EV_LOOKUP = 0        # LLC lookup on the executing die (its LLC port)
EV_LOCAL_READ = 1    # local HBM read of slice + activations (HBM)
EV_REQ = 2           # 16-byte request over the path to the home die (links)
EV_RLLC_READ = 3     # read of the home die's LLC (its LLC port)
EV_RHBM_READ = 4     # read of the home die's HBM (its HBM)
EV_DATA = 5          # slice back over the path home -> executing die (links)
EV_COMPUTE = 6       # GEMM on the executing die (compute unit)
EV_LLC_STORE = 7     # fill of the executing die's LLC (its LLC port)
EV_RLLC_STORE = 8    # fill of the home die's LLC (its LLC port)
EV_DUP_STORE = 9     # PDU copy of a remote slice into local HBM (HBM)
EV_DONE = 10         # completion signal of a chain or store
EV_NET = 11          # shared links: the next flow's payload ends (hwmodel.system.flows)
EV_KIND_BITS = 4     # an event's info: chain << EV_KIND_BITS | kind
EV_KIND_MASK = (1 << EV_KIND_BITS) - 1
EV_NAMES = ("lookup", "local_read", "request", "remote_llc_read", "remote_hbm_read", "data",
            "compute", "llc_store", "remote_llc_store", "dup_store", "done", "net")

# chain kinds decided at the lookup
K_LLC_HIT, K_LOCAL, K_REMOTE_LLC, K_REMOTE_HBM = 0, 1, 2, 3


# ---------------------------------------------------------------- CPython heapq, time-keyed
@njit(cache=True, inline="always")
def _hpush(ht, hi, n, t, i):
    pos = n
    while pos > 0:
        parent = (pos - 1) >> 1
        if t < ht[parent]:
            ht[pos] = ht[parent]
            hi[pos] = hi[parent]
            pos = parent
            continue
        break
    ht[pos] = t
    hi[pos] = i
    return n + 1


@njit(cache=True, inline="always")
def _hpop(ht, hi, n):
    """Pop the root; returns (id, new size). Mirrors heapq.heappop (_siftup then _siftdown)."""
    n -= 1
    last_t = ht[n]
    last_i = hi[n]
    if n == 0:
        return last_i, 0
    ret = hi[0]
    # _siftup from 0 with newitem = last
    pos = 0
    child = 1
    while child < n:
        right = child + 1
        if right < n and not ht[child] < ht[right]:
            child = right
        ht[pos] = ht[child]
        hi[pos] = hi[child]
        pos = child
        child = 2 * pos + 1
    # _siftdown(0, pos)
    while pos > 0:
        parent = (pos - 1) >> 1
        if last_t < ht[parent]:
            ht[pos] = ht[parent]
            hi[pos] = hi[parent]
            pos = parent
            continue
        break
    ht[pos] = last_t
    hi[pos] = last_i
    return ret, n


# The artefact's per-event list of head waiters is also a heapq of events compared by their
# current time (an admitted event's raised time is seen by its duplicate entries); the event
# loop keeps it in ``small_i`` (heappush and heappop written out in the loop).


# ------------------------------------------------ wait queues (CPython heapq, live keys)
# The artefact's wait queues are heapq lists ordered by (priority desc, event time, arrival),
# where the event time is read when compared. An admitted event stays in the other queues it
# waited on (removed lazily at the head) with its time already raised, which can leave those
# heaps out of order; mirroring heapq's exact sift rules with live keys reproduces that too.
# The kernel keeps the first two parts of that order as one number per event, its wait key
# (:func:`_wait_key`, rewritten whenever the event's time is raised), and the arrival as the
# entry itself: an entry is ``event << WQ_SHIFT | q``, where ``q`` is the resource's place in
# the event's list. Events wait where they are created, in creation (id) order and then in
# the order of their resources, so entries compare as their arrivals do: entry ``a`` comes
# before ``b`` when (key of a, a) < (key of b, b). One comparison is two loads instead of
# three pairs.
# Every helper the event loop calls is inlined: as calls, the wait-queue and LLC-store helpers
# cost 27 % of a `base` run (Llama-4, 235 requests: 1.7 -> 1.2 s per run). Inlined helpers
# that loop over arrays still cost an atomic increment and decrement of each array's reference
# count per use (numba binds the arguments; its pruning of the pairs fails in this function):
# 16 % of the kernel's time in a `base` run (perf, DeepSeek-V3 128 requests). So the event loop
# writes the wait queues' and head waiters' heappush and heappop out in place; the spawn, once
# per chain, calls :func:`_wpush`.
WQ_SHIFT = 16                    # resources per event < 2**16 (a route has < 4096 links)
PRIO_STEP = np.int64(1) << 62    # wait-key offset of priority 0 (|times| < 2**61)


@njit(cache=True, inline="always")
def _wait_key(prio, t):
    """One integer ordered as (priority descending, time ascending) for priorities 0 and 1."""
    return t + (1 - prio) * PRIO_STEP


# Queues are indexed in place (``wq_e[r, pos]``): a row view (``wq_e[r]``) is an array of
# its own, reference-counted.
@njit(cache=True, inline="always")
def _wpush(ev_key, wq_e, wq_n, r, entry):
    """heapq.heappush of ``entry`` on queue ``r`` (_siftdown from the new leaf)."""
    pos = wq_n[r]
    wq_n[r] = pos + 1
    key = ev_key[entry >> WQ_SHIFT]
    while pos > 0:
        parent = (pos - 1) >> 1
        up = wq_e[r, parent]
        kp = ev_key[up >> WQ_SHIFT]
        if (key < kp) | ((key == kp) & (entry < up)):
            wq_e[r, pos] = up
            pos = parent
            continue
        break
    wq_e[r, pos] = entry


# ------------------------------------------------------------------------------- the LLC
@njit(cache=True, inline="always")
def _llc_check(tags, num_sets, num_ways, die, tag, expert):
    s = expert % num_sets[die]
    hit = False
    for w in range(num_ways[die]):
        if tags[die, s, w] == tag:
            hit = True
            break
    return hit


@njit(cache=True, inline="always")
def _llc_store(tags, fill, num_sets, num_ways, die, tag, expert):
    """LRU store: ways ordered oldest first; a hit moves the line to the newest position, a
    miss in a full set drops the oldest."""
    s = expert % num_sets[die]
    n = fill[die, s]
    drop = -1                    # the line that leaves its place (-1: none, a free way)
    for w in range(n):
        if tags[die, s, w] == tag:
            drop = w
            break
    if drop < 0 and n >= num_ways[die]:
        drop = 0
    if drop >= 0:
        for v in range(drop, n - 1):
            tags[die, s, v] = tags[die, s, v + 1]
        tags[die, s, n - 1] = tag
    else:
        tags[die, s, n] = tag
        fill[die, s] = n + 1


# ------------------------------------------------------------------------- kernel structures
class Counter(enum.IntEnum):
    """Named slots of :attr:`Outputs.counters` (int64)."""
    HOPS = 0                # links crossed by request messages
    EVENTS = 1              # events processed
    DUPS = 2                # copies written to Outputs.dups by the last layer
    STALLED = 3             # 1 if the last layer ended with work still waiting
    END_NS = 4              # end time of the last layer
    LOCAL_LLC_HITS = 5
    REPLICA_READS = 6       # reads of a remote expert served by a local replica
    REMOTE_LLC_HITS = 7
    REMOTE_HBM_READS = 8
    LOCAL_HBM_READS = 9
    PREFETCH_READS = 10     # physical switch prefetch: HBM reads served by prefetched slices
    PREFETCH_SAVED_NS = 11  # ... the HBM read latency each of them skipped


class DieStat(enum.IntEnum):
    """Named columns of :attr:`Outputs.die_stats` (float64 bytes, per die)."""
    LOCAL_READ_BYTES = 0          # slice + activations read from its own HBM
    REMOTE_READ_SERVED_BYTES = 1  # slices its HBM served to other dies
    REPLICA_WRITE_BYTES = 2       # replica copies written to its HBM
    BYTE_HOPS_SENT = 3            # bytes x links of the messages it sent


class LayerStat(enum.IntEnum):
    """Named slots of :attr:`Outputs.layer_stats` (float64): the artefact's per-layer
    statistics, summed over the layers in order (docs/replay.md outputs)."""
    BUSY_SUM = 0            # sum over layers and dies of (last chain end - first start)
    BUSY_BOUND = 1          # sum over layers of (longest die's busy time x dies)
    MAX_OVER_MIN = 2        # sum over layers of max / min busy time of the working dies
    MAX_OVER_AVG = 3        # ... of max / mean busy time
    SLICES_AVG = 4          # sum over layers of the mean slices (tasks x 3) per die
    SLICES_MAX = 5          # ... of the largest
    TOKENS_AVG = 6          # sum over layers of the mean token-slices per die
    TOKENS_MAX = 7          # ... of the largest
    DRAM_EVENNESS = 8       # sum over layers with HBM traffic of mean / max HBM bytes per die
    DRAM_LAYERS = 9         # layers with HBM traffic
    LAYERS = 10


class Tasks(NamedTuple):
    """One layer's plan: task ``k`` runs ``tokens[k]`` tokens of ``expert[k]`` on ``die[k]``."""
    expert: np.ndarray
    die: np.ndarray
    tokens: np.ndarray
    remote: np.ndarray           # 1 where the die is not the expert's home (queue priority)


class Prediction(NamedTuple):
    """The units' decisions the data path follows (docs/rtl.md, flows 2-3), made at the
    layer's launch (:class:`hwmodel.system.prediction.PredictionUnits`)."""
    enabled: bool                # reads may be served by replicas
    copy_ok: bool                # arriving slices may be copied (decode only)
    redirect: np.ndarray         # (dies, experts) bool: the die's ATU redirects a remote
                                 # read of the expert to its local replica
    copy: np.ndarray             # (dies, experts) bool: the die's Local CP copies the
                                 # expert's arriving slices (its PDU's cp_en, not is_local)


class Prefetched(NamedTuple):
    """Physical switch ``prefetch`` (:mod:`hwmodel.system.prefetch`): the slices each die
    read ahead from its HBM during the previous layer, by slice index ``expert x slices +
    slice``. A chain whose HBM read is of such a slice skips the slice's part of that read."""
    enabled: bool
    ready: np.ndarray            # (dies, experts x slices) bool: held in the die's buffer
    read: np.ndarray             # (dies, experts x slices) bool: set when a chain reads it


class Events(NamedTuple):
    time: np.ndarray
    info: np.ndarray             # chain << EV_KIND_BITS | kind
    key: np.ndarray              # wait key (_wait_key) while the event waits
    admitted: np.ndarray
    num_res: np.ndarray
    res: np.ndarray              # its one resource, or -(first + 1) of its route's links
    heap_t: np.ndarray           # pending-event heap: times
    heap_i: np.ndarray           # pending-event heap: event ids


class Resources(NamedTuple):
    """Per resource (LLC port, HBM, compute of each die; each link) its state and wait queue."""
    free: np.ndarray
    release_ns: np.ndarray
    wait_event: np.ndarray       # (resources, capacity) wait entries (event << WQ_SHIFT | q)
    wait_len: np.ndarray


class Chains(NamedTuple):
    die: np.ndarray
    expert: np.ndarray
    slice: np.ndarray
    tokens: np.ndarray
    home: np.ndarray
    prio: np.ndarray             # wait-queue priority of its events (1: remote)
    kind: np.ndarray
    start: np.ndarray


class LLCState(NamedTuple):
    tags: np.ndarray             # (dies, sets, ways) line tags, oldest first
    fill: np.ndarray             # (dies, sets) lines in use


class Outputs(NamedTuple):
    span_lo: np.ndarray          # (dies,) first chain start of the layer (-1: idle)
    span_hi: np.ndarray          # (dies,) last chain end of the layer
    dram_bytes: np.ndarray       # (dies,) HBM bytes of the layer
    link_bytes: np.ndarray       # (links,) bytes of the run
    die_stats: np.ndarray        # (dies, len(DieStat)) bytes of the run
    counters: np.ndarray         # (len(Counter),) counts of the run / last layer
    layer_stats: np.ndarray      # (len(LayerStat),) float64 sums over the layers run
    dups: np.ndarray             # (capacity, 3) copies of the layer: die, expert, slice
    hbm_busy_ns: np.ndarray      # (dies,) time each die's HBM was held in the layer


class KernelState(NamedTuple):
    """Everything one replay's kernel reads and writes, as one typed structure."""
    tables: Tables
    resources: Resources
    events: Events
    chains: Chains
    llc: LLCState
    outputs: Outputs
    flows: FlowState             # links shared by bandwidth (empty when off)


# ------------------------------------------------------------------------- layer kernel
@njit(cache=True)
def _simulate(t0, layer, task_expert, task_die, task_tokens, home, prio_of_task,
              pred, copy_ok, redirect, copy, num_experts, slices,
              route_start, route_flat, route_len,
              lat_llc_hit, lat_llc_miss, lat_llc_write, lat_req, lat_data, lat_hbm_slice,
              lat_local_read, hbm_of_die, lat_compute, compute_of_die, slice_bytes,
              act_bytes_per_token, req_bytes,
              res_avail, res_time, llc_tags, llc_fill, num_sets, num_ways,
              ev_time, ev_info, ev_key, ev_adm, ev_nres, ev_res,
              heap_t, heap_i, wq_e, wq_n,
              ch_die, ch_expert, ch_slice, ch_tokens, ch_home, ch_prio, ch_kind, ch_start,
              span_lo, span_hi, dram_bytes, link_bytes, die_stats, counters, dup_out,
              shared, fs, hbm_busy, pf_on, pf_ready, pf_read):
    """The layer's event loop over flat arrays (:func:`_run_layer` unpacks its structure
    into them). It is one long function on purpose: numba reference-counts the arrays passed
    to a compiled helper on every call, inlined or not; measured on the shared Llama-4 trace,
    passing the state structure to per-event helpers made ``ep`` six times slower, and moving
    only the release step into a helper made it 50 % slower. Counters: :class:`Counter`; byte
    sums per die: :class:`DieStat`.

    An event is ``ev_info = chain << EV_KIND_BITS | kind``, its time, its wait key
    (:func:`_wait_key`), whether it is admitted, and its resources by reference
    (:func:`_resource`: one resource, or its route's links, read from the route table);
    priorities are per chain (``ch_prio``, 0 or 1).

    With ``shared`` (links shared by bandwidth, :mod:`hwmodel.system.flows`), request and data
    transfers hold no link: each starts a flow in ``fs`` and its chain goes on when the flow
    arrives; one pending-event id (the last) stands for the network's next arrival, and a
    heap entry whose time is no longer that arrival's is skipped.

    With ``pf_on`` (physical switch ``prefetch``) an HBM read of a slice in ``pf_ready`` of the
    reading die skips that slice's HBM read latency (``lat_hbm_slice``) and marks it in
    ``pf_read``. ``hbm_busy`` sums each die's HBM holding times of the layer."""
    num_dies = llc_tags.shape[0]
    links0 = 3 * num_dies                           # resources: LLC ports, HBMs, computes,
    n_tasks = task_expert.shape[0]                  # then links
    n_ev = 0
    n_heap = 0
    n_chain = 0
    pending = 0
    waiting = 0
    n_dup = 0
    # the paper path's counters, added to ``counters`` at the end
    n_events = 0
    n_hops = 0
    n_llc_hits = 0
    n_replica_reads = 0
    n_remote_llc_hits = 0
    n_remote_hbm_reads = 0
    n_local_hbm_reads = 0
    # spawn: 3 chains per task in plan order, each an LLC lookup on its die
    for k in range(n_tasks):
        d = task_die[k]
        e = task_expert[k]
        prio = prio_of_task[k]
        if prio != 0 and prio != 1:
            raise ValueError("a task's queue priority (Tasks.remote) must be 0 or 1")
        for s in range(slices):
            c = n_chain
            n_chain += 1
            ch_die[c] = d
            ch_expert[c] = e
            ch_slice[c] = s
            ch_tokens[c] = task_tokens[k]
            ch_home[c] = home[e]
            ch_prio[c] = prio
            ev = n_ev
            n_ev += 1
            ev_time[ev] = t0
            ev_info[ev] = (c << EV_KIND_BITS) | EV_LOOKUP
            ev_adm[ev] = False
            ev_nres[ev] = 1
            ev_res[ev] = d                          # LLC port of die d
            pending += 1
            # _add_event
            r = d
            if res_avail[r]:
                res_avail[r] = False
                ev_time[ev] = max(ev_time[ev], res_time[r])
                ev_adm[ev] = True
                n_heap = _hpush(heap_t, heap_i, n_heap, ev_time[ev], ev)
            else:
                ev_key[ev] = _wait_key(prio, t0)
                _wpush(ev_key, wq_e, wq_n, r, ev << WQ_SHIFT)
                waiting += 1
    small_i = np.empty(64, dtype=np.int64)
    new_evs = np.empty(4, dtype=np.int64)
    cur = t0
    done = False
    net = ev_time.shape[0] - 1                    # shared links: the network's event
    if shared:
        ev_time[net] = -1
        ev_info[net] = EV_NET
        ev_nres[net] = 0
    while n_heap > 0:
        if shared and fs.scalars[STALE] and heap_t[0] > fs.clock[0]:
            flows_settle(fs, route_start, route_flat, route_len, num_dies)   # time moves on
        top_t = heap_t[0]
        ev, n_heap = _hpop(heap_t, heap_i, n_heap)
        if shared and ev == net and top_t != ev_time[net]:
            continue                              # superseded arrival time
        n_events += 1
        prev = cur
        t = ev_time[ev]
        info = ev_info[ev]
        kind = info & EV_KIND_MASK
        c = info >> EV_KIND_BITS
        d = ch_die[c]
        e = ch_expert[c]
        h = ch_home[c]
        prio = ch_prio[c]
        lat = 0
        n_new = 0
        # ---- callback: compute the step latency and create the chain's next events ----
        if kind == EV_LOOKUP:
            tag = (layer * num_experts + e) * slices + ch_slice[c]
            ch_start[c] = t
            if pred:
                if _llc_check(llc_tags, num_sets, num_ways, d, tag, e):
                    ch_kind[c] = K_LLC_HIT
                elif d == h or redirect[d, e]:
                    ch_kind[c] = K_LOCAL
                    if d != h:
                        n_replica_reads += 1
                elif _llc_check(llc_tags, num_sets, num_ways, h, tag, e):
                    ch_kind[c] = K_REMOTE_LLC
                else:
                    ch_kind[c] = K_REMOTE_HBM
            elif d == h:
                if _llc_check(llc_tags, num_sets, num_ways, d, tag, e):
                    ch_kind[c] = K_LLC_HIT
                else:
                    ch_kind[c] = K_LOCAL
            elif _llc_check(llc_tags, num_sets, num_ways, h, tag, e):
                ch_kind[c] = K_REMOTE_LLC
            else:
                ch_kind[c] = K_REMOTE_HBM
            ck = ch_kind[c]
            if ck == K_LLC_HIT:
                lat = lat_llc_hit[d]
                new_evs[0] = EV_COMPUTE
                n_llc_hits += 1
            elif ck == K_LOCAL:
                lat = lat_llc_miss[d]
                new_evs[0] = EV_LOCAL_READ
            else:
                lat = lat_llc_miss[d]
                new_evs[0] = EV_REQ
            n_new = 1
        elif kind == EV_REQ:
            hops = route_len[d, h]
            n_hops += hops
            lat = lat_req[d, h]
            die_stats[d, DieStat.BYTE_HOPS_SENT] += req_bytes[d] * hops
            first = route_start[d * num_dies + h]
            for j in range(hops):
                link_bytes[route_flat[first + j]] += req_bytes[d]
            if ch_kind[c] == K_REMOTE_LLC:
                new_evs[0] = EV_RLLC_READ
            else:
                new_evs[0] = EV_RHBM_READ
            n_new = 1
        elif kind == EV_RLLC_READ:
            lat = lat_llc_hit[h]
            n_remote_llc_hits += 1
            new_evs[0] = EV_DATA
            n_new = 1
        elif kind == EV_RHBM_READ:
            lat = lat_hbm_slice[h]
            if pf_on and pf_ready[h, e * slices + ch_slice[c]]:  # physical: prefetch
                pf_read[h, e * slices + ch_slice[c]] = True
                counters[Counter.PREFETCH_READS] += 1
                counters[Counter.PREFETCH_SAVED_NS] += lat
                lat = 0
            hbm_busy[h] += lat
            n_remote_hbm_reads += 1
            die_stats[h, DieStat.REMOTE_READ_SERVED_BYTES] += slice_bytes
            dram_bytes[h] += slice_bytes
            new_evs[0] = EV_RLLC_STORE
            new_evs[1] = EV_DATA
            n_new = 2
        elif kind == EV_DATA:
            hops = route_len[h, d]
            lat = lat_data[h, d]
            die_stats[h, DieStat.BYTE_HOPS_SENT] += slice_bytes * hops
            first = route_start[h * num_dies + d]
            for j in range(hops):
                link_bytes[route_flat[first + j]] += slice_bytes
            if pred and copy_ok and copy[d, e]:
                new_evs[0] = EV_DUP_STORE
                new_evs[1] = EV_COMPUTE
                n_new = 2
            else:
                new_evs[0] = EV_COMPUTE
                n_new = 1
        elif kind == EV_LOCAL_READ:
            lat = lat_local_read[hbm_of_die[d], ch_tokens[c]]
            if pf_on and pf_ready[d, e * slices + ch_slice[c]]:  # physical: prefetch
                pf_read[d, e * slices + ch_slice[c]] = True
                counters[Counter.PREFETCH_READS] += 1
                counters[Counter.PREFETCH_SAVED_NS] += lat_hbm_slice[d]
                lat -= lat_hbm_slice[d]
            hbm_busy[d] += lat
            n_local_hbm_reads += 1
            nbytes = slice_bytes + act_bytes_per_token * ch_tokens[c]
            die_stats[d, DieStat.LOCAL_READ_BYTES] += nbytes
            dram_bytes[d] += nbytes
            new_evs[0] = EV_LLC_STORE
            new_evs[1] = EV_COMPUTE
            n_new = 2
        elif kind == EV_COMPUTE:
            lat = lat_compute[compute_of_die[d], ch_tokens[c]]
            new_evs[0] = EV_DONE
            n_new = 1
        elif kind == EV_LLC_STORE:
            tag = (layer * num_experts + e) * slices + ch_slice[c]
            _llc_store(llc_tags, llc_fill, num_sets, num_ways, d, tag, e)
            lat = lat_llc_write[d]
            new_evs[0] = EV_DONE
            n_new = 1
        elif kind == EV_RLLC_STORE:
            tag = (layer * num_experts + e) * slices + ch_slice[c]
            _llc_store(llc_tags, llc_fill, num_sets, num_ways, h, tag, e)
            lat = lat_llc_write[h]
            new_evs[0] = EV_DONE
            n_new = 1
        elif kind == EV_DUP_STORE:
            lat = lat_hbm_slice[d]
            hbm_busy[d] += lat
            die_stats[d, DieStat.REPLICA_WRITE_BYTES] += slice_bytes
            dram_bytes[d] += slice_bytes
            dup_out[n_dup, 0] = d
            dup_out[n_dup, 1] = e
            dup_out[n_dup, 2] = ch_slice[c]
            n_dup += 1
            new_evs[0] = EV_DONE
            n_new = 1
        elif kind == EV_NET:
            ev_time[net] = -1
            c = flows_finish_told(fs, route_start, route_flat, route_len, num_dies,
                                  fs.scalars[NEXT_POS], t)
            d = ch_die[c]
            e = ch_expert[c]
            h = ch_home[c]
            flows_i = fs.flows_i
            prio = flows_i[F_PRIO, c]
            lat = flows_i[F_TAIL, c]
            n_new = flows_i[F_NEXT_N, c]
            new_evs[0] = flows_i[F_KIND, c]
            new_evs[1] = flows_i[F_KIND1, c]
        else:  # EV_DONE
            if span_lo[d] < 0 or ch_start[c] < span_lo[d]:
                span_lo[d] = ch_start[c]
            span_hi[d] = max(span_hi[d], t)
            pending -= 1
            if pending == 0 and waiting == 0 and (n_heap == 0 or shared):
                done = True
        if shared and (kind == EV_REQ or kind == EV_DATA or kind == EV_NET):
            if kind != EV_NET:                    # the transfer becomes a flow
                if kind == EV_REQ:
                    flows_start_told(fs, route_start, route_flat, route_len, num_dies, c, d,
                                     h, req_bytes[d], t)
                else:
                    flows_start_told(fs, route_start, route_flat, route_len, num_dies, c, h,
                                     d, slice_bytes, t)
                flows_i = fs.flows_i
                flows_i[F_PRIO, c] = prio
                flows_i[F_NEXT_N, c] = n_new
                flows_i[F_KIND, c] = new_evs[0]
                flows_i[F_KIND1, c] = new_evs[1]
                n_new = 0
                lat = 0
            arrival = fs.scalars[NEXT_NS]
            if arrival >= 0 and arrival != ev_time[net]:
                ev_time[net] = arrival
                n_heap = _hpush(heap_t, heap_i, n_heap, arrival, net)
        # ---- create the new events at t + lat and try to admit them ----
        t_new = t + lat
        for j in range(n_new):
            nk = new_evs[j]
            nev = n_ev
            n_ev += 1
            ev_time[nev] = t_new
            ev_info[nev] = (c << EV_KIND_BITS) | nk
            ev_adm[nev] = False
            nres = 1
            r0 = 0
            if nk == EV_LOCAL_READ or nk == EV_DUP_STORE:
                r0 = num_dies + d
            elif nk == EV_RHBM_READ:
                r0 = num_dies + h
            elif nk == EV_COMPUTE:
                r0 = 2 * num_dies + d
            elif nk == EV_LLC_STORE:
                r0 = d
            elif nk == EV_RLLC_READ or nk == EV_RLLC_STORE:
                r0 = h
            elif shared and (nk == EV_REQ or nk == EV_DATA):
                nres = 0                          # a flow: holds no link
            elif nk == EV_REQ:
                nres = route_len[d, h]
                r0 = -1 - route_start[d * num_dies + h]
            elif nk == EV_DATA:
                nres = route_len[h, d]
                r0 = -1 - route_start[h * num_dies + d]
            else:  # EV_DONE holds nothing
                nres = 0
            ev_res[nev] = r0
            ev_nres[nev] = nres
            if nk == EV_RLLC_STORE or nk == EV_LLC_STORE or nk == EV_DUP_STORE:
                pending += 1
            ok = True
            for q in range(nres):
                if not res_avail[r0 if r0 >= 0 else links0 + route_flat[q - r0 - 1]]:
                    ok = False
                    break
            if ok:
                tn = t_new
                for q in range(nres):
                    r = r0 if r0 >= 0 else links0 + route_flat[q - r0 - 1]
                    res_avail[r] = False
                    tn = max(tn, res_time[r])
                ev_time[nev] = tn
                ev_adm[nev] = True
                n_heap = _hpush(heap_t, heap_i, n_heap, tn, nev)
            else:
                key = _wait_key(prio, t_new)
                ev_key[nev] = key
                for q in range(nres):
                    r = r0 if r0 >= 0 else links0 + route_flat[q - r0 - 1]
                    # _wpush(ev_key, wq_e, wq_n, r, entry), written out
                    entry = (nev << WQ_SHIFT) | q
                    pos = wq_n[r]
                    wq_n[r] = pos + 1
                    while pos > 0:
                        parent = (pos - 1) >> 1
                        up = wq_e[r, parent]
                        kp = ev_key[up >> WQ_SHIFT]
                        if (key < kp) | ((key == kp) & (entry < up)):
                            wq_e[r, pos] = up
                            pos = parent
                            continue
                        break
                    wq_e[r, pos] = entry
                    waiting += 1
        if done:
            cur = t
            break
        sys_t = t + lat
        cur = max(sys_t, prev)
        # ---- release resources, then admit head waiters in time order ----
        nres = ev_nres[ev]
        r0 = ev_res[ev]
        for q in range(nres):
            r = r0 if r0 >= 0 else links0 + route_flat[q - r0 - 1]
            res_avail[r] = True
            res_time[r] = max(res_time[r], sys_t)
        n_small = 0
        for q in range(nres):
            r = r0 if r0 >= 0 else links0 + route_flat[q - r0 - 1]
            while wq_n[r] > 0:
                w = wq_e[r, 0] >> WQ_SHIFT
                if ev_adm[w]:
                    # heapq.heappop of queue r (_siftup from the root, then _siftdown)
                    n = wq_n[r] - 1
                    wq_n[r] = n
                    waiting -= 1
                    if n > 0:
                        new = wq_e[r, n]
                        pos = 0
                        child = 1
                        while child < n:
                            right = child + 1
                            a = wq_e[r, child]
                            if right < n:
                                b = wq_e[r, right]
                                ka = ev_key[a >> WQ_SHIFT]
                                kb = ev_key[b >> WQ_SHIFT]
                                if not ((ka < kb) | ((ka == kb) & (a < b))):
                                    child = right
                                    a = b
                            wq_e[r, pos] = a
                            pos = child
                            child = 2 * pos + 1
                        key = ev_key[new >> WQ_SHIFT]
                        while pos > 0:
                            parent = (pos - 1) >> 1
                            up = wq_e[r, parent]
                            kp = ev_key[up >> WQ_SHIFT]
                            if (key < kp) | ((key == kp) & (new < up)):
                                wq_e[r, pos] = up
                                pos = parent
                                continue
                            break
                        wq_e[r, pos] = new
                    continue
                # heapq.heappush of w on the head waiters
                pos = n_small
                n_small += 1
                tw = ev_time[w]
                while pos > 0:
                    parent = (pos - 1) >> 1
                    up = small_i[parent]
                    if tw < ev_time[up]:
                        small_i[pos] = up
                        pos = parent
                        continue
                    break
                small_i[pos] = w
                break
        while n_small > 0:
            # heapq.heappop of the head waiters
            n_small -= 1
            w = small_i[n_small]
            if n_small > 0:
                last = w
                w = small_i[0]
                pos = 0
                child = 1
                while child < n_small:
                    right = child + 1
                    if right < n_small and not ev_time[small_i[child]] < ev_time[small_i[right]]:
                        child = right
                    small_i[pos] = small_i[child]
                    pos = child
                    child = 2 * pos + 1
                tl = ev_time[last]
                while pos > 0:
                    parent = (pos - 1) >> 1
                    if tl < ev_time[small_i[parent]]:
                        small_i[pos] = small_i[parent]
                        pos = parent
                        continue
                    break
                small_i[pos] = last
            if ev_adm[w]:
                continue
            nw = ev_nres[w]
            r0 = ev_res[w]
            ok = True
            for q in range(nw):
                if not res_avail[r0 if r0 >= 0 else links0 + route_flat[q - r0 - 1]]:
                    ok = False
                    break
            if ok:
                tw = ev_time[w]
                for q in range(nw):
                    r = r0 if r0 >= 0 else links0 + route_flat[q - r0 - 1]
                    res_avail[r] = False
                    tw = max(tw, res_time[r])
                ev_adm[w] = True
                tw = max(tw, sys_t)
                ev_time[w] = tw
                ev_key[w] = _wait_key(ch_prio[ev_info[w] >> EV_KIND_BITS], tw)
                n_heap = _hpush(heap_t, heap_i, n_heap, tw, w)
    if shared:
        flows_settle(fs, route_start, route_flat, route_len, num_dies)
    counters[Counter.EVENTS] += n_events
    counters[Counter.HOPS] += n_hops
    counters[Counter.LOCAL_LLC_HITS] += n_llc_hits
    counters[Counter.REPLICA_READS] += n_replica_reads
    counters[Counter.REMOTE_LLC_HITS] += n_remote_llc_hits
    counters[Counter.REMOTE_HBM_READS] += n_remote_hbm_reads
    counters[Counter.LOCAL_HBM_READS] += n_local_hbm_reads
    counters[Counter.DUPS] = n_dup
    counters[Counter.STALLED] = 0 if done else 1
    counters[Counter.END_NS] = cur
    return n_ev


@njit(cache=True)
def _run_layer(st, t0, layer, tasks, pred, num_experts, slices, shared, pf):
    """Simulate one layer from ``t0`` to its barrier (see the module docstring): unpacks the
    one typed state structure for the event loop. Counters of the run accumulate in
    ``st.outputs``; the layer's own results are its ``span_lo``/``span_hi``/``dram_bytes``/
    ``hbm_busy_ns``, :attr:`Counter.DUPS` copies in ``dups``, :attr:`Counter.STALLED` and
    :attr:`Counter.END_NS`, each reset here first."""
    tb, ev, res, ch, out = st.tables, st.events, st.resources, st.chains, st.outputs
    _reset_layer_outputs(out)
    n_ev = _simulate(
        t0, layer, tasks.expert, tasks.die, tasks.tokens, tb.home, tasks.remote,
        pred.enabled, pred.copy_ok, pred.redirect, pred.copy, num_experts, slices,
        tb.route_start, tb.route_flat, tb.route_len,
        tb.llc_hit_ns, tb.llc_miss_ns, tb.llc_write_ns, tb.request_ns, tb.data_ns,
        tb.hbm_slice_ns, tb.local_read_ns, tb.hbm_of_die, tb.compute_ns, tb.compute_of_die,
        tb.slice_bytes,
        tb.act_bytes_per_token, tb.request_bytes,
        res.free, res.release_ns, st.llc.tags, st.llc.fill, tb.llc_sets, tb.llc_ways,
        ev.time, ev.info, ev.key, ev.admitted, ev.num_res, ev.res,
        ev.heap_t, ev.heap_i, res.wait_event, res.wait_len,
        ch.die, ch.expert, ch.slice, ch.tokens, ch.home, ch.prio, ch.kind, ch.start,
        out.span_lo, out.span_hi, out.dram_bytes, out.link_bytes, out.die_stats,
        out.counters, out.dups, shared, st.flows, out.hbm_busy_ns, pf.enabled, pf.ready,
        pf.read)
    _add_layer_stats(out.span_lo, out.span_hi, out.dram_bytes, tasks.die, tasks.tokens, slices,
                     out.layer_stats)
    return n_ev


@njit(cache=True, inline="always")
def _reset_layer_outputs(out):
    """Clear the layer's own results in ``out`` (:func:`_run_layer`) before it runs."""
    out.counters[Counter.DUPS] = 0
    out.counters[Counter.STALLED] = 0
    out.counters[Counter.END_NS] = 0
    out.span_lo[:] = -1
    out.span_hi[:] = -1
    out.dram_bytes[:] = 0.0
    out.hbm_busy_ns[:] = 0


@njit(cache=True)
def _add_layer_stats(span_lo, span_hi, dram_bytes, task_die, task_tokens, slices, acc):
    """Add one layer's usage, skew and HBM-evenness figures to ``acc`` (:class:`LayerStat`);
    sums run in die order, as the artefact's numpy sums over a layer's dies do."""
    num_dies = span_lo.shape[0]
    busy_sum = 0.0
    busy_max = 0.0
    busy_min = np.inf
    working = 0
    for d in range(num_dies):
        if span_lo[d] >= 0:
            busy = float(span_hi[d] - span_lo[d])
            busy_sum += busy
            busy_max = max(busy_max, busy)
            busy_min = min(busy_min, busy)
            working += 1
    if working:
        acc[LayerStat.BUSY_SUM] += busy_sum
        acc[LayerStat.BUSY_BOUND] += busy_max * num_dies
        if busy_min > 0:
            acc[LayerStat.MAX_OVER_MIN] += busy_max / busy_min
        if busy_sum > 0:
            acc[LayerStat.MAX_OVER_AVG] += busy_max / (busy_sum / working)
    slices_per_die = np.zeros(num_dies, np.float64)
    tokens_per_die = np.zeros(num_dies, np.float64)
    for k in range(task_die.shape[0]):
        slices_per_die[task_die[k]] += slices
        tokens_per_die[task_die[k]] += task_tokens[k] * slices
    acc[LayerStat.SLICES_AVG] += slices_per_die.sum() / num_dies
    acc[LayerStat.SLICES_MAX] += slices_per_die.max()
    acc[LayerStat.TOKENS_AVG] += tokens_per_die.sum() / num_dies
    acc[LayerStat.TOKENS_MAX] += tokens_per_die.max()
    dram_max = dram_bytes.max()
    if dram_max > 0:
        acc[LayerStat.DRAM_EVENNESS] += dram_bytes.sum() / num_dies / dram_max
        acc[LayerStat.DRAM_LAYERS] += 1
    acc[LayerStat.LAYERS] += 1


class LayerKernel:
    """The state of one replay's event simulation; runs the compiled kernel layer by layer.

    Parameters
    ----------
    tables : hwmodel.system.lowering.Tables
        The lowered wafer (per-die and per-route latencies, routes, homes).
    num_links : int
        Links of the mesh (one resource each, after the dies' LLC port, HBM and compute).
    network : hwmodel.system.flows.LinkNetwork, optional
        Links shared by bandwidth (physical switch ``shared_links``): transfers are flows of
        :mod:`hwmodel.system.flows`. None: the paper's link holding.
    """

    def __init__(self, tables, num_links: int, network=None):
        self.tables = tables
        self.network = network
        self.flows = new_flow_state(network, 0)
        self.num_dies = N = len(tables.llc_sets)
        self.num_links = num_links
        self.max_res = max(1, int(tables.route_len.max(initial=0)))
        self.n_res = 3 * N + num_links
        sets, ways = int(tables.llc_sets.max()), int(tables.llc_ways.max())
        self.llc = LLCState(tags=np.full((N, sets, ways), -1, np.int64),
                            fill=np.zeros((N, sets), np.int64))
        self.outputs = Outputs(
            span_lo=np.full(N, -1, np.int64), span_hi=np.full(N, -1, np.int64),
            dram_bytes=np.zeros(N, np.float64), link_bytes=np.zeros(num_links, np.float64),
            die_stats=np.zeros((N, len(DieStat)), np.float64),
            counters=np.zeros(len(Counter), np.int64),
            layer_stats=np.zeros(len(LayerStat), np.float64), dups=np.zeros((0, 3), np.int64),
            hbm_busy_ns=np.zeros(N, np.int64))
        self._no_prefetch = Prefetched(False, np.zeros((1, 1), np.bool_),
                                       np.zeros((1, 1), np.bool_))
        self.free = np.ones(self.n_res, np.bool_)
        self.release_ns = np.zeros(self.n_res, np.int64)
        self._cap_chains = 0
        self._grow(1024)

    @property
    def counters(self) -> np.ndarray:
        return self.outputs.counters

    @property
    def die_stats(self) -> np.ndarray:
        return self.outputs.die_stats

    @property
    def link_bytes(self) -> np.ndarray:
        return self.outputs.link_bytes

    def use_tables(self, tables) -> None:
        """Run the next layers on ``tables`` (the same wafer's, now with its route tables:
        :func:`~hwmodel.system.lowering.with_routes`); the caches, resources and outputs
        carry on."""
        self.tables = tables
        self.max_res = max(1, int(tables.route_len.max(initial=0)))
        self._allocate(self._cap_chains)

    def flow_counts(self) -> dict:
        """With shared links: ``{"flows": flows of the run}`` (else empty)."""
        if self.network is None:
            return {}
        return {"flows": int(self.flows.scalars[1])}

    def _grow(self, chains: int) -> None:
        self._allocate(max(chains, 2 * self._cap_chains))

    def _allocate(self, cap: int) -> None:
        """Event, wait-queue and chain arrays for ``cap`` chains (between layers: they hold
        nothing from one layer to the next)."""
        self._cap_chains = cap
        ev = 8 * cap + 64
        heap = ev
        if self.network is not None:
            # one more event (the network's), and up to one superseded arrival time in the
            # heap per flow start and end (two flows per chain)
            ev += 1
            heap = ev + 4 * cap
            self.flows = grown(self.flows, cap)
        wq = 2 * cap + 16
        zeros = lambda *shape: np.zeros(shape, np.int64)
        if self.max_res >= 1 << WQ_SHIFT:
            raise ValueError(f"a route of {self.max_res} links: the event kernel's wait "
                             f"entries hold up to {(1 << WQ_SHIFT) - 1}")
        self.events = Events(time=zeros(ev), info=zeros(ev), key=zeros(ev),
                             admitted=np.zeros(ev, np.bool_), num_res=zeros(ev),
                             res=zeros(ev), heap_t=zeros(heap), heap_i=zeros(heap))
        self.resources = Resources(free=self.free, release_ns=self.release_ns,
                                   wait_event=zeros(self.n_res, wq),
                                   wait_len=zeros(self.n_res))
        self.chains = Chains(*(zeros(cap) for _ in Chains._fields))
        self.outputs = self.outputs._replace(dups=zeros(cap, 3))
        self.state = KernelState(tables=self.tables, resources=self.resources,
                                 events=self.events, chains=self.chains, llc=self.llc,
                                 outputs=self.outputs, flows=self.flows)

    def run(self, t0: int, layer: int, tasks: Tasks, prediction: Prediction, *,
            num_experts: int, slices: int, prefetched: Prefetched | None = None):
        """Run one layer; returns ``(end_ns, stalled, dups)`` (dups: rows die, expert,
        slice). The layer's per-die spans, HBM bytes and HBM busy times are in
        :attr:`outputs`; ``prefetched`` (physical switch ``prefetch``) the slices each die
        holds read ahead."""
        _run_layer(*self.layer_inputs(t0, layer, tasks, prediction, num_experts=num_experts,
                                      slices=slices, prefetched=prefetched))
        return self.layer_result()

    def layer_inputs(self, t0: int, layer: int, tasks: Tasks, prediction: Prediction, *,
                     num_experts: int, slices: int, prefetched: Prefetched | None = None):
        """The arguments of :func:`_run_layer` for one layer (:meth:`run`'s), with room made
        for its chains."""
        chains = len(tasks.expert) * slices
        if chains > self._cap_chains:
            self._grow(chains)
        return (self.state, int(t0), int(layer), tasks, prediction, num_experts, slices,
                self.network is not None,
                self._no_prefetch if prefetched is None else prefetched)

    def layer_result(self):
        """``(end_ns, stalled, dups)`` of the layer run last (:meth:`run`)."""
        out = self.outputs
        n_dup = int(out.counters[Counter.DUPS])
        return (int(out.counters[Counter.END_NS]), bool(out.counters[Counter.STALLED]),
                out.dups[:n_dup].copy())


# ------------------------------------------------------------- workload counting kernels
@njit(cache=True)
def count_experts(rows, num_experts, out):
    """``out[l, e]`` = selections of expert ``e`` at MoE layer ``l`` in ``rows`` (n, L, k),
    any integer dtype (no int64 copy of a large prefill is made). ``out`` is overwritten."""
    out[:, :] = 0
    n, num_layers, k = rows.shape
    for r in range(n):
        for layer in range(num_layers):
            for a in range(k):
                out[layer, rows[r, layer, a]] += 1


@njit(cache=True)
def first_appearance(rows, layer, num_experts, out):
    """Experts of ``layer`` in order of first appearance in ``rows`` (requests, tokens, ids
    in order) written to ``out``; returns how many."""
    seen = np.zeros(num_experts, np.bool_)
    n = 0
    for r in range(rows.shape[0]):
        for a in range(rows.shape[2]):
            e = rows[r, layer, a]
            if not seen[e]:
                seen[e] = True
                out[n] = e
                n += 1
    return n
