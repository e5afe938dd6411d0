"""The wafer graph built from the presets: dies, units, ports, D2D and command links."""

import re

import attrs
import pytest

from hwmodel.components.atu.node import ATUUnit
from hwmodel.components.d2d import D2DLink
from hwmodel.components.global_cp.node import GlobalCPUnit
from hwmodel.components.pdu.node import PDUUnit
from hwmodel.config import ConfigError
from hwmodel.params import WAFER_PRESETS, D2DParams, DieParams, WaferParams, load_wafer
from hwmodel.topologies.wafer import build_wafer, wafer_from


@pytest.mark.parametrize(("preset", "dies", "links"), [("tsmc-sow", 24, 37), ("dojo", 25, 40),
                                                       ("dojo-enhanced", 25, 40)])
def test_presets_build_the_spec_meshes(preset, dies, links):
    wafer = wafer_from(preset)
    assert len(wafer.dies) == dies and len(wafer.links) == links
    assert [d.name for d in wafer.dies] == [wafer.mesh.die_name(i) for i in range(dies)]
    assert [link.dies for link in wafer.links] == list(wafer.mesh.links)
    assert [link.index for link in wafer.links] == list(range(links))
    assert len(wafer.command_links) == dies


def test_table_one_values_reach_the_units():
    sow = wafer_from("tsmc-sow")
    enhanced = wafer_from("dojo-enhanced")
    die = sow.die("die_2_7")
    assert die.die_id == 23 and (die.x, die.y) == (2, 7)
    assert die.hbm.params.bandwidth_GBps == 3350.0
    assert die.hbm.params.capacity_bytes == 80 * 10**9
    assert die.compute.params.peak_TFLOPS == 1000.0
    assert die.llc.params.capacity_bytes == 64 * 2**20 and die.llc.params.associativity == 2
    assert sow.links[0].latency_ns == 200.0 and sow.links[0].bandwidth_GBps == 1741.0
    e = enhanced.die(0)
    assert (e.hbm.params.bandwidth_GBps, e.d2d.params.bandwidth_GBps) == (8000.0, 2000.0)
    assert e.hbm.params.capacity_bytes == 180 * 10**9 and e.compute.params.peak_TFLOPS == 4500.0
    assert enhanced.links[5].bandwidth_GBps == 2000.0


def test_added_units_have_table_two_sizes():
    wafer = wafer_from("dojo")
    die = wafer.die((2, 3))
    assert isinstance(die.atu, ATUUnit) and die.atu.parent is die.d2d
    assert die.atu.size_bytes == 4352            # 512 x 68 bits = 4.25 KB
    assert isinstance(die.pdu, PDUUnit) and die.pdu.parent is die.d2d
    assert die.pdu.size_bytes == 128 and die.pdu.registers == 64   # 512 x 2 bits, 16-bit regs
    cp = wafer.global_cp
    assert isinstance(cp, GlobalCPUnit) and cp.parent is wafer
    # 25 dies: 5-bit home + 25-bit presence bitmap, stored in 32 bits: 512 x 4 B
    assert cp.edt_bytes == 2048
    # 64 dies: 6 + 64 bits stored in 72, the paper's 4.5 KB table
    assert build_wafer(WaferParams(mesh_x=8, mesh_y=8)).global_cp.edt_bytes == 4608
    assert cp.heatmap_bytes == 50 * 2**20        # 100 x 512 x 512 x 16 bits
    assert cp.heatmap_cache_bytes == 2**19       # one layer: 0.5 MB
    assert die.local_cp.num_sms == 132


def test_die_units_and_router_ports_follow_the_mesh():
    wafer = wafer_from("tsmc-sow")
    corner, edge, inner = wafer.die(0), wafer.die((0, 3)), wafer.die((1, 3))
    kinds = [c.kind for c in corner.flatten()]
    assert kinds == ["die", "compute", "llc", "hbm", "d2d_controller", "atu", "pdu", "local_cp"]
    routers = {d: [p for p, port in d.ports.items() if port.kind == "d2d"]
               for d in (corner, edge, inner)}
    assert routers[corner] == ["x_plus", "y_plus"]
    assert routers[edge] == ["x_plus", "y_minus", "y_plus"]
    assert routers[inner] == ["x_minus", "x_plus", "y_minus", "y_plus"]
    assert {d.name for d in inner.neighbours("d2d")} == {"die_0_3", "die_2_3", "die_1_2",
                                                         "die_1_4"}
    assert inner.neighbours("cmd") == [wafer.global_cp]
    assert wafer.lookup("wafer.die_1_3.d2d.atu") is inner.atu


def test_route_links_are_the_graph_links_between_route_dies():
    wafer = wafer_from("tsmc-sow")
    route = wafer.route(0, 23)
    links = wafer.route_links(0, 23)
    assert [d.name for d in route] == ["die_0_0", "die_1_0", "die_2_0"] + \
        [f"die_2_{y}" for y in range(1, 8)]
    assert links == wafer.path_links(route)
    assert all(isinstance(link, D2DLink) for link in links)
    assert len(links) == wafer.hop_count(0, 23) == 9
    assert wafer.link(9, 1) is wafer.links[wafer.mesh.link_index(1, 9)]


