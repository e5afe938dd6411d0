"""The Local CPs' replica replacement, compiled: each die's bounded replica region in LRU
order, one row per die (docs/replay.md, "Bounded replica region").

Each die's Local CP keeps the replicas its die holds, ``(layer, expert)`` pairs, least recently
used first; a use (an ATU hit at a layer launch, or the copy itself) makes a replica the most
recently used, and a copy that overflows the region evicts the least recently used replica.
:class:`ReplicaRegions` keeps that order for every die of the wafer at once, as a doubly
linked list per row over the keys ``layer * experts + expert`` (column 0 is the list's head and
tail), so a use, a copy and an eviction each cost O(1). The replay calls :meth:`keep_copies`,
:meth:`use` and :meth:`bound` on every die's row at once; each die's
:class:`~hwmodel.components.local_cp.twin.LocalCPTwin` calls the same methods on its one row.

Row state: ``after[r, c]`` / ``before[r, c]`` (int32) are the next and previous columns
of column ``c`` in row ``r``'s order (-1: key ``c - 1`` not held; column 0 links the least and
the most recently used), ``held[r]`` replicas held, ``slots[r]`` the region's size in whole
experts (-1: unbounded, as in the paper, and no order is kept: copies and uses leave the row
as it is), ``evictions[r]`` replicas evicted so far (int64).
"""

from __future__ import annotations

import numpy as np

from ...jit import njit

__all__ = ["ReplicaRegions", "bound_rows", "keep_copies_rows", "use_rows"]


@njit(cache=True, inline="always")
def _unlink(after, before, row, c):
    a, b = after[row, c], before[row, c]
    after[row, b] = a
    before[row, a] = b
    after[row, c] = -1
    before[row, c] = -1


@njit(cache=True, inline="always")
def _append(after, before, row, c):
    """Column ``c`` (not linked) becomes row ``row``'s most recently used."""
    last = before[row, 0]
    after[row, last] = c
    before[row, c] = last
    after[row, c] = 0
    before[row, 0] = c


@njit(cache=True, inline="always")
def _evict_over(after, before, held, slots, evictions, row, out_rows, out_keys, n):
    """Evict row ``row``'s least recently used replicas while it holds more than its slots;
    each is written at ``out_*[n]``, ``n + 1``, ...; returns the next free index (-1 if
    ``out_*`` is full, which the callers' sizes rule out)."""
    while slots[row] >= 0 and held[row] > slots[row]:
        if n < 0 or n >= out_keys.shape[0]:
            return -1
        c = after[row, 0]
        _unlink(after, before, row, c)
        held[row] -= 1
        evictions[row] += 1
        out_rows[n] = row
        out_keys[n] = c - 1
        n += 1
    return n


@njit(cache=True)
def keep_copies_rows(after, before, held, slots, evictions, rows, keys, out_rows, out_keys):
    """Copy ``i`` of ``keys[i]`` joins row ``rows[i]``'s region, in order: a key not held
    becomes the most recently used (one already held keeps its place), then the row evicts its
    least recently used replicas while over its slots. Rows without a bound are left as they
    are. Returns how many evictions were written to ``out_rows`` / ``out_keys`` (in the order
    they were made; at most ``len(keys)`` when every row holds at most its slots), -1 if they
    did not fit."""
    n = 0
    for i in range(keys.shape[0]):
        row = rows[i]
        if slots[row] < 0:
            continue
        c = keys[i] + 1
        if after[row, c] < 0:
            _append(after, before, row, c)
            held[row] += 1
        n = _evict_over(after, before, held, slots, evictions, row, out_rows, out_keys, n)
        if n < 0:
            return -1
    return n


@njit(cache=True)
def use_rows(after, before, slots, rows, keys):
    """Replica ``keys[i]`` of row ``rows[i]`` is used (an ATU hit), in order: it becomes its
    row's most recently used. Rows without a bound are left as they are. Returns -1, or the
    first ``i`` whose key its (bounded) row does not hold (the uses before it were made)."""
    for i in range(keys.shape[0]):
        row = rows[i]
        if slots[row] < 0:
            continue
        c = keys[i] + 1
        if after[row, c] < 0:
            return i
        _unlink(after, before, row, c)
        _append(after, before, row, c)
    return -1


@njit(cache=True)
def bound_rows(after, before, held, slots, evictions, rows, counts, out_rows, out_keys):
    """Row ``rows[i]``'s region becomes ``counts[i]`` whole experts (-1: unbounded), in order;
    each row then evicts its least recently used replicas while over. Returns how many
    evictions were written to ``out_rows`` / ``out_keys`` (at most the replicas held), -1 if
    they did not fit."""
    n = 0
    for i in range(rows.shape[0]):
        row = rows[i]
        slots[row] = counts[i]
        n = _evict_over(after, before, held, slots, evictions, row, out_rows, out_keys, n)
        if n < 0:
            return -1
    return n


