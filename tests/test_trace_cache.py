"""The replay's trace cache (hwmodel.sweep.cache.cached_batch): a request source parsed once per
content, the same store as parsing it again, a new store for new content."""

import json
import os
import time

import numpy as np
import pytest

import hwmodel.sweep.cache as cache_module
from hwmodel.sweep.cache import RACY_SECONDS, cached_batch, trace_cache_dir
from hwmodel.traces import TraceError, open_batch

# A tiny model: 4 layers, MoE layers 1 and 3, 8 experts, top-2.
TINY = ("model:\n  name: tiny\n  num_layers: 4\n  moe_layers: [1, 3]\n  num_experts: 8\n"
        "  top_k: 2\n  hidden_dim: 16\n  expert_ffn_dim: 32\n")


def _request(rng, prefill_tokens: int, decode_steps: int) -> list:
    """Dataset JSON of one random request of the tiny model (distinct top-2 ids per row)."""
    def rows(count):
        return [sorted(rng.choice(8, size=2, replace=False).tolist()) for _ in range(count)]
    first = {"0": None, "1": rows(prefill_tokens), "2": None, "3": rows(prefill_tokens)}
    steps = [{"0": None, "1": rows(1), "2": None, "3": rows(1)} for _ in range(decode_steps)]
    return [first, *steps]


def _write_batch(folder, rng, count: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        data = _request(rng, int(rng.integers(1, 6)), int(rng.integers(0, 4)))
        (folder / f"{i}.json").write_text(json.dumps(data, indent=int(rng.integers(0, 3))))


def _bytes(store, path) -> bytes:
    """A store's whole content (arrays and metadata) as its file's bytes."""
    return store.save(path).read_bytes()


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


@pytest.mark.parametrize("seed", range(4))
def test_cached_store_equals_the_parsed_one_at_every_limit(tmp_path, tiny, seed):
    rng = np.random.default_rng(seed)
    count = int(rng.integers(1, 7))
    _write_batch(tmp_path / "batch", rng, count)
    cache = tmp_path / "cache"
    for limit in (None, 1, count, count + 3):
        parsed = open_batch(tmp_path / "batch", model=tiny, limit=limit)
        first = cached_batch(tmp_path / "batch", model=tiny, limit=limit, cache_dir=cache)
        again = cached_batch(tmp_path / "batch", model=tiny, limit=limit, cache_dir=cache)
        expected = _bytes(parsed, tmp_path / "parsed.store")
        assert _bytes(first, tmp_path / "first.store") == expected
        assert _bytes(again, tmp_path / "again.store") == expected
    # one store per distinct request set: limit 1, and all of them (None, count, count + 3)
    stores = sorted(p.name for p in cache.iterdir() if p.is_file())   # not the stat/ links
    assert len(stores) == (1 if count == 1 else 2) and all(s.endswith(".store") for s in stores)


def test_second_read_comes_from_the_cache(tmp_path, tiny, monkeypatch):
    _write_batch(tmp_path / "batch", np.random.default_rng(7), 3)
    cache = tmp_path / "cache"
    cached_batch(tmp_path / "batch", model=tiny, cache_dir=cache)
    import hwmodel.traces
    monkeypatch.setattr(hwmodel.traces, "open_batch", None)   # a parse would fail now
    store = cached_batch(tmp_path / "batch", model=tiny, cache_dir=cache)
    assert store.request_ids == ["0.json", "1.json", "2.json"]


def test_changed_request_at_the_same_path_is_parsed_again(tmp_path, tiny):
    rng = np.random.default_rng(3)
    _write_batch(tmp_path / "batch", rng, 2)
    cache = tmp_path / "cache"
    before = cached_batch(tmp_path / "batch", model=tiny, cache_dir=cache)
    target = tmp_path / "batch" / "1.json"
    stat = target.stat()
    data = json.loads(target.read_text())
    data[0]["1"][0] = [0, 7] if data[0]["1"][0] != [0, 7] else [1, 6]
    text = json.dumps(data)
    target.write_text(text + " " * (stat.st_size - len(text)))   # same size ...
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))      # ... and same time stamp
    after = cached_batch(tmp_path / "batch", model=tiny, cache_dir=cache)
    assert after.ids.tolist() != before.ids.tolist()
    assert (_bytes(after, tmp_path / "a.store")
            == _bytes(open_batch(tmp_path / "batch", model=tiny), tmp_path / "b.store"))


def test_a_bad_request_is_refused_and_nothing_is_cached(tmp_path, tiny):
    _write_batch(tmp_path / "batch", np.random.default_rng(1), 2)
    (tmp_path / "batch" / "1.json").write_text('[{"0": null, "1": [[0, 9]]}]')
    cache = tmp_path / "cache"
    with pytest.raises(TraceError, match="1.json"):
        cached_batch(tmp_path / "batch", model=tiny, cache_dir=cache)
    assert not cache.exists() or not any(cache.iterdir())


