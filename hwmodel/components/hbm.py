"""A die's high-bandwidth memory (HBM) as a node of the component graph.

The class holds the memory's place in the graph (its ports and parameters) and its analytical
behaviour (docs/replay.md): the read or write latency of a transfer,
``latency + ceil(bytes / (bandwidth x efficiency))``, and the usable capacity. The replay's
lowering (:mod:`hwmodel.system.lowering`) reads each die's latencies from here.
"""

from __future__ import annotations

import math

from ..graph import Component, Port
from ..params import HBMParams

__all__ = ["HBM"]


class HBM(Component):
    """One die's HBM: capacity, bandwidth and access latency from :class:`HBMParams`.

    Parameters
    ----------
    name : str
        Component name (``"hbm"`` inside a die).
    params : HBMParams
        Bandwidth, efficiency, latency, capacity and reserved share.

    Members
    -------
    llc : Port (in, mem)
        Reads and line fills from the die's LLC (local expert weights).
    d2d : Port (in, mem)
        Accesses from the die's D2D controller: reads served to remote dies and writes of
        duplicated experts arriving from them (the PDU's copies).
    """

    kind = "hbm"

    def __init__(self, name: str = "hbm", params: HBMParams | None = None):
        params = HBMParams() if params is None else params
        if not isinstance(params, HBMParams):
            raise TypeError(f"params must be HBMParams, not {params!r}")
        super().__init__(name, params)
        self.add_port(Port("llc", "in", "mem", doc="reads and fills from the local LLC"))
        self.add_port(Port("d2d", "in", "mem",
                           doc="remote reads and replica writes via the D2D controller"))

    # ---- analytical model (docs/replay.md) ----------------------------------------------
    def effective_bandwidth_GBps(self, efficiency: float | None = None) -> float:
        """Bandwidth achieved: peak x efficiency (``efficiency`` overrides the parameter)."""
        eff = self.params.efficiency if efficiency is None else efficiency
        return self.params.bandwidth_GBps * eff

    def access_latency_ns(self, nbytes: float, efficiency: float | None = None) -> int:
        """Latency of one read or write of ``nbytes``: ``latency + ceil(bytes / (bw x eff))``.

        A local expert read moves the slice plus the activations; a remote read the slice only
        (the caller passes the byte count).
        """
        if nbytes < 0:
            raise ValueError(f"nbytes must be zero or more, not {nbytes!r}")
        return int(self.params.latency_ns) + math.ceil(
            nbytes / self.effective_bandwidth_GBps(efficiency))

    @property
    def usable_bytes(self) -> int:
        """Capacity left once the system's reserved share is taken."""
        return int(self.params.capacity_bytes * (1 - self.params.reserved_fraction))
