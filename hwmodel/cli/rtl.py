"""``hwmodel rtl``: simulate a unit's RTL against its twin, export Verilog, report Yosys area."""

from __future__ import annotations

import random
import time

from .helpformat import HelpFormatter
from .outputs import add_force_option, atomic_file, check_output_file
from .progress import elapsed

_FORMATTER = HelpFormatter

UNITS = ("atu", "pdu", "local_cp", "edt", "predictor", "allocator")

# The paper's Table II sizes, shown next to the Yosys figures.
PAPER_SIZES = {
    "atu": "4.25 KB SRAM, 512 x 68-bit entries",
    "pdu": "128 B registers, 16-bit wide (512 experts x 2 bits)",
    "local_cp": "an ARM core in the paper",
    "edt": "4.5 KB of 72-bit entries (512 experts)",
    "predictor": "heatmap cache 0.5 MB (one layer, 512 x 512 x 16-bit)",
    "allocator": "runs on the Global CP (no size given)",
}


def _llama4_global_cp(requests: int = 64):
    """Global CP twin and workload of a built-in synthetic Llama-4 batch on tsmc-sow (the
    replay's own cost ROM: same construction as a real run)."""
    from ..models import load_model
    from ..params import load_wafer
    from ..system import Replay
    from ..topologies.wafer import build_wafer
    from ..traces.synth import default_batch
    replay = Replay(wafer=build_wafer(load_wafer("tsmc-sow")),
                    model=load_model("llama4-maverick"),
                    store=default_batch(model="llama4-maverick", requests=requests, seed=0))
    return replay.global_cp(), replay.workload


def _design(unit: str):
    from ..components.atu import ATU
    from ..components.global_cp.allocator_rtl import Allocator
    from ..components.global_cp.rtl import EDT, TopNPredictor
    from ..components.local_cp import LocalCP
    from ..components.pdu import PDU
    return {"atu": lambda: ATU(512), "pdu": lambda: PDU(512),
            "local_cp": lambda: LocalCP(4, 512), "edt": lambda: EDT(512),
            "predictor": lambda: TopNPredictor(32),
            "allocator": lambda: Allocator(3, 8, 128, _llama4_global_cp(8)[0].costs)}[unit]()


def _scenario(unit: str, vcd):
    """A seeded random scenario through the RTL and the twin: (agree, cycles, transactions)."""
    rng = random.Random(0)
    if unit == "atu":
        from ..components.atu.sim import run_atu_twin, simulate_atu
        tx = []
        for _ in range(400):
            i = rng.randrange(512)
            tx.append(rng.choice([("insert", i, rng.randrange(8), rng.randrange(1 << 31)),
                                  ("lookup", i, rng.randrange(8)), ("lookup", i, 0)]))
        got, cycles = simulate_atu(tx, vcd=vcd)
        return got == run_atu_twin(tx), cycles, len(tx)
    if unit == "pdu":
        from ..components.pdu.sim import run_pdu_twin, simulate_pdu
        tx = [("write_word", i, rng.randrange(1 << 16)) for i in range(64)]
        tx += [rng.choice([("query", rng.randrange(512)), ("set_local", rng.randrange(512))])
               for _ in range(400)]
        got, cycles = simulate_pdu(tx, vcd=vcd)
        return got == run_pdu_twin(tx), cycles, len(tx)
    if unit == "local_cp":
        from ..components.local_cp.sim import run_local_cp_twin, simulate_local_cp
        layers = [([(rng.randrange(512), rng.randrange(1, 600), rng.randrange(4))
                    for _ in range(40)], rng.sample(range(512), 100), rng.sample(range(512), 20))
                  for _ in range(2)]
        stats, sm_tasks, cycles = simulate_local_cp(layers, die=1, vcd=vcd)
        return (stats, sm_tasks) == run_local_cp_twin(layers, die=1), cycles, 80
    if unit == "edt":
        from ..components.global_cp.sim import simulate_edt
        presence = {}
        tx = []
        for e in range(64):
            presence[e] = 1 << (e % 24)
            tx.append(("write", e, e % 24, presence[e]))
        expected = []
        for _ in range(200):
            e = rng.randrange(64)
            draw = rng.random()
            if draw < 0.35:
                d = rng.randrange(24)
                presence[e] |= 1 << d
                tx.append(("set_present", e, d))
            elif draw < 0.5:
                d = rng.randrange(24)
                if d != e % 24:      # a home copy is not a replica: never cleared
                    presence[e] &= ~(1 << d)
                    tx.append(("clear_present", e, d))
            else:
                tx.append(("read", e))
                expected.append((e % 24, presence[e]))
        got, cycles = simulate_edt(tx, vcd=vcd)
        return got == expected, cycles, len(tx)
    if unit == "allocator":
        from ..components.global_cp.sim import simulate_allocator
        gcp, workload = _llama4_global_cp()
        layers = []
        for it in (1, 2):      # two decode steps, every MoE layer with tokens
            counts = workload.counts(workload.rows(it)[0])
            layers += [(layer, c) for layer, c in enumerate(counts) if c.any()]
        plans, cycles = simulate_allocator([c for _, c in layers], mesh_x=3, mesh_y=8,
                                           num_experts=gcp.num_experts, costs=gcp.costs,
                                           vcd=vcd)
        agree = plans == [gcp.allocate(layer, c) for layer, c in layers]
        return agree, sum(cycles), len(layers)
    from ..components.global_cp.sim import simulate_top_n
    rows = [[rng.randrange(6) for _ in range(32)] for _ in range(4)]
    got, cycles = simulate_top_n(rows, 32, vcd=vcd)
    expected = [tuple(sorted(sorted(range(32), key=lambda j: (-row[j], j))[:7])) for row in rows]
    return got == expected, cycles, len(rows)


