"""CPU seconds of one replay in a warm process under each physical switch alone and all of them
(issue 17: physical mode at most 2x paper mode on the same run).

    python benchmarks/bench_switch_cost.py                 # base and pred
    python benchmarks/bench_switch_cost.py --strategy ep
    python benchmarks/bench_switch_cost.py --leave-one-out # also physical mode less each switch

``--leave-one-out`` adds a row per switch with every switch on but that one ("-shared_links"):
what the switch costs inside physical mode, where the switches act on each other's work (two
micro-batches make twice the flows, an HBM budget more copies to move).

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


def settings(leave_one_out: bool) -> dict:
    """Label -> ReplayParams: paper, each switch alone, every switch (``--mode physical``) and,
    with ``leave_one_out``, every switch but one."""
    paper = ReplayParams()
    physical = all_switches_on(paper)
    alone = {name: attrs.evolve(paper, **{name: True}) for name in PHYSICAL_SWITCHES}
    all_but = {f"-{name}": attrs.evolve(physical, **{name: False}) for name in PHYSICAL_SWITCHES}
    return {"paper": paper, **alone, "physical": physical, **(all_but if leave_one_out else {})}


def cpu_seconds(replay: Replay, strategy: str) -> tuple[float, int]:
    """CPU seconds of one ``Replay.run``, and the flows it ran (0: links not shared)."""
    start = time.process_time()
    result = replay.run(strategy)
    return time.process_time() - start, result.counts.get("flows", 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--strategy", default="base,pred", help="comma-separated strategies")
    ap.add_argument("--wafer", default="tsmc-sow")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--leave-one-out", action="store_true",
                    help="also physical mode with each switch off in turn")
    args = ap.parse_args()
    store, model = open_trace(str(LLAMA), None, None)
    wafer = build_wafer(load_wafer(args.wafer))
    replays = {label: Replay(wafer=wafer, model=model, store=store, params=params)
               for label, params in settings(args.leave_one_out).items()}
    print(f"{'strategy':>10} {'setting':>15} {'CPU s':>7} {'/ paper':>8} {'flows':>9}")
    for strategy in args.strategy.split(","):
        for replay in replays.values():
            cpu_seconds(replay, strategy)                                   # warm-up
        best = {label: min(cpu_seconds(replay, strategy) for _ in range(args.rounds))
                for label, replay in replays.items()}
        paper = best["paper"][0]
        for label, (seconds, flows) in best.items():
            print(f"{strategy:>10} {label:>15} {seconds:7.2f} {seconds / paper:8.2f} "
                  f"{flows:9d}", flush=True)


if __name__ == "__main__":
    main()
