"""Python twin of the address translation unit (ATU) and the HBM address map it translates.

The ATU sits in each die's D2D controller (docs/rtl.md, paper Table II). When the PDU decides
to keep a local copy of a remote expert, the copy's address is inserted here; a later read of the
expert's remote address hits and is redirected to the local copy.

Entry format and widths are defined once in :mod:`.params` (:class:`ATULayout`)::

    bit entry_bits - 1        : valid
    next remote_addr_bits     : remote address = die id (die_bits) | HBM page (page_bits)
    low local_addr_bits       : local address = HBM page of the local copy on this die

The paper's wafers give 1 + (5 + 31) + 31 = 68 bits. The entry is indexed by the expert id within
the current MoE layer (``index < entries``), so a lookup is one SRAM read plus one tag compare.

HBM layout used by :class:`AddressMap` (per die, ``P = page_bits``)::

    pages [0, 2**(P-1))       : home region, the experts this die owns, dense by (layer, slot)
    pages [2**(P-1), 2**P)    : replica region, slot per (layer, expert) of the whole model

``P`` is the paper's 31 unless the model's weights need more (then the smallest that holds
them); the die field has ``ceil(log2(num_dies))`` bits. An expert's three weight matrices
(slices) are contiguous: matrix ``m`` starts at the expert's base page plus ``m * slice_pages``,
so one ATU entry (the expert's base page) translates all three.
"""

from __future__ import annotations

import math

import attrs
import numpy as np

from ...checks import check_int, check_int_array, index_bits
from ...jit import njit
from .params import MATRICES_PER_EXPERT, PAGE_BYTES, PAPER, PAPER_PAGE_BITS, ATULayout

__all__ = [
    "ENTRY_BITS",
    "LOCAL_ADDR_BITS",
    "MATRICES_PER_EXPERT",
    "PAGE_BYTES",
    "REMOTE_ADDR_BITS",
    "ATUTwin",
    "AddressMap",
    "hbm_address",
    "new_tables",
    "split_address",
]

# The paper's widths (the defaults of the twin and the RTL), read from the one definition.
REMOTE_ADDR_BITS = PAPER.remote_addr_bits   # 36
LOCAL_ADDR_BITS = PAPER.local_addr_bits     # 31
ENTRY_BITS = PAPER.entry_bits               # 68, Table II


def hbm_address(die: int, page: int) -> int:
    """Pack a remote address of the paper's layout (:data:`.params.PAPER`): die above page."""
    return PAPER.hbm_address(die, page)


def split_address(remote_addr: int) -> tuple[int, int]:
    """Inverse of :func:`hbm_address`: ``(die, page)`` of a paper-layout remote address."""
    return PAPER.split_address(remote_addr)


def _optional_tuple(value):
    return None if value is None else tuple(int(d) for d in value)


def _positive_int(instance, attribute, value):
    check_int(attribute.name, value, 1)


