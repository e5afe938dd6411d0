"""Amaranth RTL of the Global CP's EDT and top-n predictor; behaviour defined by :mod:`.twin`.

* :class:`EDT`: the Expert Distribution Table of the current layer, ``num_experts`` entries of
  a home die id and a presence bitmap, one bit per die (:class:`~.params.EDTLayout`; for 64
  dies 6 + 64 bits stored in 72, 512 entries = 4.5 KB, the paper's Table II) in a
  ``lib.memory.Memory``. Commands: ``WRITE`` an entry (layer switch),
  ``READ`` one (answers 1 cycle later), ``SET_PRESENT`` (read-modify-write, 2 cycles: a Local CP
  reported a copy), ``CLEAR_PRESENT`` (read-modify-write, 2 cycles: a bounded replica region
  evicted a copy; the entry's home bit is never cleared).
* :class:`TopNPredictor`: the predictor. Heatmap rows stream in (one count per cycle, expert
  order); a sorted queue of ``n`` (count, id) slots keeps each row's top ``n`` with the twin's
  tie rule (count descending, then expert id ascending); the rows of one die are OR-ed into its
  ``cp_en`` bitmap (:meth:`GlobalCPTwin.predict`). ``num_experts + 1`` cycles per row.

The allocation engine of Algorithm 1 is :class:`.allocator_rtl.Allocator`.
"""

# No `from __future__ import annotations`: data.Struct reads its annotations as shapes.

import math

from amaranth.hdl import Const, Module, Mux, Signal
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.memory import Memory, MemoryData
from amaranth.lib.wiring import In, Out

from ...checks import check_int
from .params import HEATMAP_COUNT_BITS, PAPER, EDTLayout

__all__ = [
    "EDT",
    "EDTCommand",
    "EDTEntry",
    "EDTOp",
    "TopNPredictor",
    "command_layout",
    "entry_layout",
]

class EDTOp(enum.Enum, shape=2):
    WRITE = 0
    READ = 1
    SET_PRESENT = 2
    CLEAR_PRESENT = 3


def command_layout(layout: EDTLayout) -> data.StructLayout:
    """A command: ``home`` and ``presence`` for ``WRITE``, ``die`` for the two updates."""
    return data.StructLayout({"op": EDTOp, "expert": layout.expert_bits,
                              "home": layout.home_bits, "presence": layout.presence_bits,
                              "die": layout.home_bits})


def entry_layout(layout: EDTLayout) -> data.StructLayout:
    """A stored entry (also a ``READ`` response): home, presence, reserved up to a byte."""
    used = layout.home_bits + layout.presence_bits
    fields = {"home": layout.home_bits, "presence": layout.presence_bits}
    if layout.entry_bits > used:
        fields["reserved"] = layout.entry_bits - used
    return data.StructLayout(fields)


#: Command and entry of the paper's EDT (:data:`.params.PAPER`: 64 dies, 72-bit entries).
EDTCommand = command_layout(PAPER)
EDTEntry = entry_layout(PAPER)


