"""Two micro-batches pipelined: one's communication under the other's compute (``micro_batches``).

DeepSeek-V3 serves with a *dual micro-batch overlap* (DeepSeek-V3 technical report, arXiv
2412.19437, sec. 3.4, for prefill; DeepSeek's ``profile-data`` repository on GitHub shows it
for prefill and decode): the batch is split in two micro-batches, and while one computes (attention,
experts) the other's tokens are dispatched to their experts or combined back over the network.
With this switch each iteration's batch is split in the same way:

* **The split.** Request ``r`` (batch order) belongs to micro-batch ``r mod 2`` (A: even, B:
  odd). Alternating keeps the halves balanced as requests finish and mixes long and short
  prompts in both. The allocation plan is made once per layer for the whole batch (Algorithm 1
  sees the whole layer's counts, as in paper mode); each task's tokens are then split by the
  micro-batch of their request (:func:`split_tasks`), with the dispatch's rule of which token
  goes to which task (:func:`hwmodel.system.dispatch.pair_tasks`).
* **The phases.** Per MoE layer and micro-batch: attention (compute; the micro-batch's own
  attention when ``attention_time`` is on, which plugs in
  :meth:`~hwmodel.system.attention.AttentionTime.micro_batch_ns` as
  :attr:`MicroBatches.attention`, else zero), dispatch (links), the experts (compute:
  the event kernel on the micro-batch's tasks, with their HBM reads and remote weight
  transfers, which the expert's GEMM waits for) and combine (links). Each phase is timed alone,
  one after the other, on the run's kernel and links (a serial measuring clock): dispatch and
  combine as ``dispatch_time`` times them (:mod:`hwmodel.system.dispatch`), the experts as one
  kernel run, attention by its roofline. Micro-batch B reads the weights again: its expert
  slices may hit the LLC that A filled, a copy that A made in the layer is not made again by
  B, and its attention reads the layer's attention weights from HBM a second time.
* **The composition** (:class:`Pipeline`). Two resources: the wafer's *compute* (attention and
  experts: a micro-batch's expert phase spreads over all dies, as in expert-parallel serving)
  and its *links* (dispatch and combine). Each micro-batch runs its phases in order, layer
  after layer, with no barrier between layers; each resource runs one phase at a time. The
  phases are placed greedily: the next phase placed is the one that can start first (ties:
  the one ready first, then A), so a resource never idles while a phase waits for it. At the
  switch from prefill to decode, and at the run's end, both micro-batches meet (a barrier),
  so that the prefill and decode times stay separable.

What the composition ignores: contention between overlapped phases (A's dispatch and B's remote
weight transfers on the same links, attention's and the experts' HBM reads), since each phase
is timed alone; that A's and B's expert phases could overlap on dies the other leaves idle
(and a layer-sharded attention, which runs on one die at a time, with the other's experts);
and the gating: the plan of layer ``l`` is made from both micro-batches' routing at once.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..jit import njit
from .dispatch import pair_tasks
from .engine import Prediction, Tasks

__all__ = ["MICRO_BATCH_COUNTS", "MicroBatches", "Pipeline", "pair_micro_batches",
           "split_tasks"]

#: Resources of the pipeline: the wafer's compute and its links.
COMPUTE, LINKS = "compute", "links"

#: Counters this switch adds to ``ReplayResult.counts``: each phase's time summed over both
#: micro-batches and all layers, their serial sum, and how much of it the overlap hid.
MICRO_BATCH_COUNTS = ("micro_attention_ns", "micro_dispatch_ns", "micro_experts_ns",
                      "micro_combine_ns", "micro_launch_ns", "micro_serial_ns",
                      "micro_hidden_ns")


def split_tasks(layer, rows, requests, task_e, task_t, micro=None) -> np.ndarray:
    """Tokens of each task per micro-batch: ``(2, tasks)``, row ``m`` for micro-batch ``m``
    (requests ``r`` with ``r mod 2 == m``); the two rows add up to ``task_t``. ``micro``: the
    iteration's :func:`pair_micro_batches`, if made already."""
    task = pair_tasks(layer, rows, task_e, task_t)
    if micro is None:
        micro = pair_micro_batches(requests, rows.shape[2])
    n = len(task_e)
    return np.bincount(micro * n + task, minlength=2 * n).reshape(2, n)


def pair_micro_batches(requests, top_k: int) -> np.ndarray:
    """The micro-batch of each (token, chosen expert) pair of an iteration, in token order:
    ``requests`` (each token's request) mod 2, ``top_k`` times each."""
    return np.repeat(np.asarray(requests, np.int64) % 2, top_k)


