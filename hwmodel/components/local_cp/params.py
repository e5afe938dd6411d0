"""Sizes and field widths of the Local CP: the one definition its graph node, twin and RTL read.

A task names an expert (``ceil(log2(experts))`` bits), a token count (:data:`TOKEN_BITS`) and the
die its weights come from (``ceil(log2(num_dies))`` bits, the wafer's die-id field).
"""

from __future__ import annotations

import attrs

from ...checks import index_bits, positive_int

__all__ = ["COUNT_BITS", "PAPER", "TOKEN_BITS", "LocalCPLayout"]

#: Tokens per task: a whole batch's prefill can exceed 2**16.
TOKEN_BITS = 24
#: Bits of the per-layer task counters of the statistics message.
COUNT_BITS = 16


_POSITIVE = positive_int("LocalCPLayout")


@attrs.frozen(kw_only=True)
class LocalCPLayout:
    """Field widths of one Local CP.

    Parameters
    ----------
    num_dies : int
        Dies on the wafer (the task's source-die field numbers them).
    experts : int
        Experts per layer (its PDU's size).
    sm_slots : int
        SM slots it dispatches to (one task stream each).
    """

    num_dies: int = attrs.field(default=64, validator=_POSITIVE)
    experts: int = attrs.field(default=512, validator=_POSITIVE)
    sm_slots: int = attrs.field(default=4, validator=_POSITIVE)

    @property
    def die_bits(self) -> int:
        """Bits of a die id: ``ceil(log2(num_dies))``, at least 1."""
        return index_bits(self.num_dies)

    @property
    def expert_bits(self) -> int:
        """Bits of an expert id (also wide enough for a PDU register number)."""
        return index_bits(self.experts)

    def sm_task_fields(self) -> dict[str, int]:
        """Bits of each field of a task handed to an SM slot, in the RTL's order
        (:func:`~.rtl.sm_task_layout` builds its layout from these; the graph node sums them
        without importing Amaranth)."""
        return {"expert": self.expert_bits, "tokens": TOKEN_BITS, "remote": 1, "copy": 1}


#: The default Local CP: a wafer of up to 64 dies (the paper's EDT bitmap), 512 experts.
PAPER = LocalCPLayout()