class EDT(wiring.Component):
    """Expert Distribution Table of the Global CP (one layer; 72-bit entries for 64 dies).

    Parameters
    ----------
    num_experts : int
        Entries (experts of the current layer).
    num_dies : int
        Dies on the wafer (:class:`~.params.EDTLayout`: home field and presence bitmap).

    Members
    -------
    cmd : In(stream.Signature(command_layout(layout)))
    resp : Out(stream.Signature(entry_layout(layout)))
        One entry per ``READ``.

    Notes
    -----
    ``SET_PRESENT`` and ``CLEAR_PRESENT`` are read-modify-writes: the command's cycle reads the
    entry, the next one writes ``presence | bit`` or ``presence & ~bit`` (``bit = 1 << die``)
    and takes no command. ``CLEAR_PRESENT`` of the entry's home die leaves the home bit set
    (the command has no error response; :func:`simulate_edt` refuses such a command with the
    twin's ``ValueError`` before it reaches the table, as
    :meth:`GlobalCPTwin.edt_clear_present` does).
    """

    def __init__(self, num_experts: int = PAPER.entries, *, num_dies: int = PAPER.num_dies):
        self.layout = EDTLayout(entries=check_int("num_experts", num_experts, 1),
                                num_dies=num_dies)
        self._num_experts = self.layout.entries
        self._command = command_layout(self.layout)
        entry = entry_layout(self.layout)
        self._table = MemoryData(shape=entry, depth=self._num_experts, init=[])
        super().__init__({"cmd": In(stream.Signature(self._command)),
                          "resp": Out(stream.Signature(entry))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.table = table = Memory(self._table)
        write = table.write_port()
        read = table.read_port(domain="sync", transparent_for=(write,))
        bits = max(1, (self._num_experts - 1).bit_length())
        cmd = self.cmd.payload
        pending = Signal(self._command)   # a SET/CLEAR_PRESENT waiting for its read data
        modify = Signal()
        rmw = (cmd.op == EDTOp.SET_PRESENT) | (cmd.op == EDTOp.CLEAR_PRESENT)

        advance = (~self.resp.valid | self.resp.ready) & ~modify
        accept = self.cmd.valid & advance
        m.d.comb += [self.cmd.ready.eq(advance), read.addr.eq(cmd.expert[:bits]),
                     read.en.eq(advance), self.resp.payload.eq(read.data)]
        with m.If(modify):
            # Second cycle of SET/CLEAR_PRESENT: the read data is the old entry.
            presence_bits = self.layout.presence_bits
            bit = Signal(presence_bits)
            # the home die's bit stays set: its copy is the expert's home, not a replica
            keep = Mux(pending.die == read.data.home, 0, bit)
            m.d.comb += [bit.eq(Const(1, presence_bits) << pending.die),
                         write.addr.eq(pending.expert[:bits]), write.en.eq(1),
                         write.data.home.eq(read.data.home),
                         write.data.presence.eq(Mux(pending.op == EDTOp.SET_PRESENT,
                                                    read.data.presence | bit,
                                                    read.data.presence & ~keep))]
            m.d.sync += modify.eq(0)
        with m.Else():
            m.d.comb += [write.addr.eq(cmd.expert[:bits]),
                         write.en.eq(accept & (cmd.op == EDTOp.WRITE)),
                         write.data.home.eq(cmd.home), write.data.presence.eq(cmd.presence)]
        with m.If(advance):
            m.d.sync += [self.resp.valid.eq(accept & (cmd.op == EDTOp.READ)),
                         modify.eq(accept & rmw),
                         pending.eq(cmd)]
        return m


def insert_sorted(m, stays, slots, new) -> None:
    """Insert ``new`` into a sorted queue of register slots in one cycle (synchronous).

    ``slots[i]`` is a tuple of signals (valid bit first) and ``stays[i]`` says slot ``i`` keeps
    its entry (it ranks before ``new``). The first slot that does not stay takes ``new``; every
    later one takes its predecessor's entry; the last entry falls off the end. Both the top-n
    predictor and the allocator's candidate list are such queues.
    """
    for i, slot in enumerate(slots):
        with m.If(~stays[i]):
            take_new = [sig.eq(value) for sig, value in zip(slot, new)]
            if i == 0:
                m.d.sync += take_new
            else:
                with m.If(stays[i - 1]):
                    m.d.sync += take_new
                with m.Else():
                    m.d.sync += [sig.eq(prev) for sig, prev in zip(slot, slots[i - 1])]


class TopNPredictor(wiring.Component):
    """The predictor: ``cp_en`` bitmap of one die = union of the top-n successors of the
    heatmap rows of the experts it runs (:meth:`GlobalCPTwin.predict`).

    Rows stream in one count per cycle in expert order. A sorted queue of ``top_n`` slots
    (count, expert id) keeps the row's best so far: count ``c_k`` of expert ``k`` goes behind
    every slot with a count ``>= c_k`` (earlier ids win ties: the twin's rule, count descending
    then id ascending) and the last slot falls off. One cycle after a row's last count the
    queue's ids are OR-ed into the die's bitmap and the queue empties; after the row flagged
    ``last`` the bitmap goes out on ``top``. ``num_experts + 1`` cycles per row (+1 per die),
    ``top_n`` comparators, so it simulates at 512 experts (a per-expert rank needs ``E``
    comparators and an ``E``-input popcount per count).

    Parameters
    ----------
    num_experts : int
    top_n : int
        How many successors are kept per row (the twin's ``ceil(0.2 * E)``).
    count_bits : int
        Bits of one heatmap counter.

    Members
    -------
    row : In(stream.Signature(beat_layout))
        ``count`` (one heatmap counter) and ``last`` (set on the counts of the die's last row).
    top : Out(stream.Signature(num_experts))
        Bit ``j`` set iff expert ``j`` is in the top ``n`` of one of the die's rows.
    """

    def __init__(self, num_experts: int = PAPER.entries, top_n: int | None = None,
                 count_bits: int = HEATMAP_COUNT_BITS):
        self._num_experts = check_int("num_experts", num_experts, 1, 4097)
        if top_n is None:
            top_n = math.ceil(0.2 * num_experts)
        self._top_n = check_int("top_n", top_n, 0, num_experts + 1)
        self._count_bits = check_int("count_bits", count_bits, 1, 33)
        self.beat_layout = data.StructLayout({"count": self._count_bits, "last": 1})
        super().__init__({"row": In(stream.Signature(self.beat_layout)),
                          "top": Out(stream.Signature(num_experts))})

    @property
    def cycles_per_row(self) -> int:
        return self._num_experts + 1

    def elaborate(self, platform):
        m = Module()
        e, n = self._num_experts, self._top_n
        valid = [Signal(name=f"slot_valid_{i}") for i in range(n)]
        counts = [Signal(self._count_bits, name=f"slot_count_{i}") for i in range(n)]
        ids = [Signal(range(e), name=f"slot_id_{i}") for i in range(n)]
        k = Signal(range(e + 1))
        group_last = Signal()
        union = Signal(e)
        c_k = self.row.payload.count
        stays = [Signal(name=f"stays_{i}") for i in range(n)]
        for i in range(n):
            m.d.comb += stays[i].eq(valid[i] & (counts[i] >= c_k))
        with m.FSM(name="predictor"):
            with m.State("ROW"):
                m.d.comb += self.row.ready.eq(1)
                with m.If(self.row.valid):
                    m.d.sync += k.eq(k + 1)
                    insert_sorted(m, stays, list(zip(valid, counts, ids)), (1, c_k, k))
                    with m.If(k == e - 1):
                        m.d.sync += group_last.eq(self.row.payload.last)
                        m.next = "MERGE"
            with m.State("MERGE"):
                chosen = union
                for i in range(n):
                    chosen = chosen | Mux(valid[i], Const(1, e) << ids[i], 0)
                m.d.sync += [union.eq(chosen), k.eq(0)] + [v.eq(0) for v in valid]
                with m.If(group_last):
                    m.next = "OUT"
                with m.Else():
                    m.next = "ROW"
            with m.State("OUT"):
                m.d.comb += [self.top.valid.eq(1), self.top.payload.eq(union)]
                with m.If(self.top.ready):
                    m.d.sync += union.eq(0)
                    m.next = "ROW"
        return m