@attrs.frozen(kw_only=True)
class AddressMap:
    """Where each expert's weights live in HBM, as ATU addresses.

    Placement is the Global CP's (:func:`~hwmodel.components.global_cp.home_placement`,
    docs/replay.md, over the live dies): without faults expert ``e`` lives on die ``e // p`` with
    ``p = num_experts // num_dies``, experts past ``p * num_dies - 1`` on die ``e % num_dies``.
    Within a die, experts take consecutive *slots* in id order.

    Parameters
    ----------
    num_dies : int
        Dies on the wafer (any number: the die field has ``ceil(log2(num_dies))`` bits).
    num_experts : int
        Routed experts per MoE layer.
    num_layers : int
        Layers of the model (layer ids ``0 .. num_layers - 1``).
    slice_bytes : int
        Bytes of one weight matrix of one expert (e.g. hidden x ffn x 2 for BF16).
    live_dies : tuple of int or None
        The dies that work, ascending (None: all); homes spread over these only.

    Members
    -------
    layout : ATULayout
        The ATU layout these addresses need: ``num_experts`` entries, this wafer's die field and
        a page field of 31 bits, or wider when both regions need more than ``2**30`` pages.
    """

    num_dies: int = attrs.field(validator=_positive_int)
    num_experts: int = attrs.field(validator=_positive_int)
    num_layers: int = attrs.field(validator=_positive_int)
    slice_bytes: int = attrs.field(validator=_positive_int)
    live_dies: tuple | None = attrs.field(default=None, converter=_optional_tuple)
    layout: ATULayout = attrs.field(init=False, repr=False, eq=False)
    _homes: np.ndarray = attrs.field(init=False, repr=False, eq=False)
    _slots: np.ndarray = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self):
        from ..global_cp.edt import home_placement
        live = range(self.num_dies) if self.live_dies is None else self.live_dies
        homes = home_placement(self.num_experts, live)
        if homes.max() >= self.num_dies:
            raise ValueError(f"live_dies {self.live_dies}: die ids must be below "
                             f"num_dies = {self.num_dies}")
        # slot = rank of the expert among its die's experts, in id order
        order = np.argsort(homes, kind="stable")
        first = np.searchsorted(homes[order], homes[order])
        slots = np.empty(self.num_experts, np.int64)
        slots[order] = np.arange(self.num_experts) - first
        object.__setattr__(self, "_homes", homes)
        object.__setattr__(self, "_slots", slots)
        object.__setattr__(self, "layout", self._derive_layout())

    def _derive_layout(self) -> ATULayout:
        region_pages = max(self.num_layers * self.slots_per_die,
                           self.num_layers * self.num_experts) * MATRICES_PER_EXPERT
        region_bits = index_bits(region_pages * self.slice_pages)
        return ATULayout(entries=self.num_experts, num_dies=self.num_dies,
                         page_bits=max(PAPER_PAGE_BITS, region_bits + 1))

    @property
    def slice_pages(self) -> int:
        """Pages per weight matrix (rounded up: each matrix starts on a page)."""
        return math.ceil(self.slice_bytes / PAGE_BYTES)

    @property
    def slots_per_die(self) -> int:
        """Most experts of one layer owned by one die."""
        return int(self._slots.max()) + 1

    def home(self, expert: int) -> tuple[int, int]:
        """``(die, slot)`` of ``expert``'s home copy."""
        expert = check_int("expert", expert, 0, self.num_experts)
        return int(self._homes[expert]), int(self._slots[expert])

    def _page(self, layer, slot_or_expert, matrix, *, home):
        if home:
            return ((layer * self.slots_per_die + slot_or_expert) * MATRICES_PER_EXPERT
                    + matrix) * self.slice_pages
        replica_base = 1 << (self.layout.page_bits - 1)
        return replica_base + ((layer * self.num_experts + slot_or_expert)
                                    * MATRICES_PER_EXPERT + matrix) * self.slice_pages

    def _check(self, layer, matrix):
        check_int("layer", layer, 0, self.num_layers)
        check_int("matrix", matrix, 0, MATRICES_PER_EXPERT)

    def home_address(self, layer: int, expert: int, matrix: int = 0) -> int:
        """Remote address (:attr:`layout`) of ``matrix`` of ``expert`` of ``layer`` on its home
        die."""
        self._check(layer, matrix)
        die, slot = self.home(expert)
        return self.layout.hbm_address(die, self._page(layer, slot, matrix, home=True))

    def layer_addresses(self, layer: int) -> tuple[np.ndarray, np.ndarray]:
        """Every expert's :meth:`home_address` and :meth:`replica_address` of ``layer``
        (matrix 0, the address an ATU entry translates), as two int64 arrays indexed by
        expert id."""
        self._check(layer, 0)
        home_pages = self._page(layer, self._slots, 0, home=True)
        homes = (self._homes << self.layout.page_bits) | home_pages
        replicas = self._page(layer, np.arange(self.num_experts, dtype=np.int64), 0,
                              home=False)
        return homes.astype(np.int64), np.asarray(replicas, np.int64)

    def replica_address(self, layer: int, expert: int, matrix: int = 0) -> int:
        """Local page (:attr:`layout`) of the replica of ``matrix`` of ``expert`` of ``layer``."""
        self._check(layer, matrix)
        expert = check_int("expert", expert, 0, self.num_experts)
        return self._page(layer, expert, matrix, home=False)


@njit(cache=True)
def _store_entries(valid, remote, local, rows, indices, remote_addrs, local_addrs):
    """Entry ``indices[i]`` of table ``rows[i]`` := (valid, ``remote_addrs[i]``,
    ``local_addrs[i]``), in order (tables: the rows of ``valid``, ``remote``, ``local``)."""
    for i in range(indices.shape[0]):
        r = rows[i]
        valid[r, indices[i]] = True
        remote[r, indices[i]] = remote_addrs[i]
        local[r, indices[i]] = local_addrs[i]


