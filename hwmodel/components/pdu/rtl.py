"""Amaranth RTL of the PDU prediction table; behaviour defined by :mod:`.twin`.

The table is ``num_words`` 16-bit registers (flip-flops, 128 B for 512 experts) in the twin's
interleaved layout. One command per cycle; a query answers on ``resp`` exactly
``QUERY_LATENCY`` = 1 cycle after it is accepted, reflecting every earlier command.
"""

# No `from __future__ import annotations`: data.Struct reads its annotations as shapes.

from amaranth.hdl import Array, Const, Module, Signal
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

from ...checks import check_int
from .params import BITS_PER_EXPERT, EXPERTS_PER_WORD, OP_BITS, PAPER, WORD_BITS, PDULayout

__all__ = [
    "PDU",
    "QUERY_LATENCY",
    "PDUCommand",
    "PDUOp",
    "PDUResponse",
    "command_layout",
]

QUERY_LATENCY = 1


class PDUOp(enum.Enum, shape=OP_BITS):
    WRITE = 0       # index = register, word = its 16 bits
    QUERY = 1       # index = expert
    SET_LOCAL = 2   # index = expert
    CLEAR = 3


def command_layout(layout: PDULayout) -> data.StructLayout:
    """A command: ``index`` is a register (``WRITE``) or an expert (the others)."""
    return data.StructLayout({**layout.command_fields(), "op": PDUOp})


class PDUResponse(data.Struct):
    cp_en: 1
    is_local: 1


#: Command of the paper's PDU (:data:`.params.PAPER`).
PDUCommand = command_layout(PAPER)


class PDU(wiring.Component):
    """Prediction unit table of a die's D2D controller.

    Parameters
    ----------
    num_experts : int
        Experts per layer (paper: 512).

    Members
    -------
    cmd : In(stream.Signature(command_layout(layout)))
        Register write (bulk configuration), query, set ``is_local``, clear.
    resp : Out(stream.Signature(PDUResponse))
        One ``(cp_en, is_local)`` per query.
    """

    def __init__(self, num_experts: int = PAPER.experts):
        self.layout = PDULayout(experts=check_int("num_experts", num_experts, 1))
        self._num_experts = self.layout.experts
        super().__init__({"cmd": In(stream.Signature(command_layout(self.layout))),
                          "resp": Out(stream.Signature(PDUResponse))})

    @property
    def num_experts(self) -> int:
        return self._num_experts

    @property
    def num_words(self) -> int:
        return self.layout.num_words

    def elaborate(self, platform):
        m = Module()
        # One signal per 16-bit register, each written whole (the same flip-flops as one
        # 1,024-bit vector): a dynamic bit or word select into a single wide vector splits it
        # into one multiplexer per bit, which is what the compiled simulator then evaluates.
        words = Array(Signal(WORD_BITS, name=f"word{w}") for w in range(self.num_words))
        cmd = self.cmd.payload
        expert = cmd.index[:max(1, (self._num_experts - 1).bit_length())]
        word_index = cmd.index[:max(1, (self.num_words - 1).bit_length())]
        slot_bits = (EXPERTS_PER_WORD - 1).bit_length()
        home = expert >> slot_bits                      # the register holding the expert
        offset = expert[:slot_bits] * BITS_PER_EXPERT   # its cp_en bit there
        bits = words[home].bit_select(offset, BITS_PER_EXPERT)
        is_local_bit = Signal(WORD_BITS)
        m.d.comb += is_local_bit.eq(Const(1 << 1, WORD_BITS) << offset)

        advance = ~self.resp.valid | self.resp.ready
        accept = self.cmd.valid & advance
        m.d.comb += self.cmd.ready.eq(advance)
        with m.If(accept), m.Switch(cmd.op):
            with m.Case(PDUOp.WRITE):
                for w, word in enumerate(words):
                    with m.If(word_index == w):
                        m.d.sync += word.eq(cmd.word)
            with m.Case(PDUOp.SET_LOCAL):
                for w, word in enumerate(words):
                    with m.If(home == w):
                        m.d.sync += word.eq(word | is_local_bit)
            with m.Case(PDUOp.CLEAR):
                m.d.sync += [word.eq(0) for word in words]
        with m.If(advance):
            m.d.sync += [self.resp.valid.eq(accept & (cmd.op == PDUOp.QUERY)),
                         self.resp.payload.cp_en.eq(bits[0]),
                         self.resp.payload.is_local.eq(bits[1])]
        return m
