"""Compiled event kernel of the replay: one MoE layer (one barrier interval) per call.

The Python layer (:mod:`hwmodel.system.replay`) owns strategies, twins and statistics; this
module owns the discrete-event simulation of the per-slice chains of SPEC section 6 over flat
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

import numpy as np

try:
    from numba import njit
except ImportError:  # pragma: no cover - exercised only without numba
    def njit(*args, **kwargs):
        if args and callable(args[0]):
            return args[0]
        return lambda f: f

__all__ = ["EV_NAMES", "LayerKernel"]

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
EV_NAMES = ("lookup", "local_read", "request", "remote_llc_read", "remote_hbm_read", "data",
            "compute", "llc_store", "remote_llc_store", "dup_store", "done")

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
# current time (an admitted event's raised time is seen by its duplicate entries).
@njit(cache=True, inline="always")
def _spush(ev_time, si, n, i):
    pos = n
    t = ev_time[i]
    while pos > 0:
        parent = (pos - 1) >> 1
        if t < ev_time[si[parent]]:
            si[pos] = si[parent]
            pos = parent
            continue
        break
    si[pos] = i
    return n + 1


@njit(cache=True, inline="always")
def _spop(ev_time, si, n):
    n -= 1
    last = si[n]
    if n == 0:
        return last, 0
    ret = si[0]
    pos = 0
    child = 1
    while child < n:
        right = child + 1
        if right < n and not ev_time[si[child]] < ev_time[si[right]]:
            child = right
        si[pos] = si[child]
        pos = child
        child = 2 * pos + 1
    t = ev_time[last]
    while pos > 0:
        parent = (pos - 1) >> 1
        if t < ev_time[si[parent]]:
            si[pos] = si[parent]
            pos = parent
            continue
        break
    si[pos] = last
    return ret, n


# ------------------------------------------------ wait queues (CPython heapq, live keys)
# The artefact's wait queues are heapq lists ordered by (priority desc, event time, arrival),
# where the event time is read when compared. An admitted event stays in the other queues it
# waited on (removed lazily at the head) with its time already raised, which can leave those
# heaps out of order; mirroring heapq's exact sift rules with live keys reproduces that too.
@njit(cache=True, inline="always")
def _wless(ev_prio, ev_time, we, ws, a, b):
    ea = we[a]
    eb = we[b]
    if ev_prio[ea] != ev_prio[eb]:
        return ev_prio[ea] > ev_prio[eb]
    if ev_time[ea] != ev_time[eb]:
        return ev_time[ea] < ev_time[eb]
    return ws[a] < ws[b]


@njit(cache=True)
def _wsiftdown(ev_prio, ev_time, we, ws, startpos, pos):
    ne = we[pos]
    ns = ws[pos]
    pn = ev_prio[ne]
    tn = ev_time[ne]
    while pos > startpos:
        parent = (pos - 1) >> 1
        ep = we[parent]
        if pn != ev_prio[ep]:
            less = pn > ev_prio[ep]
        elif tn != ev_time[ep]:
            less = tn < ev_time[ep]
        else:
            less = ns < ws[parent]
        if less:
            we[pos] = we[parent]
            ws[pos] = ws[parent]
            pos = parent
            continue
        break
    we[pos] = ne
    ws[pos] = ns


@njit(cache=True)
def _wpush(ev_prio, ev_time, wq_s, wq_e, wq_n, r, seq, ev):
    we = wq_e[r]
    ws = wq_s[r]
    pos = wq_n[r]
    we[pos] = ev
    ws[pos] = seq
    wq_n[r] = pos + 1
    _wsiftdown(ev_prio, ev_time, we, ws, 0, pos)


@njit(cache=True)
def _wpop(ev_prio, ev_time, wq_s, wq_e, wq_n, r):
    we = wq_e[r]
    ws = wq_s[r]
    n = wq_n[r] - 1
    wq_n[r] = n
    if n == 0:
        return
    we[0] = we[n]
    ws[0] = ws[n]
    # heapq._siftup(heap, 0) then _siftdown
    ne = we[0]
    ns = ws[0]
    pos = 0
    child = 1
    while child < n:
        right = child + 1
        if right < n and not _wless(ev_prio, ev_time, we, ws, child, right):
            child = right
        we[pos] = we[child]
        ws[pos] = ws[child]
        pos = child
        child = 2 * pos + 1
    we[pos] = ne
    ws[pos] = ns
    _wsiftdown(ev_prio, ev_time, we, ws, 0, pos)


# ------------------------------------------------------------------------------- the LLC
@njit(cache=True, inline="always")
def _llc_check(tags, die, tag, num_sets, expert):
    s = expert % num_sets
    for w in range(tags.shape[2]):
        if tags[die, s, w] == tag:
            return True
    return False


@njit(cache=True)
def _llc_store(tags, fill, die, tag, num_sets, expert):
    """LRU store: ways ordered oldest first; a hit moves the line to the newest position."""
    s = expert % num_sets
    ways = tags.shape[2]
    n = fill[die, s]
    for w in range(n):
        if tags[die, s, w] == tag:
            for v in range(w, n - 1):
                tags[die, s, v] = tags[die, s, v + 1]
            tags[die, s, n - 1] = tag
            return
    if n >= ways:
        for v in range(n - 1):
            tags[die, s, v] = tags[die, s, v + 1]
        tags[die, s, n - 1] = tag
    else:
        tags[die, s, n] = tag
        fill[die, s] = n + 1


# ------------------------------------------------------------------------- layer kernel
@njit(cache=True)
def _run_layer(t0, layer, task_expert, task_die, task_tokens, home, prio_of_task,
               pred, copy_ok, cp_en, is_local, num_experts, slices,
               route_links, route_len,
               lat_llc_hit, lat_llc_miss, lat_llc_write, lat_req, lat_data, lat_hbm_slice,
               lat_local_read, lat_compute, slice_bytes, act_bytes_per_token, req_bytes,
               res_avail, res_time, llc_tags, llc_fill, num_sets,
               ev_time, ev_kind, ev_chain, ev_prio, ev_adm, ev_nres, ev_res,
               heap_t, heap_i, wq_s, wq_e, wq_n,
               ch_die, ch_expert, ch_slice, ch_tokens, ch_home, ch_kind, ch_start,
               span_lo, span_hi, dram_bytes, link_bytes, die_stats, counters, dup_out):
    """Simulate one layer from time ``t0`` to its barrier; see the module docstring.

    ``counters`` (int64): 0 hops, 1 events, 2 dups written to dup_out, 3 stalled flag,
    4 end time, 5 local LLC hits, 6 redirected (replica) reads, 7 remote LLC hits,
    8 remote HBM reads, 9 local HBM reads. Float sums of bytes go to ``die_stats``
    (per die: 0 local read, 1 remote read served, 2 local write, 3 bytes x hops sent).
    """
    num_dies = llc_tags.shape[0]
    n_tasks = task_expert.shape[0]
    n_ev = 0
    n_heap = 0
    seq = 0
    n_chain = 0
    pending = 0
    waiting = 0
    n_dup = 0
    # spawn: 3 chains per task in plan order, each an LLC lookup on its die
    for k in range(n_tasks):
        d = task_die[k]
        e = task_expert[k]
        for s in range(slices):
            c = n_chain
            n_chain += 1
            ch_die[c] = d
            ch_expert[c] = e
            ch_slice[c] = s
            ch_tokens[c] = task_tokens[k]
            ch_home[c] = home[e]
            ev = n_ev
            n_ev += 1
            ev_time[ev] = t0
            ev_kind[ev] = EV_LOOKUP
            ev_chain[ev] = c
            ev_prio[ev] = prio_of_task[k]
            ev_adm[ev] = False
            ev_nres[ev] = 1
            ev_res[ev, 0] = d                       # LLC port of die d
            pending += 1
            # _add_event
            r = d
            if res_avail[r]:
                res_avail[r] = False
                ev_time[ev] = max(ev_time[ev], res_time[r])
                ev_adm[ev] = True
                n_heap = _hpush(heap_t, heap_i, n_heap, ev_time[ev], ev)
            else:
                _wpush(ev_prio, ev_time, wq_s, wq_e, wq_n, r, seq, ev)
                seq += 1
                waiting += 1
    small_i = np.empty(64, dtype=np.int64)
    new_evs = np.empty(4, dtype=np.int64)
    cur = t0
    done = False
    while n_heap > 0:
        ev, n_heap = _hpop(heap_t, heap_i, n_heap)
        counters[1] += 1
        prev = cur
        t = ev_time[ev]
        c = ev_chain[ev]
        d = ch_die[c]
        e = ch_expert[c]
        h = ch_home[c]
        kind = ev_kind[ev]
        prio = ev_prio[ev]
        tag = (layer * num_experts + e) * slices + ch_slice[c]
        lat = 0
        n_new = 0
        # ---- callback: compute the step latency and create the chain's next events ----
        if kind == EV_LOOKUP:
            ch_start[c] = t
            if pred:
                if _llc_check(llc_tags, d, tag, num_sets, e):
                    ch_kind[c] = K_LLC_HIT
                elif is_local[d, e]:
                    ch_kind[c] = K_LOCAL
                    if d != h:
                        counters[6] += 1
                elif _llc_check(llc_tags, h, tag, num_sets, e):
                    ch_kind[c] = K_REMOTE_LLC
                else:
                    ch_kind[c] = K_REMOTE_HBM
            elif d == h:
                if _llc_check(llc_tags, d, tag, num_sets, e):
                    ch_kind[c] = K_LLC_HIT
                else:
                    ch_kind[c] = K_LOCAL
            elif _llc_check(llc_tags, h, tag, num_sets, e):
                ch_kind[c] = K_REMOTE_LLC
            else:
                ch_kind[c] = K_REMOTE_HBM
            ck = ch_kind[c]
            if ck == K_LLC_HIT:
                lat = lat_llc_hit
                new_evs[0] = EV_COMPUTE
                counters[5] += 1
            elif ck == K_LOCAL:
                lat = lat_llc_miss
                new_evs[0] = EV_LOCAL_READ
            else:
                lat = lat_llc_miss
                new_evs[0] = EV_REQ
            n_new = 1
        elif kind == EV_REQ:
            hops = route_len[d, h]
            counters[0] += hops
            lat = lat_req[hops]
            die_stats[d, 3] += req_bytes * hops
            for j in range(hops):
                link_bytes[route_links[d, h, j]] += req_bytes
            if ch_kind[c] == K_REMOTE_LLC:
                new_evs[0] = EV_RLLC_READ
            else:
                new_evs[0] = EV_RHBM_READ
            n_new = 1
        elif kind == EV_RLLC_READ:
            lat = lat_llc_hit
            counters[7] += 1
            new_evs[0] = EV_DATA
            n_new = 1
        elif kind == EV_RHBM_READ:
            lat = lat_hbm_slice
            counters[8] += 1
            die_stats[h, 1] += slice_bytes
            dram_bytes[h] += slice_bytes
            new_evs[0] = EV_RLLC_STORE
            new_evs[1] = EV_DATA
            n_new = 2
        elif kind == EV_DATA:
            hops = route_len[h, d]
            lat = lat_data[hops]
            die_stats[h, 3] += slice_bytes * hops
            for j in range(hops):
                link_bytes[route_links[h, d, j]] += slice_bytes
            if pred and copy_ok and cp_en[d, e] and not is_local[d, e]:
                new_evs[0] = EV_DUP_STORE
                new_evs[1] = EV_COMPUTE
                n_new = 2
            else:
                new_evs[0] = EV_COMPUTE
                n_new = 1
        elif kind == EV_LOCAL_READ:
            lat = lat_local_read[ch_tokens[c]]
            counters[9] += 1
            nbytes = slice_bytes + act_bytes_per_token * ch_tokens[c]
            die_stats[d, 0] += nbytes
            dram_bytes[d] += nbytes
            new_evs[0] = EV_LLC_STORE
            new_evs[1] = EV_COMPUTE
            n_new = 2
        elif kind == EV_COMPUTE:
            lat = lat_compute[ch_tokens[c]]
            new_evs[0] = EV_DONE
            n_new = 1
        elif kind == EV_LLC_STORE:
            _llc_store(llc_tags, llc_fill, d, tag, num_sets, e)
            lat = lat_llc_write
            new_evs[0] = EV_DONE
            n_new = 1
        elif kind == EV_RLLC_STORE:
            _llc_store(llc_tags, llc_fill, h, tag, num_sets, e)
            lat = lat_llc_write
            new_evs[0] = EV_DONE
            n_new = 1
        elif kind == EV_DUP_STORE:
            lat = lat_hbm_slice
            die_stats[d, 2] += slice_bytes
            dram_bytes[d] += slice_bytes
            dup_out[n_dup, 0] = d
            dup_out[n_dup, 1] = e
            dup_out[n_dup, 2] = ch_slice[c]
            n_dup += 1
            new_evs[0] = EV_DONE
            n_new = 1
        else:  # EV_DONE
            if span_lo[d] < 0 or ch_start[c] < span_lo[d]:
                span_lo[d] = ch_start[c]
            span_hi[d] = max(span_hi[d], t)
            pending -= 1
            if pending == 0 and n_heap == 0 and waiting == 0:
                done = True
        # ---- create the new events at t + lat and try to admit them ----
        for j in range(n_new):
            nk = new_evs[j]
            nev = n_ev
            n_ev += 1
            ev_time[nev] = t + lat
            ev_kind[nev] = nk
            ev_chain[nev] = c
            ev_prio[nev] = prio
            ev_adm[nev] = False
            if nk == EV_LOCAL_READ or nk == EV_DUP_STORE:
                ev_nres[nev] = 1
                ev_res[nev, 0] = num_dies + d
            elif nk == EV_RHBM_READ:
                ev_nres[nev] = 1
                ev_res[nev, 0] = num_dies + h
            elif nk == EV_COMPUTE:
                ev_nres[nev] = 1
                ev_res[nev, 0] = 2 * num_dies + d
            elif nk == EV_LLC_STORE:
                ev_nres[nev] = 1
                ev_res[nev, 0] = d
            elif nk == EV_RLLC_READ or nk == EV_RLLC_STORE:
                ev_nres[nev] = 1
                ev_res[nev, 0] = h
            elif nk == EV_REQ:
                hops = route_len[d, h]
                ev_nres[nev] = hops
                for q in range(hops):
                    ev_res[nev, q] = 3 * num_dies + route_links[d, h, q]
            elif nk == EV_DATA:
                hops = route_len[h, d]
                ev_nres[nev] = hops
                for q in range(hops):
                    ev_res[nev, q] = 3 * num_dies + route_links[h, d, q]
            else:  # EV_DONE holds nothing
                ev_nres[nev] = 0
            if nk == EV_RLLC_STORE or nk == EV_LLC_STORE or nk == EV_DUP_STORE:
                pending += 1
            ok = True
            for q in range(ev_nres[nev]):
                if not res_avail[ev_res[nev, q]]:
                    ok = False
                    break
            if ok:
                for q in range(ev_nres[nev]):
                    r = ev_res[nev, q]
                    res_avail[r] = False
                    ev_time[nev] = max(ev_time[nev], res_time[r])
                ev_adm[nev] = True
                n_heap = _hpush(heap_t, heap_i, n_heap, ev_time[nev], nev)
            else:
                for q in range(ev_nres[nev]):
                    _wpush(ev_prio, ev_time, wq_s, wq_e, wq_n, ev_res[nev, q], seq, nev)
                    seq += 1
                    waiting += 1
        if done:
            cur = t
            break
        sys_t = t + lat
        cur = max(sys_t, prev)
        # ---- release resources, then admit head waiters in time order ----
        nres = ev_nres[ev]
        for q in range(nres):
            r = ev_res[ev, q]
            res_avail[r] = True
            res_time[r] = max(res_time[r], sys_t)
        n_small = 0
        for q in range(nres):
            r = ev_res[ev, q]
            while wq_n[r] > 0:
                w = wq_e[r, 0]
                if ev_adm[w]:
                    _wpop(ev_prio, ev_time, wq_s, wq_e, wq_n, r)
                    waiting -= 1
                    continue
                n_small = _spush(ev_time, small_i, n_small, w)
                break
        while n_small > 0:
            w, n_small = _spop(ev_time, small_i, n_small)
            if ev_adm[w]:
                continue
            ok = True
            for q in range(ev_nres[w]):
                if not res_avail[ev_res[w, q]]:
                    ok = False
                    break
            if ok:
                for q in range(ev_nres[w]):
                    r = ev_res[w, q]
                    res_avail[r] = False
                    ev_time[w] = max(ev_time[w], res_time[r])
                ev_adm[w] = True
                ev_time[w] = max(ev_time[w], sys_t)
                n_heap = _hpush(heap_t, heap_i, n_heap, ev_time[w], w)
    counters[2] = n_dup
    counters[3] = 0 if done else 1
    counters[4] = cur
    return n_ev


class LayerKernel:
    """Holds the flat state arrays of one replay and runs the compiled kernel per layer.

    Parameters
    ----------
    num_dies, num_links : int
        Dies and mesh links (resources: LLC port, HBM and compute per die; one per link).
    route_links, route_len : numpy.ndarray
        ``route_links[s, d, :route_len[s, d]]``: link indices of the XY path ``s -> d``.
    llc_sets, llc_ways : int
        LLC geometry (line = one slice).
    """

    def __init__(self, num_dies: int, num_links: int, route_links: np.ndarray,
                 route_len: np.ndarray, llc_sets: int, llc_ways: int):
        self.num_dies = num_dies
        self.num_links = num_links
        self.route_links = np.ascontiguousarray(route_links, dtype=np.int64)
        self.route_len = np.ascontiguousarray(route_len, dtype=np.int64)
        self.max_res = max(1, int(self.route_len.max()))
        n_res = 3 * num_dies + num_links
        self.n_res = n_res
        self.res_avail = np.ones(n_res, dtype=np.bool_)
        self.res_time = np.zeros(n_res, dtype=np.int64)
        self.llc_sets = llc_sets
        self.llc_tags = np.full((num_dies, llc_sets, llc_ways), -1, dtype=np.int64)
        self.llc_fill = np.zeros((num_dies, llc_sets), dtype=np.int64)
        self.link_bytes = np.zeros(num_links, dtype=np.float64)
        self.die_stats = np.zeros((num_dies, 4), dtype=np.float64)
        self.counters = np.zeros(16, dtype=np.int64)
        self._cap_chains = 0
        self._grow(1024)

    def _grow(self, chains: int) -> None:
        cap = max(chains, 2 * self._cap_chains)
        self._cap_chains = cap
        ev = 8 * cap + 64
        self.ev_time = np.zeros(ev, np.int64)
        self.ev_kind = np.zeros(ev, np.int64)
        self.ev_chain = np.zeros(ev, np.int64)
        self.ev_prio = np.zeros(ev, np.int64)
        self.ev_adm = np.zeros(ev, np.bool_)
        self.ev_nres = np.zeros(ev, np.int64)
        self.ev_res = np.zeros((ev, self.max_res), np.int64)
        self.heap_t = np.zeros(ev, np.int64)
        self.heap_i = np.zeros(ev, np.int64)
        wq = 2 * cap + 16
        self.wq_s = np.zeros((self.n_res, wq), np.int64)
        self.wq_e = np.zeros((self.n_res, wq), np.int64)
        self.wq_n = np.zeros(self.n_res, np.int64)
        self.ch = [np.zeros(cap, np.int64) for _ in range(7)]
        self.dup_out = np.zeros((cap, 3), np.int64)

    def run(self, t0, layer, task_expert, task_die, task_tokens, home, prio, *, pred,
            copy_ok, cp_en, is_local, num_experts, slices, lat, dram_bytes, span_lo,
            span_hi):
        """Run one layer; returns ``(end_time, stalled, dups)`` (dups: rows die, expert,
        slice). ``lat`` is a :class:`hwmodel.system.replay.Latencies`."""
        chains = len(task_expert) * slices
        if chains > self._cap_chains:
            self._grow(chains)
        self.counters[2:5] = 0
        _run_layer(int(t0), int(layer), task_expert, task_die, task_tokens, home, prio,
                   pred, copy_ok, cp_en, is_local, num_experts, slices,
                   self.route_links, self.route_len,
                   lat.llc_hit, lat.llc_miss, lat.llc_write, lat.request, lat.data,
                   lat.hbm_slice, lat.local_read, lat.compute, lat.slice_bytes,
                   lat.act_bytes_per_token, lat.request_bytes,
                   self.res_avail, self.res_time, self.llc_tags, self.llc_fill, self.llc_sets,
                   self.ev_time, self.ev_kind, self.ev_chain, self.ev_prio, self.ev_adm,
                   self.ev_nres, self.ev_res, self.heap_t, self.heap_i,
                   self.wq_s, self.wq_e, self.wq_n,
                   *self.ch, span_lo, span_hi, dram_bytes, self.link_bytes, self.die_stats,
                   self.counters, self.dup_out)
        n_dup = int(self.counters[2])
        return int(self.counters[4]), bool(self.counters[3]), self.dup_out[:n_dup].copy()


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
def count_pairs(prev_rows, prev_index, cur_rows, cur_index, out):
    """Cross-token pairs: for each ``j``, every expert of row ``prev_index[j]`` of
    ``prev_rows`` followed by every expert of row ``cur_index[j]`` of ``cur_rows``, per layer:
    ``out[l, i, j] += 1``. ``out`` (L, E, E) is overwritten."""
    out[:, :, :] = 0
    num_layers = prev_rows.shape[1]
    k = prev_rows.shape[2]
    for j in range(prev_index.shape[0]):
        p = prev_index[j]
        c = cur_index[j]
        for layer in range(num_layers):
            for a in range(k):
                i = prev_rows[p, layer, a]
                for b in range(k):
                    out[layer, i, cur_rows[c, layer, b]] += 1


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


@njit(cache=True)
def union_of_rows(task_expert, task_die, top, stop_at_die_id, out):
    """Predictor ``cp_en`` of every die: ``out[d]`` = OR of ``top[e]`` over the experts ``e``
    die ``d`` runs, in plan order. With ``stop_at_die_id`` (the artefact's quirk) a die's
    list stops growing once it holds the expert whose id equals the die id."""
    out[:, :] = False
    stopped = np.zeros(out.shape[0], np.bool_)
    for k in range(task_expert.shape[0]):
        d = task_die[k]
        if stopped[d]:
            continue
        e = task_expert[k]
        for j in range(top.shape[1]):
            if top[e, j]:
                out[d, j] = True
        if stop_at_die_id and e == d:
            stopped[d] = True
