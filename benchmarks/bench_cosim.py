"""A replay with its units as RTL: time, cycles per second and peak memory (prints; not a test).

    python benchmarks/bench_cosim.py --engine cxxrtl                 # all 235 requests, every unit
    python benchmarks/bench_cosim.py --engine pysim --window it=2    # one decode iteration
    python benchmarks/bench_cosim.py --opt -O0 --window it=0:8       # unoptimised libraries

Runs the shared Llama-4 requests on tsmc-sow twice under one strategy: once with the twins, once
with ``--rtl all`` over the window (default: every iteration). Checks that both give the same CSV
row and prints, per unit, the simulations, the answers compared, the cycles, the seconds and the
cycles per second, then the whole run's wall time and peak RSS. The trace is looked up under
``$HWMODEL_SHARED`` (else ``../shared`` beside the checkout), as the tests do.
"""

import argparse
import os
import resource
import sys
import time
from pathlib import Path

from hwmodel.cli.cosim import cosim_table
from hwmodel.models import load_model
from hwmodel.params import load_wafer
from hwmodel.system import Replay
from hwmodel.system.cosim import CoSim, parse_units, parse_window
from hwmodel.topologies.wafer import build_wafer
from hwmodel.traces import open_batch

SHARED = Path(os.environ.get("HWMODEL_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
LLAMA = SHARED / "traces/profiling_result/meta-llama/Llama-4-Maverick-17B-128E-Instruct"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trace", default=str(LLAMA))
    parser.add_argument("--strategy", default="allo+pred")
    parser.add_argument("--rtl", default="all")
    parser.add_argument("--window", default="it=0:128")
    parser.add_argument("--engine", default="cxxrtl", choices=("pysim", "cxxrtl"))
    parser.add_argument("--opt", default="-O2",
                        help="g++ level of the compiled designs (cached per level)")
    args = parser.parse_args()
    replay = Replay(wafer=build_wafer(load_wafer("tsmc-sow")), model=load_model("llama4-maverick"),
                    store=open_batch(args.trace))
    t0 = time.perf_counter()
    twins = replay.run(args.strategy)
    t1 = time.perf_counter()
    cosim = CoSim(parse_units(args.rtl), parse_window(args.window), engine=args.engine,
                  opt=args.opt,
                  progress=lambda unit, done, total: print(f"\r{unit:<10} {done}/{total}",
                                                          end="", file=sys.stderr))
    rtl = replay.run(args.strategy, cosim=cosim)
    t2 = time.perf_counter()
    print(file=sys.stderr)
    print(cosim_table(cosim.summary, args.engine))
    same = rtl.row() == twins.row()
    print(f"{args.strategy}, window {args.window}: CSV row with RTL == twins: {same}")
    print(rtl.row())
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(f"replay with twins {t1 - t0:.1f} s; with RTL {t2 - t1:.1f} s wall; process "
          f"{usage.ru_utime + usage.ru_stime:.1f} CPU-s, peak RSS {usage.ru_maxrss / 1024:.0f} "
          f"MiB")
    if not same:
        raise SystemExit(f"rows differ:\n{twins.row()}\n{rtl.row()}")


if __name__ == "__main__":
    main()
