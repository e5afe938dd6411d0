"""Amaranth RTL of the Local CP (per-die command processor); behaviour defined by :mod:`.twin`.

The Local CP owns the die's PDU (a :class:`~hwmodel.components.pdu.rtl.PDU` submodule, the same
RTL proven against its twin) and runs one command at a time from ``cmd``:

* ``CONFIG`` writes one 16-bit PDU register (the Global CP's prediction for this die);
* ``TASK`` (expert, tokens, source die): a remote task queries the PDU; if ``cp_en`` and not
  ``is_local``, it sets ``is_local`` and reports the expert on ``dup``; then the task goes to SM
  slot ``i % num_sm_slots`` (round-robin, waiting while that slot is busy: back-pressure);
* ``END`` closes the layer: once every dispatched task has completed (``sm_done`` pulses), the
  statistics go out on ``stats`` and the counters restart.
"""

# No `from __future__ import annotations`: data.Struct reads its annotations as shapes.

from amaranth.hdl import Module, Signal
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

from ...rtlsim import StreamSink, StreamSource, check_engine, run_streams
from ...tb import run_scenario, stream_get, stream_put, wait_cycles
from ...tb.checks import check_int
from ..pdu.rtl import PDU, PDUOp
from ..pdu.twin import WORD_BITS, pack_words
from .params import COUNT_BITS, PAPER, TOKEN_BITS, LocalCPLayout
from .twin import LocalCPStats, LocalCPTwin, SMTask, TaskDescriptor

