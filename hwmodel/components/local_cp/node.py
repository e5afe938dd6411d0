"""Graph node of the Local CP: where it sits in the component graph, with its ports.

Widths come from :class:`~.params.LocalCPLayout`'s message fields, the definition the twin and
the RTL read too (summed here without importing Amaranth).
"""

from __future__ import annotations

from ...graph import Component, Port
from ..pdu.params import PDULayout
from .params import PAPER, LocalCPLayout

__all__ = ["LocalCPUnit"]


class LocalCPUnit(Component):
    """A die's Local command processor: hands sub-kernel tasks to SMs, writes the PDU table.

    Parameters
    ----------
    name : str
        Component name (``"local_cp"``).
    num_sms : int
        SMs it dispatches tasks to (from :class:`~hwmodel.params.ComputeParams`).
    num_dies : int
        Dies on the wafer (width of a task's source-die field).
    experts : int
        Experts per layer of its PDU (``die.pdu_experts``).

    Members
    -------
    layout : LocalCPLayout
        Field widths (the twin's and the RTL's).
    global_cp : Port (inout, cmd)
        Sub-kernels and predictions in from the Global CP, duplication reports out
        (exported by the die as its ``cp`` port).
    sm : Port (out, cmd)
        Tasks to the die's compute unit, one RTL SM task message each.
    pdu : Port (out, cmd)
        Register writes to the PDU in the D2D controller, one PDU command each.
    """

    kind = "local_cp"

    def __init__(self, name: str = "local_cp", *, num_sms: int = 132,
                 num_dies: int = PAPER.num_dies, experts: int = PAPER.experts):
        super().__init__(name)
        self.num_sms = num_sms
        self.layout = LocalCPLayout(num_dies=num_dies, experts=experts)
        self.add_port(Port("global_cp", "inout", "cmd", doc="to and from the Global CP"))
        self.add_port(Port("sm", "out", "cmd", width=sum(self.layout.sm_task_fields().values()),
                           doc="tasks to the SMs"))
        self.add_port(Port("pdu", "out", "cmd",
                           width=sum(PDULayout(experts=experts).command_fields().values()),
                           doc="PDU table writes"))
