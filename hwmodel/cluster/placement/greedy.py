"""Prefill-guided Remap and Dup (Algorithm 2 of arXiv 2510.05497, Section VI).

Both weigh an expert by ``Cost(f)``: the roofline time of its prefill frequency ``f`` scaled to
the batch's (token, expert) pairs (:meth:`PlacementContext.scaled`).
"""

from __future__ import annotations

import numpy as np

from .base import Placement, PlacementPolicy, register_policy, shares_from_hosts
from .simple import contiguous, hosts_from_gpu_of_expert

__all__ = ["DupPolicy", "RemapPolicy", "dup_layer", "remap_layer"]


def remap_layer(cost: np.ndarray, num_gpus: int, capacity: int) -> np.ndarray:
    """GPU of each expert: decreasing cost, each to the least-loaded GPU with room.

    Ties go to the lower expert id first and to the lower GPU index.
    """
    load = np.zeros(num_gpus)
    held = np.zeros(num_gpus, dtype=int)
    gpu_of_expert = np.empty(len(cost), dtype=int)
    for expert in np.argsort(-cost, kind="stable"):
        open_load = np.where(held < capacity, load, np.inf)
        gpu = int(np.argmin(open_load))
        gpu_of_expert[expert] = gpu
        load[gpu] += cost[expert]
        held[gpu] += 1
    return gpu_of_expert


def dup_layer(tokens: np.ndarray, hosts: np.ndarray, replicas_per_gpu: int, cost) -> np.ndarray:
    """Add ``replicas_per_gpu`` replicas per GPU to ``hosts`` (E, G), greedily.

    Each step adds the replica (e, g), g with a free slot and not yet hosting e, whose
    addition gives the lowest maximum GPU load (a replicated expert's tokens split evenly over
    its copies); ties go to the lower expert, then the lower GPU.
    """
    hosts = hosts.copy()
    free = np.full(hosts.shape[1], replicas_per_gpu)
    for _ in range(replicas_per_gpu * hosts.shape[1]):
        copies = hosts.sum(axis=1)
        old, new = cost(tokens / copies), cost(tokens / (copies + 1))
        load = (hosts * old[:, None]).sum(axis=0)
        base = load[None, :] + hosts * (new - old)[:, None]
        top = np.sort(base, axis=1)
        best_other = np.where(base >= top[:, -1:], top[:, -2:-1], top[:, -1:])
        if hosts.shape[1] == 1:
            best_other = np.zeros_like(base)
        result = np.maximum(best_other, base + new[:, None])
        result[(hosts > 0) | (free[None, :] <= 0)] = np.inf
        if not np.isfinite(result).any():
            break
        expert, gpu = np.unravel_index(int(np.argmin(result)), result.shape)
        hosts[expert, gpu] += 1
        free[gpu] -= 1
    return hosts


@register_policy
class RemapPolicy(PlacementPolicy):
    """Remap: per layer, experts by decreasing Cost(f) to the least-loaded GPU with room."""
    name = "remap"
    doc = "prefill-guided remap (E/G experts per GPU)"

    def place(self, context):
        cost = context.cost(context.scaled(context.prefill_counts))
        layout = np.stack([remap_layer(row, context.num_gpus, context.experts_per_gpu)
                           for row in cost])
        return Placement(shares_from_hosts(hosts_from_gpu_of_expert(layout, context.num_gpus)))


@register_policy
class DupPolicy(PlacementPolicy):
    """Dup: the contiguous layout plus R replicas per GPU, greedily lowering the max load."""
    name = "dup"
    doc = "prefill-guided duplication (R extra slots per GPU)"

    def place(self, context):
        tokens = context.scaled(context.prefill_counts)
        hosts = hosts_from_gpu_of_expert(contiguous(context), context.num_gpus)
        for layer in range(context.num_layers):
            hosts[layer] = dup_layer(tokens[layer], hosts[layer], context.replicas_per_gpu,
                                     context.cost)
        return Placement(shares_from_hosts(hosts))
