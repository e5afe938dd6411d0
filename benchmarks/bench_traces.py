"""Trace performance figures (issue 3): conversion MB/s, 16,384-request synthesis seconds,
store load seconds and peak RSS (MB).

Run: ``python benchmarks/bench_traces.py [--requests 16384] [--repeats 5]`` from the repository
root. ``--parsers [SOURCE]`` instead times, in this process, the reader's fast path against
compiled JSON libraries decoding the same request files into the same arrays (issue 18: the
choice of the parser). Peak RSS is ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` of a fresh subprocess that loads
the store and reads what replay reads first.
"""

import argparse
import gc
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHARED = Path(os.environ.get("HWMODEL_SHARED", Path(__file__).resolve().parents[2] / "shared"))
LLAMA4 = SHARED / "traces/profiling_result/meta-llama/Llama-4-Maverick-17B-128E-Instruct"

LOAD = """
import resource, sys, time
import numpy as np
from hwmodel.traces import TraceStore
start = time.perf_counter()
store = TraceStore.load(sys.argv[1])
rows, owners = store.iteration_rows(0)
first = int(store.ids[store.token_offset[-2]].sum())  # touch the last request
elapsed = time.perf_counter() - start
hwm = [line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM")]
print(elapsed, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
      int(hwm[0]) / 1024 if hwm else -1, len(store))
"""

SYNTH = """
import sys, time
from hwmodel.traces import TraceStore
from hwmodel.traces.synth import synthesize
like = TraceStore.load(sys.argv[1]) if sys.argv[1] != "-" else None
start = time.perf_counter()
batch = synthesize(like, model="deepseek-v3", requests=int(sys.argv[3]), seed=0)
generated = time.perf_counter() - start
batch.save(sys.argv[2])
print(generated, time.perf_counter() - start, batch.num_rows)
"""


def _convert_rate(tmp, repeats):
    """Best JSON -> store time of ``repeats`` runs after a warm-up run (page cache, imports,
    preset YAML parsing out of the way); other processes share the machine, so the best run is
    the one least disturbed."""
    from hwmodel.traces import open_batch
    size = sum(p.stat().st_size for p in LLAMA4.rglob("*.json"))
    open_batch(LLAMA4)
    times, cpu = [], []
    for _ in range(repeats):
        gc.collect()
        start, start_cpu = time.perf_counter(), time.process_time()
        store = open_batch(LLAMA4)
        store.save(Path(tmp) / "llama4.hwt")
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return store, size, times, cpu


def _arrays_of(data):
    """Prefill ``(P, moe, k)`` and decode ``(D, moe, k)`` int64 arrays of a decoded request."""
    import numpy as np
    moe = [key for key, rows in data[0].items() if rows is not None]
    prefill = np.array([data[0][key] for key in moe], np.int64).transpose(1, 0, 2)
    decode = np.array([[step[key][0] for key in moe] for step in data[1:]], np.int64)
    return prefill, decode


def _parsers():
    """``{name: parse(raw)}``: the reader's fast path and the compiled JSON libraries that are
    installed, each giving the request's arrays."""
    from hwmodel.traces.reader import _fast_parse
    found = {"hwmodel fast path (numpy)": _fast_parse}
    try:
        import orjson
        found["orjson.loads + numpy arrays"] = lambda raw: _arrays_of(orjson.loads(raw))
    except ImportError:
        pass
    try:
        import msgspec
        typed = msgspec.json.Decoder(list[dict[str, list[list[int]] | None]])
        found["msgspec (typed) + numpy arrays"] = lambda raw: _arrays_of(typed.decode(raw))
    except ImportError:
        pass
    try:
        import simdjson
        decoder = simdjson.Parser()
        found["pysimdjson + numpy arrays"] = (
            lambda raw: _arrays_of(decoder.parse(raw, recursive=True)))
    except ImportError:
        pass
    return found


