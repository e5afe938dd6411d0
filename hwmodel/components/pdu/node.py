"""Graph node of the PDU: where it sits in the component graph, with its ports and size.

Sizes and widths come from :class:`~.params.PDULayout`, the definition the twin and the RTL
read too; the ``table`` port carries one RTL command (its fields:
:meth:`~.params.PDULayout.command_fields`, without importing Amaranth).
"""

from __future__ import annotations

from ...graph import Component, Port
from ..atu.params import ATULayout
from .params import PAPER, PDULayout

__all__ = ["PDUUnit"]


class PDUUnit(Component):
    """Prediction unit in a die's D2D controller: per expert ``cp_en`` and ``is_local`` bits.

    Parameters
    ----------
    name : str
        Component name (``"pdu"``).
    experts : int
        Experts covered (512 in the paper: 128 B of 16-bit registers).
    atu : ATULayout, optional
        The layout of the ATU it inserts translations into (default: the paper's).

    Members
    -------
    layout : PDULayout
        Table size (the twin's and the RTL's).
    table : Port (in, cmd)
        Register writes from the Local CP, one RTL command each (exported by the D2D
        controller).
    insert : Port (out, addr)
        On a passing slice with ``cp_en`` set: the ATU insert command of the new local copy.
    """

    kind = "pdu"

    def __init__(self, name: str = "pdu", *, experts: int = PAPER.experts,
                 atu: ATULayout | None = None):
        super().__init__(name)
        self.layout = PDULayout(experts=experts)
        self.experts = experts
        atu = ATULayout() if atu is None else atu
        self.add_port(Port("table", "in", "cmd", width=sum(self.layout.command_fields().values()),
                           doc="cp_en writes"))
        self.add_port(Port("insert", "out", "addr", width=sum(atu.command_fields().values()),
                           doc="ATU entries of new copies"))

    @property
    def size_bytes(self) -> int:
        """Register bytes: ``experts x 2 bits`` rounded up to whole 16-bit registers."""
        return self.layout.size_bytes

    @property
    def registers(self) -> int:
        """Number of 16-bit registers."""
        return self.layout.num_words
