"""A die's last-level cache (LLC) as a node of the component graph.

The class holds the cache's place in the graph (its ports and parameters, hit, miss and write
latencies among them) and its analytical geometry (docs/rtl.md): the set count for a line of
one slice. :class:`SetAssociativeLRU` is the reference of its replacement (set-associative LRU
over expert slices), which the replay's compiled kernel (:mod:`hwmodel.system.engine`) runs for
all dies at once; the lowering reads each die's latencies and geometry from here.
"""

from __future__ import annotations

from ..graph import Component, Port
from ..params import LLCParams

__all__ = ["LLC", "SetAssociativeLRU"]


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

    # ---- analytical model (docs/rtl.md) ----------------------------------------------
    def num_sets(self, line_bytes: float) -> int:
        """Sets of the cache when a line holds ``line_bytes`` (one slice): at least 1, as in
        the artefact (``capacity // (ways x line)``; Llama-4's 80 MiB slice gives 1 set)."""
        return max(1, int(self.params.capacity_bytes // (self.params.associativity
                                                          * line_bytes)))

    def whole_slices(self, slice_bytes: float) -> int:
        """Slices of ``slice_bytes`` that fit in the cache's capacity, byte for byte (0 if one
        slice is larger): the physical size of the replay's default prefetch buffer."""
        return int(self.params.capacity_bytes // slice_bytes)

    def model(self, line_bytes: float) -> SetAssociativeLRU:
        """A fresh :class:`SetAssociativeLRU` with this cache's geometry."""
        return SetAssociativeLRU(self.num_sets(line_bytes), self.params.associativity)


class SetAssociativeLRU:
    """Set-associative LRU tag store; set index = expert id mod sets, tag = slice address.

    ``check`` does not touch the LRU order (the artefact's lookups do not); ``store`` inserts
    or refreshes a line and evicts the least recently stored one of a full set.

    Parameters
    ----------
    num_sets, ways : int
        Geometry.
    """

    def __init__(self, num_sets: int, ways: int):
        if num_sets < 1 or ways < 1:
            raise ValueError(f"num_sets ({num_sets!r}) and ways ({ways!r}) must be >= 1")
        self.num_sets = num_sets
        self.ways = ways
        self._sets = [[] for _ in range(num_sets)]   # oldest first

    def check(self, expert: int, tag) -> bool:
        """Whether line ``tag`` of ``expert`` is present."""
        return tag in self._sets[expert % self.num_sets]

    def store(self, expert: int, tag):
        """Insert (or refresh) ``tag``; returns the evicted tag or None."""
        lines = self._sets[expert % self.num_sets]
        if tag in lines:
            lines.remove(tag)
            lines.append(tag)
            return None
        victim = lines.pop(0) if len(lines) >= self.ways else None
        lines.append(tag)
        return victim

    def lines(self, expert: int) -> tuple:
        """Tags of ``expert``'s set, least recently stored first."""
        return tuple(self._sets[expert % self.num_sets])

