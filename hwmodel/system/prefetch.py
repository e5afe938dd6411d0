"""Physical switch ``prefetch``: the next MoE layer's predicted experts are read ahead while the
current layer runs (issue 17, overlap; docs/physical.md).

The paper measures that a token's expert at layer ``l`` predicts its expert at layer ``l + 1``
(its Insight 2; ``hwmodel trace analyze`` reports it as the layer-level coverage) but does not
use it. This switch does, in three steps per (iteration, MoE layer ``l``):

* **predict.** The Global CP keeps a second heatmap, of layer-to-layer transitions: the same
  hardware block as its cross-token heatmap (a :class:`PredictorTwin`, saturating counters,
  top ``ceil(top_n_share x E)`` successors, count descending then id ascending), filled with
  the statistic ``trace analyze`` reports (:func:`hwmodel.traces.analysis.add_layer_transitions`).
  It learns an iteration's rows once the iteration has ended, so a prediction reads only
  earlier iterations and the current layer's selections: it is causal. Layer ``l + 1``'s
  predicted experts are the successors, with a non-zero count, of the experts the batch chose
  at layer ``l``; an expert named by more of them comes first (then id ascending).
* **read ahead.** Each predicted expert's **home die** reads its slices from its own HBM into
  an on-die prefetch buffer. The home die is the one die known to hold the weights before
  layer ``l + 1`` is planned (Algorithm 1 decides where tasks run only at its launch), and it
  serves both its own tasks and other dies' remote reads of the expert. The reads take the
  die's HBM only while layer ``l``'s own accesses leave it idle, at the lowest priority: a die
  reads ``floor(idle / t_slice)`` slices at most (and no more than its buffer holds: by
  default its own LLC's capacity in whole slices, else ``prefetch_buffer_bytes``, or no bound
  with ``'unbounded'``), ``idle`` = the layer's interval (launch to
  barrier) minus the time its HBM was held in it, ``t_slice`` its HBM read latency of one
  slice (the HBM's own formula). A prefetch therefore never delays the layer it runs under.
* **use.** At layer ``l + 1``, an HBM read of a slice in the reading die's buffer (a local read,
  or a remote read served by the home die) skips the slice's HBM read latency ``t_slice``;
  a local read still reads the tokens' activations. The buffer is emptied after the layer.

So a prefetched slice that is then read saves exactly its HBM read latency on that read, and
one that is not read costs its bytes of HBM traffic (``prefetch_bytes``) and no time.
"""

from __future__ import annotations

import numpy as np

from ..components.global_cp.predictor import PredictorTwin
from ..traces.analysis import add_layer_transitions
from .engine import Counter, Prefetched

__all__ = ["Prefetcher", "buffer_slices"]


