"""Python twin of the Global CP's cross-token heatmap and top-n predictor, the RTL's
:class:`~hwmodel.components.global_cp.rtl.TopNPredictor`.

Per MoE layer an ``E x E`` table of saturating counters, ``H[l, i, j]`` = how often a token
chose expert ``i`` and the next token chose ``j`` (docs/rtl.md). The predictor's ``cp_en`` of
a die is the union of the top ``n = ceil(top_n_share x E)`` successors of the experts the die
runs: counts descending, ties broken by expert id ascending (stable and documented; the
artefact's numpy quicksort breaks ties arbitrarily).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ...checks import check_int_array
from ...jit import njit
from .params import HEATMAP_COUNT_BITS, PAPER_TOP_N_SHARE, check_positive_ints

__all__ = ["PredictorTwin", "predictor_inputs", "union_of_rows"]


@njit(cache=True)
def _first_bad_id(rows, index, num_experts):
    """``(j, e)``: the first pair ``j`` whose token ``rows[index[j]]`` holds an id ``e``
    outside ``0..num_experts - 1`` (layers, then top-k, in order), else ``(-1, -1)``."""
    for j in range(index.shape[0]):
        for layer in range(rows.shape[1]):
            for a in range(rows.shape[2]):
                e = np.int64(rows[index[j], layer, a])
                if e < 0 or e >= num_experts:
                    return j, e
    return -1, -1


def _check_ids(prev_rows, prev_index, cur_rows, cur_index, num_experts) -> None:
    """ValueError naming the first id outside ``0..num_experts - 1`` that the pairs use, in
    pair order (a pair's previous token before its next), unless the rows' type holds no
    other value (:func:`_holds_only_ids`)."""
    found = [_first_bad_id(rows, index, num_experts)
             for rows, index in ((prev_rows, prev_index), (cur_rows, cur_index))
             if not _holds_only_ids(rows.dtype, num_experts)]
    found = [(j, e) for j, e in found if j != -1]
    if found:
        raise ValueError(f"token rows hold expert id {min(found, key=lambda f: f[0])[1]}, "
                         f"outside 0..{num_experts - 1}")


def _holds_only_ids(dtype, num_experts) -> bool:
    """Whether every value of an array of ``dtype`` is an expert id (``0 .. num_experts - 1``):
    an unsigned integer type too narrow for anything else, such as uint8 ids of 256 experts."""
    return dtype.kind == "u" and np.iinfo(dtype).max < num_experts


@njit(cache=True)
def _gather_by_layer(rows, index, out):
    """``out[l, j, :] = rows[index[j], l, :]``: the ids of the tokens a chunk of pairs uses,
    layer by layer, so that counting one layer reads one contiguous block. In tiles of 8
    pairs x 8 layers (:func:`_gather_words`)."""
    for lo in range(0, index.shape[0], 8):
        hi = min(lo + 8, index.shape[0])
        for first in range(0, rows.shape[1], 8):
            for j in range(lo, hi):
                r = index[j]
                for layer in range(first, min(first + 8, rows.shape[1])):
                    for a in range(rows.shape[2]):
                        out[layer, j, a] = rows[r, layer, a]


@njit(cache=True)
def _gather_words(words, index, out):
    """:func:`_gather_by_layer` of one word per (token, layer): ``out[l, j] =
    words[index[j], l]``. A transposition in tiles of 8 pairs x 8 layers, so that the lines
    a tile reads (8 of a token's words) and writes (8 of a layer's) stay in the L1 cache."""
    for lo in range(0, index.shape[0], 8):
        hi = min(lo + 8, index.shape[0])
        for first in range(0, words.shape[1], 8):
            for j in range(lo, hi):
                r = index[j]
                for layer in range(first, min(first + 8, words.shape[1])):
                    out[layer, j] = words[r, layer]


def _gather(words, index, out) -> None:
    """:func:`_gather_by_layer`, by :func:`_gather_words` when a (token, layer) is one
    word."""
    if words.shape[2] == 1:
        _gather_words(words[:, :, 0], index, out[:, :, 0])
    else:
        _gather_by_layer(words, index, out)


@njit(cache=True)
def _add_pairs(heatmap, prev_ids, cur_ids, num_pairs):
    """For each pair ``j < num_pairs``, every expert of ``prev_ids[l, j]`` followed by every
    expert of ``cur_ids[l, j]`` adds one to ``heatmap[l, i, j]`` of each MoE layer ``l`` (ids
    checked beforehand; the caller saturates at the counter's maximum afterwards: all
    increments are positive, so that equals saturating each). Layer by layer, so that one
    layer's table stays in cache while its ids stream past."""
    for layer in range(heatmap.shape[0]):
        table = heatmap[layer]
        prev = prev_ids[layer]
        cur = cur_ids[layer]
        for j in range(num_pairs):
            for a in range(prev.shape[1]):
                row = table[prev[j, a]]
                for b in range(cur.shape[1]):
                    row[cur[j, b]] += 1


def _as_words(rows):
    """``rows`` (tokens, layers, top-k) with each token's ids of a layer as one unsigned word
    (shape (tokens, layers, 1)) when they fill 1, 2, 4 or 8 bytes of a contiguous array, so
    that gathering them moves one word per (token, layer); else ``rows`` itself."""
    width = rows.shape[2] * rows.itemsize
    if rows.flags.c_contiguous and width in (1, 2, 4, 8) and rows.dtype.kind in "iu":
        return rows.view(f"u{width}")
    return rows


def _as_ids(words, rows):
    """The ids of gathered :func:`_as_words` (layers, pairs, 1 or top-k), as ``rows``' type."""
    return words.view(rows.dtype) if words.dtype != rows.dtype else words


# pairs gathered per chunk of :meth:`PredictorTwin.add_pairs` (bounds its scratch arrays)
PAIRS_PER_CHUNK = 16384


@njit(cache=True)
def _count_at_least(row, x):
    """How many of ``row`` are ``>= x`` (one branch-free pass, which the compiler
    vectorises)."""
    count = np.int32(0)
    for i in range(row.shape[0]):
        count += np.int32(row[i] >= x)
    return count


@njit(cache=True)
def _nth_largest(row, n):
    """``(t, m)``: the ``n``-th largest of ``row`` (1 <= n <= len, every value >= 0) and how
    many of the ``n`` largest equal ``t``. A binary search on the value: ``t`` is the largest
    ``x`` that at least ``n`` counts reach, at most ``log2(max + 1)`` counting passes."""
    lo, hi = 0, np.int64(row.max()) + 1      # n counts reach lo, fewer than n reach hi
    reach_hi = 0                             # how many reach hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        reach = _count_at_least(row, row.dtype.type(mid))
        if reach >= n:
            lo = mid
        else:
            hi, reach_hi = mid, reach
    return lo, n - reach_hi


@njit(cache=True)
def _top_n_mask(heatmap, rows, n, out):
    """``out[i, j]`` := whether ``j`` is among the ``n`` most frequent successors of expert
    ``rows[i]`` in ``heatmap`` (one layer's table): counts descending, ties by expert id
    ascending. The top-n of every path: one row (:meth:`PredictorTwin.top_n`) and all rows
    (:meth:`PredictorTwin.top_n_matrix`). Per row: the n-th largest count ``t``
    (:func:`_nth_largest`), then every expert counted above ``t`` and the ``m`` lowest ids
    counted ``t``."""
    for i in range(rows.shape[0]):
        row = heatmap[rows[i]]
        t, left = _nth_largest(row, n)
        chosen = out[i]
        for j in range(row.shape[0]):
            chosen[j] = row[j] > t
        for j in range(row.shape[0]):
            if left == 0:
                break
            if row[j] == t:
                chosen[j] = True
                left -= 1


@njit(cache=True)
def predictor_inputs(task_expert, task_die, num_dies, stop_at_die_id):
    """Which tasks' experts the predictor reads for their die, in plan order (a bool mask).

    Die ``d``'s group is the experts of its tasks in plan order (expert id ascending). With
    ``stop_at_die_id`` (the study's artefact's quirk) a die's group stops growing once it holds
    the expert whose id equals the die id. The RTL predictor is fed exactly these rows.
    """
    keep = np.zeros(task_expert.shape[0], np.bool_)
    stopped = np.zeros(num_dies, np.bool_)
    for k in range(task_expert.shape[0]):
        d = task_die[k]
        if stopped[d]:
            continue
        keep[k] = True
        if stop_at_die_id and task_expert[k] == d:
            stopped[d] = True
    return keep


@njit(cache=True)
def union_of_rows(task_expert, task_die, keep, top, out):
    """Predictor ``cp_en`` of every die: ``out[d]`` = OR of ``top[e]`` over the kept tasks
    (:func:`predictor_inputs`) of die ``d``; ``top`` is the top-n matrix (experts x experts)."""
    out[:, :] = False
    for k in range(task_expert.shape[0]):
        if not keep[k]:
            continue
        d = task_die[k]
        e = task_expert[k]
        for j in range(top.shape[1]):
            if top[e, j]:
                out[d, j] = True




class PredictorTwin:
    """Transaction-level twin of the heatmap and the top-n predictor of every MoE layer.

    Parameters
    ----------
    num_layers : int
        MoE layers (one heatmap each).
    num_experts : int
        Routed experts per layer.
    top_n_share : float
        The predictor keeps ``ceil(top_n_share * E)`` successors per expert.
    count_bits : int
        Bits of one heatmap counter (saturating).

    Raises
    ------
    TypeError, ValueError
        On a bad parameter, naming it.
    """

    def __init__(self, num_layers: int, num_experts: int, *,
                 top_n_share: float = PAPER_TOP_N_SHARE,
                 count_bits: int = HEATMAP_COUNT_BITS):
        check_positive_ints(num_layers=num_layers, num_experts=num_experts, count_bits=count_bits)
        if not 0 < top_n_share <= 1:
            raise ValueError(f"top_n_share must be in (0, 1], not {top_n_share!r}")
        self.num_layers = int(num_layers)
        self.num_experts = int(num_experts)
        self.top_n_share = float(top_n_share)
        self.top_n_count = math.ceil(self.top_n_share * self.num_experts)
        self.count_bits = int(count_bits)
        self._count_max = (1 << self.count_bits) - 1
        # int32 counters while they fit (half the memory traffic of the pair counting): a
        # cell gains at most top-k squared per pair, and add_pairs saturates often enough
        # that the sum never overflows
        self._heatmap = np.zeros((self.num_layers, self.num_experts, self.num_experts),
                                 dtype=np.int32 if self.count_bits <= 30 else np.int64)
        # pairs handed to :meth:`defer_pairs`, counted when the heatmap is next read
        self._deferred: list[Callable[[], tuple]] = []

    def _check_layer_expert(self, layer, expert):
        if not 0 <= layer < self.num_layers:
            raise ValueError(f"layer must be in 0..{self.num_layers - 1}, not {layer!r}")
        if not 0 <= expert < self.num_experts:
            raise ValueError(f"expert must be in 0..{self.num_experts - 1}, not {expert!r}")

    def add(self, layer: int, prev_expert: int, next_expert: int, count: int = 1) -> None:
        """Add ``count`` to ``H[layer, prev, next]`` (saturating)."""
        self._check_layer_expert(layer, prev_expert)
        self._check_layer_expert(layer, next_expert)
        if count < 0:
            raise ValueError(f"count must be >= 0, not {count!r}")
        value = self._heatmap[layer, prev_expert, next_expert] + count
        self._heatmap[layer, prev_expert, next_expert] = min(value, self._count_max)

    def add_matrix(self, layer: int, counts: np.ndarray) -> None:
        """Add a whole ``E x E`` matrix of pair counts to a layer (bulk :meth:`add`)."""
        self._check_layer_expert(layer, 0)
        counts = np.asarray(counts)
        if counts.size and counts.min() < 0:
            raise ValueError(f"counts must be >= 0, not {int(counts.min())}")
        np.minimum(self._heatmap[layer] + counts, self._count_max, out=self._heatmap[layer])

    def add_pairs(self, prev_rows, prev_index, cur_rows, cur_index) -> None:
        """Add the cross-token pairs of token rows (tokens, MoE layers, top-k) to every
        layer's heatmap: for each ``j``, token ``prev_index[j]`` of ``prev_rows`` followed by
        token ``cur_index[j]`` of ``cur_rows`` (bulk :meth:`add`, compiled)."""
        prev_rows, cur_rows = np.asarray(prev_rows), np.asarray(cur_rows)
        for name, rows in (("prev_rows", prev_rows), ("cur_rows", cur_rows)):
            if rows.ndim != 3 or rows.shape[1] != self.num_layers:
                raise ValueError(f"{name} must have shape (tokens, {self.num_layers}, top-k), "
                                 f"not {rows.shape}")
        prev_index = check_int_array("prev_index", prev_index, 0, max(1, len(prev_rows)))
        cur_index = check_int_array("cur_index", cur_index, 0, max(1, len(cur_rows)),
                                    length=len(prev_index))
        _check_ids(prev_rows, prev_index, cur_rows, cur_index, self.num_experts)
        # the counters are saturated once more pairs would risk overflowing them
        top_k = max(1, prev_rows.shape[2] * cur_rows.shape[2])
        unsaturated = (int(np.iinfo(self._heatmap.dtype).max) - self._count_max) // top_k
        chunk = min(PAIRS_PER_CHUNK, unsaturated, max(1, len(prev_index)))
        prev_words, cur_words = _as_words(prev_rows), _as_words(cur_rows)
        prev_ids = np.empty((self.num_layers, chunk) + prev_words.shape[2:], prev_words.dtype)
        cur_ids = np.empty((self.num_layers, chunk) + cur_words.shape[2:], cur_words.dtype)
        since = 0                           # pairs counted since the last saturation
        for lo in range(0, len(prev_index), chunk):
            hi = min(lo + chunk, len(prev_index))
            if since + hi - lo > unsaturated:
                np.minimum(self._heatmap, self._count_max, out=self._heatmap)
                since = 0
            _gather(prev_words, prev_index[lo:hi], prev_ids)
            _gather(cur_words, cur_index[lo:hi], cur_ids)
            _add_pairs(self._heatmap, _as_ids(prev_ids, prev_rows), _as_ids(cur_ids, cur_rows),
                       hi - lo)
            since += hi - lo
        np.minimum(self._heatmap, self._count_max, out=self._heatmap)       # saturating

    def defer_pairs(self, pairs: Callable[[], tuple]) -> None:
        """Add the cross-token pairs that ``pairs()`` returns (the four arguments of
        :meth:`add_pairs`) when the heatmap is next read, not now.

        Every read (:meth:`row`, :meth:`top_n`, :meth:`top_n_rows`, :meth:`top_n_matrix`,
        :meth:`predict`) first counts the deferred pairs, oldest first, so it sees exactly
        the counts that :meth:`add_pairs` called here would have made (increments are
        positive and saturate at the counter's maximum, so counting later changes no
        counter). Pairs that nothing reads afterwards are never counted. ``pairs`` is called,
        and its pairs checked as :meth:`add_pairs` checks them, when they are counted."""
        self._deferred.append(pairs)

    def _count_deferred(self) -> None:
        """Count the pairs :meth:`defer_pairs` left, oldest first."""
        while self._deferred:
            self.add_pairs(*self._deferred.pop(0)())

    def row(self, layer: int, expert: int) -> np.ndarray:
        """Copy of row ``H[layer, expert, :]``."""
        self._check_layer_expert(layer, expert)
        self._count_deferred()
        return self._heatmap[layer, expert].copy()

    def top_n(self, layer: int, expert: int) -> tuple[int, ...]:
        """Most frequent successors of ``expert``: count descending, expert id ascending."""
        self._check_layer_expert(layer, expert)
        self._count_deferred()
        out = np.empty((1, self.num_experts), np.bool_)
        _top_n_mask(self._heatmap[layer], np.array([expert], np.int64), self.top_n_count, out)
        row = self._heatmap[layer, expert]
        chosen = np.flatnonzero(out[0])
        # listed most frequent first, ties by id (the mask's order)
        return tuple(int(e) for e in chosen[np.argsort(-row[chosen], kind="stable")])

    def top_n_matrix(self, layer: int) -> np.ndarray:
        """Boolean ``E x E``: ``M[i, j]`` when ``j`` is in ``top_n(layer, i)`` (all rows)."""
        return self.top_n_rows(layer, np.arange(self.num_experts, dtype=np.int64))

    def top_n_rows(self, layer: int, experts) -> np.ndarray:
        """Rows ``experts`` of :meth:`top_n_matrix` (each row is worked out on its own, so
        this costs only the rows asked for)."""
        self._check_layer_expert(layer, 0)
        experts = check_int_array("experts", experts, 0, self.num_experts)
        self._count_deferred()
        out = np.empty((len(experts), self.num_experts), np.bool_)
        _top_n_mask(self._heatmap[layer], experts, self.top_n_count, out)
        return out

    def predict(self, layer: int, die_experts) -> int:
        """``cp_en`` bitmap of one die: union of :meth:`top_n` of the experts it runs."""
        bits = 0
        for expert in die_experts:
            for successor in self.top_n(layer, int(expert)):
                bits |= 1 << successor
        return bits
