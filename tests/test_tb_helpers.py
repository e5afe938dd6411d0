# amaranth: UnusedElaboratable=no
"""hwmodel.tb: run_scenario counts cycles, the watchdog fires, yosys_stat counts flip-flops."""

import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

from hwmodel.tb import run_scenario, wait_cycles, yosys_stat


class Counter(wiring.Component):
    def __init__(self, width):
        super().__init__({"value": Out(width)})

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.value.eq(self.value + 1)
        return m


def test_run_scenario_returns_the_cycles_of_the_longest_testbench(tmp_path):
    dut = Counter(8)
    seen = []

    async def short(ctx):
        await wait_cycles(ctx, 5)

    async def long(ctx):
        await wait_cycles(ctx, 17)
        seen.append(ctx.get(dut.value))

    vcd = tmp_path / "run.vcd"
    assert run_scenario(dut, short, long, vcd=vcd) == 17
    assert seen == [17] and vcd.stat().st_size > 0


def test_watchdog_turns_a_hang_into_timeout_error():
    dut = Counter(4)

    async def hang(ctx):
        while True:
            await ctx.tick()

    with pytest.raises(TimeoutError, match="within 50 cycles"):
        run_scenario(dut, hang, max_cycles=50)


def test_yosys_stat_counts_the_flip_flops_of_a_counter():
    stat = yosys_stat(Counter(6))
    assert stat["flip_flops"] == 6 and stat["cells"] >= 6 and stat["memory_bits"] == 0
