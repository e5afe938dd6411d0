"""Amaranth RTL of the Local CP (per-die command processor); behaviour defined by :mod:`.twin`.

The Local CP owns the die's PDU (a :class:`~hwmodel.components.pdu.rtl.PDU` submodule, the same
RTL proven against its twin) and runs one command at a time from ``cmd``:

* ``CONFIG`` writes one 16-bit PDU register (the Global CP's prediction for this die);
* ``TASK`` (expert, tokens, source die): a remote task queries the PDU; if ``cp_en`` and not
  ``is_local``, it sets ``is_local`` and reports the expert on ``dup``; then the task goes to SM
  slot ``i % num_sm_slots`` (round-robin, waiting while that slot is busy: back-pressure);
* ``END`` closes the layer: once every dispatched task has completed (``sm_done`` pulses), the
  statistics go out on ``stats`` and the counters restart.

The die's own id is an input port (``die``, a strap tied to a constant on each die), so every
die of a wafer runs the same design: a task is remote when its source die differs from it.
"""

# No `from __future__ import annotations`: data.Struct reads its annotations as shapes.

from amaranth.hdl import Module, Signal
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

from ...checks import check_int
from ..pdu.rtl import PDU, PDUOp
from ..pdu.twin import WORD_BITS
from .params import COUNT_BITS, PAPER, TOKEN_BITS, LocalCPLayout

__all__ = [
    "LocalCP",
    "LocalCPCommand",
    "LocalCPKind",
    "SMTaskMessage",
    "StatsMessage",
    "command_layout",
    "sm_task_layout",
]

class LocalCPKind(enum.Enum, shape=2):
    CONFIG = 0
    TASK = 1
    END = 2


def command_layout(layout: LocalCPLayout) -> data.StructLayout:
    """A command: ``index`` is a PDU register (``CONFIG``) or an expert (``TASK``)."""
    return data.StructLayout({"kind": LocalCPKind, "index": layout.expert_bits,
                              "tokens": TOKEN_BITS, "source_die": layout.die_bits,
                              "word": WORD_BITS})


def sm_task_layout(layout: LocalCPLayout) -> data.StructLayout:
    """A task handed to an SM slot."""
    return data.StructLayout(layout.sm_task_fields())


#: Command and SM task of the default Local CP (:data:`.params.PAPER`).
LocalCPCommand = command_layout(PAPER)
SMTaskMessage = sm_task_layout(PAPER)


class StatsMessage(data.Struct):
    tasks: COUNT_BITS
    tokens: 32
    remote_tasks: COUNT_BITS
    duplications: COUNT_BITS


