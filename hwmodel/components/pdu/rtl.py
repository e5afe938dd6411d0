"""Amaranth RTL of the PDU prediction table; behaviour defined by :mod:`.twin`.

The table is ``num_words`` 16-bit registers (flip-flops, 128 B for 512 experts) in the twin's
interleaved layout. One command per cycle; a query answers on ``resp`` exactly
``QUERY_LATENCY`` = 1 cycle after it is accepted, reflecting every earlier command.
"""

# No `from __future__ import annotations`: data.Struct reads its annotations as shapes.

from amaranth.hdl import Module, Signal
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

from ...rtlsim import check_engine
from ...tb import run_command_stream, run_twin
from ...tb.checks import check_int, check_transaction
from .params import PAPER, WORD_BITS, PDULayout
from .twin import PDUTwin

__all__ = [
    "PDU",
    "QUERY_LATENCY",
    "PDUCommand",
    "PDUOp",
    "PDUResponse",
    "command_layout",
    "run_pdu_twin",
    "simulate_pdu",
]

QUERY_LATENCY = 1


class PDUOp(enum.Enum, shape=2):
    WRITE = 0       # index = register, word = its 16 bits
    QUERY = 1       # index = expert
    SET_LOCAL = 2   # index = expert
    CLEAR = 3


def command_layout(layout: PDULayout) -> data.StructLayout:
    """A command: ``index`` is a register (``WRITE``) or an expert (the others)."""
    return data.StructLayout({"op": PDUOp, "index": layout.index_bits, "word": WORD_BITS})


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

    def __init__(self, num_experts: int = 512):
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
        table = Signal(self.num_words * WORD_BITS)
        cmd = self.cmd.payload
        expert = cmd.index[:max(1, (self._num_experts - 1).bit_length())]
        word_index = cmd.index[:max(1, (self.num_words - 1).bit_length())]
        bits = table.bit_select(expert * 2, 2)

        advance = ~self.resp.valid | self.resp.ready
        accept = self.cmd.valid & advance
        m.d.comb += self.cmd.ready.eq(advance)
        with m.If(accept), m.Switch(cmd.op):
            with m.Case(PDUOp.WRITE):
                m.d.sync += table.word_select(word_index, WORD_BITS).eq(cmd.word)
            with m.Case(PDUOp.SET_LOCAL):
                m.d.sync += table.bit_select(expert * 2 + 1, 1).eq(1)
            with m.Case(PDUOp.CLEAR):
                m.d.sync += table.eq(0)
        with m.If(advance):
            m.d.sync += [self.resp.valid.eq(accept & (cmd.op == PDUOp.QUERY)),
                         self.resp.payload.cp_en.eq(bits[0]),
                         self.resp.payload.is_local.eq(bits[1])]
        return m


_ARITY = {"write_word": 2, "query": 1, "set_local": 1, "clear": 0}
_OPS = {"write_word": PDUOp.WRITE, "query": PDUOp.QUERY, "set_local": PDUOp.SET_LOCAL,
        "clear": PDUOp.CLEAR}


def _command(transaction, num_experts):
    op, args = check_transaction("PDU", transaction, _ARITY)
    num_words = PDULayout(experts=num_experts).num_words
    if op == "write_word":
        return {"op": PDUOp.WRITE, "index": check_int("index", args[0], 0, num_words),
                "word": check_int("word", args[1], 0, 1 << WORD_BITS)}
    index = check_int("expert", args[0], 0, num_experts) if args else 0
    return {"op": _OPS[op], "index": index, "word": 0}


def run_pdu_twin(transactions, num_experts: int = 512) -> list[tuple[bool, bool]]:
    """Apply ``transactions`` to a :class:`PDUTwin`; return the queries' ``(cp_en, is_local)``.

    A transaction is ``("write_word", index, word)``, ``("query", expert)``,
    ``("set_local", expert)`` or ``("clear",)``.
    """
    return run_twin(PDUTwin(num_experts), transactions, lambda t: _command(t, num_experts), "query")


def simulate_pdu(transactions, num_experts: int = 512, *, vcd=None, back_pressure: int = 0,
                 max_cycles: int | None = None, engine: str = "pysim"):
    """Run ``transactions`` (see :func:`run_pdu_twin`) through the RTL; ``(results, cycles)``.

    ``engine``: ``"pysim"`` (Amaranth's simulator) or ``"cxxrtl"`` (:mod:`hwmodel.rtlsim`).
    """
    check_engine(engine)    # before the design exists: an unused design warns
    commands = [_command(t, num_experts) for t in transactions]
    expected = sum(c["op"] == PDUOp.QUERY for c in commands)
    return run_command_stream(PDU(num_experts), commands, expected,
                              lambda r: (bool(r.cp_en), bool(r.is_local)),
                              back_pressure=back_pressure, max_cycles=max_cycles, vcd=vcd,
                              engine=engine)
