"""Diagrams rendered by real Graphviz; counts are read from the rendered SVG."""

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from hwmodel.diagrams import (
    component_dot,
    draw_component,
    draw_die,
    draw_wafer,
    heat_colour,
    render,
)
from hwmodel.params import load_wafer
from hwmodel.topologies.wafer import build_wafer, wafer_from

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SVG = "{http://www.w3.org/2000/svg}"


def svg_groups(path):
    """``(class list, id, title)`` of every node and edge group of a rendered SVG."""
    root = ET.parse(path).getroot()
    out = []
    for group in root.iter(f"{SVG}g"):
        classes = group.get("class", "").split()
        if "node" in classes or "edge" in classes:
            title = group.find(f"{SVG}title").text
            out.append((classes, group.get("id"), title))
    return out


def counts(path):
    groups = svg_groups(path)
    dies = [t for c, _, t in groups if "node" in c and "die" in c]
    d2d = [i for c, i, _ in groups if "edge" in c and "d2d" in c]
    cmd = [i for c, i, _ in groups if "edge" in c and "cmd" in c]
    return dies, d2d, cmd


@pytest.mark.parametrize(("source", "dies", "links"), [
    ("tsmc-sow", 24, 37), ("dojo", 25, 40), (str(EXAMPLES / "mesh-8x8.yaml"), 64, 112)])
def test_wafer_svg_has_every_die_and_link(tmp_path, source, dies, links):
    wafer = wafer_from(source)
    out = draw_wafer(wafer, tmp_path / "wafer.svg")
    die_titles, d2d, cmd = counts(out)
    assert len(die_titles) == dies and len(set(die_titles)) == dies
    assert sorted(die_titles) == sorted(d.name for d in wafer.dies)
    assert len(d2d) == links
    assert sorted(d2d) == sorted(f"d2d_{a}_{b}" for a, b in wafer.mesh.links)
    # The Global CP is drawn, and its command links are edges of their own class.
    titles = [t for c, _, t in svg_groups(out) if "node" in c]
    assert "global_cp" in titles
    assert len(cmd) == dies
    assert (tmp_path / "wafer.dot").read_text().count("class=d2d") == links


def test_big_mesh_summarises_command_links(tmp_path):
    wafer = build_wafer(load_wafer(EXAMPLES / "mesh-8x8.yaml").__class__(mesh_x=16, mesh_y=16))
    out = draw_wafer(wafer, tmp_path / "big.svg")
    dies, d2d, cmd = counts(out)
    assert (len(dies), len(d2d), len(cmd)) == (256, 480, 0)
    assert "256 Local CPs" in out.read_text()


def test_dies_sit_on_their_grid(tmp_path):
    wafer = wafer_from("tsmc-sow")
    out = draw_wafer(wafer, tmp_path / "w.svg")
    root = ET.parse(out).getroot()
    centre = {}
    for group in root.iter(f"{SVG}g"):
        if "die" in group.get("class", "").split():
            xs = [float(p.split(",")[0]) for p in next(group.iter(f"{SVG}path")).get("d")
                  .replace("M", " ").replace("C", " ").split() if "," in p]
            centre[group.find(f"{SVG}title").text] = sum(xs) / len(xs)
    # Same x, same column; columns in x order.
    assert abs(centre["die_1_0"] - centre["die_1_7"]) < 1
    assert centre["die_0_3"] < centre["die_1_3"] < centre["die_2_3"]


def test_link_values_colour_the_links(tmp_path):
    wafer = wafer_from("tsmc-sow")
    values = {0: 0, 5: 2e9, 36: 4e9}
    out = draw_wafer(wafer, tmp_path / "heat.svg", link_values=values)
    root = ET.parse(out).getroot()
    colour = {g.get("id"): next(g.iter(f"{SVG}path")).get("stroke")
              for g in root.iter(f"{SVG}g") if g.get("id", "").startswith("d2d_")}
    a, b = wafer.links[36].dies
    assert colour[f"d2d_{a}_{b}"] == heat_colour(1.0) == "#800026"
    a, b = wafer.links[5].dies
    # half the peak sits halfway between the visible floor 0.15 and 1 of the ramp
    assert colour[f"d2d_{a}_{b}"] == heat_colour(0.15 + 0.85 * 0.5)
    for index in (0, 1):             # zero, or absent (counts as 0): dashed grey, still drawn
        a, b = wafer.links[index].dies
        assert colour[f"d2d_{a}_{b}"] == "#888888"
    text = out.read_text()
    assert "4 GB" in text and "0 B" in text
    # the colour scale: its top swatch is the peak's colour, its label the peak
    assert 'fill="#800026"' in text and "0 (dashed)" in text
    # no command links on a heat map: they would hide the traffic
    assert not [g for g in root.iter(f"{SVG}g") if g.get("id", "").startswith("cmd_")]
    with pytest.raises(ValueError, match=r"link index must be in 0\.\.36 for tsmc-sow, not 37"):
        draw_wafer(wafer, tmp_path / "bad.svg", link_values={37: 1})
    with pytest.raises(ValueError, match=r"link_values\[2\] must be a number >= 0, not -1"):
        draw_wafer(wafer, tmp_path / "bad.svg", link_values={2: -1})