class Pipeline:
    """The two micro-batches' phases on the wafer's compute and links (module docstring).

    Feed it layer by layer (:meth:`layer`); each layer's combine is placed with the next
    layer's phases, so that a micro-batch's combine and its next dispatch can go between the
    other's. :meth:`barrier` places what is pending and makes both micro-batches wait for
    each other.
    """

    def __init__(self, t0: int = 0):
        self.free = {COMPUTE: t0, LINKS: t0}
        self.ready = [t0, t0]
        self.end = t0
        self.pending: list[list] = [[], []]

    def layer(self, phases) -> int:
        """Place one layer: ``phases[m]`` lists micro-batch ``m``'s ``(resource, ns)`` in
        order, the last being its combine (left pending). A resource None is a pure delay.
        Returns when the layer's first phase that takes time starts (the pipeline's end if
        none does)."""
        chains = [self.pending[m] + list(phases[m][:-1]) for m in (0, 1)]
        self.pending = [[phases[m][-1]] for m in (0, 1)]
        starts = self._place(chains, own=[len(phases[m]) - 1 for m in (0, 1)])
        return min(starts) if starts else self.end

    def barrier(self) -> int:
        """Place the pending combines; both micro-batches and both resources then wait for
        the last phase to end. Returns that time."""
        self._place(self.pending, own=[0, 0])
        self.pending = [[], []]
        self.ready = [self.end, self.end]
        self.free = dict.fromkeys(self.free, self.end)
        return self.end

    def _place(self, chains, own) -> list[int]:
        """Place ``chains`` greedily; returns the start times of each chain's last ``own[m]``
        phases that take time (the layer's own, not the combines pending from the layer
        before)."""
        ready, free = self.ready, self.free
        pos = [0, 0]
        size = [len(chains[0]), len(chains[1])]
        starts = []
        while True:
            m = start = None                  # the phase that can start first (ties: the
            for c in (0, 1):                  # one ready first, then A)
                if pos[c] == size[c]:
                    continue
                resource, ns = chains[c][pos[c]]
                at = ready[c]
                if resource is not None and ns and free[resource] > at:
                    at = free[resource]
                if m is None or at < start or (at == start and ready[c] < ready[m]):
                    m, start = c, at
            if m is None:
                return starts
            resource, ns = chains[m][pos[m]]
            end = start + ns
            if resource is not None and ns:
                free[resource] = end
            if ns and pos[m] >= size[m] - own[m]:
                starts.append(start)
            pos[m] += 1
            ready[m] = end
            if end > self.end:
                self.end = end