__all__ = [
    "LocalCP",
    "LocalCPCommand",
    "LocalCPKind",
    "SMTaskMessage",
    "StatsMessage",
    "command_layout",
    "run_local_cp_twin",
    "simulate_local_cp",
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
    return data.StructLayout({"expert": layout.expert_bits, "tokens": TOKEN_BITS, "remote": 1,
                              "copy": 1})


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
    die : int
        This die's id.
    num_sm_slots : int
        SM slots (one task stream each).
    num_experts : int
        Experts per layer (PDU size).
    num_dies : int
        Dies on the wafer (width of the source-die field, :class:`~.params.LocalCPLayout`).

    Members
    -------
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

    def __init__(self, die: int = 0, num_sm_slots: int = 4, num_experts: int = 512, *,
                 num_dies: int = PAPER.num_dies):
        self.layout = LocalCPLayout(
            num_dies=num_dies, experts=check_int("num_experts", num_experts, 1),
            sm_slots=check_int("num_sm_slots", num_sm_slots, 1, 65))
        self._die = check_int("die", die, 0, self.layout.num_dies)
        self._num_sm_slots = self.layout.sm_slots
        self._num_experts = self.layout.experts
        super().__init__({
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
        remote = task.source_die != self._die

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
                            with m.If(self.cmd.payload.source_die != self._die):
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


def _layers(layers, num_experts, num_dies):
    """Normalise ``layers``: a list of ``(tasks, cp_en, is_local)``."""
    out = []
    for i, layer in enumerate(layers):
        if not isinstance(layer, tuple) or len(layer) != 3:
            raise ValueError(f"layers[{i}] must be a (tasks, cp_en, is_local) tuple, "
                             f"not {layer!r}")
        tasks, cp_en, is_local = layer
        tasks = [t if isinstance(t, TaskDescriptor) else TaskDescriptor(*t) for t in tasks]
        for j, t in enumerate(tasks):
            check_int(f"layers[{i}] task {j} expert", t.expert, 0, num_experts)
            check_int(f"layers[{i}] task {j} source_die", t.source_die, 0, num_dies)
        out.append((tasks, pack_words(cp_en, is_local, num_experts)))
    return out


def run_local_cp_twin(layers, *, die=0, num_sm_slots=4, num_experts=512,
                      num_dies=PAPER.num_dies):
    """Run ``layers`` on a :class:`LocalCPTwin`.

    Returns
    -------
    stats : list of LocalCPStats
        One per layer.
    sm_tasks : list of list of SMTask
        Per slot, every task it received, in order.
    """
    twin = LocalCPTwin(die, num_sm_slots, num_experts, num_dies=num_dies)
    stats, sm_tasks = [], [[] for _ in range(num_sm_slots)]
    for tasks, words in _layers(layers, num_experts, num_dies):
        twin.configure_pdu()
        for index, word in enumerate(words):
            twin.pdu.write_word(index, word)
        for task in tasks:
            sm_task = twin.dispatch(task)
            sm_tasks[sm_task.slot].append(sm_task)
            twin.complete(sm_task.slot)
        stats.append(twin.finish())
    return stats, sm_tasks


def simulate_local_cp(layers, *, die=0, num_sm_slots=4, num_experts=512, sm_latency=3,
                      num_dies=PAPER.num_dies, vcd=None, max_cycles=None, engine="pysim"):
    """Run ``layers`` (see :func:`run_local_cp_twin`) through the RTL.

    Each SM slot is modelled by a testbench that accepts a task, is busy ``sm_latency + slot``
    cycles (so slots finish out of order) and pulses its ``sm_done`` bit.
    ``engine``: ``"pysim"`` (Amaranth's simulator) or ``"cxxrtl"`` (:mod:`hwmodel.rtlsim`,
    the same SM model in C++).

    Returns
    -------
    stats, sm_tasks
        As :func:`run_local_cp_twin`.
    cycles : int
    """
    check_engine(engine)    # before the design exists: an unused design warns
    prepared = _layers(layers, num_experts, num_dies)
    dut = LocalCP(die, num_sm_slots, num_experts, num_dies=num_dies)
    total = sum(len(words) + len(tasks) + 1 for tasks, words in prepared)
    limit = max_cycles or 200 + total * (12 + sm_latency + num_sm_slots)
    if engine == "cxxrtl":
        stats, sm_tasks, dups, cycles = _compiled_local_cp(dut, prepared, sm_latency, limit, vcd)
        return _split_dups(die, stats, dups), sm_tasks, cycles
    stats, sm_tasks = [], [[] for _ in range(num_sm_slots)]
    dups: list[list[int]] = []

    async def producer(ctx):
        for tasks, words in prepared:
            for index, word in enumerate(words):
                await stream_put(ctx, dut.cmd, {"kind": LocalCPKind.CONFIG, "index": index,
                                                "word": word})
            for t in tasks:
                await stream_put(ctx, dut.cmd, {"kind": LocalCPKind.TASK, "index": t.expert,
                                                "tokens": t.tokens, "source_die": t.source_die})
            await stream_put(ctx, dut.cmd, {"kind": LocalCPKind.END})

    async def stats_consumer(ctx):
        for _ in prepared:
            message = await stream_get(ctx, dut.stats)
            stats.append((int(message.tasks), int(message.tokens), int(message.remote_tasks),
                          int(message.duplications)))

    async def dup_consumer(ctx):
        while True:
            dups.append(int(await stream_get(ctx, dut.dup)))

    def sm_model(i):
        async def run(ctx):
            while True:
                message = await stream_get(ctx, dut.sm[i])
                sm_tasks[i].append(SMTask(i, int(message.expert), int(message.tokens),
                                          bool(message.remote), bool(message.copy)))
                await wait_cycles(ctx, sm_latency + i)
                ctx.set(dut.sm_done[i], 1)
                await ctx.tick()
                ctx.set(dut.sm_done[i], 0)
        return run

    cycles = run_scenario(dut, producer, stats_consumer, max_cycles=limit, vcd=vcd,
                          background=[dup_consumer] + [sm_model(i) for i in range(num_sm_slots)])
    return _split_dups(die, stats, dups), sm_tasks, cycles


def _split_dups(die, stats, dups):
    """Split the duplicated experts by layer, using each layer's duplication count."""
    result, start = [], 0
    for tasks_, tokens, remote, n_dups in stats:
        result.append(LocalCPStats(die, tasks_, tokens, remote, n_dups,
                                   tuple(dups[start:start + n_dups])))
        start += n_dups
    return result


def _compiled_local_cp(dut, prepared, sm_latency, limit, vcd):
    """:func:`simulate_local_cp`'s run on the compiled design: the same producer, consumers
    and SM models (slot ``i`` busy ``sm_latency + i`` cycles, then one ``sm_done`` pulse)."""
    commands = []
    for tasks, words in prepared:
        commands += [{"kind": LocalCPKind.CONFIG, "index": index, "word": word}
                     for index, word in enumerate(words)]
        commands += [{"kind": LocalCPKind.TASK, "index": t.expert, "tokens": t.tokens,
                      "source_die": t.source_die} for t in tasks]
        commands.append({"kind": LocalCPKind.END})
    slots = range(len(dut.sm))
    sinks = [StreamSink("stats", len(prepared)), StreamSink("dup", None)]
    # stream_get, then wait_cycles(sm_latency + i), then one cycle with sm_done high
    sinks += [StreamSink(f"sm__{i}", None, gap=sm_latency + i + 1, pulse=("sm_done", i))
              for i in slots]
    run = run_streams(dut, [StreamSource("cmd", commands)], sinks, max_cycles=limit, vcd=vcd)
    stats = [(int(m.tasks), int(m.tokens), int(m.remote_tasks), int(m.duplications))
             for m in run.received["stats"]]
    sm_tasks = [[SMTask(i, int(m.expert), int(m.tokens), bool(m.remote), bool(m.copy))
                 for m in run.received[f"sm__{i}"]] for i in slots]
    return stats, sm_tasks, [int(d) for d in run.received["dup"]], run.cycles
