"""Graph node of the ATU: where it sits in the component graph, with its ports and SRAM size.

Sizes and widths come from :class:`~.params.ATULayout`, the definition the twin and the RTL
read too; the ``insert`` port carries one RTL command (its fields:
:meth:`~.params.ATULayout.command_fields`, without importing Amaranth).
"""

from __future__ import annotations

from ...graph import Component, Port
from .params import PAPER, ATULayout

__all__ = ["ATUUnit"]


class ATUUnit(Component):
    """Address translation unit in a die's D2D controller: remote address -> local copy.

    Parameters
    ----------
    name : str
        Component name (``"atu"``).
    entries : int
        SRAM entries (512 in the paper: 4.25 KB).
    num_dies : int
        Dies on the wafer (width of the die-id field of a remote address).

    Members
    -------
    layout : ATULayout
        Table size and field widths (the twin's and the RTL's).
    lookup : Port (in, addr)
        Remote-expert addresses to translate (exported by the D2D controller; its bus width).
    insert : Port (in, addr)
        New translations, one RTL command each, written when the PDU keeps a copy.
    """

    kind = "atu"

    def __init__(self, name: str = "atu", *, entries: int = PAPER.entries,
                 num_dies: int = PAPER.num_dies):
        super().__init__(name)
        self.layout = ATULayout(entries=entries, num_dies=num_dies)
        self.entries = entries
        self.add_port(Port("lookup", "in", "addr", doc="addresses to translate"))
        self.add_port(Port("insert", "in", "addr", width=sum(self.layout.command_fields().values()),
                           doc="new translations from the PDU"))

    @property
    def entry_bits(self) -> int:
        """Bits of one entry (68 for the paper's wafers)."""
        return self.layout.entry_bits

    @property
    def size_bytes(self) -> int:
        """SRAM size: ``entries x entry_bits`` (4352 bytes = 4.25 KB for 512 x 68 bits)."""
        return self.layout.size_bytes
