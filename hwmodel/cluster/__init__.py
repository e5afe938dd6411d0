"""GPU clusters serving MoE models: case study 2 of arXiv 2510.05497 and arXiv 2604.23150.

* :mod:`.params`: frozen parameter classes and the cluster presets (YAML);
* :mod:`.topology`: the cluster as a component graph (:mod:`hwmodel.graph`): GPUs, NVSwitches,
  NICs, NVLink and inter-node links;
* :mod:`.moe_layer`: the analytical MoE-layer model (expert-GEMM roofline, all-to-all);
* :mod:`.placement`: expert-placement policies behind one interface, with a registry;
* :mod:`.replay`: decode batches of a trace through a cluster and policies.
"""

from .params import CLUSTER_PRESETS, ClusterParams, load_cluster
from .topology import Cluster, build_cluster

__all__ = ["CLUSTER_PRESETS", "Cluster", "ClusterParams", "build_cluster", "load_cluster"]
