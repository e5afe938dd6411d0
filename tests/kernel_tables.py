"""Hand-made kernel tables for engine-level tests: uniform dies, explicit routes."""

import numpy as np

from hwmodel.system.engine import LayerKernel, Prediction, Tasks
from hwmodel.system.lowering import Tables


def make_tables(num_dies, routes, *, home, llc_hit=100, llc_miss=110, llc_write=30,
                request_by_hops=(0,), data_by_hops=(0,), hbm_slice=40, local_read=(40,) * 8,
                compute=(7,) * 8, slice_bytes=10.0, act_bytes_per_token=0.0,
                request_bytes=16.0, llc_sets=1, llc_ways=2):
    """Tables of ``num_dies`` identical dies; ``routes`` maps (src, dst) to link indices;
    message latencies are given by hop count."""
    start = [0]
    flat = []
    length = np.zeros((num_dies, num_dies), np.int64)
    for s in range(num_dies):
        for d in range(num_dies):
            links = routes.get((s, d), [])
            flat += links
            start.append(len(flat))
            length[s, d] = len(links)
    per_die = lambda value: np.full(num_dies, value, np.int64)
    by_die = lambda row: np.tile(np.asarray(row, np.int64), (num_dies, 1))
    return Tables(
        llc_hit_ns=per_die(llc_hit), llc_miss_ns=per_die(llc_miss),
        llc_write_ns=per_die(llc_write), llc_sets=per_die(llc_sets),
        llc_ways=per_die(llc_ways), hbm_slice_ns=per_die(hbm_slice),
        local_read_ns=by_die(local_read), compute_ns=by_die(compute),
        hbm_of_die=np.arange(num_dies), compute_of_die=np.arange(num_dies),
        route_start=np.array(start, np.int64), route_flat=np.array(flat or [0], np.int32),
        route_len=length, request_ns=np.asarray(request_by_hops, np.int64)[length],
        data_ns=np.asarray(data_by_hops, np.int64)[length],
        request_bytes=np.full(num_dies, request_bytes), home=np.asarray(home, np.int64),
        slice_bytes=float(slice_bytes), act_bytes_per_token=float(act_bytes_per_token))


def run_layer(kernel: LayerKernel, experts, dies, tokens=None):
    """One layer of tasks (expert, die), prediction off; returns (end, stalled, dups)."""
    e = np.asarray(experts, np.int64)
    d = np.asarray(dies, np.int64)
    t = np.ones(len(e), np.int64) if tokens is None else np.asarray(tokens, np.int64)
    remote = (d != kernel.tables.home[e]).astype(np.int64)
    N, E = kernel.num_dies, len(kernel.tables.home)
    off = Prediction(False, False, np.zeros((N, 1), np.bool_), np.zeros((N, 1), np.bool_))
    return kernel.run(0, 0, Tasks(e, d, t, remote), off, num_experts=E, slices=1)
