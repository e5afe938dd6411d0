"""Speed of the event kernel alone: events per CPU second (prints; not a test).

    python benchmarks/bench_kernel.py                        # DeepSeek-V3, 128 requests, base
    python benchmarks/bench_kernel.py --model qwen3-235b --batch 1024 --strategy allo
    python benchmarks/bench_kernel.py --trace <store or trace folder> --wafer dojo
    python benchmarks/bench_kernel.py --vs <other checkout> --rounds 5

An *event* is what the kernel counts in ``Counter.EVENTS`` (``ReplayResult.events``): one pop
of its pending-event heap that is processed (the start of a chain step: an LLC lookup, an HBM
read, a request or data transfer, a compute, a store or a chain's completion; with shared links
also each flow arrival). The kernel's CPU time is the process CPU time spent inside
``LayerKernel.run`` (the compiled event loop plus its per-layer set-up), summed over the run.

Each measurement is its own child process (PYTHONPATH on the checkout measured): it replays the
batch once to warm up (numba's cache loads, lazy imports) and once timed, and prints the run's
events, the kernel's CPU seconds, the whole run's CPU seconds and the child's peak resident set.
With ``--vs`` the two checkouts are measured in turn, A B A B, and medians are printed with the
ratio taken pair by pair. Synthetic batches are made once by this checkout (fitted to the shared
Llama-4 trace, as ``bench_replay.py`` does) and saved under ``--cache``.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve()
CHECKOUT = HERE.parents[1]

#: What a child runs: ``argv[1:]`` = trace, model (or ""), wafer, strategy, mode.
CHILD = """
import json, resource, sys, time
from hwmodel.cli.runs import open_trace
from hwmodel.params import load_wafer
from hwmodel.system import Replay, ReplayParams
from hwmodel.system.engine import LayerKernel
from hwmodel.system.physical import all_switches_on
from hwmodel.topologies.wafer import build_wafer
trace, model_name, wafer_name, strategy, mode = sys.argv[1:]
store, model = open_trace(trace, None, model_name or None)
wafer = build_wafer(load_wafer(wafer_name))
params = ReplayParams() if mode == "paper" else all_switches_on(ReplayParams())
spent = [0.0]
plain_run = LayerKernel.run
def timed_run(self, *args, **kwargs):
    start = time.process_time()
    try:
        return plain_run(self, *args, **kwargs)
    finally:
        spent[0] += time.process_time() - start
LayerKernel.run = timed_run
Replay(wafer=wafer, model=model, store=store, params=params).run(strategy)   # warm-up
spent[0] = 0.0
start = time.process_time()
result = Replay(wafer=wafer, model=model, store=store, params=params).run(strategy)
run_s = time.process_time() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"events": int(result.events), "kernel_s": spent[0], "run_s": run_s,
                  "peak_MiB": peak}))
"""


def batch_path(args) -> str:
    """The trace to replay: ``--trace`` or a saved synthetic batch (made once)."""
    if args.trace:
        return args.trace
    sys.path.insert(0, str(HERE.parent))
    from bench_replay import synthetic_store
    return str(synthetic_store(args.model, args.batch, Path(args.cache), seed=args.seed))


def measure(checkout: Path, trace: str, args) -> dict:
    """One child process on ``checkout``: its JSON line."""
    env = dict(os.environ, PYTHONPATH=str(checkout))
    model = "" if args.trace and not args.model_given else args.model
    done = subprocess.run([sys.executable, "-c", CHILD, trace, model, args.wafer,
                           args.strategy, args.mode], capture_output=True, text=True, env=env,
                          check=False,
                          cwd=checkout)
    if done.returncode:
        raise SystemExit(f"the child on {checkout} failed:\n{done.stderr}")
    return json.loads(done.stdout.splitlines()[-1])


def line(label: str, runs: list[dict]) -> str:
    """Medians of one checkout's runs."""
    med = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    return (f"{label:<10}{med['events']:>12,.0f}{med['kernel_s']:>11.3f}"
            f"{med['events'] / med['kernel_s'] / 1e6:>11.2f}{med['run_s']:>10.3f}"
            f"{med['peak_MiB']:>10.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None,
                        help="model preset of the synthetic batch (default deepseek-v3)")
    parser.add_argument("--batch", type=int, default=128, help="synthetic requests")
    parser.add_argument("--seed", type=int, default=0, help="synthetic batch seed")
    parser.add_argument("--trace", default=None,
                        help="replay this trace (store file or folder) instead")
    parser.add_argument("--strategy", default="base")
    parser.add_argument("--wafer", default="tsmc-sow", help="wafer preset or YAML")
    parser.add_argument("--mode", default="paper", choices=("paper", "physical"))
    parser.add_argument("--rounds", type=int, default=3, help="runs per checkout; medians")
    parser.add_argument("--vs", default=None, help="another checkout, measured in turn")
    parser.add_argument("--cache", default="/tmp/hwmodel-bench",
                        help="folder where synthetic batches are saved and reused")
    args = parser.parse_args()
    args.model_given = args.model is not None
    args.model = args.model or "deepseek-v3"
    trace = batch_path(args)
    sides = [("A", CHECKOUT)] + ([("B", Path(args.vs).resolve())] if args.vs else [])
    runs = {side: [] for side, _ in sides}
    for _ in range(args.rounds):
        for side, checkout in sides:
            runs[side].append(measure(checkout, trace, args))
            r = runs[side][-1]
            print(f"  {side}: {r['events']:,} events, kernel {r['kernel_s']:.3f} CPU-s, "
                  f"run {r['run_s']:.3f} CPU-s", flush=True)
    print(f"{Path(trace).name}, {args.strategy}, {args.wafer}, {args.mode} mode; medians of "
          f"{args.rounds}")
    print(f"{'':<10}{'events':>12}{'kernel s':>11}{'M ev/s':>11}{'run s':>10}{'peak MiB':>10}")
    for side, checkout in sides:
        print(line(f"{side}", runs[side]) + f"  {checkout}")
    if args.vs:
        ratios = sorted(a["kernel_s"] / b["kernel_s"] for a, b in zip(runs["A"], runs["B"]))
        print(f"kernel CPU-s A / B, pair by pair: median {statistics.median(ratios):.3f} "
              f"({ratios[0]:.3f}-{ratios[-1]:.3f})")


if __name__ == "__main__":
    main()
