"""Simulation harness of the Local CP: its layers through the Python twin
(:func:`run_local_cp_twin`) and through the RTL of :mod:`.rtl` with SM models
(:func:`simulate_local_cp`). Kept apart from the design so that the system model, which
imports the twin, loads no simulator."""

from ...checks import check_int
from ...rtlsim import StreamSink, StreamSource, check_engine, run_streams
from ...tb import run_scenario, stream_get, stream_put, wait_cycles
from ..pdu.twin import pack_words
from .params import PAPER
from .rtl import LocalCP, LocalCPKind
from .twin import LocalCPStats, LocalCPTwin, SMTask, TaskDescriptor

__all__ = ["run_local_cp_twin", "simulate_local_cp"]

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


def run_local_cp_twin(layers, *, die=0, num_sm_slots=PAPER.sm_slots, num_experts=PAPER.experts,
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


def simulate_local_cp(layers, *, die=0, num_sm_slots=PAPER.sm_slots, num_experts=PAPER.experts,
                      sm_latency=3,
                      num_dies=PAPER.num_dies, vcd=None, max_cycles=None, engine="pysim"):
    """Run ``layers`` (see :func:`run_local_cp_twin`) through the RTL.

    Each SM slot is modelled by a testbench that accepts a task, is busy ``sm_latency + slot``
    cycles (so slots finish out of order) and pulses its ``sm_done`` bit. ``die`` is held on
    the design's ``die`` port: one design serves every die.
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
    die = check_int("die", die, 0, num_dies)
    dut = LocalCP(num_sm_slots, num_experts, num_dies=num_dies)
    total = sum(len(words) + len(tasks) + 1 for tasks, words in prepared)
    limit = max_cycles or 200 + total * (12 + sm_latency + num_sm_slots)
    if engine == "cxxrtl":
        stats, sm_tasks, dups, cycles = _compiled_local_cp(dut, die, prepared, sm_latency, limit,
                                                           vcd)
        return _split_dups(die, stats, dups), sm_tasks, cycles
    stats, sm_tasks = [], [[] for _ in range(num_sm_slots)]
    dups: list[list[int]] = []

    async def producer(ctx):
        ctx.set(dut.die, die)       # the die's strap, before the first edge
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


def _compiled_local_cp(dut, die, prepared, sm_latency, limit, vcd):
    """:func:`simulate_local_cp`'s run on the compiled design: the same producer, consumers
    and SM models (slot ``i`` busy ``sm_latency + i`` cycles, then one ``sm_done`` pulse)."""
    commands = {name: [] for name in ("kind", "index", "tokens", "source_die", "word")}
    kind, index, tokens = commands["kind"], commands["index"], commands["tokens"]
    source_die, word = commands["source_die"], commands["word"]
    for tasks, words in prepared:       # bulk columns: the producer's commands in order
        kind += [LocalCPKind.CONFIG.value] * len(words) + [LocalCPKind.TASK.value] * len(tasks)
        index += range(len(words))
        index += [t.expert for t in tasks]
        tokens += [0] * len(words)
        tokens += [t.tokens for t in tasks]
        source_die += [0] * len(words)
        source_die += [t.source_die for t in tasks]
        word += words
        word += [0] * len(tasks)
        for column in (index, tokens, source_die, word):
            column.append(0)
        kind.append(LocalCPKind.END.value)
    slots = range(len(dut.sm))
    sinks = [StreamSink("stats", len(prepared)), StreamSink("dup", None)]
    # stream_get, then wait_cycles(sm_latency + i), then one cycle with sm_done high
    sinks += [StreamSink(f"sm__{i}", None, gap=sm_latency + i + 1, pulse=("sm_done", i))
              for i in slots]
    run = run_streams(dut, [StreamSource("cmd", commands)], sinks, inputs={"die": die},
                      max_cycles=limit, vcd=vcd)
    stats = [(int(m.tasks), int(m.tokens), int(m.remote_tasks), int(m.duplications))
             for m in run.received["stats"]]
    sm_tasks = [[SMTask(i, int(m.expert), int(m.tokens), bool(m.remote), bool(m.copy))
                 for m in run.received[f"sm__{i}"]] for i in slots]
    return stats, sm_tasks, [int(d) for d in run.received["dup"]], run.cycles
