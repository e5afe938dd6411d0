"""Sizes and field widths of the PDU: the one definition its graph node, twin and RTL read.

Per expert of the current layer the PDU keeps ``cp_en`` and ``is_local`` (2 bits), in 16-bit
registers of eight experts each (paper Table II): 512 experts are 64 registers, 128 B.
"""

from __future__ import annotations

import attrs

from ...checks import index_bits, positive_int

__all__ = ["BITS_PER_EXPERT", "EXPERTS_PER_WORD", "OP_BITS", "PAPER", "WORD_BITS", "PDULayout"]

#: Width of one PDU register (Table II: 16-bit registers).
WORD_BITS = 16
#: Bits the PDU keeps per expert: ``cp_en`` and ``is_local``.
BITS_PER_EXPERT = 2
#: Bits of a command's ``op`` field (the shape of the RTL's ``PDUOp``).
OP_BITS = 2
#: Experts configured by one register write.
EXPERTS_PER_WORD = WORD_BITS // BITS_PER_EXPERT


_POSITIVE = positive_int("PDULayout")


@attrs.frozen(kw_only=True)
class PDULayout:
    """Table size of one PDU.

    Parameters
    ----------
    experts : int
        Experts per layer the table covers (paper: 512).
    """

    experts: int = attrs.field(default=512, validator=_POSITIVE)

    @property
    def num_words(self) -> int:
        """16-bit registers: ``ceil(experts / 8)``."""
        return -(-self.experts // EXPERTS_PER_WORD)

    @property
    def size_bytes(self) -> int:
        """Register bytes (128 for 512 experts)."""
        return self.num_words * WORD_BITS // 8

    @property
    def index_bits(self) -> int:
        """Bits of a command's index field (an expert id; a register number is smaller)."""
        return index_bits(self.experts)

    def command_fields(self) -> dict[str, int]:
        """Bits of each field of a command, in the RTL's order (:func:`~.rtl.command_layout`
        builds its layout from these; the graph node sums them without importing Amaranth)."""
        return {"op": OP_BITS, "index": self.index_bits, "word": WORD_BITS}


#: The paper's PDU: 512 experts, 64 registers, 128 B.
PAPER = PDULayout()
