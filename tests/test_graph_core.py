"""The component graph: hierarchy, ports, links, queries and the errors of inconsistent graphs."""

import pytest

from hwmodel.components.compute import Compute
from hwmodel.components.d2d import D2DController, D2DLink
from hwmodel.components.hbm import HBM
from hwmodel.components.llc import LLC
from hwmodel.graph import Component, Direction, GraphError, Link, Port
from hwmodel.params import D2DParams, HBMParams


def make_pair():
    """A root holding two children: ``src`` (out port) and ``dst`` (in port), one grandchild."""
    root = Component("top")
    src = root.add(Component("src"))
    dst = root.add(Component("dst"))
    src.add_port(Port("o", "out", "mem"))
    dst.add_port(Port("i", "in", "mem"))
    inner = dst.add(Component("inner"))
    inner.add_port(Port("i", "in", "mem", required=False))
    return root, src, dst, inner


def test_hierarchical_names_and_lookup():
    root, src, dst, inner = make_pair()
    assert inner.path == "top.dst.inner"
    assert root.lookup("top.dst.inner") is inner
    assert root["dst.inner"] is inner
    assert dst.lookup("inner") is inner
    assert root.port("dst.inner.i").path == "top.dst.inner.i"
    assert [c.name for c in root.flatten()] == ["top", "src", "dst", "inner"]
    assert root.children == [src, dst]
    with pytest.raises(KeyError, match="top.dst has no child 'nope'"):
        root.lookup("dst.nope")


def test_sibling_link_records_both_ends_and_neighbours():
    root, src, dst, _ = make_pair()
    link = root.connect("src.o", "dst.i", latency_ns=5, bandwidth_GBps=100)
    assert isinstance(link, Link)
    assert link.owner is root and link.kind == "mem"
    assert src.ports["o"].outer_link is link and dst.ports["i"].outer_link is link
    assert src.neighbours() == [dst] and dst.neighbours() == [src]
    assert root.path_links(["src", "dst"]) == [link]
    assert list(root.iter_links()) == [link]
    root.check()


def test_export_link_passes_port_to_child_with_same_direction():
    _root, _, dst, inner = make_pair()
    link = dst.connect("i", "inner.i")
    assert dst.ports["i"].inner_link is link and inner.ports["i"].outer_link is link


def test_unconnected_required_port_is_named():
    root, _, _, _ = make_pair()
    with pytest.raises(GraphError, match=r"unconnected required port top\.src\.o \(out mem\)"):
        root.check()


def test_direction_mismatch_is_named():
    root, src, dst, _ = make_pair()
    src.add_port(Port("o2", "out", "mem"))
    with pytest.raises(GraphError, match=r"direction mismatch, top\.src\.o is 'out' and "
                                         r"top\.src\.o2 is 'out'"):
        root.connect("src.o", "src.o2")
    with pytest.raises(GraphError, match="an export joins ports of the same direction"):
        dst.add_port(Port("o", "out", "mem"))
        dst.connect("o", "inner.i")


def test_kind_mismatch_is_named():
    root, _src, dst, _ = make_pair()
    dst.add_port(Port("c", "in", "cmd"))
    with pytest.raises(GraphError, match=r"kind mismatch, top\.src\.o is 'mem' but "
                                         r"top\.dst\.c is 'cmd'"):
        root.connect("src.o", "dst.c")


def test_width_mismatch_is_named():
    root = Component("top")
    a = root.add(Component("a"))
    b = root.add(Component("b"))
    a.add_port(Port("o", "out", "addr", width=48))
    b.add_port(Port("i", "in", "addr", width=32))
    with pytest.raises(GraphError, match="width mismatch, 48 bits vs 32 bits"):
        root.connect("a.o", "b.i")