def test_cache_folder_from_the_environment(tmp_path, monkeypatch, tiny):
    monkeypatch.setenv("HWMODEL_TRACE_CACHE", str(tmp_path / "mine"))
    assert trace_cache_dir() == tmp_path / "mine"
    monkeypatch.setenv("HWMODEL_TRACE_CACHE", "off")
    assert trace_cache_dir() is None
    _write_batch(tmp_path / "batch", np.random.default_rng(2), 1)
    assert len(cached_batch(tmp_path / "batch", model=tiny)) == 1
    assert not (tmp_path / "mine").exists()
    monkeypatch.delenv("HWMODEL_TRACE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert trace_cache_dir() == tmp_path / "xdg" / "hwmodel" / "traces"


def _newest_stamp_s(folder) -> float:
    """Newest modification or change time of ``folder`` and its files, in seconds."""
    stats = [p.stat() for p in [folder, *folder.iterdir()]]
    return max(max(st.st_mtime_ns, st.st_ctime_ns) for st in stats) / 1e9


def _clock_at(monkeypatch, seconds: float) -> None:
    """The cache module's clock reads ``seconds`` (a link is written only for settled files)."""
    monkeypatch.setattr(cache_module, "time", type("Clock", (), {"time": lambda: seconds}))


def _links(cache) -> list:
    return sorted((cache / "stat").glob("*.key")) if (cache / "stat").is_dir() else []


def test_settled_files_are_found_by_their_stat_link_without_reading(tmp_path, tiny,
                                                                     monkeypatch):
    _write_batch(tmp_path / "batch", np.random.default_rng(5), 3)
    _clock_at(monkeypatch, _newest_stamp_s(tmp_path / "batch") + RACY_SECONDS + 0.5)
    cache = tmp_path / "cache"
    cached_batch(tmp_path / "batch", model=tiny, cache_dir=cache)
    assert len(_links(cache)) == 1
    import hwmodel.traces
    monkeypatch.setattr(hwmodel.traces, "open_batch", None)                 # no parse ...
    monkeypatch.setattr(cache_module, "_requests_key", None)                # ... nor hash
    store = cached_batch(tmp_path / "batch", model=tiny, cache_dir=cache)
    monkeypatch.undo()
    assert (_bytes(store, tmp_path / "a.store")
            == _bytes(open_batch(tmp_path / "batch", model=tiny), tmp_path / "b.store"))


def test_files_changed_lately_get_no_stat_link(tmp_path, tiny, monkeypatch):
    _write_batch(tmp_path / "batch", np.random.default_rng(6), 2)
    _clock_at(monkeypatch, _newest_stamp_s(tmp_path / "batch") + RACY_SECONDS - 0.5)
    cached_batch(tmp_path / "batch", model=tiny, cache_dir=tmp_path / "cache")
    assert _links(tmp_path / "cache") == []
    assert len(list((tmp_path / "cache").glob("*.store"))) == 1


@pytest.mark.parametrize("change", ["rewrite", "add", "remove"])
def test_a_changed_source_is_read_again_despite_a_stat_link(tmp_path, tiny, monkeypatch,
                                                            change):
    rng = np.random.default_rng(4)
    folder = tmp_path / "batch"
    _write_batch(folder, rng, 3)
    _clock_at(monkeypatch, _newest_stamp_s(folder) + RACY_SECONDS + 0.5)
    cache = tmp_path / "cache"
    before = cached_batch(folder, model=tiny, cache_dir=cache)
    assert len(_links(cache)) == 1
    target = folder / "1.json"
    stat = target.stat()
    time.sleep(0.05)    # a later clock tick for the change time (Linux stamps are coarse)
    if change == "rewrite":     # same size, same inode, modification time put back
        data = json.loads(target.read_text())
        data[0]["1"][0] = [0, 7] if data[0]["1"][0] != [0, 7] else [1, 6]
        text = json.dumps(data)
        target.write_text(text + " " * (stat.st_size - len(text)))
        os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        assert target.stat().st_ctime_ns != stat.st_ctime_ns      # the premise of the test
    elif change == "add":
        (folder / "3.json").write_text(json.dumps(_request(rng, 2, 1)))
    else:
        target.unlink()
    after = cached_batch(folder, model=tiny, cache_dir=cache)
    assert after.request_ids != before.request_ids or after.ids.tolist() != before.ids.tolist()
    assert (_bytes(after, tmp_path / "a.store")
            == _bytes(open_batch(folder, model=tiny), tmp_path / "b.store"))


@pytest.mark.parametrize("damage", ["store deleted", "link not a key"])
def test_a_stat_link_to_nothing_usable_falls_back_to_the_content(tmp_path, tiny, monkeypatch,
                                                                 damage):
    _write_batch(tmp_path / "batch", np.random.default_rng(8), 2)
    _clock_at(monkeypatch, _newest_stamp_s(tmp_path / "batch") + RACY_SECONDS + 0.5)
    cache = tmp_path / "cache"
    cached_batch(tmp_path / "batch", model=tiny, cache_dir=cache)
    (link,) = _links(cache)
    if damage == "store deleted":
        (cache / f"{link.read_text().strip()}.store").unlink()
    else:
        link.write_text("../../etc/passwd\n")
    store = cached_batch(tmp_path / "batch", model=tiny, cache_dir=cache)
    assert (_bytes(store, tmp_path / "a.store")
            == _bytes(open_batch(tmp_path / "batch", model=tiny), tmp_path / "b.store"))
    assert len(list(cache.glob("*.store"))) == 1 and _links(cache) == [link]


@pytest.mark.slow  # 18 s under load
def test_replay_of_the_shared_trace_is_the_same_from_the_cache(llama4_traces, tmp_path):
    from hwmodel.models import load_model
    from hwmodel.params import load_wafer
    from hwmodel.system import Replay
    from hwmodel.system.results import csv_lines
    from hwmodel.topologies.wafer import build_wafer
    source = llama4_traces / "mmlu" / "anatomy"
    parsed = open_batch(source, limit=12)
    cached_batch(source, limit=12, cache_dir=tmp_path)
    cached = cached_batch(source, limit=12, cache_dir=tmp_path)
    wafer, model = build_wafer(load_wafer("tsmc-sow")), load_model("llama4-maverick")
    for strategy in ("base", "allo+pred"):
        runs = [Replay(wafer=wafer, model=model, store=s).run(strategy) for s in (parsed, cached)]
        assert csv_lines(runs[:1]) == csv_lines(runs[1:])
