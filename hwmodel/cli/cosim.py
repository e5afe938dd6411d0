"""``hwmodel replay --rtl UNITS --window SPEC``: a replay window run on the units' RTL.

The replay runs as usual; over the window the chosen units' Amaranth RTL is fed the window's
transactions and every answer is compared with the twin's (:mod:`hwmodel.system.cosim`). A
difference prints one line naming the iteration, layer, unit, die, transaction and both values,
and exits with 1; bad options exit with 2.
"""

from __future__ import annotations

import sys

__all__ = ["add_cosim_options", "run_cosim"]


def add_cosim_options(parser) -> None:
    """The co-simulation options of ``hwmodel replay``."""
    from ..system.rtl_units import ENGINES, UNITS
    parser.add_argument("--rtl", default=None, metavar="UNITS",
                        help=f"run these units as RTL over --window: 'all' (every unit the "
                             f"strategy uses) or a comma list of {', '.join(UNITS)}")
    parser.add_argument("--window", default=None, metavar="SPEC",
                        help="with --rtl: iterations, MoE layers and dies, e.g. "
                             "'it=2,layer=0:24' or 'it=1:3,die=0+5' (ranges are A:B, half open)")
    parser.add_argument("--rtl-engine", default="pysim", choices=ENGINES,
                        help="RTL simulator: Amaranth's (pysim) or compiled (cxxrtl)")
    parser.add_argument("--vcd", default=None, metavar="DIR",
                        help="with --rtl: write each RTL simulation's waveform (.vcd) and a "
                             "GTKWave save file (.gtkw) into DIR")


def _check(args, wafers, strategies):
    from ..system.cosim import parse_units, parse_window
    if args.window is None:
        raise ValueError("--rtl needs --window SPEC (e.g. 'it=2,layer=0:24')")
    units, window = parse_units(args.rtl), parse_window(args.window)
    if len(wafers) != 1 or len(strategies) != 1:
        raise ValueError(f"--rtl: expected one --wafer and one --strategy, not "
                         f"{len(wafers)} wafer(s) and {len(strategies)} strategies")
    if args.vcd is not None:
        from .outputs import check_output_dir
        check_output_dir(args.vcd, "--vcd", args.force)
    return units, window


def run_cosim(args, wafers, strategies, params, opened) -> int:
    """Replay one (wafer, strategy) with the window's units as RTL; print the result.

    ``wafers``: ``{name: built Wafer}`` and ``opened``: the trace's ``(store, model)``, as
    :func:`hwmodel.cli.replay.check_inputs` made them (neither is made again here).
    """
    from ..system import Replay
    from ..system.cosim import CoSim, CoSimMismatch
    from .runs import summary_table
    units, window = _check(args, wafers, strategies)
    store, model = opened
    replay = Replay(wafer=next(iter(wafers.values())), model=model, store=store,
                    params=params)
    bars = _Bars(enabled=not args.quiet)
    cosim = CoSim(units, window, engine=args.rtl_engine, vcd_dir=args.vcd,
                  progress=bars.rtl)
    try:
        result = replay.run(strategies[0], progress=bars.replay, cosim=cosim)
    except CoSimMismatch as mismatch:
        bars.close()
        print(f"hwmodel: error: {mismatch}", file=sys.stderr)
        return 1
    bars.close()
    print(summary_table([result], list(wafers)))
    print()
    print(result.row())
    print()
    print(cosim_table(cosim.summary, args.rtl_engine))
    return 0


def cosim_table(summary: dict[str, dict], engine: str) -> str:
    """The co-simulation's figures per unit: simulations, answers compared, cycles, time.

    The heading claims equality only for what was compared: a window whose units saw no
    transaction (a window on a dead die, say) says that nothing was compared."""
    idle = [unit for unit, row in summary.items() if not row["answers"]]
    if len(idle) == len(summary):
        heading = (f"RTL ({engine}): no answer was compared in the window (its units got no "
                   "transaction; a dead die, for one, gets none), so nothing is claimed:")
    else:
        heading = (f"RTL ({engine}) equals the twins on every answer in the window"
                   + (f" (none compared for {', '.join(idle)})" if idle else "") + ":")
    lines = [heading,
             (f"{'unit':<10} {'sims':>5} {'answers':>8} {'cycles':>9} {'seconds':>8} "
              f"{'cycles/s':>9}")]
    for unit, row in summary.items():
        rate = row["cycles"] / row["seconds"] if row["seconds"] else 0.0
        lines.append(f"{unit:<10} {row['simulations']:>5} {row['answers']:>8} "
                     f"{row['cycles']:>9} {row['seconds']:>8.2f} {rate:>9.0f}")
    return "\n".join(lines)


class _Bars:
    """tqdm bars on stderr: the replay's iterations, then the RTL simulations."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self._replay = self._rtl = None

    def replay(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self._replay is None:
            from tqdm import tqdm
            self._replay = tqdm(total=total, desc="replay", unit="it", file=sys.stderr)
        self._replay.n = done
        self._replay.refresh()

    def rtl(self, unit: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self._rtl is None:
            from tqdm import tqdm
            self._rtl = tqdm(total=total, desc="RTL", unit="sim", file=sys.stderr)
        self._rtl.set_description(f"RTL {unit}" if unit else "RTL")
        self._rtl.n = done
        self._rtl.refresh()
        if done == total:
            self._rtl.close()
            self._rtl = None

    def close(self) -> None:
        for bar in (self._replay, self._rtl):
            if bar is not None:
                bar.close()
        self._replay = self._rtl = None
