"""Start-up of the command line, side by side with another checkout (issue 18; prints, not a
test).

    git worktree add --detach /tmp/speed-base <base commit>
    python benchmarks/bench_startup.py --vs /tmp/speed-base --rounds 7

Each row is one whole command, started as its own process with this checkout (A) and the
other one (B) in turn, A B A B ..., after one warm-up run of each (numba's disk cache and the
trace cache filled, files in the page cache). Per run: user + system CPU seconds and peak
resident memory of the child, from the operating system's accounting (``os.wait4``). Printed:
the median of each side, and the median and range of the A / B ratios taken pair by pair, so
that a drift of the machine's speed during the call cancels.

Rows:

* ``hwmodel --help``;
* ``python -c "import hwmodel.cli"``;
* ``hwmodel replay`` of the 235 shared Llama-4 requests, ``ep`` on ``tsmc-sow``, one process
  (``ep`` is the cheapest strategy: this is mostly the fixed cost of a replay process: imports,
  numba cache loads, reading the trace);
* ``hwmodel trace convert`` of the same 235 requests (73.0 MB of JSON) into a store, end to
  end;
* ``hwmodel trace synth`` of one of the paper grid's stores (built-in DeepSeek-V3, 4,096
  requests, seed 0);
* the floor of any process that runs a numba kernel: ``import numba`` and the module numba
  loads before its first compiled call (``numba.np.arraymath``, whose BLAS probe imports
  ``scipy.linalg``). The same in both checkouts;
* Amaranth as a wafer build imports it (``amaranth.hdl`` and the ``wiring``, ``data`` and
  ``stream`` libraries of the units' RTL). The same in both checkouts.

``--only TEXT`` runs the rows whose name holds TEXT; ``--convert SOURCE [--convert-model M]``
adds a row converting another JSON source (e.g. a synthetic batch exported with ``hwmodel trace
export``).

The replay rows read the trace cache of a temporary folder (``HWMODEL_TRACE_CACHE``), filled by
the warm-up run; a checkout without the cache ignores it.

``--fixed`` splits the replay row's command into the replay itself and the fixed cost of the
process: the child runs the command, reads its process clock (CPU seconds since it started),
then runs the same ``Replay.run`` calls again in the now warm process; fixed = the command's
CPU seconds - the second run's (interpreter, imports, compiled-kernel loads, reading the trace,
lowering, printing the table).

``--aot`` first builds checkout A's kernels ahead of time (``python -m hwmodel.aot``, its
default sample: the built-in batch, every strategy, both meshes) into a temporary folder
(``HWMODEL_AOT``), so that A's runs load them without numba; without it A runs with
``HWMODEL_AOT=off`` (numba's JIT and disk cache, as before). A checkout without
:mod:`hwmodel.aot` ignores both. ``--aot-folder DIR`` uses the builds already in DIR for both
sides (each checkout finds its own sources' build there, e.g. the set-up's
``~/.cache/hwmodel/aot``).

A checkout's bytecode: the set-up (``scripts/install.sh``) writes it with ``python -m
compileall``; under ``PYTHONDONTWRITEBYTECODE`` a checkout without it compiles every module
from source in each process. Compare checkouts that both have it, or both not.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LLAMA = (REPO.parent / "shared" / "traces" / "profiling_result" / "meta-llama"
         / "Llama-4-Maverick-17B-128E-Instruct" / "mmlu")


def rows(convert: str | None = None, convert_model: str | None = None) -> dict[str, list[str]]:
    """Each row's name and command (arguments after the interpreter); ``convert`` adds a
    ``trace convert`` row of that source (with ``--model convert_model``)."""
    table = {"hwmodel --help": ["-m", "hwmodel", "--help"],
             "import hwmodel.cli": ["-c", "import hwmodel.cli"]}
    if LLAMA.is_dir():
        table["replay 235 Llama-4, ep, tsmc-sow"] = [
            "-m", "hwmodel", "replay", "--trace", str(LLAMA), "--strategy", "ep",
            "--wafer", "tsmc-sow", "--jobs", "1", "--quiet"]
        # JSON -> store end to end (73.0 MB of JSON): the process's imports and preset
        # parsing included, as a user runs it; divide the MB by the CPU seconds for MB/s.
        table["trace convert 235 Llama-4 (73.0 MB)"] = [
            "-m", "hwmodel", "trace", "convert", str(LLAMA), "-o",
            str(Path(tempfile.gettempdir()) / f"bench-startup-{os.getpid()}.hwt"), "--force"]
    # the paper grid's synthesis, one of its 12 stores: built-in DeepSeek-V3, 4,096 requests
    table["trace synth DeepSeek-V3 4,096 built-in"] = [
        "-m", "hwmodel", "trace", "synth", "--model", "deepseek-v3", "--requests", "4096",
        "--seed", "0", "-o", str(Path(tempfile.gettempdir()) / f"bench-synth-{os.getpid()}.hwt"),
        "--force"]
    if convert:
        source = Path(convert)
        size = (source.stat().st_size if source.is_file()
                else sum(p.stat().st_size for p in source.rglob("*.json")))
        table[f"trace convert {source.name} ({size / 1e6:,.1f} MB)"] = [
            "-m", "hwmodel", "trace", "convert", convert, "-o",
            str(Path(tempfile.gettempdir()) / f"bench-convert-{os.getpid()}.hwt"), "--force",
            *(["--model", convert_model] if convert_model else [])]
    table["floor: numba + its BLAS probe"] = ["-c", "import numba, numba.np.arraymath"]
    table["Amaranth of the RTL layouts"] = [
        "-c", "import amaranth.hdl; from amaranth.lib import data, stream, wiring"]
    table["bare interpreter"] = ["-c", "pass"]
    return table


def run_once(checkout: Path, args: list[str], cache: str, aot: str = "off"
             ) -> tuple[float, float]:
    """CPU seconds and peak MiB of one run of ``python ARGS`` importing hwmodel from
    ``checkout`` (trace cache folder ``cache``, ahead-of-time builds ``aot``)."""
    env = dict(os.environ, PYTHONPATH=str(checkout), HWMODEL_TRACE_CACHE=cache,
               HWMODEL_AOT=aot)
    child = subprocess.Popen([sys.executable, *args], cwd=checkout, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    error = child.stderr.read().decode()
    child.stderr.close()
    if child.returncode != 0:
        raise SystemExit(f"{checkout}: python {' '.join(args)} failed: {error.strip()}")
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def compare(a: Path, b: Path | None, args: list[str], rounds: int, cache: str,
            aot: str = "off") -> dict:
    """``{"A": [(cpu, mib), ...], "B": [...]}``, the sides run in turn after a warm-up each."""
    sides = {"A": a} if b is None else {"A": a, "B": b}
    for checkout in sides.values():
        run_once(checkout, args, cache, aot)
    runs = {side: [] for side in sides}
    for _ in range(rounds):
        for side, checkout in sides.items():
            runs[side].append(run_once(checkout, args, cache, aot))
    return runs


#: The replay row's command, then the same ``Replay.run`` again in the warm process; writes
#: the process's CPU seconds at the end of the command and those of the second run to stderr.
_TIMED_REPLAY = """
import sys, time
from hwmodel.system import replay
inner, calls = replay.Replay.run, []
def remembered(self, *args, **kwargs):
    calls.append((self, args, kwargs))
    return inner(self, *args, **kwargs)