class MicroBatches:
    """One run's two micro-batches, layer by layer.

    Parameters
    ----------
    replay : hwmodel.system.replay.Replay
    kernel : hwmodel.system.engine.LayerKernel
        The run's kernel; it times each micro-batch's expert phase.
    dispatch : hwmodel.system.dispatch.TokenDispatch or None
        The run's token dispatch: counted per micro-batch, and timed when it is timed
        (``dispatch_time``); None: the tokens take no time.

    Attributes
    ----------
    attention : callable or None
        ``attention(iteration, layer, requests) -> ns``: the attention time of the micro-batch
        of ``requests`` (batch indices) at MoE ``layer``, on the wafer's compute
        (:meth:`~hwmodel.system.attention.AttentionTime.micro_batch_ns` with
        ``attention_time``). None (the default): attention is free, as in the paper.
    """

    def __init__(self, replay, kernel, dispatch=None):
        self.kernel = kernel
        self.dispatch = dispatch
        self.timed = dispatch is not None and dispatch.timed
        self.num_experts = replay.E
        self.slices = replay.model.matrices_per_expert
        self.attention: Callable[[int, int, np.ndarray], int] | None = None
        self.clock = 0                                   # the serial measuring clock
        self.pipeline = Pipeline()
        self.totals = dict.fromkeys(MICRO_BATCH_COUNTS, 0)
        self._iteration, self._halves = -1, None     # the iteration's split (_split_batch)
        self.hbm_busy_ns = np.zeros_like(kernel.outputs.hbm_busy_ns)           # prefetch

    def layer(self, it, layer, rows, requests, plan: Tasks, order, prediction, launch_ns=0,
              prefetched=None):
        """Run one MoE layer's two micro-batches and place them in the pipeline.

        Parameters
        ----------
        it, layer : int
        rows, requests : numpy.ndarray
            The iteration's routing rows and each row's request (batch index).
        plan : hwmodel.system.engine.Tasks
            The layer's tasks in plan order (``remote``: 1 off the expert's home die).
        order : numpy.ndarray or None
            The kernel's task order (the Local CPs' dispatch order), None: plan order.
        prediction : hwmodel.system.engine.Prediction
        launch_ns : int
            The control path's launch time, after each micro-batch's attention (the plan
            needs the routing) and before its dispatch.
        prefetched : hwmodel.system.engine.Prefetched or None
            The slices read ahead for this layer (``prefetch``): both micro-batches' reads
            find them; :attr:`hbm_busy_ns` sums both expert phases' HBM holding times.

        Returns
        -------
        start, end : int
            When the layer's first phase starts, and the pipeline's end so far.
        stalled : bool
        dups : numpy.ndarray
            Both expert phases' copies (rows die, expert, slice).
        """
        halves, micro = self._split_batch(it, rows, requests)
        split = split_tasks(layer, rows, requests, plan.expert, plan.tokens, micro)
        phases, stalled, dups = [], False, []
        self.hbm_busy_ns[:] = 0
        for m in (0, 1):
            tokens = split[m]
            mine = tokens.nonzero()[0]                    # this half's tasks, plan order
            if not len(mine):
                phases.append([(None, 0)] * 5)
                continue
            ordered = mine if order is None else order[tokens[order] > 0]   # kernel order
            tasks = Tasks(plan.expert[ordered], plan.die[ordered], tokens[ordered],
                          plan.remote[ordered])
            rows_m, requests_m, served = halves[m]
            att = self._attention(it, layer, served)
            if self.dispatch is not None:
                # the dispatch counts the tasks in plan order: without a kernel order,
                # the kernel's tasks are already in it
                in_plan = ((tasks.expert, tasks.die, tasks.tokens) if order is None
                           else (plan.expert[mine], plan.die[mine], tokens[mine]))
                self.dispatch.layer(layer, rows_m, requests_m, *in_plan)
            sent, experts, back, stall, copied = self._phases(layer, tasks, prediction,
                                                             prefetched)
            phases.append([(COMPUTE, att), (None, launch_ns), (LINKS, sent),
                           (COMPUTE, experts), (LINKS, back)])
            stalled |= stall
            dups.append(copied)
            if m == 0 and prediction.enabled and prediction.copy_ok:   # what B may copy
                prediction = prediction._replace(
                    copy=_not_copied_again(prediction.copy, tasks, prediction.redirect))
        self.totals["micro_launch_ns"] += launch_ns             # one launch for both
        start = self.pipeline.layer(phases)
        return (start, self.pipeline.end, stalled,
                np.concatenate(dups) if dups else np.zeros((0, 3), np.int64))

    def _split_batch(self, it, rows, requests):
        """The iteration's split, made once per iteration (``rows`` and ``requests`` of
        iteration ``it``): per micro-batch its rows, their requests and its distinct requests;
        and each (token, chosen expert) pair's micro-batch (:func:`pair_micro_batches`)."""
        if self._iteration != it:
            requests = np.asarray(requests)
            halves = []
            for m in (0, 1):
                mine = requests % 2 == m
                halves.append((rows[mine], requests[mine], np.unique(requests[mine])))
            self._iteration = it
            self._halves = halves, pair_micro_batches(requests, rows.shape[2])
        return self._halves

    def barrier(self) -> int:
        """Both micro-batches meet (the prefill's end, the run's end); returns the time."""
        return self.pipeline.barrier()

    def counts(self, time_ns: int) -> dict:
        """The switch's counters (:data:`MICRO_BATCH_COUNTS`) for a run that took
        ``time_ns``."""
        out = dict(self.totals)
        out["micro_serial_ns"] = sum(v for k, v in out.items() if k != "micro_serial_ns"
                                     and k != "micro_hidden_ns")
        out["micro_hidden_ns"] = out["micro_serial_ns"] - time_ns
        return out

    def _attention(self, it, layer, requests) -> int:
        if self.attention is None:
            return 0
        ns = int(self.attention(it, layer, requests))
        self.totals["micro_attention_ns"] += ns
        return ns

    def _phases(self, layer, tasks: Tasks, prediction: Prediction, prefetched=None):
        """Time one micro-batch's dispatch, expert phase (a kernel run) and combine, one
        after the other on the measuring clock (no dispatch or combine time unless the
        dispatch is timed). Returns their ns, whether the kernel stalled and its copies."""
        t0 = self.clock
        run = self.dispatch.run_layer if self.timed else self.kernel.run
        ends = run(t0, layer, tasks, prediction, num_experts=self.num_experts,
                   slices=self.slices, prefetched=prefetched)
        if self.timed:
            sent, done, back, stall, dups = ends
        else:
            (done, stall, dups), sent, back = ends, t0, ends[0]
        self.clock = back
        self.hbm_busy_ns += self.kernel.outputs.hbm_busy_ns
        totals = self.totals
        totals["micro_dispatch_ns"] += sent - t0
        totals["micro_experts_ns"] += done - sent
        totals["micro_combine_ns"] += back - done
        return sent - t0, done - sent, back - done, stall, dups


def _not_copied_again(copy, tasks: Tasks, redirect) -> np.ndarray:
    """``copy`` without the (die, expert) pairs whose slices micro-batch A fetched from afar:
    A's copy of them is made; B's arriving slices are not copied a second time. ``copy``
    itself is left as it is (a copy of it is changed, made when a pair is cleared)."""
    return _clear_fetched(copy, tasks.die, tasks.expert, tasks.remote, redirect)


@njit(cache=True)
def _clear_fetched(copy, die, expert, remote, redirect):
    """:func:`_not_copied_again` over the tasks' columns, in one pass (arrays only: numba
    types a structure argument slowly on every call)."""
    out = copy
    copied = False
    for k in range(die.shape[0]):
        d, e = die[k], expert[k]
        if remote[k] != 0 and not redirect[d, e] and out[d, e]:
            if not copied:
                out = copy.copy()
                copied = True
            out[d, e] = False
    return out
