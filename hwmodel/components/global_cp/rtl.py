"""Amaranth RTL of the Global CP's EDT and top-n predictor; behaviour defined by :mod:`.twin`.

* :class:`EDT`: the Expert Distribution Table of the current layer, ``num_experts`` entries of
  72 bits (home die: 6 bits, presence bitmap: 64 bits, 2 reserved; 512 entries = 4.5 KB, the
  paper's Table II) in a ``lib.memory.Memory``. Commands: ``WRITE`` an entry (layer switch),
  ``READ`` one (answers 1 cycle later), ``SET_PRESENT`` (read-modify-write, 2 cycles: a Local CP
  reported a copy).
* :class:`TopNPredictor`: takes one heatmap row (``num_experts`` counts, one per cycle, in expert
  order) and answers with the ``cp_en`` bitmap of its top ``n`` successors, ties broken exactly
  like :meth:`GlobalCPTwin.top_n` (count descending, then expert id ascending): expert ``j`` is
  chosen iff ``rank(j) = #{k: c_k > c_j or (c_k == c_j and k < j)} < n``. The ranks are built
  while the row streams in: when ``c_k`` arrives, every earlier ``j`` with ``c_k > c_j`` gains one
  and ``k`` gains ``#{j < k: c_j >= c_k}``, so the bitmap is ready one cycle after the last count
  (``num_experts + 1`` cycles per row, ``num_experts`` comparators).

The allocation engine of Algorithm 1 is not written in RTL yet (see docs/rtl.md).
"""

# No `from __future__ import annotations`: data.Struct reads its annotations as shapes.

import math

from amaranth.hdl import Cat, Module, Signal, unsigned
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.memory import Memory, MemoryData
from amaranth.lib.wiring import In, Out

from ...tb import run_scenario, stream_get, stream_put
from ...tb.checks import check_int

__all__ = [
    "EDT",
    "EDT_ENTRY_BITS",
    "EDTCommand",
    "EDTEntry",
    "EDTOp",
    "TopNPredictor",
    "simulate_edt",
    "simulate_top_n",
]

HOME_BITS = 6
PRESENCE_BITS = 64
EDT_ENTRY_BITS = 72  # home + presence + 2 reserved bits


class EDTOp(enum.Enum, shape=2):
    WRITE = 0
    READ = 1
    SET_PRESENT = 2


class EDTCommand(data.Struct):
    op: EDTOp
    expert: 12
    home: HOME_BITS
    presence: PRESENCE_BITS
    die: HOME_BITS


class EDTEntry(data.Struct):
    home: HOME_BITS
    presence: PRESENCE_BITS
    reserved: EDT_ENTRY_BITS - HOME_BITS - PRESENCE_BITS


