"""A die's last-level cache (LLC) as a node of the component graph.

The analytical behaviour (set-associative LRU lookup of expert slices, hit/miss/write latencies,
SPEC section 3) is added to this class by the system model; this module declares its place in
the graph: its ports and parameters.
"""

from __future__ import annotations

from ..graph import Component, Port
from ..params import LLCParams

__all__ = ["LLC"]


class LLC(Component):
    """One die's LLC; a line holds one expert weight matrix (slice).

    Parameters
    ----------
    name : str
        Component name (``"llc"`` inside a die).
    params : LLCParams
        Capacity, associativity and latencies.

    Members
    -------
    req : Port (in, mem)
        Requests from the die's compute unit.
    hbm : Port (out, mem)
        Misses to the local HBM and line fills from it.
    remote : Port (inout, mem)
        Data exchanged with other dies through the D2D controller (slices read from remote
        dies arrive here; remote dies' reads of this die's lines leave here).
    miss_addr : Port (out, addr)
        Addresses of misses on remote experts, sent to the D2D controller for ATU translation.
    """

    kind = "llc"

    def __init__(self, name: str = "llc", params: LLCParams | None = None):
        params = LLCParams() if params is None else params
        if not isinstance(params, LLCParams):
            raise TypeError(f"params must be LLCParams, not {params!r}")
        super().__init__(name, params)
        self.add_port(Port("req", "in", "mem", doc="requests from compute"))
        self.add_port(Port("hbm", "out", "mem", doc="misses and fills to and from local HBM"))
        self.add_port(Port("remote", "inout", "mem", doc="slices to and from other dies"))
        self.add_port(Port("miss_addr", "out", "addr", width=48,
                           doc="remote-expert miss addresses for ATU translation"))