@njit(cache=True)
def _look_up(valid, remote, local, rows, indices, remote_addrs, hits, local_addrs):
    """Lookup ``i`` in table ``rows[i]``: ``hits[i]`` when entry ``indices[i]`` is valid and
    holds ``remote_addrs[i]``; ``local_addrs[i]`` its local address on a hit, else 0."""
    for i in range(indices.shape[0]):
        r = rows[i]
        j = indices[i]
        hits[i] = valid[r, j] and remote[r, j] == remote_addrs[i]
        local_addrs[i] = local[r, j] if hits[i] else 0


def new_tables(tables: int, num_entries: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Storage for ``tables`` ATU tables of ``num_entries`` entries, empty: the arrays
    (valid, remote address, local address), one row per table, that :class:`ATUTwin` keeps
    its entries in and the wafer-level calls (:meth:`ATUTwin.look_up`,
    :meth:`ATUTwin.store`) read and write."""
    return (np.zeros((tables, num_entries), np.bool_), np.zeros((tables, num_entries), np.int64),
            np.zeros((tables, num_entries), np.int64))


class ATUTwin:
    """Transaction-level twin of :class:`hwmodel.components.atu.ATU`.

    Parameters
    ----------
    num_entries : int
        Entries, indexed by expert id within the current layer (paper: 512).
    num_dies, page_bits : int
        Widths of the address fields (:class:`ATULayout`; defaults: the paper's).

    table : tuple of three numpy.ndarray, optional
        Storage for the entries: 1-D arrays (valid as bool, remote and local address as
        int64) of at least ``num_entries`` entries, which the twin keeps its entries in (the
        replay hands each (die, layer) table a row of the arrays of :func:`new_tables`, which
        its wafer-level calls read). Default: the twin's own, empty.

    Raises
    ------
    TypeError, ValueError
        On a non-integer or out-of-range argument, naming it.
    """

    def __init__(self, num_entries: int = PAPER.entries, *, num_dies: int = PAPER.num_dies,
                 page_bits: int = PAPER.page_bits, table=None):
        self.layout = ATULayout(entries=check_int("num_entries", num_entries, 1),
                                num_dies=num_dies, page_bits=page_bits)
        self._num_entries = self.layout.entries
        self._remote_limit = 1 << self.layout.remote_addr_bits
        self._local_limit = 1 << self.layout.local_addr_bits
        if self.layout.remote_addr_bits > 62:
            raise ValueError(f"ATU remote addresses of {self.layout.remote_addr_bits} bits: the "
                             f"twin holds at most 62")
        if table is None:
            table = tuple(a[0] for a in new_tables(1, self._num_entries))
        valid, remote, local = table
        for name, array, dtype in (("valid", valid, np.bool_), ("remote", remote, np.int64),
                                   ("local", local, np.int64)):
            if (not isinstance(array, np.ndarray) or array.dtype != dtype or array.ndim != 1
                    or len(array) < self._num_entries):
                raise TypeError(f"table's {name} must be a 1-D {np.dtype(dtype)} array of at "
                                f"least {self._num_entries} entries, not {array!r}")
        self._valid = valid[:self._num_entries]
        self._remote = remote[:self._num_entries]
        self._local = local[:self._num_entries]
        # the same entries as the one row of a table of tables (the wafer-level calls' form)
        self._rows = tuple(a.reshape(1, -1) for a in (self._valid, self._remote, self._local))
        self._row0 = np.zeros(1, np.int64)

    @property
    def num_entries(self) -> int:
        return self._num_entries

    @property
    def entry_bits(self) -> int:
        """Bits of one entry (68 for the paper): valid + remote address + local address."""
        return self.layout.entry_bits

    @property
    def storage_bytes(self) -> float:
        """SRAM bytes of the table (4352 = 4.25 KB for the paper's 512 entries)."""
        return self._num_entries * self.layout.entry_bits / 8

    def _index(self, index):
        return check_int("index", index, 0, self._num_entries)

    def insert(self, index: int, remote_addr: int, local_addr: int) -> None:
        """Make entry ``index`` translate ``remote_addr`` to ``local_addr`` (valid)."""
        index = self._index(index)
        remote_addr = check_int("remote_addr", remote_addr, 0, self._remote_limit)
        local_addr = check_int("local_addr", local_addr, 0, self._local_limit)
        self.insert_many(np.array([index]), np.array([remote_addr]), np.array([local_addr]))

    def insert_many(self, indices, remote_addrs, local_addrs) -> None:
        """:meth:`insert` of each triple, in order, checked once as arrays (nothing changes
        if one is bad); an index given twice keeps its last triple."""
        indices = check_int_array("indices", indices, 0, self._num_entries)
        remote = check_int_array("remote_addrs", remote_addrs, 0, self._remote_limit,
                                 length=len(indices))
        local = check_int_array("local_addrs", local_addrs, 0, self._local_limit,
                                length=len(indices))
        self.store(*self._rows, np.zeros(len(indices), np.int64), indices, remote, local)

    def lookup(self, index: int, remote_addr: int) -> tuple[bool, int]:
        """``(hit, local_addr)``: hit when entry ``index`` is valid and holds ``remote_addr``.

        On a miss ``local_addr`` is 0 (the RTL drives 0 too, so both levels compare equal).
        """
        index = self._index(index)
        remote_addr = check_int("remote_addr", remote_addr, 0, self._remote_limit)
        hits, local = self.lookup_many(np.array([index]), np.array([remote_addr]))
        return bool(hits[0]), int(local[0])

    def lookup_many(self, indices, remote_addrs) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`lookup` of each pair ``(indices[i], remote_addrs[i])``, checked once as
        arrays: ``(hits, local_addrs)`` (bool and int64 arrays; 0 on a miss)."""
        indices = check_int_array("indices", indices, 0, self._num_entries)
        remote = check_int_array("remote_addrs", remote_addrs, 0, self._remote_limit,
                                 length=len(indices))
        return self.look_up(*self._rows, np.zeros(len(indices), np.int64), indices, remote)

    # ------------------------------------------------- many tables at once (the replay)
    @staticmethod
    def look_up(valid, remote, local, tables, indices, remote_addrs):
        """Lookup ``i`` in table ``tables[i]`` of the tables whose entries are the rows of
        ``valid``, ``remote``, ``local`` (:func:`new_tables`): ``(hits, local_addrs)`` as
        :meth:`lookup_many` answers on each table's twin (the same compiled function, which
        that method calls on its one row); int64 arguments, unchecked (the caller builds
        them)."""
        hits = np.empty(len(indices), np.bool_)
        local_addrs = np.empty(len(indices), np.int64)
        _look_up(valid, remote, local, tables, indices, remote_addrs, hits, local_addrs)
        return hits, local_addrs

    @staticmethod
    def store(valid, remote, local, tables, indices, remote_addrs, local_addrs) -> None:
        """Insert ``i`` into table ``tables[i]`` (rows as :meth:`look_up`), in order: the same
        state as :meth:`insert_many` on each table's twin (the same compiled function);
        int64 arguments, unchecked."""
        _store_entries(valid, remote, local, tables, indices, remote_addrs, local_addrs)

    @staticmethod
    def invalidate_entries(valid, tables, indices) -> None:
        """Clear the valid bit of entry ``indices[i]`` of table ``tables[i]`` (rows of
        ``valid``, as :meth:`look_up`): :meth:`invalidate` on each table's twin; int64
        arguments, unchecked."""
        valid[tables, indices] = False

    def invalidate(self, index: int) -> None:
        """Clear the valid bit of entry ``index``."""
        self.invalidate_entries(*self._rows[:1], self._row0, np.array([self._index(index)]))

    def invalidate_all(self) -> None:
        """Clear every valid bit (a new layer's expert ids reuse the entries)."""
        self._valid[:] = False

    def valid_entries(self) -> list[tuple[int, int, int]]:
        """``(index, remote_addr, local_addr)`` of every valid entry, index ascending: the
        inserts that rebuild this table's state from an empty one."""
        return [(i, int(self._remote[i]), int(self._local[i]))
                for i in np.flatnonzero(self._valid).tolist()]

    def entry(self, index: int) -> int:
        """The entry word, in the documented bit layout."""
        index = self._index(index)
        local_bits = self.layout.local_addr_bits
        return ((int(self._valid[index]) << (self.layout.remote_addr_bits + local_bits))
                | (int(self._remote[index]) << local_bits) | int(self._local[index]))
