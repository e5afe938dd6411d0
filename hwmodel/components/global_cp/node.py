"""Graph node of the Global CP: where it sits in the component graph, with its ports and sizes.

The EDT's entry format comes from :class:`~.params.EDTLayout` (the RTL's too), sized for the
wafer the node is built in (one presence bit per die).
"""

from __future__ import annotations

from ...graph import Component, Port
from ...params import GlobalCPParams
from .params import EDTLayout

__all__ = ["GlobalCPUnit"]


def _bytes(bits: int) -> int:
    return -(-bits // 8)


class GlobalCPUnit(Component):
    """The wafer's Global command processor: EDT, cross-token heatmap, allocator, predictor.

    Parameters
    ----------
    name : str
        Component name (``"global_cp"``).
    params : GlobalCPParams
        Table sizes.
    die_names : sequence of str
        One command port is created per die, named after it; their number sizes the EDT's
        presence bitmap and home-die field.

    Members
    -------
    edt_layout : EDTLayout
        The EDT's size and entry format (the RTL's).
    die_<x>_<y> : Port (inout, cmd)
        Command link to that die's Local CP.
    """

    kind = "global_cp"

    def __init__(self, name: str = "global_cp", params: GlobalCPParams | None = None, *,
                 die_names=()):
        params = GlobalCPParams() if params is None else params
        if not isinstance(params, GlobalCPParams):
            raise TypeError(f"params must be GlobalCPParams, not {params!r}")
        super().__init__(name, params)
        die_names = list(die_names)
        self.edt_layout = EDTLayout(entries=params.edt_entries, num_dies=max(1, len(die_names)))
        for die in die_names:
            self.add_port(Port(die, "inout", "cmd", doc=f"commands to and from {die}"))

    @property
    def edt_bytes(self) -> int:
        """Expert Distribution Table bytes: ``edt_entries x entry_bits`` (4.5 KB for 512 entries
        on 64 dies, 2 KB on 25 dies)."""
        return self.edt_layout.size_bytes

    @property
    def heatmap_bytes(self) -> int:
        """Cross-token heatmap in CP DRAM: layers x experts^2 counters (50 MiB for the paper)."""
        p = self.params
        return _bytes(p.heatmap_layers * p.heatmap_experts ** 2 * p.heatmap_count_bits)

    @property
    def heatmap_cache_bytes(self) -> int:
        """On-chip cache of one layer of the heatmap (0.5 MiB for the paper)."""
        p = self.params
        return _bytes(p.heatmap_experts ** 2 * p.heatmap_count_bits)
