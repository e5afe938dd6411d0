"""Token dispatch and combine: counted (``token_dispatch``) and timed (``dispatch_time``).

In the paper, the activations of a token are simply present on the die that runs its expert.
On a physical wafer each token's hidden state travels from the die where its attention ran to
the die of each of its top-k experts (dispatch), and the expert's output travels back (combine).
``token_dispatch`` counts that traffic: messages, link crossings (hops), bytes and bytes x
hops. ``dispatch_time`` also times it, as two all-to-all phases around each MoE layer's experts:

* **dispatch**: at the layer's launch, every (attention die, expert die) pair with tokens to
  send sends them as one transfer of ``tokens x hidden x 2 B``; the experts start when the
  last transfer has arrived;
* **combine**: when the layer's experts have all finished, each pair sends the outputs back
  (the same bytes, the other way); the next layer starts when the last one has arrived.

Transfers of a phase all start together. With ``shared_links`` they are flows sharing the
links max-min (:func:`hwmodel.system.flows.transfer_phase`); otherwise each holds every link of
its route for its whole time, as the paper's transfers do, in order of (source, destination).

Where a token's attention runs follows ``attention_placement`` (as for the HBM budget,
:mod:`hwmodel.system.memory_budget`):

* ``layer-sharded``: every token of layer ``l`` starts on live die ``l mod A``;
* ``data-parallel``: a token of request ``r`` starts on live die ``r mod A``.

An expert whose tokens are split over several dies (Algorithm 1's blocks) takes them in token
order: its first task gets its first ``task_t`` tokens (batch order, then token order), and so
on. Hops are the route lengths of the wafer's routing (``Tables.route_len``), each way. A message
whose source and destination are the same die crosses no link and moves no link bytes.
"""

from __future__ import annotations

import numpy as np

from ..jit import njit
from .engine import Counter, Prediction, Prefetched, Tasks, _run_layer
from .flows import grown, link_network, new_flow_state, transfer_phase
from .memory_budget import layer_dies, request_dies

__all__ = ["DISPATCH_COUNTS", "TokenDispatch", "pair_tasks"]

#: The counters this switch adds to ``ReplayResult.counts``.
DISPATCH_COUNTS = ("dispatch_messages", "dispatch_remote_messages", "dispatch_hops",
                   "dispatch_bytes", "dispatch_byte_hops")


