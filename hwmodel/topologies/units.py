"""Graph nodes of the units the study adds (SPEC section 3, Fig. 10 and Table II).

These classes place the ATU, the PDU, the Local CP and the Global CP in the component graph,
with their ports and storage sizes; their behaviour lives elsewhere (the Python twins and the
Amaranth RTL under :mod:`hwmodel.components`).
"""

from __future__ import annotations

from ..graph import Component, Port
from ..params import GlobalCPParams

__all__ = ["ATU_ENTRY_BITS", "EDT_ENTRY_BITS", "PDU_BITS_PER_EXPERT", "PDU_REGISTER_BITS",
           "ATUUnit", "GlobalCPUnit", "LocalCPUnit", "PDUUnit"]

#: Bits of one ATU entry (remote address tag and local address; Table II: 68 bits).
ATU_ENTRY_BITS = 68
#: Bits the PDU keeps per expert: ``cp_en`` and ``is_local``.
PDU_BITS_PER_EXPERT = 2
#: Width of one PDU register (Table II: 16-bit registers).
PDU_REGISTER_BITS = 16
#: Bits of one Expert Distribution Table entry (home die and presence bitmap; Table II: 72).
EDT_ENTRY_BITS = 72


def _bytes(bits: int) -> int:
    return -(-bits // 8)


class ATUUnit(Component):
    """Address translation unit in a die's D2D controller: remote address -> local copy.

    Parameters
    ----------
    name : str
        Component name (``"atu"``).
    entries : int
        SRAM entries of :data:`ATU_ENTRY_BITS` bits (512 in the paper: 4.25 KB).

    Members
    -------
    lookup : Port (in, addr)
        Remote-expert addresses to translate (exported by the D2D controller).
    insert : Port (in, addr)
        New translations, written when the PDU keeps a copy.
    """

    kind = "atu"

    def __init__(self, name: str = "atu", *, entries: int = 512):
        super().__init__(name)
        if isinstance(entries, bool) or not isinstance(entries, int) or entries < 1:
            raise ValueError(f"entries must be a positive integer, not {entries!r}")
        self.entries = entries
        self.add_port(Port("lookup", "in", "addr", width=48, doc="addresses to translate"))
        self.add_port(Port("insert", "in", "addr", width=48, doc="new translations from the PDU"))

    @property
    def entry_bits(self) -> int:
        return ATU_ENTRY_BITS

    @property
    def size_bytes(self) -> int:
        """SRAM size: ``entries x 68 bits`` (4352 bytes = 4.25 KB for 512 entries)."""
        return _bytes(self.entries * ATU_ENTRY_BITS)


class PDUUnit(Component):
    """Prediction unit in a die's D2D controller: per expert ``cp_en`` and ``is_local`` bits.

    Parameters
    ----------
    name : str
        Component name (``"pdu"``).
    experts : int
        Experts covered (512 in the paper: 128 B of 16-bit registers).

    Members
    -------
    table : Port (in, cmd)
        ``cp_en`` writes from the Local CP (exported by the D2D controller).
    insert : Port (out, addr)
        On a passing slice with ``cp_en`` set: the ATU entry of the new local copy.
    """

    kind = "pdu"

    def __init__(self, name: str = "pdu", *, experts: int = 512):
        super().__init__(name)
        if isinstance(experts, bool) or not isinstance(experts, int) or experts < 1:
            raise ValueError(f"experts must be a positive integer, not {experts!r}")
        self.experts = experts
        self.add_port(Port("table", "in", "cmd", message="PDUTable", doc="cp_en writes"))
        self.add_port(Port("insert", "out", "addr", width=48, doc="ATU entries of new copies"))

    @property
    def size_bytes(self) -> int:
        """Register bytes: ``experts x 2 bits`` rounded up to whole 16-bit registers."""
        bits = self.experts * PDU_BITS_PER_EXPERT
        registers = -(-bits // PDU_REGISTER_BITS)
        return _bytes(registers * PDU_REGISTER_BITS)

    @property
    def registers(self) -> int:
        """Number of 16-bit registers."""
        return -(-self.experts * PDU_BITS_PER_EXPERT // PDU_REGISTER_BITS)


class LocalCPUnit(Component):
    """A die's Local command processor: hands sub-kernel tasks to SMs, writes the PDU table.

    Parameters
    ----------
    name : str
        Component name (``"local_cp"``).
    num_sms : int
        SMs it dispatches tasks to (from :class:`~hwmodel.params.ComputeParams`).

    Members
    -------
    global_cp : Port (inout, cmd)
        Sub-kernels and predictions in from the Global CP, duplication reports out
        (exported by the die as its ``cp`` port).
    sm : Port (out, cmd)
        Tasks to the die's compute unit.
    pdu : Port (out, cmd)
        ``cp_en`` writes to the PDU in the D2D controller.
    """

    kind = "local_cp"

    def __init__(self, name: str = "local_cp", *, num_sms: int = 132):
        super().__init__(name)
        self.num_sms = num_sms
        self.add_port(Port("global_cp", "inout", "cmd", doc="to and from the Global CP"))
        self.add_port(Port("sm", "out", "cmd", message="Task", doc="tasks to the SMs"))
        self.add_port(Port("pdu", "out", "cmd", message="PDUTable", doc="PDU table writes"))


class GlobalCPUnit(Component):
    """The wafer's Global command processor: EDT, cross-token heatmap, allocator, predictor.

    Parameters
    ----------
    name : str
        Component name (``"global_cp"``).
    params : GlobalCPParams
        Table sizes.
    die_names : sequence of str
        One command port is created per die, named after it.

    Members
    -------
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
        for die in die_names:
            self.add_port(Port(die, "inout", "cmd", doc=f"commands to and from {die}"))

    @property
    def edt_bytes(self) -> int:
        """Expert Distribution Table: ``edt_entries x 72 bits`` (4.5 KB for 512)."""
        return _bytes(self.params.edt_entries * EDT_ENTRY_BITS)

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
