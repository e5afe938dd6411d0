"""Per-iteration views of a trace store that the replay needs: expert counts per layer,
first-appearance order, and the predictor's cross-token pairs (docs/replay.md)."""

from __future__ import annotations

import numpy as np

from .engine import count_experts, first_appearance

__all__ = ["Workload"]


class Workload:
    """Per-iteration views of a trace store: counts, first-appearance order, heatmap pairs."""

    def __init__(self, store, max_iterations: int):
        self.store = store
        self.E = int(store.num_experts)
        self.L = len(store.moe_layers)
        self.k = int(store.top_k)
        self.num_iterations = min(max_iterations, int(store.num_iterations))
        self._recent: dict[int, tuple] = {}        # the latest iteration read and the one before

    def rows(self, it):
        """Rows and request indices of iteration ``it`` (the store's id dtype: uint8 for
        E <= 256). The rows of the iteration read last and of the one before it are kept, so
        that the heatmap's deferred pairs of the iteration being run (:meth:`pairs`) read no
        row twice."""
        found = self._recent.get(it)
        if found is None:
            found = self._read(it)
            self._recent = {i: r for i, r in self._recent.items() if i == it - 1}
            self._recent[it] = found
        return found

    def _read(self, it):
        rows, requests = self.store.iteration_rows(it)
        return np.asarray(rows), requests

    def pairs(self, it):
        """The predictor's cross-token pairs fed at iteration ``it`` (the arguments of
        ``PredictorTwin.add_pairs``): the prefill's at 0, decode steps ``it - 1 -> it`` from
        2, none at 1 (:meth:`prefill_pairs`, :meth:`decode_pairs`). Rows that :meth:`rows`
        does not keep are read from the store again, and not kept."""
        if it == 1:
            raise ValueError("iteration 1 feeds no heatmap pairs (decode pairs start at 2)")
        rows = self._recent.get(it) or self._read(it)
        if it == 0:
            return self.prefill_pairs(*rows)
        return self.decode_pairs(it, *rows, *(self._recent.get(it - 1) or self._read(it - 1)))

    def counts(self, rows):
        out = np.empty((self.L, self.E), np.int64)
        count_experts(rows, self.E, out)
        return out

    def first_order(self, rows, layer):
        """Experts of ``layer`` in order of first appearance (requests, tokens, ids)."""
        out = np.empty(self.E, np.int64)
        return out[:first_appearance(rows, layer, self.E, out)]

    def prefill_pairs(self, rows, requests):
        """Pairs of consecutive prompt tokens of the same request, as ``(prev_rows,
        prev_index, cur_rows, cur_index)`` for the Global CP's heatmap."""
        index = np.flatnonzero(requests[:-1] == requests[1:])
        return rows, index, rows, index + 1

    def decode_pairs(self, it, rows, requests, prev_rows, prev_requests):
        """Pairs (step it-1 -> step it) of the requests that reach step ``it`` (it >= 2)."""
        where = np.searchsorted(prev_requests, requests)
        return prev_rows, where, rows, np.arange(len(requests))

    def max_task_tokens(self) -> int:
        """Largest token count of any expert in any (iteration, layer): a table bound."""
        best = 1
        for it in range(self.num_iterations):
            rows, _ = self._read(it)             # not kept: read before the run
            best = max(best, int(self.counts(rows).max(initial=0)))
            if it >= 1:   # decode steps hold one token per request: bounded by the batch
                best = max(best, len(self.store))
                break
        return best
