"""Amaranth RTL of the ATU (address translation unit); behaviour defined by :mod:`.twin`.

One command per cycle on ``cmd``; only lookups answer on ``resp``, exactly ``LOOKUP_LATENCY`` = 1
cycle after the command is accepted (the synchronous SRAM read), in command order. The table is an
``entries x (entry_bits - 1)`` SRAM (remote and local address, built as ``lib.memory.Memory``) plus
the valid bits in flip-flops, so ``INVALIDATE_ALL`` takes one cycle instead of one SRAM write per
entry: 512 x 68 bits in all for the paper, 4.25 KB. Every width comes from the unit's
:class:`~.params.ATULayout` (elaboration-time parameters ``num_entries``, ``num_dies``,
``page_bits``).
"""

# No `from __future__ import annotations`: data.Struct reads its annotations as shapes.

from amaranth.hdl import Cat, Const, Module, Signal, unsigned
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.memory import Memory, MemoryData
from amaranth.lib.wiring import In, Out

from ...checks import check_int
from .params import OP_BITS, PAPER, ATULayout

__all__ = [
    "ATU",
    "LOOKUP_LATENCY",
    "ATUCommand",
    "ATUOp",
    "ATUResponse",
    "command_layout",
    "response_layout",
]

LOOKUP_LATENCY = 1


class ATUOp(enum.Enum, shape=OP_BITS):
    INSERT = 0
    LOOKUP = 1
    INVALIDATE = 2
    INVALIDATE_ALL = 3


def command_layout(layout: ATULayout) -> data.StructLayout:
    """A command: ``index`` is the expert id within the layer (entry number)."""
    return data.StructLayout({**layout.command_fields(), "op": ATUOp})


def response_layout(layout: ATULayout) -> data.StructLayout:
    """A lookup result: ``local`` is the translated address on a hit, 0 on a miss."""
    return data.StructLayout({"hit": 1, "local": layout.local_addr_bits})


#: Command and response of the paper's ATU (:data:`.params.PAPER`).
ATUCommand = command_layout(PAPER)
ATUResponse = response_layout(PAPER)


class ATU(wiring.Component):
    """Address translation unit of a die's D2D controller.

    Parameters
    ----------
    num_entries : int
        Table entries (paper: 512).
    num_dies, page_bits : int
        Widths of the address fields (:class:`~.params.ATULayout`; defaults: the paper's).

    Members
    -------
    cmd : In(stream.Signature(command_layout(layout)))
        Insert, lookup, invalidate one, invalidate all; one per cycle.
    resp : Out(stream.Signature(response_layout(layout)))
        One response per lookup, ``LOOKUP_LATENCY`` cycles after it is accepted.
    """

    def __init__(self, num_entries: int = PAPER.entries, *, num_dies: int = PAPER.num_dies,
                 page_bits: int = PAPER.page_bits):
        self.layout = ATULayout(entries=check_int("num_entries", num_entries, 1),
                                num_dies=num_dies, page_bits=page_bits)
        self._num_entries = self.layout.entries
        self._table = MemoryData(shape=unsigned(self.layout.entry_bits - 1),
                                 depth=self._num_entries, init=[])
        super().__init__({"cmd": In(stream.Signature(command_layout(self.layout))),
                          "resp": Out(stream.Signature(response_layout(self.layout)))})

    @property
    def num_entries(self) -> int:
        return self._num_entries

    def elaborate(self, platform):
        m = Module()
        m.submodules.table = table = Memory(self._table)
        write = table.write_port()
        read = table.read_port(domain="sync", transparent_for=(write,))
        valid = Signal(self._num_entries)

        cmd = self.cmd.payload
        index = cmd.index
        local_bits = self.layout.local_addr_bits
        # The pipeline advances when the response register is empty or being drained.
        advance = ~self.resp.valid | self.resp.ready
        m.d.comb += self.cmd.ready.eq(advance)
        accept = self.cmd.valid & advance

        m.d.comb += [write.addr.eq(index), write.data.eq(Cat(cmd.local, cmd.remote)),
                     write.en.eq(accept & (cmd.op == ATUOp.INSERT)),
                     read.addr.eq(index), read.en.eq(advance)]

        # The valid bits are written whole, through a one-hot mask: a dynamic one-bit select
        # on the left of an assignment splits the vector into one multiplexer per bit, which
        # the compiled simulator then evaluates every cycle (and g++ takes minutes to build).
        entry = Signal(self._num_entries)
        m.d.comb += entry.eq(Const(1, self._num_entries) << index)
        with m.If(accept), m.Switch(cmd.op):
            with m.Case(ATUOp.INSERT):
                m.d.sync += valid.eq(valid | entry)
            with m.Case(ATUOp.INVALIDATE):
                m.d.sync += valid.eq(valid & ~entry)
            with m.Case(ATUOp.INVALIDATE_ALL):
                m.d.sync += valid.eq(0)

        # Stage 1: what the lookup needs besides the SRAM word, captured at acceptance.
        stage_valid = Signal()
        stage_remote = Signal(self.layout.remote_addr_bits)
        with m.If(advance):
            m.d.sync += [self.resp.valid.eq(accept & (cmd.op == ATUOp.LOOKUP)),
                         stage_valid.eq(valid.bit_select(index, 1)),
                         stage_remote.eq(cmd.remote)]
        stored_remote = read.data[local_bits:]
        stored_local = read.data[:local_bits]
        hit = stage_valid & (stored_remote == stage_remote)
        m.d.comb += [self.resp.payload.hit.eq(hit),
                     self.resp.payload.local.eq(stored_local & hit.replicate(local_bits))]
        return m
