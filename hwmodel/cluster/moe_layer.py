"""Analytical MoE-layer model on a GPU cluster: expert-GEMM roofline and all-to-all traffic.

Notation (per MoE layer): ``h`` hidden width, ``F`` expert FFN width, ``m`` weight matrices per
expert (3: gate, up, down), ``b`` bytes per value, ``t`` tokens an expert copy serves on a GPU.

* FLOPs of one expert copy: ``2 m t h F``.
* HBM bytes: its weights ``m h F b`` plus activations ``m t (h + F) b`` (each GEMM reads its
  input and writes its output: gate and up ``h -> F``, down ``F -> h``).
* Roofline time: ``max(FLOPs / (peak * compute_efficiency), bytes / (HBM bw * efficiency))``;
  0 when ``t = 0`` (an idle copy is not run).
* A GPU's MoE time in a layer is the sum over its expert copies; the layer's MoE time is the
  slowest GPU; a batch's MoE time sums the layers.
* All-to-all: a (token, expert) pair whose token lives on GPU ``s`` and whose expert copy is on
  GPU ``d != s`` moves ``h b`` bytes at dispatch and again at combine. Bytes are intra-node when
  ``s`` and ``d`` share a node, else inter-node. A link class's time per layer is the largest
  per-GPU send (dispatch plus combine) over that GPU's link bandwidth, plus the link latency
  once when anything moves. Bandwidths and latencies are read from the cluster graph's links.
"""

from __future__ import annotations

import attrs
import numpy as np

__all__ = ["AllToAll", "all_to_all", "expert_time_ns", "gpu_times_ns", "moe_time_ns"]


def expert_time_ns(tokens, model, gpu) -> np.ndarray:
    """Roofline time (ns) of one expert copy serving ``tokens`` tokens on a GPU.

    ``tokens`` may be fractional (an even split of a replicated expert) and any shape.
    """
    tokens = np.asarray(tokens, dtype=np.float64)
    h, f, m, b = model.hidden_dim, model.expert_ffn_dim, model.matrices_per_expert, \
        model.dtype_bytes
    flops = 2.0 * m * tokens * h * f
    hbm_bytes = m * h * f * b + m * tokens * (h + f) * b
    # TFLOPS * 1e3 = FLOPs per ns; GB/s = bytes per ns.
    compute = flops / (gpu.peak_TFLOPS * 1e3 * gpu.compute_efficiency)
    memory = hbm_bytes / (gpu.hbm_bandwidth_GBps * gpu.hbm_efficiency)
    return np.where(tokens > 0, np.maximum(compute, memory), 0.0)


def gpu_times_ns(counts, shares, model, gpu) -> np.ndarray:
    """Per-layer, per-GPU MoE time (ns), shape ``(L, G)``.

    Parameters
    ----------
    counts : array (L, E)
        Tokens routed to each expert in each layer.
    shares : array (L, E, G)
        Share of expert ``e``'s tokens its copy on GPU ``g`` serves (rows sum to 1).
    """
    tokens = np.asarray(counts, np.float64)[:, :, None] * shares
    return expert_time_ns(tokens, model, gpu).sum(axis=1)


def moe_time_ns(counts, shares, model, gpu) -> float:
    """MoE time of a batch: per layer the slowest GPU, summed over layers (ns)."""
    return float(gpu_times_ns(counts, shares, model, gpu).max(axis=1).sum())


@attrs.frozen
class AllToAll:
    """All-to-all figures of one batch (dispatch plus combine, summed over layers)."""
    intra_bytes: float
    inter_bytes: float
    intra_time_ns: float
    inter_time_ns: float


def all_to_all(source_counts, shares, model, cluster) -> AllToAll:
    """All-to-all bytes and time of a batch.

    Parameters
    ----------
    source_counts : array (L, G, E)
        (token, expert) pairs per layer whose token lives on GPU ``s`` (first GPU axis).
    shares : array (L, E, G)
        Placement shares, as for :func:`gpu_times_ns`.
    cluster : Cluster
        Its NVLink and network links give bandwidths and latencies.
    """
    token_bytes = model.hidden_dim * model.dtype_bytes
    traffic = np.einsum("lse,led->lsd", np.asarray(source_counts, np.float64), shares)
    node = cluster.node_of_gpu()
    same_node = node[:, None] == node[None, :]
    off_diagonal = ~np.eye(len(node), dtype=bool)
    figures = []
    for mask, links in ((same_node & off_diagonal, cluster.nvlink_links()),
                        (~same_node, cluster.network_links())):
        pairs = traffic * mask
        # Dispatch sends row s; combine sends the results back, i.e. column s.
        sent = (pairs.sum(axis=2) + pairs.sum(axis=1)) * token_bytes
        bandwidth = np.array([link.bandwidth_GBps for link in links])
        latency = max(link.latency_ns for link in links)
        per_layer = (sent / bandwidth).max(axis=1)
        time = per_layer.sum() + latency * np.count_nonzero(per_layer)
        figures.append((float(sent.sum()), float(time)))
    (intra, intra_time), (inter, inter_time) = figures
    return AllToAll(intra_bytes=intra, inter_bytes=inter, intra_time_ns=intra_time,
                    inter_time_ns=inter_time)
