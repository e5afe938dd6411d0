# amaranth: UnusedElaboratable=no
"""Equivalence worth the name (issue 9 item 5): compiled RTL against the twins on thousands of
cycles per unit at full table sizes, and on the PDU/ATU streams a replay of the shared Llama-4
trace makes. Slow: each new size compiles a design (cached on disk afterwards)."""

import numpy as np
import pytest

from hwmodel.components.atu.params import ATULayout
from hwmodel.components.atu.sim import run_atu_twin, simulate_atu
from hwmodel.components.global_cp import GlobalCPTwin, build_cost_rom
from hwmodel.components.global_cp.sim import simulate_allocator, simulate_edt, simulate_predict
from hwmodel.components.local_cp.sim import run_local_cp_twin, simulate_local_cp
from hwmodel.components.pdu.sim import run_pdu_twin, simulate_pdu
from hwmodel.rtlsim import stimuli

pytestmark = pytest.mark.slow


# Each size runs thousands of cycles; one size per unit runs on the compiled RTL and the others
# on pysim (a new size costs a compile of about a minute on a fresh machine).
def _engine(compiled: bool) -> str:
    return "cxxrtl" if compiled else "pysim"


@pytest.mark.parametrize("num_dies", [24, 25, 64])
def test_atu_512_entries_equals_the_twin_for_thousands_of_cycles(num_dies):
    layout = ATULayout(entries=512, num_dies=num_dies)
    tx = stimuli.atu_transactions(np.random.default_rng(num_dies), 4000, layout)
    results, cycles = simulate_atu(tx, 512, num_dies=num_dies, back_pressure=1,
                                   engine=_engine(num_dies == 24))
    assert results == run_atu_twin(tx, 512, num_dies=num_dies)
    assert cycles >= 4000 and sum(hit for hit, _ in results) > 50


@pytest.mark.parametrize("num_experts", [128, 256, 384, 512])
def test_pdu_equals_the_twin_for_thousands_of_cycles(num_experts):
    tx = stimuli.pdu_transactions(np.random.default_rng(num_experts), 4000, num_experts)
    results, cycles = simulate_pdu(tx, num_experts, back_pressure=1,
                                   engine=_engine(num_experts == 512))
    assert results == run_pdu_twin(tx, num_experts)
    assert cycles >= 4000 and len(set(results)) >= 3


@pytest.mark.parametrize("num_experts, num_dies", [(128, 24), (256, 25), (384, 64)])
def test_edt_equals_a_reference_table_for_thousands_of_cycles(num_experts, num_dies):
    tx = stimuli.edt_transactions(np.random.default_rng(num_dies), 3000, num_experts, num_dies)
    reads, cycles = simulate_edt(tx, num_experts, num_dies=num_dies,
                                 engine=_engine(num_dies == 64))
    home, presence, expected = [0] * num_experts, [0] * num_experts, []
    for op, expert, *rest in tx:       # the EDT as a table: home and presence bits per entry
        if op == "write":
            home[expert], presence[expert] = rest
        elif op == "read":
            expected.append((home[expert], presence[expert]))
        elif op == "set_present":
            presence[expert] |= 1 << rest[0]
        else:
            presence[expert] &= ~(1 << rest[0])
    assert reads == expected and cycles >= 3000


@pytest.mark.parametrize("num_experts", [128, 256, 384])
def test_predictor_equals_the_twin_for_thousands_of_cycles(num_experts):
    groups = stimuli.predictor_groups(np.random.default_rng(num_experts), 6, num_experts)
    bitmaps, cycles = simulate_predict(groups, num_experts, engine=_engine(num_experts == 128))
    assert bitmaps == stimuli.predictor_twin_bitmaps(groups, num_experts, _rom())
    assert cycles >= sum(len(group) for group in groups) * num_experts


def _rom():
    return build_cost_rom(expert_bytes=1 << 20, hidden_dim=64, expert_ffn_dim=64,
                          matrices_per_expert=3, hbm_bandwidth_GBps=3350, hbm_latency_ns=300,
                          link_bandwidth_GBps=1741, hop_latency_ns=200, peak_TFLOPS=1000,
                          block_size=4)