def test_heat_ramp_midpoints():
    assert heat_colour(0.0) == "#ffffcc"
    assert heat_colour(1 / 3) == "#feb24c"
    with pytest.raises(ValueError, match="fraction must be in"):
        heat_colour(1.5)


def test_die_svg_shows_its_units_and_links(tmp_path):
    wafer = wafer_from("dojo")
    die = wafer.die((2, 2))
    out = draw_die(die, tmp_path / "die.svg")
    groups = svg_groups(out)
    units = [t for c, _, t in groups if "unit" in c]
    assert set(units) == {"compute", "llc", "hbm", "d2d__self", "d2d__atu", "d2d__pdu",
                          "local_cp"}
    ports = [t for c, _, t in groups if "port" in c]
    assert len(ports) == 5             # cp + four router ports of an inner die
    edges = [c for c, _, _ in groups if "edge" in c]
    assert len(edges) == len(list(die.iter_links())) == 15
    png = draw_die(wafer.die(0), tmp_path / "corner.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_component_svg_lists_every_port_and_peer(tmp_path):
    wafer = wafer_from("tsmc-sow")
    hbm = wafer.die(3).hbm
    out = draw_component(hbm, tmp_path / "hbm.svg")
    groups = svg_groups(out)
    assert sorted(t for c, _, t in groups if "port" in c) == ["port__llc", "port__d2d"][::-1]
    text = out.read_text()
    assert "wafer.die_0_3.llc.hbm" in text and "wafer.die_0_3.d2d.hbm" in text
    assert "80 GB" in component_dot(hbm).source


def test_render_keeps_dot_and_refuses_unknown_format(tmp_path):
    graph = component_dot(wafer_from("dojo").die(0).compute)
    out = render(graph, tmp_path / "c.png")
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "c.dot").read_text() == graph.source
    with pytest.raises(ValueError, match="diagram format must be one of svg, png, not 'pdf'"):
        render(graph, tmp_path / "c.pdf")


def test_rendering_is_deterministic(tmp_path):
    wafer = wafer_from("tsmc-sow")
    one = draw_wafer(wafer, tmp_path / "a.svg").read_bytes()
    two = draw_wafer(wafer_from("tsmc-sow"), tmp_path / "b.svg").read_bytes()
    assert one == two


def test_faults_and_overrides_are_drawn(tmp_path):
    """The dead die and dead link, the two overridden dies and the overridden link of a
    faulty tsmc-sow are drawn in their own classes, each exactly once."""
    yaml_file = tmp_path / "faulty.yaml"
    yaml_file.write_text(
        "wafer:\n  mesh_x: 3\n  mesh_y: 8\n"
        "  dies: {die_1_2: {hbm: {bandwidth_GBps: 10.0}}, die_0_5: {compute: "
        "{peak_TFLOPS: 500.0}, llc: {capacity_bytes: 33554432}}}\n"
        "  links: {link_3_4: {hop_latency_ns: 1000.0}}\n"
        "  dead_dies: [die_2_7]\n  dead_links: [link_9_10]\n")
    groups = svg_groups(draw_wafer(wafer_from(yaml_file), tmp_path / "wafer.svg"))
    nodes = {t: c for c, _, t in groups if "node" in c}
    edges = {i: c for c, i, _ in groups if "edge" in c and "d2d" in c}
    assert [t for t, c in nodes.items() if "dead" in c] == ["die_2_7"]
    assert sorted(t for t, c in nodes.items() if "override" in c) == ["die_0_5", "die_1_2"]
    assert [i for i, c in edges.items() if "dead" in c] == ["d2d_9_10"]
    assert [i for i, c in edges.items() if "override" in c] == ["d2d_3_4"]
    assert len(nodes) == 24 + 1 and len(edges) == 37      # every die, the CP, every link
    # the dead die_2_7 (id 2 x 8 + 7 = 23) joins die 15 (die_1_7) and die 22 (die_2_6):
    # its two working links carry nothing and are not drawn as live
    assert sorted(i for i, c in edges.items() if "unused" in c) == ["d2d_15_23", "d2d_22_23"]