class LocalCP(wiring.Component):
    """Local command processor of one die.

    Parameters
    ----------
    num_sm_slots : int
        SM slots (one task stream each).
    num_experts : int
        Experts per layer (PDU size).
    num_dies : int
        Dies on the wafer (width of the source-die field, :class:`~.params.LocalCPLayout`).

    Members
    -------
    die : In(layout.die_bits)
        This die's id (held constant: a strap of the die).
    cmd : In(stream.Signature(command_layout(layout)))
    sm : Out(stream.Signature(sm_task_layout(layout))).array(num_sm_slots)
        One task stream per SM slot; a slot holds ``ready`` low while busy.
    sm_done : In(num_sm_slots)
        One-cycle pulse per completed task, one bit per slot.
    dup : Out(stream.Signature(layout.expert_bits))
        Expert ids copied into this die, in copy order.
    stats : Out(stream.Signature(StatsMessage))
        One message per layer, after ``END`` and the last completion.
    """

    def __init__(self, num_sm_slots: int = PAPER.sm_slots, num_experts: int = PAPER.experts, *,
                 num_dies: int = PAPER.num_dies):
        self.layout = LocalCPLayout(
            num_dies=num_dies, experts=check_int("num_experts", num_experts, 1),
            sm_slots=check_int("num_sm_slots", num_sm_slots, 1, 65))
        self._num_sm_slots = self.layout.sm_slots
        self._num_experts = self.layout.experts
        super().__init__({
            "die": In(self.layout.die_bits),
            "cmd": In(stream.Signature(command_layout(self.layout))),
            "sm": Out(stream.Signature(sm_task_layout(self.layout))).array(self._num_sm_slots),
            "sm_done": In(self._num_sm_slots),
            "dup": Out(stream.Signature(self.layout.expert_bits)),
            "stats": Out(stream.Signature(StatsMessage)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.pdu = pdu = PDU(self._num_experts)
        n = self._num_sm_slots
        task = Signal(command_layout(self.layout))
        copy = Signal()
        slot = Signal(range(n))
        dispatched = Signal(COUNT_BITS)
        completed = Signal(COUNT_BITS)
        tokens = Signal(32)
        remote_tasks = Signal(COUNT_BITS)
        duplications = Signal(COUNT_BITS)
        remote = task.source_die != self.die

        # Completions can arrive in any state; count them all (popcount of the pulses).
        completed_next = completed + sum(self.sm_done[i] for i in range(n))
        m.d.sync += completed.eq(completed_next)

        m.d.comb += [pdu.cmd.payload.index.eq(task.index), pdu.cmd.payload.word.eq(task.word),
                     self.dup.payload.eq(task.index),
                     self.stats.payload.tasks.eq(completed),
                     self.stats.payload.tokens.eq(tokens),
                     self.stats.payload.remote_tasks.eq(remote_tasks),
                     self.stats.payload.duplications.eq(duplications)]
        for i in range(n):
            m.d.comb += [self.sm[i].payload.expert.eq(task.index),
                         self.sm[i].payload.tokens.eq(task.tokens),
                         self.sm[i].payload.remote.eq(remote),
                         self.sm[i].payload.copy.eq(copy)]
        slot_ready = Signal()
        for i in range(n):
            with m.If(slot == i):
                m.d.comb += slot_ready.eq(self.sm[i].ready)

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.cmd.ready.eq(1)
                with m.If(self.cmd.valid):
                    m.d.sync += [task.eq(self.cmd.payload), copy.eq(0)]
                    with m.Switch(self.cmd.payload.kind):
                        with m.Case(LocalCPKind.CONFIG):
                            m.next = "CONFIG"
                        with m.Case(LocalCPKind.TASK):
                            with m.If(self.cmd.payload.source_die != self.die):
                                m.next = "QUERY"
                            with m.Else():
                                m.next = "DISPATCH"
                        with m.Default():
                            m.next = "DRAIN"
            with m.State("CONFIG"):
                m.d.comb += [pdu.cmd.valid.eq(1), pdu.cmd.payload.op.eq(PDUOp.WRITE)]
                with m.If(pdu.cmd.ready):
                    m.next = "IDLE"
            with m.State("QUERY"):
                m.d.comb += [pdu.cmd.valid.eq(1), pdu.cmd.payload.op.eq(PDUOp.QUERY)]
                with m.If(pdu.cmd.ready):
                    m.next = "ANSWER"
            with m.State("ANSWER"):
                m.d.comb += pdu.resp.ready.eq(1)
                with m.If(pdu.resp.valid):
                    with m.If(pdu.resp.payload.cp_en & ~pdu.resp.payload.is_local):
                        m.d.sync += copy.eq(1)
                        m.next = "SET_LOCAL"
                    with m.Else():
                        m.next = "DISPATCH"
            with m.State("SET_LOCAL"):
                m.d.comb += [pdu.cmd.valid.eq(1), pdu.cmd.payload.op.eq(PDUOp.SET_LOCAL)]
                with m.If(pdu.cmd.ready):
                    m.next = "REPORT_DUP"
            with m.State("REPORT_DUP"):
                m.d.comb += self.dup.valid.eq(1)
                with m.If(self.dup.ready):
                    m.d.sync += duplications.eq(duplications + 1)
                    m.next = "DISPATCH"
            with m.State("DISPATCH"):
                for i in range(n):
                    m.d.comb += self.sm[i].valid.eq(slot == i)
                with m.If(slot_ready):
                    m.d.sync += [dispatched.eq(dispatched + 1),
                                 tokens.eq(tokens + task.tokens),
                                 remote_tasks.eq(remote_tasks + remote),
                                 slot.eq(0 if n == 1 else (slot + 1) % n)]
                    m.next = "IDLE"
            with m.State("DRAIN"), m.If(completed == dispatched):
                m.next = "STATS"
            with m.State("STATS"):
                m.d.comb += self.stats.valid.eq(1)
                with m.If(self.stats.ready):
                    m.d.sync += [dispatched.eq(0), completed.eq(0), tokens.eq(0),
                                 remote_tasks.eq(0), duplications.eq(0), slot.eq(0)]
                    m.next = "IDLE"
        return m
