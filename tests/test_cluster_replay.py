"""Replay helpers: lockstep decode batches, expert counts, the prefill split."""

import numpy as np
import pytest
from conftest import need_shared

from hwmodel.cluster.replay import decode_batch, expert_counts, split_prefill
from hwmodel.traces.adapters import read_deepseek_csv
from hwmodel.traces.synth import default_batch


def test_decode_batch_is_step_one_of_every_request_then_step_two():
    store = default_batch("deepseek-v2-lite", requests=8, seed=2)
    step1 = np.flatnonzero(store.decode_len >= 1)
    step2 = np.flatnonzero(store.decode_len >= 2)
    rows, requests = decode_batch(store, len(step1) + 2)
    assert requests.tolist() == [*step1, *step2[:2]]
    first = store.decode_ids(int(step2[0]))[1]
    assert np.array_equal(rows[len(step1)], first)


def test_expert_counts_per_layer():
    rows = np.array([[[0, 1], [2, 2]], [[1, 3], [0, 2]]])  # 2 tokens, 2 layers, top-2
    assert expert_counts(rows, 4).tolist() == [[1, 2, 0, 1], [1, 0, 3, 0]]


@pytest.mark.shared
def test_prefill_split_keeps_the_first_half_and_replays_the_rest():
    source = need_shared("traces", "deepseek-v2-lite-prefill")
    store = read_deepseek_csv(source, model="deepseek-v2-lite", limit=3)
    split = split_prefill(store)
    for r in range(3):
        n = int(store.prefill_len[r])
        keep = (n + 1) // 2
        assert split.prefill_len[r] == keep
        assert split.decode_len[r] == min(n - keep, 127)
        assert np.array_equal(split.prefill_ids(r), store.prefill_ids(r)[:keep])
        assert np.array_equal(split.decode_ids(r),
                              store.prefill_ids(r)[keep:keep + split.decode_len[r]])


def test_grouped_requests_start_on_their_own_nodes_gpus():
    """Two nodes of two GPUs; the placement sends requests 0 and 2 to node 1 and request 1 to
    node 0. By hand: node 1's requests take its GPUs in turn (2, 3), node 0's its GPU 0; every
    token row follows its request. Without groups, requests are dealt over all GPUs."""
    from hwmodel.cluster import build_cluster
    from hwmodel.cluster.params import ClusterParams
    from hwmodel.cluster.placement.base import Placement
    from hwmodel.cluster.replay import _source_gpu
    cluster = build_cluster(ClusterParams(num_nodes=2, gpus_per_node=2))
    requests = np.array([0, 0, 1, 2, 2, 1])
    grouped = Placement(np.ones((1, 4, 4)) / 4, request_node=np.array([1, 0, 1]))
    assert _source_gpu(requests, grouped, cluster).tolist() == [2, 2, 0, 3, 3, 0]
    dealt = Placement(np.ones((1, 4, 4)) / 4)
    assert _source_gpu(requests, dealt, cluster).tolist() == [0, 0, 1, 2, 2, 1]
