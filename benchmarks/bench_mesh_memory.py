"""Peak memory of one replay on a large mesh (issue 20): a 64 x 64 wafer, 16 requests.

Runs ``hwmodel replay`` in a child process (the built-in synthetic Llama-4 batch, one
strategy, one process) and prints the child's peak resident memory (``ru_maxrss``) and wall
time. Not a test: a measurement to compare before and after a change, e.g.::

    PYTHONPATH=$PWD python benchmarks/bench_mesh_memory.py --mesh 64 --strategy ep
"""

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mesh", type=int, default=64, help="dies per side")
    parser.add_argument("--strategy", default="ep")
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        wafer = Path(folder) / f"mesh-{args.mesh}.yaml"
        wafer.write_text(f"wafer:\n  name: mesh-{args.mesh}x{args.mesh}\n"
                         f"  mesh_x: {args.mesh}\n  mesh_y: {args.mesh}\n")
        command = [sys.executable, "-m", "hwmodel", "replay", "--wafer", str(wafer),
                   "--strategy", args.strategy, "--batch", str(args.batch), "--jobs", "1",
                   "--quiet"]
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - start
    if done.returncode:
        sys.exit(done.stderr)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"{args.mesh} x {args.mesh} mesh, {args.strategy}, batch {args.batch}: "
          f"peak RSS {peak:,.0f} MiB, {wall:.1f} s wall")


if __name__ == "__main__":
    main()
