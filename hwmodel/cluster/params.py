"""Parameter classes of a GPU cluster and its presets (docs/cluster.md).

Frozen, keyword-only attrs classes loaded from YAML by :mod:`hwmodel.config`, so a bad key or
value is an error naming the file and the YAML path (``cluster.gpu.peak_TFLOPS``). Units are in
the field names; 1 GB/s is 1 byte/ns.
"""

from __future__ import annotations

from pathlib import Path

import attrs

from ..config import ConfigError, fraction, load_preset, non_negative, param, positive

__all__ = ["CLUSTER_PRESETS", "ClusterParams", "GPUParams", "LinkParams", "load_cluster"]


@attrs.frozen
class GPUParams:
    """One GPU: dense BF16 compute and its HBM (H100 SXM by default)."""
    peak_TFLOPS: float = param("peak dense BF16 throughput", default=989.0, validator=positive)
    compute_efficiency: float = param("share of the peak the expert GEMMs reach", default=1.0,
                                      validator=fraction)
    hbm_bandwidth_GBps: float = param("HBM bandwidth (bytes/ns)", default=3350.0,
                                      validator=positive)
    hbm_efficiency: float = param("share of the HBM bandwidth reached", default=1.0,
                                  validator=fraction)
    hbm_capacity_bytes: int = param("HBM capacity", default=80 * 10**9, validator=positive)


@attrs.frozen
class LinkParams:
    """A link class: bandwidth per GPU and direction, and latency."""
    bandwidth_GBps: float = param("bandwidth per GPU and direction (bytes/ns)",
                                  validator=positive)
    latency_ns: float = param("latency of one transfer", default=0.0, validator=non_negative)


def _nvlink() -> LinkParams:
    # NVLink 4: 900 GB/s per GPU with both directions together, so 450 GB/s each way.
    return LinkParams(bandwidth_GBps=450.0, latency_ns=1000.0)


def _network() -> LinkParams:
    # One 400 Gb/s NIC per GPU: 50 GB/s each way.
    return LinkParams(bandwidth_GBps=50.0, latency_ns=5000.0)


#: Most GPUs a cluster may have. Every GPU holds at least one expert of every MoE layer (the
#: experts split evenly over the GPUs), and the largest model preset has 384 experts; 4,096
#: GPUs leaves room for bigger models while a typo such as 800,000 GPUs is refused instead of
#: filling the memory with their graph.
MAX_CLUSTER_GPUS = 4096


@attrs.frozen
class ClusterParams:
    """A cluster of identical nodes; each node holds GPUs on one NVSwitch and one NIC per GPU."""
    name: str = param("preset or user name", default="custom")
    num_nodes: int = param("nodes", default=1, validator=positive)
    gpus_per_node: int = param("GPUs per node", default=8, validator=positive)
    gpu: GPUParams = param("every GPU's parameters", factory=GPUParams)
    nvlink: LinkParams = param("GPU to NVSwitch link inside a node", factory=_nvlink)
    network: LinkParams = param("NIC to the inter-node switch", factory=_network)

    def __attrs_post_init__(self):
        if self.num_gpus > MAX_CLUSTER_GPUS:
            raise ConfigError("num_nodes", f"{self.num_nodes} nodes x {self.gpus_per_node} "
                              f"GPUs = {self.num_gpus:,} GPUs; expected at most "
                              f"{MAX_CLUSTER_GPUS:,}")

    @property
    def num_gpus(self) -> int:
        return self.num_nodes * self.gpus_per_node


CLUSTER_PRESETS = ("dgx-h100", "dgx-h100-8node")


def load_cluster(name_or_path: str | Path) -> ClusterParams:
    """A cluster preset by name (``dgx-h100``, ``dgx-h100-8node``) or a YAML file.

    The YAML holds a top-level ``cluster:`` mapping of :class:`ClusterParams` fields.

    Raises
    ------
    ConfigError
        Unknown preset, unreadable file, or a bad value (naming file and YAML path).
    """
    return load_preset(ClusterParams, name_or_path, root="cluster", presets=CLUSTER_PRESETS)