replay.Replay.run = remembered
from hwmodel.cli import main
code = main(sys.argv[1:])
command = time.process_time()
start = time.process_time()
for self, args, kwargs in calls:
    inner(self, *args, **kwargs)
print(f"timed {command} {time.process_time() - start}", file=sys.stderr)
raise SystemExit(code)
"""


def fixed_cost(sides: dict, args: list[str], rounds: int, cache: str, aot: str) -> str:
    """For the replay command ``args`` (after ``-m hwmodel``), sides in turn: medians of the
    command's CPU seconds (the process clock when it returns), of its replays run again in the
    warm process (the replay itself) and of the difference (the fixed cost of a process)."""
    found = {side: [] for side in sides}
    for _ in range(rounds + 1):         # the first round warms up
        for side, checkout in sides.items():
            env = dict(os.environ, PYTHONPATH=str(checkout), HWMODEL_TRACE_CACHE=cache,
                       HWMODEL_AOT=aot)
            child = subprocess.run([sys.executable, "-c", _TIMED_REPLAY, *args], check=False,
                                   cwd=checkout, env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, text=True)
            if child.returncode != 0:
                raise SystemExit(f"{checkout}: timed replay failed: {child.stderr.strip()}")
            command, run = map(float, child.stderr.split("timed ")[1].split()[:2])
            found[side].append((command, run))
    line = "the replay row, split             "
    for side, measured in found.items():
        total = statistics.median(c for c, _ in measured[1:])
        run = statistics.median(r for _, r in measured[1:])
        fixed = statistics.median(c - r for c, r in measured[1:])
        line += f" {side}: {total:.3f} = replay {run:.3f} + fixed {fixed:.3f} CPU-s |"
    return line


def build_aot(checkout: Path, folder: str, cache: str) -> None:
    """Checkout's kernels built ahead of time into ``folder`` (its default sample)."""
    env = dict(os.environ, PYTHONPATH=str(checkout), HWMODEL_TRACE_CACHE=cache,
               HWMODEL_AOT=folder)
    subprocess.run([sys.executable, "-m", "hwmodel.aot"], cwd=checkout, env=env, check=True,
                   stdout=subprocess.DEVNULL)