def test_graph_params_read_back_equal_the_input():
    for preset in WAFER_PRESETS:
        params = load_wafer(preset)
        assert build_wafer(params).graph_params() == params


def test_custom_die_params_reach_links():
    params = WaferParams(mesh_x=2, mesh_y=1,
                         die=DieParams(d2d=D2DParams(hop_latency_ns=50.0, bandwidth_GBps=9.5)))
    wafer = build_wafer(params)
    assert len(wafer.links) == 1 and wafer.links[0].name == "link_0_1"
    assert (wafer.links[0].latency_ns, wafer.links[0].bandwidth_GBps) == (50.0, 9.5)
    assert wafer.links[0].a.path == "wafer.die_0_0.x_plus"
    assert wafer.links[0].b.path == "wafer.die_1_0.x_minus"


def test_single_die_wafer_has_no_router_ports():
    wafer = build_wafer(WaferParams(mesh_x=1, mesh_y=1))
    assert wafer.links == [] and [p for p in wafer.die(0).ports] == ["cp"]


def test_a_die_changed_in_the_graph_dumps_as_its_override():
    """The dump reads each die from the graph: a die whose HBM differs comes back as an
    override of exactly the differing leaf."""
    wafer = wafer_from("dojo")
    object.__setattr__(wafer.die(3).child("hbm"), "params",
                       attrs.evolve(wafer.die(0).hbm.params, bandwidth_GBps=1.0))
    params = wafer.graph_params()
    assert params.dies == {"die_0_3": {"hbm": {"bandwidth_GBps": 1.0}}}
    assert params.links == {} and params.dead_dies == () and params.dead_links == ()


OVERRIDES = """\
wafer:
  name: faulty
  mesh_x: 3
  mesh_y: 3
  dies:
    die_1_1: {hbm: {bandwidth_GBps: 10.0}, llc: {capacity_bytes: 1000000}}
    die_0_2: {compute: {peak_TFLOPS: 250.0}}
  links:
    link_0_1: {hop_latency_ns: 1000000.0}
  dead_dies: [die_2_2]
  dead_links: [link_3_4]
"""


def test_overrides_and_faults_reach_each_component_and_round_trip(tmp_path):
    path = tmp_path / "w.yaml"
    path.write_text(OVERRIDES)
    wafer = wafer_from(path)
    assert wafer.die("die_1_1").hbm.params.bandwidth_GBps == 10.0
    assert wafer.die("die_1_1").hbm.params.latency_ns == 300.0          # not overridden
    assert wafer.die("die_1_1").llc.params.capacity_bytes == 1_000_000
    assert wafer.die("die_0_2").compute.params.peak_TFLOPS == 250.0
    assert wafer.die("die_0_0").hbm.params.bandwidth_GBps == 3350.0     # the nominal die
    assert wafer.link(0, 1).latency_ns == 1e6 and wafer.link(0, 3).latency_ns == 200.0
    assert [d.name for d in wafer.dies if not d.alive] == ["die_2_2"]
    assert [link.name for link in wafer.links if not link.alive] == ["link_3_4"]
    again = tmp_path / "again.yaml"
    again.write_text(wafer.dump_params())
    assert load_wafer(again) == load_wafer(path)
    assert wafer_from(again).dump_params() == wafer.dump_params()


def test_overrides_equal_to_the_nominal_die_vanish_from_the_dump(tmp_path):
    path = tmp_path / "w.yaml"
    path.write_text("wafer: {mesh_x: 2, mesh_y: 2, dies: {die_1_1: {hbm: "
                    "{bandwidth_GBps: 3350.0}}}}\n")
    assert wafer_from(path).graph_params() == WaferParams(mesh_x=2, mesh_y=2)


@pytest.mark.parametrize("yaml_text, message", [
    ("dies: {die_3_0: {}}", "wafer.dies.die_3_0: expected a die name die_X_Y with X < 3"),
    ("dies: {die_0_0: {hbm: {bandwidth_GBps: 0}}}",
     "wafer.dies.die_0_0.hbm.bandwidth_GBps: bandwidth_GBps must be greater than zero"),
    ("dies: {die_0_0: {hbm: {speed: 1}}}", "wafer.dies.die_0_0.hbm.speed: unknown key"),
    ("links: {link_0_2: {}}", "wafer.links.link_0_2: expected a link name link_A_B joining"),
    ("dead_dies: [die_0_1, die_1_0]",
     "wafer.dead_dies: die_0_0 and die_0_2 are both alive but no live route joins them"),
    ("dead_links: [link_0_1, link_0_3]",
     "wafer.dead_links: die_0_0 and die_0_1 are both alive but no live route joins them"),
])
def test_bad_overrides_and_faults_name_the_yaml_path(tmp_path, yaml_text, message):
    path = tmp_path / "w.yaml"
    path.write_text(f"wafer: {{mesh_x: 3, mesh_y: 3, {yaml_text}}}\n")
    with pytest.raises(ConfigError, match=re.escape(f"{path}: {message}")):
        load_wafer(path)
