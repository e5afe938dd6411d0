"""The wafer graph is the replay's input: every die's and link's own parameters reach the
numbers, and only where they are used (issue: one wafer, one truth). Hand-worked LLC-hit cases
at system level, per-die and per-link overrides, faults."""

import json
import math

import attrs
import numpy as np
import pytest
from test_system_replay import _tiny_store

from hwmodel.config import ConfigError, from_dict
from hwmodel.models import load_model
from hwmodel.params import WaferParams, load_wafer
from hwmodel.system import Replay, ReplayParams
from hwmodel.system.lowering import lower
from hwmodel.system.prediction import PredictionUnits
from hwmodel.topologies.wafer import build_wafer

LLAMA = load_model("llama4-maverick")
# one token of Llama-4 on one weight matrix: ceil(2 x 5120 x 8192 / (1e6 x 0.65)) ns
COMPUTE_ONE_TOKEN = -(-(2 * 5120 * 8192) // 650_000)


def _wafer(preset="tsmc-sow", **overrides):
    """A preset with per-die/per-link overrides or faults laid over it."""
    base = load_wafer(preset)
    fields = {k: v for k, v in overrides.items()}
    return build_wafer(attrs.evolve(base, **fields))


def _run(wafer, store, strategy, iterations=2):
    result = Replay(wafer=wafer, model=LLAMA, store=store,
                    params=ReplayParams(max_iterations=iterations)).run(strategy)
    out = result.to_json()
    out.pop("wall_s")
    return result, json.dumps(out, sort_keys=True)


# one set of 128 ways: every MoE layer's 3 slices of expert 0 share set 0 (set = expert mod
# sets), so 24 x 3 lines must fit for a line to survive until the next iteration
BIG_LLC = {"llc": {"associativity": 128, "capacity_bytes": 16 * 2**30}}


def test_local_llc_hits_by_hand():
    """ep, one request choosing expert 0 at its one prompt token and its one decode step; die
    0's LLC holds all 24 layers' 3 slices (one set of 128 ways). At the
    decode step each MoE layer is 3 hits serialised on the LLC port (100 ns each) with the
    computes behind them: 100 + 3 x compute."""
    wafer = _wafer(dies={"die_0_0": BIG_LLC})
    result, _ = _run(wafer, _tiny_store([([0], [0])]), "ep")
    decode = [layer for layer in result.per_layer if layer["iteration"] == 1]
    assert len(decode) == 24
    assert {layer["end_ns"] - layer["start_ns"] for layer in decode} == {
        100 + 3 * COMPUTE_ONE_TOKEN}
    assert result.counts["local_llc_hits"] == 3 * 24
    assert result.counts["local_hbm_reads"] == 3 * 24       # the prefill's misses


def test_remote_llc_hits_by_hand_and_their_latency_is_the_home_dies():
    """base runs expert 0 (home die 0) on die 7, 7 hops away. The prefill reads die 0's HBM
    and fills its LLC; the decode step reads die 0's LLC: 3 remote hits per layer. With die
    0's hit latency H = 100 us the three hits, serialised on die 0's LLC port, are the
    critical path of a decode layer: lookup miss (110) + request (7 x 200 + ceil(16 / 1566.9))
    + 3 H + data (7 x 200 + ceil(slice / 1566.9)) + compute. Prefill layers do not change."""
    hit_ns = 100_000
    slow_llc = {"llc": {**BIG_LLC["llc"], "hit_latency_ns": float(hit_ns)}}
    store = _tiny_store([([0], [0])])
    fast, _ = _run(_wafer(dies={"die_0_0": BIG_LLC}), store, "base")
    slow, _ = _run(_wafer(dies={"die_0_0": slow_llc}), store, "base")
    assert slow.counts["remote_llc_hits"] == 3 * 24
    assert slow.counts["remote_hbm_reads"] == 3 * 24
    data_ns = 7 * 200 + -(-(LLAMA.expert_bytes // 3) // (1741 * 0.9))
    expected = 110 + (7 * 200 + 1) + 3 * hit_ns + data_ns + COMPUTE_ONE_TOKEN
    for la, lb in zip(fast.per_layer, slow.per_layer):
        duration = lb["end_ns"] - lb["start_ns"]
        if la["iteration"] == 1:
            assert duration == expected
        else:
            assert duration == la["end_ns"] - la["start_ns"]


@pytest.mark.parametrize("part, value", [
    ("hbm", {"bandwidth_GBps": 100.0}),
    ("hbm", {"latency_ns": 5000.0}),
    ("compute", {"peak_TFLOPS": 10.0}),
    ("llc", {"miss_penalty_ns": 9000.0}),
])
def test_a_die_changes_the_result_iff_it_works(part, value):
    """ep on experts 0 and 10 (homes die 0 and die 2 of tsmc-sow): changing die 2 changes
    the result; changing die 5 (idle) leaves every output byte-identical."""
    store = _tiny_store([([0, 10], [10])])
    _, uniform = _run(_wafer(), store, "ep")
    _, busy = _run(_wafer(dies={"die_0_2": {part: value}}), store, "ep")
    _, idle = _run(_wafer(dies={"die_0_5": {part: value}}), store, "ep")
    assert busy != uniform
    assert idle == uniform


def test_a_link_changes_base_iff_a_route_uses_it():
    """base runs expert 0 (home 0) on die 7 = (0, 7): requests go 7 -> 0 and data 0 -> 7 along
    y over links 0-1 ... 6-7. link_3_4 is on that route, link_8_9 is not."""
    store = _tiny_store([([0], [0])])
    _, uniform = _run(_wafer(), store, "base")
    _, on_route = _run(_wafer(links={"link_3_4": {"hop_latency_ns": 10_000.0}}), store, "base")
    _, off_route = _run(_wafer(links={"link_8_9": {"hop_latency_ns": 10_000.0}}), store, "base")
    assert on_route != uniform
    assert off_route == uniform


def test_dies_overridden_with_default_values_give_identical_outputs():
    nominal = {"hbm": {"bandwidth_GBps": 3350.0}, "compute": {"peak_TFLOPS": 1000.0}}
    every_die = {f"die_{x}_{y}": nominal for x in range(3) for y in range(8)}
    every_link = {f"link_{a}_{b}": {"hop_latency_ns": 200.0}
                  for a, b in build_wafer(load_wafer("tsmc-sow")).mesh.links}
    store = _tiny_store([([0, 10, 77], [5, 6]), ([3], [3, 127])])
    for strategy in ("base", "allo+pred"):
        _, uniform = _run(_wafer(), store, strategy, iterations=3)
        _, spelled = _run(_wafer(dies=every_die, links=every_link), store, strategy,
                          iterations=3)
        assert spelled == uniform, strategy


def test_route_latency_uses_each_links_own_parameters():
    """Route 7 -> 0 on tsmc-sow crosses 7 links; with link_3_4 at 1000 ns and 100 B/ns, a
    request costs 6 x 200 + 1000 + ceil(16 / (100 x 0.9)) and a slice 6 x 200 + 1000 +
    ceil(slice / 90): the slowest link sets the rate."""
    wafer = _wafer(links={"link_3_4": {"hop_latency_ns": 1000.0, "bandwidth_GBps": 100.0}})
    tables = lower(wafer, LLAMA, max_tokens=2)
    slice_bytes = LLAMA.expert_bytes / 3
    assert tables.route_len[7, 0] == 7
    assert tables.request_ns[7, 0] == 6 * 200 + 1000 + 1
    assert tables.data_ns[0, 7] == 6 * 200 + 1000 + -(-slice_bytes // 90)
    assert tables.data_ns[0, 2] == 2 * 200 + -(-slice_bytes // (1741 * 0.9))  # off the slow link


def test_a_request_message_has_the_size_of_its_sending_die():
    """die_0_7 sends 15,670-byte requests (ceil(15,670 / (1741 x 0.9)) = 11 ns of payload),
    every other die the preset's 16 bytes (1 ns). Between dies 7 and 0 (7 hops along y): 7 ->
    0 pays 1400 + 11, 0 -> 7 pays 1400 + 1, and a slice costs the same both ways."""
    wafer = _wafer(dies={"die_0_7": {"d2d": {"request_bytes": 15_670}}})
    tables = lower(wafer, LLAMA, max_tokens=1)
    assert tables.request_bytes[7] == 15_670 and tables.request_bytes[0] == 16
    assert tables.request_ns[7, 0] == 7 * 200 + 11
    assert tables.request_ns[0, 7] == 7 * 200 + 1
    assert tables.request_ns[7, 6] == 200 + 11 and tables.request_ns[6, 7] == 200 + 1
    assert tables.data_ns[7, 0] == tables.data_ns[0, 7]


# --------------------------------------------------------------------------- HBM efficiency
# one Llama-4 slice: 5120 x 8192 x 2 B = 83,886,080 B; HBM latency 300 ns, peak 3350 B/ns
def _slice_ns(efficiency):
    return 300 + math.ceil(83_886_080 / (3350.0 * efficiency))


def test_an_hbm_efficiency_override_means_what_it_says():
    """Llama-4's preset runs dies at 0.85; a die set to 0.9 (the wafer's nominal value) runs at
    0.9, one set to 0.89 at 0.89 (slower than 0.9), an untouched die at the model's 0.85."""
    wafer = _wafer(dies={"die_0_2": {"hbm": {"efficiency": 0.9}},
                         "die_0_3": {"hbm": {"efficiency": 0.89}}})
    replay = Replay(wafer=wafer, model=LLAMA, store=_tiny_store([([0], [0])]))
    hbm = replay.tables.hbm_slice_ns
    assert (hbm[2], hbm[3], hbm[5]) == (_slice_ns(0.9), _slice_ns(0.89), _slice_ns(0.85))
    assert hbm[3] > hbm[2] > 0 and hbm[5] > hbm[3]


def test_the_replays_hbm_efficiency_replaces_the_models_but_not_a_dies_own():
    wafer = _wafer(dies={"die_0_2": {"hbm": {"efficiency": 0.9}}})
    params = ReplayParams(hbm_efficiency=0.5)
    replay = Replay(wafer=wafer, model=LLAMA, store=_tiny_store([([0], [0])]), params=params)
    assert replay.tables.hbm_slice_ns[2] == _slice_ns(0.9)
    assert replay.tables.hbm_slice_ns[0] == _slice_ns(0.5)


def test_a_dies_own_hbm_efficiency_survives_the_parameter_dump(tmp_path):
    """The dump of the graph rebuilds the same replay: die_0_2's own 0.9, equal to the nominal
    value, is written out, so it still runs at 0.9 and not at the model's 0.85."""
    wafer = _wafer(dies={"die_0_2": {"hbm": {"efficiency": 0.9}}})
    wafer.dump_params(tmp_path / "w.yaml")
    again = build_wafer(load_wafer(tmp_path / "w.yaml"))
    store = _tiny_store([([0], [0])])
    tables = Replay(wafer=again, model=LLAMA, store=store).tables
    assert (tables.hbm_slice_ns[2], tables.hbm_slice_ns[5]) == (_slice_ns(0.9), _slice_ns(0.85))
    assert again.graph_params() == wafer.graph_params()


def test_a_model_without_an_hbm_efficiency_keeps_the_wafers():
    """The model's contribution lives in its preset: without one, every die keeps its own."""
    plain = attrs.evolve(LLAMA, hbm_efficiency=None)
    tables = lower(_wafer(), plain, max_tokens=1, hbm_efficiency=plain.hbm_efficiency)
    assert set(tables.hbm_slice_ns.tolist()) == {_slice_ns(0.9)}
    assert LLAMA.hbm_efficiency == 0.85   # SPEC section 3: the artefact's Llama-4 value


# --------------------------------------------------------------------------- faults
def test_base_never_uses_a_dead_die_and_routes_around_it():
    """dead die_0_7 on tsmc-sow: base's round robin skips it (no bytes, no work), homes
    spread over the 23 live dies, and no route passes through it."""
    wafer = _wafer(dead_dies=("die_0_7",))
    store = _tiny_store([([0, 1, 2, 3, 4, 5, 6, 7, 8], [9])])
    result, _ = _run(wafer, store, "base")
    dead = wafer.mesh.die_id(0, 7)
    assert result.per_die["local_read_bytes"][dead] == 0
    assert result.per_die["remote_read_served_bytes"][dead] == 0
    assert result.per_die["byte_hops_sent"][dead] == 0
    tables = lower(wafer, LLAMA, max_tokens=2)
    assert dead not in tables.home
    dead_links = {i for i, (a, b) in enumerate(wafer.mesh.links) if dead in (a, b)}
    assert not dead_links & set(tables.route_flat.tolist())
    assert all(result.per_link[i]["bytes"] == 0 for i in dead_links)


def test_a_dead_link_keeps_xy_elsewhere_and_detours_where_needed():
    wafer = _wafer(dead_links=("link_3_4",))
    uniform = build_wafer(load_wafer("tsmc-sow"))
    mesh = wafer.mesh
    detoured = 0
    for s in range(mesh.num_dies):
        for d in range(mesh.num_dies):
            route = mesh.route_links(s, d)
            if mesh.link_index(3, 4) in uniform.mesh.route_links(s, d):
                detoured += 1
                assert mesh.link_index(3, 4) not in route
            else:
                assert route == uniform.mesh.route_links(s, d)
    assert detoured > 0


@pytest.mark.parametrize("strategy", ["ep", "allo", "pred", "allo+pred"])
def test_no_strategy_uses_a_dead_die(strategy):
    """die_1_3 (id 11) is dead and is the home of experts 55-59 on a healthy tsmc-sow; with it
    dead, homes spread over 23 dies and no task, read, copy or message touches it."""
    wafer = _wafer(dead_dies=("die_1_3",))
    experts = list(range(40, 80))
    store = _tiny_store([(experts, experts[::-1]), (experts[::2], experts[1::2])])
    result, _ = _run(wafer, store, strategy, iterations=3)
    dead = wafer.mesh.die_id(1, 3)
    for column in ("local_read_bytes", "remote_read_served_bytes", "replica_write_bytes",
                   "byte_hops_sent"):
        assert result.per_die[column][dead] == 0, column
    assert result.per_die["replicas_held"][dead] == 0
    assert sum(result.per_die["local_read_bytes"]) > 0
    dead_links = [i for i, (a, b) in enumerate(wafer.mesh.links) if dead in (a, b)]
    assert all(result.per_link[i]["bytes"] == 0 for i in dead_links)


@pytest.mark.parametrize(("fault", "mark", "crossing"), [
    ({"dead_links": ("link_3_4",)}, lambda wafer: setattr(wafer.link(3, 4), "alive", False),
     (7, 0)),
    ({"dead_dies": ("die_1_3",)}, lambda wafer: setattr(wafer.die("die_1_3"), "alive", False),
     (3, 19))])
def test_a_fault_marked_on_the_built_graph_changes_routes_and_result(fault, mark, crossing):
    """The graph is the one source of liveness: a link or die marked dead on the built wafer
    gives the routes, tables and result of the same fault given in the parameters, and not
    the healthy wafer's. ``crossing``: a pair whose XY route uses the fault (base runs expert
    0, home die 0, on die 7, so its bytes go 0 -> 7 over link 3-4; die 11 = (1, 3) lies on
    the XY route (0, 3) -> (2, 3))."""
    store = _tiny_store([([0, 55, 56], [0])])
    marked = _wafer()
    mark(marked)
    from_params = _wafer(**fault)
    healthy = _wafer()
    for s, d in (crossing, (2, 12), (0, 23)):
        assert marked.mesh.route_links(s, d) == from_params.mesh.route_links(s, d)
    assert marked.mesh.route_links(*crossing) != healthy.mesh.route_links(*crossing)
    tables = lower(marked, LLAMA, max_tokens=2)
    expected = lower(from_params, LLAMA, max_tokens=2)
    for name, table in zip(tables._fields, tables):
        assert np.array_equal(table, getattr(expected, name)), name
    _, marked_json = _run(marked, store, "base")
    _, params_json = _run(from_params, store, "base")
    _, healthy_json = _run(healthy, store, "base")
    assert marked_json == params_json
    assert marked_json != healthy_json


def test_a_graph_fault_that_cuts_a_die_off_is_refused_naming_it():
    """die_0_0 of tsmc-sow has two links (to die 1 and die 8): both dead on the graph leave
    it alive but unreachable, which the lowering refuses instead of routing nothing."""
    wafer = _wafer()
    wafer.link(0, 1).alive = False
    wafer.link(0, 8).alive = False
    with pytest.raises(ConfigError, match="no live route from die_0_0 to die_0_1"):
        lower(wafer, LLAMA, max_tokens=2)


def test_wafer_from_dict_with_faults_builds():
    params = from_dict(WaferParams, {"mesh_x": 2, "mesh_y": 2, "dead_links": ["link_0_1"]})
    wafer = build_wafer(params)
    assert wafer.mesh.route(0, 1) == [0, 2, 3, 1]
    assert np.array_equal(wafer.mesh.link_alive, [False, True, True, True])


def test_unit_sizes_come_from_the_graph_and_must_hold_the_model():
    """Llama-4 has 128 experts per layer: a die whose ATU holds 64 entries cannot run it (the
    error names that die's YAML path); the PDU twins take the graph's size (512 experts: 64
    16-bit registers)."""
    store = _tiny_store([([0], [])])
    small = _wafer(dies={"die_2_3": {"atu_entries": 64}})
    with pytest.raises(ConfigError, match=r"^wafer\.dies\.die_2_3\.atu_entries: 64 is too "
                                          r"small: a model of 128 experts per layer needs at "
                                          r"least 128$"):
        Replay(wafer=small, model=LLAMA, store=store)
    replay = Replay(wafer=_wafer(), model=LLAMA, store=store)
    units = PredictionUnits(replay, replay.global_cp())
    assert {pdu.num_words for pdu in units.pdus} == {512 // 8}


# ------------------------------------------------------------------ Algorithm 1's costs
def _global_cp(**overrides):
    return Replay(wafer=_wafer(**overrides), model=LLAMA,
                  store=_tiny_store([([0], [])])).global_cp()


def test_allocator_costs_read_each_dies_hbm_and_each_routes_links_by_hand():
    """Closed forms of the planner (units of 2**-8 ns): hbm_read = latency + bytes / (bw x 0.9);
    a transfer = 2 x hop latency per link + bytes / (slowest bandwidth x 0.9)."""
    nominal = load_wafer("tsmc-sow").die
    B = LLAMA.expert_bytes
    gcp = _global_cp(dies={"die_0_2": {"hbm": {"bandwidth_GBps": 1000.0}}},
                     links={"link_0_1": {"hop_latency_ns": 1000.0, "bandwidth_GBps": 500.0}})
    costs = gcp.wafer_costs
    assert costs.hbm_read[2] == round((nominal.hbm.latency_ns + B / (1000 * 0.9)) * 256)
    assert costs.hbm_read[5] == round((nominal.hbm.latency_ns
                                       + B / (nominal.hbm.bandwidth_GBps * 0.9)) * 256)
    # die 0 -> die 2 is (0,0) -> (0,1) -> (0,2): the slow link 0-1, then a nominal one
    hop = nominal.d2d.hop_latency_ns
    assert costs.transfer[0, 2] == ((2 * 1000 * 256) + round(2 * hop * 256)
                                    + round(B / (500 * 0.9) * 256))
    # die 1 -> die 2 avoids it: the uniform ROM's transfer over one hop
    assert costs.transfer[1, 2] == gcp.costs.transfer(1)
    assert not gcp.one_rom and _global_cp().one_rom


def test_algorithm1_moves_work_off_a_die_with_weaker_compute():
    """Expert 10 (home die 2) with 4096 tokens: on the uniform wafer die 3, a neighbour, takes
    two blocks; with 1% of the compute it takes none."""
    counts = np.zeros(LLAMA.num_experts, np.int64)
    counts[10] = 4096

    def tokens_on(gcp, die):
        return sum(t for e, d, t in gcp.allocate(0, counts) if d == die)
    assert tokens_on(_global_cp(), 3) == 1024
    assert tokens_on(_global_cp(dies={"die_0_3": {"compute": {"peak_TFLOPS": 10.0}}}), 3) == 0


def test_the_allocator_rtl_refuses_a_wafer_its_one_rom_cannot_hold():
    from hwmodel.system.cosim import CoSim, parse_window
    replay = Replay(wafer=_wafer(dies={"die_0_3": {"compute": {"peak_TFLOPS": 10.0}}}),
                    model=LLAMA, store=_tiny_store([([0], [1])]))
    with pytest.raises(ValueError, match="loads one cost ROM"):
        replay.run("allo", cosim=CoSim(("allocator",), parse_window("it=0")))


def test_a_graph_fault_reaches_the_pool_workers():
    """A wafer killed on the graph and handed to replay_strategies: the jobs sent to worker
    processes carry the graph's liveness, so two processes give the in-process results, which
    are those of the same fault in the parameters."""
    from hwmodel.cli.replay import replay_strategies
    marked = _wafer()
    marked.link(3, 4).alive = False
    runs = {"trace": None, "strategies": ["base", "ep"], "batch": 1,
            "model": "llama4-maverick", "params": ReplayParams(max_iterations=2)}
    pooled = replay_strategies(wafers={"w": marked}, jobs=2, **runs)
    local = replay_strategies(wafers={"w": marked}, jobs=1, **runs)
    from_params = replay_strategies(wafers={"w": _wafer(dead_links=("link_3_4",))}, **runs)
    healthy = replay_strategies(wafers={"w": _wafer()}, **runs)
    rows = [[r.row() for r in results] for results in (pooled, local, from_params, healthy)]
    assert rows[0] == rows[1] == rows[2] != rows[3]
