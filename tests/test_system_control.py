"""The control path's latency in the replay (hwmodel.system.control): hand-worked launch
delays on a 2-die wafer, the closed forms against the RTL, and bad input."""

import random
import subprocess
import sys

import numpy as np
import pytest

from hwmodel.components.global_cp.allocator_rtl import allocator_cycle_model
from hwmodel.components.global_cp.edt import home_dies
from hwmodel.components.global_cp.sim import simulate_predict
from hwmodel.components.local_cp.twin import LocalCPStats
from hwmodel.config import ConfigError
from hwmodel.models import load_model
from hwmodel.params import load_wafer
from hwmodel.system import Replay, ReplayParams
from hwmodel.system.control import (
    allocator_cycles,
    control_path,
    cycles_to_ns,
    predictor_cycles,
)
from hwmodel.topologies.wafer import build_wafer
from hwmodel.traces import TraceStore

#: 2 experts, top-1, one MoE layer: expert 0 lives on die 0, expert 1 on die 1.
TINY_MODEL = """model:
  name: tiny
  num_layers: 1
  moe_layers: [0]
  num_experts: 2
  top_k: 1
  hidden_dim: 64
  expert_ffn_dim: 64
  dtype_bytes: 2
  matrices_per_expert: 3
"""
#: 1 x 2 dies; the Global CP at 250 MHz (4 ns a cycle); a slow, hand-sized PCIe and host.
TINY_WAFER = """wafer:
  name: tiny
  mesh_x: 1
  mesh_y: 2
  global_cp: {clock_MHz: 250}
  host: {pcie_bandwidth_GBps: 2, pcie_latency_ns: 1000, count_bytes: 4, task_bytes: 8,
         allocator_ns_per_layer: 100, allocator_ns_per_expert: 10}
"""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(wafer, model, store): two requests, prompts [0, 0] and [1, 1], one decode token each
    (experts 0 and 1): counts [2, 2] at the prefill and [1, 1] at the decode step."""
    root = tmp_path_factory.mktemp("tiny")
    (root / "model.yaml").write_text(TINY_MODEL)
    (root / "wafer.yaml").write_text(TINY_WAFER)
    model = load_model(root / "model.yaml")
    wafer = build_wafer(load_wafer(root / "wafer.yaml"))
    rows = [0, 0, 0, 1, 1, 1]
    store = TraceStore(model="tiny", num_layers=1, moe_layers=(0,), top_k=1, num_experts=2,
                       request_ids=["r0", "r1"], source_paths=["", ""], prefill_len=[2, 2],
                       decode_len=[1, 1], token_offset=np.array([0, 3, 6]),
                       ids=np.array(rows, np.uint8).reshape(6, 1, 1))
    return wafer, model, store


def _delays(tiny, strategy, control):
    """Per layer: launch delay (start - previous end) and the layer's own span."""
    wafer, model, store = tiny
    result = Replay(wafer=wafer, model=model, store=store,
                    params=ReplayParams(control=control, max_iterations=2)).run(strategy)
    ends = [0] + [layer["end_ns"] for layer in result.per_layer]
    layers = result.per_layer
    if strategy.startswith("allo"):     # Algorithm 1 keeps both experts at home
        assert [layer["remote_tasks"] for layer in layers] == [0, 0]
    delays = [layer["start_ns"] - end for layer, end in zip(layers, ends)]
    spans = [layer["end_ns"] - layer["start_ns"] for layer in layers]
    return delays, spans, result


# Hand-worked allocator cycles (allocator_cycle_model's docstring) for two active experts of
# one block each on two neighbouring dies: A = 2, passes = 1, rows = 2; per expert n = 2
# candidates (home + the neighbour), split = tokens // 512 = 0, keep = min(max(5, 0), 2) = 2,
# 1 block: 2 + max(2, 0) + 1 x (2 + 1) + 2 = 9. Total 2 + 1 x 3 + 1 + 2 + 2 x 9 = 26, plus one
# cycle of EDT read latency, plus 2 command cycles per task: 31 cycles.
ALLOC_CYCLES = 26 + 1 + 2 * 2
NS_PER_CYCLE = 4            # 250 MHz


