"""Time and peak memory of the leader-fit sampler (issue 19 point 4): ``N`` requests of a
model's shape synthesised from the gpt-oss-20b leader fit, as ``calibrated_repro.py`` does.

Prints one line: requests, rows, the seconds of ``sample`` alone (after a 2-request warm-up that
loads the compiled kernels), the process's peak resident memory and a hash of the ids (the same
seed must give the same hash). Usage::

    python benchmarks/bench_synth_leader.py OSS_STORE [--requests 4096] [--model deepseek-v3]
"""

import argparse
import hashlib
import resource
import time

import attrs

from hwmodel.traces import open_batch
from hwmodel.traces.synth import builtin_model, fit_leader, reshape, sample


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("oss")
    parser.add_argument("--requests", type=int, default=4096)
    parser.add_argument("--model", default="deepseek-v3")
    args = parser.parse_args()
    lengths = builtin_model(args.model, seed=0)
    synth = attrs.evolve(reshape(fit_leader(open_batch(args.oss)), args.model, seed=0),
                         prompt_lengths=lengths.prompt_lengths,
                         decode_lengths=lengths.decode_lengths)
    sample(synth, 2, seed=0)
    start = time.perf_counter()
    store = sample(synth, args.requests, seed=0)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    digest = hashlib.sha256(store.ids.tobytes()).hexdigest()[:16]
    print(f"{args.model}: {args.requests} requests, {store.num_rows} rows, sample {seconds:.1f} s, "
          f"peak {peak:.0f} MiB, ids {digest}")


if __name__ == "__main__":
    main()