def _sim(args) -> int:
    from pathlib import Path

    from .outputs import check_output_dir
    wave = None
    if args.vcd:
        wave = check_output_file(Path(args.vcd) / f"{args.unit}.vcd", "--vcd", args.force)
        check_output_dir(args.vcd, "--vcd", force=True)   # a folder, written into
    start = time.perf_counter()
    with elapsed(f"simulating {args.unit} RTL", enabled=not args.quiet):
        if wave is not None:
            wave.parent.mkdir(parents=True, exist_ok=True)
        agree, cycles, n = _scenario(args.unit, None if wave is None else str(wave))
    seconds = time.perf_counter() - start
    print(f"{args.unit}: {n} transactions, {cycles} cycles, RTL {'==' if agree else '!='} "
          f"reference, {cycles / seconds:,.0f} simulated cycles/s"
          + (f", waveform in {wave}" if wave else ""))
    return 0 if agree else 1


def _verilog(args) -> int:
    from amaranth.back import verilog
    check_output_file(args.output, "--output", args.force)
    with elapsed(f"yosys: {args.unit} to Verilog", enabled=not args.quiet):
        text = verilog.convert(_design(args.unit), name=args.unit)
    with atomic_file(args.output) as tmp:
        tmp.write_text(text)
    print(f"{args.unit}: {len(text.splitlines())} lines of Verilog in {args.output}")
    return 0


def _area(args) -> int:
    from ..tb import yosys_stat
    with elapsed(f"yosys synth + stat of {args.unit}", enabled=not args.quiet):
        stat = yosys_stat(_design(args.unit), name=args.unit)
    print(f"{'unit':<10} {'method':<7} {'cells':>8} {'flip-flops':>11} {'SRAM bits':>10}  "
          "paper (Table II)")
    print(f"{args.unit:<10} {stat['method']:<7} {stat['cells']:>8} {stat['flip_flops']:>11} "
          f"{stat['memory_bits']:>10}  {PAPER_SIZES[args.unit]}")
    if args.verbose:
        print(stat["report"])
    return 0


def _common(parser) -> None:
    parser.add_argument("unit", choices=UNITS, help="which unit")
    parser.add_argument("--quiet", action="store_true", help="no progress on standard error")


def register(subparsers) -> None:
    """Add ``rtl sim / verilog / area`` to the ``hwmodel`` command line."""
    parser = subparsers.add_parser("rtl", help="Amaranth RTL of the added units: simulate, "
                                   "export Verilog, report Yosys area")
    sub = parser.add_subparsers(dest="rtl_command", metavar="ACTION", required=True)
    sim = sub.add_parser("sim", help="simulate a seeded random scenario on the RTL and check it "
                         "against the Python twin", formatter_class=_FORMATTER)
    _common(sim)
    sim.add_argument("--vcd", default=None, metavar="DIR",
                     help="write the VCD waveform to DIR/UNIT.vcd (None: no waveform)")
    add_force_option(sim)
    sim.set_defaults(func=_sim)
    ver = sub.add_parser("verilog", help="export the unit as Verilog through Yosys",
                         formatter_class=_FORMATTER)
    _common(ver)
    ver.add_argument("-o", "--out", "--output", dest="output", required=True, metavar="FILE",
                     help="Verilog file to write")
    add_force_option(ver)
    ver.set_defaults(func=_verilog)
    area = sub.add_parser("area", help="Yosys synth + stat: cells, flip-flops, SRAM bits",
                          formatter_class=_FORMATTER)
    _common(area)
    area.add_argument("-v", "--verbose", action="store_true", help="print Yosys's stat report")
    area.set_defaults(func=_area)