def test_duplicate_names_are_refused():
    root, src, _, _ = make_pair()
    with pytest.raises(GraphError, match="duplicate component name 'src' in top"):
        root.add(Component("src"))
    with pytest.raises(GraphError, match="duplicate port name 'o' on top.src"):
        src.add_port(Port("o", "in", "mem"))


def test_link_across_hierarchy_levels_is_refused():
    root, _, _, _ = make_pair()
    with pytest.raises(GraphError, match=r"link top\.src\.o -- top\.dst\.inner\.i crosses "
                                         r"hierarchy levels: top\.dst\.inner\.i"):
        root.connect("src.o", "dst.inner.i")


def test_port_linked_twice_is_refused():
    root, _src, _dst, _ = make_pair()
    third = root.add(Component("third"))
    third.add_port(Port("i", "in", "mem"))
    root.connect("src.o", "dst.i")
    with pytest.raises(GraphError, match=r"top\.src\.o is already linked"):
        root.connect("src.o", "third.i")


def test_bad_link_values_are_named():
    root, _, _, _ = make_pair()
    with pytest.raises(GraphError, match="bandwidth_GBps must be a number greater than zero"
                                         r".*not 0"):
        root.connect("src.o", "dst.i", bandwidth_GBps=0)
    with pytest.raises(GraphError, match="latency_ns must be a number >= 0, not -1"):
        root.connect("src.o", "dst.i", latency_ns=-1)
    # A refused link leaves both ports free.
    root.connect("src.o", "dst.i")


def test_bad_port_declarations():
    with pytest.raises(GraphError, match="direction must be 'in', 'out' or 'inout', not 'up'"):
        Port("p", "up", "mem")
    with pytest.raises(GraphError, match="port name must be an identifier"):
        Port("a.b", "in", "mem")
    assert Port("p", "inout", "d2d").direction is Direction.INOUT


def test_unit_components_declare_ports_and_params():
    hbm = HBM(params=HBMParams(bandwidth_GBps=8000.0))
    assert hbm.kind == "hbm" and hbm.params.bandwidth_GBps == 8000.0
    assert {p: hbm.ports[p].direction.value for p in hbm.ports} == {"llc": "in", "d2d": "in"}
    assert set(LLC().ports) == {"req", "hbm", "remote", "miss_addr"}
    assert Compute().ports["cmd"].kind == "cmd"
    ctrl = D2DController(router_ports=("x_plus", "y_minus"))
    assert [p for p in ctrl.ports if ctrl.ports[p].kind == "d2d"] == ["x_plus", "y_minus"]
    with pytest.raises(TypeError, match="params must be HBMParams"):
        HBM(params=D2DParams())


def test_d2d_link_carries_params_and_refuses_disagreeing_values():
    root = Component("w")
    a = root.add(D2DController("a", router_ports=("x_plus",)))
    b = root.add(D2DController("b", router_ports=("x_minus",)))
    params = D2DParams(bandwidth_GBps=2000.0, hop_latency_ns=150.0)
    with pytest.raises(GraphError, match="disagree with its params"):
        root.connect(a.ports["x_plus"], b.ports["x_minus"], cls=D2DLink, params=params,
                     latency_ns=1.0, bandwidth_GBps=2000.0)
    link = root.connect(a.ports["x_plus"], b.ports["x_minus"], cls=D2DLink, params=params,
                        latency_ns=150.0, bandwidth_GBps=2000.0, index=0, dies=(0, 1))
    assert isinstance(link, D2DLink)
    assert (link.latency_ns, link.bandwidth_GBps, link.index) == (150.0, 2000.0, 0)
    assert a.neighbours(kind="d2d") == [b]


def test_structure_distinguishes_params():
    one = Component("w")
    one.add(HBM(params=HBMParams()))
    two = Component("w")
    two.add(HBM(params=HBMParams()))
    three = Component("w")
    three.add(HBM(params=HBMParams(latency_ns=1.0)))
    assert one.structure() == two.structure()
    assert one.structure() != three.structure()
