"""CPU seconds of one replay in a warm process under each physical switch alone and all of them
(issue 17: physical mode at most 2x paper mode on the same run).

    python benchmarks/bench_switch_cost.py                 # base and pred
    python benchmarks/bench_switch_cost.py --strategy ep

The 235 shared Llama-4 requests on tsmc-sow (``$HWMODEL_SHARED`` or ../shared). Every setting is
run once to warm numba's caches, then ``--rounds`` times; the smallest ``time.process_time`` is
printed, with its ratio to paper mode's.
"""

import argparse
import os
import time
from pathlib import Path

import attrs

from hwmodel.cli.runs import open_trace
from hwmodel.params import load_wafer
from hwmodel.system import Replay, ReplayParams
from hwmodel.system.physical import PHYSICAL_SWITCHES, all_switches_on
from hwmodel.topologies.wafer import build_wafer

SHARED = Path(os.environ.get("HWMODEL_SHARED", Path(__file__).resolve().parents[2] / "shared"))
LLAMA = SHARED / "traces/profiling_result/meta-llama/Llama-4-Maverick-17B-128E-Instruct/mmlu"


def settings() -> dict:
    """Label -> ReplayParams: paper, each switch alone, every switch (``--mode physical``)."""
    paper = ReplayParams()
    alone = {name: attrs.evolve(paper, **{name: True}) for name in PHYSICAL_SWITCHES}
    return {"paper": paper, **alone, "physical": all_switches_on(paper)}


def cpu_seconds(replay: Replay, strategy: str) -> float:
    """CPU seconds of one ``Replay.run``."""
    start = time.process_time()
    replay.run(strategy)
    return time.process_time() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--strategy", default="base,pred", help="comma-separated strategies")
    ap.add_argument("--wafer", default="tsmc-sow")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    store, model = open_trace(str(LLAMA), None, None)
    wafer = build_wafer(load_wafer(args.wafer))
    replays = {label: Replay(wafer=wafer, model=model, store=store, params=params)
               for label, params in settings().items()}
    print(f"{'strategy':>10} {'setting':>15} {'CPU s':>7} {'/ paper':>8}")
    for strategy in args.strategy.split(","):
        for replay in replays.values():
            cpu_seconds(replay, strategy)                                   # warm-up
        best = {label: min(cpu_seconds(replay, strategy) for _ in range(args.rounds))
                for label, replay in replays.items()}
        for label, seconds in best.items():
            print(f"{strategy:>10} {label:>15} {seconds:7.2f} {seconds / best['paper']:8.2f}",
                  flush=True)


if __name__ == "__main__":
    main()
