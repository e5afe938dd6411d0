"""Compiled (Yosys CXXRTL) against pysim: cycles per second per unit on the same seeded stream.

Run: ``python benchmarks/bench_rtlsim.py [--scale 1] [--cold]``.

Per unit (the sizes of ``tests/test_rtlsim_engines.py``, so a warm cache has them): simulated
cycles, pysim and cxxrtl wall time of the ``simulate_*`` call (elaboration, RTLIL export and
result decoding included on both sides), cycles per second and their ratio; ``again``: the
same cxxrtl call repeated, its design already loaded in the process (packing, the run and
decoding only: what every call after the first costs) and its ratio to pysim; the load time of
the cached library (export + hash + ``dlopen``), the compiled simulation alone (``core``: the
C++ loop, no packing or decoding, from :data:`hwmodel.rtlsim.PROFILE`) and with ``--cold`` the
build time into an empty cache (Yosys ``write_cxxrtl`` + ``g++``). Both engines must return
the same results and cycle count, or the script stops. Peak RSS is printed at the end. The
allocator's cycles are the sum of its per-layer cycles (the run itself is a little longer).
"""

import argparse
import os
import resource
import tempfile
import time

import numpy as np

from hwmodel.components.atu.params import ATULayout
from hwmodel.components.atu.rtl import ATU
from hwmodel.components.atu.sim import simulate_atu
from hwmodel.components.global_cp import build_cost_rom
from hwmodel.components.global_cp.allocator_rtl import Allocator
from hwmodel.components.global_cp.rtl import EDT, TopNPredictor
from hwmodel.components.global_cp.sim import simulate_allocator, simulate_edt, simulate_predict
from hwmodel.components.local_cp.rtl import LocalCP
from hwmodel.components.local_cp.sim import simulate_local_cp
from hwmodel.components.pdu.rtl import PDU
from hwmodel.components.pdu.sim import simulate_pdu
from hwmodel.rtlsim import PROFILE, build, stimuli


def _rom():
    return build_cost_rom(expert_bytes=1 << 20, hidden_dim=64, expert_ffn_dim=64,
                          matrices_per_expert=3, hbm_bandwidth_GBps=3350, hbm_latency_ns=300,
                          link_bandwidth_GBps=1741, hop_latency_ns=200, peak_TFLOPS=1000,
                          block_size=4)


def units(scale: int):
    """``(name, design factory, simulate(engine) -> (results..., cycles), cycles picker)``."""
    rng = np.random.default_rng
    atu = stimuli.atu_transactions(rng(1), 3000 * scale, ATULayout(entries=64))
    pdu = stimuli.pdu_transactions(rng(2), 3000 * scale, 32)
    edt = stimuli.edt_transactions(rng(3), 3000 * scale, 16, 6)
    groups = stimuli.predictor_groups(rng(4), 40 * scale, 24)
    layers = stimuli.allocator_layers(rng(5), 30 * scale, 12, active=5, max_tokens=20)
    local = stimuli.local_cp_layers(rng(6), 40 * scale, 16, 4, tasks_per_layer=40)
    return [
        ("ATU", lambda: ATU(64), lambda e: simulate_atu(atu, 64, engine=e), lambda r: r[1]),
        ("PDU", lambda: PDU(32), lambda e: simulate_pdu(pdu, 32, engine=e), lambda r: r[1]),
        ("EDT", lambda: EDT(16, num_dies=6),
         lambda e: simulate_edt(edt, 16, num_dies=6, engine=e), lambda r: r[1]),
        ("predictor", lambda: TopNPredictor(24),
         lambda e: simulate_predict(groups, 24, engine=e), lambda r: r[1]),
        ("allocator", lambda: Allocator(2, 2, 12, _rom(), block_size=4),
         lambda e: simulate_allocator(layers, mesh_x=2, mesh_y=2, num_experts=12, costs=_rom(),
                                      block_size=4, engine=e), lambda r: sum(r[1])),
        ("local CP", lambda: LocalCP(3, 16, num_dies=4),
         lambda e: simulate_local_cp(local, die=2, num_sm_slots=3, num_experts=16, num_dies=4,
                                     engine=e), lambda r: r[2]),
    ]


def timed(call):
    start = time.perf_counter()
    result = call()
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=1, help="multiply every stream's length")
    parser.add_argument("--cold", action="store_true",
                        help="also time a build of each design into an empty cache")
    args = parser.parse_args()
    print(f"{'unit':<10} {'cycles':>8} {'pysim s':>8} {'cxxrtl s':>9} {'pysim c/s':>10} "
          f"{'cxxrtl c/s':>11} {'ratio':>6} {'again s':>8} {'ratio':>6} {'core c/s':>11} {'core ratio':>10} {'load s':>7} "
          f"{'build s':>8}")
    for name, design, simulate, cycles_of in units(args.scale):
        cold = "-"
        if args.cold:
            with tempfile.TemporaryDirectory() as tmp:
                os.environ[build.CACHE_ENV] = tmp
                cold = f"{timed(lambda d=design: build.compile_component(d()))[1]:8.1f}"
                del os.environ[build.CACHE_ENV]
        build.compile_component(design())                    # warm the shared cache
        _, load = timed(lambda d=design: build.load_library(build.compile_component(d())))
        reference, pysim = timed(lambda run=simulate: run("pysim"))
        before = dict(PROFILE)
        compiled, cxxrtl = timed(lambda run=simulate: run("cxxrtl"))
        core_cycles = PROFILE["cycles"] - before["cycles"]
        core = core_cycles / max(PROFILE["seconds"] - before["seconds"], 1e-9)
        again_result, again = timed(lambda run=simulate: run("cxxrtl"))
        if compiled != reference or again_result != reference:
            raise SystemExit(f"{name}: cxxrtl and pysim disagree")
        cycles = cycles_of(reference)
        print(f"{name:<10} {cycles:8d} {pysim:8.2f} {cxxrtl:9.3f} {cycles / pysim:10,.0f} "
              f"{cycles / cxxrtl:11,.0f} {pysim / cxxrtl:6.0f} {again:8.3f} {pysim / again:6.0f} "
              f"{core:11,.0f} "
              f"{core / (cycles / pysim):10,.0f} {load:7.3f} {cold:>8}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:.0f} MB")


if __name__ == "__main__":
    main()