def test_allocator_3x8_dies_128_experts_equals_the_twin_for_thousands_of_cycles():
    # Llama-4's shape on tsmc-sow. 5 x 5 and 8 x 8 dies with 256-384 experts take tens of
    # minutes to compile (docs/rtl.md): their equivalence stays with pysim.
    layers = stimuli.allocator_layers(np.random.default_rng(128), 6, 128, active=24,
                                      max_tokens=20)
    plans, cycles = simulate_allocator(layers, mesh_x=3, mesh_y=8, num_experts=128,
                                       costs=_rom(), block_size=4, engine="cxxrtl")
    twin = GlobalCPTwin.for_mesh(3, 8, 1, 128, _rom(), block_size=4)
    assert plans == [twin.allocate(0, counts) for counts in layers]
    assert sum(cycles) > 2000


@pytest.mark.parametrize("num_dies", [24, 64])
def test_local_cp_512_experts_equals_the_twin_for_thousands_of_cycles(num_dies):
    layers = stimuli.local_cp_layers(np.random.default_rng(num_dies), 8, 512, num_dies,
                                     tasks_per_layer=40)
    kwargs = {"die": num_dies - 1, "num_sm_slots": 4, "num_experts": 512,
              "num_dies": num_dies}
    stats, sm_tasks, cycles = simulate_local_cp(layers, engine=_engine(num_dies == 64),
                                                **kwargs)
    assert (stats, sm_tasks) == run_local_cp_twin(layers, **kwargs)
    assert cycles >= 8 * (64 + 40)


def _replay_streams(llama4_traces, iterations):
    from hwmodel.models import load_model
    from hwmodel.params import load_wafer
    from hwmodel.system import Replay, ReplayParams
    from hwmodel.system.prediction import PredictionUnits
    from hwmodel.topologies.wafer import build_wafer
    from hwmodel.traces import open_batch
    replay = Replay(wafer=build_wafer(load_wafer("tsmc-sow")),
                    model=load_model("llama4-maverick"), store=open_batch(llama4_traces),
                    params=ReplayParams(max_iterations=iterations))
    streams = replay.run("allo+pred", record_units=True).unit_streams
    page_bits = PredictionUnits(replay, replay.global_cp()).amap.layout.page_bits
    return replay, streams, page_bits


def test_replay_unit_streams_of_the_shared_trace_on_the_compiled_rtl(llama4_traces):
    """Every die's PDU and ATU transactions from an ``allo+pred`` replay of the shared Llama-4
    trace (3 x 8 dies), replayed on the compiled RTL: the twins' answers, query by query.
    (The first iterations of this trace copy no expert, so its ATU streams may be empty; the
    ATU's own streams are covered above and in tests/test_system_prediction.py.)"""
    replay, streams, page_bits = _replay_streams(llama4_traces, 8)
    pdus = sorted(key for key in streams if key[0] == "pdu")
    atus = sorted(key for key in streams if key[0] == "atu")
    assert len(pdus) == 24 and sum(len(streams[key]) for key in pdus) > 10_000
    for key in pdus:
        pdu = streams[key]
        answers = [t[2] for t in pdu if t[0] == "query"]
        rtl, _ = simulate_pdu([t[:2] if t[0] == "query" else t for t in pdu],
                              num_experts=replay.wafer.die(key[1]).pdu.experts, engine="cxxrtl")
        assert rtl == answers, key
    for die in sorted({key[1] for key in atus}):
        # one ATU per (die, layer), each starting empty: one run per die, the layers' streams
        # one after the other, separated by an invalidate_all
        tx, answers = [], []
        for key in (k for k in atus if k[1] == die):
            tx.append(("invalidate_all",))
            tx += [t[:3] if t[0] == "lookup" else t for t in streams[key]]
            answers += [t[3] for t in streams[key] if t[0] == "lookup"]
        rtl, _ = simulate_atu(tx, num_entries=replay.wafer.die(die).atu.entries,
                              num_dies=24, page_bits=page_bits, engine="cxxrtl")
        assert rtl == answers, die