def _compare_parsers(source: Path, repeats: int) -> None:
    """Best CPU seconds of ``repeats`` passes of each parser over ``source``'s request files,
    held in memory (reading them is not timed)."""
    from hwmodel.traces.files import request_sources
    raws = [read() for _, _, read in request_sources(source)]
    size = sum(map(len, raws)) / 1e6
    print(f"{len(raws)} request files of {source}, {size:.1f} MB in memory; best CPU of "
          f"{repeats} passes after a warm-up")
    for name, parse in _parsers().items():
        best = float("inf")
        for _ in range(repeats + 1):
            gc.collect()
            start = time.process_time()
            for raw in raws:
                parse(raw)
            best = min(best, time.process_time() - start)
        print(f"  {name:34} {best:7.3f} CPU-s = {size / best:5.0f} MB/s")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=16384, help="synthetic batch size")
    parser.add_argument("--repeats", type=int, default=5, help="timed conversion runs")
    parser.add_argument("--convert-only", action="store_true",
                        help="stop after the conversion figure (no synthesis, no load)")
    parser.add_argument("--parsers", nargs="?", const=str(LLAMA4), default=None,
                        metavar="SOURCE", help="compare the JSON parsers on SOURCE's request "
                        "files (default: the shared Llama-4 traces) and stop")
    args = parser.parse_args()
    if args.parsers:
        _compare_parsers(Path(args.parsers), args.repeats)
        return
    with tempfile.TemporaryDirectory() as tmp:
        if LLAMA4.exists():
            store, size, times, cpu = _convert_rate(tmp, args.repeats)
            best, median = min(times), sorted(times)[len(times) // 2]
            print(f"conversion JSON -> store, shared Llama-4 traces ({len(store)} requests, "
                  f"{size / 1e6:.1f} MB): best {best:.3f} s = {size / 1e6 / best:.0f} MB/s, "
                  f"median {size / 1e6 / median:.0f} MB/s; CPU best {min(cpu):.3f} s = "
                  f"{size / 1e6 / min(cpu):.0f} MB/s, median "
                  f"{size / 1e6 / sorted(cpu)[len(cpu) // 2]:.0f} MB/s (warm-up + "
                  f"{args.repeats} runs in this process, one core; target >= 250 MB/s, issue 18)")
            if args.convert_only:
                return
            like = store
        else:
            print(f"conversion JSON -> store: skipped ({LLAMA4} absent)")
            like = None
        # Synthesis runs in its own process: ru_maxrss survives fork and exec on Linux, so a
        # load subprocess started from a parent holding the batch would report the parent's.
        path = Path(tmp) / "synth.hwt"
        like_path = like.save(Path(tmp) / "like.hwt") if like is not None else "-"
        out = subprocess.run([sys.executable, "-c", SYNTH, str(like_path), str(path),
                              str(args.requests)], capture_output=True, text=True,
                             check=True).stdout.split()
        generated, saved, rows = float(out[0]), float(out[1]), int(out[2])
        print(f"synthesis: DeepSeek-V3 batch of {args.requests} requests ({rows} rows, "
              f"{path.stat().st_size / 1e9:.2f} GB store): {generated:.1f} s to generate, "
              f"{saved:.1f} s with the save (target <= 120 s)")
        runs = []
        for _ in range(2):
            out = subprocess.run([sys.executable, "-c", LOAD, str(path)], capture_output=True,
                                 text=True, check=True).stdout.split()
            runs.append((float(out[0]), float(out[1]), float(out[2])))
        print(f"store load for replay (fresh process, load + iteration 0 rows + last request): "
              f"{min(r[0] for r in runs):.3f} s, peak RSS {max(r[1] for r in runs):.0f} MB "
              f"(ru_maxrss; VmHWM {max(r[2] for r in runs):.0f} MB; 2 runs: best time, "
              "largest RSS; targets <= 5 s, <= 2048 MB)")
    print(f"bench process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}"
          " MB")


if __name__ == "__main__":
    main()
