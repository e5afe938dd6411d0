"""Architecture diagrams drawn from the component graph and rendered by Graphviz.

Three views, each a function returning a :class:`graphviz.Graph`/``Digraph`` (the DOT) and a
``draw_*`` companion that renders it to a file and keeps the DOT next to it:

* :func:`wafer_dot` / :func:`draw_wafer`: the mesh of dies placed on their grid (``neato`` with
  pinned positions, so a 16 x 16 mesh stays a legible grid), the D2D links and the Global CP.
  ``link_values`` colours and thickens the D2D links by a value (e.g. bytes moved), for
  link-traffic heat maps.
* :func:`die_dot` / :func:`draw_die`: one die's units, their ports and the links among them.
* :func:`component_dot` / :func:`draw_component`: one component's ports and what each is
  linked to.

In the SVG every D2D link is an edge group with ``id="d2d_<a>_<b>"`` and class ``d2d``, every
Global CP command link an edge group with ``id="cmd_<die name>"`` and class ``cmd``; every die is
a node group titled with its name and with class ``die``. Tests and tools can count them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import graphviz

from ..graph import Component, Direction, Link, Port
from ..params import difference
from ..topologies.wafer import Die, Wafer
from . import FORMATS

__all__ = ["FORMATS", "component_dot", "die_dot", "draw_component", "draw_die", "draw_wafer",
           "heat_colour", "render", "wafer_dot"]

#: Above this many dies the Global CP's command links are summarised in its label instead of
#: drawn one by one: 256 lines across a 16 x 16 grid would hide the mesh.
MAX_DRAWN_COMMAND_LINKS = 64

# Grid pitch in inches: die boxes are 0.9 in wide, leaving room for link labels. A heat map
# labels every link with its value, so its grid is wider (labels never hide under die boxes).
_PITCH = 1.3
_HEAT_PITCH = 1.9
#: Lowest ramp position of a link with traffic, so a small value stays visible on white.
_MIN_VISIBLE = 0.15

# Sequential colour ramp (light yellow -> orange -> dark red), readable in print and on screen.
_RAMP = ((0xff, 0xff, 0xcc), (0xfe, 0xb2, 0x4c), (0xf0, 0x3b, 0x20), (0x80, 0x00, 0x26))


def heat_colour(fraction: float) -> str:
    """``#rrggbb`` of ``fraction`` in [0, 1] on the light-yellow-to-dark-red ramp."""
    if not 0 <= fraction <= 1:
        raise ValueError(f"fraction must be in [0, 1], not {fraction!r}")
    position = fraction * (len(_RAMP) - 1)
    low = min(int(position), len(_RAMP) - 2)
    t = position - low
    rgb = [round(a + (b - a) * t) for a, b in zip(_RAMP[low], _RAMP[low + 1], strict=True)]
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def _bytes_text(value: float) -> str:
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if abs(value) >= size:
            return f"{value / size:.3g} {unit}"
    return f"{value:g} B"


