"""Trace stores built once and cached by content (hwmodel.sweep.cache)."""

import hashlib

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
