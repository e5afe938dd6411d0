"""The speed yardstick of ``../shared/reference/README.md``: CPU seconds of the ten Llama-4 runs
(235 shared requests, five strategies x two meshes), against the study's simulator (prints; not
a test).

    python benchmarks/bench_yardstick.py                       # this checkout
    python benchmarks/bench_yardstick.py --path /work/prev     # another checkout, same machine

Two figures, each summed over the ten runs:

* **per process**: ``hwmodel replay --strategy S --wafer W --jobs 1`` started once per run, as
  the reference table timed the study's simulator (user + system CPU seconds of the child:
  interpreter start, imports, compiled-kernel cache loads and reading the 235 JSON requests
  included);
* **in process**: the ten ``Replay.run`` calls in this process after one warm-up pass (the
  replay itself: no start-up, no trace reading).

Both are divided into the study's simulator's 832 CPU-s for the same ten runs (its per-process
figure in the reference README, measured there on another day). The README's rule for a fair
figure: time against commit 0b44e51 (14.6x the study's simulator per process when both were
measured) on the same machine and scale. ``--vs PATH`` (a checkout of 0b44e51) does that: both
checkouts are timed in turn (A B A B) and the per-process speed-up is 14.6 x (B / A).

    git worktree add --detach /tmp/v0 0b44e51
    python benchmarks/bench_yardstick.py --vs /tmp/v0 --rounds 2

``--per-process-pairs`` times only the per-process figure, each run of this checkout followed
by the same run of ``--vs`` (any other checkout, e.g. the commit before a change).
"""

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
LLAMA = SHARED / "traces/profiling_result/meta-llama/Llama-4-Maverick-17B-128E-Instruct"
STRATEGIES = ("base", "ep", "allo", "pred", "allo+pred")
WAFERS = ("tsmc-sow", "dojo")
#: The study's simulator, the ten runs, one per process: CPU seconds (reference README table).
ARTEFACT_CPU_S = 832.0
#: hwmodel 0b44e51 against the study's simulator per process, measured together (same table).
V0_SPEEDUP = 14.6


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _child(path: str | None) -> dict:
    """``subprocess.run`` arguments that import hwmodel from ``path`` (``-m`` and ``-c`` put
    the working folder first on ``sys.path``: it is the checkout's)."""
    env = dict(os.environ)
    if path:
        env["PYTHONPATH"] = path
    return {"env": env, "cwd": path or Path(__file__).resolve().parents[1]}


def _one_process(path: str | None, wafer: str, strategy: str) -> float:
    """CPU seconds of one run as its own ``hwmodel replay`` process."""
    before = _children_cpu()
    subprocess.run([sys.executable, "-m", "hwmodel", "replay", "--trace", str(LLAMA),
                    "--wafer", wafer, "--strategy", strategy, "--jobs", "1", "--quiet"],
                   check=True, stdout=subprocess.DEVNULL, **_child(path))
    return _children_cpu() - before


def per_process(path: str | None) -> dict:
    """CPU seconds of each run as its own ``hwmodel replay`` process."""
    return {(wafer, strategy): _one_process(path, wafer, strategy)
            for wafer in WAFERS for strategy in STRATEGIES}


def per_process_pairs(path: str | None, vs: str) -> None:
    """Each run as its own process in this checkout, then at once in ``vs`` (A B A B run by
    run, so that a drift of the machine's speed falls on both); prints both and the sums."""
    totals = {"A": 0.0, "B": 0.0}
    print(f"{'mesh':<9}{'strategy':>10}{'A CPU-s':>9}{'B CPU-s':>9}")
    for wafer in WAFERS:
        for strategy in STRATEGIES:
            a, b = _one_process(path, wafer, strategy), _one_process(vs, wafer, strategy)
            totals["A"] += a
            totals["B"] += b
            print(f"{wafer:<9}{strategy:>10}{a:9.2f}{b:9.2f}", flush=True)
    print(f"ten runs: A {totals['A']:.1f} CPU-s, B {totals['B']:.1f} CPU-s, "
          f"B / A = {totals['B'] / totals['A']:.3f}")