def _check_link_values(wafer: Wafer, link_values: Mapping[int, float]) -> float:
    peak = 0.0
    for index, value in link_values.items():
        if isinstance(index, bool) or not isinstance(index, int) \
                or not 0 <= index < len(wafer.links):
            raise ValueError(f"link_values: link index must be in 0..{len(wafer.links) - 1} "
                             f"for {wafer.params.name}, not {index!r}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ValueError(f"link_values[{index}] must be a number >= 0, not {value!r}")
        peak = max(peak, float(value))
    return peak


def wafer_dot(wafer: Wafer, *, link_values: Mapping[int, float] | None = None,
              value_label: str = "bytes", title: str | None = None,
              command_links: bool | None = None) -> graphviz.Graph:
    """DOT of the wafer: dies on their grid, D2D links, the Global CP.

    Parameters
    ----------
    wafer : Wafer
        The built wafer.
    link_values : mapping of int to float, optional
        A value per D2D link index (``wafer.links[i]``); links are coloured on a heat ramp
        scaled to the largest value and labelled with it. Missing links count as 0.
    value_label : str
        What the values are (``"bytes"`` formats them as KB/MB/GB; anything else prints the
        number and this unit).
    title : str, optional
        Graph label; defaults to the wafer's name and mesh.
    command_links : bool, optional
        Draw one edge per Global CP command link. By default they are drawn up to
        :data:`MAX_DRAWN_COMMAND_LINKS` dies and summarised in the Global CP's label above.

    Raises
    ------
    ValueError
        On a link index outside the wafer or a negative or non-numeric value.
    """
    mesh = wafer.mesh
    peak = _check_link_values(wafer, link_values) if link_values is not None else None
    if command_links is None:
        command_links = mesh.num_dies <= MAX_DRAWN_COMMAND_LINKS and peak is None
    pitch = _PITCH if peak is None else _HEAT_PITCH
    title = title or (f"{wafer.params.name}: {mesh.x_dies} x {mesh.y_dies} mesh, "
                      f"{mesh.num_dies} dies, {len(wafer.links)} D2D links")
    graph = graphviz.Graph(name=wafer.name, engine="neato")
    graph.attr(label=title, labelloc="t", fontname="Helvetica", fontsize="16",
               splines="true" if command_links else "line", outputorder="edgesfirst",
               overlap="true")
    graph.attr("node", shape="box", style="rounded,filled", fontname="Helvetica",
               fontsize="10", width="0.9", height="0.6", fixedsize="true")
    graph.attr("edge", fontname="Helvetica", fontsize="8")
    for die in wafer.dies:
        # y grows downwards so die_0_0 is top left, as in the paper's figures.
        graph.node(die.name, pos=f"{die.x * pitch:.3f},{-die.y * pitch:.3f}!",
                   **_die_look(die, wafer.params.die))
    cp = wafer.global_cp
    cp_label = "Global CP\n(EDT, heatmap,\nallocator, predictor)"
    if not command_links:
        cp_label += f"\ncmd links to all\n{mesh.num_dies} Local CPs"
    cp_x = (mesh.x_dies - 1) * pitch / 2
    graph.node(cp.name, label=cp_label, fillcolor="#fde0c5", width="1.6", height="0.9",
               pos=f"{cp_x:.3f},{pitch * 1.0:.3f}!", _attributes={"class": "global_cp"})
    for link in wafer.links:
        a, b = link.dies
        attrs = {"id": f"d2d_{a}_{b}", "class": "d2d",
                 "tooltip": f"{link.name}: {link.latency_ns:g} ns, {link.bandwidth_GBps:g} GB/s"}
        if not link.alive:
            attrs.update({"class": "d2d dead", "style": "dashed", "color": "#c00000",
                          "label": "dead", "tooltip": f"{link.name}: dead"})
        elif not (wafer.dies[a].alive and wafer.dies[b].alive):
            # a working link of a dead die: nothing is sent over it (not drawn as live)
            attrs.update({"class": "d2d unused", "style": "dotted", "color": "#999999",
                          "penwidth": "1", "tooltip": f"{link.name}: joins a dead die"})
        elif peak is None and link.params != wafer.params.die.d2d:
            attrs.update({"class": "d2d override", "color": "#b8860b", "penwidth": "3",
                          "label": f"{link.latency_ns:g} ns\n{link.bandwidth_GBps:g} GB/s"})
        elif peak is not None:
            value = float(link_values.get(link.index, 0))
            fraction = value / peak if peak > 0 else 0.0
            text = _bytes_text(value) if value_label == "bytes" else f"{value:g} {value_label}"
            attrs.update(label=text, tooltip=f"{link.name}: {text}")
            if value > 0:
                shade = _MIN_VISIBLE + (1 - _MIN_VISIBLE) * fraction
                attrs.update(color=heat_colour(shade), penwidth=f"{1.5 + 5 * fraction:.2f}")
            else:
                # Zero traffic: a thin dashed grey line, still drawn and labelled.
                attrs.update(color="#888888", penwidth="1", style="dashed")
        else:
            attrs.update(color="#4a6fa5", penwidth="2")
        graph.edge(wafer.dies[a].name, wafer.dies[b].name, _attributes=attrs)
    if command_links:
        for link in wafer.command_links:
            die = link.b.owner
            graph.edge(cp.name, die.name, _attributes={
                "id": f"cmd_{die.name}", "class": "cmd", "style": "dashed",
                "color": "#c8834a80", "penwidth": "0.6"})
    if peak is not None:
        graph.node("legend", shape="plain", fixedsize="false",
                   label=_colour_scale(peak, value_label),
                   pos=f"{(mesh.x_dies - 0.5) * pitch:.3f},{pitch * 1.0:.3f}!",
                   _attributes={"class": "legend"})
    return graph


def _die_look(die: Die, nominal) -> dict:
    """Label, colour and class of a die: dead dies grey and dashed; a die whose parameters
    differ from the wafer's nominal die yellow, with what differs in its label."""
    label = f"{die.name}\nid {die.die_id}"
    if not die.alive:
        return {"label": f"{label}\nDEAD", "fillcolor": "#d9d9d9",
                "style": "rounded,filled,dashed", "fontcolor": "#666666",
                "_attributes": {"class": "die dead", "tooltip": f"{die.name}: dead"}}
    changed = difference(die.die_params(), nominal)
    if changed:
        fields = [f"{part}.{key}" if isinstance(sub, dict) else part
                  for part, sub in changed.items()
                  for key in (sub if isinstance(sub, dict) else [None])]
        return {"label": f"{label}\n{len(fields)} override(s)", "fillcolor": "#fff2cc",
                "_attributes": {"class": "die override", "tooltip":
                                f"{_die_tooltip(die)}; overrides: {', '.join(fields)}"}}
    return {"label": label, "fillcolor": "#dbe9f6",
            "_attributes": {"class": "die", "tooltip": _die_tooltip(die)}}


def _colour_scale(peak: float, value_label: str) -> str:
    """An HTML-like Graphviz table: the heat ramp in five steps, 0 to ``peak``, and the
    dashed grey of a link without traffic."""
    def text(value):
        return _bytes_text(value) if value_label == "bytes" else f"{value:g}"
    rows = [f'<TR><TD COLSPAN="2"><B>link {value_label}</B></TD></TR>']
    for step in (1.0, 0.75, 0.5, 0.25):
        colour = heat_colour(_MIN_VISIBLE + (1 - _MIN_VISIBLE) * step)
        rows.append(f'<TR><TD BGCOLOR="{colour}" WIDTH="24"> </TD>'
                    f'<TD ALIGN="LEFT">{text(step * peak)}</TD></TR>')
    rows.append('<TR><TD BGCOLOR="#888888" WIDTH="24"> </TD><TD ALIGN="LEFT">0 (dashed)</TD>'
                '</TR>')
    return ('<<TABLE BORDER="1" CELLBORDER="0" CELLSPACING="2" BGCOLOR="white">'
            + "".join(rows) + "</TABLE>>")


def _die_tooltip(die: Die) -> str:
    p = die.params
    return (f"{die.name}: {p.compute.peak_TFLOPS:g} TFLOPS, HBM {p.hbm.bandwidth_GBps:g} GB/s "
            f"{p.hbm.capacity_bytes / 1e9:g} GB, LLC {p.llc.capacity_bytes / 2**20:g} MiB")


def _unit_label(component: Component) -> str:
    """A short, parameter-bearing label for a unit node."""
    lines = [component.name]
    if component.kind != component.name:
        lines.append(f"({component.kind})")
    p = component.params
    kind = component.kind
    if kind == "compute":
        lines.append(f"{p.peak_TFLOPS:g} TFLOPS, {p.num_sms} SMs")
    elif kind == "llc":
        lines.append(f"{p.capacity_bytes / 2**20:g} MiB {p.associativity}-way")
        lines.append(f"hit {p.hit_latency_ns:g} ns")
    elif kind == "hbm":
        lines.append(f"{p.capacity_bytes / 1e9:g} GB, {p.bandwidth_GBps:g} GB/s")
        lines.append(f"{p.latency_ns:g} ns")
    elif kind == "d2d_controller":
        lines.append(f"{p.bandwidth_GBps:g} GB/s, {p.hop_latency_ns:g} ns/hop")
    elif kind == "atu":
        lines.append(f"{component.entries} x {component.entry_bits} b = "
                     f"{component.size_bytes} B")
    elif kind == "pdu":
        lines.append(f"{component.experts} x 2 b = {component.size_bytes} B")
    elif kind == "local_cp":
        lines.append(f"dispatches to {component.num_sms} SMs")
    elif kind == "global_cp":
        lines.append(f"EDT {component.edt_bytes} B")
    return "\n".join(lines)


def _port_node(port: Port) -> str:
    return port.path.replace(".", "__")


def _edge_for(graph, link: Link, a: str, b: str, *, reverse: bool = False) -> None:
    """Edge from node ``a`` (link end ``a``, or ``b`` if ``reverse``) to node ``b``."""
    tail = link.b if reverse else link.a
    directions = {link.a.direction, link.b.direction}
    if Direction.INOUT in directions:
        dir_ = "both"
    elif link.owner in (link.a.owner, link.b.owner):
        # An export: data flows inwards through an in port and outwards through an out port.
        dir_ = "forward" if (tail.owner is link.owner) == (tail.direction is Direction.IN) \
            else "back"
    elif tail.direction is Direction.OUT:
        dir_ = "forward"
    else:
        dir_ = "back"
    label = link.kind
    if link.bandwidth_GBps is not None:
        label += f"\n{link.bandwidth_GBps:g} GB/s"
    if link.latency_ns:
        label += f", {link.latency_ns:g} ns"
    graph.edge(a, b, _attributes={"dir": dir_, "label": label, "class": f"link {link.kind}",
                                  "tooltip": link.label})


def die_dot(die: Die) -> graphviz.Digraph:
    """DOT of one die: its units (the D2D controller as a box holding the ATU and the PDU),
    its exported ports on the border, and every link inside it."""
    graph = graphviz.Digraph(name=die.name, engine="dot")
    graph.attr(label=f"{die.path} (id {die.die_id}, x={die.x}, y={die.y})", labelloc="t",
               fontname="Helvetica", fontsize="14", rankdir="LR", compound="true")
    graph.attr("node", shape="box", style="rounded,filled", fillcolor="#dbe9f6",
               fontname="Helvetica", fontsize="10")
    graph.attr("edge", fontname="Helvetica", fontsize="8")
    node_of: dict[int, str] = {}
    for port in die.ports.values():
        name = _port_node(port)
        graph.node(name, label=f"{port.name}\n{port.direction.value} {port.kind}",
                   shape="cds" if port.direction is not Direction.IN else "rarrow",
                   fillcolor="#eeeeee", _attributes={"class": "port"})
        node_of[id(port)] = name
    for unit in die.children:
        if unit.children:
            with graph.subgraph(name=f"cluster_{unit.name}") as cluster:
                cluster.attr(label=_unit_label(unit), style="rounded,filled",
                             fillcolor="#f4f4f4", fontname="Helvetica", fontsize="10")
                # An invisible anchor stands for the container's own ports.
                cluster.node(f"{unit.name}__self", label=unit.name, shape="box",
                             fillcolor="#cfe3cf", _attributes={"class": "unit"})
                for sub in unit.children:
                    cluster.node(f"{unit.name}__{sub.name}", label=_unit_label(sub),
                                 fillcolor="#fff2cc", _attributes={"class": "unit"})
                    for port in sub.ports.values():
                        node_of[id(port)] = f"{unit.name}__{sub.name}"
            for port in unit.ports.values():
                node_of[id(port)] = f"{unit.name}__self"
        else:
            graph.node(unit.name, label=_unit_label(unit), _attributes={"class": "unit"})
            for port in unit.ports.values():
                node_of[id(port)] = unit.name
    for link in die.iter_links():
        a, b = node_of[id(link.a)], node_of[id(link.b)]
        if link.owner is die and link.a.owner is die and link.a.direction is not Direction.IN:
            # Exported out/inout ports sit on the right of the die, fed from inside it.
            _edge_for(graph, link, b, a, reverse=True)
        else:
            _edge_for(graph, link, a, b)
    return graph


def component_dot(component: Component) -> graphviz.Digraph:
    """DOT of one component's ports: each port a node around it, with what it links to."""
    graph = graphviz.Digraph(name=component.name, engine="dot")
    graph.attr(label=f"{component.path} ({component.kind}): {len(component.ports)} ports",
               labelloc="t", fontname="Helvetica", fontsize="14", rankdir="LR")
    graph.attr("node", fontname="Helvetica", fontsize="10")
    graph.attr("edge", fontname="Helvetica", fontsize="8")
    centre = "component"
    graph.node(centre, label=_unit_label(component) if component.params is not None
               or component.kind in ("atu", "pdu", "local_cp") else
               f"{component.name}\n({component.kind})", shape="box",
               style="rounded,filled", fillcolor="#dbe9f6", _attributes={"class": "unit"})
    for port in component.ports.values():
        name = f"port__{port.name}"
        details = f"{port.direction.value} {port.kind}"
        if port.width is not None:
            details += f" [{port.width}]"
        if port.message is not None:
            details += f" {port.message}"
        if not port.required:
            details += " (optional)"
        graph.node(name, label=f"{port.name}\n{details}", shape="cds", style="filled",
                   fillcolor="#eeeeee", _attributes={"class": "port", "tooltip": port.doc})
        if port.direction is Direction.IN:
            graph.edge(name, centre, _attributes={"class": "port-edge"})
        elif port.direction is Direction.OUT:
            graph.edge(centre, name, _attributes={"class": "port-edge"})
        else:
            graph.edge(centre, name, dir="both", _attributes={"class": "port-edge"})
        for link in port.links:
            peer = link.other(port)
            peer_name = f"peer__{_port_node(peer)}"
            inside = link is port.inner_link
            graph.node(peer_name, label=peer.path + ("\n(inside)" if inside else ""),
                       shape="plaintext", _attributes={"class": "peer"})
            text = link.kind + (f"\n{link.bandwidth_GBps:g} GB/s" if link.bandwidth_GBps
                                else "")
            # Outside links bring data to an in port; an export passes it on inside.
            incoming = (port.direction is Direction.IN) != inside
            dir_ = "both" if port.direction is Direction.INOUT else "forward"
            style = "dashed" if inside else "solid"
            if incoming and dir_ == "forward":
                graph.edge(peer_name, name, label=text, style=style,
                           _attributes={"class": "link"})
            else:
                graph.edge(name, peer_name, label=text, dir=dir_, style=style,
                           _attributes={"class": "link"})
    return graph


def render(graph: graphviz.Graph | graphviz.Digraph, output: str | Path,
           fmt: str | None = None) -> Path:
    """Render ``graph`` with the Graphviz binaries to ``output``; keep its DOT beside it.

    Parameters
    ----------
    graph : graphviz.Graph or graphviz.Digraph
        The DOT to render.
    output : path
        File to write (``wafer.svg``); the DOT goes to the same name with ``.dot``.
    fmt : str, optional
        ``"svg"`` or ``"png"``; by default taken from ``output``'s suffix.

    Returns
    -------
    Path
        ``output``.

    Raises
    ------
    ValueError
        On a format other than SVG or PNG.
    FileNotFoundError
        If Graphviz's ``dot`` is not installed (``scripts/install.sh`` installs it).
    """
    output = Path(output)
    fmt = (fmt or output.suffix.lstrip(".")).lower()
    if fmt not in FORMATS:
        raise ValueError(f"diagram format must be one of {', '.join(FORMATS)}, not {fmt!r} "
                         f"(from {output})")
    if output.suffix.lower() != f".{fmt}":
        output = output.with_name(output.name + f".{fmt}")
    try:
        data = graph.pipe(format=fmt)
    except graphviz.ExecutableNotFound as error:
        raise FileNotFoundError("Graphviz's `dot` is not installed: run scripts/install.sh "
                                "(or apt-get install graphviz)") from error
    output.parent.mkdir(parents=True, exist_ok=True)
    # Temporary files in the same folder, then renamed: never a half-written image.
    for path, payload in ((output.with_suffix(".dot"), graph.source.encode()), (output, data)):
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(payload)
        os.replace(tmp, path)
    return output


def draw_wafer(wafer: Wafer, output: str | Path, fmt: str | None = None, **options) -> Path:
    """Render :func:`wafer_dot` (``options`` are its keywords) to ``output``."""
    return render(wafer_dot(wafer, **options), output, fmt)


def draw_die(die: Die, output: str | Path, fmt: str | None = None) -> Path:
    """Render :func:`die_dot` to ``output``."""
    return render(die_dot(die), output, fmt)


def draw_component(component: Component, output: str | Path, fmt: str | None = None) -> Path:
    """Render :func:`component_dot` to ``output``."""
    return render(component_dot(component), output, fmt)