class ReplicaRegions:
    """The bounded replica regions of ``rows`` dies, each in LRU order (see the module
    docstring); one row per die, as the other units' twins keep their state.

    Parameters
    ----------
    rows : int
        Dies (rows).
    num_experts : int
        Experts per layer: a replica's key is ``layer * num_experts + expert``.
    num_layers : int
        Layers whose replicas the rows hold; the key space grows if a later layer comes. The
        keys' columns are made at the first copy or use (the replay makes neither while no
        region is bounded, so a paper-mode run allocates nothing per key).

    Examples
    --------
    >>> regions = ReplicaRegions(rows=2, num_experts=8)
    >>> regions.bound(np.array([0, 1]), np.array([1, 1]))[0].tolist()
    []
    >>> [a.tolist() for a in regions.keep_copies(np.array([1, 1]), 0, np.array([3, 4]))]
    [[1], [0], [3]]
    >>> regions.lru(1)
    [(0, 4)]
    """

    def __init__(self, rows: int, num_experts: int, num_layers: int = 1):
        self.num_experts = int(num_experts)
        self.num_layers = int(num_layers)
        self.slots = np.full(rows, -1, np.int64)
        self.held = np.zeros(rows, np.int64)
        self.evictions = np.zeros(rows, np.int64)
        # column 0 only (every row empty) until a copy or a use needs the keys' columns
        self.after = np.zeros((rows, 1), np.int32)
        self.before = np.zeros((rows, 1), np.int32)

    @property
    def rows(self) -> int:
        return len(self.slots)

    @property
    def bounded(self) -> bool:
        """Whether some row's region is bounded."""
        return bool((self.slots >= 0).any())

    def slots_of(self, row: int) -> int | None:
        """Replicas row ``row`` may hold (None: unbounded)."""
        slots = int(self.slots[row])
        return None if slots < 0 else slots

    def lru(self, row: int) -> list[tuple[int, int]]:
        """``(layer, expert)`` of row ``row``'s replicas, least recently used first."""
        out, c = [], int(self.after[row, 0])
        while c > 0:
            out.append(divmod(c - 1, self.num_experts))
            c = int(self.after[row, c])
        return out

    def keep_copies(self, rows, layer: int, experts):
        """Copies of ``layer``'s ``experts[i]`` join the regions of ``rows[i]``, in order
        (:func:`keep_copies_rows`); returns the evictions ``(rows, layers, experts)`` in the
        order they were made."""
        self._columns_for(layer)
        keys = layer * self.num_experts + experts
        out_rows, out_keys = np.empty(len(keys), np.int64), np.empty(len(keys), np.int64)
        n = keep_copies_rows(self.after, self.before, self.held, self.slots, self.evictions,
                             rows, keys, out_rows, out_keys)
        return self._evicted(n, out_rows, out_keys)

    def use(self, rows, layer: int, experts) -> None:
        """Replicas of ``layer``'s ``experts[i]`` on ``rows[i]`` are used, in order
        (:func:`use_rows`).

        Raises
        ------
        KeyError
            ``(layer, expert)`` of the first use of a replica its bounded row does not hold.
        """
        self._columns_for(layer)
        bad = use_rows(self.after, self.before, self.slots, rows,
                       layer * self.num_experts + experts)
        if bad >= 0:
            raise KeyError((int(layer), int(experts[bad])))

    def bound(self, rows, counts):
        """Row ``rows[i]``'s region becomes ``counts[i]`` whole experts (-1: unbounded), rows
        in order; returns the evictions ``(rows, layers, experts)``, each row's least recently
        used first (:func:`bound_rows`)."""
        size = int(self.held.sum())
        out_rows, out_keys = np.empty(size, np.int64), np.empty(size, np.int64)
        n = bound_rows(self.after, self.before, self.held, self.slots, self.evictions, rows,
                       counts, out_rows, out_keys)
        return self._evicted(n, out_rows, out_keys)

    def _evicted(self, n, out_rows, out_keys):
        if n < 0:
            raise AssertionError("a replica region held more replicas than its slots")
        layers, experts = np.divmod(out_keys[:n], self.num_experts)
        return out_rows[:n], layers, experts

    def _columns_for(self, layer: int) -> None:
        """Make the key columns of layers up to ``layer`` (and the declared ones) if missing."""
        layers = max(self.num_layers, int(layer) + 1)
        columns = 1 + layers * self.num_experts
        if self.after.shape[1] >= columns:
            return
        self.num_layers = layers
        after = np.full((self.rows, columns), -1, np.int32)
        before = np.full((self.rows, columns), -1, np.int32)
        old = self.after.shape[1]
        after[:, :old], before[:, :old] = self.after, self.before
        self.after, self.before = after, before