def in_process(path: str | None) -> dict:
    """CPU seconds of each ``Replay.run`` in one warmed-up process (run in a child so that
    ``--path`` picks the checkout)."""
    code = (
        "import time\n"
        "from hwmodel.models import load_model\nfrom hwmodel.params import load_wafer\n"
        "from hwmodel.system import Replay\nfrom hwmodel.topologies.wafer import build_wafer\n"
        "from hwmodel.traces import open_batch\n"
        f"store = open_batch({str(LLAMA)!r}); model = load_model('llama4-maverick')\n"
        f"wafers = {{w: build_wafer(load_wafer(w)) for w in {WAFERS!r}}}\n"
        "for warm in (True, False):\n"
        "    for w, wafer in wafers.items():\n"
        f"        for s in {STRATEGIES!r}:\n"
        "            t = time.process_time()\n"
        "            Replay(wafer=wafer, model=model, store=store).run(s)\n"
        "            if not warm: print(w, s, time.process_time() - t)\n")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True, **_child(path)).stdout
    return {(w, s): float(t) for w, s, t in (line.split() for line in out.splitlines())}


def table(seconds: dict) -> str:
    lines = [f"{'mesh':<9}" + "".join(f"{s:>10}" for s in STRATEGIES)]
    for wafer in WAFERS:
        lines.append(f"{wafer:<9}" + "".join(f"{seconds[(wafer, s)]:10.2f}"
                                             for s in STRATEGIES))
    return "\n".join(lines)


def measure(path: str | None) -> dict:
    """Both figures of one checkout: ``{"per process": {...}, "in process": {...}}``."""
    return {"per process": per_process(path), "in process": in_process(path)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", default=None, help="PYTHONPATH of the checkout to time "
                                                     "(default: this one)")
    parser.add_argument("--vs", default=None, help="a checkout of 0b44e51, timed in turn")
    parser.add_argument("--rounds", type=int, default=1, help="A (B) rounds; medians")
    parser.add_argument("--per-process-pairs", action="store_true",
                        help="with --vs: only the per-process runs, A then B run by run")
    args = parser.parse_args()
    if not LLAMA.is_dir():
        raise SystemExit(f"needs the shared Llama-4 trace at {LLAMA}")
    if args.per_process_pairs:
        if not args.vs:
            raise SystemExit("--per-process-pairs needs --vs PATH")
        per_process_pairs(args.path, args.vs)
        return
    t0 = time.perf_counter()
    runs = {"A": [], "B": []}
    for _ in range(args.rounds):
        runs["A"].append(measure(args.path))
        if args.vs:
            runs["B"].append(measure(args.vs))
    totals = {}
    for side, label in (("A", args.path or "this checkout"), ("B", args.vs)):
        for name in ("per process", "in process"):
            if not runs[side]:
                continue
            seconds = {key: statistics.median(r[name][key] for r in runs[side])
                       for key in runs[side][0][name]}
            totals[(side, name)] = sum(seconds.values())
            print(f"== {label}, {name}: CPU seconds per run (median of {len(runs[side])})\n"
                  f"{table(seconds)}\nten runs {totals[(side, name)]:.1f} CPU-s; the study's "
                  f"simulator's {ARTEFACT_CPU_S:.0f} CPU-s over it: "
                  f"{ARTEFACT_CPU_S / totals[(side, name)]:.1f}x\n", flush=True)
    if args.vs:
        ratio = totals[("B", "per process")] / totals[("A", "per process")]
        print(f"per process: 0b44e51 / this = {ratio:.3f}; scaled by the reference rule: "
              f"{V0_SPEEDUP} x {ratio:.3f} = {V0_SPEEDUP * ratio:.1f}x the study's simulator")
        print(f"in process: 0b44e51 / this = "
              f"{totals[('B', 'in process')] / totals[('A', 'in process')]:.3f}")
    print(f"{time.perf_counter() - t0:.0f} s wall")


if __name__ == "__main__":
    main()
