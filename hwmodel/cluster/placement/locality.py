"""Workload-aware grouping and locality placement (arXiv 2604.23150), from its description.

1. Grouping: each training request's decode expert-activation vector (counts per (layer,
   expert) on the feature layers), L2-normalised, clustered by k-means (scikit-learn, seeded,
   ``n_init=10``: deterministic); cluster ``c`` maps to device group (node) ``c``. A batch
   request joins the group whose centroid is nearest its prefill vector (normalised).
2. Placement, per layer: ``U(d, e)`` = decode usage of expert e by the training requests of
   group d. Pairs (d, e) by decreasing U place e on node d if e is unplaced and d has room
   (E / nodes experts); leftovers fill the nodes with room in id order. Within a node, experts
   go to GPUs by balanced packing of their total usage (E / G each). No replicas.
"""

from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans

from .base import Placement, PlacementPolicy, register_policy
from .eplb import balanced_packing
from .simple import hosts_from_gpu_of_expert

__all__ = ["LocalityPolicy", "group_requests", "locality_layer", "normalise_rows"]


def normalise_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero)."""
    vectors = np.asarray(vectors, np.float64)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


def group_requests(train_vectors, groups: int, seed: int) -> KMeans:
    """k-means of the L2-normalised training vectors (fitted, seeded)."""
    train = normalise_rows(train_vectors)
    groups = max(1, min(groups, len(np.unique(train, axis=0))))
    return KMeans(n_clusters=groups, n_init=10, random_state=seed).fit(train)


def locality_layer(usage: np.ndarray, gpus_per_node: int) -> np.ndarray:
    """GPU of each expert of one layer from ``usage`` (nodes, E)."""
    nodes, experts = usage.shape
    capacity = experts // nodes
    node_of_expert = np.full(experts, -1)
    held = np.zeros(nodes, dtype=int)
    for flat in np.argsort(-usage, axis=None, kind="stable"):
        node, expert = divmod(int(flat), experts)
        if node_of_expert[expert] < 0 and held[node] < capacity:
            node_of_expert[expert] = node
            held[node] += 1
    gpu_of_expert = np.empty(experts, dtype=int)
    total = usage.sum(axis=0)
    for node in range(nodes):
        members = np.flatnonzero(node_of_expert == node)
        gpu_of_expert[members] = node * gpus_per_node + balanced_packing(total[members],
                                                                         gpus_per_node)
    return gpu_of_expert


@register_policy
class LocalityPolicy(PlacementPolicy):
    """Workload-aware request grouping (k-means) and expert locality placement.

    Needs ``context.extra``: ``train_vectors`` (n, D) decode feature vectors,
    ``train_counts`` (n, L, E) decode counts of the same requests, ``batch_vectors`` (m, D)
    prefill feature vectors of the batch's requests.
    """
    name = "locality"
    doc = "k-means request groups per node, experts placed for token locality"

    def place(self, context):
        params = context.cluster.params
        if context.num_experts % params.num_nodes:
            raise ValueError(f"{context.num_experts} experts do not split over "
                             f"{params.num_nodes} nodes")
        kmeans = group_requests(context.extra["train_vectors"], params.num_nodes, context.seed)
        train_group = kmeans.labels_
        usage = np.zeros((params.num_nodes, context.num_layers, context.num_experts))
        np.add.at(usage, train_group, context.extra["train_counts"])
        layout = np.stack([locality_layer(usage[:, layer], params.gpus_per_node)
                           for layer in range(context.num_layers)])
        request_node = kmeans.predict(normalise_rows(context.extra["batch_vectors"]))
        hosts = hosts_from_gpu_of_expert(layout, context.num_gpus)
        return Placement(hosts, request_node=np.asarray(request_node, dtype=int))