def test_global_cp_allo_delay_by_hand(tiny):
    delays, spans, result = _delays(tiny, "allo", "global-cp")
    assert delays == [ALLOC_CYCLES * NS_PER_CYCLE] * 2          # 124 ns before each layer
    for stage in ("prefill", "decode"):
        assert result.counts[f"cp_{stage}_allocator_cycles"] == 27
        assert result.counts[f"cp_{stage}_command_cycles"] == 4
        assert result.counts[f"control_{stage}_delay_ns"] == 124
    free_delays, free_spans, _ = _delays(tiny, "allo", "free")
    assert free_delays == [0, 0]
    assert spans == free_spans                                   # the layer itself unchanged


def test_global_cp_allo_pred_delay_by_hand(tiny):
    """Prediction adds the EDT scan for is_local (E + 1 = 3 cycles) at the prefill and the
    predictor in decode (2 rows x (E + 1) + 2 dies = 8 cycles), then one 64-bit word of PDU
    bits (2 x E = 4 bits) per die with tasks (2 dies); no copies yet, so no reports."""
    delays, _, _ = _delays(tiny, "allo+pred", "global-cp")
    assert delays == [(ALLOC_CYCLES + 3 + 2) * NS_PER_CYCLE,
                      (ALLOC_CYCLES + 8 + 2) * NS_PER_CYCLE]


def test_host_cpu_delay_by_hand(tiny):
    """2 x 1000 ns latency; up: 2 EDT entries of 1 byte (1 home bit + 2 presence bits) and
    2 counts of 4 bytes = 10 bytes; down: 2 tasks x 8 bytes = 16 bytes; 26 bytes / 2 B/ns =
    13 ns; host 100 + 2 x 10 ns; then the Global CP sends the 2 tasks (4 cycles = 16 ns)."""
    delays, _, _ = _delays(tiny, "allo", "host-cpu")
    assert delays == [2000 + 13 + 120 + 16] * 2


def test_copy_reports_are_paid_at_the_next_launch(tiny):
    """pred (no allocation on the CP): the Local CP of die 1 reports a copy of expert 0,
    that of die 0 one of expert 1: 2 copied (die, expert) pairs, 2 SET_PRESENT cycles each;
    then the prefill launch pays the EDT scan (E + 1 = 3) and one PDU word per die with tasks (2): 9 cycles,
    36 ns at 250 MHz; the reports are paid once."""
    path = control_path("global-cp", tiny[0], np.array([0, 1]), allocates=False, predicts=True,
                        params=ReplayParams())
    path.reported([LocalCPStats(die=0, tasks=1, tokens=1, remote_tasks=1, duplications=1,
                                duplicated_experts=(1,)),
                   LocalCPStats(die=1, tasks=1, tokens=3, remote_tasks=1, duplications=1,
                                duplicated_experts=(0,))])
    presence = np.eye(2, dtype=bool)
    launch = {"counts": np.array([1, 1]), "task_e": np.array([0, 1]),
              "task_d": np.array([1, 0]), "presence": presence, "decode": False}
    assert path.launch_ns(**launch) == (4 + 3 + 2) * NS_PER_CYCLE
    assert path.launch_ns(**launch) == (3 + 2) * NS_PER_CYCLE


def test_strategies_without_global_cp_never_pay(tiny):
    for control in ("global-cp", "host-cpu"):
        for strategy in ("base", "ep"):
            assert _delays(tiny, strategy, control)[0] == [0, 0]


def test_free_is_the_default_byte_for_byte(tiny):
    wafer, model, store = tiny
    runs = [Replay(wafer=wafer, model=model, store=store, params=params).run("allo+pred")
            for params in (ReplayParams(), ReplayParams(control="free"))]
    a, b = (r.to_json() for r in runs)
    a.pop("wall_s"), b.pop("wall_s")
    assert a == b


def test_cycles_to_ns_is_exact():
    assert cycles_to_ns(3, 1500) == 2            # 3 cycles of 2/3 ns, not 2.0000000001
    assert cycles_to_ns(4, 1500) == 3            # 2.67 ns rounds up
    assert cycles_to_ns(31, 250) == 124


def test_predictor_closed_form_equals_rtl():
    """rows x (E + 1) + groups cycles: the TopNPredictor's pysim count."""
    rng = random.Random(9)
    for num_experts, group_rows in [(4, [1]), (6, [3, 1, 2]), (8, [2, 2, 1, 1])]:
        groups = [[[rng.randrange(6) for _ in range(num_experts)] for _ in range(rows)]
                  for rows in group_rows]
        _, cycles = simulate_predict(groups, num_experts)
        assert cycles == predictor_cycles(sum(group_rows), len(group_rows), num_experts)