class TokenDispatch:
    """Dispatch and combine traffic of a run, layer by layer.

    Parameters
    ----------
    replay : hwmodel.system.replay.Replay
    kernel : hwmodel.system.engine.LayerKernel, optional
        The run's kernel, to time the traffic on its links (``dispatch_time``; its flow state
        when links are shared). None: counted only.
    """

    def __init__(self, replay, kernel=None):
        model, store = replay.model, replay.store
        live = replay.live_dies
        self.route_len = np.asarray(replay.routed_tables().route_len, np.int64)
        # hops of a message there and back, per (source, destination)
        self.round_trip = self.route_len + self.route_len.T
        self.token_bytes = model.hidden_dim * model.dtype_bytes
        self.layer_die = layer_dies(live, store.moe_layers)
        self.request_die = request_dies(live, np.arange(len(store)))
        self.sharded = replay.params.attention_placement == "layer-sharded"
        self.totals = dict.fromkeys(DISPATCH_COUNTS, 0)
        self.kernel = kernel
        self.timed = kernel is not None
        self.tables = replay.tables
        self.pairs = (np.zeros(0, np.int64),) * 3          # this layer's src, dst, bytes
        # what a layer's tally writes, made once: its sums, and its transfers (``pairs`` are
        # views of these, read before the next layer's tally)
        dies = len(self.route_len)
        self._sums = np.empty(3, np.int64)
        self._pair_dies = np.empty((2, dies * dies), np.int64)
        self._pair_bytes = np.empty(dies * dies)
        if self.timed:
            self.totals.update(dispatch_ns=0, combine_ns=0)
            self._ends = np.zeros(3, np.int64)          # what run_layer's kernel writes
            # the links' rates and hop latencies, for the paper's link holding
            self.holding = new_flow_state(link_network(replay.wafer), 0)

    def layer(self, layer, rows, requests, task_e, task_d, task_t) -> None:
        """Count one MoE layer's dispatch and combine (``rows`` and ``requests`` of the
        iteration, the allocation's tasks)."""
        if self.sharded:            # every token starts on the layer's die: one message a task
            src = np.full(len(task_d), self.layer_die[layer])
            weight = np.asarray(task_t, np.int64)
            dest = np.asarray(task_d, np.int64)
        else:
            src, dest = self._token_pairs(layer, rows, requests, task_e, task_d, task_t)
            weight = np.ones(len(src), np.int64)
        pair_src, pair_dst = self._pair_dies
        pairs = _tally_messages(src, dest, weight, self.round_trip, self.token_bytes,
                                self._sums, pair_src, pair_dst, self._pair_bytes)
        messages, remote, hops = self._sums.tolist()
        self.totals["dispatch_messages"] += 2 * messages
        self.totals["dispatch_remote_messages"] += 2 * remote
        self.totals["dispatch_hops"] += hops
        self.totals["dispatch_bytes"] += 2 * remote * self.token_bytes
        self.totals["dispatch_byte_hops"] += hops * self.token_bytes
        if self.timed:
            self.pairs = pair_src[:pairs], pair_dst[:pairs], self._pair_bytes[:pairs]

    def run_layer(self, t0: int, layer: int, tasks: Tasks, prediction: Prediction, *,
                  num_experts: int, slices: int, prefetched: Prefetched | None = None):
        """This layer (counted by :meth:`layer`) on the kernel, in one compiled call: its
        dispatch from ``t0``; its experts (:meth:`LayerKernel.run
        <hwmodel.system.engine.LayerKernel.run>`'s arguments) when its tokens have all
        reached their dies; its combine when the experts have all finished.

        Returns
        -------
        dispatched, experts_end, combined : int
            When the tokens have all arrived, the experts have all finished and their outputs
            are all back on their tokens' dies.
        stalled : bool
        dups : numpy.ndarray
            The kernel's copies (:meth:`~hwmodel.system.engine.LayerKernel.run`).
        """
        kernel = self.kernel
        src, dst, nbytes = self.pairs
        shared = kernel.network is not None
        fs = kernel.flows if shared else self.holding
        if shared and fs.flows_i.shape[1] < len(src):
            fs = grown(fs, len(src))            # same link totals, more room for flows
        tables = self.tables
        ends = self._ends
        _dispatch_experts_combine(
            *kernel.layer_inputs(t0, layer, tasks, prediction, num_experts=num_experts,
                                 slices=slices, prefetched=prefetched),
            src, dst, nbytes, tables.route_start, tables.route_flat, tables.route_len,
            len(tables.route_len), fs, shared, ends)
        dispatched, experts_end, combined = ends.tolist()
        self.totals["dispatch_ns"] += dispatched - t0
        self.totals["combine_ns"] += combined - experts_end
        _, stalled, dups = kernel.layer_result()
        return dispatched, experts_end, combined, stalled, dups

    def _token_pairs(self, layer, rows, requests, task_e, task_d, task_t):
        """Per (token, chosen expert), in token order: its attention die and its expert
        task's die."""
        src = np.repeat(self.request_die[requests], rows.shape[2])
        return src, task_d[pair_tasks(layer, rows, task_e, task_t)]


def pair_tasks(layer, rows, task_e, task_t) -> np.ndarray:
    """Which task runs each (token, chosen expert) pair of ``layer``.

    An expert's tokens go to its tasks in token order: its first task (plan order) takes its
    first ``task_t`` tokens (batch order, then token order), and so on.

    Returns
    -------
    numpy.ndarray of int64
        The task of each pair of ``rows[:, layer, :].ravel()`` (token order).

    Raises
    ------
    AssertionError
        When an expert's tasks do not hold exactly its tokens.
    """
    experts = np.ascontiguousarray(rows[:, layer, :]).ravel()
    task_e = np.ascontiguousarray(task_e, np.int64)
    task_t = np.ascontiguousarray(task_t, np.int64)
    task = np.empty(len(experts), np.int64)
    if not _assign_pairs(experts, task_e, task_t, task):
        raise AssertionError(f"layer {layer}: the plan's tasks hold {int(task_t.sum())} "
                             f"tokens of its experts, the trace {len(experts)}")
    return task