class EDT(wiring.Component):
    """Expert Distribution Table of the Global CP (one layer, 72-bit entries).

    Parameters
    ----------
    num_experts : int

    Members
    -------
    cmd : In(stream.Signature(EDTCommand))
    resp : Out(stream.Signature(EDTEntry))
        One entry per ``READ``.
    """

    def __init__(self, num_experts: int = 512):
        self._num_experts = check_int("num_experts", num_experts, 1, 4097)
        self._table = MemoryData(shape=EDTEntry, depth=self._num_experts, init=[])
        super().__init__({"cmd": In(stream.Signature(EDTCommand)),
                          "resp": Out(stream.Signature(EDTEntry))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.table = table = Memory(self._table)
        write = table.write_port()
        read = table.read_port(domain="sync", transparent_for=(write,))
        bits = max(1, (self._num_experts - 1).bit_length())
        cmd = self.cmd.payload
        pending = Signal(EDTCommand)   # a SET_PRESENT waiting for its read data
        modify = Signal()

        advance = (~self.resp.valid | self.resp.ready) & ~modify
        accept = self.cmd.valid & advance
        m.d.comb += [self.cmd.ready.eq(advance), read.addr.eq(cmd.expert[:bits]),
                     read.en.eq(advance), self.resp.payload.eq(read.data)]
        with m.If(modify):
            # Second cycle of SET_PRESENT: the read data is the old entry.
            m.d.comb += [write.addr.eq(pending.expert[:bits]), write.en.eq(1),
                         write.data.home.eq(read.data.home),
                         write.data.presence.eq(read.data.presence
                                                | (1 << pending.die[:HOME_BITS]))]
            m.d.sync += modify.eq(0)
        with m.Else():
            m.d.comb += [write.addr.eq(cmd.expert[:bits]),
                         write.en.eq(accept & (cmd.op == EDTOp.WRITE)),
                         write.data.home.eq(cmd.home), write.data.presence.eq(cmd.presence)]
        with m.If(advance):
            m.d.sync += [self.resp.valid.eq(accept & (cmd.op == EDTOp.READ)),
                         modify.eq(accept & (cmd.op == EDTOp.SET_PRESENT)),
                         pending.eq(cmd)]
        return m


class TopNPredictor(wiring.Component):
    """Top-n successors of one heatmap row, as a ``cp_en`` bitmap.

    Parameters
    ----------
    num_experts : int
    top_n : int
        How many successors are kept (the twin's ``ceil(0.2 * E)``).
    count_bits : int
        Bits of one heatmap counter.

    Members
    -------
    row : In(stream.Signature(count_bits))
        ``num_experts`` counts in expert order.
    top : Out(stream.Signature(num_experts))
        Bit ``j`` set iff expert ``j`` is among the top ``n``.
    """

    def __init__(self, num_experts: int = 512, top_n: int | None = None, count_bits: int = 16):
        self._num_experts = check_int("num_experts", num_experts, 1, 4097)
        if top_n is None:
            top_n = math.ceil(0.2 * num_experts)
        self._top_n = check_int("top_n", top_n, 0, num_experts + 1)
        self._count_bits = check_int("count_bits", count_bits, 1, 33)
        super().__init__({"row": In(stream.Signature(unsigned(count_bits))),
                          "top": Out(stream.Signature(num_experts))})

    @property
    def cycles_per_row(self) -> int:
        return self._num_experts + 1

    def elaborate(self, platform):
        m = Module()
        e = self._num_experts
        counts = [Signal(self._count_bits, name=f"count_{j}") for j in range(e)]
        ranks = [Signal(range(e + 1), name=f"rank_{j}") for j in range(e)]
        k = Signal(range(e + 1))
        c_k = self.row.payload
        m.d.comb += self.row.ready.eq(k < e)
        with m.If(self.row.valid & (k < e)):
            m.d.sync += k.eq(k + 1)
            # k's own rank: the earlier experts with a count >= c_k (ties go to the lower id).
            beaten_by = _popcount(m, [(j < k) & (counts[j] >= c_k) for j in range(e)])
            for j in range(e):
                with m.If(k == j):
                    m.d.sync += [counts[j].eq(c_k), ranks[j].eq(beaten_by)]
                with m.Elif((j < k) & (c_k > counts[j])):
                    m.d.sync += ranks[j].eq(ranks[j] + 1)
        m.d.comb += [self.top.valid.eq(k == e),
                     self.top.payload.eq(Cat(*[r < self._top_n for r in ranks]))]
        with m.If(self.top.valid & self.top.ready):
            m.d.sync += k.eq(0)
        return m


def _popcount(m, bits):
    """Balanced adder tree through named comb signals (a flat sum makes pysim very slow)."""
    level = list(bits)
    depth = 0
    while len(level) > 1:
        nxt = []
        for i in range(0, len(level) - 1, 2):
            total = Signal(range(2 ** (depth + 2)), name=f"popcount_{depth}_{i // 2}")
            m.d.comb += total.eq(level[i] + level[i + 1])
            nxt.append(total)
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
        depth += 1
    return level[0]


def simulate_top_n(rows, num_experts, top_n=None, count_bits=16, *, vcd=None):
    """Push heatmap ``rows`` through :class:`TopNPredictor`.

    Returns
    -------
    chosen : list of tuple of int
        Per row, the chosen expert ids in ascending order.
    cycles : int
    """
    dut = TopNPredictor(num_experts, top_n, count_bits)
    rows = [[check_int(f"rows[{i}][{j}]", c, 0, 1 << count_bits) for j, c in enumerate(row)]
            for i, row in enumerate(rows)]
    for i, row in enumerate(rows):
        if len(row) != num_experts:
            raise ValueError(f"rows[{i}] has {len(row)} counts, expected {num_experts}")
    chosen = []

    async def producer(ctx):
        for row in rows:
            for count in row:
                await stream_put(ctx, dut.row, count)

    async def consumer(ctx):
        for _ in rows:
            bitmap = int(await stream_get(ctx, dut.top))
            chosen.append(tuple(j for j in range(num_experts) if bitmap >> j & 1))

    cycles = run_scenario(dut, producer, consumer, vcd=vcd,
                          max_cycles=100 + len(rows) * (num_experts + 4))
    return chosen, cycles


def simulate_edt(transactions, num_experts=512, *, vcd=None):
    """Run EDT ``transactions`` through the RTL: ``("write", expert, home, presence)``,
    ``("read", expert)`` or ``("set_present", expert, die)``; returns the reads'
    ``(home, presence)`` and the cycles."""
    dut = EDT(num_experts)
    commands = []
    for t in transactions:
        op, expert, *rest = t
        expert = check_int("expert", expert, 0, num_experts)
        if op == "write":
            commands.append({"op": EDTOp.WRITE, "expert": expert,
                             "home": check_int("home", rest[0], 0, 1 << HOME_BITS),
                             "presence": check_int("presence", rest[1], 0, 1 << 64)})
        elif op == "read":
            commands.append({"op": EDTOp.READ, "expert": expert})
        elif op == "set_present":
            commands.append({"op": EDTOp.SET_PRESENT, "expert": expert,
                             "die": check_int("die", rest[0], 0, PRESENCE_BITS)})
        else:
            raise ValueError(f"EDT transaction must start with 'write', 'read' or "
                             f"'set_present', not {t!r}")
    reads = sum(c["op"] == EDTOp.READ for c in commands)
    results = []

    async def producer(ctx):
        for command in commands:
            await stream_put(ctx, dut.cmd, command)

    async def consumer(ctx):
        for _ in range(reads):
            entry = await stream_get(ctx, dut.resp)
            results.append((int(entry.home), int(entry.presence)))

    cycles = run_scenario(dut, producer, consumer, vcd=vcd, max_cycles=100 + 3 * len(commands))
    return results, cycles
