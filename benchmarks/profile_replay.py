"""Profile one replay run of the 235 shared Llama-4 requests in a warm process (prints the
functions by their own time; not a test).

    python benchmarks/profile_replay.py --strategy pred --wafer tsmc-sow --top 25

The run is made once unprofiled first (numba's cache loads, lazy imports), then once under
``cProfile``. cProfile charges every Python call a fixed overhead, so functions called very
often (the twins' per-transaction checks) look larger than they are: confirm a candidate by
timing the run without the profiler before and after a change.
"""

import argparse
import cProfile
import pstats
import time
from pathlib import Path

LLAMA = (Path(__file__).resolve().parents[1].parent / "shared" / "traces" / "profiling_result"
         / "meta-llama" / "Llama-4-Maverick-17B-128E-Instruct" / "mmlu")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategy", default="pred")
    parser.add_argument("--wafer", default="tsmc-sow")
    parser.add_argument("--top", type=int, default=25, help="functions to print")
    args = parser.parse_args()
    if not LLAMA.is_dir():
        raise SystemExit(f"needs the shared Llama-4 trace at {LLAMA}")
    from hwmodel.cli.runs import open_trace
    from hwmodel.params import load_wafer
    from hwmodel.system import Replay
    from hwmodel.topologies.wafer import build_wafer
    store, model = open_trace(str(LLAMA), None, None)
    wafer = build_wafer(load_wafer(args.wafer))

    def run():
        return Replay(wafer=wafer, model=model, store=store).run(args.strategy)

    start = time.process_time()
    run()
    print(f"{args.strategy} on {args.wafer}: {time.process_time() - start:.2f} CPU-s "
          "unprofiled (first run)")
    profile = cProfile.Profile()
    profile.runcall(run)
    pstats.Stats(profile).sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()
