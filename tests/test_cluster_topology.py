"""The cluster graph: presets, link figures read from the graph, YAML errors."""

import pytest

from hwmodel.cluster import build_cluster, load_cluster
from hwmodel.config import ConfigError


def test_eight_node_preset_has_64_gpus_on_8_nvswitches():
    cluster = build_cluster(load_cluster("dgx-h100-8node"))
    assert cluster.num_gpus == 64
    kinds = [c.kind for c in cluster.flatten()]
    assert kinds.count("nvswitch") == 8 and kinds.count("nic") == 64
    assert cluster.gpus[9].path == "cluster.node_1.gpu_1_1"
    assert list(cluster.node_of_gpu()[6:10]) == [0, 0, 1, 1]


def test_link_bandwidths_come_from_the_params():
    # SPEC 9: NVLink 4 = 900 GB/s both directions -> 450 each way; 400 Gb/s NIC = 50 GB/s.
    cluster = build_cluster(load_cluster("dgx-h100"))
    assert {link.bandwidth_GBps for link in cluster.nvlink_links()} == {450.0}
    assert {link.bandwidth_GBps for link in cluster.network_links()} == {50.0}
    assert cluster.gpus[0].params.peak_TFLOPS == 989.0


def test_unknown_yaml_key_names_its_path(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("cluster:\n  num_nodes: 2\n  gpu: {peak_TFLOP: 1.0}\n")
    with pytest.raises(ConfigError, match=r"cluster\.gpu\.peak_TFLOP"):
        load_cluster(path)


def test_impossible_value_is_rejected(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("cluster:\n  gpus_per_node: 0\n")
    with pytest.raises(ConfigError, match="gpus_per_node"):
        load_cluster(path)
