"""Roofline and all-to-all formulas against hand-worked cases."""

import attrs
import numpy as np
import pytest

from hwmodel.cluster import build_cluster
from hwmodel.cluster.moe_layer import all_to_all, expert_time_ns, moe_time_ns
from hwmodel.cluster.params import ClusterParams, GPUParams
from hwmodel.models import load_model

QWEN = load_model("qwen3-235b")
H100 = GPUParams()


def test_one_token_is_memory_bound_on_the_weights():
    # Weights 3*4096*1536*2 = 37,748,736 B plus activations 3*1*(4096+1536)*2 = 33,792 B at
    # 3350 B/ns; FLOPs 2*3*4096*1536 = 37,748,736 at 989e3 FLOP/ns are far less.
    assert expert_time_ns(1, QWEN, H100) == pytest.approx(37_782_528 / 3350, rel=1e-12)


def test_4096_tokens_are_compute_bound():
    flops = 2 * 3 * 4096 * 4096 * 1536  # 154,618,822,656
    hbm = 37_748_736 + 3 * 4096 * (4096 + 1536) * 2  # 176,160,768 B -> 52,585 ns
    assert hbm / 3350 < flops / 989e3
    assert expert_time_ns(4096, QWEN, H100) == pytest.approx(flops / 989e3, rel=1e-12)


def test_idle_copy_costs_nothing_and_slowest_gpu_sums_over_layers():
    assert expert_time_ns(0, QWEN, H100) == 0.0
    counts = np.array([[1, 0], [1, 1]])          # 2 layers, 2 experts
    shares = np.array([[[1, 0], [0, 1]]] * 2, dtype=float)  # expert e on GPU e
    one = 37_782_528 / 3350
    assert moe_time_ns(counts, shares, QWEN, H100) == pytest.approx(2 * one, rel=1e-12)


def test_two_node_all_to_all_bytes_and_time_by_hand():
    cluster = build_cluster(ClusterParams(num_nodes=2, gpus_per_node=2))
    model = attrs.evolve(QWEN, hidden_dim=4)  # 4 values * 2 B = 8 B per (token, expert)
    shares = np.eye(4)[None]                  # expert e on GPU e (GPUs 0,1 node 0; 2,3 node 1)
    sources = np.zeros((1, 4, 4))
    sources[0, 0] = [1, 3, 2, 0]               # GPU 0's tokens: 1 local, 3 same node, 2 remote
    result = all_to_all(sources, shares, model, cluster)
    assert result.intra_bytes == 2 * 3 * 8     # dispatch + combine
    assert result.inter_bytes == 2 * 2 * 8
    # Busiest sender per class: 24 B over NVLink (GPU 0 out, GPU 1 back), 16 B over the NIC.
    assert result.intra_time_ns == pytest.approx(24 / 450 + 1000)
    assert result.inter_time_ns == pytest.approx(16 / 50 + 5000)


def test_all_to_all_pays_each_link_latency_once_per_layer_that_moves_data():
    """The two-node case above over three layers, the middle one idle: each class's time is the
    busiest sender's time per layer plus the latency, for each of the two busy layers."""
    cluster = build_cluster(ClusterParams(num_nodes=2, gpus_per_node=2))
    model = attrs.evolve(QWEN, hidden_dim=4)
    shares = np.repeat(np.eye(4)[None], 3, axis=0)
    sources = np.zeros((3, 4, 4))
    sources[0, 0] = sources[2, 0] = [1, 3, 2, 0]
    result = all_to_all(sources, shares, model, cluster)
    assert result.intra_bytes == 2 * 2 * 3 * 8
    assert result.intra_time_ns == pytest.approx(2 * (24 / 450 + 1000))
    assert result.inter_time_ns == pytest.approx(2 * (16 / 50 + 5000))