@njit(cache=True)
def _dispatch_experts_combine(st, t0, layer, tasks, pred, num_experts, slices, shared, pf,
                              src, dst, nbytes, route_start, route_flat, route_len, num_dies,
                              link_fs, link_shared, ends):
    """:meth:`TokenDispatch.run_layer`: the transfers ``src`` -> ``dst`` of ``nbytes`` from
    ``t0`` (on ``link_fs``, max-min shared or held: ``link_shared``), then the event kernel
    (:func:`~hwmodel.system.engine._run_layer`'s arguments, the kernel's ``shared``) from
    their last arrival, then the same transfers back from the layer's end; writes the three
    ends to ``ends``."""
    dispatched = transfer_phase(t0, src, dst, nbytes, route_start, route_flat, route_len,
                                num_dies, link_fs, link_shared)
    _run_layer(st, dispatched, layer, tasks, pred, num_experts, slices, shared, pf)
    experts_end = st.outputs.counters[Counter.END_NS]
    ends[0], ends[1] = dispatched, experts_end
    ends[2] = transfer_phase(experts_end, dst, src, nbytes, route_start, route_flat, route_len,
                             num_dies, link_fs, link_shared)


@njit(cache=True)
def _tally_messages(src, dest, weight, round_trip, token_bytes, sums, pair_src, pair_dst,
                    pair_bytes):
    """Message ``i`` carries ``weight[i]`` tokens from die ``src[i]`` to die ``dest[i]`` (and
    back). Writes to ``sums`` the tokens sent, those sent to another die, and the hops there
    and back (``round_trip``, per source and destination); and one transfer per (source,
    destination) pair of different dies, in pair order, to ``pair_src``, ``pair_dst`` and
    ``pair_bytes`` (its tokens x ``token_bytes``); returns how many. One pass, where numpy
    would sort."""
    n = round_trip.shape[0]
    tokens = np.zeros(n * n)
    sent = np.zeros(n * n, np.bool_)
    messages = remote = hops = 0
    for i in range(src.shape[0]):
        s, d, w = src[i], dest[i], weight[i]
        messages += w
        hops += w * round_trip[s, d]
        if s != d:
            remote += w
            tokens[s * n + d] += w
            sent[s * n + d] = True
    sums[0], sums[1], sums[2] = messages, remote, hops
    pairs = 0
    for key in range(n * n):
        if sent[key]:
            pair_src[pairs], pair_dst[pairs] = key // n, key % n
            pair_bytes[pairs] = tokens[key] * token_bytes
            pairs += 1
    return pairs


@njit(cache=True)
def _assign_pairs(experts, task_e, task_t, task):
    """:func:`pair_tasks` over the pairs' ``experts`` (token order) into ``task``; returns
    whether every expert's tasks held exactly its tokens. One pass: each expert keeps a
    cursor on its tasks (plan order) and the tokens its current task has taken."""
    num_experts = 0
    for k in range(task_e.shape[0]):
        num_experts = max(num_experts, task_e[k] + 1)
    first = np.zeros(num_experts + 1, np.int64)          # expert e's tasks: listed[first[e]:
    for k in range(task_e.shape[0]):                     # first[e + 1]], plan order
        first[task_e[k] + 1] += 1
    for e in range(num_experts):
        first[e + 1] += first[e]
    cursor = first[:num_experts].copy()
    listed = np.empty(task_e.shape[0], np.int64)
    for k in range(task_e.shape[0]):
        listed[cursor[task_e[k]]] = k
        cursor[task_e[k]] += 1
    cursor[:] = first[:num_experts]
    taken = np.zeros(num_experts, np.int64)
    for i in range(experts.shape[0]):
        e = experts[i]
        if e < 0 or e >= num_experts:
            return False
        p = cursor[e]
        while p < first[e + 1] and taken[e] >= task_t[listed[p]]:
            p += 1
            taken[e] = 0
        if p == first[e + 1]:
            return False                                 # more tokens than its tasks hold
        cursor[e] = p
        task[i] = listed[p]
        taken[e] += 1
    for e in range(num_experts):                         # and no task left short
        p = cursor[e]
        if first[e + 1] > first[e] and taken[e] < task_t[listed[p]]:
            return False
        for q in range(p + 1, first[e + 1]):
            if task_t[listed[q]] > 0:
                return False
    return True
