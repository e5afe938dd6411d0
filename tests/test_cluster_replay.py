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
