"""CPU time per max-min update of the flow model (``shared_links``) on random transfers over a
wafer's routes (prints; not a test).

    python benchmarks/bench_flows.py                          # tsmc-sow, 100,000 transfers
    python benchmarks/bench_flows.py --wafer dojo --gap 0.5   # fewer flows in flight

Half the transfers are 16-byte requests, half 40/3 MB slices, 1 % zero-byte; random source and
destination dies; start times a cumulative sum of exponential gaps (``--gap`` times a slice's
time alone on a mean link; 30 % of the gaps zero). Prints the mean flows in flight, the best of
three runs after a warm-up in CPU seconds, and ns per update (two per transfer).
"""

import argparse
import time
from types import SimpleNamespace

import numpy as np

from hwmodel.params import load_wafer
from hwmodel.system.flows import link_network, new_flow_state, transfer_times
from hwmodel.topologies.wafer import build_wafer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wafer", default="tsmc-sow")
    ap.add_argument("--transfers", type=int, default=100_000)
    ap.add_argument("--gap", type=float, default=0.3)
    args = ap.parse_args()
    wafer = build_wafer(load_wafer(args.wafer))
    start, flat, length = wafer.mesh.all_routes()
    tables = SimpleNamespace(route_start=np.asarray(start, np.int64),
                             route_flat=np.asarray(flat, np.int64),
                             route_len=np.asarray(length, np.int64))
    network, dies, n = link_network(wafer), wafer.num_dies, args.transfers
    rng = np.random.default_rng(1)
    src, dst = rng.integers(0, dies, n), rng.integers(0, dies, n)
    dst[src == dst] = (dst[src == dst] + 1) % dies
    nbytes = np.where(rng.random(n) < 0.5, 16.0, 40e6 / 3)
    nbytes[rng.random(n) < 0.01] = 0.0
    gaps = rng.exponential(nbytes.mean() / network.rate.mean() * args.gap, n).astype(np.int64)
    gaps[rng.random(n) < 0.3] = 0
    begin = np.cumsum(gaps)

    def run():
        fs = new_flow_state(network, n)
        t = time.process_time()
        arrival = transfer_times(begin, src, dst, nbytes, tables, fs, shared=True)
        return time.process_time() - t, arrival

    _, arrival = run()
    best = min(run()[0] for _ in range(3))
    in_flight = (arrival - begin).sum() / (arrival.max() - begin[0])
    print(f"{args.wafer}: {n} transfers, {in_flight:.1f} in flight on average, {best:.3f} CPU s, "
          f"{best / n / 2 * 1e9:.0f} ns per update")


if __name__ == "__main__":
    main()
