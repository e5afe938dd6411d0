"""EPLB: DeepSeek's expert-parallel load balancer, written from its public description.

Hierarchical policy (used when the expert groups split evenly over the nodes):

1. pack the expert groups to nodes so node loads are balanced, each node getting the same
   number of groups;
2. within each node, replicate experts: each extra copy goes to the expert whose load per copy
   is currently the highest;
3. pack the copies (load = expert load / copies) to the node's GPUs, balanced, each GPU getting
   the same number of copies.

Otherwise the global policy: one replication over all experts, then balanced packing over all
GPUs. Balanced packing takes items by decreasing weight, each to the lightest pack that still
has room. Loads are token counts (EPLB balances tokens, not roofline time).
"""

from __future__ import annotations

import numpy as np

from .base import Placement, PlacementPolicy, register_policy

__all__ = ["EPLBPolicy", "balanced_packing", "eplb_layer", "replicate"]


def balanced_packing(weights: np.ndarray, num_packs: int) -> np.ndarray:
    """Pack of each item: decreasing weight, each to the lightest pack with room.

    Every pack gets ``len(weights) // num_packs`` items; ties go to the lower index.
    """
    capacity = len(weights) // num_packs
    load = np.zeros(num_packs)
    held = np.zeros(num_packs, dtype=int)
    pack = np.empty(len(weights), dtype=int)
    for item in np.argsort(-np.asarray(weights, np.float64), kind="stable"):
        chosen = int(np.argmin(np.where(held < capacity, load, np.inf)))
        pack[item] = chosen
        load[chosen] += weights[item]
        held[chosen] += 1
    return pack


def replicate(weights: np.ndarray, num_copies: int) -> np.ndarray:
    """Copies per expert: one each, then each extra to the highest load per copy."""
    copies = np.ones(len(weights), dtype=int)
    for _ in range(num_copies - len(weights)):
        copies[int(np.argmax(weights / copies))] += 1
    return copies


def eplb_layer(weights, num_groups: int, num_nodes: int, gpus_per_node: int,
               replicas_per_gpu: int) -> np.ndarray:
    """Copy counts (E, G) of one layer under EPLB."""
    experts = len(weights)
    if num_groups % num_nodes or experts % num_groups:
        num_groups, num_nodes, gpus_per_node = 1, 1, num_nodes * gpus_per_node
    group_size = experts // num_groups
    group_node = balanced_packing(weights.reshape(num_groups, group_size).sum(axis=1),
                                  num_nodes)
    hosts = np.zeros((experts, num_nodes * gpus_per_node))
    slots_per_node = experts // num_nodes + replicas_per_gpu * gpus_per_node
    for node in range(num_nodes):
        members = np.concatenate([np.arange(g * group_size, (g + 1) * group_size)
                                  for g in np.flatnonzero(group_node == node)])
        copies = replicate(weights[members], slots_per_node)
        physical = np.repeat(members, copies[np.arange(len(members))])
        per_copy = np.repeat(weights[members] / copies, copies)
        gpu = node * gpus_per_node + balanced_packing(per_copy, gpus_per_node)
        np.add.at(hosts, (physical, gpu), 1)
    return hosts


@register_policy
class EPLBPolicy(PlacementPolicy):
    """DeepSeek EPLB on prefill token counts; ``num_groups`` defaults to the node count.

    Parameters
    ----------
    num_groups : int, optional
        Expert groups of the model (DeepSeek-V3: 8); contiguous ids.
    replicas : bool
        Whether to use the context's ``replicas_per_gpu`` extra slots (default ``False``:
        zero replicas, the baseline of arXiv 2604.23150).
    """
    name = "eplb"
    doc = "DeepSeek hierarchical load balancer (zero replicas)"

    def __init__(self, num_groups: int | None = None, replicas: bool = False):
        self.num_groups = num_groups
        self.replicas = replicas

    def place(self, context):
        params = context.cluster.params
        groups = self.num_groups or params.num_nodes
        extra = context.replicas_per_gpu if self.replicas else 0
        hosts = np.stack([eplb_layer(np.asarray(row, np.float64), groups, params.num_nodes,
                                     params.gpus_per_node, extra)
                          for row in context.prefill_counts])
        return Placement(hosts / hosts.sum(axis=2, keepdims=True))
