"""Default (linear, contiguous) and random placements."""

from __future__ import annotations

import numpy as np

from .base import Placement, PlacementPolicy, register_policy, shares_from_hosts

__all__ = ["DefaultPolicy", "RandomPolicy", "hosts_from_gpu_of_expert"]


def hosts_from_gpu_of_expert(gpu_of_expert: np.ndarray, num_gpus: int) -> np.ndarray:
    """(L, E, G) copy counts from one GPU per (layer, expert)."""
    layers, experts = gpu_of_expert.shape
    hosts = np.zeros((layers, experts, num_gpus))
    hosts[np.arange(layers)[:, None], np.arange(experts)[None, :], gpu_of_expert] = 1
    return hosts


def contiguous(context) -> np.ndarray:
    """GPU of each expert in the default layout: experts 0..E/G-1 on GPU 0, and so on."""
    gpu = np.arange(context.num_experts) // context.experts_per_gpu
    return np.broadcast_to(gpu, (context.num_layers, context.num_experts)).copy()


@register_policy
class DefaultPolicy(PlacementPolicy):
    """Contiguous ("linear") layout: expert e on GPU e // (E/G), every layer."""
    name = "default"
    doc = "contiguous experts per GPU (the baseline)"

    def place(self, context):
        return Placement(shares_from_hosts(hosts_from_gpu_of_expert(contiguous(context),
                                                                   context.num_gpus)))


@register_policy
class RandomPolicy(PlacementPolicy):
    """A seeded random permutation of the contiguous layout, drawn per layer."""
    name = "random"
    doc = "random permutation per layer (seeded)"

    def place(self, context):
        rng = np.random.default_rng(context.seed)
        layout = contiguous(context)
        for layer in range(context.num_layers):
            layout[layer] = layout[layer][rng.permutation(context.num_experts)]
        return Placement(shares_from_hosts(hosts_from_gpu_of_expert(layout, context.num_gpus)))
