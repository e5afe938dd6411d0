"""Trace performance figures (issue 3): JSON -> store throughput, synthetic 16,384-request batch.

Run: ``python benchmarks/bench_traces.py [--requests 16384]`` from the repository root.
"""

import argparse
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
print(elapsed, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, len(store))
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=16384, help="synthetic batch size")
    args = parser.parse_args()
    from hwmodel.traces import open_batch
    from hwmodel.traces.synth import synthesize
    with tempfile.TemporaryDirectory() as tmp:
        if LLAMA4.exists():
            size = sum(p.stat().st_size for p in LLAMA4.rglob("*.json"))
            best = float("inf")
            for _ in range(3):
                start = time.perf_counter()
                store = open_batch(LLAMA4)
                store.save(Path(tmp) / "llama4.hwt")
                best = min(best, time.perf_counter() - start)
            print(f"JSON -> store, shared Llama-4 traces ({len(store)} requests, "
                  f"{size / 1e6:.1f} MB): {best:.3f} s = {size / 1e6 / best:.0f} MB/s "
                  "(best of 3, one core; target >= 100 MB/s)")
            like = store
        else:
            print(f"JSON -> store: skipped ({LLAMA4} absent)")
            like = None
        start = time.perf_counter()
        batch = synthesize(like, model="deepseek-v3", requests=args.requests, seed=0)
        path = batch.save(Path(tmp) / "synth.hwt")
        generated = time.perf_counter() - start
        print(f"synthetic DeepSeek-V3 batch of {args.requests} requests ({batch.num_rows} rows, "
              f"{path.stat().st_size / 1e9:.2f} GB store): generated and saved in "
              f"{generated:.1f} s (target <= 120 s)")
        del batch
        out = subprocess.run([sys.executable, "-c", LOAD, str(path)], capture_output=True,
                             text=True, check=True).stdout.split()
        print(f"load for replay: {float(out[0]):.3f} s, peak RSS {float(out[1]):.0f} MB in a "
              f"fresh process (targets <= 5 s, <= 2048 MB)")
    print(f"bench process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}"
          " MB")


if __name__ == "__main__":
    main()
