"""Trace store: save/load, memory mapping, select, iteration rows, the decode cap, round trip."""

from pathlib import Path

import numpy as np
import pytest

from hwmodel.traces import MAX_DECODE_STEPS, TraceError, TraceStore, open_batch
from hwmodel.traces.reader import stack_requests


def make_store(prefill_lens=(2, 0, 3), decode_lens=(1, 130, 2), top_k=2, experts=300, seed=1):
    rng = np.random.default_rng(seed)
    requests = [(f"r{i}", f"/src/r{i}.json", rng.integers(0, experts, (p, 3, top_k)),
                 rng.integers(0, experts, (d, 3, top_k)))
                for i, (p, d) in enumerate(zip(prefill_lens, decode_lens, strict=True))]
    store = stack_requests(requests, model_name="", num_layers=5, moe_layers=(0, 2, 4),
                           num_experts=experts, top_k=top_k)
    return store, requests


def test_decode_past_the_cap_is_set_aside_not_dropped():
    store, requests = make_store()
    assert store.ids.dtype == np.uint16  # 300 experts do not fit a byte
    assert store.decode_len.tolist() == [1, MAX_DECODE_STEPS, 2]
    assert store.cut_len.tolist() == [0, 130 - MAX_DECODE_STEPS, 0] and store.cut_steps == 3
    assert np.array_equal(store.decode_ids(1), requests[1][3][:MAX_DECODE_STEPS])
    assert np.array_equal(store.cut_ids, requests[1][3][MAX_DECODE_STEPS:])
    assert store.num_iterations == 128
    assert store.token_offset.tolist() == [0, 3, 3 + 127, 3 + 127 + 5]


def test_save_load_is_identical_and_memory_mapped(tmp_path):
    store, _ = make_store()
    path = store.save(tmp_path / "s.hwt")
    loaded = TraceStore.load(path)
    assert isinstance(loaded.ids.base, object) and not loaded.ids.flags.writeable
    for name in ("prefill_len", "decode_len", "token_offset", "ids", "cut_len", "cut_offset",
                 "cut_ids", "moe_layers"):
        assert np.array_equal(getattr(loaded, name), getattr(store, name)), name
        assert getattr(loaded, name).dtype == getattr(store, name).dtype, name
    assert loaded.request_ids == store.request_ids and loaded.source_paths == store.source_paths
    assert (loaded.num_layers, loaded.top_k, loaded.num_experts) == (5, 2, 300)
    assert TraceStore.load(path, mmap=False).request_json(1) == store.request_json(1)
    again = loaded.save(tmp_path / "t.hwt")
    assert again.read_bytes() == path.read_bytes()


def test_bad_store_files_are_named(tmp_path):
    (tmp_path / "x.hwt").write_bytes(b"NOTATRACE" * 4)
    with pytest.raises(TraceError, match=r"x.hwt: not a hwmodel trace store"):
        TraceStore.load(tmp_path / "x.hwt")
    store, _ = make_store()
    data = bytearray(store.save(tmp_path / "s.hwt").read_bytes())
    data[8] = 9
    (tmp_path / "v.hwt").write_bytes(bytes(data))
    with pytest.raises(TraceError, match=r"v.hwt: trace store version 9, this reader knows "
                                         r"version 1"):
        TraceStore.load(tmp_path / "v.hwt")


def test_select_reorders_and_keeps_views_for_ranges():
    store, requests = make_store()
    picked = store.select([2, 0])
    assert picked.request_ids == ["r2", "r0"]
    assert np.array_equal(picked.prefill_ids(0), requests[2][2])
    assert np.array_equal(picked.decode_ids(1), requests[0][3])
    tail = store.select([1, 2])
    assert np.shares_memory(tail.ids, store.ids)
    assert tail.cut_steps == 3 and np.array_equal(tail.decode_ids(1), requests[2][3])
    with pytest.raises(IndexError, match="out of range 0..2: 3"):
        store.select([3])


def test_iteration_rows_follow_batch_then_token_order():
    store, requests = make_store()
    rows, owners = store.iteration_rows(0)
    assert owners.tolist() == [0, 0, 2, 2, 2]
    assert np.array_equal(rows, np.concatenate([requests[0][2], requests[2][2]]))
    rows, owners = store.iteration_rows(2)
    assert owners.tolist() == [1, 2]
    assert np.array_equal(rows, np.stack([requests[1][3][1], requests[2][3][1]]))
    assert store.iteration_rows(127)[1].tolist() == [1]
    assert store.iteration_rows(128)[1].tolist() == []


@pytest.mark.slow
def test_json_to_store_to_json_round_trip_is_exact(llama4_traces, tmp_path):
    store = open_batch(llama4_traces, progress=False)
    loaded = TraceStore.load(store.save(tmp_path / "llama4.hwt"))
    assert len(loaded) == 235
    for index, source in enumerate(loaded.source_paths):
        assert loaded.request_json(index) == Path(source).read_bytes(), source
