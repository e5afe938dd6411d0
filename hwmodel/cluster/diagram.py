"""Diagram of a cluster drawn from its component graph (Graphviz).

Each node is a box of its GPUs, NVSwitch and NICs; every link of the graph is an edge labelled
with its bandwidth, so the picture and the model read the same numbers.
"""

from __future__ import annotations

import graphviz

from ..diagrams.draw import render
from .topology import Cluster

__all__ = ["cluster_dot", "draw_cluster"]

_FILL = {"gpu": "#dbe9f6", "nvswitch": "#fde2c4", "nic": "#e2f0d9", "switch": "#f4cccc"}


def cluster_dot(cluster: Cluster) -> graphviz.Graph:
    """DOT of the cluster: one subgraph per node, every link an edge."""
    params = cluster.params
    graph = graphviz.Graph(name="cluster", engine="dot")
    graph.attr(label=f"{params.name}: {params.num_nodes} node(s) x {params.gpus_per_node} GPUs",
               labelloc="t", fontname="Helvetica", rankdir="TB")
    graph.attr("node", fontname="Helvetica", fontsize="9", shape="box", style="rounded,filled")
    graph.attr("edge", fontname="Helvetica", fontsize="7")
    for child in cluster.children:
        if child.kind != "node":
            graph.node(child.path, label=child.name, fillcolor=_FILL.get(child.kind, "white"))
            continue
        with graph.subgraph(name=f"cluster_{child.name}") as box:
            box.attr(label=child.name, style="rounded")
            for unit in child.children:
                box.node(unit.path, label=unit.name, fillcolor=_FILL.get(unit.kind, "white"))
    for link in cluster.iter_links():
        a, b = (port.owner for port in link.ends)
        if a is cluster or b is cluster or a.kind == "node" and b.kind == "nic":
            continue
        if a.kind == "node":
            # A node port is exported to a NIC: draw the edge from the NIC itself.
            a = a.ports[link.ends[0].name].inner_link.other(a.ports[link.ends[0].name]).owner
        label = f"{link.bandwidth_GBps:g} GB/s" if link.bandwidth_GBps else ""
        graph.edge(a.path, b.path, label=label)
    return graph


def draw_cluster(cluster: Cluster, output, fmt: str | None = None):
    """Render :func:`cluster_dot` to ``output`` (SVG or PNG; the DOT is kept beside it)."""
    return render(cluster_dot(cluster), output, fmt)