def buffer_slices(wafer, buffer_bytes, slice_bytes: float) -> np.ndarray | None:
    """Each die's prefetch buffer in whole slices, or None for no bound.

    Parameters
    ----------
    wafer : hwmodel.topologies.wafer.Wafer
        The built wafer graph: each die's LLC node gives its own capacity.
    buffer_bytes : int, float, str or None
        ``prefetch_buffer_bytes``: None for each die's LLC capacity, ``'unbounded'`` for no
        bound, else the bytes of every die's buffer.
    slice_bytes : float
        Bytes of one slice.
    """
    if buffer_bytes == "unbounded":
        return None
    if buffer_bytes is None:
        return np.array([die.llc.whole_slices(slice_bytes) for die in wafer.dies], np.int64)
    return np.full(len(wafer.dies), int(buffer_bytes // slice_bytes), np.int64)


class Prefetcher:
    """The prefetch of one replay run (physical switch ``prefetch``).

    Parameters
    ----------
    replay : hwmodel.system.replay.Replay
        The replay (its wafer, model, homes and parameters).
    hbm_slice_ns : numpy.ndarray
        Each die's HBM read latency of one slice (the lowered tables' ``hbm_slice_ns``).
    """

    def __init__(self, replay, hbm_slice_ns):
        self.L, self.E, self.N = replay.L, replay.E, replay.N
        self.slices = replay.model.matrices_per_expert
        self.slice_bytes = replay.slice_bytes
        self.home = np.asarray(replay.home, np.int64)
        self.hbm_slice_ns = np.asarray(hbm_slice_ns, np.int64)
        self.buffer_slices = buffer_slices(replay.wafer, replay.params.prefetch_buffer_bytes,
                                           self.slice_bytes)
        # no die's buffer holds a slice (Llama-4's 84 MB slices and a 64 MB LLC): nothing is
        # ever read ahead, so neither learning nor predicting can change the run
        self.reads_ahead = self.buffer_slices is None or bool(self.buffer_slices.max() > 0)
        transitions = max(1, self.L - 1)
        self.heatmap = PredictorTwin(
            transitions, self.E, top_n_share=replay.params.top_n_share,
            count_bits=replay.wafer.params.global_cp.heatmap_count_bits)
        self.seen = np.zeros((transitions, self.E, self.E), np.bool_)   # count > 0
        self.learned = False
        self.ready = np.zeros((self.N, self.E * self.slices), np.bool_)
        self.read = np.zeros_like(self.ready)
        self.input = Prefetched(True, self.ready, self.read)    # what the kernel reads
        self.held = 0             # slices in the buffers (the kernel reads only those)
        self.for_layer = -1
        self.prefetches = self.used = self.peak_slices = 0

    def kernel_input(self, layer: int) -> Prefetched:
        """The slices read ahead for ``layer`` (none if the last plan was for another)."""
        if self.for_layer != layer:
            self._empty()
        return self.input

    def _empty(self) -> None:
        """Empty the buffers, and forget which slices were read. Nothing to do while they
        hold nothing (a slice is marked read only if it is held): so a run that never reads
        ahead (Llama-4's slices and an LLC-sized buffer) never touches the arrays."""
        if self.held:
            self.ready[:] = False
            self.read[:] = False
            self.held = 0

    def after_layer(self, layer: int, rows, launch_ns: int, end_ns: int, hbm_busy_ns) -> int:
        """Tally the use of ``layer``'s prefetched slices, then read ahead for ``layer + 1``
        under ``layer`` (interval ``launch_ns`` to ``end_ns``; ``hbm_busy_ns`` per die).
        Returns the slices read ahead."""
        if self.held:
            self.used += int(np.count_nonzero(self.ready & self.read))
        self._empty()
        self.for_layer = layer + 1
        if layer + 1 >= self.L or not self.reads_ahead:
            return 0
        idle = (end_ns - launch_ns) - np.asarray(hbm_busy_ns, np.int64)
        if self._no_room(idle):
            return 0                  # no die has room for a slice: the prediction is moot
        experts = self.predict(layer, rows)
        if not len(experts):
            return 0
        room = np.where(self.hbm_slice_ns > 0, idle // np.maximum(self.hbm_slice_ns, 1),
                        len(experts) * self.slices)
        if self.buffer_slices is not None:
            room = np.minimum(room, self.buffer_slices)
        # per home die, its predicted experts in order take the room slice by slice
        homes = self.home[experts]
        order = np.argsort(homes, kind="stable")
        experts, homes = experts[order], homes[order]
        before = np.arange(len(homes)) - np.searchsorted(homes, homes)   # experts ahead
        fits = np.clip(room[homes] - before * self.slices, 0, self.slices)
        for s in range(self.slices):
            now = fits > s
            self.ready[homes[now], experts[now] * self.slices + s] = True
        taken = np.bincount(homes, weights=fits, minlength=self.N).astype(np.int64)
        count = int(taken.sum())
        self.held = count
        self.prefetches += count
        self.peak_slices = max(self.peak_slices, int(taken.max()))
        return count

    def _no_room(self, idle) -> bool:
        """Whether no die can read a slice ahead in ``idle`` ns of HBM (nor hold it): then
        :meth:`after_layer` reads nothing, whatever is predicted."""
        if not (self.hbm_slice_ns > 0).all():
            return False              # a die whose reads take no time always has room
        room = idle // self.hbm_slice_ns
        if self.buffer_slices is not None:
            room = np.minimum(room, self.buffer_slices)
        return bool(room.max() <= 0)

    def predict(self, layer: int, rows) -> np.ndarray:
        """Layer ``layer + 1``'s predicted experts, most named first (then id ascending):
        the successors with a non-zero count of the experts chosen at ``layer`` in ``rows``
        (tokens, MoE layers, top-k), from the heatmap of earlier iterations."""
        if not self.learned:
            return np.zeros(0, np.int64)
        chosen = np.unique(np.asarray(rows[:, layer, :]))
        top = self.heatmap.top_n_rows(layer, chosen) & self.seen[layer][chosen]
        votes = top.sum(axis=0)
        named = np.flatnonzero(votes)
        return named[np.lexsort((named, -votes[named]))].astype(np.int64)

    def learn(self, rows) -> None:
        """Add an ended iteration's rows (tokens, MoE layers, top-k) to the heatmap."""
        if self.L < 2 or not len(rows) or not self.reads_ahead:
            return
        counts = np.zeros((self.L - 1, self.E, self.E), np.int64)
        add_layer_transitions(np.ascontiguousarray(rows), counts)
        for j in range(self.L - 1):
            self.heatmap.add_matrix(j, counts[j])
        self.seen |= counts > 0
        self.learned = True

    def counts(self, counters) -> dict:
        """The run's prefetch counters (``counts`` of the result)."""
        return {"prefetches": self.prefetches, "prefetches_used": self.used,
                "prefetches_wasted": self.prefetches - self.used,
                "prefetch_bytes": round(self.prefetches * self.slice_bytes),
                "prefetch_reads": int(counters[Counter.PREFETCH_READS]),
                "prefetch_saved_ns": int(counters[Counter.PREFETCH_SAVED_NS]),
                "prefetch_buffer_peak_bytes": round(self.peak_slices * self.slice_bytes)}
