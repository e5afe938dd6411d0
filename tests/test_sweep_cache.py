"""Trace stores built once and cached by content (hwmodel.sweep.cache)."""

import hashlib
import json
import os

from hwmodel.sweep import TraceSpec
from hwmodel.sweep.cache import trace_store
from hwmodel.traces import TraceStore


def test_store_is_built_once_and_named_by_its_content(tmp_path):
    spec = TraceSpec("llama4-maverick", 3, seed=1)
    path, digest = trace_store(spec, tmp_path)
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert len(TraceStore.load(path).request_ids) == 3
    stamp = path.stat().st_mtime_ns
    assert trace_store(spec, tmp_path) == (path, digest)
    assert path.stat().st_mtime_ns == stamp  # reused, not rebuilt
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".sha256", ".store"]  # no partials


def test_different_seed_or_changed_source_gives_a_new_store(tmp_path):
    path, digest = trace_store(TraceSpec("llama4-maverick", 3, seed=1), tmp_path / "c")
    other, other_digest = trace_store(TraceSpec("llama4-maverick", 3, seed=2), tmp_path / "c")
    assert other != path and other_digest != digest
    source = tmp_path / "source.store"
    source.write_bytes(path.read_bytes())
    first, first_digest = trace_store(TraceSpec("llama4-maverick", 2, path=str(source)),
                                      tmp_path / "c")
    assert len(TraceStore.load(first).request_ids) == 2
    source.write_bytes(other.read_bytes())  # same path, new content
    second, second_digest = trace_store(TraceSpec("llama4-maverick", 2, path=str(source)),
                                        tmp_path / "c")
    assert second != first and second_digest != first_digest


def test_a_request_rewritten_in_place_inside_a_folder_gives_a_new_store(tmp_path):
    # the folder's own size and time stamp do not change when one of its files is rewritten
    # at the same size: the cache must see the new content, not reuse the old store
    synthetic, _ = trace_store(TraceSpec("llama4-maverick", 2, seed=1), tmp_path / "c")
    store = TraceStore.load(synthetic)
    folder = tmp_path / "requests"
    folder.mkdir()
    for index in range(2):
        (folder / f"{index}.json").write_bytes(store.request_json(index))
    stamp = folder.stat().st_mtime_ns
    spec = TraceSpec("llama4-maverick", 2, path=str(folder))
    first, first_digest = trace_store(spec, tmp_path / "c")
    data = store.request_json_data(1)
    layer = str(int(store.moe_layers[0]))
    first_id = data[0][layer][0][0]
    data[0][layer][0][0] = first_id ^ 1      # another expert, written with as many digits
    rewritten = json.dumps(data, indent=4).encode()
    assert len(rewritten) == len(store.request_json(1))
    (folder / "1.json").write_bytes(rewritten)
    os.utime(folder, ns=(stamp, stamp))
    second, second_digest = trace_store(spec, tmp_path / "c")
    assert second != first and second_digest != first_digest
    assert (TraceStore.load(second).prefill_ids(1) != TraceStore.load(first).prefill_ids(1)).any()
