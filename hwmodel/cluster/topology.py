"""A GPU cluster as a component graph: nodes of GPUs on an NVSwitch, NICs, a network switch.

Built from :class:`~hwmodel.cluster.params.ClusterParams` with the generic graph of
:mod:`hwmodel.graph` (no second graph). The hierarchy, with names from coordinates::

    cluster
    |-- node_<n>                      (ports net_<g>: one per GPU, exported to its NIC)
    |   |-- gpu_<n>_<g>               (ports nvlink, pcie; params GPUParams)
    |   |-- nvswitch_<n>              (ports gpu_<g>)
    |   `-- nic_<n>_<g>               (ports host, net)
    `-- netswitch                     (ports node_<n>_<g>)

The NVLink links (GPU to NVSwitch) and the network links (node port to the network switch)
carry the bandwidths and latencies; the MoE-layer model reads them from these links, so the
graph is the one source of the numbers. PCIe between a GPU and its NIC is not a limit here.
"""

from __future__ import annotations

import numpy as np

from ..graph import Component, Link, Port
from .params import ClusterParams

__all__ = ["Cluster", "build_cluster"]


class GPU(Component):
    """One GPU: compute and HBM (its params), an NVLink port and a PCIe port to its NIC."""
    kind = "gpu"

    def __init__(self, name: str, params):
        super().__init__(name, params)
        self.add_port(Port("nvlink", "inout", "nvlink", doc="to the node's NVSwitch"))
        self.add_port(Port("pcie", "inout", "pcie", doc="to the GPU's NIC"))


class NVSwitch(Component):
    """A node's NVSwitch: one NVLink port per GPU."""
    kind = "nvswitch"

    def __init__(self, name: str, gpus: int):
        super().__init__(name)
        for g in range(gpus):
            self.add_port(Port(f"gpu_{g}", "inout", "nvlink", doc=f"to GPU {g}"))


class NIC(Component):
    """A GPU's network card (e.g. 400 Gb/s)."""
    kind = "nic"

    def __init__(self, name: str):
        super().__init__(name)
        self.add_port(Port("host", "inout", "pcie", doc="to its GPU"))
        self.add_port(Port("net", "inout", "net", doc="to the network switch"))


class Cluster(Component):
    """The built cluster graph, with the GPU list and per-GPU link figures read from the graph.

    Members
    -------
    gpus : list of GPU
        Every GPU, node-major (GPU ``i`` is on node ``i // gpus_per_node``).
    """
    kind = "cluster"

    def __init__(self, params: ClusterParams):
        super().__init__("cluster", params)
        self.gpus: list[GPU] = []

    @property
    def num_gpus(self) -> int:
        return len(self.gpus)

    def node_of_gpu(self) -> np.ndarray:
        """Node index of each GPU."""
        return np.arange(self.num_gpus) // self.params.gpus_per_node

    def nvlink_links(self) -> list[Link]:
        """Each GPU's NVLink link, in GPU order."""
        return [gpu.ports["nvlink"].outer_link for gpu in self.gpus]

    def network_links(self) -> list[Link]:
        """Each GPU's link from its node port to the network switch, in GPU order."""
        links = []
        for gpu in self.gpus:
            nic = gpu.ports["pcie"].outer_link.other(gpu.ports["pcie"]).owner
            node_port = nic.ports["net"].outer_link.other(nic.ports["net"])
            links.append(node_port.outer_link)
        return links


def _build_node(cluster: Cluster, n: int) -> Component:
    params = cluster.params
    node = cluster.add(Component(f"node_{n}", kind="node", doc=f"node {n}"))
    switch = node.add(NVSwitch(f"nvswitch_{n}", params.gpus_per_node))
    for g in range(params.gpus_per_node):
        gpu = node.add(GPU(f"gpu_{n}_{g}", params.gpu))
        nic = node.add(NIC(f"nic_{n}_{g}"))
        node.add_port(Port(f"net_{g}", "inout", "net", doc=f"GPU {g}'s NIC to the network"))
        node.connect(gpu.ports["nvlink"], switch.ports[f"gpu_{g}"],
                     latency_ns=params.nvlink.latency_ns,
                     bandwidth_GBps=params.nvlink.bandwidth_GBps)
        node.connect(gpu.ports["pcie"], nic.ports["host"])
        node.connect(node.ports[f"net_{g}"], nic.ports["net"])
        cluster.gpus.append(gpu)
    return node


def build_cluster(params: ClusterParams) -> Cluster:
    """Build and check the cluster graph of ``params``."""
    cluster = Cluster(params)
    netswitch = Component("netswitch", kind="switch", doc="inter-node network switch")
    nodes = [_build_node(cluster, n) for n in range(params.num_nodes)]
    cluster.add(netswitch)
    for n, node in enumerate(nodes):
        for g in range(params.gpus_per_node):
            port = netswitch.add_port(Port(f"node_{n}_{g}", "inout", "net"))
            cluster.connect(node.ports[f"net_{g}"], port,
                            latency_ns=params.network.latency_ns,
                            bandwidth_GBps=params.network.bandwidth_GBps)
    cluster.check()
    return cluster
