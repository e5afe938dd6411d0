"""Python twin of the address translation unit (ATU) and the HBM address map it translates.

The ATU sits in each die's D2D controller (SPEC section 3, paper Table II). When the PDU decides
to keep a local copy of a remote expert, the copy's address is inserted here; a later read of the
expert's remote address hits and is redirected to the local copy.

Entry format (68 bits, the paper's size; 512 entries = 4.25 KB)::

    bit 67      : valid
    bits 66..31 : remote address (36 bits) = die id (5 bits, 66..62) | HBM page (31 bits, 61..31)
    bits 30..0  : local address (31 bits)  = HBM page of the local copy on this die

Addresses are HBM *page* numbers of ``PAGE_BYTES`` = 4 KiB (a translation unit maps pages, like a
TLB): 31 bits of page cover 8 TiB per die, more than any HBM stack; 5 bits of die id cover 32
dies (every wafer preset has 24 or 25). The entry is indexed by the expert id within the current
MoE layer (``index < num_entries``), so a lookup is one SRAM read plus one tag compare.

HBM layout used by :class:`AddressMap` (per die)::

    pages [0, 2**30)          : home region, the experts this die owns, dense by (layer, slot)
    pages [2**30, 2**31)      : replica region, slot per (layer, expert) of the whole model

An expert's three weight matrices (slices) are contiguous: matrix ``m`` starts at the expert's
base page plus ``m * slice_pages``, so one ATU entry (the expert's base page) translates all three.
"""

from __future__ import annotations

import math

import attrs

from ...tb.checks import check_int

__all__ = [
    "DIE_BITS",
    "ENTRY_BITS",
    "LOCAL_ADDR_BITS",
    "MATRICES_PER_EXPERT",
    "PAGE_BITS",
    "PAGE_BYTES",
    "REMOTE_ADDR_BITS",
    "REPLICA_BASE_PAGE",
    "ATUTwin",
    "AddressMap",
    "hbm_address",
    "split_address",
]

PAGE_BYTES = 4096
DIE_BITS = 5
PAGE_BITS = 31
REMOTE_ADDR_BITS = DIE_BITS + PAGE_BITS   # 36
LOCAL_ADDR_BITS = PAGE_BITS               # 31
ENTRY_BITS = 1 + REMOTE_ADDR_BITS + LOCAL_ADDR_BITS   # 68, Table II
REPLICA_BASE_PAGE = 1 << (PAGE_BITS - 1)
MATRICES_PER_EXPERT = 3   # gate, up and down projections


def hbm_address(die: int, page: int) -> int:
    """Pack a remote HBM address: ``die`` (5 bits) above ``page`` (31 bits).

    Raises
    ------
    TypeError, ValueError
        If ``die`` or ``page`` is not an integer or does not fit its field.
    """
    die = check_int("die", die, 0, 1 << DIE_BITS)
    page = check_int("page", page, 0, 1 << PAGE_BITS)
    return (die << PAGE_BITS) | page


def split_address(remote_addr: int) -> tuple[int, int]:
    """Inverse of :func:`hbm_address`: ``(die, page)`` of a 36-bit remote address."""
    remote_addr = check_int("remote_addr", remote_addr, 0, 1 << REMOTE_ADDR_BITS)
    return remote_addr >> PAGE_BITS, remote_addr & ((1 << PAGE_BITS) - 1)


def _positive_int(instance, attribute, value):
    check_int(attribute.name, value, 1)