def report(name: str, runs: dict) -> str:
    line = f"{name:<34}"
    for side, measured in runs.items():
        cpu = statistics.median(r[0] for r in measured)
        mib = statistics.median(r[1] for r in measured)
        line += f" {side}: {cpu:6.3f} CPU-s {mib:6.1f} MiB |"
    if "B" in runs:
        ratios = [a[0] / b[0] for a, b in zip(runs["A"], runs["B"])]
        line += (f" A/B {statistics.median(ratios):.3f} "
                 f"({min(ratios):.3f}-{max(ratios):.3f})")
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", default=str(REPO), help="checkout A (default: this one)")
    parser.add_argument("--vs", default=None, help="checkout B (e.g. the base commit's)")
    parser.add_argument("--rounds", type=int, default=5, help="runs of each side per row")
    parser.add_argument("--only", default="", help="run only the rows whose name holds this")
    parser.add_argument("--convert", default=None, metavar="SOURCE",
                        help="also time 'hwmodel trace convert SOURCE' (e.g. a large export)")
    parser.add_argument("--convert-model", default=None, metavar="MODEL",
                        help="--model of that conversion")
    parser.add_argument("--fixed", action="store_true",
                        help="split the replay row into Replay.run and the fixed cost")
    parser.add_argument("--aot", action="store_true",
                        help="build checkout A's kernels ahead of time first (hwmodel.aot)")
    parser.add_argument("--aot-folder", default=None, metavar="DIR",
                        help="use the builds in DIR (HWMODEL_AOT of both sides) instead of "
                             "building: e.g. the set-up's, with each checkout's build in it")
    args = parser.parse_args()
    a, b = Path(args.path).resolve(), Path(args.vs).resolve() if args.vs else None
    print(f"A = {a}" + (f", B = {b}" if b else "") + f"; medians of {args.rounds} runs each, "
          "A B A B; CPU = user + system of the child", flush=True)
    with (tempfile.TemporaryDirectory(prefix="hwmodel-trace-cache-") as cache,
          tempfile.TemporaryDirectory(prefix="hwmodel-aot-") as aot):
        if args.aot and not args.aot_folder:
            build_aot(a, aot, cache)
            print(f"A's kernels built ahead of time into {aot}", flush=True)
        builds = args.aot_folder or (aot if args.aot else "off")
        for name, command in rows(args.convert, args.convert_model).items():
            if args.only not in name:
                continue
            runs = compare(a, b, command, args.rounds, cache, builds)
            print(report(name, runs), flush=True)
            if args.fixed and name.startswith("replay"):
                sides = {"A": a} if b is None else {"A": a, "B": b}
                print(fixed_cost(sides, command[2:], args.rounds, cache, builds), flush=True)


if __name__ == "__main__":
    main()