@pytest.mark.parametrize("seed", range(4))
def test_vectorised_allocator_cycles_equal_the_model(seed):
    """The replay's vectorised form equals allocator_cycle_model (proven equal to pysim) on
    random layers: replicas off home, large and small counts, several meshes."""
    rng = np.random.default_rng(seed)
    mesh_x, mesh_y = [(1, 2), (3, 3), (2, 5), (5, 5)][seed]
    dies, experts = mesh_x * mesh_y, int(rng.integers(2, 40))
    counts = rng.integers(0, 3000, experts) * (rng.random(experts) < 0.7)
    presence = rng.random((experts, dies)) < 0.15
    home = home_dies(experts, dies)         # the model's own placement
    presence[np.arange(experts), home] = True
    bitmaps = [int(sum(1 << int(d) for d in np.flatnonzero(row))) for row in presence]
    rows = int(rng.integers(1, 60))
    kwargs = {"block_size": 512, "candidate_distance": 1, "min_candidates": 5}
    expected = allocator_cycle_model(counts, [None] * rows, mesh_x=mesh_x, mesh_y=mesh_y,
                                     presence=bitmaps, **kwargs)
    assert allocator_cycles(counts, rows, home=home, presence=presence, mesh_y=mesh_y,
                            **kwargs) == expected


def test_bad_control_is_a_config_error():
    with pytest.raises(ConfigError, match="control.*'free', 'global-cp'|control.*free"):
        ReplayParams(control="gpu")


def test_bad_host_value_names_its_yaml_path(tmp_path):
    path = tmp_path / "w.yaml"
    path.write_text("wafer: {mesh_x: 1, mesh_y: 2, host: {pcie_bandwidth_GBps: 0}}\n")
    with pytest.raises(ConfigError, match="host.pcie_bandwidth_GBps"):
        load_wafer(path)


def test_cli_rejects_a_bad_control_in_one_line():
    run = subprocess.run([sys.executable, "-m", "hwmodel", "replay", "--control", "gpu"],
                         check=False, capture_output=True, text=True)
    assert run.returncode == 2
    assert run.stdout == ""
    assert len(run.stderr.strip().splitlines()) == 1 and "gpu" in run.stderr


def test_cli_control_adds_the_hand_worked_delay(tiny, tmp_path):
    """hwmodel replay --control global-cp: the decode time read back from the CSV row's
    throughput (2 requests x 128 tokens / decode) grows by one launch delay (124 ns: the
    decode step's single MoE layer) over --control free."""
    store = tiny[2]
    (tmp_path / "model.yaml").write_text(TINY_MODEL)
    (tmp_path / "wafer.yaml").write_text(TINY_WAFER)
    store.save(tmp_path / "tiny.store")
    decode_ns = {}
    for control in ("free", "global-cp"):
        run = subprocess.run(
            [sys.executable, "-m", "hwmodel", "replay", "--trace", str(tmp_path / "tiny.store"),
             "--model", str(tmp_path / "model.yaml"), "--wafer", str(tmp_path / "wafer.yaml"),
             "--strategy", "allo", "--control", control, "--quiet", "--jobs", "1"],
            check=False, capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        throughput = float(run.stdout.strip().splitlines()[-1].split(",")[-1])
        decode_ns[control] = 2 * 128 / throughput * 1e9
    assert decode_ns["global-cp"] - decode_ns["free"] == pytest.approx(124, abs=1e-3)


def test_prediction_sends_one_pdu_command_group_per_die_with_tasks(tiny):
    """Three tasks on two dies (die 0 runs both experts): the Global CP sends each die with
    tasks its 2 x E = 4 PDU bits in one 64-bit word, 2 words in all (not one per task); the
    decode predictor takes 3 rows x (E + 1) + 2 dies = 11 cycles. 13 cycles of 4 ns."""
    wafer = tiny[0]
    path = control_path("global-cp", wafer, np.array([0, 1]), allocates=False, predicts=True,
                        params=ReplayParams())
    delay = path.launch_ns(np.array([1, 2]), np.array([0, 1, 1]), np.array([0, 0, 1]),
                           np.eye(2, dtype=bool), decode=True)
    assert path.totals["cp_decode_command_cycles"] == 2
    assert path.totals["cp_decode_predictor_cycles"] == 11
    assert delay == 13 * NS_PER_CYCLE