@attrs.frozen(kw_only=True)
class AddressMap:
    """Where each expert's weights live in HBM, as ATU addresses.

    Placement follows SPEC section 6: expert ``e`` lives on die ``e // p`` with
    ``p = num_experts // num_dies``; experts past ``p * num_dies - 1`` go to die
    ``e % num_dies``. Within a die, experts take consecutive *slots* in id order.

    Parameters
    ----------
    num_dies : int
        Dies on the wafer (at most 32, the die field of an ATU address).
    num_experts : int
        Routed experts per MoE layer (at most 512).
    num_layers : int
        Layers of the model (layer ids ``0 .. num_layers - 1``).
    slice_bytes : int
        Bytes of one weight matrix of one expert (e.g. hidden x ffn x 2 for BF16).
    """

    num_dies: int = attrs.field(validator=_positive_int)
    num_experts: int = attrs.field(validator=_positive_int)
    num_layers: int = attrs.field(validator=_positive_int)
    slice_bytes: int = attrs.field(validator=_positive_int)

    def __attrs_post_init__(self):
        check_int("num_dies", self.num_dies, 1, (1 << DIE_BITS) + 1)
        check_int("num_experts", self.num_experts, 1, 513)
        top = max(self._page(self.num_layers - 1, self.slots_per_die - 1, 2, home=True),
                  self._page(self.num_layers - 1, self.num_experts - 1, 2, home=False))
        if top + self.slice_pages > (1 << PAGE_BITS):
            raise ValueError(
                f"the weights of {self.num_layers} layers x {self.num_experts} experts x "
                f"{self.slice_bytes} B per matrix do not fit the {PAGE_BITS}-bit page field "
                f"of an ATU address (last page {top + self.slice_pages - 1})")

    @property
    def slice_pages(self) -> int:
        """Pages per weight matrix (rounded up: each matrix starts on a page)."""
        return math.ceil(self.slice_bytes / PAGE_BYTES)

    @property
    def _per_die(self) -> int:
        return self.num_experts // self.num_dies

    @property
    def slots_per_die(self) -> int:
        """Most experts of one layer owned by one die."""
        p = self._per_die
        return p + math.ceil((self.num_experts - p * self.num_dies) / self.num_dies)

    def home(self, expert: int) -> tuple[int, int]:
        """``(die, slot)`` of ``expert``'s home copy."""
        expert = check_int("expert", expert, 0, self.num_experts)
        p = self._per_die
        if expert < p * self.num_dies:
            return expert // p, expert % p
        return expert % self.num_dies, p + (expert - p * self.num_dies) // self.num_dies

    def _page(self, layer, slot_or_expert, matrix, *, home):
        if home:
            return ((layer * self.slots_per_die + slot_or_expert) * MATRICES_PER_EXPERT
                    + matrix) * self.slice_pages
        return REPLICA_BASE_PAGE + ((layer * self.num_experts + slot_or_expert)
                                    * MATRICES_PER_EXPERT + matrix) * self.slice_pages

    def _check(self, layer, matrix):
        check_int("layer", layer, 0, self.num_layers)
        check_int("matrix", matrix, 0, MATRICES_PER_EXPERT)

    def home_address(self, layer: int, expert: int, matrix: int = 0) -> int:
        """Remote (36-bit) address of ``matrix`` of ``expert`` of ``layer`` on its home die."""
        self._check(layer, matrix)
        die, slot = self.home(expert)
        return hbm_address(die, self._page(layer, slot, matrix, home=True))

    def replica_address(self, layer: int, expert: int, matrix: int = 0) -> int:
        """Local (31-bit) page of the replica of ``matrix`` of ``expert`` of ``layer``."""
        self._check(layer, matrix)
        expert = check_int("expert", expert, 0, self.num_experts)
        return self._page(layer, expert, matrix, home=False)


class ATUTwin:
    """Transaction-level twin of :class:`hwmodel.components.atu.ATU`.

    Parameters
    ----------
    num_entries : int
        Entries, indexed by expert id within the current layer (paper: 512).

    Raises
    ------
    TypeError, ValueError
        On a non-integer or out-of-range argument, naming it.
    """

    def __init__(self, num_entries: int = 512):
        self._num_entries = check_int("num_entries", num_entries, 1, 4097)
        self._valid = [False] * self._num_entries
        self._remote = [0] * self._num_entries
        self._local = [0] * self._num_entries

    @property
    def num_entries(self) -> int:
        return self._num_entries

    @property
    def entry_bits(self) -> int:
        """Bits of one entry (68): valid + remote address + local address."""
        return ENTRY_BITS

    @property
    def storage_bytes(self) -> float:
        """SRAM bytes of the table (4352 = 4.25 KB for 512 entries)."""
        return self._num_entries * ENTRY_BITS / 8

    def _index(self, index):
        return check_int("index", index, 0, self._num_entries)

    def insert(self, index: int, remote_addr: int, local_addr: int) -> None:
        """Make entry ``index`` translate ``remote_addr`` to ``local_addr`` (valid)."""
        index = self._index(index)
        remote_addr = check_int("remote_addr", remote_addr, 0, 1 << REMOTE_ADDR_BITS)
        local_addr = check_int("local_addr", local_addr, 0, 1 << LOCAL_ADDR_BITS)
        self._valid[index] = True
        self._remote[index] = remote_addr
        self._local[index] = local_addr

    def lookup(self, index: int, remote_addr: int) -> tuple[bool, int]:
        """``(hit, local_addr)``: hit when entry ``index`` is valid and holds ``remote_addr``.

        On a miss ``local_addr`` is 0 (the RTL drives 0 too, so both levels compare equal).
        """
        index = self._index(index)
        remote_addr = check_int("remote_addr", remote_addr, 0, 1 << REMOTE_ADDR_BITS)
        if self._valid[index] and self._remote[index] == remote_addr:
            return True, self._local[index]
        return False, 0

    def invalidate(self, index: int) -> None:
        """Clear the valid bit of entry ``index``."""
        self._valid[self._index(index)] = False

    def invalidate_all(self) -> None:
        """Clear every valid bit (a new layer's expert ids reuse the entries)."""
        self._valid = [False] * self._num_entries

    def entry(self, index: int) -> int:
        """The 68-bit entry word, in the documented bit layout."""
        index = self._index(index)
        return ((int(self._valid[index]) << (REMOTE_ADDR_BITS + LOCAL_ADDR_BITS))
                | (self._remote[index] << LOCAL_ADDR_BITS) | self._local[index])
