"""RTL benchmarks: pysim speed per unit testbench, and the allocator's cycles per MoE layer.

Run: ``python benchmarks/bench_rtl.py [--batch 4096] [--skip-allocator]``.

1. Per unit (the ``hwmodel rtl sim`` scenario): elaboration + pysim compilation time
   (``Simulator(design)``), simulation time (the scenario's wall time minus that), simulated
   cycles and cycles per second of simulation alone.
2. Allocator (Algorithm 1 RTL) cycles per MoE layer on tsmc-sow (3 x 8 dies) for the shapes of
   DeepSeek-V3 (256 experts, top-8), Qwen3 (128, top-8) and Llama-4 (128, top-1), on the
   built-in synthetic batch (``default_batch(model, requests=batch, seed=0)``): the first decode
   layer simulated in pysim (and checked against the twin's plan and the cycle model), then the
   exact cycle model (:func:`allocator_cycle_model`, equal to pysim in the tests) over every
   layer of decode step 1 and of the prefill.
"""

import argparse
import time

import numpy as np
from amaranth.sim import Simulator

from hwmodel.cli.rtl import UNITS, _design, _scenario


def unit_speeds() -> None:
    print(f"{'unit':<10} {'elab s':>7} {'sim s':>7} {'cycles':>8} {'cycles/s':>10}  agree")
    for unit in UNITS:
        Simulator(_design(unit))        # warm-up: imports and caches are not elaboration
        start = time.perf_counter()
        Simulator(_design(unit))        # elaboration + pysim code generation
        elaboration = time.perf_counter() - start
        start = time.perf_counter()
        agree, cycles, _ = _scenario(unit, None)
        total = time.perf_counter() - start
        simulation = total - elaboration
        speed = f"{cycles / simulation:10,.0f}" if simulation > 0.01 else f"{'n/a':>10}"
        print(f"{unit:<10} {elaboration:7.2f} {simulation:7.2f} {cycles:8d} {speed}  {agree}")


def allocator_cycles(batch: int) -> None:
    from hwmodel.components.global_cp.allocator_rtl import allocator_cycle_model
    from hwmodel.components.global_cp.sim import simulate_allocator
    from hwmodel.models import load_model
    from hwmodel.params import load_wafer
    from hwmodel.system import Replay
    from hwmodel.topologies.wafer import build_wafer
    from hwmodel.traces.synth import default_batch

    wafer = build_wafer(load_wafer("tsmc-sow"))
    print(f"\nallocator cycles per MoE layer, tsmc-sow 3x8, synthetic batch {batch} "
          "(1 cycle = 1 ns at 1 GHz)")
    print(f"{'model':<16} {'E':>4} {'k':>2} {'active':>6} {'pysim':>7} {'model':>7} "
          f"{'sim s':>6} {'decode mean':>11} {'max':>7} {'prefill mean':>12} {'max':>9}")
    for name in ("deepseek-v3", "qwen3-235b", "llama4-maverick"):
        model = load_model(name)
        replay = Replay(wafer=wafer, model=model,
                        store=default_batch(model=name, requests=batch, seed=0))
        gcp, wl = replay.global_cp(), replay.workload
        stats = {}
        first = None
        for it in (1, 0):
            counts = wl.counts(wl.rows(it)[0])
            cyc = []
            for layer in range(wl.L):
                if counts[layer].any():
                    plan = gcp.allocate(layer, counts[layer])
                    cyc.append(allocator_cycle_model(counts[layer], plan, mesh_x=3, mesh_y=8))
                    if first is None:
                        first = (layer, counts[layer], plan, cyc[-1])
            stats[it] = (np.mean(cyc), max(cyc))
        layer, counts, plan, modelled = first
        start = time.perf_counter()
        plans, cycles = simulate_allocator([counts], mesh_x=3, mesh_y=8,
                                           num_experts=model.num_experts, costs=gcp.costs)
        seconds = time.perf_counter() - start
        assert plans[0] == plan, f"{name}: RTL plan differs from the twin's"
        print(f"{name:<16} {model.num_experts:>4} {model.top_k:>2} "
              f"{int((counts > 0).sum()):>6} {cycles[0]:>7} {modelled:>7} {seconds:6.1f} "
              f"{stats[1][0]:>11,.0f} {stats[1][1]:>7,} {stats[0][0]:>12,.0f} "
              f"{stats[0][1]:>9,}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4096, help="requests of the synthetic "
                        "batch for the allocator table (the paper uses 4096)")
    parser.add_argument("--skip-allocator", action="store_true",
                        help="only the per-unit pysim speeds")
    args = parser.parse_args()
    unit_speeds()
    if not args.skip_allocator:
        allocator_cycles(args.batch)


if __name__ == "__main__":
    main()
