"""A die's streaming multiprocessors, seen as one compute unit, as a node of the graph.

The analytical behaviour (GEMM time per expert slice from the peak throughput and a utilisation
table, SPEC section 6) is added to this class by the system model; this module declares its
place in the graph: its ports and parameters.
"""

from __future__ import annotations

from ..graph import Component, Port
from ..params import ComputeParams

__all__ = ["Compute"]


class Compute(Component):
    """One die's compute unit (its SMs).

    Parameters
    ----------
    name : str
        Component name (``"compute"`` inside a die).
    params : ComputeParams
        Peak FP16/BF16 throughput and number of SMs.

    Members
    -------
    mem : Port (out, mem)
        Weight and activation reads through the LLC.
    cmd : Port (in, cmd)
        Tasks (expert, token count) handed out by the die's Local CP.
    """

    kind = "compute"

    def __init__(self, name: str = "compute", params: ComputeParams | None = None):
        params = ComputeParams() if params is None else params
        if not isinstance(params, ComputeParams):
            raise TypeError(f"params must be ComputeParams, not {params!r}")
        super().__init__(name, params)
        self.add_port(Port("mem", "out", "mem", doc="reads through the LLC"))
        self.add_port(Port("cmd", "in", "cmd", message="Task",
                           doc="tasks from the Local CP"))
