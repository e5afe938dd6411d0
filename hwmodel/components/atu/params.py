"""Sizes and field widths of the ATU: the one definition its graph node, twin and RTL read.

An entry is ``valid | remote address | local address`` (docs/rtl.md, paper Table II), where
the remote address is ``die id | HBM page`` and the local address is an HBM page of this die::

    die_bits  = ceil(log2(num_dies))  (at least 1)    5 for the 24- and 25-die presets
    page_bits = 31 (8 TiB of 4 KiB pages per die), widened when a model's weights need more
    entry     = 1 + (die_bits + page_bits) + page_bits = 68 bits for the paper's wafers

so 512 entries are 512 x 68 bits = 4352 B = 4.25 KB, the paper's size.
"""

from __future__ import annotations

import attrs

from ...checks import check_int, index_bits, positive_int

__all__ = ["MATRICES_PER_EXPERT", "OP_BITS", "PAGE_BYTES", "PAPER", "PAPER_PAGE_BITS",
           "ATULayout"]

#: Bytes of one HBM page: the ATU maps pages, like a TLB.
PAGE_BYTES = 4096
#: The paper's page field: 31 bits of 4 KiB pages cover 8 TiB per die.
PAPER_PAGE_BITS = 31
#: Bits of a command's ``op`` field (the shape of the RTL's ``ATUOp``).
OP_BITS = 2
#: Weight matrices of one expert (gate, up and down projections), contiguous in HBM.
MATRICES_PER_EXPERT = 3


_POSITIVE = positive_int("ATULayout")


@attrs.frozen(kw_only=True)
class ATULayout:
    """Table size and field widths of one ATU.

    Parameters
    ----------
    entries : int
        Table entries, indexed by expert id within the current layer (paper: 512).
    num_dies : int
        Dies on the wafer; the die-id field of a remote address numbers them.
    page_bits : int
        Bits of an HBM page number (paper: 31).
    """

    entries: int = attrs.field(default=512, validator=_POSITIVE)
    num_dies: int = attrs.field(default=32, validator=_POSITIVE)
    page_bits: int = attrs.field(default=PAPER_PAGE_BITS, validator=_POSITIVE)

    @property
    def die_bits(self) -> int:
        """Bits of the die-id field: ``ceil(log2(num_dies))``, at least 1."""
        return index_bits(self.num_dies)

    @property
    def remote_addr_bits(self) -> int:
        """Bits of a remote address: die id above page."""
        return self.die_bits + self.page_bits

    @property
    def local_addr_bits(self) -> int:
        """Bits of a local address (a page of this die)."""
        return self.page_bits

    @property
    def entry_bits(self) -> int:
        """Bits of one entry: valid + remote address + local address (68 in the paper)."""
        return 1 + self.remote_addr_bits + self.local_addr_bits

    @property
    def index_bits(self) -> int:
        """Bits of an entry index."""
        return index_bits(self.entries)

    def command_fields(self) -> dict[str, int]:
        """Bits of each field of a command, in the RTL's order (:func:`~.rtl.command_layout`
        builds its layout from these; the graph node sums them without importing Amaranth)."""
        return {"op": OP_BITS, "index": self.index_bits, "remote": self.remote_addr_bits,
                "local": self.local_addr_bits}

    @property
    def size_bytes(self) -> int:
        """SRAM bytes of the table, ``entries x entry_bits`` rounded up to a byte."""
        return -(-self.entries * self.entry_bits // 8)

    def hbm_address(self, die: int, page: int) -> int:
        """Pack a remote address: ``die`` above ``page``.

        Raises
        ------
        TypeError, ValueError
            If ``die`` or ``page`` is not an integer or does not fit its field.
        """
        die = check_int("die", die, 0, self.num_dies)
        page = check_int("page", page, 0, 1 << self.page_bits)
        return (die << self.page_bits) | page

    def split_address(self, remote_addr: int) -> tuple[int, int]:
        """Inverse of :meth:`hbm_address`: ``(die, page)``."""
        remote_addr = check_int("remote_addr", remote_addr, 0, 1 << self.remote_addr_bits)
        return remote_addr >> self.page_bits, remote_addr & ((1 << self.page_bits) - 1)


#: The paper's ATU: 512 entries, 5-bit die ids (up to 32 dies), 31-bit pages: 68-bit entries.
PAPER = ATULayout()
